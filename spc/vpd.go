package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// VPD page codes of the pages this package registers.
const (
	vpdSupportedPages       = 0x00
	vpdUnitSerialNumber     = 0x80
	vpdDeviceIdentification = 0x83
	vpdExtendedInquiry      = 0x86
)

// vpdPages are the VPD pages every device has. The Supported VPD Pages
// page lists whatever the table holds, so block pages come from sbc and
// the third-party copy page from the copy commands. LIO also lists the
// Referrals page (B3h); odxtgt does not support referrals.
func vpdPages() []scsi.VPDPage {
	return []scsi.VPDPage{
		{Code: vpdSupportedPages, Name: "Supported VPD Pages", Build: func(cmd *scsi.Command) ([]byte, error) {
			return supportedPages(cmd.LU(), cmd.LU().Table.VPDCodes()), nil
		}},
		{Code: vpdUnitSerialNumber, Name: "Unit Serial Number", Build: func(cmd *scsi.Command) ([]byte, error) {
			return unitSerialNumber(cmd.LU()), nil
		}},
		{Code: vpdDeviceIdentification, Name: "Device Identification", Build: func(cmd *scsi.Command) ([]byte, error) {
			return deviceIdentification(cmd.LU(), cmd.Nexus), nil
		}},
		{Code: vpdExtendedInquiry, Name: "Extended INQUIRY Data", Build: func(cmd *scsi.Command) ([]byte, error) {
			return extendedInquiry(cmd.LU()), nil
		}},
	}
}

// vpdPage returns the VPD page with the given code, or INVALID FIELD IN
// CDB pointing at the PAGE CODE for a page the logical unit lacks. The
// absent logical unit has only the Supported VPD Pages page.
func vpdPage(cmd *scsi.Command, code byte) ([]byte, error) {
	lu := cmd.LU()
	if !lu.Present() {
		if code != vpdSupportedPages {
			return nil, scsi.InvalidFieldInCDB(2, -1).WithReason("VPD page %02xh of an absent logical unit", code)
		}
		return supportedPages(lu, []byte{vpdSupportedPages}), nil
	}
	p := lu.Table.VPDPage(code)
	if p == nil {
		return nil, scsi.InvalidFieldInCDB(2, -1).WithReason("unsupported VPD page %02xh", code)
	}
	return p.Build(cmd)
}

// supportedPages is the Supported VPD Pages page listing pages.
func supportedPages(lu *scsi.LU, pages []byte) []byte {
	b := scsi.NewVPD(lu, vpdSupportedPages, len(pages))
	copy(b[4:], pages)
	return b
}

// unitSerialNumber is the Unit Serial Number page (SPC-4): the
// serial in ASCII followed by a NUL byte that LIO counts in the page
// length. Without a serial the page is empty, as LIO's.
func unitSerialNumber(lu *scsi.LU) []byte {
	serial := lu.Identity.Serial
	if serial == "" {
		return scsi.NewVPD(lu, vpdUnitSerialNumber, 0)
	}
	b := scsi.NewVPD(lu, vpdUnitSerialNumber, len(serial)+1)
	copy(b[4:], scsi.ASCIIField(serial, len(serial)))
	return b
}

// deviceIdentification is the Device Identification page (SPC-4)
// with the designators LIO reports, for the nexus the command came on.
func deviceIdentification(lu *scsi.LU, n *scsi.Nexus) []byte {
	b := scsi.NewVPD(lu, vpdDeviceIdentification, 0)
	for _, d := range lu.Designators(n) {
		b = d.AppendTo(b)
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-4))
	return b
}

// extendedInquiry is the Extended INQUIRY Data page (SPC-4): the
// task set supports HEAD OF QUEUE, ORDERED and SIMPLE tasks, and V_SUP
// follows the write cache, as in LIO.
func extendedInquiry(lu *scsi.LU) []byte {
	b := scsi.NewVPD(lu, vpdExtendedInquiry, 0x3C)
	b[5] = 0x07 // HEADSUP, ORDSUP, SIMPSUP
	if lu.WriteCacheEnabled() {
		b[6] = 0x01 // V_SUP: a volatile cache that SYNCHRONIZE CACHE and FUA flush
	}
	return b
}
