package sbc_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

const (
	bytchk01 = 0x02
	bytchk11 = 0x06
)

func TestVerify(t *testing.T) {
	const bs = 512
	builders := map[string]func(flags byte, lba uint64, n uint32) []byte{
		"10": func(f byte, lba uint64, n uint32) []byte { return cdb10(opVerify10, f, uint32(lba), uint16(n)) },
		"12": func(f byte, lba uint64, n uint32) []byte { return cdb12(opVerify12, f, uint32(lba), n) },
		"16": func(f byte, lba uint64, n uint32) []byte { return cdb16(opVerify16, f, lba, n) },
	}
	for name, build := range builders {
		t.Run(name, func(t *testing.T) {
			b, m := newMemoryBench(t, 5000, bs, benchConfig{writeCache: true})
			stored := pattern(3000*bs, 0x21)
			require.NoError(t, m.WriteAt(stored, 100*bs, false))

			// BYTCHK 00b: medium verification only.
			requireGood(t, b.run(build(0, 100, 3000), nil))
			requireGood(t, b.run(build(0x10, 0, 5000), nil)) // DPO

			// BYTCHK 01b: equal data, across a chunk boundary.
			requireGood(t, b.run(build(bytchk01, 100, 3000), stored))

			// BYTCHK 01b: the INFORMATION field is the offset of the
			// first differing byte from the start of the data-out.
			for _, off := range []int{0, 1, bs - 1, bs, 2047*bs + 17, 3000*bs - 1} {
				bad := bytes.Clone(stored)
				bad[off] ^= 0x80
				if off+5 < len(bad) {
					bad[off+5] ^= 0x01 // a later difference is not reported
				}
				s := requireSense(t, b.run(build(bytchk01, 100, 3000), bad), scsi.Miscompare, scsi.ASCMiscompareDuringVerify)
				assert.True(t, s.HasInformation)
				assert.Equal(t, uint64(off), s.Information, "offset %d", off)
			}
			assert.Equal(t, stored, contents(t, m)[100*bs:3100*bs], "VERIFY writes nothing")

			// BYTCHK 11b: one block compared with every block.
			same := bytes.Repeat([]byte{0xC3}, bs)
			require.NoError(t, m.WriteAt(bytes.Repeat(same, 2100), 3*bs, false))
			requireGood(t, b.run(build(bytchk11, 3, 2100), same))
			require.NoError(t, m.WriteAt([]byte{0xC2}, (3+2099)*bs+7, false))
			s := requireSense(t, b.run(build(bytchk11, 3, 2100), same), scsi.Miscompare, scsi.ASCMiscompareDuringVerify)
			assert.Equal(t, uint64(2099*bs+7), s.Information)

			// Zero length: nothing verified, not an error.
			requireGood(t, b.run(build(0, 5000, 0), nil))
			requireGood(t, b.run(build(bytchk01, 0, 0), nil))
			requireGood(t, b.run(build(bytchk11, 0, 0), same))

			// BYTCHK 10b is reserved.
			s = requireSense(t, b.run(build(0x04, 0, 1), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
			requireFieldPointer(t, s, 1, 2)

			// Past the end.
			requireSense(t, b.run(build(0, 4999, 2), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		})
	}
}

func TestWriteAndVerify(t *testing.T) {
	const bs = 4096
	builders := map[string]func(flags byte, lba uint64, n uint32) []byte{
		"10": func(f byte, lba uint64, n uint32) []byte { return cdb10(opWriteAndVerify10, f, uint32(lba), uint16(n)) },
		"12": func(f byte, lba uint64, n uint32) []byte { return cdb12(opWriteAndVerify12, f, uint32(lba), n) },
		"16": func(f byte, lba uint64, n uint32) []byte { return cdb16(opWriteAndVerify16, f, lba, n) },
	}
	for name, build := range builders {
		t.Run(name, func(t *testing.T) {
			b, m := newMemoryBench(t, 600, bs, benchConfig{writeCache: true})
			for i, flags := range []byte{0, bytchk01, 0x10 | bytchk01} {
				data := pattern(300*bs, byte(i+1))
				requireGood(t, b.run(build(flags, 7, 300), data))
				assert.Equal(t, data, contents(t, m)[7*bs:307*bs])
			}
			requireGood(t, b.run(build(bytchk01, 600, 0), nil))

			// BYTCHK 10b and 11b are reserved for WRITE AND VERIFY.
			before := contents(t, m)
			for _, flags := range []byte{0x04, bytchk11} {
				s := requireSense(t, b.run(build(flags, 0, 1), make([]byte, bs)), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
				requireFieldPointer(t, s, 1, 2)
			}
			requireSense(t, b.run(build(0, 599, 2), make([]byte, 2*bs)), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
			assert.Equal(t, before, contents(t, m))
		})
	}
}

// TestWriteAndVerifyConcurrentWriter races WRITE AND VERIFY (BYTCHK 01b)
// against plain WRITEs of other data to the same blocks: the extent lock
// keeps a writer out between the write and its verification, so the
// verification never reports a miscompare, and the blocks end up holding
// one command's data whole, never a mix.
func TestWriteAndVerifyConcurrentWriter(t *testing.T) {
	const bs, blocks = 512, 64
	b, m := newMemoryBench(t, 256, bs, benchConfig{writeCache: true})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			c := b.run(cdb10(opWrite10, 0, 10, blocks), pattern(blocks*bs, byte(2*i+1)))
			assert.Equal(t, scsi.StatusGood, c.Status)
		}
	}()
	for i := range 200 {
		requireGood(t, b.run(cdb10(opWriteAndVerify10, bytchk01, 10, blocks), pattern(blocks*bs, byte(2*i+2))))
	}
	<-done
	// pattern's first byte is its seed: the range must be one pattern.
	got := contents(t, m)[10*bs : (10+blocks)*bs]
	assert.Equal(t, pattern(blocks*bs, got[0]), got, "the blocks mix the data of two commands")
}
