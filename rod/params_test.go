package rod

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// layout is where the header fields of one parameter list format lie
// (SPC-4 table 104 for LID1, table 111 for LID4).
type layout struct {
	lid4      bool
	hdr       int
	listIDAt  int
	cscdLenAt int
	segLenAt  int
	inlineAt  int
}

var layouts = []layout{
	{lid4: false, hdr: 16, listIDAt: 0, cscdLenAt: 2, segLenAt: 8, inlineAt: 12},
	{lid4: true, hdr: 48, listIDAt: 20, cscdLenAt: 42, segLenAt: 44, inlineAt: 46},
}

func (l layout) name() string {
	if l.lid4 {
		return "LID4"
	}
	return "LID1"
}

// putLen writes a header length field: four bytes in LID1 for the segment
// and inline lengths, two otherwise.
func (l layout) putLen(b []byte, at, v int) {
	if !l.lid4 && at != l.cscdLenAt {
		binary.BigEndian.PutUint32(b[at:], uint32(v))
		return
	}
	binary.BigEndian.PutUint16(b[at:], uint16(v))
}

// goodParams are the valid lists of the table test, keyed by name.
func goodParams(lid4 bool) map[string]*Params {
	serial := "600140512345678"
	one := naaCSCD(serial, 512)
	id := uint32(7)
	if lid4 {
		id = 0x12345678
	}
	many := func(n int) []CSCD {
		cs := make([]CSCD, n)
		for i := range cs {
			cs[i] = naaCSCD(fmt.Sprintf("%x", 0x1000+i), uint32(512<<(i%4)))
		}
		return cs
	}
	segs := make([]Segment, MaxSegments)
	for i := range segs {
		segs[i] = b2b(0, 0, uint32(i), uint64(i)*3, uint64(i)*5+1)
	}
	return map[string]*Params{
		"02h": {LID4: lid4, ListID: id, Usage: UsageHold, Priority: 1, CSCDs: []CSCD{one},
			Segments: []Segment{{Type: SegmentBlockToBlock, DC: true, CAT: true, Src: 0, Dst: 0, Blocks: 0xFFFF, SrcLBA: 1 << 40, DstLBA: 0xFFFFFFFFFFFFFFFF}}},
		"0Ah": {LID4: lid4, ListID: id, Usage: UsageDiscard, Priority: 7, Immed: lid4, CSCDs: []CSCD{one, padded(naaCSCD("abc", 4096))},
			Segments: []Segment{b2bOffset(0, 1, 0xFFFFFFFF, 9, 511, 0xFFFF, 0xFFFF), {Type: SegmentBlockToBlockOffset, CAT: true, Src: CSCDThisLU, Dst: 1}}},
		"07h": {LID4: lid4, Usage: UsageNone, CSCDs: []CSCD{one},
			Segments: []Segment{{Type: SegmentVerifyCSCD, Src: 0, TUR: true}, {Type: SegmentVerifyCSCD, Src: CSCDThisLU}}},
		"64 CSCDs": {LID4: lid4, ListID: id, CSCDs: many(MaxCSCDs), Segments: []Segment{b2b(63, 0, 1, 2, 3)}},
		"ROD CSCDs": {LID4: lid4, ListID: id, CSCDs: []CSCD{
			rodCSCD([TokenLength]byte(pattern(TokenLength, 3)), CSCDTokenLU, true), one, padded(rodCSCD([TokenLength]byte{}, 0x07FF, false))},
			Segments: []Segment{b2b(0, 1, 8, 0, 0), b2b(2, CSCDTokenLU, 1, 1, 1)}},
		"256 segments": {LID4: lid4, ListID: id, CSCDs: []CSCD{one}, Segments: segs},
		"no segments":  {LID4: lid4, ListID: id, CSCDs: []CSCD{one}},
		"odd CSCDs": {LID4: lid4, ListID: id, CSCDs: []CSCD{
			{LUIDType: 1, NUL: true, DeviceType: 0x05, Designator: scsi.Designator{CodeSet: scsi.CodeSetASCII, Association: scsi.AssocTargetPort, Type: scsi.DesignatorSCSIName, Value: []byte("01234567890123456789")}},
			{Designator: scsi.Designator{CodeSet: scsi.CodeSetBinary, Type: scsi.DesignatorLUGroup}},
		}, Segments: []Segment{b2b(1, 0, 1, 2, 3)}},
	}
}

