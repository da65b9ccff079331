package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// VPD page codes.
const (
	vpdSupportedPages             = 0x00
	vpdUnitSerialNumber           = 0x80
	vpdDeviceIdentification       = 0x83
	vpdExtendedInquiry            = 0x86
	vpdBlockLimits                = 0xB0
	vpdBlockDeviceCharacteristics = 0xB1
	vpdLogicalBlockProvisioning   = 0xB2
)

// supportedVPDPages lists the VPD pages of a logical unit, in ascending
// order as the Supported VPD Pages page requires (SPC-4). LIO also
// lists the Referrals page (B3h); odxtgt does not support referrals.
var supportedVPDPages = []byte{
	vpdSupportedPages,
	vpdUnitSerialNumber,
	vpdDeviceIdentification,
	vpdExtendedInquiry,
	vpdBlockLimits,
	vpdBlockDeviceCharacteristics,
	vpdLogicalBlockProvisioning,
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
	switch code {
	case vpdSupportedPages:
		return supportedPages(lu, supportedVPDPages), nil
	case vpdUnitSerialNumber:
		return unitSerialNumber(lu), nil
	case vpdDeviceIdentification:
		return deviceIdentification(lu, cmd.Nexus), nil
	case vpdExtendedInquiry:
		return extendedInquiry(lu), nil
	case vpdBlockLimits:
		return blockLimits(lu), nil
	case vpdBlockDeviceCharacteristics:
		// Block Device Characteristics (SBC-3): MEDIUM ROTATION
		// RATE and NOMINAL FORM FACTOR not reported, as LIO reports a
		// backstore not marked non-rotational.
		return newVPD(lu, code, 0x3C), nil
	case vpdLogicalBlockProvisioning:
		// Logical Block Provisioning (SBC-3): no UNMAP, no WRITE
		// SAME unmapping, fully provisioned; page length 4 without a
		// provisioning group descriptor.
		return newVPD(lu, code, 4), nil
	}
	return nil, scsi.InvalidFieldInCDB(2, -1).WithReason("unsupported VPD page %02xh", code)
}

// newVPD returns a zeroed VPD page with its 4-byte header filled in: the
// peripheral byte, the page code and a PAGE LENGTH of n.
func newVPD(lu *scsi.LU, code byte, n int) []byte {
	b := make([]byte, 4+n)
	b[0] = peripheral(lu)
	b[1] = code
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	return b
}

// supportedPages is the Supported VPD Pages page listing pages.
func supportedPages(lu *scsi.LU, pages []byte) []byte {
	b := newVPD(lu, vpdSupportedPages, len(pages))
	copy(b[4:], pages)
	return b
}

// unitSerialNumber is the Unit Serial Number page (SPC-4): the
// serial in ASCII followed by a NUL byte that LIO counts in the page
// length. Without a serial the page is empty, as LIO's.
func unitSerialNumber(lu *scsi.LU) []byte {
	serial := lu.Identity.Serial
	if serial == "" {
		return newVPD(lu, vpdUnitSerialNumber, 0)
	}
	b := newVPD(lu, vpdUnitSerialNumber, len(serial)+1)
	copy(b[4:], scsi.ASCIIField(serial, len(serial)))
	return b
}

// deviceIdentification is the Device Identification page (SPC-4)
// with the designators LIO reports, for the nexus the command came on.
func deviceIdentification(lu *scsi.LU, n *scsi.Nexus) []byte {
	b := newVPD(lu, vpdDeviceIdentification, 0)
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
	b := newVPD(lu, vpdExtendedInquiry, 0x3C)
	b[5] = 0x07 // HEADSUP, ORDSUP, SIMPSUP
	if lu.WriteCacheEnabled() {
		b[6] = 0x01 // V_SUP: a volatile cache that SYNCHRONIZE CACHE and FUA flush
	}
	return b
}

// opCompareAndWrite is the operation code of COMPARE AND WRITE (SBC-3),
// whose support the Block Limits page reports.
const opCompareAndWrite = 0x89

// blockLimits is the Block Limits page (SBC-3), page length 3Ch as
// SBC-3 defines it. Like LIO, it sets WSNZ (WRITE SAME with zero blocks is
// refused) and a MAXIMUM COMPARE AND WRITE LENGTH of one block when the
// command table has COMPARE AND WRITE. odxtgt has no UNMAP, so the unmap
// fields and the MAXIMUM WRITE SAME LENGTH are zero.
func blockLimits(lu *scsi.LU) []byte {
	b := newVPD(lu, vpdBlockLimits, 0x3C)
	bs := lu.Store.BlockSize()
	b[4] = 0x01 // WSNZ
	if lu.Table.Find(opCompareAndWrite, 0) != nil {
		b[5] = 1 // MAXIMUM COMPARE AND WRITE LENGTH
	}
	// OPTIMAL TRANSFER LENGTH GRANULARITY: the physical block, in logical
	// blocks.
	binary.BigEndian.PutUint16(b[6:], uint16(backstore.PhysicalBlockSize(lu.Store)/bs))
	maxBlocks := uint32(scsi.MaxTransferBytes / bs)
	binary.BigEndian.PutUint32(b[8:], maxBlocks)  // MAXIMUM TRANSFER LENGTH
	binary.BigEndian.PutUint32(b[12:], maxBlocks) // OPTIMAL TRANSFER LENGTH
	return b
}
