package spc

import (
	"encoding/binary"
	"math/bits"

	"github.com/odxtgt/odxtgt/scsi"
)

// opModeSelect10 is the operation code of MODE SELECT (10).
const opModeSelect10 = 0x55

// cmdModeSelect6 and cmdModeSelect10 are MODE SELECT (6) and (10) (SPC-4).
// Only PF is examined in byte 1: SP (save pages) is refused by the usage
// mask with INVALID FIELD IN CDB, as SPC-4 requires of a logical unit
// without saved pages. MODE SELECT is not a medium write, so it works while
// software write protect is on (that is how SWP is cleared).
var (
	cmdModeSelect6 = scsi.CommandDesc{
		Name:               "MODE SELECT (6)",
		Opcode:             0x15,
		Usage:              []byte{0xFF, 0x10, 0x00, 0x00, 0xFF, control},
		Direction:          scsi.DirOut,
		NominalTimeout:     nominalTimeout,
		RecommendedTimeout: recommendedTimeout,
		Handler:            modeSelect,
	}
	cmdModeSelect10 = scsi.CommandDesc{
		Name:               "MODE SELECT (10)",
		Opcode:             opModeSelect10,
		Usage:              []byte{0xFF, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, control},
		Direction:          scsi.DirOut,
		NominalTimeout:     nominalTimeout,
		RecommendedTimeout: recommendedTimeout,
		Handler:            modeSelect,
	}
)

// modeSelect validates the whole mode parameter list before it changes
// anything (SPC-4: when a MODE SELECT fails no parameter is changed):
//
//   - a list that ends inside the header, the block descriptor or a page is
//     PARAMETER LIST LENGTH ERROR;
//   - a MEDIUM TYPE other than 00h, a BLOCK DESCRIPTOR LENGTH other than 0
//     or one descriptor, a block descriptor that would change the capacity
//     or the block length, a page with PS or SPF set, an unsupported page,
//     a PAGE LENGTH other than the one MODE SENSE reports, or a page that
//     changes a bit that is not changeable is INVALID FIELD IN PARAMETER
//     LIST, with a field pointer to the offending byte and bit.
//
// The MODE DATA LENGTH field and the DEVICE-SPECIFIC PARAMETER (whose WP
// and DPOFUA bits a MODE SENSE reply carries) are reserved or ignored for
// MODE SELECT, and not checked, so a header echoed from MODE SENSE works.
func modeSelect(cmd *scsi.Command) error {
	cdb := cmd.CDB
	ten := cdb[0] == opModeSelect10
	var n int
	if ten {
		n = int(binary.BigEndian.Uint16(cdb[7:9]))
	} else {
		n = int(cdb[4])
	}
	// PF zero would mean vendor specific (SCSI-1) pages; odxtgt has none.
	// A list of zero bytes carries no pages and is not an error.
	if cdb[1]&0x10 == 0 && n > 0 {
		return scsi.InvalidFieldInCDB(1, 4).WithReason("PF=0")
	}
	list, err := cmd.TakeDataOut(n)
	if err != nil || n == 0 {
		return err
	}
	lu := cmd.LU()
	pages, err := parseModeParameters(lu, list, ten)
	if err != nil {
		return err
	}
	lu.UpdateMode(cmd.Nexus, func(m *scsi.ModeState) {
		for _, p := range pages {
			p.page.apply(p.data, m)
		}
	})
	return nil
}

// selectedPage is a validated mode page of a MODE SELECT parameter list.
type selectedPage struct {
	page *modePage
	data []byte // the page as sent, header included
}

// parseModeParameters checks a mode parameter list (SPC-4 mode parameter
// list format) and returns its pages.
func parseModeParameters(lu *scsi.LU, list []byte, ten bool) ([]selectedPage, error) {
	// MODE SELECT (6) header: MODE DATA LENGTH, MEDIUM TYPE, DEVICE-SPECIFIC
	// PARAMETER, BLOCK DESCRIPTOR LENGTH. MODE SELECT (10): MODE DATA
	// LENGTH (2 bytes), MEDIUM TYPE, DEVICE-SPECIFIC PARAMETER, LONGLBA,
	// reserved, BLOCK DESCRIPTOR LENGTH (2 bytes).
	hdr, mediumTypeAt, bdLenAt := 4, 1, 3
	if ten {
		hdr, mediumTypeAt, bdLenAt = 8, 2, 6
	}
	if len(list) < hdr {
		return nil, scsi.ParameterListLengthError().WithReason("%d bytes, the mode parameter header needs %d", len(list), hdr)
	}
	if list[mediumTypeAt] != 0 {
		// SBC-3: direct-access devices have medium type 00h.
		return nil, scsi.InvalidFieldInParameterList(mediumTypeAt, -1)
	}
	long := false
	var bdLen int
	if ten {
		if r := list[4] &^ 0x01; r != 0 {
			return nil, scsi.InvalidFieldInParameterList(4, highestBit(r))
		}
		if list[5] != 0 {
			return nil, scsi.InvalidFieldInParameterList(5, highestBit(list[5]))
		}
		long = list[4]&0x01 != 0
		bdLen = int(binary.BigEndian.Uint16(list[6:8]))
	} else {
		bdLen = int(list[3])
	}
	// One block descriptor at most: the logical unit has one medium.
	want := 8
	if long {
		want = 16
	}
	if bdLen != 0 && bdLen != want {
		return nil, scsi.InvalidFieldInParameterList(bdLenAt, -1).WithReason("block descriptor length %d", bdLen)
	}
	if len(list) < hdr+bdLen {
		return nil, scsi.ParameterListLengthError().WithReason("%d bytes end inside the block descriptor", len(list))
	}
	if bdLen > 0 {
		if err := checkBlockDescriptor(lu, list[hdr:hdr+bdLen], hdr); err != nil {
			return nil, err
		}
	}
	var pages []selectedPage
	for off := hdr + bdLen; off < len(list); {
		p, err := parseModePage(lu, list, off)
		if err != nil {
			return nil, err
		}
		pages = append(pages, p)
		off += len(p.data)
	}
	return pages, nil
}