// withOffsets returns p with the offsets the canonical layout gives.
func withOffsets(p *Params) *Params {
	q := *p
	off := lid1HeaderLen
	if p.LID4 {
		off = lid4HeaderLen
	}
	q.CSCDs = append([]CSCD(nil), p.CSCDs...)
	for i := range q.CSCDs {
		q.CSCDs[i].Offset = off
		if q.CSCDs[i].DeviceType != 0 {
			q.CSCDs[i].BlockLength = 0
		}
		if len(q.CSCDs[i].Designator.Value) == 0 {
			q.CSCDs[i].Designator.Value = nil
		}
		off += cscdLen
	}
	q.Segments = append([]Segment(nil), p.Segments...)
	for i := range q.Segments {
		q.Segments[i].Offset = off
		off += 4 + segmentLength[q.Segments[i].Type]
	}
	return &q
}

func TestParseParamsGood(t *testing.T) {
	for _, lay := range layouts {
		for name, p := range goodParams(lay.lid4) {
			t.Run(lay.name()+"/"+name, func(t *testing.T) {
				data := encodeParams(p)
				got, s := ParseParams(data, lay.lid4)
				require.Nil(t, s, "%v", s)
				require.Equal(t, withOffsets(p), got)
				// Nothing of the result aliases the data-out buffer.
				for i := range data {
					data[i] ^= 0xFF
				}
				require.Equal(t, withOffsets(p), got)
			})
		}
	}
}

// TestParseParamsIgnoresReserved sets the bits a copy manager ignores
// (STR, reserved bytes, G_SENSE, the header CSCD type code, the relative
// initiator port identifier, the reserved bits around PAD) without
// changing the result.
func TestParseParamsIgnoresReserved(t *testing.T) {
	for _, lay := range layouts {
		p := goodParams(lay.lid4)["02h"]
		data := encodeParams(p)
		data[1] |= 0x20 // STR
		if lay.lid4 {
			data[15] |= 0x02 // G_SENSE
			data[16] = 0xFF  // HEADER CSCD DESCRIPTOR TYPE CODE
		}
		data[lay.hdr+2], data[lay.hdr+3] = 0x12, 0x34 // RELATIVE INITIATOR PORT IDENTIFIER
		data[lay.hdr+28] = 0xFB                       // all but PAD (SPC-4 table 136)
		got, s := ParseParams(data, lay.lid4)
		require.Nil(t, s, "%s: %v", lay.name(), s)
		require.Equal(t, withOffsets(p), got, lay.name())
		// PAD itself is read.
		data[lay.hdr+28] = 0x04
		got, s = ParseParams(data, lay.lid4)
		require.Nil(t, s, "%s: %v", lay.name(), s)
		require.True(t, got.CSCDs[0].PAD, lay.name())
	}
}

// paramError is one bad parameter list and the sense data it must get.
type paramError struct {
	name string
	only string // "LID1" or "LID4" when the case is for one format
	// build returns the bad list, from the layout and a good list with
	// two CSCDs and two 02h segments.
	build func(l layout, good []byte) []byte
	key   scsi.SenseKey
	code  scsi.ASC
	sks   func(l layout) []byte
}

// Parts of the good list the error cases start from: two CSCDs, then two
// 02h segments of 28 bytes each.
const (
	errCSCDs   = 2
	errSegLen  = 28
	errSegs    = 2
	errListLen = errCSCDs*cscdLen + errSegs*errSegLen
)

func errBase(lid4 bool) []byte {
	return encodeParams(&Params{LID4: lid4, ListID: 5, CSCDs: []CSCD{naaCSCD("1", 0), naaCSCD("2", 0)},
		Segments: []Segment{b2b(0, 1, 1, 0, 0), b2b(1, 0, 2, 3, 4)}})
}

func none(layout) []byte { return noSKS }

