package sbc

import "github.com/odxtgt/odxtgt/scsi"

func writeCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "WRITE (6)", Opcode: 0x0A,
			Usage:     []byte{0xFF, 0x1F, 0xFF, 0xFF, 0xFF, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: write(layout6, false),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "WRITE (10)", Opcode: 0x2A,
			Usage: []byte{0xFF, rwByte1, 0xFF, 0xFF, 0xFF, 0xFF, groupNumber,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: write(layout10, true),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "WRITE (12)", Opcode: 0xAA,
			Usage: []byte{0xFF, rwByte1, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: write(layout12, true),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "WRITE (16)", Opcode: 0x8A,
			Usage: []byte{0xFF, rwByte1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: write(layout16, true),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
	}
}

// write returns the handler of a WRITE command with the given CDB layout;
// hasFUA is false for WRITE (6), which has no FUA bit.
func write(l layout, hasFUA bool) scsi.Handler {
	return func(cmd *scsi.Command) error {
		g, e, p, err := takeWrite(cmd, l)
		if err != nil || e.Blocks == 0 {
			return err
		}
		lu := cmd.LU()
		unlock, err := lu.LockExtent(cmd.Context(), e.LBA, e.Blocks, scsi.ExtentExclusive)
		if err != nil {
			return scsi.TaskAborted()
		}
		defer unlock()
		if err := lu.Store.WriteAt(p, g.offset(e.LBA), forceUnitAccess(cmd, hasFUA)); err != nil {
			return scsi.WriteError(err, e.LBA)
		}
		return nil
	}
}

// takeWrite decodes the CDB of a command that writes the data-out, with
// layout l, checks its range and takes the whole blocks of data-out the
// transport carried: the extent it returns covers exactly those blocks.
// Blocks is zero when there is nothing to write, which is not an error
// (SBC-3 WRITE (10): a TRANSFER LENGTH of zero writes nothing; nor does a
// transfer the transport cut to nothing).
func takeWrite(cmd *scsi.Command, l layout) (geometry, extent, []byte, error) {
	g := geometryOf(cmd)
	e := l.decode(cmd.CDB)
	if s := g.checkTransfer(e); s != nil {
		return g, e, nil, s
	}
	p, err := cmd.TakeDataOutBlocks(g.bytes(e.Blocks), g.blockSize)
	if err != nil {
		return g, e, nil, err
	}
	e.Blocks = uint64(len(p) / g.blockSize)
	return g, e, p, nil
}

// forceUnitAccess reports whether a write must be on the medium before
// GOOD: the CDB's FUA bit is set, or the write cache is disabled (WCE=0 in
// the caching mode page, SBC-3 6.4.5), in which case every write is written
// through.
func forceUnitAccess(cmd *scsi.Command, hasFUA bool) bool {
	if hasFUA && cmd.CDB[1]&bitFUA != 0 {
		return true
	}
	return !cmd.LU().WriteCacheEnabled()
}
