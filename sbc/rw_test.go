package sbc_test

import (
	"bytes"
	"fmt"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

const fua = 0x08

func TestWriteThenReadEveryVariant(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		for i, w := range writeVariants() {
			for _, r := range readVariants() {
				t.Run(fmt.Sprintf("bs%d/write%s/read%s", bs, w.name, r.name), func(t *testing.T) {
					b, m := newMemoryBench(t, 64, bs, benchConfig{writeCache: true})
					data := pattern(3*bs, byte(i+1))
					requireGood(t, b.run(w.build(0, 5, 3), data))

					c := b.run(r.build(0, 5, 3), nil)
					requireGood(t, c)
					require.Equal(t, data, c.DataIn)

					// Nothing around the range changed.
					all := contents(t, m)
					assert.Equal(t, make([]byte, 5*bs), all[:5*bs])
					assert.Equal(t, make([]byte, len(all)-8*bs), all[8*bs:])
				})
			}
		}
	}
}

func TestBoundaries(t *testing.T) {
	const blocks, bs = 300, 512
	type tc struct {
		name    string
		lba     uint64
		n       uint32
		wantErr bool
	}
	cases := []tc{
		{name: "last LBA", lba: blocks - 1, n: 1},
		{name: "ends at capacity", lba: blocks - 4, n: 4},
		{name: "one past the end", lba: blocks, n: 1, wantErr: true},
		{name: "straddles the end", lba: blocks - 1, n: 2, wantErr: true},
		{name: "zero length at LBA 0", lba: 0, n: 0},
		{name: "zero length at the capacity", lba: blocks, n: 0},
		{name: "zero length past the capacity", lba: blocks + 1, n: 0, wantErr: true},
	}
	for _, v := range readVariants()[1:] {
		for _, c := range cases {
			t.Run(v.name+"/"+c.name, func(t *testing.T) {
				b, _ := newMemoryBench(t, blocks, bs, benchConfig{})
				cmd := b.run(v.build(0, c.lba, c.n), nil)
				if c.wantErr {
					requireSense(t, cmd, scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
					return
				}
				requireGood(t, cmd)
				assert.Len(t, cmd.DataIn, int(c.n)*bs)
			})
		}
	}
	for _, v := range writeVariants()[1:] {
		for _, c := range cases {
			t.Run("write"+v.name+"/"+c.name, func(t *testing.T) {
				b, m := newMemoryBench(t, blocks, bs, benchConfig{})
				before := contents(t, m)
				data := pattern(int(c.n)*bs, 0x5A)
				cmd := b.run(v.build(0, c.lba, c.n), data)
				if c.wantErr {
					requireSense(t, cmd, scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
					assert.Equal(t, before, contents(t, m), "nothing written")
					return
				}
				requireGood(t, cmd)
				assert.Equal(t, len(data), cmd.DataOutLength)
			})
		}
	}
}

// TestLBAOverflow: an LBA near 2^64 plus a length must not wrap around to
// a valid range.
func TestLBAOverflow(t *testing.T) {
	b, m := newMemoryBench(t, 64, 512, benchConfig{})
	before := contents(t, m)
	for _, lba := range []uint64{math.MaxUint64, math.MaxUint64 - 1, 1 << 63, math.MaxUint64 / 512} {
		requireSense(t, b.run(cdb16(opRead16, 0, lba, 2), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		requireSense(t, b.run(cdb16(opWrite16, 0, lba, 2), make([]byte, 1024)), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		requireSense(t, b.run(cdb16(opVerify16, 0, lba, 2), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		requireSense(t, b.run(cdb16(opSyncCache16, 0, lba, 2), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		requireSense(t, b.run(cdb16(opPrefetch16, 0, lba, 2), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
	}
	// 32-bit CDBs: the largest LBA and length.
	requireSense(t, b.run(cdb12(opRead12, 0, math.MaxUint32, math.MaxUint32), nil), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
	requireSense(t, b.run(cdb12(opRead12, 0, math.MaxUint32, 1), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
	assert.Equal(t, before, contents(t, m))
}

func TestSixByteCDBs(t *testing.T) {
	const bs = 512
	b, m := newMemoryBench(t, 1<<12, bs, benchConfig{})

	t.Run("transfer length 0 means 256 blocks", func(t *testing.T) {
		data := pattern(256*bs, 0x33)
		c := b.run(rw6CDB(opWrite6, 100, 0), data)
		requireGood(t, c)
		assert.Equal(t, 256*bs, c.DataOutLength)
		c = b.run(rw6CDB(opRead6, 100, 0), nil)
		requireGood(t, c)
		require.Equal(t, data, c.DataIn)
	})
	t.Run("21-bit LBA", func(t *testing.T) {
		// LBA 1FFFFFh is past this LU; byte 1's reserved bits are not
		// part of the LBA.
		requireSense(t, b.run(rw6CDB(opRead6, 0x1FFFFF, 1), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		data := pattern(bs, 0x44)
		requireGood(t, b.run(rw6CDB(opWrite6, 0x0FFF, 1), data))
		assert.Equal(t, data, contents(t, m)[0x0FFF*bs:])
	})
	t.Run("256 blocks past the end", func(t *testing.T) {
		requireSense(t, b.run(rw6CDB(opRead6, 1<<12-255, 0), nil), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		requireGood(t, b.run(rw6CDB(opRead6, 1<<12-256, 0), nil))
	})
}

// TestMaximumTransferLength: a length above the MAXIMUM TRANSFER LENGTH is
// an invalid field in the CDB pointing at the length, checked before the
// range (SBC-3 6.5.3).
func TestMaximumTransferLength(t *testing.T) {
	const bs = 512
	limit := uint32(scsi.MaxTransferBytes / bs)
	b, _ := newMemoryBench(t, int64(limit)+8, bs, benchConfig{})
	cases := []struct {
		name    string
		cdb     []byte
		field   int
		dataOut []byte
	}{
		{"READ (12)", cdb12(opRead12, 0, 0, limit+1), 6, nil},
		{"READ (16)", cdb16(opRead16, 0, 0, limit+1), 10, nil},
		{"WRITE (12)", cdb12(opWrite12, 0, 0, limit+1), 6, nil},
		{"WRITE (16)", cdb16(opWrite16, 0, 0, limit+1), 10, nil},
		{"VERIFY (12)", cdb12(opVerify12, 0, 0, limit+1), 6, nil},
		{"VERIFY (16) BYTCHK 11b", cdb16(opVerify16, 0x06, 0, limit+1), 10, make([]byte, bs)},
		{"WRITE AND VERIFY (16)", cdb16(opWriteAndVerify16, 0, 0, limit+1), 10, nil},
		{"past the end too", cdb16(opRead16, 0, math.MaxUint64, limit+1), 10, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := requireSense(t, b.run(c.cdb, c.dataOut), scsi.IllegalRequest, scsi.ASCInvalidFieldInCDB)
			requireFieldPointer(t, s, c.field, -1)
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		c := b.run(cdb16(opRead16, 0, 0, limit), nil)
		requireGood(t, c)
		assert.Len(t, c.DataIn, scsi.MaxTransferBytes)
		data := pattern(scsi.MaxTransferBytes, 9)
		requireGood(t, b.run(cdb12(opWrite12, 0, 8, limit), data))
		requireGood(t, b.run(cdb16(opVerify16, 0x02, 8, limit), data))
	})
}

// TestDataOutMismatch: when the transport carried another amount of
// data-out than the CDB calls for, a longer buffer is cut to the CDB's
// length, a shorter one of whole blocks is processed for those blocks only,
// and a partial block is refused with INVALID FIELD IN COMMAND INFORMATION
// UNIT with nothing written (scsi.Command.TakeDataOutBlocks). Either way
// the SPDTL is reported to the transport for the residual.
func TestDataOutMismatch(t *testing.T) {
	const bs = 512
	cases := []struct {
		name    string
		cdb     []byte
		dataOut int
		needed  int
		written int // bytes written from LBA 1, -1 when refused
	}{
		{"WRITE (10) short by a block", cdb10(opWrite10, 0, 1, 2), bs, 2 * bs, bs},
		{"WRITE (10) long", cdb10(opWrite10, 0, 1, 2), 3 * bs, 2 * bs, 2 * bs},
		{"WRITE (10) zero length with data", cdb10(opWrite10, 0, 1, 0), bs, 0, 0},
		{"WRITE (10) no data", cdb10(opWrite10, 0, 1, 2), 0, 2 * bs, 0},
		{"WRITE (6) 256 blocks, 255 carried", rw6CDB(opWrite6, 1, 0), 255 * bs, 256 * bs, 255 * bs},
		{"WRITE (16) partial block", cdb16(opWrite16, 0, 1, 1), bs - 1, bs, -1},
		{"WRITE (10) partial block after a whole one", cdb10(opWrite10, 0, 1, 2), bs + 200, 2 * bs, -1},
		{"WRITE AND VERIFY (12) short", cdb12(opWriteAndVerify12, 0, 1, 4), 2 * bs, 4 * bs, 2 * bs},
		{"VERIFY (10) BYTCHK 01b short", cdb10(opVerify10, 0x02, 1, 2), bs + 1, 2 * bs, -1},
		{"VERIFY (10) BYTCHK 11b short", cdb10(opVerify10, 0x06, 1, 2), bs - 1, bs, -1},
		{"VERIFY (10) BYTCHK 00b with data", cdb10(opVerify10, 0, 1, 2), bs, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, m := newMemoryBench(t, 512, bs, benchConfig{})
			before := contents(t, m)
			cmd := b.run(c.cdb, bytes.Repeat([]byte{0xA5}, c.dataOut))
			assert.Equal(t, c.needed, cmd.DataOutLength, "SPDTL reported to the transport")
			after := contents(t, m)
			if c.written < 0 {
				requireSense(t, cmd, scsi.IllegalRequest, scsi.ASCInvalidFieldInCommandIU)
				assert.Equal(t, before, after, "nothing written")
				return
			}
			if c.cdb[0] == opVerify10 {
				// Verifying zeros against 0xA5 may miscompare; only the
				// medium matters here.
				assert.Equal(t, before, after)
				return
			}
			requireGood(t, cmd)
			want := bytes.Clone(before)
			copy(want[bs:bs+c.written], bytes.Repeat([]byte{0xA5}, c.written))
			assert.Equal(t, want, after, "exactly the carried whole blocks are written")
		})
	}
}

func TestReadOnlyLU(t *testing.T) {
	const bs = 512
	b, m := newMemoryBench(t, 64, bs, benchConfig{readOnly: true})
	before := contents(t, m)
	for _, c := range []struct {
		cdb     []byte
		dataOut []byte
	}{
		{rw6CDB(opWrite6, 0, 1), make([]byte, bs)},
		{cdb10(opWrite10, 0, 0, 1), make([]byte, bs)},
		{cdb12(opWrite12, 0, 0, 1), make([]byte, bs)},
		{cdb16(opWrite16, 0, 0, 1), make([]byte, bs)},
		{cdb10(opWriteAndVerify10, 0, 0, 1), make([]byte, bs)},
		{cdb12(opWriteAndVerify12, 0, 0, 1), make([]byte, bs)},
		{cdb16(opWriteAndVerify16, 0, 0, 1), make([]byte, bs)},
		{cdb10(opWrite10, 0, 0, 0), nil}, // even without data
	} {
		requireSense(t, b.run(c.cdb, c.dataOut), scsi.DataProtect, scsi.ASCWriteProtected)
	}
	assert.Equal(t, before, contents(t, m))
	// Commands that do not write still work.
	requireGood(t, b.run(cdb10(opRead10, 0, 0, 1), nil))
	requireGood(t, b.run(cdb10(opVerify10, 0, 0, 1), nil))
	requireGood(t, b.run(cdb10(opSyncCache10, 0, 0, 0), nil))

	// Software write protect (SWP) on a writable LU has the same effect.
	w, _ := newMemoryBench(t, 64, bs, benchConfig{})
	w.setMode(scsi.ModeState{SWP: true})
	requireSense(t, w.run(cdb10(opWrite10, 0, 0, 1), make([]byte, bs)), scsi.DataProtect, scsi.ASCWriteProtected)
}

// TestDurability checks FUA, WCE and the flushes against the memory
// store's crash model: a crash keeps exactly what was made durable.
func TestDurability(t *testing.T) {
	const bs = 512
	data := pattern(2*bs, 0x77)
	zero := make([]byte, 2*bs)
	cases := []struct {
		name     string
		wce      bool
		commands [][]byte // the first one carries the data
		survives bool
	}{
		{"WRITE (10) with write cache", true, [][]byte{cdb10(opWrite10, 0, 4, 2)}, false},
		{"WRITE (10) FUA", true, [][]byte{cdb10(opWrite10, fua, 4, 2)}, true},
		{"WRITE (12) FUA", true, [][]byte{cdb12(opWrite12, fua, 4, 2)}, true},
		{"WRITE (16) FUA", true, [][]byte{cdb16(opWrite16, fua, 4, 2)}, true},
		{"WRITE (16) DPO only", true, [][]byte{cdb16(opWrite16, 0x10, 4, 2)}, false},
		{"WRITE (6) with write cache", true, [][]byte{rw6CDB(opWrite6, 4, 2)}, false},
		{"WRITE (6) write cache disabled", false, [][]byte{rw6CDB(opWrite6, 4, 2)}, true},
		{"WRITE (10) write cache disabled", false, [][]byte{cdb10(opWrite10, 0, 4, 2)}, true},
		{"SYNCHRONIZE CACHE (10)", true, [][]byte{cdb10(opWrite10, 0, 4, 2), cdb10(opSyncCache10, 0, 0, 0)}, true},
		{"SYNCHRONIZE CACHE (10) IMMED", true, [][]byte{cdb10(opWrite10, 0, 4, 2), cdb10(opSyncCache10, 0x02, 4, 2)}, true},
		{"SYNCHRONIZE CACHE (16)", true, [][]byte{cdb10(opWrite10, 0, 4, 2), cdb16(opSyncCache16, 0, 4, 2)}, true},
		{"WRITE AND VERIFY (10)", true, [][]byte{cdb10(opWriteAndVerify10, 0, 4, 2)}, true},
		{"VERIFY flushes the cache", true, [][]byte{cdb10(opWrite10, 0, 4, 2), cdb10(opVerify10, 0, 4, 2)}, true},
		{"READ (10) FUA flushes the cache", true, [][]byte{cdb10(opWrite10, 0, 4, 2), cdb10(opRead10, fua, 4, 2)}, true},
		{"READ (10) without FUA", true, [][]byte{cdb10(opWrite10, 0, 4, 2), cdb10(opRead10, 0, 4, 2)}, false},
		{"PRE-FETCH does not flush", true, [][]byte{cdb10(opWrite10, 0, 4, 2), cdb10(opPrefetch10, 0, 4, 2)}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, m := newMemoryBench(t, 64, bs, benchConfig{writeCache: c.wce})
			for i, cdb := range c.commands {
				var out []byte
				if i == 0 {
					out = data
				}
				requireGood(t, b.run(cdb, out))
			}
			m.Crash()
			got := contents(t, m)[4*bs : 6*bs]
			if c.survives {
				assert.Equal(t, data, got)
			} else {
				assert.Equal(t, zero, got)
			}
		})
	}
}

// TestMediumErrors: backstore failures become the sense data SBC-3 names,
// with the first LBA of the failed transfer, and never GOOD.
func TestMediumErrors(t *testing.T) {
	const bs = 512
	type tc struct {
		name    string
		fail    func(f *backstore.Fault)
		cdb     []byte
		dataOut []byte
		key     scsi.SenseKey
		code    scsi.ASC
		info    int64 // -1: no INFORMATION
	}
	eioRead := func(lba int64) func(*backstore.Fault) {
		return func(f *backstore.Fault) { f.FailRange(backstore.OpRead, lba*bs, bs, syscall.EIO) }
	}
	eioWrite := func(lba int64) func(*backstore.Fault) {
		return func(f *backstore.Fault) { f.FailRange(backstore.OpWrite, lba*bs, bs, syscall.EIO) }
	}
	failSync := func(err error) func(*backstore.Fault) {
		return func(f *backstore.Fault) { f.FailAt(backstore.OpSync, 0, err) }
	}
	cases := []tc{
		{"READ (10)", eioRead(12), cdb10(opRead10, 0, 10, 4), nil, scsi.MediumError, scsi.ASCUnrecoveredReadError, 10},
		{"READ (6)", eioRead(12), rw6CDB(opRead6, 12, 1), nil, scsi.MediumError, scsi.ASCUnrecoveredReadError, 12},
		{"READ (16)", eioRead(3000), cdb16(opRead16, 0, 2999, 2), nil, scsi.MediumError, scsi.ASCUnrecoveredReadError, 2999},
		{"WRITE (10)", eioWrite(7), cdb10(opWrite10, 0, 7, 1), make([]byte, bs), scsi.MediumError, scsi.ASCWriteError, 7},
		{"WRITE (12) FUA", eioWrite(8), cdb12(opWrite12, fua, 6, 4), make([]byte, 4*bs), scsi.MediumError, scsi.ASCWriteError, 6},
		{"WRITE (16) no space", func(f *backstore.Fault) {
			f.FailRange(backstore.OpWrite, 0, 1<<30, fmt.Errorf("wrapped: %w", syscall.ENOSPC))
		}, cdb16(opWrite16, 0, 1, 1), make([]byte, bs), scsi.DataProtect, ASCSpaceAllocationFailed, -1},
		{"WRITE (10) quota", func(f *backstore.Fault) {
			f.FailRange(backstore.OpWrite, 0, 1<<30, syscall.EDQUOT)
		}, cdb10(opWrite10, 0, 1, 1), make([]byte, bs), scsi.DataProtect, ASCSpaceAllocationFailed, -1},
		{"WRITE (10) read-only store", func(f *backstore.Fault) {
			f.FailRange(backstore.OpWrite, 0, 1<<30, &backstore.OpError{Op: "write", Err: backstore.ErrReadOnly})
		}, cdb10(opWrite10, 0, 1, 1), make([]byte, bs), scsi.DataProtect, scsi.ASCWriteProtected, -1},
		{"SYNCHRONIZE CACHE (10)", failSync(syscall.EIO), cdb10(opSyncCache10, 0, 0, 0), nil, scsi.MediumError, scsi.ASCWriteError, -1},
		{"SYNCHRONIZE CACHE (16) no space", failSync(syscall.ENOSPC), cdb16(opSyncCache16, 0, 0, 0), nil, scsi.DataProtect, ASCSpaceAllocationFailed, -1},
		{"READ (10) FUA flush fails", failSync(syscall.EIO), cdb10(opRead10, fua, 0, 1), nil, scsi.MediumError, scsi.ASCWriteError, -1},
		{"VERIFY (10)", eioRead(5), cdb10(opVerify10, 0, 5, 1), nil, scsi.MediumError, scsi.ASCUnrecoveredReadError, 5},
		// VERIFY reads in chunks of 1 MiB; the INFORMATION field names
		// the first LBA of the chunk that failed.
		{"VERIFY (16) second chunk", eioRead(2048 + 100), cdb16(opVerify16, 0, 0, 4096), nil, scsi.MediumError, scsi.ASCUnrecoveredReadError, 2048},
		{"VERIFY (10) flush fails", failSync(syscall.EIO), cdb10(opVerify10, 0, 0, 1), nil, scsi.MediumError, scsi.ASCWriteError, -1},
		{"WRITE AND VERIFY (10) write", eioWrite(9), cdb10(opWriteAndVerify10, 0, 9, 1), make([]byte, bs), scsi.MediumError, scsi.ASCWriteError, 9},
		{"WRITE AND VERIFY (16) read back", eioRead(9), cdb16(opWriteAndVerify16, 0x02, 9, 1), make([]byte, bs), scsi.MediumError, scsi.ASCUnrecoveredReadError, 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := backstore.NewFault(backstore.NewMemory(4096*bs, bs))
			b := newBench(t, f, benchConfig{writeCache: true})
			c.fail(f)
			s := requireSense(t, b.run(c.cdb, c.dataOut), c.key, c.code)
			if c.info < 0 {
				assert.False(t, s.HasInformation)
			} else {
				assert.True(t, s.HasInformation)
				assert.Equal(t, uint64(c.info), s.Information)
			}
		})
	}
}

// ASCSpaceAllocationFailed is SPACE ALLOCATION FAILED WRITE PROTECT,
// spelled out here independently of the package.
const ASCSpaceAllocationFailed scsi.ASC = 0x2707

func TestDescriptorSenseInformation(t *testing.T) {
	const bs = 512
	f := backstore.NewFault(backstore.NewMemory(64*bs, bs))
	b := newBench(t, f, benchConfig{})
	b.setMode(scsi.ModeState{DSense: true})
	f.FailRange(backstore.OpRead, 0, 64*bs, syscall.EIO)
	c := b.run(cdb16(opRead16, 0, 33, 1), nil)
	require.Equal(t, byte(0x72), c.Sense[0], "descriptor format")
	s := requireSense(t, c, scsi.MediumError, scsi.ASCUnrecoveredReadError)
	assert.Equal(t, uint64(33), s.Information)
}

// pausedWriteStore writes half of a WriteAt, reports it on halfway, and
// writes the rest only when resume is closed; ReadAt reports on reading.
type pausedWriteStore struct {
	backstore.Store
	halfway, resume, reading chan struct{}
}

func (s *pausedWriteStore) WriteAt(p []byte, off int64, fua bool) error {
	n := len(p) / 2
	if err := s.Store.WriteAt(p[:n], off, fua); err != nil {
		return err
	}
	close(s.halfway)
	<-s.resume
	return s.Store.WriteAt(p[n:], off+int64(n), fua)
}

func (s *pausedWriteStore) ReadAt(p []byte, off int64) error {
	select {
	case s.reading <- struct{}{}:
	default:
	}
	return s.Store.ReadAt(p, off)
}

// TestReadNeverSeesATornWrite: a READ of a block a WRITE is writing waits
// for the write and returns the whole new block. The soak found a READ of
// a file LUN returning the head of a COMPARE AND WRITE's block and the
// tail of the old one: a buffered read of a file races a write of the same
// block in the page cache, and READ held no extent.
func TestReadNeverSeesATornWrite(t *testing.T) {
	const bs, lba = 512, 3
	m := backstore.NewMemory(16*bs, bs)
	store := &pausedWriteStore{Store: m, halfway: make(chan struct{}), resume: make(chan struct{}), reading: make(chan struct{}, 1)}
	b := newBench(t, store, benchConfig{writeCache: true})
	old := pattern(bs, 1)
	require.NoError(t, m.WriteAt(old, lba*bs, false))
	written := pattern(bs, 2)

	wrote := make(chan *scsi.Command)
	go func() { wrote <- b.run(cdb16(opWrite16, 0, lba, 1), written) }()
	<-store.halfway
	read := make(chan *scsi.Command)
	go func() { read <- b.run(cdb16(opRead16, 0, lba, 1), nil) }()
	select {
	case <-store.reading:
		t.Fatal("the READ reached the store while a WRITE of its block was half done")
	case c := <-read:
		t.Fatalf("the READ ended while a WRITE of its block was half done (status %v)", c.Status)
	case <-time.After(100 * time.Millisecond):
	}
	close(store.resume)
	requireGood(t, <-wrote)
	c := <-read
	requireGood(t, c)
	require.Equal(t, written, c.DataIn)
}
