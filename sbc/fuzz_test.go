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
// change a byte outside the blocks its CDB names: a write that ends in GOOD
// changes exactly its range, to the data-out; anything else changes nothing.
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
		if c.Status != scsi.StatusGood || !isWrite(cdb) {
			require.Equal(t, before, after, "CDB % x changed the store", cdb)
			return
		}
		// GOOD: the dispatcher found the CDB long enough for its command.
		// A transport that carried fewer whole blocks than the CDB calls
		// for gets just those written (scsi.Command.TakeDataOutBlocks).
		lba, n := writeExtent(cdb)
		n = min(n, uint64(len(dataOut))/bs)
		lo, hi := lba*bs, (lba+n)*bs
		require.LessOrEqual(t, hi, uint64(len(after)), "CDB % x: GOOD past the end", cdb)
		require.Equal(t, before[:lo], after[:lo], "CDB % x wrote before its range", cdb)
		require.Equal(t, before[hi:], after[hi:], "CDB % x wrote after its range", cdb)
		requireBytes(t, dataOut[:hi-lo], after[lo:hi], "CDB % x", cdb)
	})
}

// isWrite reports whether the CDB's operation code is a WRITE or a WRITE
// AND VERIFY.
func isWrite(cdb []byte) bool {
	if len(cdb) == 0 {
		return false
	}
	switch cdb[0] {
	case opWrite6, opWrite10, opWrite12, opWrite16,
		opWriteAndVerify10, opWriteAndVerify12, opWriteAndVerify16:
		return true
	}
	return false
}

// writeExtent decodes the range of a complete WRITE or WRITE AND VERIFY
// CDB on its own, without the package's decoder.
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
