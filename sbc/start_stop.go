package sbc

import "github.com/odxtgt/odxtgt/scsi"

// Bits of START STOP UNIT byte 4 (SBC-3 5.25).
const (
	bitStart   = 0x01
	bitNoFlush = 0x04 // LOEJ, bit 1, is not supported
)

func startStopCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{{
		Name: "START STOP UNIT", Opcode: 0x1B,
		// Byte 1: IMMED. Byte 3 (POWER CONDITION MODIFIER) and byte 4's
		// POWER CONDITION (bits 7-4) and LOEJ are left out: odxtgt has no
		// power conditions and no removable medium, so the dispatcher
		// refuses them with INVALID FIELD IN CDB pointing at the field.
		Usage:     []byte{0xFF, 0x01, 0x00, 0x00, bitNoFlush | bitStart, 0x00},
		Direction: scsi.DirNone, Handler: startStopUnit,
		NominalTimeout: nominalInstant, RecommendedTimeout: recommendedInstant,
	}}
}

// startStopUnit serves START STOP UNIT for a fixed disk that is always
// spinning (SBC-3 5.25, with POWER CONDITION 0h START_VALID). START=1 asks
// for the active state the logical unit is already in: GOOD, whatever IMMED
// says. START=0 would move it to the stopped power condition, where medium
// access commands fail with NOT READY until the next START; odxtgt does not
// model that state, so, like LIO, it refuses the request rather than
// pretend: INVALID FIELD IN CDB pointing at the START bit. NO_FLUSH only
// qualifies a stop and so has nothing to do.
func startStopUnit(cmd *scsi.Command) error {
	if cmd.CDB[4]&bitStart == 0 {
		return scsi.InvalidFieldInCDB(4, 0).WithReason("the stopped power condition is not supported")
	}
	return nil
}
