package backstore

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/internal/scratchfs"
	"golang.org/x/sys/unix"
)

// scratchFS is a file system to make and mount for a test, and what
// Files on it do.
type scratchFS struct {
	scratchfs.FS
	opts capOpts
}

var scratchFilesystems = []scratchFS{
	{scratchfs.Ext4, capOpts{copy: true, clone: supportNo, unmap: supportYes, tracksAllocation: true}},
	{scratchfs.XFSReflink, capOpts{copy: true, clone: supportYes, unmap: supportYes, tracksAllocation: true}},
}

// TestFileOnFilesystems runs the capability suites on freshly made ext4
// and XFS file systems, where the expected outcome of every capability is
// known.
func TestFileOnFilesystems(t *testing.T) {
	stores := make(map[string]newStoreFunc)
	for _, fs := range scratchFilesystems {
		mnt, whyNot := scratchfs.Mount(t, fs.FS)
		newStore := newFileStoreIn(mnt)
		if mnt != "" {
			stores[fs.Type] = newStore
		}
		t.Run(fs.Type, func(t *testing.T) {
			if mnt == "" {
				t.Skip(whyNot)
			}
			for _, bs := range []int{512, 4096} {
				t.Run(strconv.Itoa(bs), func(t *testing.T) {
					runCapabilitySuite(t, bs, newStore, fs.opts)
					runOffloadSuite(t, bs, newStore, fs.opts)
				})
			}
			t.Run("UnmapFreesBlocks", func(t *testing.T) { testUnmapFreesBlocks(t, newStore) })
			t.Run("CloneAlignment", func(t *testing.T) {
				// Both file systems have 4 KiB blocks: a 512-byte store
				// clones in 4 KiB units.
				assert.Equal(t, 4096, newStore(t, 1<<20, 512).(*File).CloneAlignment())
				assert.Equal(t, 4096, newStore(t, 1<<20, 4096).(*File).CloneAlignment())
			})
			switch fs.opts.clone {
			case supportYes:
				t.Run("CloneSharesBlocks", func(t *testing.T) { testCloneSharesBlocks(t, mnt, newStore) })
			case supportNo:
				t.Run("CloneRefused", func(t *testing.T) {
					src, dst := newStore(t, 1<<20, 4096), newStore(t, 1<<20, 4096)
					err := CloneRange(dst, 0, src, 0, 64<<10, false)
					require.ErrorIs(t, err, ErrNotSupported)
					assert.ErrorIs(t, err, syscall.EOPNOTSUPP, "the kernel's reason is kept")
				})
			}
		})
	}
	t.Run("AcrossFilesystems", func(t *testing.T) {
		ext4, xfs := stores["ext4"], stores["xfs"]
		if ext4 == nil || xfs == nil {
			t.Skip("needs both ext4 and XFS mounted")
		}
		a, b := ext4(t, 1<<20, 4096), xfs(t, 1<<20, 4096)
		assert.True(t, SameFilesystem(a, ext4(t, 1<<20, 4096)))
		assert.True(t, SameFilesystem(b, xfs(t, 1<<20, 4096)))
		testAcrossFilesystems(t, a, b)
	})
}

// testCloneSharesBlocks clones 4 MiB on a file system with reflinks and
// checks the clone took next to no space from the file system, and that
// writes to either file leave the other alone.
func testCloneSharesBlocks(t *testing.T, mnt string, newStore newStoreFunc) {
	const size = 4 << 20
	src, dst := newStore(t, size, 4096), newStore(t, size, 4096)
	data := make([]byte, size)
	fillRandom(rand.New(rand.NewPCG(81, 82)), data)
	require.NoError(t, src.WriteAt(data, 0, true))
	require.NoError(t, src.Sync())
	free := func() int64 {
		var st unix.Statfs_t
		require.NoError(t, unix.Statfs(mnt, &st))
		return int64(st.Bfree) * st.Bsize
	}
	before := free()
	require.NoError(t, CloneRange(dst, 0, src, 0, size, true))
	used := before - free()
	assert.Less(t, used, int64(size/8), "a clone of %d bytes used %d bytes of the file system", size, used)
	assertStore(t, data, dst, "the clone differs from its source")

	p := bytes.Repeat([]byte{0x5a}, 8192)
	require.NoError(t, dst.WriteAt(p, 4096, false))
	require.NoError(t, src.WriteAt(p, 1<<20, false))
	got := make([]byte, 1<<20)
	require.NoError(t, src.ReadAt(got, 0))
	assert.True(t, bytes.Equal(data[:1<<20], got), "a write to the clone changed the source")
	want := bytes.Clone(data)
	copy(want[4096:], p)
	assertStore(t, want, dst, "a write to the source changed the clone")
}
