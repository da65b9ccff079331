package rod

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// ListIDUsage is the LIST ID USAGE field of an EXTENDED COPY parameter
// list (SPC-4 table 106): what the copy manager keeps of a list.
type ListIDUsage uint8

// List identifier usages.
const (
	// UsageHold: the list identifier is used and the status is held
	// after completion until the initiator retrieves it.
	UsageHold ListIDUsage = 0
	// UsageDiscard: the list identifier is used while the copy runs;
	// nothing is held once it completes.
	UsageDiscard ListIDUsage = 2
	// UsageNone: no list identifier (it must be zero); the copy cannot be
	// queried or aborted by identifier.
	UsageNone ListIDUsage = 3
)

// Header lengths of the two parameter list formats.
const (
	lid1HeaderLen = 16
	lid4HeaderLen = 48
	cscdLen       = 32
)

// Params is a decoded EXTENDED COPY parameter list. It keeps no reference
// to the data it was parsed from.
type Params struct {
	LID4     bool
	ListID   uint32
	Usage    ListIDUsage
	Priority uint8
	// Immed (LID4 only) asks for GOOD status as soon as the list is
	// validated, the copy going on in the background.
	Immed    bool
	CSCDs    []CSCD
	Segments []Segment
}

// CSCD is one identification CSCD descriptor (type E4h, SPC-4 6.4.5.6):
// the designator of a copy source or destination logical unit.
type CSCD struct {
	// Offset is the descriptor's byte offset in the parameter list, for
	// segment pointers in sense data.
	Offset int
	// LUIDType is LU ID TYPE; 01b (proxy token) names no logical unit
	// this copy manager can reach.
	LUIDType   byte
	NUL        bool
	DeviceType byte // PERIPHERAL DEVICE TYPE
	Designator scsi.Designator
	// BlockLength is DISK BLOCK LENGTH from the device type specific
	// parameters; zero means the logical unit's own.
	BlockLength uint32
}

// Segment is one segment descriptor (SPC-4 6.4.6).
type Segment struct {
	Offset   int // byte offset in the parameter list
	Type     byte
	DC, CAT  bool
	Src, Dst uint16 // CSCD descriptor IDs
	// Blocks is NUMBER OF BLOCKS (02h); Bytes is NUMBER OF BYTES (0Ah).
	Blocks uint32
	Bytes  uint32
	SrcLBA uint64
	DstLBA uint64
	// SrcByteOffset and DstByteOffset (0Ah) start the data inside the
	// first block.
	SrcByteOffset, DstByteOffset uint16
	TUR                          bool // 07h: test the CSCD with TEST UNIT READY
}

// segmentLength is the DESCRIPTOR LENGTH each implemented segment type
// must carry (SPC-4 tables 134, 140 and 145).
var segmentLength = map[byte]int{
	SegmentBlockToBlock:       0x18,
	SegmentVerifyCSCD:         0x08,
	SegmentBlockToBlockOffset: 0x1C,
}

