package sbc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// READ DEFECT DATA byte fields (SBC-3 5.11 and 5.12): REQ_PLIST, REQ_GLIST
// and the DEFECT LIST FORMAT.
const (
	reqPList         = 0x10
	reqGList         = 0x08
	defectFormatMask = 0x07
)

func defectCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "READ DEFECT DATA (10)", Opcode: 0x37,
			Usage: []byte{0xFF, 0x00, reqPList | reqGList | defectFormatMask, 0x00, 0x00, 0x00, 0x00,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirIn, Handler: readDefectData10,
			NominalTimeout: nominalInstant, RecommendedTimeout: recommendedInstant,
		},
		{
			Name: "READ DEFECT DATA (12)", Opcode: 0xB7,
			Usage: []byte{0xFF, reqPList | reqGList | defectFormatMask, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00},
			Direction: scsi.DirIn, Handler: readDefectData12,
			NominalTimeout: nominalInstant, RecommendedTimeout: recommendedInstant,
		},
	}
}

// defectListHeaderByte returns byte 1 of the defect list header: the
// PLISTV and GLISTV bits and the format. A backstore has no defects of its
// own, so both lists exist and are empty; every defined format describes an
// empty list equally well, so the one requested is the one returned. The
// reserved formats 001b, 010b and 111b are invalid fields.
func defectListHeaderByte(b byte, field int) (byte, *scsi.Sense) {
	switch f := b & defectFormatMask; f {
	case 1, 2, 7:
		return 0, scsi.InvalidFieldInCDB(field, 2)
	}
	return b & (reqPList | reqGList | defectFormatMask), nil
}

// readDefectData10 answers READ DEFECT DATA (10) with a 4-byte header and an
// empty list (SBC-3 5.11).
func readDefectData10(cmd *scsi.Command) error {
	h, s := defectListHeaderByte(cmd.CDB[2], 2)
	if s != nil {
		return s
	}
	cmd.SetDataIn([]byte{0, h, 0, 0}, int(binary.BigEndian.Uint16(cmd.CDB[7:])))
	return nil
}

// readDefectData12 answers READ DEFECT DATA (12) with an 8-byte header and
// an empty list (SBC-3 5.12).
func readDefectData12(cmd *scsi.Command) error {
	h, s := defectListHeaderByte(cmd.CDB[1], 1)
	if s != nil {
		return s
	}
	cmd.SetDataIn([]byte{0, h, 0, 0, 0, 0, 0, 0}, int(binary.BigEndian.Uint32(cmd.CDB[6:])))
	return nil
}
