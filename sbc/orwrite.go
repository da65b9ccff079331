package sbc

import "github.com/odxtgt/odxtgt/scsi"

func orWriteCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "ORWRITE (16)", Opcode: 0x8B,
			// Byte 1: DPO, FUA, FUA_NV (ORPROTECT stays clear); bytes
			// 2-9: LBA; 10-13: TRANSFER LENGTH; byte 14: GROUP NUMBER.
			Usage: []byte{0xFF, rwByte1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: orWrite,
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
	}
}

// orWrite serves ORWRITE (16) (SBC-3 5.9): each block of the range becomes
// the bitwise OR of what it held and the data-out, read and written under
// an exclusive extent lock, so no other writer comes between the read and
// the write. Lengths, range and data-out follow the rules of WRITE (see
// the package documentation): a TRANSFER LENGTH of zero writes nothing,
// and only the whole blocks the transport carried are changed.
func orWrite(cmd *scsi.Command) error {
	g, e, p, err := takeWrite(cmd, layout16)
	if err != nil || e.Blocks == 0 {
		return err
	}
	lu := cmd.LU()
	unlock, err := lu.LockExtent(cmd.Context(), e.LBA, e.Blocks, scsi.ExtentExclusive)
	if err != nil {
		return scsi.TaskAborted()
	}
	defer unlock()
	buf := verifyBuffers.Get().(*[]byte)
	defer verifyBuffers.Put(buf)
	fua := forceUnitAccess(cmd, true)
	for off := 0; off < len(p); off += verifyChunk {
		src := p[off:min(off+verifyChunk, len(p))]
		lba := e.LBA + uint64(off/g.blockSize)
		medium := (*buf)[:len(src)]
		if err := lu.Store.ReadAt(medium, g.offset(lba)); err != nil {
			return scsi.ReadError(err, lba)
		}
		for i, b := range src {
			medium[i] |= b
		}
		if err := lu.Store.WriteAt(medium, g.offset(lba), fua); err != nil {
			return scsi.WriteError(err, lba)
		}
	}
	return nil
}