// ParseParams decodes an EXTENDED COPY (LID1) or, with lid4, (LID4)
// parameter list (SPC-4 6.4.3 and 6.5.3) of at least one byte. Errors are
// the sense data the standard names: PARAMETER LIST LENGTH ERROR for a
// list shorter than its lengths say or longer than the limits, TOO MANY
// TARGET or SEGMENT DESCRIPTORS past the limits, UNSUPPORTED TARGET or
// SEGMENT DESCRIPTOR TYPE CODE, and INVALID FIELD IN PARAMETER LIST with
// a field pointer otherwise. The total length is checked before the
// descriptor counts, so an over-long list is a length error even when it
// also has too many descriptors.
func ParseParams(data []byte, lid4 bool) (*Params, *scsi.Sense) {
	p := &Params{LID4: lid4}
	hdr := lid1HeaderLen
	if lid4 {
		hdr = lid4HeaderLen
	}
	if len(data) < hdr {
		return nil, scsi.ParameterListLengthError().WithReason("%d bytes, the header alone is %d", len(data), hdr)
	}
	var cscdLenAt, cscdBytes, segBytes, inlineBytes int
	if lid4 {
		// SPC-4 table 111: PARAMETER LIST FORMAT 01h.
		if data[0] != 0x01 {
			return nil, scsi.InvalidFieldInParameterList(0, -1).WithReason("LID4 parameter list format %02xh", data[0])
		}
		if hl := binary.BigEndian.Uint16(data[2:]); hl != 0 {
			// HEADER CSCD DESCRIPTOR LIST LENGTH: no header CSCD
			// descriptors are supported.
			return nil, scsi.InvalidFieldInParameterList(2, -1).WithReason("header CSCD descriptor list length %d", hl)
		}
		p.Immed = data[15]&0x01 != 0
		p.ListID = binary.BigEndian.Uint32(data[20:])
		cscdLenAt = 42
		cscdBytes = int(binary.BigEndian.Uint16(data[42:]))
		segBytes = int(binary.BigEndian.Uint16(data[44:]))
		inlineBytes = int(binary.BigEndian.Uint16(data[46:]))
	} else {
		p.ListID = uint32(data[0])
		cscdLenAt = 2
		cscdBytes = int(binary.BigEndian.Uint16(data[2:]))
		segBytes = int(binary.BigEndian.Uint32(data[8:]))
		inlineBytes = int(binary.BigEndian.Uint32(data[12:]))
	}
	// STR (bit 5) is a hint for striped stream devices that a block copy
	// manager ignores.
	p.Priority = data[1] & 0x07
	p.Usage = ListIDUsage(data[1] >> 3 & 0x03)
	switch p.Usage {
	case UsageHold, UsageDiscard:
	case UsageNone:
		// SPC-4 6.4.3.2: with LIST ID USAGE 11b the list identifier
		// shall be zero.
		if p.ListID != 0 {
			at := 0
			if lid4 {
				at = 20
			}
			return nil, scsi.InvalidFieldInParameterList(at, -1).WithReason("list identifier %d with LIST ID USAGE 11b", p.ListID)
		}
	default:
		return nil, scsi.InvalidFieldInParameterList(1, 4).WithReason("LIST ID USAGE 01b is reserved")
	}
	if inlineBytes > MaxInlineDataLength {
		return nil, scsi.ParameterListLengthError().WithReason("%d bytes of inline data, none supported", inlineBytes)
	}
	if cscdBytes+segBytes > MaxDescriptorListLength {
		return nil, scsi.ParameterListLengthError().
			WithReason("descriptor lists of %d bytes exceed %d", cscdBytes+segBytes, MaxDescriptorListLength)
	}
	if hdr+cscdBytes+segBytes+inlineBytes > len(data) {
		return nil, scsi.ParameterListLengthError().
			WithReason("lists of %d bytes after the header, %d bytes sent", cscdBytes+segBytes+inlineBytes, len(data)-hdr)
	}
	if cscdBytes%cscdLen != 0 {
		return nil, scsi.InvalidFieldInParameterList(cscdLenAt, -1).WithReason("CSCD descriptor list length %d is not a multiple of 32", cscdBytes)
	}
	if n := cscdBytes / cscdLen; n > MaxCSCDs {
		return nil, scsi.NewSense(scsi.IllegalRequest, scsi.ASCTooManyTargetDescriptors).WithReason("%d CSCD descriptors, at most %d", n, MaxCSCDs)
	}
	for off := hdr; off < hdr+cscdBytes; off += cscdLen {
		c, s := parseCSCD(data[off:off+cscdLen], off)
		if s != nil {
			return nil, s
		}
		p.CSCDs = append(p.CSCDs, c)
	}
	for off, end := hdr+cscdBytes, hdr+cscdBytes+segBytes; off < end; {
		if len(p.Segments) == MaxSegments {
			return nil, scsi.NewSense(scsi.IllegalRequest, scsi.ASCTooManySegmentDescriptors).WithReason("more than %d segment descriptors", MaxSegments)
		}
		if end-off < 4 {
			return nil, scsi.ParameterListLengthError().WithReason("segment descriptor at byte %d cut short", off)
		}
		typ := data[off]
		want, ok := segmentLength[typ]
		if !ok {
			return nil, scsi.NewSense(scsi.IllegalRequest, scsi.ASCUnsupportedSegmentDescriptor).
				FieldPointer(false, off, -1).WithReason("segment descriptor type %02xh", typ)
		}
		if n := int(binary.BigEndian.Uint16(data[off+2:])); n != want {
			return nil, scsi.InvalidFieldInParameterList(off+2, -1).WithReason("segment type %02xh with descriptor length %d, want %d", typ, n, want)
		}
		if end-off < 4+want {
			return nil, scsi.ParameterListLengthError().WithReason("segment descriptor at byte %d cut short", off)
		}
		p.Segments = append(p.Segments, parseSegment(data[off:off+4+want], off))
		off += 4 + want
	}
	return p, nil
}

