package spc

import "github.com/odxtgt/odxtgt/scsi"

// reserveReleaseCommands are RESERVE and RELEASE (6) and (10) (SPC-2
// 7.21, 7.22; obsolete in SPC-4 but still sent by initiators and by
// libiscsi's tests). Third-party reservations (3RDPTY, LONGID, the
// THIRD-PARTY DEVICE ID and the parameter list) and the obsolete extent
// fields are not implemented: the usage masks refuse every bit but the
// operation code, so the whole logical unit is reserved for the I_T nexus
// that sends the command. See scsi.LU.Reserve for how they meet
// persistent reservations.
func reserveReleaseCommands() []scsi.CommandDesc {
	desc := func(name string, op byte, cdbLen int, h scsi.Handler) scsi.CommandDesc {
		usage := make([]byte, cdbLen)
		usage[0], usage[cdbLen-1] = 0xFF, control
		return scsi.CommandDesc{
			Name: name, Opcode: op, Usage: usage, Direction: scsi.DirNone,
			NominalTimeout: nominalTimeout, RecommendedTimeout: recommendedTimeout,
			Handler: h,
		}
	}
	reserve := func(cmd *scsi.Command) error { return cmd.LU().Reserve(cmd.Nexus) }
	release := func(cmd *scsi.Command) error { return cmd.LU().Release(cmd.Nexus) }
	return []scsi.CommandDesc{
		desc("RESERVE (6)", 0x16, 6, reserve),
		desc("RELEASE (6)", 0x17, 6, release),
		desc("RESERVE (10)", 0x56, 10, reserve),
		desc("RELEASE (10)", 0x57, 10, release),
	}
}
