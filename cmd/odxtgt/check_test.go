package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/config"
)

// checkOne runs odxtgt check on a configuration with one backstore mapped
// at LUN 0 and returns its exit code and stderr.
func checkOne(t *testing.T, backstoreYAML string) (int, string) {
	t.Helper()
	cfg := writeConfig(t, t.TempDir(), "backstores:\n  - "+backstoreYAML+"\ntargets:\n  - iqn: iqn.2025-01.io.odxtgt:t\n    portals: [127.0.0.1]\n    luns: [{lun: 0, backstore: b}]\n")
	var errb bytes.Buffer
	code := run([]string{"check", "--config", cfg}, io.Discard, &errb)
	return code, errb.String()
}

// check refuses what serve would refuse when it opens the backstores,
// with the line and key of the backstore.
func TestCheckBackstores(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.img")
	require.NoError(t, os.WriteFile(existing, make([]byte, 1<<20), 0o644))
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"read-only file missing", "{name: b, type: file, path: " + filepath.Join(dir, "missing.img") + ", size: 1MiB, readonly: true}",
			"does not exist and the backstore is read-only"},
		{"directory missing", "{name: b, type: file, path: " + filepath.Join(dir, "nodir", "x.img") + ", size: 1MiB}",
			"does not exist and cannot be created in " + filepath.Join(dir, "nodir")},
		{"not a regular file", "{name: b, type: file, path: " + dir + ", size: 1MiB}", "is not a regular file"},
		{"path through a file", "{name: b, type: file, path: " + filepath.Join(existing, "x") + ", size: 1MiB}", "not a directory"},
		{"size differs", "{name: b, type: file, path: " + existing + ", size: 2MiB}",
			"is 1048576 bytes but the configured size is 2097152 bytes"},
		{"block device missing", "{name: b, type: block, path: " + filepath.Join(dir, "sdz") + "}", "block device " + filepath.Join(dir, "sdz") + " does not exist"},
		{"not a block device", "{name: b, type: block, path: " + existing + "}", "is not a block device"},
		{"character device", "{name: b, type: block, path: /dev/null}", "is not a block device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := checkOne(t, tc.yaml)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, "line 2: backstores[0].path: backstore b: ")
			assert.Contains(t, stderr, tc.want)
		})
	}
}

// A path odxtgt may not write is refused unless the backstore is
// read-only. Root may write any file, so as root the check runs as the
// user nobody, in a child process.
func TestCheckPermission(t *testing.T) {
	dir, err := os.MkdirTemp("", "odxtgt-check-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	img := filepath.Join(dir, "ro.img")
	require.NoError(t, os.WriteFile(img, make([]byte, 1<<20), 0o444))
	check := func(readonly string) (int, string) {
		cfg := filepath.Join(dir, "c"+readonly+".yaml")
		require.NoError(t, os.WriteFile(cfg, []byte("backstores:\n  - {name: b, type: file, path: "+img+", size: 1MiB, readonly: "+readonly+
			"}\ntargets:\n  - iqn: iqn.2025-01.io.odxtgt:t\n    portals: [127.0.0.1]\n    luns: [{lun: 0, backstore: b}]\n"), 0o644))
		if os.Geteuid() != 0 {
			var errb bytes.Buffer
			return run([]string{"check", "--config", cfg}, io.Discard, &errb), errb.String()
		}
		// The test binary's own directory is root's alone: run a copy.
		self, err := os.ReadFile(os.Args[0])
		require.NoError(t, err)
		bin := filepath.Join(dir, "odxtgt.test")
		require.NoError(t, os.WriteFile(bin, self, 0o755))
		var errb bytes.Buffer
		cmd := exec.Command(bin, "check", "--config", cfg)
		cmd.Env = append(os.Environ(), "ODXTGT_TEST_MAIN=1")
		cmd.Stderr = &errb
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		err = cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), errb.String()
		}
		require.NoError(t, err, errb.String())
		return 0, errb.String()
	}
	code, stderr := check("false")
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "file "+img+" cannot be opened for reading and writing: permission denied")
	code, stderr = check("true")
	assert.Equal(t, 0, code, stderr)
}

// check creates nothing, and leaves no lock behind on the files it
// looked at.
func TestCheckChangesNothing(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "new.img")
	code, stderr := checkOne(t, "{name: b, type: file, path: "+missing+", size: 1MiB}")
	require.Equal(t, 0, code, stderr)
	_, err := os.Stat(missing)
	assert.ErrorIs(t, err, os.ErrNotExist, "check created the file serve would create")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)

	existing := filepath.Join(dir, "existing.img")
	require.NoError(t, os.WriteFile(existing, make([]byte, 1<<20), 0o644))
	code, stderr = checkOne(t, "{name: b, type: file, path: "+existing+"}")
	require.Equal(t, 0, code, stderr)
	f, err := backstore.OpenFile(existing, 1<<20, 512, backstore.FileOptions{})
	require.NoError(t, err, "no lock is left held")
	require.NoError(t, f.Close())

	code, stderr = checkOne(t, "{name: b, type: block, path: /dev/loop0, readonly: true}")
	if _, err := os.Stat("/dev/loop0"); err == nil {
		assert.Equal(t, 0, code, "a block device that exists: %s", stderr)
	}
}

// check and serve refuse a token key file that is missing, too short,
// readable by others, owned by another user (who reads it whatever its
// mode) or not a file.
func TestCheckTokenKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte{7}, n), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	good := write("good.key", 32, 0o600)
	cases := []struct{ name, path, want string }{
		{"good", good, ""},
		{"missing", filepath.Join(dir, "none.key"), "no such file"},
		{"short", write("short.key", 31, 0o600), "holds 31 bytes, at least 32"},
		{"readable by others", write("open.key", 32, 0o644), "other users could forge tokens"},
		{"a directory", dir, "is not a regular file"},
	}
	if os.Geteuid() == 0 { // only root gives a file away
		other := write("other.key", 32, 0o600)
		require.NoError(t, os.Chown(other, 65534, 65534))
		cases = append(cases, struct{ name, path, want string }{"owned by another user", other, "is owned by uid 65534"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "targets:\n  - iqn: iqn.2025-01.io.odxtgt:t\n    portals: [127.0.0.1]\ntokens:\n  key_file: " + tc.path + "\n"
			cfg := writeConfig(t, t.TempDir(), yaml)
			var errb bytes.Buffer
			code := run([]string{"check", "--config", cfg}, io.Discard, &errb)
			loaded, err := config.Load(cfg)
			require.NoError(t, err)
			r, err := build(loaded, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				require.NoError(t, r.close())
			}
			if tc.want == "" {
				assert.Equal(t, 0, code, errb.String())
				require.NoError(t, err)
				return
			}
			assert.Equal(t, 1, code)
			assert.Contains(t, errb.String(), "tokens.key_file: ")
			assert.Contains(t, errb.String(), tc.want)
			require.Error(t, err, "serve refuses it too")
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
