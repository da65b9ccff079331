package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// modePage is a mode page odxtgt implements, in page_0 format (odxtgt has
// no subpages). The values are LIO's; only the bits in changeable can be
// set by MODE SELECT.
type modePage struct {
	code byte
	// values returns the whole page (with its 2-byte header) for a mode
	// state: the current values for the current state, the default values
	// for the default state.
	values func(m scsi.ModeState) []byte
	// changeable is the page with a one in every changeable bit (MODE
	// SENSE with PC 01b), header included.
	changeable []byte
	// apply copies the changeable bits of a validated MODE SELECT page
	// into m.
	apply func(page []byte, m *scsi.ModeState)
}

// modePages lists the mode pages in the order MODE SENSE returns them.
var modePages = []modePage{
	{code: 0x01, values: readWriteErrorRecovery, changeable: newModePage(0x01, 0x0A), apply: func([]byte, *scsi.ModeState) {}},
	{code: 0x08, values: caching, changeable: cachingChangeable(), apply: applyCaching},
	{code: 0x0A, values: controlPage, changeable: controlChangeable(), apply: applyControl},
	{code: 0x1C, values: informationalExceptions, changeable: newModePage(0x1C, 0x0A), apply: func([]byte, *scsi.ModeState) {}},
}

// findModePage returns the page with the given code, or nil.
func findModePage(code byte) *modePage {
	for i := range modePages {
		if modePages[i].code == code {
			return &modePages[i]
		}
	}
	return nil
}

// newModePage returns a zeroed page_0 mode page with its PAGE CODE and
// PAGE LENGTH set (SPC-4, mode page format).
func newModePage(code byte, length int) []byte {
	b := make([]byte, 2+length)
	b[0] = code
	b[1] = byte(length)
	return b
}

// readWriteErrorRecovery is the Read-Write Error Recovery mode page
// (SBC-3): all zero, as LIO's.
func readWriteErrorRecovery(scsi.ModeState) []byte { return newModePage(0x01, 0x0A) }

// Caching mode page (SBC-3) bits.
const (
	cachingWCE = 0x04 // byte 2: write cache enable
	cachingDRA = 0x20 // byte 12: disable read-ahead
)

// caching is the Caching mode page: WCE from the mode state and DRA set,
// since odxtgt does not read ahead.
func caching(m scsi.ModeState) []byte {
	b := newModePage(0x08, 0x12)
	if m.WCE {
		b[2] |= cachingWCE
	}
	b[12] = cachingDRA
	return b
}

func cachingChangeable() []byte {
	b := newModePage(0x08, 0x12)
	b[2] = cachingWCE
	return b
}

func applyCaching(p []byte, m *scsi.ModeState) { m.WCE = p[2]&cachingWCE != 0 }

// Control mode page (SPC-4) bits.
const (
	controlDSense = 0x04 // byte 2: descriptor format sense data
	controlGLTSD  = 0x02 // byte 2: no implicit saving of log parameters
	controlQAM1   = 0x10 // byte 3: QUEUE ALGORITHM MODIFIER 1h, unrestricted reordering
	controlSWP    = 0x08 // byte 4: software write protect
)

// controlPage is the Control mode page: TST 000b (one task set), QAM 1h
// (SIMPLE tasks may run in any order, as the task set does), QERR 00b, TAS
// zero, UA_INTLCK_CTRL 00b, GLTSD set, BUSY TIMEOUT PERIOD FFFFh
// (unlimited) and EXTENDED SELF-TEST COMPLETION TIME 30 s, as LIO; D_SENSE
// and SWP from the mode state.
func controlPage(m scsi.ModeState) []byte {
	b := newModePage(0x0A, 0x0A)
	b[2] = controlGLTSD
	if m.DSense {
		b[2] |= controlDSense
	}
	b[3] = controlQAM1
	if m.SWP {
		b[4] |= controlSWP
	}
	binary.BigEndian.PutUint16(b[8:], 0xFFFF)
	binary.BigEndian.PutUint16(b[10:], 30)
	return b
}

func controlChangeable() []byte {
	b := newModePage(0x0A, 0x0A)
	b[2] = controlDSense
	b[4] = controlSWP
	return b
}

func applyControl(p []byte, m *scsi.ModeState) {
	m.DSense = p[2]&controlDSense != 0
	m.SWP = p[4]&controlSWP != 0
}

// informationalExceptions is the Informational Exceptions Control mode page
// (SPC-4): all zero (MRIE 0h, no reporting), as LIO's.
func informationalExceptions(scsi.ModeState) []byte { return newModePage(0x1C, 0x0A) }
