package rod

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// bigZeroROD is a ROD CSCD descriptor naming the block device zero token
// with the largest DISK BLOCK LENGTH there is, FFFFFFh, and PAD set.
func bigZeroROD() CSCD {
	var zero [TokenLength]byte
	zero[0], zero[1], zero[2], zero[3] = 0xFF, 0xFF, 0x00, 0x01
	c := rodCSCD(zero, CSCDThisLU, false)
	c.BlockLength, c.PAD = 0xFFFFFF, true
	return c
}

// TestReviewHeldDataBeforeLargeZeroROD: destination data held from a
// segment (CAT) and written first by a segment whose source is a zero ROD
// of 16 MiB blocks. The buffered copy put the source's part of the chunk
// at the end of the copy buffer, one whole source block before it, and
// sliced the 4 MiB buffer 16 MiB before its end: a panic.
func TestReviewHeldDataBeforeLargeZeroROD(t *testing.T) {
	r := newRig(t, Config{}, memDisk(256, 512), memDisk(32, 4096))
	p := &Params{ListID: 1, CSCDs: []CSCD{bigZeroROD(), r.cscd(0), r.cscd(1)}, Segments: []Segment{
		withCAT(b2b(1, 2, 1, 3, 2)), // 512 bytes held for the next segment
		withDC(b2b(0, 2, 1, 0, 2)),  // one 4096-byte block: those, then zeroes
	}}
	_, s := r.run(p)
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 3*512, 1, 2*4096, 512)
	r.zeroModel(1, 2*4096+512, 4096-512)
	r.verify()
	requireProgress(t, r, 0, 1, 2, 4096)
}

// TestReviewResidueBounded: a segment from a zero ROD of 16 MiB blocks
// with CAT set and one destination block (DC) processes 512 bytes of
// source data but reads a whole source block, and kept the other
// 16 MiB - 513 bytes for the next segment: per list, 255 of them at once,
// against the 8 KiB the residue is meant to stay under. It is refused,
// pointing at the DISK BLOCK LENGTH, before anything is written.
func TestReviewResidueBounded(t *testing.T) {
	r := newRig(t, Config{}, memDisk(256, 512))
	zero := bigZeroROD()
	zero.PAD = false
	p := &Params{ListID: 1, CSCDs: []CSCD{zero, r.cscd(0)}, Segments: []Segment{
		withCAT(withDC(b2b(0, 1, 1, 0, 5))),
		withCAT(b2b(1, 1, 1, 0, 6)), // the last: what is left is discarded
	}}
	_, s := r.run(p)
	requireCopyAborted(t, s, scsi.ASCInvalidFieldInParameterList, 0, segPtr(false, lid1HeaderLen+29))
	r.verify()
	requireProgress(t, r, 0, 1, 0, 0)

	// A zero ROD of 4096-byte blocks keeps what it leaves, as before.
	zero.BlockLength = 4096
	p.ListID, p.CSCDs[0] = 2, zero
	_, s = r.run(p)
	require.Nil(t, s, "%v", s)
	r.zeroModel(0, 5*512, 512)
	r.zeroModel(0, 6*512, 512)
	r.verify()
}

// TestReviewBlockSegmentLength: MAXIMUM SEGMENT LENGTH (1 GiB) held only
// for segments of type 0Ah; a block to block segment of 8193 blocks from
// a zero ROD of 128 KiB blocks writes more, and of 65535 blocks of
// FFFFFFh bytes almost 1 TiB, bounded only by the destination.
func TestReviewBlockSegmentLength(t *testing.T) {
	r := newRig(t, Config{}, memDisk(256, 512))
	zero := bigZeroROD()
	zero.BlockLength = 128 << 10
	p := &Params{ListID: 1, CSCDs: []CSCD{zero, r.cscd(0)}, Segments: []Segment{
		b2b(0, 1, 8193, 0, 0),
	}}
	_, s := r.run(p)
	requireCopyAborted(t, s, scsi.ASCInvalidFieldInParameterList, 0, segPtr(true, 10))
	r.verify()

	// 8192 such blocks are exactly 1 GiB: past this destination's end.
	p.ListID, p.Segments[0].Blocks = 2, 8192
	_, s = r.run(p)
	requireCopyAborted(t, s, scsi.ASCNoAdditionalSense, 0, segPtr(false, segOffset(p, 0)))
	r.verify()
}
