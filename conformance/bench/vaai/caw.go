package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// The COMPARE AND WRITE modes measure atomic test and set the way VMware
// uses it: one-block COMPARE AND WRITE (89h) on a lock block, depth
// workers issuing them concurrently on the one session (the initiator
// keeps many commands in flight on a connection).
//
//   - caw: each worker owns its lock block (LBA = worker * 8), writes a
//     value to it, then swaps between two values of its own with COMPARE
//     AND WRITE, so every compare must succeed: a MISCOMPARE or any other
//     failure aborts the run. Prints the rounds (COMPARE AND WRITEs) per
//     second, all workers together.
//   - caw-contended: every worker takes the same block (LBA 0): READ (16)
//     of it, then COMPARE AND WRITE of what it read against a value of its
//     own. A GOOD status is a win, a MISCOMPARE a lost race (expected);
//     anything else aborts. Prints "WINS/S MISCOMPARES/S ATTEMPTS/S".

// errMiscompare is a COMPARE AND WRITE that ended in MISCOMPARE.
var errMiscompare = errors.New("MISCOMPARE")

// caw sends one COMPARE AND WRITE of one block at lba: the block must
// hold old, and then holds new.
func caw(ctx context.Context, s *initiator.Session, lun, lba uint64, old, new []byte) error {
	cdb := make([]byte, 16)
	cdb[0] = 0x89
	binary.BigEndian.PutUint64(cdb[2:], lba)
	cdb[13] = 1
	out := make([]byte, 0, len(old)+len(new))
	out = append(append(out, old...), new...)
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: cdb, DataOut: out})
	if err == nil && r.Status == scsi.StatusCheckCondition && r.Sense != nil && r.Sense.Key == scsi.Miscompare {
		return errMiscompare
	}
	return check(r, err, fmt.Sprintf("COMPARE AND WRITE at LBA %d", lba))
}

func readBlock(ctx context.Context, s *initiator.Session, lun, lba uint64, bs int64) ([]byte, error) {
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: cdb16(0x88, 0, lba, 1), ReadLen: int(bs)})
	if err := check(r, err, fmt.Sprintf("READ (16) at LBA %d", lba)); err != nil {
		return nil, err
	}
	if int64(len(r.DataIn)) != bs {
		return nil, fmt.Errorf("READ (16) at LBA %d: %d bytes, want %d", lba, len(r.DataIn), bs)
	}
	return r.DataIn, nil
}

func writeBlock(ctx context.Context, s *initiator.Session, lun, lba uint64, b []byte) error {
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: cdb16(0x8A, 0, lba, 1), DataOut: b})
	return check(r, err, fmt.Sprintf("WRITE (16) at LBA %d", lba))
}

// pattern is a block of bs bytes that names its worker and value.
func pattern(bs int64, worker int, value uint64) []byte {
	b := make([]byte, bs)
	for off := 0; off+16 <= len(b); off += 16 {
		binary.BigEndian.PutUint64(b[off:], uint64(worker)+1)
		binary.BigEndian.PutUint64(b[off+8:], value)
	}
	return b
}

// runCAW runs mode caw or caw-contended for d and prints its rates.
func runCAW(ctx context.Context, s *initiator.Session, lun uint64, bs int64, mode string, depth int, d time.Duration) error {
	if depth < 1 {
		return fmt.Errorf("queue depth %d", depth)
	}
	var stop atomic.Bool
	var wins, misses atomic.Uint64
	errs := make([]error, depth)
	var start time.Time
	var ready, wg sync.WaitGroup
	begin := make(chan struct{})
	for w := range depth {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) {
				errs[w] = fmt.Errorf("worker %d: %w", w, err)
				stop.Store(true)
			}
			switch mode {
			case "caw":
				lba := uint64(w) * 8
				vals := [2][]byte{pattern(bs, w, 0), pattern(bs, w, 1)}
				err := writeBlock(ctx, s, lun, lba, vals[0])
				ready.Done()
				if err != nil {
					fail(err)
					return
				}
				<-begin
				for i := 0; !stop.Load(); i++ {
					if err := caw(ctx, s, lun, lba, vals[i%2], vals[(i+1)%2]); err != nil {
						if errors.Is(err, errMiscompare) {
							err = fmt.Errorf("COMPARE AND WRITE at LBA %d, round %d: MISCOMPARE on a block only this worker writes", lba, i)
						}
						fail(err)
						return
					}
					wins.Add(1)
				}
			case "caw-contended":
				ready.Done()
				<-begin
				for i := uint64(0); !stop.Load(); i++ {
					cur, err := readBlock(ctx, s, lun, 0, bs)
					if err != nil {
						fail(err)
						return
					}
					switch err := caw(ctx, s, lun, 0, cur, pattern(bs, w, i)); {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, errMiscompare):
						misses.Add(1)
					default:
						fail(err)
						return
					}
				}
			}
		}()
	}
	ready.Wait()
	if mode == "caw-contended" {
		if err := writeBlock(ctx, s, lun, 0, pattern(bs, -1, 0)); err != nil {
			stop.Store(true)
			close(begin)
			wg.Wait()
			return err
		}
	}
	start = time.Now()
	close(begin)
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	wg.Wait()
	timer.Stop()
	el := time.Since(start).Seconds()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	w, m := float64(wins.Load()), float64(misses.Load())
	if mode == "caw" {
		fmt.Printf("%.1f\n", w/el)
	} else {
		fmt.Printf("%.1f %.1f %.1f\n", w/el, m/el, (w+m)/el)
	}
	return nil
}
