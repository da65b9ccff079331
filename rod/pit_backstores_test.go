package rod

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/internal/scratchfs"
)

// TestPointInTimeOnEveryBackstore proves PIT-1 on each kind of backstore
// with the path it takes: on XFS with reflinks the snapshot is a clone
// (a later write preserves nothing), on ext4, a block device and memory
// a write to the source first preserves the old data (copy-on-write).
// Either way WRITE USING TOKEN copies the data of the moment of POPULATE
// TOKEN.
func TestPointInTimeOnEveryBackstore(t *testing.T) {
	const size = 16 << 20
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (store backstore.Store, snapDir string)
		cow  bool
	}{
		{"memory", func(t *testing.T) (backstore.Store, string) { return backstore.NewMemory(size, 4096), "" }, true},
		{"file on ext4", func(t *testing.T) (backstore.Store, string) { return mountedFile(t, scratchfs.Ext4, size) }, true},
		{"file on XFS with reflinks", func(t *testing.T) (backstore.Store, string) { return mountedFile(t, scratchfs.XFSReflink, size) }, false},
		{"block device", func(t *testing.T) (backstore.Store, string) {
			dev, whyNot := scratchfs.Loop(t, filepath.Join(t.TempDir(), "disk.img"), size, 4096)
			if dev == "" {
				t.Skip(whyNot)
			}
			b, err := backstore.OpenBlock(dev, backstore.BlockOptions{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close() })
			return b, t.TempDir()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, dir := tc.open(t)
			r := newPersistRig(t, store, dir, nil)
			r.write(0, pattern(2048*4096, 5))
			old := r.read(100, 300)
			tok := r.populate(&PopulateParams{Ranges: ranges(100, 300)})
			used := r.m.SnapshotSpaceUsed()
			r.write(150, bytes.Repeat([]byte{0xEE}, 100*4096)) // inside the token's range
			if tc.cow {
				assert.Greater(t, r.m.SnapshotSpaceUsed(), used, "the write preserved the old data first")
			} else {
				assert.Equal(t, used, r.m.SnapshotSpaceUsed(), "a clone needs no copy-on-write")
			}
			require.Nil(t, r.wut(&WUTParams{Token: tok, Ranges: ranges(1000, 300)}))
			assert.Equal(t, old, r.read(1000, 300), "the data of the moment of POPULATE TOKEN")
			r.m.Close()
			assert.Zero(t, r.m.SnapshotSpaceUsed())
		})
	}
}

// mountedFile is a file store on a fresh file system of kind fs, with its
// snapshot directory beside it.
func mountedFile(t *testing.T, fs scratchfs.FS, size int64) (backstore.Store, string) {
	mnt, whyNot := scratchfs.Mount(t, fs)
	if mnt == "" {
		t.Skip(whyNot)
	}
	f, err := backstore.OpenFile(filepath.Join(mnt, "disk.img"), size, 4096, backstore.FileOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	dir := filepath.Join(mnt, ".odxtgt-snapshots")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	return f, dir
}
