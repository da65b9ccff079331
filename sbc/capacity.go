package sbc

import (
	"encoding/binary"
	"math/bits"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// Sizes of the READ CAPACITY parameter data.
const (
	readCapacity10Len = 8
	readCapacity16Len = 32
)

// Bits of byte 14 of the READ CAPACITY (16) parameter data.
const (
	rc16LBPME = 0x80 // logical block provisioning management enabled
	rc16LBPRZ = 0x40 // deallocated blocks read as zeroes
)

// saReadCapacity16 is the service action of READ CAPACITY (16) under
// SERVICE ACTION IN (16), opcode 9Eh.
const saReadCapacity16 = 0x10

func capacityCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "READ CAPACITY (10)", Opcode: 0x25,
			// Bytes 2-5: LOGICAL BLOCK ADDRESS; byte 8 bit 0: PMI.
			Usage:     []byte{0xFF, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x01, 0x00},
			Direction: scsi.DirIn, Handler: readCapacity10,
			NominalTimeout: nominalInstant, RecommendedTimeout: recommendedInstant,
		},
		{
			Name: "READ CAPACITY (16)", Opcode: 0x9E,
			ServiceAction: saReadCapacity16, HasServiceAction: true,
			// Bytes 2-9: LOGICAL BLOCK ADDRESS; 10-13: ALLOCATION LENGTH;
			// byte 14 bit 0: PMI.
			Usage: []byte{0xFF, 0x1F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00},
			Direction: scsi.DirIn, Handler: readCapacity16,
			NominalTimeout: nominalInstant, RecommendedTimeout: recommendedInstant,
		},
	}
}

// checkPMI applies the rules for the LOGICAL BLOCK ADDRESS field and the PMI
// bit of READ CAPACITY (SBC-2; SBC-3 keeps the fields for compatibility):
// with PMI clear the LBA must be zero (INVALID FIELD IN CDB); with PMI set
// the device server reports the last LBA before a substantial delay at or
// after the given LBA, which for odxtgt, having no such delays, is the last
// LBA, so an LBA beyond it is out of range. lbaAt is the field's first byte.
func checkPMI(g geometry, lba uint64, pmi bool, lbaAt int) *scsi.Sense {
	switch {
	case !pmi && lba != 0:
		return scsi.InvalidFieldInCDB(lbaAt, -1).WithReason("LOGICAL BLOCK ADDRESS %d with PMI clear", lba)
	case pmi && lba >= g.blocks:
		return scsi.LBAOutOfRange().WithReason("PMI LBA %d beyond the last LBA %d", lba, g.blocks-1)
	}
	return nil
}

// readCapacity10 serves READ CAPACITY (10): RETURNED LOGICAL BLOCK ADDRESS
// and BLOCK LENGTH IN BYTES. A last LBA that does not fit in 32 bits is
// reported as FFFFFFFFh, telling the initiator to use READ CAPACITY (16)
// (SBC-3 READ CAPACITY (10) parameter data).
func readCapacity10(cmd *scsi.Command) error {
	g := geometryOf(cmd)
	lba := uint64(binary.BigEndian.Uint32(cmd.CDB[2:]))
	if s := checkPMI(g, lba, cmd.CDB[8]&0x01 != 0, 2); s != nil {
		return s
	}
	p := make([]byte, readCapacity10Len)
	binary.BigEndian.PutUint32(p[0:], uint32(min(g.blocks-1, 0xFFFFFFFF)))
	binary.BigEndian.PutUint32(p[4:], uint32(g.blockSize))
	cmd.SetDataIn(p, len(p))
	return nil
}

// readCapacity16 serves READ CAPACITY (16) (SBC-3 5.16.2). odxtgt has no
// protection information (P_TYPE and PROT_EN zero); LBPME and LBPRZ are set
// when the store can deallocate (see provisioningOf); the LOWEST ALIGNED
// LOGICAL BLOCK ADDRESS is zero. The parameter data is cut at the ALLOCATION LENGTH,
// zero being no data and no error (SPC-4 4.2.5.6).
func readCapacity16(cmd *scsi.Command) error {
	g := geometryOf(cmd)
	lba := binary.BigEndian.Uint64(cmd.CDB[2:])
	allocLen := binary.BigEndian.Uint32(cmd.CDB[10:])
	if s := checkPMI(g, lba, cmd.CDB[14]&0x01 != 0, 2); s != nil {
		return s
	}
	p := capacity16(cmd.LU())
	cmd.SetDataIn(p, int(min(allocLen, readCapacity16Len)))
	return nil
}

// capacity16 is the READ CAPACITY (16) parameter data of lu.
func capacity16(lu *scsi.LU) []byte {
	p := make([]byte, readCapacity16Len)
	binary.BigEndian.PutUint64(p[0:], lu.Blocks()-1)
	binary.BigEndian.PutUint32(p[8:], uint32(lu.Store.BlockSize()))
	p[13] = physicalBlockExponent(lu.Store) // P_I_EXPONENT (bits 7-4) zero
	if provisioningOf(lu).lbpme {
		p[14] = rc16LBPME | rc16LBPRZ
	}
	return p
}

// RODTokenDeviceData is the block device type specific data of the ROD
// tokens made from lu (SBC-3 ROD token device type specific data): what
// READ CAPACITY (16) reports from its LOGICAL BLOCK LENGTH on (block
// length, protection, blocks per physical block, provisioning), which
// ddptctl --info decodes from a token.
func RODTokenDeviceData(lu *scsi.LU) []byte { return capacity16(lu)[8:] }

// physicalBlockExponent is the LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT:
// log2 of physical over logical block size, zero when the store does not
// know its physical block size or the ratio is not a power of two that
// fits the 4-bit field.
func physicalBlockExponent(s backstore.Store) byte {
	ratio := uint(backstore.PhysicalBlockSize(s) / s.BlockSize())
	if ratio == 0 || ratio&(ratio-1) != 0 {
		return 0
	}
	exp := bits.TrailingZeros(ratio)
	if exp > 0x0F {
		return 0
	}
	return byte(exp)
}
