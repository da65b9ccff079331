package rod

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewZeroRODLargeBlockLength: the DISK BLOCK LENGTH of a ROD CSCD
// descriptor naming the block device zero token is the peer's to choose,
// up to FFFFFFh. A segment with byte offsets from such a ROD goes the
// buffered way, which read whole "blocks" of the zero ROD into the 4 MiB
// copy buffer: one block of 16 MiB, or 65 of 64 KiB, sliced the buffer
// past its end and panicked.
func TestReviewZeroRODLargeBlockLength(t *testing.T) {
	var zero [TokenLength]byte
	zero[0], zero[1], zero[2], zero[3] = 0xFF, 0xFF, 0x00, 0x01
	for _, bl := range []uint32{0xFFFFFF, 0x10000, 3} {
		r := newODXRig(t, TokenConfig{}, 1024, 1<<14)
		c := rodCSCD(zero, CSCDThisLU, false)
		c.BlockLength = bl
		before := r.read(1, 0, 1<<14)
		// One byte, then 4 MiB from inside a block of the ROD, to bytes
		// 5..: the blocks around them keep their data.
		_, s := r.xcopy(1, &Params{CSCDs: []CSCD{c, r.lu(1)}, Segments: []Segment{
			b2bOffset(0, 1, 1, 7, uint16(min(bl-1, 100)), 0, 5),
			b2bOffset(0, 1, 4<<20, 1, 1, 10, 5),
		}})
		require.Nil(t, s, "block length %d: %v", bl, s)
		want := bytes.Clone(before)
		want[5] = 0
		clear(want[10*512+5 : 10*512+5+4<<20])
		assert.True(t, bytes.Equal(want, r.read(1, 0, 1<<14)), "block length %d: zeroes where the segments say, nothing else", bl)
	}
}
