package backstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fileCapabilities is what a File in the test's temporary directory does:
// clones and deallocation depend on the file system found there.
var fileCapabilities = capOpts{copy: true, clone: supportMaybe, unmap: supportMaybe, tracksAllocation: true}

func TestFileCapabilities(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		t.Run(strconv.Itoa(bs), func(t *testing.T) {
			runCapabilitySuite(t, bs, newFileStore, fileCapabilities)
			runOffloadSuite(t, bs, newFileStore, fileCapabilities)
		})
	}
}

// newFileStoreIn returns a newStoreFunc making files in dir, each removed
// when its test ends.
func newFileStoreIn(dir string) newStoreFunc {
	var seq atomic.Int64
	return func(t *testing.T, size int64, blockSize int) Store {
		path := filepath.Join(dir, fmt.Sprintf("lun-%d.img", seq.Add(1)))
		s, err := OpenFile(path, size, blockSize, FileOptions{})
		require.NoError(t, err)
		t.Cleanup(func() {
			_ = s.Close()
			_ = os.Remove(path)
		})
		return s
	}
}

// allocatedBytes returns the space allocated to the file at path.
func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// testUnmapFreesBlocks checks Unmap gives a file's blocks back to the file
// system.
func testUnmapFreesBlocks(t *testing.T, newStore newStoreFunc) {
	s := newStore(t, suiteSize, 4096).(*File)
	model := fillStore(t, s, 51)
	before := allocatedBytes(t, s.Path())
	require.GreaterOrEqual(t, before, int64(suiteSize), "a written file is allocated")

	const off, n = 256 << 10, 512 << 10
	err := s.Unmap(off, n)
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("the file system cannot punch holes: %v", err)
	}
	require.NoError(t, err)
	after := allocatedBytes(t, s.Path())
	assert.LessOrEqual(t, after, before-n+64<<10, "Unmap of %d bytes freed only %d", n, before-after)
	clear(model[off : off+n])
	assertStore(t, model, s, "store differs from model")
	mapped, end, err := s.Allocated(off)
	require.NoError(t, err)
	assert.False(t, mapped)
	assert.Equal(t, int64(off+n), end)
}

func TestFileUnmapFreesBlocks(t *testing.T) {
	testUnmapFreesBlocks(t, newFileStore)
}

// TestFileZeroFallbacks forces each fallback WriteZeroes has when the file
// system refuses a fallocate mode.
func TestFileZeroFallbacks(t *testing.T) {
	tests := []struct {
		name                     string
		noZeroRange, noPunchHole bool
	}{
		{"punching holes", true, false},
		{"writing zeroes", true, true},
		{"zero range without punching holes", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFileStore(t, suiteSize, 4096).(*File)
			s.noZeroRange.Store(tt.noZeroRange)
			s.noPunchHole.Store(tt.noPunchHole)
			testZeroRanges(t, s, func(s Store, off, n int64, fua bool) error { return WriteZeroes(s, off, n, fua) })

			model := fillStore(t, s, 61)
			err := s.Unmap(0, 4096)
			if tt.noPunchHole {
				require.ErrorIs(t, err, ErrNotSupported)
				assertStore(t, model, s, "an unsupported Unmap changed the store")
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// TestFileAllocatedRounds checks Allocated reports store blocks when the
// file system's blocks are larger: a store block partly written is mapped,
// and the extents end on store block boundaries.
func TestFileAllocatedRounds(t *testing.T) {
	s := newFileStore(t, suiteSize, 512).(*File)
	require.NoError(t, s.WriteAt([]byte{1}, 64<<10+700, false))
	ext := extents(t, s)
	require.Len(t, ext, 3)
	assert.False(t, ext[0].mapped)
	assert.True(t, ext[1].mapped)
	assert.LessOrEqual(t, ext[1].off, int64(64<<10+512), "the written block is mapped")
	assert.GreaterOrEqual(t, ext[1].end, int64(64<<10+1024))
}

// TestSameFilesystem checks SameFilesystem and that copies and clones
// between file systems are refused; the second file system is /dev/shm.
func TestSameFilesystem(t *testing.T) {
	a := newFileStore(t, 1<<20, 4096)
	b := newFileStore(t, 1<<20, 4096)
	m := NewMemory(1<<20, 4096)
	assert.True(t, SameFilesystem(a, b))
	assert.True(t, SameFilesystem(a, a))
	assert.True(t, SameFilesystem(NewFault(a), NewFault(NewFault(b))), "Faults are looked through")
	assert.False(t, SameFilesystem(a, m))
	assert.False(t, SameFilesystem(m, a))
	assert.False(t, SameFilesystem(m, m))

	shm, err := os.MkdirTemp("/dev/shm", "backstore-test-")
	if err != nil {
		t.Skipf("needs /dev/shm for a second file system: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(shm) })
	other := newFileStoreIn(shm)(t, 1<<20, 4096)
	if SameFilesystem(a, other) {
		t.Skip("the temporary directory is on /dev/shm's file system")
	}
	testAcrossFilesystems(t, a, other)
}

// testAcrossFilesystems checks copies and clones between files on two file
// systems are refused as unsupported, with the kernel's EXDEV reachable.
func testAcrossFilesystems(t *testing.T, a, b Store) {
	require.False(t, SameFilesystem(a, b))
	aModel, bModel := fillStore(t, a, 71), fillStore(t, b, 72)
	for _, do := range []offloadFunc{CopyRange, CloneRange} {
		for _, pair := range [][2]Store{{a, b}, {b, a}} {
			err := do(pair[0], 0, pair[1], 0, 64<<10, true)
			require.ErrorIs(t, err, ErrNotSupported)
			require.ErrorIs(t, err, syscall.EXDEV)
		}
	}
	assertStore(t, aModel, a, "a refused copy changed a store")
	assertStore(t, bModel, b, "a refused copy changed a store")
}
