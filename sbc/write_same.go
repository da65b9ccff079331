package sbc

import "github.com/odxtgt/odxtgt/scsi"

// Bits of byte 1 of WRITE SAME (10) and (16) (SBC-3 5.44, 5.45). WRPROTECT
// (bits 7-5) and ANCHOR (bit 4) are outside both usage masks: odxtgt has no
// protection information and no anchored blocks (ANC_SUP zero), and SBC-3
// asks for INVALID FIELD IN CDB for ANCHOR set then, whatever UNMAP says.
// WRITE SAME (32) is not offered: without protection information no
// initiator needs it, and libiscsi 1.19 cannot read the 32 bytes of its
// usage data (ReportSupportedOpcodes.OneCommand would fail).
const (
	wsUnmap = 0x08 // UNMAP: deallocate where the data is zeroes
	wsNDOB  = 0x01 // NDOB: no Data-Out Buffer, the block is zeroes (16 only)
)

// maxWriteSameBlocks is the MAXIMUM WRITE SAME LENGTH of the Block Limits
// VPD page, LIO's default: 32 MiB of 512-byte blocks, 256 MiB of 4096-byte
// blocks per command, written a chunk at a time.
const maxWriteSameBlocks = 0xFFFF

func writeSameCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "WRITE SAME (10)", Opcode: 0x41,
			Usage: []byte{0xFF, wsUnmap, 0xFF, 0xFF, 0xFF, 0xFF, groupNumber,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium,
			Handler:        writeSame(layout10),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "WRITE SAME (16)", Opcode: 0x93,
			Usage: []byte{0xFF, wsUnmap | wsNDOB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium,
			Handler:        writeSame(layout16),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
	}
}

// writeSame returns the handler of a WRITE SAME command with the given
// layout.
//
// SBC-3 5.44: the device server writes the one block of the Data-Out
// Buffer to every block of the range. WSNZ is clear (unlike LIO, which
// sets it), so a NUMBER OF LOGICAL BLOCKS of zero means from the LBA
// through the last block of the medium: an LBA past the last block is
// LOGICAL BLOCK ADDRESS OUT OF RANGE, and a range to the end longer than
// the MAXIMUM WRITE SAME LENGTH is INVALID FIELD IN CDB, as an explicit
// number above it is (SBC-3 6.6.3). With NDOB set (WRITE SAME (16); the usage mask of
// WRITE SAME (10) refuses it) no data is transferred and the block is
// zeroes. With UNMAP set on a logical unit with logical block
// provisioning management, the range is deallocated whatever the block
// holds (SBC-4, the ANCHOR and UNMAP bits of WRITE SAME: UNMAP one, ANCHOR
// zero is an unmap operation; the Data-Out Buffer is still transferred and
// checked): LBPRZ is set, so the blocks then read as zeroes, and a store
// that cannot deallocate a piece zeroes it instead. Without UNMAP, or on a
// logical unit that cannot deallocate (LBPME clear, where the bit has no
// effect), a block of zeroes is zeroed by the store
// ([backstore.WriteZeroes]), which reads back the same as writing it, and
// any other block is written.
//
// The Data-Out Buffer must be exactly one block: more or less means the
// initiator has another block size in mind, and writing part of its
// buffer, or a block of it, everywhere would spread the wrong data.
func writeSame(l layout) scsi.Handler {
	return func(cmd *scsi.Command) error {
		g := geometryOf(cmd)
		e := l.decode(cmd.CDB)
		flags := cmd.CDB[1]
		if e.Blocks == 0 {
			if e.LBA >= g.blocks {
				return scsi.LBAOutOfRange().
					WithReason("LBA %d is past the last block %d (NUMBER OF LOGICAL BLOCKS zero: through the last block)", e.LBA, g.blocks-1)
			}
			e.Blocks = g.blocks - e.LBA
			if e.Blocks > maxWriteSameBlocks {
				return scsi.InvalidFieldInCDB(e.LengthAt, -1).
					WithReason("NUMBER OF LOGICAL BLOCKS zero: the %d blocks from LBA %d to the end exceed the MAXIMUM WRITE SAME LENGTH %d", e.Blocks, e.LBA, maxWriteSameBlocks)
			}
		} else if e.Blocks > maxWriteSameBlocks {
			return scsi.InvalidFieldInCDB(e.LengthAt, -1).
				WithReason("NUMBER OF LOGICAL BLOCKS %d exceeds the MAXIMUM WRITE SAME LENGTH %d", e.Blocks, maxWriteSameBlocks)
		}
		if s := g.checkRange(e); s != nil {
			return s
		}
		want := g.blockSize
		if flags&wsNDOB != 0 {
			want = 0
		}
		block, err := takeExactDataOut(cmd, want, -1)
		if err != nil {
			return err
		}
		unmap := flags&wsUnmap != 0 && provisioningOf(cmd.LU()).lbpme
		if want == 0 || unmap || allZero(block) {
			return zeroBlocks(cmd, g, e.LBA, e.Blocks, flags&wsUnmap != 0)
		}
		return writeRepeated(cmd, g, e, block)
	}
}

