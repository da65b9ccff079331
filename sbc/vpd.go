package sbc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// VPD page codes of the block device pages (SBC-3 6.5).
const (
	vpdBlockLimits                = 0xB0
	vpdBlockDeviceCharacteristics = 0xB1
	vpdLogicalBlockProvisioning   = 0xB2
)

// opCompareAndWrite is the operation code of COMPARE AND WRITE (SBC-3),
// whose support the Block Limits page reports.
const opCompareAndWrite = 0x89

func vpdPages() []scsi.VPDPage {
	return []scsi.VPDPage{
		{Code: vpdBlockLimits, Name: "Block Limits", Build: func(cmd *scsi.Command) ([]byte, error) {
			return blockLimits(cmd.LU()), nil
		}},
		{Code: vpdBlockDeviceCharacteristics, Name: "Block Device Characteristics", Build: func(cmd *scsi.Command) ([]byte, error) {
			// MEDIUM ROTATION RATE and NOMINAL FORM FACTOR not reported,
			// as LIO reports a backstore not marked non-rotational.
			return scsi.NewVPD(cmd.LU(), vpdBlockDeviceCharacteristics, 0x3C), nil
		}},
		{Code: vpdLogicalBlockProvisioning, Name: "Logical Block Provisioning", Build: func(cmd *scsi.Command) ([]byte, error) {
			// No UNMAP, no WRITE SAME unmapping, fully provisioned; page
			// length 4 without a provisioning group descriptor.
			return scsi.NewVPD(cmd.LU(), vpdLogicalBlockProvisioning, 4), nil
		}},
	}
}

// blockLimits is the Block Limits page (SBC-3 6.5.3), page length 3Ch.
// Like LIO, it sets WSNZ (WRITE SAME with zero blocks is refused) and a
// MAXIMUM COMPARE AND WRITE LENGTH of one block when the command table has
// COMPARE AND WRITE. odxtgt has no UNMAP, so the unmap fields and the
// MAXIMUM WRITE SAME LENGTH are zero.
func blockLimits(lu *scsi.LU) []byte {
	b := scsi.NewVPD(lu, vpdBlockLimits, 0x3C)
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
