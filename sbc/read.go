package sbc

import "github.com/odxtgt/odxtgt/scsi"

// Bits of CDB byte 1 shared by the 10-, 12- and 16-byte READ and WRITE
// commands (SBC-3 READ (10), WRITE (10)). RDPROTECT/WRPROTECT (bits 7-5)
// are left out of every usage mask: without protection information they
// must be zero.
const (
	bitDPO   = 0x10 // disable page out: a cache hint, honoured by ignoring it
	bitFUA   = 0x08 // force unit access
	bitFUANV = 0x02 // FUA_NV: with NV_SUP zero it asks for nothing more than FUA=0 does
)

// rwByte1 is the usage of byte 1 of READ/WRITE (10, 12, 16).
const rwByte1 = bitDPO | bitFUA | bitFUANV

// groupNumber is the usage of the byte holding the GROUP NUMBER field
// (bits 4-0); its reserved bits and the bit restricted for MMC stay clear.
const groupNumber = 0x1F

func readCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "READ (6)", Opcode: 0x08,
			Usage:     []byte{0xFF, 0x1F, 0xFF, 0xFF, 0xFF, 0x00},
			Direction: scsi.DirIn, Handler: read(layout6, false),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "READ (10)", Opcode: 0x28,
			Usage: []byte{0xFF, rwByte1, 0xFF, 0xFF, 0xFF, 0xFF, groupNumber,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirIn, Handler: read(layout10, true),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "READ (12)", Opcode: 0xA8,
			Usage: []byte{0xFF, rwByte1, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirIn, Handler: read(layout12, true),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "READ (16)", Opcode: 0x88,
			Usage: []byte{0xFF, rwByte1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirIn, Handler: read(layout16, true),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
	}
}

// read returns the handler of a READ command with the given CDB layout;
// hasFUA is false for READ (6), which has no FUA bit.
func read(l layout, hasFUA bool) scsi.Handler {
	return func(cmd *scsi.Command) error {
		g := geometryOf(cmd)
		e := l.decode(cmd.CDB)
		if s := g.checkTransfer(e); s != nil {
			return s
		}
		if e.Blocks == 0 {
			// SBC-3 READ (10): a TRANSFER LENGTH of zero reads nothing
			// and is not an error.
			return nil
		}
		store := cmd.LU().Store
		if hasFUA && cmd.CDB[1]&bitFUA != 0 {
			// FUA on a read asks for the data from the medium: a newer
			// version still in a volatile cache is written to the medium
			// first (SBC-3 READ (10), force unit access for reads).
			if err := store.Sync(); err != nil {
				return scsi.SyncError(err)
			}
		}
		// The blocks are held shared, so a write of them (held
		// exclusive) ends before the read or starts after it: every block
		// reads whole, old or new. The store alone does not promise that:
		// Linux takes no lock for a buffered read of a file or block
		// device, and one racing a write of the same block can copy part
		// of each.
		unlock, err := cmd.LU().LockExtent(cmd.Context(), e.LBA, e.Blocks, scsi.ExtentShared)
		if err != nil {
			return scsi.TaskAborted()
		}
		defer unlock()
		p := cmd.AllocDataIn(g.bytes(e.Blocks))
		if err := store.ReadAt(p, g.offset(e.LBA)); err != nil {
			return scsi.ReadError(err, e.LBA)
		}
		return nil
	}
}
