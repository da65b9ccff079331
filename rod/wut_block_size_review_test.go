package rod

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewWUTAcrossBlockSizes: a ROD is the concatenation of the
// token's ranges (SBC-3 5.38: the data is transferred from the ROD "in
// order"), and a token may be written to a logical unit of another block
// size. tokenWrite.step never lets one destination block span two token
// ranges: a source range of 512-byte blocks that is not a multiple of the
// destination's 4096 bytes leaves avail < 4096 and the command fails with
// COPY TARGET DEVICE DATA UNDERRUN although the token holds enough data.
// Here the token holds 9+7 blocks of 512 bytes = 8192 bytes = 2 blocks of
// 4096 bytes; WRITE USING TOKEN of those 2 blocks writes 1 and fails.
func TestReviewWUTAcrossBlockSizes(t *testing.T) {
	r := newRig(t, Config{}, rvProtectedMem(4096, 512), rvProtectedMem(512, 4096))
	defer r.m.Close()
	tok := rvPopulate(t, r, r.nexus, 0, 1, &PopulateParams{Ranges: []Range{{LBA: 0, Blocks: 9, Offset: 16}, {LBA: 100, Blocks: 7, Offset: 32}}})
	want := append(append([]byte(nil), r.disks[0].model[0:9*512]...), r.disks[0].model[100*512:107*512]...)

	var blocks uint64
	wut, s := rvAsync(r, r.nexus, 1, 2, 0x11, func(ctx context.Context, l *List, req Request) *scsi.Sense {
		defer func() { blocks = l.blocks.Load() }()
		return r.m.WriteUsingToken(ctx, l, req, &WUTParams{Token: tok, Ranges: []Range{{LBA: 10, Blocks: 2, Offset: 536}}})
	})
	require.Nil(t, s)
	s, ok := rvWait(wut, 5*time.Second)
	require.True(t, ok)
	require.Nil(t, s, "the token holds 8192 bytes, 2 destination blocks; WRITE USING TOKEN wrote %d and failed: %v", blocks, s)
	got := make([]byte, 2*4096)
	require.NoError(t, r.disks[1].store.ReadAt(got, 10*4096))
	require.Equal(t, want, got)
}
