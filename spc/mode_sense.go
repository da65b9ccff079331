package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// opModeSense10 is the operation code of MODE SENSE (10).
const opModeSense10 = 0x5A

// cmdModeSense6 and cmdModeSense10 are MODE SENSE (6) and (10) (SPC-4).
// MODE SENSE (6) examines DBD; MODE SENSE (10) also LLBAA.
var (
	cmdModeSense6 = scsi.CommandDesc{
		Name:               "MODE SENSE (6)",
		Opcode:             0x1A,
		Usage:              []byte{0xFF, 0x08, 0xFF, 0xFF, 0xFF, control},
		Direction:          scsi.DirIn,
		NominalTimeout:     nominalTimeout,
		RecommendedTimeout: recommendedTimeout,
		Handler:            modeSense,
	}
	cmdModeSense10 = scsi.CommandDesc{
		Name:               "MODE SENSE (10)",
		Opcode:             opModeSense10,
		Usage:              []byte{0xFF, 0x18, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0xFF, control},
		Direction:          scsi.DirIn,
		NominalTimeout:     nominalTimeout,
		RecommendedTimeout: recommendedTimeout,
		Handler:            modeSense,
	}
)

// Page control values (the PC field).
const (
	pcCurrent    = 0
	pcChangeable = 1
	pcDefault    = 2
	pcSaved      = 3
)

// Special page and subpage codes.
const (
	allPages    = 0x3F // PAGE CODE: every mode page
	allSubpages = 0xFF // SUBPAGE CODE: every subpage of the page(s)
)

// Mode parameter header bits of the DEVICE-SPECIFIC PARAMETER for
// direct-access devices (SBC-3 mode parameters).
const (
	dspWP     = 0x80 // write protected
	dspDPOFUA = 0x10 // DPO and FUA are supported
)

// modeSense returns the mode parameter header, a block descriptor unless
// DBD is set, and the requested mode pages.
func modeSense(cmd *scsi.Command) error {
	cdb := cmd.CDB
	ten := cdb[0] == opModeSense10
	pc := cdb[2] >> 6
	code := cdb[2] & 0x3F
	subpage := cdb[3]
	var alloc int
	if ten {
		alloc = int(binary.BigEndian.Uint16(cdb[7:9]))
	} else {
		alloc = int(cdb[4])
	}
	if pc == pcSaved {
		return scsi.NewSense(scsi.IllegalRequest, scsi.ASCSavingParametersNotSupported).FieldPointer(true, 2, 7)
	}
	pages, err := selectModePages(code, subpage)
	if err != nil {
		return err
	}

	lu := cmd.LU()
	var body []byte
	for _, p := range pages {
		switch pc {
		case pcCurrent:
			body = append(body, p.values(lu.Mode())...)
		case pcChangeable:
			body = append(body, p.changeable...)
		case pcDefault:
			body = append(body, p.values(lu.DefaultMode())...)
		}
	}

	dsp := byte(dspDPOFUA)
	if lu.WriteProtected() {
		dsp |= dspWP
	}
	var bd []byte
	longLBA := false
	if cdb[1]&0x08 == 0 { // DBD clear
		bd, longLBA = blockDescriptor(lu, ten && cdb[1]&0x10 != 0)
	}

	var b []byte
	if ten {
		b = make([]byte, 8, 8+len(bd)+len(body))
		b[3] = dsp
		if longLBA {
			b[4] = 0x01 // LONGLBA
		}
		binary.BigEndian.PutUint16(b[6:], uint16(len(bd)))
	} else {
		b = make([]byte, 4, 4+len(bd)+len(body))
		b[2] = dsp
		b[3] = byte(len(bd))
	}
	b = append(append(b, bd...), body...)
	// MODE DATA LENGTH counts the bytes after itself.
	if ten {
		binary.BigEndian.PutUint16(b, uint16(len(b)-2))
	} else {
		b[0] = byte(len(b) - 1)
	}
	cmd.SetDataIn(b, alloc)
	return nil
}

// selectModePages returns the pages a PAGE CODE and SUBPAGE CODE pair asks
// for. odxtgt's pages have no subpages, so subpage 00h and FFh (all
// subpages) both select the page_0 pages; any other subpage, and a page
// odxtgt lacks, is INVALID FIELD IN CDB.
func selectModePages(code, subpage byte) ([]modePage, error) {
	if subpage != 0 && subpage != allSubpages {
		return nil, scsi.InvalidFieldInCDB(3, -1).WithReason("mode subpage %02xh/%02xh", code, subpage)
	}
	if code == allPages {
		return modePages, nil
	}
	p := findModePage(code)
	if p == nil {
		return nil, scsi.InvalidFieldInCDB(2, 5).WithReason("mode page %02xh", code)
	}
	return []modePage{*p}, nil
}

// blockDescriptor returns the mode parameter block descriptor (SBC-3): the
// short form, with the number of blocks capped at FFFFFFFFh, unless long
// LBAs are allowed (LLBAA) and the capacity needs them, when it returns the
// long form and reports it.
func blockDescriptor(lu *scsi.LU, llbaa bool) (bd []byte, long bool) {
	bs := lu.Store.BlockSize()
	blocks := uint64(lu.Store.Size()) / uint64(bs)
	if llbaa && blocks > 0xFFFFFFFF {
		bd = make([]byte, 16)
		binary.BigEndian.PutUint64(bd, blocks)
		binary.BigEndian.PutUint32(bd[12:], uint32(bs))
		return bd, true
	}
	bd = make([]byte, 8)
	binary.BigEndian.PutUint32(bd, uint32(min(blocks, 0xFFFFFFFF)))
	// Byte 4 is reserved; LOGICAL BLOCK LENGTH is the 3 bytes after it.
	binary.BigEndian.PutUint32(bd[4:], uint32(bs))
	return bd, false
}
