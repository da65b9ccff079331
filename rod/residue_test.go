package rod

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// CSCD descriptor IDs of padList: disk A has 512-byte blocks, disk B
// 4096-byte blocks; the P variants name the same disk with the PAD bit
// set.
const (
	cscdA uint16 = iota
	cscdB
	cscdAP
	cscdBP
)

// padList is a held LID1 list whose CSCDs are A, B, A with PAD and B
// with PAD, for a rig of two disks.
func (r *rig) padList(segs ...Segment) *Params {
	a, b := r.cscd(0), r.cscd(1)
	return &Params{ListID: 1, CSCDs: []CSCD{a, b, padded(a), padded(b)}, Segments: segs}
}

func withCAT(s Segment) Segment { s.CAT = true; return s }

func withDC(s Segment) Segment { s.DC = true; return s }

// zeroModel makes n bytes at off of disk d's model zero.
func (r *rig) zeroModel(d int, off, n int64) { clear(r.disks[d].model[off : off+n]) }

// TestCopyPadCat runs each combination of the CAT bit and the PAD bits of
// the source and destination CSCD descriptors (SPC-4 5.17.7.2, table 116)
// over block to block segments between logical units of 512 and 4096 byte
// blocks: the data written where the rules put it, zeroes where they pad,
// UNEXPECTED INEXACT SEGMENT where data is left over that may be neither
// kept, padded nor discarded, and nothing else written anywhere.
func TestCopyPadCat(t *testing.T) {
	const A, B = 0, 1 // disk indexes
	a := func(lba int64) int64 { return lba * 512 }
	b := func(lba int64) int64 { return lba * 4096 }
	cases := []struct {
		name  string
		segs  []Segment
		model func(r *rig)
		// failed is the segment that ends the copy with UNEXPECTED
		// INEXACT SEGMENT, -1 for none.
		failed int
		bytes  uint64
	}{{
		name:   "less than a destination block, no PAD, no CAT",
		segs:   []Segment{b2b(cscdA, cscdB, 1, 3, 2)},
		failed: 0,
	}, {
		name: "less than a destination block, PAD on the destination: padded with zeroes",
		segs: []Segment{b2b(cscdA, cscdBP, 1, 3, 2)},
		model: func(r *rig) {
			r.copyModel(A, a(3), B, b(2), 512)
			r.zeroModel(B, b(2)+512, 4096-512)
		},
		failed: -1, bytes: 4096,
	}, {
		name: "less than a destination block, PAD on both: padded with zeroes",
		segs: []Segment{b2b(cscdAP, cscdBP, 1, 3, 2)},
		model: func(r *rig) {
			r.copyModel(A, a(3), B, b(2), 512)
			r.zeroModel(B, b(2)+512, 4096-512)
		},
		failed: -1,
		bytes:  4096,
	}, {
		name:   "less than a destination block, PAD on the source: discarded",
		segs:   []Segment{b2b(cscdAP, cscdB, 1, 3, 2)},
		failed: -1,
	}, {
		name:   "CAT in the last segment: what is left over is discarded",
		segs:   []Segment{withCAT(b2b(cscdA, cscdB, 1, 3, 2))},
		failed: -1,
	}, {
		name: "CAT carries destination data into the next segment's first block",
		segs: []Segment{withCAT(b2b(cscdA, cscdB, 1, 3, 2)), b2b(cscdA, cscdB, 7, 10, 5)},
		model: func(r *rig) {
			r.copyModel(A, a(3), B, b(5), 512)
			r.copyModel(A, a(10), B, b(5)+512, 7*512)
		},
		failed: -1, bytes: 4096,
	}, {
		name: "CAT carries destination data to another destination and source",
		segs: []Segment{withCAT(b2b(cscdA, cscdB, 1, 3, 2)), b2b(cscdB, cscdA, 1, 4, 8)},
		model: func(r *rig) {
			r.copyModel(A, a(3), A, a(8), 512)
			r.copyModel(B, b(4), A, a(9), 4096)
		},
		failed: -1, bytes: 4096 + 512,
	}, {
		name: "a verify CSCD segment keeps the residue",
		segs: []Segment{withCAT(b2b(cscdA, cscdB, 1, 3, 2)), {Type: SegmentVerifyCSCD, Src: cscdB}, b2b(cscdA, cscdB, 7, 10, 5)},
		model: func(r *rig) {
			r.copyModel(A, a(3), B, b(5), 512)
			r.copyModel(A, a(10), B, b(5)+512, 7*512)
		},
		failed: -1, bytes: 4096,
	}, {
		name: "PAD on the destination pads destination data carried in",
		segs: []Segment{withCAT(b2b(cscdA, cscdB, 1, 3, 2)), b2b(cscdA, cscdBP, 2, 10, 6)},
		model: func(r *rig) {
			r.copyModel(A, a(3), B, b(6), 512)
			r.copyModel(A, a(10), B, b(6)+512, 1024)
			r.zeroModel(B, b(6)+1536, 4096-1536)
		},
		failed: -1, bytes: 4096,
	}, {
		name:   "DC: the rest of the source block, no PAD, no CAT",
		segs:   []Segment{withDC(b2b(cscdB, cscdA, 1, 1, 20))},
		failed: 0,
	}, {
		name:   "DC: PAD on the source discards the rest of the source block",
		segs:   []Segment{withDC(b2b(cscdBP, cscdA, 1, 1, 20))},
		model:  func(r *rig) { r.copyModel(B, b(1), A, a(20), 512) },
		failed: -1, bytes: 512,
	}, {
		name:   "DC: PAD on the destination keeps source data, the last segment drops it",
		segs:   []Segment{withDC(b2b(cscdB, cscdAP, 1, 1, 20))},
		model:  func(r *rig) { r.copyModel(B, b(1), A, a(20), 512) },
		failed: -1, bytes: 512,
	}, {
		name: "DC: source data kept by PAD on the destination comes first in the next segment",
		segs: []Segment{withDC(b2b(cscdB, cscdAP, 1, 1, 20)), withCAT(withDC(b2b(cscdB, cscdA, 2, 9, 30)))},
		model: func(r *rig) {
			r.copyModel(B, b(1), A, a(20), 512)
			// Enough source data was held: nothing is read from LBA 9.
			r.copyModel(B, b(1)+512, A, a(30), 1024)
		},
		failed: -1, bytes: 512 + 1024,
	}, {
		name:   "DC: source data kept by PAD on the destination, then no PAD, no CAT",
		segs:   []Segment{withDC(b2b(cscdB, cscdAP, 1, 1, 20)), withDC(b2b(cscdB, cscdA, 2, 9, 30))},
		model:  func(r *rig) { r.copyModel(B, b(1), A, a(20), 512) },
		failed: 1, bytes: 512,
	}, {
		name: "CAT: held source data goes before a byte range segment's own",
		segs: []Segment{withCAT(withDC(b2b(cscdB, cscdA, 1, 1, 20))), withCAT(b2bOffset(cscdB, cscdA, 100, 3, 7, 40, 10))},
		model: func(r *rig) {
			r.copyModel(B, b(1), A, a(20), 512)
			r.copyModel(B, b(1)+512, A, a(40)+10, 100)
		},
		failed: -1, bytes: 512 + 100,
	}, {
		name: "held source data before a byte range, PAD on the source discards the rest",
		segs: []Segment{withCAT(withDC(b2b(cscdB, cscdA, 1, 1, 20))), b2bOffset(cscdBP, cscdA, 100, 3, 7, 40, 10)},
		model: func(r *rig) {
			r.copyModel(B, b(1), A, a(20), 512)
			r.copyModel(B, b(1)+512, A, a(40)+10, 100)
		},
		failed: -1, bytes: 512 + 100,
	}, {
		// SPC-4 table 116, footnote a: the destination range of 0Ah is
		// exact, so PAD may not pad destination data left over.
		name:   "PAD on the destination of a byte range segment with destination data left over",
		segs:   []Segment{withCAT(b2b(cscdA, cscdB, 1, 3, 2)), b2bOffset(cscdA, cscdBP, 100, 5, 0, 3, 0)},
		failed: 1,
	}, {
		name:   "PAD on the destination of a DC segment with destination data left over",
		segs:   []Segment{withCAT(b2b(cscdA, cscdB, 1, 3, 2)), withDC(b2b(cscdA, cscdBP, 0, 5, 3))},
		failed: 1,
	}, {
		name:   "PAD on the source of a DC segment with destination data left over: discarded",
		segs:   []Segment{withCAT(b2b(cscdA, cscdB, 1, 3, 2)), withDC(b2b(cscdAP, cscdB, 0, 5, 3))},
		failed: -1,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, Config{}, memDisk(256, 512), memDisk(32, 4096))
			p := r.padList(c.segs...)
			_, s := r.run(p)
			done := len(c.segs)
			if c.failed >= 0 {
				requireCopyAborted(t, s, scsi.ASCUnexpectedInexactSegment, c.failed, segPtr(false, segOffset(p, c.failed)))
				done = c.failed
			} else {
				require.Nil(t, s, "%v", s)
			}
			if c.model != nil {
				c.model(r)
			}
			r.verify()
			requireProgress(t, r, 0, 1, uint32(done), c.bytes)
		})
	}
}