// takeExactDataOut is [scsi.Command.TakeDataOut] for commands whose
// Data-Out Buffer the CDB fixes exactly: more data than n bytes is refused
// too. The refusal names the CDB field the length follows from (lengthAt)
// as INVALID FIELD IN CDB, or, with lengthAt negative, is INVALID FIELD IN
// COMMAND INFORMATION UNIT like a shortfall.
func takeExactDataOut(cmd *scsi.Command, n, lengthAt int) ([]byte, error) {
	p, err := cmd.TakeDataOut(n)
	if err != nil || len(cmd.DataOut) == n {
		return p, err
	}
	if lengthAt >= 0 {
		return nil, scsi.InvalidFieldInCDB(lengthAt, -1).
			WithReason("CDB calls for %d bytes of data-out, transport carried %d", n, len(cmd.DataOut))
	}
	return nil, scsi.NewSense(scsi.IllegalRequest, scsi.ASCInvalidFieldInCommandIU).
		WithReason("CDB calls for %d bytes of data-out, transport carried %d", n, len(cmd.DataOut))
}

// allZero reports whether p holds only zero bytes.
func allZero(p []byte) bool {
	for len(p) > 0 {
		k := min(len(p), len(zeroes))
		if string(p[:k]) != string(zeroes[:k]) {
			return false
		}
		p = p[k:]
	}
	return true
}

// writeRepeated writes block to every block of e, a checked range, a chunk
// of up to verifyChunk bytes at a time, each under its own exclusive
// extent lock: memory stays bounded however long the range, other
// commands on the range may run between chunks, and an abort is noticed
// between chunks.
func writeRepeated(cmd *scsi.Command, g geometry, e extent, block []byte) error {
	buf := verifyBuffers.Get().(*[]byte)
	defer verifyBuffers.Put(buf)
	perChunk := uint64(verifyChunk / g.blockSize)
	chunk := (*buf)[:g.bytes(min(perChunk, e.Blocks))]
	for i := 0; i < len(chunk); i += g.blockSize {
		copy(chunk[i:], block)
	}
	lu := cmd.LU()
	fua := forceUnitAccess(cmd, false)
	for done := uint64(0); done < e.Blocks; {
		if cmd.Context().Err() != nil {
			return scsi.TaskAborted()
		}
		n := min(perChunk, e.Blocks-done)
		lba := e.LBA + done
		unlock, err := lu.LockExtent(cmd.Context(), lba, n, scsi.ExtentExclusive)
		if err != nil {
			return scsi.TaskAborted()
		}
		err = lu.Store.WriteAt(chunk[:g.bytes(n)], g.offset(lba), fua)
		unlock()
		if err != nil {
			return scsi.WriteError(err, lba)
		}
		done += n
	}
	return nil
}