// rodBase turns the second CSCD of the good list b into a ROD CSCD
// descriptor with its 512-byte token at the start of the inline data.
func rodBase(l layout, b []byte) []byte {
	d := b[l.hdr+cscdLen : l.hdr+2*cscdLen]
	clear(d)
	d[0] = CSCDROD
	binary.BigEndian.PutUint16(d[rodCSCDProducer:], CSCDThisLU)
	l.putLen(b, l.inlineAt, TokenLength)
	return append(b, make([]byte, TokenLength)...)
}

func at(off, bit int) func(layout) []byte {
	return func(layout) []byte { return fieldPtr(off, bit) }
}

var (
	plle            = scsi.ASCParameterListLengthError
	invalidParamFld = scsi.ASCInvalidFieldInParameterList
)

var paramErrors = []paramError{
	{name: "empty", build: func(l layout, b []byte) []byte { return b[:0] }, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "header too short", build: func(l layout, b []byte) []byte { return b[:l.hdr-1] }, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "header only, lengths beyond it", build: func(l layout, b []byte) []byte { return b[:l.hdr] }, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "format 00h", only: "LID4", build: func(l layout, b []byte) []byte { b[0] = 0x00; return b }, key: scsi.IllegalRequest, code: invalidParamFld, sks: at(0, -1)},
	{name: "format 02h", only: "LID4", build: func(l layout, b []byte) []byte { b[0] = 0x02; return b }, key: scsi.IllegalRequest, code: invalidParamFld, sks: at(0, -1)},
	{name: "header CSCD list length", only: "LID4", build: func(l layout, b []byte) []byte {
		binary.BigEndian.PutUint16(b[2:], 0x20)
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: at(2, -1)},
	{name: "LIST ID USAGE 01b", build: func(l layout, b []byte) []byte { b[1] |= 0x08; return b }, key: scsi.IllegalRequest, code: invalidParamFld, sks: at(1, 4)},
	{name: "LIST ID USAGE 11b with a list identifier", build: func(l layout, b []byte) []byte { b[1] |= 0x18; return b },
		key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.listIDAt, -1) }},
	// Not INLINE DATA LENGTH EXCEEDED: see ParseParams.
	{name: "inline data over the limit", build: func(l layout, b []byte) []byte {
		l.putLen(b, l.inlineAt, InlineDataLimit+1)
		return append(b, make([]byte, InlineDataLimit+1)...)
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "inline data shorter than its length", build: func(l layout, b []byte) []byte {
		l.putLen(b, l.inlineAt, 4)
		return append(b, 1, 2, 3)
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	// The second CSCD made a ROD CSCD descriptor whose token is the
	// 512 bytes of inline data at ROD TOKEN OFFSET zero.
	{name: "ROD CSCD with ROD type 00800000h", build: func(l layout, b []byte) []byte {
		b = rodBase(l, b)
		binary.BigEndian.PutUint32(b[l.hdr+cscdLen+rodCSCDType:], RODTypePointInTime)
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen+rodCSCDType, -1) }},
	{name: "ROD CSCD with a token lifetime", build: func(l layout, b []byte) []byte {
		b = rodBase(l, b)
		binary.BigEndian.PutUint32(b[l.hdr+cscdLen+rodCSCDLifetime:], 60)
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen+rodCSCDLifetime, -1) }},
	{name: "ROD CSCD with an inactivity timeout", build: func(l layout, b []byte) []byte {
		b = rodBase(l, b)
		binary.BigEndian.PutUint32(b[l.hdr+cscdLen+rodCSCDInactivity:], 0xFFFFFFFF)
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen+rodCSCDInactivity, -1) }},
	{name: "ROD CSCD with ROD producer C000h", build: func(l layout, b []byte) []byte {
		b = rodBase(l, b)
		binary.BigEndian.PutUint16(b[l.hdr+cscdLen+rodCSCDProducer:], 0xC000)
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen+rodCSCDProducer, -1) }},
	{name: "ROD CSCD with its token one byte past the inline data", build: func(l layout, b []byte) []byte {
		b = rodBase(l, b)
		b[l.hdr+cscdLen+rodCSCDOffset+5] = 1
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen+rodCSCDOffset, -1) }},
	{name: "ROD CSCD with ROD TOKEN OFFSET 2^48-1", build: func(l layout, b []byte) []byte {
		b = rodBase(l, b)
		copy(b[l.hdr+cscdLen+rodCSCDOffset:], []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen+rodCSCDOffset, -1) }},
	{name: "ROD CSCD with no inline data", build: func(l layout, b []byte) []byte {
		b = rodBase(l, b)
		l.putLen(b, l.inlineAt, 0)
		return b[:len(b)-TokenLength]
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen+rodCSCDOffset, -1) }},
	{name: "inline data length only", build: func(l layout, b []byte) []byte {
		l.putLen(b, l.inlineAt, 0xFFFF)
		return b
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "CSCD list over 16 KiB, also too many CSCDs", build: func(l layout, b []byte) []byte {
		n := MaxDescriptorListLength/cscdLen + 1
		out := append([]byte(nil), b[:l.hdr]...)
		l.putLen(out, l.cscdLenAt, n*cscdLen)
		l.putLen(out, l.segLenAt, 0)
		for range n {
			out = append(out, b[l.hdr:l.hdr+cscdLen]...)
		}
		return out
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "segment list over 16 KiB, also too many segments", build: func(l layout, b []byte) []byte {
		n := (MaxDescriptorListLength-errCSCDs*cscdLen)/errSegLen + 1
		out := append([]byte(nil), b[:l.hdr+errCSCDs*cscdLen]...)
		l.putLen(out, l.segLenAt, n*errSegLen)
		for range n {
			out = append(out, b[l.hdr+errCSCDs*cscdLen:][:errSegLen]...)
		}
		return out
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "segment list length 2^32-1", only: "LID1", build: func(l layout, b []byte) []byte {
		binary.BigEndian.PutUint32(b[l.segLenAt:], 0xFFFFFFFF)
		return b
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "CSCD list truncated", build: func(l layout, b []byte) []byte {
		l.putLen(b, l.segLenAt, 0)
		l.putLen(b, l.cscdLenAt, 3*cscdLen)
		return b[:l.hdr+errCSCDs*cscdLen]
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "segment list truncated", build: func(l layout, b []byte) []byte { return b[:len(b)-1] }, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "segment list ends inside a segment header", build: func(l layout, b []byte) []byte {
		l.putLen(b, l.segLenAt, errSegs*errSegLen+3)
		return append(b, SegmentBlockToBlock, 0, 0)
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "segment list ends inside a segment", build: func(l layout, b []byte) []byte {
		l.putLen(b, l.segLenAt, errSegLen+20)
		return b[:l.hdr+errCSCDs*cscdLen+errSegLen+20]
	}, key: scsi.IllegalRequest, code: plle, sks: none},
	{name: "CSCD list length not a multiple of 32", build: func(l layout, b []byte) []byte {
		l.putLen(b, l.cscdLenAt, errCSCDs*cscdLen-4)
		l.putLen(b, l.segLenAt, errSegs*errSegLen+4)
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.cscdLenAt, -1) }},
	{name: "65 CSCDs", build: func(l layout, b []byte) []byte {
		out := append([]byte(nil), b[:l.hdr]...)
		l.putLen(out, l.cscdLenAt, (MaxCSCDs+1)*cscdLen)
		for range MaxCSCDs + 1 {
			out = append(out, b[l.hdr:l.hdr+cscdLen]...)
		}
		return append(out, b[l.hdr+errCSCDs*cscdLen:]...)
	}, key: scsi.IllegalRequest, code: scsi.ASCTooManyTargetDescriptors, sks: none},
	{name: "257 segments", build: func(l layout, b []byte) []byte {
		out := append([]byte(nil), b[:l.hdr+errCSCDs*cscdLen]...)
		l.putLen(out, l.segLenAt, (MaxSegments+1)*errSegLen)
		for range MaxSegments + 1 {
			out = append(out, b[l.hdr+errCSCDs*cscdLen:][:errSegLen]...)
		}
		return out
	}, key: scsi.IllegalRequest, code: scsi.ASCTooManySegmentDescriptors, sks: none},
	{name: "CSCD type E0h", build: func(l layout, b []byte) []byte { b[l.hdr] = 0xE0; return b },
		key: scsi.IllegalRequest, code: scsi.ASCUnsupportedTargetDescriptor, sks: func(l layout) []byte { return fieldPtr(l.hdr, -1) }},
	{name: "second CSCD type FFh", build: func(l layout, b []byte) []byte { b[l.hdr+cscdLen] = 0xFF; return b },
		key: scsi.IllegalRequest, code: scsi.ASCUnsupportedTargetDescriptor, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen, -1) }},
	{name: "segment type 03h", build: func(l layout, b []byte) []byte { b[l.hdr+errCSCDs*cscdLen] = 0x03; return b },
		key: scsi.IllegalRequest, code: scsi.ASCUnsupportedSegmentDescriptor, sks: func(l layout) []byte { return fieldPtr(l.hdr+errCSCDs*cscdLen, -1) }},
	{name: "second segment type BEh", build: func(l layout, b []byte) []byte { b[l.hdr+errCSCDs*cscdLen+errSegLen] = 0xBE; return b },
		key: scsi.IllegalRequest, code: scsi.ASCUnsupportedSegmentDescriptor, sks: func(l layout) []byte { return fieldPtr(l.hdr+errCSCDs*cscdLen+errSegLen, -1) }},
	{name: "02h with descriptor length 1Ch", build: func(l layout, b []byte) []byte {
		binary.BigEndian.PutUint16(b[l.hdr+errCSCDs*cscdLen+2:], 0x1C)
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+errCSCDs*cscdLen+2, -1) }},
	{name: "second segment 0Ah with descriptor length 18h", build: func(l layout, b []byte) []byte {
		off := l.hdr + errCSCDs*cscdLen + errSegLen
		b[off] = SegmentBlockToBlockOffset
		return b
	}, key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+errCSCDs*cscdLen+errSegLen+2, -1) }},
	{name: "designator length 21", build: func(l layout, b []byte) []byte { b[l.hdr+cscdLen+7] = 21; return b },
		key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+cscdLen+7, -1) }},
	{name: "designator length FFh", build: func(l layout, b []byte) []byte { b[l.hdr+7] = 0xFF; return b },
		key: scsi.IllegalRequest, code: invalidParamFld, sks: func(l layout) []byte { return fieldPtr(l.hdr+7, -1) }},
}

