package sbc_test

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

const opCompareAndWrite = 0x89

func compareAndWriteCDB(flags byte, lba uint64, blocks byte) []byte {
	c := make([]byte, 16)
	c[0], c[1] = opCompareAndWrite, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	c[13] = blocks
	return c
}

// casBlock is the block writer w puts down in round r: a header naming
// both, then bytes that differ for every (r, w), so a block mixing two
// writes is recognised.
func casBlock(bs, r, w int) []byte {
	p := pattern(bs, byte(r*13+w))
	binary.BigEndian.PutUint32(p[0:], uint32(r))
	binary.BigEndian.PutUint32(p[4:], uint32(w))
	return p
}

// TestCompareAndWriteAtomic races COMPARE AND WRITE from many goroutines
// on one block, round after round, each expecting the block the previous
// round's winner wrote and replacing it with its own. Exactly one wins
// every round, the others see MISCOMPARE, and the block is always exactly
// one writer's, never torn. Plain WRITEs to the neighbouring blocks run
// meanwhile and must not disturb it either.
func TestCompareAndWriteAtomic(t *testing.T) {
	const goroutines, rounds, bs, lba = 8, 100, 512, 5
	stores := map[string]func(t *testing.T) backstore.Store{
		"memory": func(*testing.T) backstore.Store { return backstore.NewMemory(16*bs, bs) },
		"file": func(t *testing.T) backstore.Store {
			f, err := backstore.OpenFile(filepath.Join(t.TempDir(), "lu.img"), 16*bs, bs, backstore.FileOptions{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = f.Close() })
			return f
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			b := newBench(t, store, benchConfig{writeCache: true})
			expected := casBlock(bs, 0, 0)
			requireGood(t, b.run(cdb16(opWrite16, 0, lba, 1), expected))
			for r := range rounds {
				var wg sync.WaitGroup
				results := make([]*scsi.Command, goroutines)
				for w := range goroutines {
					wg.Go(func() {
						data := append(bytes.Clone(expected), casBlock(bs, r+1, w)...)
						results[w] = b.run(compareAndWriteCDB(0, lba, 1), data)
					})
				}
				neighbours := make([]*scsi.Command, 2)
				for i, n := range []uint64{lba - 1, lba + 1} {
					wg.Go(func() {
						neighbours[i] = b.run(cdb16(opWrite16, 0, n, 1), bytes.Repeat([]byte{byte(r)}, bs))
					})
				}
				wg.Wait()
				for _, c := range neighbours {
					requireGood(t, c)
				}
				winner := -1
				for w, c := range results {
					if c.Status == scsi.StatusGood {
						require.Equal(t, -1, winner, "round %d: writers %d and %d both won", r, winner, w)
						winner = w
						continue
					}
					requireSense(t, c, scsi.Miscompare, scsi.ASCMiscompareDuringVerify)
				}
				require.NotEqual(t, -1, winner, "round %d: nobody won", r)
				got := make([]byte, bs)
				require.NoError(t, store.ReadAt(got, lba*bs))
				expected = casBlock(bs, r+1, winner)
				require.Equal(t, expected, got, "round %d: the block is not the winner's", r)
			}
		})
	}
}

// TestCompareAndWriteHoldsTheExtent: a COMPARE AND WRITE waits for a
// writer holding its block and then compares with what that writer left,
// so a concurrent writer can never slip between its compare and its write.
func TestCompareAndWriteHoldsTheExtent(t *testing.T) {
	const bs = 512
	b, m := newMemoryBench(t, 16, bs, benchConfig{writeCache: true})
	old := bytes.Repeat([]byte{0xAA}, bs)
	requireGood(t, b.run(cdb16(opWrite16, 0, 3, 1), old))

	unlock, err := b.lu.LockExtent(t.Context(), 3, 1, scsi.ExtentExclusive)
	require.NoError(t, err)
	done := make(chan *scsi.Command)
	go func() {
		done <- b.run(compareAndWriteCDB(0, 3, 1), append(bytes.Clone(old), bytes.Repeat([]byte{0xBB}, bs)...))
	}()
	select {
	case c := <-done:
		t.Fatalf("COMPARE AND WRITE finished while the extent was held: %v", c.Status)
	case <-time.After(50 * time.Millisecond):
	}
	// The holder changes the block, then lets go.
	require.NoError(t, m.WriteAt(bytes.Repeat([]byte{0xCC}, bs), 3*bs, false))
	unlock()
	s := requireSense(t, <-done, scsi.Miscompare, scsi.ASCMiscompareDuringVerify)
	require.Equal(t, uint64(0), s.Information)
	got := make([]byte, bs)
	require.NoError(t, m.ReadAt(got, 3*bs))
	require.Equal(t, bytes.Repeat([]byte{0xCC}, bs), got)
}

// TestCompareAndWriteEveryLength runs every NUMBER OF LOGICAL BLOCKS up to
// the maximum at both ends of the medium with both block sizes, matching
// and with the last verify byte changed.
func TestCompareAndWriteEveryLength(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		const blocks = 600
		b, m := newMemoryBench(t, blocks, bs, benchConfig{writeCache: true})
		for n := 1; n <= 255; n += 17 {
			for _, lba := range []uint64{0, blocks - uint64(n)} {
				old := pattern(n*bs, byte(n))
				require.NoError(t, m.WriteAt(old, int64(lba)*int64(bs), false))
				data := append(bytes.Clone(old), pattern(n*bs, byte(n+1))...)
				data[n*bs-1] ^= 0xFF
				s := requireSense(t, b.run(compareAndWriteCDB(0, lba, byte(n)), data), scsi.Miscompare, scsi.ASCMiscompareDuringVerify)
				require.Equal(t, uint64(n*bs-1), s.Information)
				data[n*bs-1] ^= 0xFF
				requireGood(t, b.run(compareAndWriteCDB(0, lba, byte(n)), data))
				got := make([]byte, n*bs)
				require.NoError(t, m.ReadAt(got, int64(lba)*int64(bs)))
				require.Equal(t, data[n*bs:], got, "bs %d, %d blocks at LBA %d", bs, n, lba)
			}
		}
	}
}
