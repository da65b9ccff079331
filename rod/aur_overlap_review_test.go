package rod

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewAccessUponReferenceOntoItsSource: an access upon reference
// token reads its source when the copy reads it. A segment from such a
// ROD onto an overlapping part of its own source was not treated as an
// overlapping copy: the buffered copy reads the next chunk while it
// writes the previous one, and a destination more than a chunk above the
// source had chunks read after the copy had overwritten them.
func TestReviewAccessUponReferenceOntoItsSource(t *testing.T) {
	for _, gap := range []uint64{1024, 10240} { // 512 KiB, 5 MiB
		r := newODXRig(t, TokenConfig{}, 1<<16, 8)
		old := r.read(0, 0, 1<<15)
		tok, s := r.populate(0, &PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 1<<15)})
		require.Nil(t, s)
		// 16 MiB from the ROD's start to gap blocks and a byte above its
		// source.
		_, s = r.xcopy(1, &Params{CSCDs: []CSCD{rodCSCD(tok, CSCDThisLU, false), r.lu(0)},
			Segments: []Segment{b2bOffset(0, 1, 16<<20, 0, 0, gap, 1)}})
		require.Nil(t, s, "%v", s)
		got := r.read(0, gap, 1<<15+1)
		assert.True(t, bytes.Equal(old, got[1:1+len(old)]), "%d blocks above: as if the source had been read whole before it was written (SPC-4 6.4.6.5)", gap)
	}
}

// TestReviewAccessUponReferenceWUTOntoItsSource: WRITE USING TOKEN of an
// access upon reference token onto an overlapping part of its own source
// writes the source as it was when the command began (review: the
// ascending chunks read what the command had already overwritten).
func TestReviewAccessUponReferenceWUTOntoItsSource(t *testing.T) {
	for _, gap := range []uint64{1024, 10240} { // 512 KiB, 5 MiB
		r := newODXRig(t, TokenConfig{}, 1<<16, 8)
		old := r.read(0, 0, 1<<15)
		tok, s := r.populate(0, &PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 1<<15)})
		require.Nil(t, s)
		_, s = r.wut(r.nexus, 0, &WUTParams{Token: tok, Ranges: ranges(gap, 1<<15)})
		require.Nil(t, s, "%v", s)
		assert.True(t, bytes.Equal(old, r.read(0, gap, 1<<15)), "%d blocks above: the source as it was", gap)
		assert.Zero(t, r.m.SnapshotSpaceUsed(), "the command's snapshot is gone")
	}
}

// TestReviewFrozenCopyOutOfSpaceKeepsToken: when the command's own
// snapshot of an access upon reference token's source runs out of space,
// WRITE USING TOKEN ends with INSUFFICIENT RESOURCES, not TOKEN REVOKED:
// the token is as good as before, and a later write of it works (review:
// the host was told to throw a good token away).
func TestReviewFrozenCopyOutOfSpaceKeepsToken(t *testing.T) {
	r := newODXRig(t, TokenConfig{SnapshotSpace: 8192}, 1<<16, 1<<16)
	tok, s := r.populate(0, &PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 1<<14)})
	require.Nil(t, s)
	_, s = r.wut(r.nexus, 0, &WUTParams{Token: tok, Ranges: ranges(1024, 1<<14)})
	wantSense(t, s, scsi.IllegalRequest, ascInsufficientResources)
	assert.Zero(t, r.m.SnapshotSpaceUsed())
	_, s = r.wut(r.nexus, 1, &WUTParams{Token: tok, Ranges: ranges(0, 1<<14)})
	require.Nil(t, s, "%v", s)
	assert.Equal(t, r.read(0, 0, 1<<14), r.read(1, 0, 1<<14))
}