func TestParseParamsErrors(t *testing.T) {
	for _, lay := range layouts {
		for _, c := range paramErrors {
			if c.only != "" && c.only != lay.name() {
				continue
			}
			t.Run(lay.name()+"/"+c.name, func(t *testing.T) {
				data := c.build(lay, errBase(lay.lid4))
				p, s := ParseParams(data, lay.lid4)
				require.Nil(t, p)
				requireSense(t, s, c.key, c.code, c.sks(lay))
			})
		}
	}
}

// TestParseParamsErrorBase checks that the list the error cases start
// from is good, so each case fails for its own reason only.
func TestParseParamsErrorBase(t *testing.T) {
	for _, lay := range layouts {
		b := errBase(lay.lid4)
		require.Len(t, b, lay.hdr+errListLen)
		p, s := ParseParams(b, lay.lid4)
		require.Nil(t, s, "%v", s)
		require.Len(t, p.CSCDs, errCSCDs)
		require.Len(t, p.Segments, errSegs)
		// LIST ID USAGE 11b with a zero list identifier is good.
		b[1] |= 0x18
		if lay.lid4 {
			binary.BigEndian.PutUint32(b[20:], 0)
		} else {
			b[0] = 0
		}
		p, s = ParseParams(b, lay.lid4)
		require.Nil(t, s, "%v", s)
		require.Equal(t, UsageNone, p.Usage)
		// Trailing bytes past the lists are ignored, as for a transport
		// that carried more than the lengths say.
		_, s = ParseParams(append(errBase(lay.lid4), 0, 0, 0, 0), lay.lid4)
		require.Nil(t, s, "%v", s)
	}
}