// checkBlockDescriptor accepts a block descriptor that keeps the capacity
// (NUMBER OF LOGICAL BLOCKS zero, or the value MODE SENSE reports) and the
// LOGICAL BLOCK LENGTH: odxtgt cannot reformat a backstore. at is the
// descriptor's offset in the parameter list, for field pointers.
func checkBlockDescriptor(lu *scsi.LU, bd []byte, at int) error {
	bs := uint32(lu.Store.BlockSize())
	blocks := uint64(lu.Store.Size()) / uint64(bs)
	// Short descriptor: NUMBER OF LOGICAL BLOCKS (4), reserved (1), LOGICAL
	// BLOCK LENGTH (3). Long LBA descriptor: NUMBER OF LOGICAL BLOCKS (8),
	// reserved (4), LOGICAL BLOCK LENGTH (4).
	var n uint64
	var length uint32
	var reserved []byte
	var reservedAt, lengthAt int
	if len(bd) == 16 {
		n = binary.BigEndian.Uint64(bd[0:8])
		length = binary.BigEndian.Uint32(bd[12:16])
		reserved, reservedAt, lengthAt = bd[8:12], 8, 12
	} else {
		n = uint64(binary.BigEndian.Uint32(bd[0:4]))
		length = binary.BigEndian.Uint32(bd[4:8]) & 0x00FFFFFF
		blocks = min(blocks, 0xFFFFFFFF)
		reserved, reservedAt, lengthAt = bd[4:5], 4, 5
	}
	if n != 0 && n != blocks {
		return scsi.InvalidFieldInParameterList(at, -1).WithReason("NUMBER OF LOGICAL BLOCKS %d, the capacity is %d", n, blocks)
	}
	for i, r := range reserved {
		if r != 0 {
			return scsi.InvalidFieldInParameterList(at+reservedAt+i, highestBit(r))
		}
	}
	if length != bs {
		return scsi.InvalidFieldInParameterList(at+lengthAt, -1).WithReason("LOGICAL BLOCK LENGTH %d, the block size is %d", length, bs)
	}
	return nil
}

// parseModePage checks the mode page at list[off:]: its header, its length
// and that it changes only changeable bits.
func parseModePage(lu *scsi.LU, list []byte, off int) (selectedPage, error) {
	if len(list) < off+2 {
		return selectedPage{}, scsi.ParameterListLengthError().WithReason("%d bytes end inside a mode page header", len(list))
	}
	b0 := list[off]
	if b0&0x80 != 0 {
		// PS is reserved in MODE SELECT.
		return selectedPage{}, scsi.InvalidFieldInParameterList(off, 7)
	}
	if b0&0x40 != 0 {
		// SPF: odxtgt has no subpages, and subpage 00h is page_0 format.
		return selectedPage{}, scsi.InvalidFieldInParameterList(off, 6)
	}
	p := findModePage(b0 & 0x3F)
	if p == nil {
		return selectedPage{}, scsi.InvalidFieldInParameterList(off, 5).WithReason("mode page %02xh", b0&0x3F)
	}
	// The PAGE LENGTH shall be the one MODE SENSE returns.
	if l := int(list[off+1]); l != len(p.changeable)-2 {
		return selectedPage{}, scsi.InvalidFieldInParameterList(off+1, -1).WithReason("page %02xh length %d", p.code, l)
	}
	end := off + len(p.changeable)
	if len(list) < end {
		return selectedPage{}, scsi.ParameterListLengthError().WithReason("%d bytes end inside mode page %02xh", len(list), p.code)
	}
	data := list[off:end]
	cur := p.values(lu.Mode())
	for i := 2; i < len(data); i++ {
		if d := (data[i] ^ cur[i]) &^ p.changeable[i]; d != 0 {
			return selectedPage{}, scsi.InvalidFieldInParameterList(off+i, highestBit(d)).
				WithReason("page %02xh byte %d: %02xh, only %02xh may change from %02xh", p.code, i, data[i], p.changeable[i], cur[i])
		}
	}
	return selectedPage{page: p, data: data}, nil
}

// highestBit returns the number of the most significant bit set in b, for
// field pointers; b must not be zero.
func highestBit(b byte) int { return bits.Len8(b) - 1 }