// parseCSCD decodes one 32-byte CSCD descriptor at byte off of the list.
func parseCSCD(d []byte, off int) (CSCD, *scsi.Sense) {
	// Type codes E0h-FFh are CSCD descriptors; only identification
	// descriptors name logical units of this copy manager.
	if d[0] != CSCDIdentification {
		return CSCD{}, scsi.NewSense(scsi.IllegalRequest, scsi.ASCUnsupportedTargetDescriptor).
			FieldPointer(false, off, -1).WithReason("CSCD descriptor type %02xh", d[0])
	}
	c := CSCD{
		Offset:     off,
		LUIDType:   d[1] >> 6,
		NUL:        d[1]&0x20 != 0,
		DeviceType: d[1] & 0x1F,
	}
	// The designation descriptor header (SPC-4 7.8.6.1) at bytes 4-7,
	// with at most 20 bytes of designator.
	n := int(d[7])
	if n > 20 {
		return CSCD{}, scsi.InvalidFieldInParameterList(off+7, -1).WithReason("designator length %d exceeds 20", n)
	}
	c.Designator = scsi.Designator{
		CodeSet:     scsi.CodeSet(d[4] & 0x0F),
		Association: scsi.Association(d[5]>>4) & 3,
		Type:        scsi.DesignatorType(d[5] & 0x0F),
		Value:       append([]byte(nil), d[8:8+n]...),
	}
	if c.DeviceType == 0 {
		// Block device type specific parameters (SPC-4 6.4.5.2).
		c.BlockLength = uint32(d[29])<<16 | uint32(d[30])<<8 | uint32(d[31])
	}
	return c, nil
}

// parseSegment decodes one segment descriptor of a type and length
// ParseParams has checked.
func parseSegment(d []byte, off int) Segment {
	s := Segment{
		Offset: off,
		Type:   d[0],
		Src:    binary.BigEndian.Uint16(d[4:]),
	}
	switch s.Type {
	case SegmentBlockToBlock:
		s.DC, s.CAT = d[1]&0x02 != 0, d[1]&0x01 != 0
		s.Dst = binary.BigEndian.Uint16(d[6:])
		s.Blocks = uint32(binary.BigEndian.Uint16(d[10:]))
		s.SrcLBA = binary.BigEndian.Uint64(d[12:])
		s.DstLBA = binary.BigEndian.Uint64(d[20:])
	case SegmentBlockToBlockOffset:
		s.CAT = d[1]&0x01 != 0
		s.Dst = binary.BigEndian.Uint16(d[6:])
		s.Bytes = binary.BigEndian.Uint32(d[8:])
		s.SrcLBA = binary.BigEndian.Uint64(d[12:])
		s.DstLBA = binary.BigEndian.Uint64(d[20:])
		s.SrcByteOffset = binary.BigEndian.Uint16(d[28:])
		s.DstByteOffset = binary.BigEndian.Uint16(d[30:])
	case SegmentVerifyCSCD:
		s.TUR = d[8]&0x01 != 0
	}
	return s
}
