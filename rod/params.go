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

// CSCD is one CSCD descriptor: an identification descriptor (type E4h,
// SPC-4 6.4.5.6), the designator of a copy source or destination logical
// unit, or a ROD descriptor (type FEh, SPC-4 6.4.5.9), a ROD token from
// the inline data used as a copy source.
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
	// PAD is the PAD bit of the block device type specific parameters
	// (SPC-4 6.4.5.3): with the segments' CAT bits it says what becomes of
	// data a segment leaves over (SPC-4 5.17.7.2).
	PAD bool
	// ROD is set for a ROD CSCD descriptor.
	ROD *RODCSCD
}

// RODCSCD is what a ROD CSCD descriptor (SPC-4 6.4.5.9) with ROD TYPE
// zero says: use the ROD token at ROD TOKEN OFFSET of the inline data as
// a block device whose LBAs run from zero over the data the token
// represents (SPC-4 5.17.7.6).
type RODCSCD struct {
	// Producer is ROD PRODUCER CSCD DESCRIPTOR ID: the copy manager that
	// made the token, this one (FFFFh), the one the token names (F800h)
	// or that of a CSCD descriptor of the list. Every token this copy
	// manager takes is its own, which the token's authenticator proves.
	Producer uint16
	// DelTkn (DEL_TKN) deletes the token once the copy completed.
	DelTkn bool
	Token  [TokenLength]byte
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
	// SPC-4 6.4.3.6 names no sense for inline data beyond MAXIMUM
	// INLINE DATA LENGTH; this follows its neighbour 6.4.3.5, whose
	// descriptor lists beyond MAXIMUM DESCRIPTOR LIST LENGTH are
	// PARAMETER LIST LENGTH ERROR. INLINE DATA LENGTH EXCEEDED (26h/0Bh)
	// is a COPY ABORTED of an inline-to-stream segment (6.4.6.6) reading
	// past the list's inline data, a segment odxtgt does not take.
	if inlineBytes > InlineDataLimit {
		return nil, scsi.ParameterListLengthError().WithReason("%d bytes of inline data, at most %d", inlineBytes, InlineDataLimit)
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
	inline := data[hdr+cscdBytes+segBytes : hdr+cscdBytes+segBytes+inlineBytes]
	for off := hdr; off < hdr+cscdBytes; off += cscdLen {
		c, s := parseCSCD(data[off:off+cscdLen], off, inline)
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

// parseCSCD decodes one 32-byte CSCD descriptor at byte off of the list
// whose inline data is inline.
func parseCSCD(d []byte, off int, inline []byte) (CSCD, *scsi.Sense) {
	// Type codes E0h-FFh are CSCD descriptors; identification
	// descriptors name logical units of this copy manager, ROD
	// descriptors the ROD tokens it made.
	switch d[0] {
	case CSCDIdentification:
	case CSCDROD:
		return parseRODCSCD(d, off, inline)
	default:
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
		c.BlockLength, c.PAD = diskBlockLength(d), blockPAD(d)
	}
	return c, nil
}

// diskBlockLength is DISK BLOCK LENGTH of the block device type specific
// parameters of a CSCD descriptor (SPC-4 6.4.5.3).
func diskBlockLength(d []byte) uint32 {
	return uint32(d[29])<<16 | uint32(d[30])<<8 | uint32(d[31])
}

// blockPAD is the PAD bit of the block device type specific parameters of
// a CSCD descriptor (SPC-4 6.4.5.3): byte 28, bit 2.
func blockPAD(d []byte) bool { return d[28]&0x04 != 0 }

// Offsets in a ROD CSCD descriptor (SPC-4 table 143).
const (
	rodCSCDProducer   = 4
	rodCSCDType       = 8
	rodCSCDLifetime   = 12
	rodCSCDInactivity = 16
	rodCSCDFlags      = 21 // DEL_TKN is bit 0
	rodCSCDOffset     = 22 // ROD TOKEN OFFSET, up to byte 27
)

// parseRODCSCD decodes a ROD CSCD descriptor. Only ROD TYPE zero is
// taken: a ROD token, copied into the inline data, serves as a copy
// source. RODs that the copy itself would populate (any other ROD TYPE)
// are not made by this copy manager; its Supported ROD Types descriptor
// says so with ECPY_INT zero. Without such a ROD no token is created, so
// the requested lifetime and inactivity timeout must be zero (SPC-4
// 6.4.5.9).
func parseRODCSCD(d []byte, off int, inline []byte) (CSCD, *scsi.Sense) {
	if t := binary.BigEndian.Uint32(d[rodCSCDType:]); t != 0 {
		return CSCD{}, scsi.InvalidFieldInParameterList(off+rodCSCDType, -1).
			WithReason("ROD CSCD descriptor with ROD type %08xh: the copy manager populates no RODs", t)
	}
	for _, at := range []int{rodCSCDLifetime, rodCSCDInactivity} {
		if v := binary.BigEndian.Uint32(d[at:]); v != 0 {
			return CSCD{}, scsi.InvalidFieldInParameterList(off+at, -1).
				WithReason("ROD CSCD descriptor asks for a token lifetime of %d s, but creates no token", v)
		}
	}
	producer := binary.BigEndian.Uint16(d[rodCSCDProducer:])
	if producer > maxCSCDIndex && producer != CSCDThisLU && producer != CSCDTokenLU {
		// Table 148: C000h and C001h are null logical units, which make
		// no tokens; the other values are reserved.
		return CSCD{}, scsi.InvalidFieldInParameterList(off+rodCSCDProducer, -1).
			WithReason("ROD producer CSCD descriptor ID %04xh", producer)
	}
	// ROD TOKEN OFFSET counts from the first byte of the inline data.
	at := uint64(d[rodCSCDOffset])<<40 | uint64(d[rodCSCDOffset+1])<<32 | uint64(binary.BigEndian.Uint32(d[rodCSCDOffset+2:]))
	if at > uint64(len(inline)) || uint64(len(inline))-at < TokenLength {
		return CSCD{}, scsi.InvalidFieldInParameterList(off+rodCSCDOffset, -1).
			WithReason("ROD token at byte %d of %d bytes of inline data", at, len(inline))
	}
	r := &RODCSCD{Producer: producer, DelTkn: d[rodCSCDFlags]&0x01 != 0}
	copy(r.Token[:], inline[at:])
	// The peripheral device type is the token's (SPC-4 6.4.5.9): every
	// token this copy manager makes is a block device's.
	return CSCD{Offset: off, BlockLength: diskBlockLength(d), PAD: blockPAD(d), ROD: r}, nil
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
