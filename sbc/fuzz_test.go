package sbc_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/sbc"
	"github.com/odxtgt/odxtgt/scsi"
)

// FuzzCDB submits arbitrary CDBs with arbitrary data-out to an LU on a
// small memory store. No CDB may make a handler panic (the dispatcher would
// report HARDWARE ERROR, INTERNAL TARGET FAILURE), and no command may
// change a byte it should not: a command that writes the medium and ends in
// GOOD changes it as predict, a model written independently of the
// package, says; anything else changes nothing.
func FuzzCDB(f *testing.F) {
	const blocks, bs = 64, 512
	for _, d := range sbc.Commands(sbc.Options{}).Commands {
		cdb := make([]byte, d.CDBLength())
		cdb[0] = d.Opcode
		if d.HasServiceAction {
			cdb[1] = byte(d.ServiceAction)
		}
		f.Add(bytes.Clone(cdb), []byte(nil))
		// One block at LBA 1, with every flag the usage mask allows.
		for i := 1; i < len(cdb)-1; i++ {
			cdb[i] |= d.Usage[i] &^ 0xE0
		}
		switch len(cdb) {
		case 10:
			binary.BigEndian.PutUint32(cdb[2:], 1)
			binary.BigEndian.PutUint16(cdb[7:], 1)
		case 12:
			binary.BigEndian.PutUint32(cdb[2:], 1)
			binary.BigEndian.PutUint32(cdb[6:], 1)
		case 16:
			binary.BigEndian.PutUint64(cdb[2:], 1)
			binary.BigEndian.PutUint32(cdb[10:], 1)
		}
		f.Add(cdb, bytes.Repeat([]byte{0xEE}, bs))
	}
	f.Add(rw6CDB(opWrite6, 63, 1), bytes.Repeat([]byte{1}, bs))
	f.Add(cdb16(opWrite16, 0, 62, 2), bytes.Repeat([]byte{2}, 2*bs))
	f.Add(cdb10(opWriteAndVerify10, 0x02, 0, 3), bytes.Repeat([]byte{3}, 3*bs))
	f.Add(cdb16(opVerify16, 0x06, 0, 64), bytes.Repeat([]byte{0}, bs))
	// The commands that write in other ways than WRITE does.
	f.Add(compareAndWriteCDB(0, 3, 1), bytes.Repeat([]byte{0}, 2*bs))
	f.Add(compareAndWriteCDB(fua, 2, 2), append(make([]byte, 2*bs), pattern(2*bs, 4)...))
	f.Add(cdb10(opWriteSame10, 0, 5, 7), pattern(bs, 5))
	f.Add(cdb10(opWriteSame10, wsUnmapBit, 5, 7), make([]byte, bs))
	f.Add(writeSame16CDB(wsUnmapBit|wsNDOBBit, 0, 64), []byte(nil))
	f.Add(writeSame16CDB(wsUnmapBit, 60, 4), pattern(bs, 6))
	cdb, list := unmapCDB(1, 2, 10, 20, 63, 1)
	f.Add(cdb, list)
	f.Add(cdb16(opOrWrite16, 0, 8, 2), pattern(2*bs, 7))
	f.Add(getLBAStatusCDB(3, 100), []byte(nil))

	mem := backstore.NewMemory(blocks*bs, bs)
	b := newBench(f, mem, benchConfig{writeCache: true})
	f.Fuzz(func(t *testing.T, cdb, dataOut []byte) {
		before := contents(t, mem)
		c := b.run(bytes.Clone(cdb), dataOut)
		if c.Status == scsi.StatusCheckCondition {
			s, err := scsi.ParseSense(c.Sense)
			require.NoError(t, err)
			require.NotEqual(t, scsi.HardwareError, s.Key, "CDB % x: %v", cdb, s)
		} else {
			require.Equal(t, scsi.StatusGood, c.Status)
		}
		after := contents(t, mem)
		want := before
		if c.Status == scsi.StatusGood {
			want = predict(t, cdb, dataOut, before, bs)
		}
		if !bytes.Equal(want, after) {
			i := firstDiff(want, after)
			require.Failf(t, "wrong medium", "CDB % x (%s), data-out %d bytes: first wrong byte %d (LBA %d): want %02x, got %02x",
				cdb, c.Status, len(dataOut), i, i/bs, want[i], after[i])
		}
	})
}

// Operation codes of the commands predict models beyond WRITE.
const opOrWrite16 = 0x8B

// predict returns the medium after a command that ended in GOOD, given the
// medium before: the CDB was long enough for its command and its fields
// and data-out were accepted, so it is decoded here without checks, on the
// model's own reading of SBC-3. Commands that do not write return before.
func predict(tb testing.TB, cdb, dataOut, before []byte, bs int) []byte {
	tb.Helper()
	after := bytes.Clone(before)
	at := func(lba uint64) int { return int(lba) * bs }
	switch cdb[0] {
	case opWrite6, opWrite10, opWrite12, opWrite16,
		opWriteAndVerify10, opWriteAndVerify12, opWriteAndVerify16:
		// A transport that carried fewer whole blocks than the CDB calls
		// for gets just those written (scsi.Command.TakeDataOutBlocks).
		lba, n := writeExtent(cdb)
		n = min(n, uint64(len(dataOut)/bs))
		copy(after[at(lba):at(lba+n)], dataOut)
	case opOrWrite16:
		lba, n := writeExtent(cdb)
		n = min(n, uint64(len(dataOut)/bs))
		for i := range at(n) {
			after[at(lba)+i] |= dataOut[i]
		}
	case opCompareAndWrite:
		lba, n := binary.BigEndian.Uint64(cdb[2:]), uint64(cdb[13])
		copy(after[at(lba):at(lba+n)], dataOut[at(n):at(2*n)])
	case opWriteSame10, opWriteSame16:
		var lba, n uint64
		if cdb[0] == opWriteSame10 {
			lba, n = uint64(binary.BigEndian.Uint32(cdb[2:])), uint64(binary.BigEndian.Uint16(cdb[7:]))
		} else {
			lba, n = binary.BigEndian.Uint64(cdb[2:]), uint64(binary.BigEndian.Uint32(cdb[10:]))
		}
		if n == 0 { // through the last block
			n = uint64(len(before)/bs) - lba
		}
		// NDOB sends no block, UNMAP deallocates: zeroes either way.
		block := make([]byte, bs)
		if cdb[1]&(wsNDOBBit|wsUnmapBit) == 0 {
			copy(block, dataOut)
		}
		for i := lba; i < lba+n; i++ {
			copy(after[at(i):], block)
		}
	case opUnmap:
		for _, r := range unmapRanges(dataOut[:binary.BigEndian.Uint16(cdb[7:])]) {
			clear(after[at(r[0]):at(r[0]+r[1])])
		}
	}
	return after
}

