package sbc_test

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

const (
	opWriteSame10 = 0x41
	opWriteSame16 = 0x93
	opUnmap       = 0x42
	wsUnmapBit    = 0x08
	wsNDOBBit     = 0x01
)

func writeSame16CDB(flags byte, lba uint64, blocks uint32) []byte {
	return cdb16(opWriteSame16, flags, lba, blocks)
}

// unmapCDB returns an UNMAP CDB and its parameter list with one
// descriptor per range (pairs of LBA and block count).
func unmapCDB(ranges ...uint64) (cdb, list []byte) {
	n := len(ranges) / 2
	list = make([]byte, 8+16*n)
	binary.BigEndian.PutUint16(list[0:], uint16(6+16*n))
	binary.BigEndian.PutUint16(list[2:], uint16(16*n))
	for i := range n {
		binary.BigEndian.PutUint64(list[8+16*i:], ranges[2*i])
		binary.BigEndian.PutUint32(list[16+16*i:], uint32(ranges[2*i+1]))
	}
	cdb = make([]byte, 10)
	cdb[0] = opUnmap
	binary.BigEndian.PutUint16(cdb[7:], uint16(len(list)))
	return cdb, list
}

func getLBAStatusCDB(lba uint64, allocLen uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = opServiceActionIn, 0x12
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], allocLen)
	return c
}

// lbaStatus returns the first LBA status descriptor GET LBA STATUS reports
// for lba: the number of blocks in its run and whether they are mapped.
func (b *bench) lbaStatus(tb testing.TB, lba uint64) (blocks uint32, mapped bool) {
	tb.Helper()
	c := b.run(getLBAStatusCDB(lba, 24), nil)
	requireGood(tb, c)
	require.Len(tb, c.DataIn, 24)
	require.Equal(tb, lba, binary.BigEndian.Uint64(c.DataIn[8:]))
	return binary.BigEndian.Uint32(c.DataIn[16:]), c.DataIn[20]&0x0F == 0
}

// opRecorder is a Fault rule that records the operations of some kinds.
type opRecorder struct {
	mu  sync.Mutex
	ops []backstore.Op
}

func (r *opRecorder) record(kinds ...backstore.OpKind) func(backstore.Op) error {
	return func(op backstore.Op) error {
		for _, k := range kinds {
			if op.Kind == k {
				r.mu.Lock()
				r.ops = append(r.ops, op)
				r.mu.Unlock()
			}
		}
		return nil
	}
}

// TestWriteSameChunks: a WRITE SAME longer than the chunk buffer is
// written a bounded chunk at a time and every block gets the data.
func TestWriteSameChunks(t *testing.T) {
	const blocks, bs = 5000, 512
	m := backstore.NewMemory(blocks*bs, bs)
	f := backstore.NewFault(m)
	var rec opRecorder
	f.Inject(rec.record(backstore.OpWrite))
	b := newBench(t, f, benchConfig{writeCache: true})
	block := pattern(bs, 0x3C)
	requireGood(t, b.run(writeSame16CDB(0, 1, blocks-2), block))

	all := contents(t, m)
	require.Equal(t, make([]byte, bs), all[:bs])
	require.Equal(t, bytes.Repeat(block, blocks-2), all[bs:(blocks-1)*bs])
	require.Equal(t, make([]byte, bs), all[(blocks-1)*bs:])
	require.Len(t, rec.ops, 3)
	var covered int
	for _, op := range rec.ops {
		require.LessOrEqual(t, op.Len, 1<<20, "one write of %d bytes", op.Len)
		covered += op.Len
	}
	require.Equal(t, (blocks-2)*bs, covered)
}

