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
			return logicalBlockProvisioning(cmd.LU()), nil
		}},
	}
}

// Operation codes whose support the VPD pages report.
const (
	opWriteSame10 = 0x41
	opWriteSame16 = 0x93
)

// blockLimits is the Block Limits page (SBC-3 6.6.3), page length 3Ch.
// WSNZ is clear: WRITE SAME with zero blocks writes through the last
// block (LIO sets WSNZ and refuses it; SBC-3 allows either). Each
// limit is reported only when the command table has the command it
// limits: MAXIMUM COMPARE AND WRITE LENGTH, MAXIMUM WRITE SAME LENGTH, and
// the UNMAP fields, which also need a store that can deallocate. The
// OPTIMAL UNMAP GRANULARITY is the physical block, with UGAVALID set and
// an UNMAP GRANULARITY ALIGNMENT of zero (the lowest aligned LBA); any
// range may be unmapped, the bytes of blocks a granule only partly covers
// being zeroed.
func blockLimits(lu *scsi.LU) []byte {
	b := scsi.NewVPD(lu, vpdBlockLimits, 0x3C)
	bs := lu.Store.BlockSize()
	// Byte 4: WSNZ clear.
	if lu.Table.Find(opCompareAndWrite, 0) != nil {
		b[5] = maxCompareAndWriteBlocks // MAXIMUM COMPARE AND WRITE LENGTH
	}
	// OPTIMAL TRANSFER LENGTH GRANULARITY: the physical block, in logical
	// blocks.
	physBlocks := uint32(backstore.PhysicalBlockSize(lu.Store) / bs)
	binary.BigEndian.PutUint16(b[6:], uint16(physBlocks))
	maxBlocks := uint32(scsi.MaxTransferBytes / bs)
	binary.BigEndian.PutUint32(b[8:], maxBlocks)  // MAXIMUM TRANSFER LENGTH
	binary.BigEndian.PutUint32(b[12:], maxBlocks) // OPTIMAL TRANSFER LENGTH
	if provisioningOf(lu).lbpme && lu.Table.Find(opUnmap, 0) != nil {
		binary.BigEndian.PutUint32(b[20:], maxUnmapLBACount)    // MAXIMUM UNMAP LBA COUNT
		binary.BigEndian.PutUint32(b[24:], maxUnmapDescriptors) // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
		binary.BigEndian.PutUint32(b[28:], physBlocks)          // OPTIMAL UNMAP GRANULARITY
		b[32] = 0x80                                            // UGAVALID; UNMAP GRANULARITY ALIGNMENT 0
	}
	if lu.Table.Find(opWriteSame10, 0) != nil || lu.Table.Find(opWriteSame16, 0) != nil {
		binary.BigEndian.PutUint64(b[36:], maxWriteSameBlocks) // MAXIMUM WRITE SAME LENGTH
	}
	return b
}

// Bits of byte 5 of the Logical Block Provisioning page.
const (
	lbpLBPU    = 0x80 // UNMAP is supported
	lbpLBPWS   = 0x40 // WRITE SAME (16) with UNMAP set may deallocate
	lbpLBPWS10 = 0x20 // WRITE SAME (10) with UNMAP set may deallocate
	lbpLBPRZ   = 0x04 // deallocated blocks read as zeroes
)

// provisioningThin is the PROVISIONING TYPE of a thin provisioned logical
// unit (byte 6, bits 2-0).
const provisioningThin = 0x2

// logicalBlockProvisioning is the Logical Block Provisioning page (SBC-3
// 6.6.4), page length 4, without a provisioning group descriptor (DP
// zero), with no thresholds (THRESHOLD EXPONENT zero) and no anchored
// blocks (ANC_SUP zero). See provisioningOf for what is reported when.
func logicalBlockProvisioning(lu *scsi.LU) []byte {
	b := scsi.NewVPD(lu, vpdLogicalBlockProvisioning, 4)
	p := provisioningOf(lu)
	if !p.lbpme {
		return b
	}
	if lu.Table.Find(opUnmap, 0) != nil {
		b[5] |= lbpLBPU
	}
	if lu.Table.Find(opWriteSame16, 0) != nil {
		b[5] |= lbpLBPWS
	}
	if lu.Table.Find(opWriteSame10, 0) != nil {
		b[5] |= lbpLBPWS10
	}
	b[5] |= lbpLBPRZ
	if p.thin {
		b[6] = provisioningThin
	}
	return b
}