// TestCopyPadCatLarge carries destination data into a segment of several
// copy buffers whose end is padded: the held bytes, then the source's,
// then zeroes, with every buffer boundary in between.
func TestCopyPadCatLarge(t *testing.T) {
	for _, blocks := range []uint32{20000, 2*bufferSize/512 + 1} {
		t.Run(fmt.Sprint(blocks), func(t *testing.T) {
			r := newRig(t, Config{}, memDisk(32*mib/512, 512), memDisk(16*mib/4096, 4096))
			p := r.padList(withCAT(b2b(cscdA, cscdB, 1, 7, 1)), b2b(cscdA, cscdBP, blocks, 100, 3))
			_, s := r.run(p)
			require.Nil(t, s, "%v", s)
			n := int64(blocks) * 512
			r.copyModel(0, 7*512, 1, 3*4096, 512)
			r.copyModel(0, 100*512, 1, 3*4096+512, n)
			written := (512 + n + 4095) / 4096 * 4096
			r.zeroModel(1, 3*4096+512+n, written-512-n)
			r.verify()
			requireProgress(t, r, 0, 1, 2, uint64(written))
		})
	}
}

// TestCopyPadCatPastTheEnd: the padded block must fit on the destination.
func TestCopyPadCatPastTheEnd(t *testing.T) {
	r := newRig(t, Config{}, memDisk(256, 512), memDisk(32, 4096))
	p := r.padList(b2b(cscdA, cscdBP, 1, 0, 32))
	_, s := r.run(p)
	requireCopyAborted(t, s, scsi.ASCNoAdditionalSense, 0, segPtr(false, segOffset(p, 0)))
	requireForwarded(t, s, scsi.ForwardedFromDestination, false, scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
	r.verify()
}

// TestCopyPadCatFromROD: the PAD bit of a ROD CSCD descriptor counts too,
// and source data held from a ROD feeds the next segment. The block
// device zero ROD here has 4096-byte blocks, the destination 512.
func TestCopyPadCatFromROD(t *testing.T) {
	var zero [TokenLength]byte
	zero[0], zero[1], zero[2], zero[3] = 0xFF, 0xFF, 0x00, 0x01
	zeroROD := func(pad bool) CSCD {
		c := rodCSCD(zero, CSCDThisLU, false)
		c.BlockLength, c.PAD = 4096, pad
		return c
	}
	r := newRig(t, Config{}, memDisk(64, 512))
	p := &Params{ListID: 1, CSCDs: []CSCD{zeroROD(false), r.cscd(0), zeroROD(true)}}

	p.Segments = []Segment{withDC(b2b(0, 1, 1, 0, 5))}
	_, s := r.run(p)
	requireCopyAborted(t, s, scsi.ASCUnexpectedInexactSegment, 0, segPtr(false, segOffset(p, 0)))
	r.verify()

	p.ListID, p.Segments = 2, []Segment{withDC(b2b(2, 1, 1, 0, 5))}
	_, s = r.run(p)
	require.Nil(t, s, "%v", s)
	r.zeroModel(0, 5*512, 512)
	r.verify()

	// The held zeroes come before LU 0's own blocks 40 and 41, which
	// are not read.
	p.ListID, p.Segments = 3, []Segment{withCAT(withDC(b2b(0, 1, 1, 0, 6))), withCAT(withDC(b2b(1, 1, 2, 40, 20)))}
	_, s = r.run(p)
	require.Nil(t, s, "%v", s)
	r.zeroModel(0, 6*512, 512)
	r.zeroModel(0, 20*512, 1024)
	r.verify()
	requireProgress(t, r, 0, 3, 2, 512+1024)
}
