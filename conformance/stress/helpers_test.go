package stress

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

func TestLockEncoding(t *testing.T) {
	for _, c := range []struct {
		round  uint64
		winner int
	}{{0, 0}, {1, 0}, {7, 3}, {1 << 40, 127}} {
		b := encodeLock(c.round, c.winner)
		r, w, ok := decodeLock(b)
		if !ok || r != c.round || (c.round != 0 && w != c.winner) {
			t.Fatalf("decode(encode(%d, %d)) = %d, %d, %v", c.round, c.winner, r, w, ok)
		}
	}
	// A block torn between two rounds does not decode.
	a, b := encodeLock(5, 1), encodeLock(6, 2)
	for _, cut := range []int{32, 40, 256, 504} {
		torn := append(bytes.Clone(a[:cut]), b[cut:]...)
		if _, _, ok := decodeLock(torn); ok {
			t.Fatalf("a block torn at byte %d decodes", cut)
		}
	}
}

func TestRanges(t *testing.T) {
	r := &run{region: 100, base: 4}
	s := &session{r: r, id: 3, rng: rand.New(rand.NewPCG(1, 2))}
	for range 10000 {
		k, total := 1+s.rng.IntN(3), 1+s.rng.IntN(100)
		rs := s.disjointRanges(k, total)
		if totalBlocks(rs) != total || len(rs) > k {
			t.Fatalf("disjointRanges(%d, %d) = %+v", k, total, rs)
		}
		end := s.regionStart()
		for _, x := range rs {
			if x.n <= 0 || x.lba < end || x.lba+uint64(x.n) > s.regionStart()+r.region {
				t.Fatalf("disjointRanges(%d, %d) = %+v: overlap or outside the region", k, total, rs)
			}
			end = x.lba + uint64(x.n)
		}
		off := s.rng.IntN(total)
		n := s.rng.IntN(total-off) + 1
		if got := totalBlocks(sliceRanges(rs, off, n)); got != n {
			t.Fatalf("sliceRanges(%+v, %d, %d) holds %d blocks", rs, off, n, got)
		}
	}
}

// TestStressDetectsCorruption changes a block of one worker's region
// behind the model's back and expects the final verification to name it.
func TestStressDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	srv, err := StartServer(odxtgtBin, dir, stressConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	var victim uint64
	_, err = Run(context.Background(), Config{
		Addr: srv.Addr, Target: stressTarget, Initiators: []string{"iqn.2025-01.io.odxtgt:sabotage"},
		LUNs: []uint64{0, 1}, Sessions: 2, Workers: 2, Seed: 42, Duration: time.Second,
		sabotage: func(ctx context.Context, ws []*session) error {
			w := ws[3]
			victim = w.regionStart() + 17
			resp, err := ws[0].conn.Command(ctx, initiator.Request{LUN: 1, CDB: rw16(0x8A, 0, victim, 1), DataOut: bytes.Repeat([]byte{0xEE}, BlockSize)})
			if err != nil || resp.Status != scsi.StatusGood {
				t.Fatalf("sabotage write: %v %v", err, resp)
			}
			return nil
		},
	})
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *Failure, got %v", err)
	}
	if f.Worker != 3 || f.LUN != 1 || !f.HasLBA || f.LBA != victim || f.Seed != 42 {
		t.Fatalf("failure names worker %d LUN %d LBA %d (%v), want worker 3 LUN 1 LBA %d: %v", f.Worker, f.LUN, f.LBA, f.HasLBA, victim, f)
	}
	t.Log(f)
}

// TestUnknownBlocks: blocks of a command cut short by a crash accept their
// old or one of their new contents, whole, once; a block torn between old
// and new, or a block no interrupted command covered that changed, fails.
func TestUnknownBlocks(t *testing.T) {
	r := &run{region: 16, base: 0}
	l := &lu{num: 0, blocks: 16, data: make([]byte, 16*BlockSize)}
	r.lus = []*lu{l}
	s := &session{r: r, rng: rand.New(rand.NewPCG(1, 2))}
	old := bytes.Clone(l.at(0, 4))
	nw := s.fill(4)
	nw2 := s.fill(1)
	s.expect(l, 0, nw, "")
	s.expect(l, 1, nw2, "") // a later segment over block 1
	s.unsettle()

	got := bytes.Clone(old)
	copy(got[BlockSize:], nw2)                               // block 1: the second segment's
	copy(got[2*BlockSize:], nw[2*BlockSize:3*BlockSize])     // block 2: new
	copy(got[3*BlockSize:3*BlockSize+100], nw[3*BlockSize:]) // block 3: torn
	err := s.compare(l, 0, got, "read")
	var f *Failure
	if !errors.As(err, &f) || f.LBA != 3 {
		t.Fatalf("a torn block: %v", err)
	}
	// Blocks 0-2 settled as read: block 0 old, 1 and 2 new.
	if !bytes.Equal(l.at(1, 1), nw2) || !bytes.Equal(l.at(2, 1), nw[2*BlockSize:3*BlockSize]) || !bytes.Equal(l.at(0, 1), old[:BlockSize]) {
		t.Fatal("the model did not take the blocks read back")
	}
	if err := s.compare(l, 0, got[:3*BlockSize], "read"); err != nil {
		t.Fatalf("blocks settled: %v", err)
	}
	// Settled means settled: block 2 may no longer read as old.
	if err := s.compare(l, 2, old[2*BlockSize:3*BlockSize], "read"); err == nil {
		t.Fatal("a settled block went back to its old content unnoticed")
	}
}
