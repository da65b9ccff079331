// Package scratchfs makes throw-away file systems and loop devices for
// tests that need a real ext4 or XFS file system, or a real block device:
// an image file in the test's temporary directory, made with mkfs and
// mounted through a loop device, or attached to one. They need root and
// the tools (mkfs.ext4 from e2fsprogs, mkfs.xfs from xfsprogs, mount,
// losetup); where something is missing the functions say why, and the
// test decides whether to skip. Everything is unmounted and detached when
// the test ends.
package scratchfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FS describes a file system to make.
type FS struct {
	// Type is the file system type given to mkfs.TYPE and mount -t.
	Type string
	// Size is the size of the sparse image; mkfs.xfs wants at least
	// 300 MiB.
	Size int64
	// Mkfs are the options given to mkfs.
	Mkfs []string
}

// Ext4 is an ext4 file system with 4 KiB blocks (no reflinks).
var Ext4 = FS{Type: "ext4", Size: 128 << 20, Mkfs: []string{"-F", "-q", "-b", "4096", "-E", "nodiscard"}}

// XFSReflink is an XFS file system with 4 KiB blocks and reflinks, where
// FICLONERANGE works.
var XFSReflink = FS{Type: "xfs", Size: 512 << 20, Mkfs: []string{"-f", "-q", "-K", "-b", "size=4096", "-m", "reflink=1"}}

// Mount makes fs in a sparse image in a temporary directory and mounts it
// through a loop device. It returns the mount point, or "" and why it
// could not (not root, a tool or the kernel's support missing). The file
// system is unmounted, lazily if it is busy, and its loop device detached
// when the test ends.
func Mount(t testing.TB, fs FS) (mnt, whyNot string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return "", "needs root to mount a " + fs.Type + " image"
	}
	mkfs, err := exec.LookPath("mkfs." + fs.Type)
	if err != nil {
		return "", "needs mkfs." + fs.Type + " to test on " + fs.Type + ": " + err.Error()
	}
	for _, tool := range []string{"mount", "umount", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", "needs " + tool + ": " + err.Error()
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, fs.Type+".img")
	if err := sparseFile(img, fs.Size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, append(fs.Mkfs, img)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.%s: %v: %s", fs.Type, err, out)
	}
	mnt = filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", fs.Type, "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		return "", "cannot mount a " + fs.Type + " image: " + err.Error() + ": " + strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s; unmounting lazily", mnt, err, out)
			if out, err := exec.Command("umount", "-l", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount -l %s: %v: %s", mnt, err, out)
			}
		}
		// mount -o loop detaches its device on unmount; detach whatever is
		// still attached to the image.
		out, err := exec.Command("losetup", "--noheadings", "--output", "NAME", "--associated", img).Output()
		if err != nil {
			t.Errorf("losetup --associated %s: %v", img, err)
			return
		}
		for _, dev := range strings.Fields(string(out)) {
			if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
				t.Logf("losetup --detach %s: %v: %s", dev, err, out)
			}
		}
	})
	return mnt, ""
}

// Loop attaches img, a sparse file of size bytes it creates, to a free
// loop device with the given logical sector size and returns the device,
// or "" and why it could not. The device is detached when the test ends.
func Loop(t testing.TB, img string, size int64, sectorSize int) (dev, whyNot string) {
	t.Helper()
	const reason = "needs root and losetup to create a loop device"
	if os.Geteuid() != 0 {
		return "", reason
	}
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		return "", reason + ": " + err.Error()
	}
	if err := sparseFile(img, size); err != nil {
		t.Fatal(err)
	}
	args := []string{"--find", "--show"}
	if sectorSize != 512 {
		args = append(args, "--sector-size", strconv.Itoa(sectorSize))
	}
	out, err := exec.Command(losetup, append(args, img)...).CombinedOutput()
	if err != nil {
		return "", reason + ": losetup " + strings.Join(args, " ") + ": " + err.Error() + ": " + strings.TrimSpace(string(out))
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev, ""
}

func sparseFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
