package scsi

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// CommandSet is what one command package contributes to a device: its
// commands and the VPD pages that describe them. A device's table is
// built from the sets of the packages it is made of, so INQUIRY's list of
// supported pages, REPORT SUPPORTED OPERATION CODES and the capability
// bits that depend on a command follow what is really there.
type CommandSet struct {
	Commands []CommandDesc
	VPDPages []VPDPage
}

// VPDPage is one vital product data page (SPC-4 7.8).
type VPDPage struct {
	Code byte
	Name string
	// Build returns the whole page, its 4-byte header included (see
	// NewVPD), for the logical unit the command addresses. It is never
	// called for the absent logical unit.
	Build func(cmd *Command) ([]byte, error)
}

// VPDPage returns the page registered with code, or nil.
func (t *Table) VPDPage(code byte) *VPDPage { return t.vpd[code] }

// VPDCodes returns the codes of the registered pages in ascending order,
// as the Supported VPD Pages page lists them (SPC-4 7.8.13).
func (t *Table) VPDCodes() []byte { return t.vpdCodes }

func (t *Table) addVPD(p *VPDPage) error {
	if p.Build == nil {
		return fmt.Errorf("VPD page %02xh (%s): no Build function", p.Code, p.Name)
	}
	if t.vpd[p.Code] != nil {
		return fmt.Errorf("VPD page %02xh (%s): registered twice", p.Code, p.Name)
	}
	t.vpd[p.Code] = p
	t.vpdCodes = append(t.vpdCodes, p.Code)
	slices.Sort(t.vpdCodes)
	return nil
}

// Peripheral returns byte 0 of INQUIRY and VPD data: PERIPHERAL QUALIFIER
// and PERIPHERAL DEVICE TYPE (SPC-4 6.6.2): 000b and a direct access block
// device for a logical unit, 011b and 1Fh for the absent one.
func (lu *LU) Peripheral() byte {
	if !lu.Present() {
		return 0x7F
	}
	return 0x00
}

// NewVPD returns a zeroed VPD page of n bytes after its 4-byte header,
// with the header filled in: the peripheral byte, the page code and a
// PAGE LENGTH of n.
func NewVPD(lu *LU, code byte, n int) []byte {
	b := make([]byte, 4+n)
	b[0] = lu.Peripheral()
	b[1] = code
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	return b
}
