package rod

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// Limits of POPULATE TOKEN and WRITE USING TOKEN, reported in the Block
// Device ROD Token Limits descriptor of the Third-party Copy VPD page
// (SBC-3 6.6.7) and enforced here.
const (
	// MaxRangeDescriptors is MAXIMUM RANGE DESCRIPTORS: Windows sends at
	// most 64 whatever is reported.
	MaxRangeDescriptors = 64
	// MaxTokenBytes bounds what one token represents (MAXIMUM TOKEN
	// TRANSFER SIZE, in logical blocks of the LU); a larger POPULATE TOKEN
	// represents the first MaxTokenBytes.
	MaxTokenBytes = 16 << 30
	// OptimalTransferBytes is OPTIMAL TRANSFER COUNT: Windows sizes each
	// WRITE USING TOKEN from it, and 256 MiB is the most it takes.
	OptimalTransferBytes = 256 << 20
	// DefaultInactivityTimeout and MaxInactivityTimeout bound how long an
	// unused token lives, in seconds, unless configured otherwise.
	DefaultInactivityTimeout = 60
	MaxInactivityTimeout     = 600
)

// Header lengths of the POPULATE TOKEN and WRITE USING TOKEN parameter
// lists (SBC-3 tables 62 and 90) and of a block device range descriptor.
const (
	populateHeaderLen = 16
	wutHeaderLen      = 536
	rangeDescLen      = 16
)

// PopulateParams is a decoded POPULATE TOKEN parameter list.
type PopulateParams struct {
	Immed bool
	// RODType is the requested ROD TYPE when RTV is set, else zero.
	RODType uint32
	RTV     bool
	// Timeout is INACTIVITY TIMEOUT in seconds; zero asks for the default.
	Timeout uint32
	Ranges  []Range
}

// WUTParams is a decoded WRITE USING TOKEN parameter list.
type WUTParams struct {
	Immed  bool
	DelTkn bool
	// OffsetIntoROD is BLOCK OFFSET INTO ROD, in logical blocks of the
	// destination.
	OffsetIntoROD uint64
	Token         [TokenLength]byte
	Ranges        []Range
}

// Range is one block device range descriptor (SBC-3 6.1.3.2), with its
// offset in the parameter list for field pointers.
type Range struct {
	LBA    uint64
	Blocks uint32
	Offset int
}

// ParsePopulate decodes a POPULATE TOKEN parameter list (SBC-3 5.9.2).
func ParsePopulate(data []byte) (*PopulateParams, *scsi.Sense) {
	if len(data) < populateHeaderLen {
		return nil, scsi.ParameterListLengthError().WithReason("%d bytes, the header alone is %d", len(data), populateHeaderLen)
	}
	p := &PopulateParams{
		Immed:   data[2]&0x01 != 0,
		RTV:     data[2]&0x02 != 0,
		Timeout: binary.BigEndian.Uint32(data[4:]),
	}
	if p.RTV {
		p.RODType = binary.BigEndian.Uint32(data[8:])
	}
	ranges, s := parseRanges(data, 0, 14, populateHeaderLen, false)
	if s != nil {
		return nil, s
	}
	p.Ranges = ranges
	return p, nil
}

// ParseWriteUsingToken decodes a WRITE USING TOKEN parameter list (SBC-3
// 5.38.2).
func ParseWriteUsingToken(data []byte) (*WUTParams, *scsi.Sense) {
	if len(data) < wutHeaderLen {
		return nil, scsi.ParameterListLengthError().WithReason("%d bytes, the header and token alone are %d", len(data), wutHeaderLen)
	}
	p := &WUTParams{
		Immed:         data[2]&0x01 != 0,
		DelTkn:        data[2]&0x02 != 0,
		OffsetIntoROD: binary.BigEndian.Uint64(data[8:]),
	}
	copy(p.Token[:], data[16:16+TokenLength])
	// Destination ranges of zero blocks are allowed: with DEL_TKN such a
	// WRITE USING TOKEN deletes a token and writes nothing (the way
	// ddptctl deletes one).
	ranges, s := parseRanges(data, 0, 534, wutHeaderLen, true)
	if s != nil {
		return nil, s
	}
	p.Ranges = ranges
	return p, nil
}

// parseRanges checks the DATA LENGTH at dataLenAt (the bytes after it)
// and the BLOCK DEVICE RANGE DESCRIPTOR LENGTH at descLenAt, and decodes
// the descriptors from first on: at most MaxRangeDescriptors of them
// (TOO MANY SEGMENT DESCRIPTORS past it), not all of zero length unless
// allowZero.
func parseRanges(data []byte, dataLenAt, descLenAt, first int, allowZero bool) ([]Range, *scsi.Sense) {
	total := int(binary.BigEndian.Uint16(data[dataLenAt:])) + 2
	descBytes := int(binary.BigEndian.Uint16(data[descLenAt:]))
	if total > len(data) || first+descBytes > total {
		return nil, scsi.ParameterListLengthError().
			WithReason("data length %d, range descriptors %d bytes, %d bytes sent", total, descBytes, len(data))
	}
	if descBytes%rangeDescLen != 0 || descBytes == 0 {
		return nil, scsi.InvalidFieldInParameterList(descLenAt, -1).WithReason("range descriptor length %d", descBytes)
	}
	n := descBytes / rangeDescLen
	if n > MaxRangeDescriptors {
		return nil, scsi.NewSense(scsi.IllegalRequest, scsi.ASCTooManySegmentDescriptors).
			WithReason("%d range descriptors, at most %d", n, MaxRangeDescriptors)
	}
	ranges := make([]Range, n)
	nonzero := false
	for i := range ranges {
		off := first + i*rangeDescLen
		ranges[i] = Range{LBA: binary.BigEndian.Uint64(data[off:]), Blocks: binary.BigEndian.Uint32(data[off+8:]), Offset: off}
		nonzero = nonzero || ranges[i].Blocks != 0
	}
	if !nonzero && !allowZero {
		return nil, scsi.InvalidFieldInParameterList(first+8, -1).WithReason("every range descriptor has zero blocks")
	}
	return ranges, nil
}

// checkRanges refuses ranges past the capacity (LOGICAL BLOCK ADDRESS OUT
// OF RANGE, SBC-3 5.9.3) and ranges that overlap (INVALID FIELD IN
// PARAMETER LIST at the later one).
func checkRanges(ranges []Range, capacity uint64) *scsi.Sense {
	for i, r := range ranges {
		if s := scsi.CheckRange(r.LBA, uint64(r.Blocks), capacity); s != nil {
			return s
		}
		for _, o := range ranges[:i] {
			if r.Blocks != 0 && o.Blocks != 0 && r.LBA < o.LBA+uint64(o.Blocks) && o.LBA < r.LBA+uint64(r.Blocks) {
				return scsi.InvalidFieldInParameterList(r.Offset, -1).
					WithReason("range at LBA %d overlaps the one at LBA %d", r.LBA, o.LBA)
			}
		}
	}
	return nil
}