// unmapRanges decodes the descriptors of an accepted UNMAP parameter list
// as (LBA, blocks) pairs: as many whole 16-byte descriptors as the UNMAP
// BLOCK DESCRIPTOR DATA LENGTH holds.
func unmapRanges(p []byte) [][2]uint64 {
	if len(p) < 8 {
		return nil
	}
	var rs [][2]uint64
	for i := range int(binary.BigEndian.Uint16(p[2:])) / 16 {
		d := p[8+16*i:]
		rs = append(rs, [2]uint64{binary.BigEndian.Uint64(d), uint64(binary.BigEndian.Uint32(d[8:]))})
	}
	return rs
}

// FuzzUnmapList sends arbitrary UNMAP parameter lists, with a PARAMETER
// LIST LENGTH that usually matches and sometimes does not, to an LU whose
// blocks are all written. No list may make the handler panic or report
// anything but ILLEGAL REQUEST; a refused list unmaps nothing, an accepted
// one zeroes exactly its descriptors' blocks and leaves them deallocated.
func FuzzUnmapList(f *testing.F) {
	const blocks, bs = 64, 512
	for _, rs := range [][]uint64{
		{0, 1}, {63, 1}, {64, 0}, {0, 64}, {1, 2, 10, 20, 11, 3}, {65, 0}, {60, 5},
		{0, 1 << 20}, {^uint64(0), 2},
	} {
		_, list := unmapCDB(rs...)
		f.Add(list, uint16(len(list)))
	}
	_, list := unmapCDB(make([]uint64, 2*257)...)
	f.Add(list, uint16(len(list)))
	f.Add([]byte{0, 6, 0, 0, 0, 0, 0, 0}, uint16(8))
	f.Add([]byte{0, 22, 0, 32, 0, 0, 0, 0}, uint16(8))
	f.Add([]byte{0, 1, 2}, uint16(3))
	f.Add([]byte(nil), uint16(0))
	f.Add(make([]byte, 24), uint16(40))

	mem := backstore.NewMemory(blocks*bs, bs)
	b := newBench(f, mem, benchConfig{writeCache: true})
	full := bytes.Repeat([]byte{0xA5}, blocks*bs)
	f.Fuzz(func(t *testing.T, list []byte, plen uint16) {
		require.NoError(t, mem.WriteAt(full, 0, false))
		cdb := make([]byte, 10)
		cdb[0] = opUnmap
		binary.BigEndian.PutUint16(cdb[7:], plen)
		c := b.run(cdb, list)
		after := contents(t, mem)
		if c.Status != scsi.StatusGood {
			require.Equal(t, scsi.StatusCheckCondition, c.Status)
			s, err := scsi.ParseSense(c.Sense)
			require.NoError(t, err)
			require.Equal(t, scsi.IllegalRequest, s.Key, "%v", s)
			require.Contains(t, []scsi.ASC{scsi.ASCInvalidFieldInCommandIU, scsi.ASCParameterListLengthError,
				scsi.ASCInvalidFieldInParameterList, scsi.ASCLBAOutOfRange}, s.Code, "%v", s)
			require.Equal(t, full, after, "UNMAP refused with %v changed the medium", s)
			return
		}
		want := predict(t, cdb, list, full, bs)
		require.Equal(t, want, after)
		for _, r := range unmapRanges(list[:plen]) {
			for lba := r[0]; lba < r[0]+r[1]; lba++ {
				mapped, _, err := mem.Allocated(int64(lba) * bs)
				require.NoError(t, err)
				require.False(t, mapped, "LBA %d unmapped", lba)
			}
		}
	})
}

// writeExtent decodes the range of a complete WRITE, WRITE AND VERIFY or
// ORWRITE CDB on its own, without the package's decoder.
func writeExtent(cdb []byte) (lba, n uint64) {
	switch cdb[0] {
	case opWrite6:
		lba = uint64(cdb[1]&0x1F)<<16 | uint64(cdb[2])<<8 | uint64(cdb[3])
		n = uint64(cdb[4])
		if n == 0 {
			n = 256
		}
		return lba, n
	case opWrite10, opWriteAndVerify10:
		return uint64(binary.BigEndian.Uint32(cdb[2:])), uint64(binary.BigEndian.Uint16(cdb[7:]))
	case opWrite12, opWriteAndVerify12:
		return uint64(binary.BigEndian.Uint32(cdb[2:])), uint64(binary.BigEndian.Uint32(cdb[6:]))
	}
	return binary.BigEndian.Uint64(cdb[2:]), uint64(binary.BigEndian.Uint32(cdb[10:]))
}
