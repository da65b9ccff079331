package backstore

import (
	"errors"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// blockCapabilities is what a Block on a loop device does: whether it can
// deallocate depends on the loop driver and its backing file.
var blockCapabilities = capOpts{copy: false, clone: supportNo, unmap: supportMaybe, tracksAllocation: false}

func TestBlockCapabilities(t *testing.T) {
	tests := []struct {
		name       string
		sectorSize int
		opts       BlockOptions
		blockSize  int
	}{
		{"512", 512, BlockOptions{}, 512},
		{"512 direct", 512, BlockOptions{Direct: true}, 512},
		{"4096 direct", 4096, BlockOptions{Direct: true}, 4096},
		{"4096 on a 512 device, direct", 512, BlockOptions{Direct: true, BlockSize: 4096}, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newStore := func(t *testing.T, size int64, blockSize int) Store {
				s, _ := openLoopStore(t, size, tt.sectorSize, tt.opts)
				return s
			}
			runCapabilitySuite(t, tt.blockSize, newStore, blockCapabilities)
			runOffloadSuite(t, tt.blockSize, newStore, blockCapabilities)
		})
	}
}

// TestBlockUnmapDeallocates checks Unmap on a loop device reaches its
// backing file as a punched hole: the kernel sent WRITE ZEROES allowing
// deallocation.
func TestBlockUnmapDeallocates(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run("direct "+strconv.FormatBool(direct), func(t *testing.T) {
			s, img := openLoopStore(t, suiteSize, 512, BlockOptions{Direct: direct})
			model := fillStore(t, s, 91)
			before := allocatedBytes(t, img)
			require.GreaterOrEqual(t, before, int64(suiteSize))

			const off, n = 256 << 10, 512 << 10
			err := s.Unmap(off, n)
			if errors.Is(err, ErrNotSupported) {
				t.Skipf("the loop device cannot deallocate: %v", err)
			}
			require.NoError(t, err)
			require.NoError(t, s.Sync())
			after := allocatedBytes(t, img)
			assert.LessOrEqual(t, after, before-n+64<<10, "Unmap of %d bytes freed only %d of the backing file", n, before-after)
			clear(model[off : off+n])
			assertStore(t, model, s, "store differs from model")
		})
	}
}

// TestBlockZeroFallback forces the zero writes used where the kernel lacks
// BLKZEROOUT.
func TestBlockZeroFallback(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run("direct "+strconv.FormatBool(direct), func(t *testing.T) {
			s, _ := openLoopStore(t, suiteSize, 512, BlockOptions{Direct: direct})
			s.noZeroOut.Store(true)
			testZeroRanges(t, s, func(s Store, off, n int64, fua bool) error { return WriteZeroes(s, off, n, fua) })
		})
	}
}

func TestBlockCapabilitiesReadOnly(t *testing.T) {
	s, _ := openLoopStore(t, 1<<20, 512, BlockOptions{ReadOnly: true})
	assert.ErrorIs(t, s.WriteZeroes(0, 512, false), ErrReadOnly)
	assert.ErrorIs(t, s.WriteZeroes(0, 512, true), ErrReadOnly)
	assert.ErrorIs(t, s.Unmap(0, 512), ErrReadOnly)
	mapped, end, err := s.Allocated(0)
	require.NoError(t, err)
	assert.True(t, mapped)
	assert.Equal(t, s.Size(), end)
}
