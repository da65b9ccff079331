package sbc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// maxCompareAndWriteBlocks is the MAXIMUM COMPARE AND WRITE LENGTH of the
// Block Limits VPD page: the most the one-byte NUMBER OF LOGICAL BLOCKS
// field can hold. VMware's atomic test and set uses one block; libiscsi
// tests every length up to the limit. The blocks compared fit one
// verifyChunk buffer for every supported block size.
const maxCompareAndWriteBlocks = 255

// Fields of the COMPARE AND WRITE CDB (SBC-3 5.3).
const (
	cawLBAAt    = 2  // LOGICAL BLOCK ADDRESS, 8 bytes
	cawBlocksAt = 13 // NUMBER OF LOGICAL BLOCKS, 1 byte
)

// The blocks read for the comparison come from the verify buffer pool: a
// compile-time check that they fit.
const _ uint = verifyChunk - maxCompareAndWriteBlocks*backstore.BlockSize4096

func compareAndWriteCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "COMPARE AND WRITE", Opcode: opCompareAndWrite,
			// Byte 1: DPO, FUA, FUA_NV (WRPROTECT stays clear); bytes
			// 2-9: LBA; byte 13: NUMBER OF LOGICAL BLOCKS; byte 14:
			// GROUP NUMBER.
			Usage: []byte{0xFF, rwByte1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0x00, 0x00, 0x00, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: compareAndWrite,
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
	}
}

// compareAndWrite serves COMPARE AND WRITE (SBC-3 5.3). The Data-Out
// Buffer holds NUMBER OF LOGICAL BLOCKS blocks of verify data followed by
// as many blocks of write data. Holding the range exclusively, against
// every other writer (they all take the extent lock), the device server
// reads the blocks and compares them with the verify data; if they all
// match it writes the write data, otherwise it writes nothing and ends the
// command with MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION, the
// INFORMATION field holding the offset of the first byte that differs from
// the start of the Data-Out Buffer (that is, of the verify data).
//
// A NUMBER OF LOGICAL BLOCKS of zero compares and writes nothing and is
// not an error; the MAXIMUM COMPARE AND WRITE LENGTH is the largest value
// the field holds, so no value exceeds it. The Data-Out Buffer must be exactly twice the blocks: a
// shortfall is refused as [scsi.Command.TakeDataOut] refuses one, and more
// data is INVALID FIELD IN CDB naming NUMBER OF LOGICAL BLOCKS, because
// the halves of the buffer can only be told apart by that field, and an
// initiator sending more means another value (libiscsi 1.19 sends 256
// blocks, which the one-byte field holds as zero, and expects that). FUA
// writes through; DPO is a cache hint, honoured by ignoring it.
func compareAndWrite(cmd *scsi.Command) error {
	g := geometryOf(cmd)
	e := extent{LBA: binary.BigEndian.Uint64(cmd.CDB[cawLBAAt:]), Blocks: uint64(cmd.CDB[cawBlocksAt]), LengthAt: cawBlocksAt}
	if s := g.checkRange(e); s != nil {
		return s
	}
	n := g.bytes(e.Blocks)
	p, err := takeExactDataOut(cmd, 2*n, cawBlocksAt)
	if err != nil {
		return err
	}
	if e.Blocks == 0 {
		return nil
	}
	verifyData, writeData := p[:n], p[n:]
	lu := cmd.LU()
	unlock, err := lu.LockExtent(cmd.Context(), e.LBA, e.Blocks, scsi.ExtentExclusive)
	if err != nil {
		return scsi.TaskAborted()
	}
	defer unlock()
	buf := verifyBuffers.Get().(*[]byte)
	defer verifyBuffers.Put(buf)
	medium := (*buf)[:n]
	if err := lu.Store.ReadAt(medium, g.offset(e.LBA)); err != nil {
		return scsi.ReadError(err, e.LBA)
	}
	if d := firstDifference(medium, verifyData); d >= 0 {
		return scsi.NewSense(scsi.Miscompare, scsi.ASCMiscompareDuringVerify).
			WithInformation(uint64(d)).
			WithReason("first difference at byte %d of the verify data (LBA %d)", d, e.LBA+uint64(d/g.blockSize))
	}
	if err := lu.Store.WriteAt(writeData, g.offset(e.LBA), forceUnitAccess(cmd, true)); err != nil {
		return scsi.WriteError(err, e.LBA)
	}
	return nil
}
