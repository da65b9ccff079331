package rod

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewWUTOffsetIntoRODWraps: BLOCK OFFSET INTO ROD is eight bytes.
// Of an access upon reference token written onto its own source, the
// offset was multiplied by the block size before it was checked, to find
// what the command reads of the source; an offset of 2^55 - 1 blocks of
// 512 bytes came to -512 bytes, so the command froze a part of the source
// before the ROD and ended with whatever that did, not with the COPY
// TARGET DEVICE DATA UNDERRUN of an offset past the ROD's end.
func TestReviewWUTOffsetIntoRODWraps(t *testing.T) {
	for _, off := range []uint64{1<<55 - 1, 1<<55 - 2, 1 << 55, 1<<63 + 5} {
		r := newODXRig(t, TokenConfig{}, 1<<12, 8)
		tok, s := r.populate(0, &PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 1<<10)})
		require.Nil(t, s)
		_, s = r.wut(r.nexus, 0, &WUTParams{Token: tok, OffsetIntoROD: off, Ranges: ranges(0, 1<<10)})
		requireSense(t, s, scsi.IllegalRequest, scsi.ASCCopyTargetDeviceDataUnderrun, nil)
		require.Zero(t, s.Information, "offset %d: nothing written", off)
		require.Zero(t, r.m.SnapshotSpaceUsed())
	}
}