// TestZeroingChunks: deallocating or zeroing a range larger than a chunk
// takes several store calls, each bounded, covering the range exactly.
func TestZeroingChunks(t *testing.T) {
	const blocks, bs = 20000, 4096 // 80 MiB, more than one 64 MiB chunk
	m := backstore.NewMemory(blocks*bs, bs)
	f := backstore.NewFault(m)
	var rec opRecorder
	f.Inject(rec.record(backstore.OpZero, backstore.OpUnmap))
	b := newBench(t, f, benchConfig{writeCache: true})
	requireGood(t, b.run(writeSame16CDB(0, 0, blocks), bytes.Repeat([]byte{0xFF}, bs)))

	for _, tc := range []struct {
		name string
		run  func() *scsi.Command
		kind backstore.OpKind
	}{
		{"write same ndob", func() *scsi.Command { return b.run(writeSame16CDB(wsNDOBBit, 10, blocks-20), nil) }, backstore.OpZero},
		{"write same unmap", func() *scsi.Command {
			return b.run(writeSame16CDB(wsUnmapBit, 10, blocks-20), make([]byte, bs))
		}, backstore.OpUnmap},
		{"unmap", func() *scsi.Command {
			cdb, list := unmapCDB(10, blocks-20)
			return b.run(cdb, list)
		}, backstore.OpUnmap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.ops = nil
			requireGood(t, tc.run())
			var covered int64
			for _, op := range rec.ops {
				require.Equal(t, tc.kind, op.Kind)
				require.LessOrEqual(t, op.Len, 64<<20)
				require.Equal(t, 10*bs+covered, op.Off)
				covered += int64(op.Len)
			}
			require.Len(t, rec.ops, 2)
			require.Equal(t, int64(blocks-20)*bs, covered)
			p := make([]byte, bs)
			for _, lba := range []int64{9, 10, blocks / 2, blocks - 11, blocks - 10} {
				require.NoError(t, m.ReadAt(p, lba*bs))
				want := byte(0)
				if lba == 9 || lba == blocks-10 {
					want = 0xFF
				}
				require.Equal(t, bytes.Repeat([]byte{want}, bs), p, "LBA %d", lba)
			}
			requireGood(t, b.run(writeSame16CDB(0, 0, blocks), bytes.Repeat([]byte{0xFF}, bs)))
		})
	}
}

// gatedStore holds the first write at one offset until released, so a
// test can act while a command is in the middle of its writes.
type gatedStore struct {
	backstore.Store
	off              int64
	once             sync.Once
	reached, release chan struct{}
}

func newGatedStore(s backstore.Store, off int64) *gatedStore {
	return &gatedStore{Store: s, off: off, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedStore) WriteAt(p []byte, off int64, fua bool) error {
	if off == g.off {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.reached)
			<-g.release
		}
	}
	return g.Store.WriteAt(p, off, fua)
}

// TestWriteSameStopsWhenAborted: an aborted WRITE SAME stops between
// chunks, leaving the rest of its range alone.
func TestWriteSameStopsWhenAborted(t *testing.T) {
	const blocks, bs = 8192, 512 // four chunks of 1 MiB
	m := backstore.NewMemory(blocks*bs, bs)
	g := newGatedStore(m, 0)
	reached, release := g.reached, g.release
	b := newBench(t, g, benchConfig{writeCache: true})
	c := &scsi.Command{
		CDB: writeSame16CDB(0, 0, blocks), Nexus: b.nexus, Attr: scsi.TaskSimple,
		DataOut: bytes.Repeat([]byte{0x77}, bs),
	}
	done := make(chan struct{})
	scsi.Submit(c, func(*scsi.Command) { close(done) })
	<-reached
	aborted := make(chan struct{})
	go func() {
		b.lu.AbortTaskSet(b.nexus)
		close(aborted)
	}()
	<-c.Context().Done()
	close(release)
	<-done
	<-aborted
	require.True(t, c.Aborted)
	all := contents(t, m)
	require.Equal(t, bytes.Repeat([]byte{0x77}, 1<<20), all[:1<<20], "the chunk in flight completes")
	require.Equal(t, make([]byte, len(all)-1<<20), all[1<<20:], "nothing after it is written")
}

// TestWriteSameWaitsOnlyForItsChunk: a WRITE SAME never holds its whole
// range: a READ of a block at its end completes while the WRITE SAME is
// still blocked writing its first chunk.
func TestWriteSameWaitsOnlyForItsChunk(t *testing.T) {
	const blocks, bs = 8192, 512
	m := backstore.NewMemory(blocks*bs, bs)
	g := newGatedStore(m, 0)
	reached, release := g.reached, g.release
	b := newBench(t, g, benchConfig{writeCache: true})
	done := make(chan *scsi.Command)
	go func() { done <- b.run(writeSame16CDB(0, 0, blocks), bytes.Repeat([]byte{0x77}, bs)) }()
	<-reached
	// WRITE (extent lock, exclusive) of the last block.
	requireGood(t, b.run(cdb16(opWrite16, 0, blocks-1, 1), bytes.Repeat([]byte{0x11}, bs)))
	close(release)
	requireGood(t, <-done)
	p := make([]byte, bs)
	require.NoError(t, m.ReadAt(p, (blocks-1)*bs))
	require.Equal(t, bytes.Repeat([]byte{0x77}, bs), p, "the WRITE SAME reached the last block after the WRITE")
}
