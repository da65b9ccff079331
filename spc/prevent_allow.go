package spc

import "github.com/odxtgt/odxtgt/scsi"

// cmdPreventAllowMediumRemoval is PREVENT ALLOW MEDIUM REMOVAL (SBC-3
// 5.13). odxtgt's media are not removable (RMB is zero), so preventing or
// allowing removal changes nothing and both are accepted; the obsolete
// PREVENT values 10b and 11b are refused.
var cmdPreventAllowMediumRemoval = scsi.CommandDesc{
	Name:               "PREVENT ALLOW MEDIUM REMOVAL",
	Opcode:             0x1E,
	Usage:              []byte{0xFF, 0x00, 0x00, 0x00, 0x03, control},
	Direction:          scsi.DirNone,
	NominalTimeout:     nominalTimeout,
	RecommendedTimeout: recommendedTimeout,
	Handler:            preventAllowMediumRemoval,
}

func preventAllowMediumRemoval(cmd *scsi.Command) error {
	if prevent := cmd.CDB[4] & 0x03; prevent > 1 {
		return scsi.InvalidFieldInCDB(4, 1).WithReason("obsolete PREVENT value %d", prevent)
	}
	return nil
}
