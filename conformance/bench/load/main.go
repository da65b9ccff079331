// Command load drives a mix of READ (16) and WRITE (16) commands at a
// running target's LUN for conformance/bench/io.sh, which runs it against
// odxtgt and against a peer in the same run: -qd workers share one
// session, each keeping one command in flight, for -seconds. The offsets
// are random (seeded, aligned to -bs) or, with -seq, each worker walks its
// own stretch of the LUN in order; -read is the percentage of reads. It
// prints one line: "IOPS MIBPS P99_MS", MIBPS in MiB/s (2^20 bytes, the
// unit of iscsi-perf's "MB/s", which io.sh puts beside it) and the 99th
// percentile of the command latencies in milliseconds.
//
//	load -addr 127.0.0.1:3260 -target IQN -lun 0 -bs 4096 -qd 32 -read 70 -seconds 8
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// options are the command's flags.
type options struct {
	addr, target string
	lun          uint64
	blockBytes   int
	depth        int
	readPercent  int
	sequential   bool
	duration     time.Duration
	seed         uint64
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:3260", "target portal")
	flag.StringVar(&o.target, "target", "", "target name")
	flag.Uint64Var(&o.lun, "lun", 0, "LUN")
	flag.IntVar(&o.blockBytes, "bs", 4096, "bytes per command, a multiple of the LUN's block size")
	flag.IntVar(&o.depth, "qd", 32, "commands in flight")
	flag.IntVar(&o.readPercent, "read", 0, "percentage of reads (0: all writes, 100: all reads)")
	flag.BoolVar(&o.sequential, "seq", false, "sequential offsets instead of random ones")
	secs := flag.Float64("seconds", 8, "how long to run")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the offsets and the read/write choice")
	flag.Parse()
	o.duration = time.Duration(*secs * float64(time.Second))
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.depth < 1 || o.blockBytes < 1 || o.readPercent < 0 || o.readPercent > 100 {
		return fmt.Errorf("-qd and -bs must be positive and -read from 0 to 100")
	}
	ctx := context.Background()
	s, err := initiator.Dial(ctx, o.addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:load", TargetName: o.target})
	if err != nil {
		return err
	}
	defer s.Logout(ctx, initiator.LogoutCloseSession)
	// The power-on unit attention.
	if _, err := s.Command(ctx, initiator.Request{LUN: o.lun, CDB: make([]byte, 6)}); err != nil {
		return err
	}
	blocks, bs, err := capacity(ctx, s, o.lun)
	if err != nil {
		return err
	}
	if o.blockBytes%bs != 0 {
		return fmt.Errorf("-bs %d is not a multiple of the block size %d", o.blockBytes, bs)
	}
	per := uint64(o.blockBytes / bs)
	slots := blocks / per // command-sized slots on the LUN
	if slots < uint64(o.depth) {
		return fmt.Errorf("the LUN holds %d commands of %d bytes, fewer than -qd %d", slots, o.blockBytes, o.depth)
	}

	deadline := time.Now().Add(o.duration)
	lat := make([][]time.Duration, o.depth)
	bytesDone := make([]int64, o.depth)
	errs := make([]error, o.depth)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range o.depth {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(o.seed, uint64(w)))
			data := make([]byte, o.blockBytes)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			stretch := slots / uint64(o.depth)
			next := uint64(w) * stretch
			for time.Now().Before(deadline) {
				slot := rng.Uint64N(slots)
				if o.sequential {
					slot, next = next, next+1
					if next == uint64(w+1)*stretch {
						next = uint64(w) * stretch
					}
				}
				req := initiator.Request{LUN: o.lun}
				if rng.IntN(100) < o.readPercent {
					req.CDB, req.ReadLen = rw16(0x88, slot*per, uint32(per)), o.blockBytes
				} else {
					req.CDB, req.DataOut = rw16(0x8A, slot*per, uint32(per)), data
				}
				t0 := time.Now()
				r, err := s.Command(ctx, req)
				if err == nil && r.Status != scsi.StatusGood {
					err = fmt.Errorf("CDB % x: %s %v", req.CDB, r.Status, r.Sense)
				}
				if err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
				bytesDone[w] += int64(o.blockBytes)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return fmt.Errorf("no command completed")
	}
	slices.Sort(all)
	p99 := all[min(len(all)-1, len(all)*99/100)]
	var total int64
	for _, b := range bytesDone {
		total += b
	}
	fmt.Printf("%.0f %.1f %.3f\n", float64(len(all))/elapsed, mibPerSecond(total, elapsed), p99.Seconds()*1000)
	return nil
}

// mibPerSecond is the throughput of n bytes moved in secs seconds, in
// MiB/s.
func mibPerSecond(n int64, secs float64) float64 { return float64(n) / secs / (1 << 20) }

// capacity reads the number of blocks and the block size with READ
// CAPACITY (16).
func capacity(ctx context.Context, s *initiator.Session, lun uint64) (blocks uint64, bs int, err error) {
	cdb := make([]byte, 16)
	cdb[0], cdb[1], cdb[13] = 0x9E, 0x10, 32
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: cdb, ReadLen: 32})
	if err != nil {
		return 0, 0, err
	}
	if r.Status != scsi.StatusGood || len(r.DataIn) < 12 {
		return 0, 0, fmt.Errorf("READ CAPACITY (16): %s %v", r.Status, r.Sense)
	}
	return binary.BigEndian.Uint64(r.DataIn) + 1, int(binary.BigEndian.Uint32(r.DataIn[8:])), nil
}

// rw16 builds a READ (16) or WRITE (16) CDB.
func rw16(op byte, lba uint64, blocks uint32) []byte {
	cdb := make([]byte, 16)
	cdb[0] = op
	binary.BigEndian.PutUint64(cdb[2:], lba)
	binary.BigEndian.PutUint32(cdb[10:], blocks)
	return cdb
}
