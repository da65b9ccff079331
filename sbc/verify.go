package sbc

import (
	"bytes"
	"sync"

	"github.com/odxtgt/odxtgt/scsi"
)

// Usage of byte 1 of VERIFY and WRITE AND VERIFY: DPO and the two-bit
// BYTCHK field (bits 2-1). VRPROTECT/WRPROTECT stay clear.
const (
	verifyByte1   = bitDPO | bytchkMask
	bytchkMask    = 0x06
	bytchkShift   = 1
	bytchkField   = 2 // most significant bit of BYTCHK, for field pointers
	bytchkNone    = 0 // medium verification only, no data-out
	bytchkCompare = 1 // compare with VERIFICATION LENGTH blocks of data-out
	bytchkSame    = 3 // compare each block with one block of data-out
)

func verifyCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "VERIFY (10)", Opcode: 0x2F,
			Usage: []byte{0xFF, verifyByte1, 0xFF, 0xFF, 0xFF, 0xFF, groupNumber,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirOut, Handler: verify(layout10),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "VERIFY (12)", Opcode: 0xAF,
			Usage: []byte{0xFF, verifyByte1, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Handler: verify(layout12),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "VERIFY (16)", Opcode: 0x8F,
			Usage: []byte{0xFF, verifyByte1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Handler: verify(layout16),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "WRITE AND VERIFY (10)", Opcode: 0x2E,
			Usage: []byte{0xFF, verifyByte1, 0xFF, 0xFF, 0xFF, 0xFF, groupNumber,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: writeAndVerify(layout10),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "WRITE AND VERIFY (12)", Opcode: 0xAE,
			Usage: []byte{0xFF, verifyByte1, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: writeAndVerify(layout12),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
		{
			Name: "WRITE AND VERIFY (16)", Opcode: 0x8E,
			Usage: []byte{0xFF, verifyByte1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: writeAndVerify(layout16),
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
	}
}

// verify returns the handler of a VERIFY command with the given layout.
//
// SBC-3 VERIFY (10): BYTCHK 00b verifies the medium without data-out; 01b
// compares VERIFICATION LENGTH blocks of data-out with the medium; 11b
// transfers one block and compares every block of the range with it; 10b
// is reserved. The VERIFICATION LENGTH is bounded by the MAXIMUM TRANSFER
// LENGTH whatever BYTCHK says.
func verify(l layout) scsi.Handler {
	return func(cmd *scsi.Command) error {
		bytchk := (cmd.CDB[1] & bytchkMask) >> bytchkShift
		if bytchk != bytchkNone && bytchk != bytchkCompare && bytchk != bytchkSame {
			return scsi.InvalidFieldInCDB(1, bytchkField).WithReason("BYTCHK %02b is reserved", bytchk)
		}
		g := geometryOf(cmd)
		e := l.decode(cmd.CDB)
		if s := g.checkTransfer(e); s != nil {
			return s
		}
		var want int // data-out bytes the CDB calls for
		switch bytchk {
		case bytchkCompare:
			want = g.bytes(e.Blocks)
		case bytchkSame:
			want = g.blockSize
		}
		var p []byte
		var err error
		if bytchk == bytchkCompare {
			// Only the blocks that arrived are compared (see
			// scsi.Command.TakeDataOutBlocks).
			p, err = cmd.TakeDataOutBlocks(want, g.blockSize)
			e.Blocks = uint64(len(p) / g.blockSize)
		} else {
			p, err = cmd.TakeDataOut(want)
		}
		if err != nil {
			return err
		}
		if e.Blocks == 0 {
			// A VERIFICATION LENGTH of zero verifies nothing and is not
			// an error.
			return nil
		}
		// A logical unit with a cache writes the referenced cached blocks
		// to the medium before verifying them (SBC-3 VERIFY (10)); the
		// store can only flush everything.
		if err := cmd.LU().Store.Sync(); err != nil {
			return scsi.SyncError(err)
		}
		switch bytchk {
		case bytchkCompare:
			return verifyMedium(cmd, g, e, func(off int, medium []byte) int {
				return firstDifference(medium, p[off:off+len(medium)])
			})
		case bytchkSame:
			return verifyMedium(cmd, g, e, func(_ int, medium []byte) int {
				for i := 0; i < len(medium); i += g.blockSize {
					if d := firstDifference(medium[i:i+g.blockSize], p); d >= 0 {
						return i + d
					}
				}
				return -1
			})
		}
		return verifyMedium(cmd, g, e, nil)
	}
}

// writeAndVerify returns the handler of a WRITE AND VERIFY command with the
// given layout. The data is written through to the medium, since it is the
// medium that is then verified; BYTCHK 01b also compares what was read back
// with the data-out. BYTCHK 10b and 11b are reserved for this command.
func writeAndVerify(l layout) scsi.Handler {
	return func(cmd *scsi.Command) error {
		bytchk := (cmd.CDB[1] & bytchkMask) >> bytchkShift
		if bytchk != bytchkNone && bytchk != bytchkCompare {
			return scsi.InvalidFieldInCDB(1, bytchkField).WithReason("BYTCHK %02b is reserved for WRITE AND VERIFY", bytchk)
		}
		// Only the blocks that arrived are written and verified.
		g, e, p, err := takeWrite(cmd, l)
		if err != nil || e.Blocks == 0 {
			return err
		}
		// The range is held from the write until the verification is
		// done, so a concurrent writer cannot make the medium differ from
		// the data just written (a false miscompare).
		unlock, err := cmd.LU().LockExtent(cmd.Context(), e.LBA, e.Blocks, scsi.ExtentExclusive)
		if err != nil {
			return scsi.TaskAborted()
		}
		defer unlock()
		if err := cmd.LU().Store.WriteAt(p, g.offset(e.LBA), true); err != nil {
			return scsi.WriteError(err, e.LBA)
		}
		if bytchk == bytchkCompare {
			return verifyMedium(cmd, g, e, func(off int, medium []byte) int {
				return firstDifference(medium, p[off:off+len(medium)])
			})
		}
		return verifyMedium(cmd, g, e, nil)
	}
}

// verifyChunk is how much verifyMedium reads at a time: a multiple of every
// supported block size.
const verifyChunk = 1 << 20

var verifyBuffers = sync.Pool{New: func() any {
	b := make([]byte, verifyChunk)
	return &b
}}

// verifyMedium reads the extent back in chunks, failing with MEDIUM ERROR
// on a read error. If compare is set it is called with each chunk and the
// chunk's byte offset within the extent and returns the index of the first
// byte in the chunk that differs from what was expected, or -1. A
// difference ends the command with MISCOMPARE, MISCOMPARE DURING VERIFY
// OPERATION and the INFORMATION field set to the offset of that byte from
// the start of the Data-Out Buffer (SBC-3 reports miscompares this way for
// COMPARE AND WRITE; for BYTCHK 11b the buffer is the single block repeated
// over the range, so the offset counts from the first block verified).
func verifyMedium(cmd *scsi.Command, g geometry, e extent, compare func(off int, medium []byte) int) error {
	buf := verifyBuffers.Get().(*[]byte)
	defer verifyBuffers.Put(buf)
	store := cmd.LU().Store
	perChunk := uint64(verifyChunk / g.blockSize)
	for done := uint64(0); done < e.Blocks; {
		if cmd.Context().Err() != nil {
			return scsi.TaskAborted()
		}
		n := min(perChunk, e.Blocks-done)
		lba := e.LBA + done
		medium := (*buf)[:g.bytes(n)]
		if err := store.ReadAt(medium, g.offset(lba)); err != nil {
			return scsi.ReadError(err, lba)
		}
		if compare != nil {
			off := g.bytes(done)
			if d := compare(off, medium); d >= 0 {
				return scsi.NewSense(scsi.Miscompare, scsi.ASCMiscompareDuringVerify).
					WithInformation(uint64(off+d)).
					WithReason("first difference at byte %d of the transfer (LBA %d)", off+d, e.LBA+uint64((off+d)/g.blockSize))
			}
		}
		done += n
	}
	return nil
}

// firstDifference returns the index of the first byte where a and b (of
// equal length) differ, or -1 if they are equal.
func firstDifference(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}
