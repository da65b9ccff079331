package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// DefaultVendor and DefaultRevision are the T10 VENDOR IDENTIFICATION and
// PRODUCT REVISION LEVEL Linux LIO reports. Logical units take them in
// their [scsi.Identity] so that hosts migrated from LIO see the same
// device.
const (
	DefaultVendor   = "LIO-ORG"
	DefaultRevision = "4.0"
)

// cmdInquiry is INQUIRY (SPC-4). It runs while a unit attention is pending
// and for LUNs without a logical unit (SAM-5 and SPC-4).
// CMDDT (byte 1 bit 1) is obsolete and refused by the usage mask.
var cmdInquiry = scsi.CommandDesc{
	Name:               "INQUIRY",
	Opcode:             0x12,
	Usage:              []byte{0xFF, 0x01, 0xFF, 0xFF, 0xFF, control},
	Direction:          scsi.DirIn,
	Flags:              scsi.FlagIgnoresUA | scsi.FlagNoLU,
	NominalTimeout:     nominalTimeout,
	RecommendedTimeout: recommendedTimeout,
	Handler:            inquiry,
}

func inquiry(cmd *scsi.Command) error {
	cdb := cmd.CDB
	alloc := int(binary.BigEndian.Uint16(cdb[3:5]))
	if cdb[1]&0x01 == 0 {
		// SPC-4 INQUIRY: with EVPD zero the PAGE CODE field shall be
		// zero.
		if cdb[2] != 0 {
			return scsi.InvalidFieldInCDB(2, -1).WithReason("EVPD=0 with PAGE CODE %02xh", cdb[2])
		}
		cmd.SetDataIn(standardInquiry(cmd.LU()), alloc)
		return nil
	}
	page, err := vpdPage(cmd, cdb[2])
	if err != nil {
		return err
	}
	cmd.SetDataIn(page, alloc)
	return nil
}

// Version descriptors (SPC-4, standard INQUIRY data) LIO reports: the
// architecture, the transport, the primary and the device command set.
const (
	versionSAM5  = 0x00A0
	versionISCSI = 0x0960
	versionSPC4  = 0x0460
	versionSBC3  = 0x04C0
)

// standardInquiryLen is the length of the standard INQUIRY data: LIO's 96
// bytes, ADDITIONAL LENGTH 91.
const standardInquiryLen = 96

// standardInquiry returns the standard INQUIRY data (SPC-4).
func standardInquiry(lu *scsi.LU) []byte {
	b := make([]byte, standardInquiryLen)
	b[0] = lu.Peripheral()
	b[1] = 0x00 // RMB: not removable
	b[2] = 0x06 // VERSION: SPC-4
	b[3] = 0x02 // RESPONSE DATA FORMAT 2; NORMACA and HISUP zero, as LIO
	b[4] = standardInquiryLen - 5
	if lu.Present() && lu.Table.Find(opMaintenanceIn, saReportTargetPortGroups) != nil {
		// TPGS 01b: implicit asymmetric access only; REPORT TARGET PORT
		// GROUPS describes the single, active/optimized group.
		b[5] = 0x10
	}
	if lu.Present() && lu.Table.HasServiceActions(opThirdPartyCopyOut) {
		b[5] |= 0x08 // 3PC: third-party copy commands are supported
	}
	b[7] = 0x02 // CMDQUE: the task set is managed (SAM-5 task attributes)
	id := lu.Identity
	copy(b[8:16], scsi.ASCIIField(id.Vendor, 8))
	copy(b[16:32], scsi.ASCIIField(id.Product, 16))
	copy(b[32:36], scsi.ASCIIField(id.Revision, 4))
	for i, v := range []uint16{versionSAM5, versionISCSI, versionSPC4, versionSBC3} {
		binary.BigEndian.PutUint16(b[58+2*i:], v)
	}
	return b
}
