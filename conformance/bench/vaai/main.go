// Command vaai makes one range of a running target's LUN read as zeroes,
// for conformance/bench/vaai.sh, in one of four ways, and prints the
// seconds it took, a SYNCHRONIZE CACHE at the end included:
//
//   - write: WRITE (16) of 1 MiB buffers of zeroes, several in flight (what
//     an initiator without offloads does);
//   - writesame: WRITE SAME (16) of a zero block, UNMAP clear, each command
//     as long as the Block Limits VPD page's MAXIMUM WRITE SAME LENGTH;
//   - writesame-unmap: the same with UNMAP set;
//   - unmap: UNMAP, one descriptor per command of up to the MAXIMUM UNMAP
//     LBA COUNT.
//
// The offloaded modes keep the same number of commands in flight as write.
//
// The modes caw and caw-contended (caw.go) measure one-block COMPARE AND
// WRITE round trips instead, for conformance/bench/caw.sh, for -seconds,
// -qd workers on the one session.
//
//	vaai -addr 127.0.0.1:3260 -target IQN -lun 0 -bytes 1073741824 -mode write|writesame|writesame-unmap|unmap
//	vaai -addr 127.0.0.1:3260 -target IQN -lun 0 -mode caw|caw-contended -qd 32 -seconds 5
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3260", "target portal")
	target := flag.String("target", "", "target name")
	lun := flag.Uint64("lun", 0, "LUN")
	n := flag.Int64("bytes", 1<<30, "bytes to zero from LBA 0, a multiple of the block size")
	mode := flag.String("mode", "write", "write, writesame, writesame-unmap, unmap, caw or caw-contended")
	depth := flag.Int("qd", 8, "commands in flight (caw modes: workers)")
	secs := flag.Float64("seconds", 5, "caw modes: how long to run")
	flag.Parse()
	if err := run(*addr, *target, *lun, *n, *mode, *depth, time.Duration(*secs*float64(time.Second))); err != nil {
		fmt.Fprintln(os.Stderr, "vaai:", err)
		os.Exit(1)
	}
}

func run(addr, target string, lun uint64, n int64, mode string, depth int, d time.Duration) error {
	ctx := context.Background()
	s, err := initiator.Dial(ctx, addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:bench", TargetName: target})
	if err != nil {
		return err
	}
	defer s.Logout(ctx, initiator.LogoutCloseSession)
	// Consume the power-on unit attention.
	if _, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: make([]byte, 6)}); err != nil {
		return err
	}
	bs, err := blockSize(ctx, s, lun)
	if err != nil {
		return err
	}
	if mode == "caw" || mode == "caw-contended" {
		return runCAW(ctx, s, lun, bs, mode, depth, d)
	}
	maxWS, maxUnmap, err := limits(ctx, s, lun)
	if err != nil {
		return err
	}
	blocks := uint64(n / bs)
	var per uint64
	var build func(lba, k uint64) initiator.Request
	switch mode {
	case "write":
		per = uint64((1 << 20) / bs)
		zeroes := make([]byte, 1<<20)
		build = func(lba, k uint64) initiator.Request {
			return initiator.Request{LUN: lun, CDB: cdb16(0x8A, 0, lba, uint32(k)), DataOut: zeroes[:k*uint64(bs)]}
		}
	case "writesame", "writesame-unmap":
		if maxWS == 0 {
			return fmt.Errorf("the LUN reports no MAXIMUM WRITE SAME LENGTH")
		}
		per = maxWS
		var flags byte
		if mode == "writesame-unmap" {
			flags = 0x08
		}
		block := make([]byte, bs)
		build = func(lba, k uint64) initiator.Request {
			return initiator.Request{LUN: lun, CDB: cdb16(0x93, flags, lba, uint32(k)), DataOut: block}
		}
	case "unmap":
		if maxUnmap == 0 {
			return fmt.Errorf("the LUN reports no MAXIMUM UNMAP LBA COUNT")
		}
		per = maxUnmap
		build = func(lba, k uint64) initiator.Request {
			list := make([]byte, 24)
			binary.BigEndian.PutUint16(list[0:], 22)
			binary.BigEndian.PutUint16(list[2:], 16)
			binary.BigEndian.PutUint64(list[8:], lba)
			binary.BigEndian.PutUint32(list[16:], uint32(k))
			cdb := make([]byte, 10)
			cdb[0] = 0x42
			binary.BigEndian.PutUint16(cdb[7:], uint16(len(list)))
			return initiator.Request{LUN: lun, CDB: cdb, DataOut: list}
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	start := time.Now()
	if err := spread(ctx, s, blocks, per, depth, build); err != nil {
		return err
	}
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}})
	if err := check(r, err, "SYNCHRONIZE CACHE (10)"); err != nil {
		return err
	}
	fmt.Printf("%.6f\n", time.Since(start).Seconds())
	return nil
}

// spread covers blocks [0, blocks) with commands of at most per blocks,
// depth of them in flight.
func spread(ctx context.Context, s *initiator.Session, blocks, per uint64, depth int, build func(lba, k uint64) initiator.Request) error {
	next := make(chan uint64)
	go func() {
		defer close(next)
		for lba := uint64(0); lba < blocks; lba += per {
			next <- lba
		}
	}()
	errs := make(chan error, depth)
	for range depth {
		go func() {
			var first error
			for lba := range next {
				if first != nil {
					continue
				}
				req := build(lba, min(per, blocks-lba))
				r, err := s.Command(ctx, req)
				first = check(r, err, fmt.Sprintf("CDB % x", req.CDB))
			}
			errs <- first
		}()
	}
	var first error
	for range depth {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func check(r *initiator.Response, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if r.Status != scsi.StatusGood {
		return fmt.Errorf("%s: %s %v", what, r.Status, r.Sense)
	}
	return nil
}

func blockSize(ctx context.Context, s *initiator.Session, lun uint64) (int64, error) {
	cdb := make([]byte, 16)
	cdb[0], cdb[1], cdb[13] = 0x9E, 0x10, 32 // READ CAPACITY (16)
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: cdb, ReadLen: 32})
	if err := check(r, err, "READ CAPACITY (16)"); err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint32(r.DataIn[8:])), nil
}

// limits reads the MAXIMUM WRITE SAME LENGTH and the MAXIMUM UNMAP LBA
// COUNT from the Block Limits VPD page.
func limits(ctx context.Context, s *initiator.Session, lun uint64) (maxWS, maxUnmap uint64, err error) {
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: []byte{0x12, 0x01, 0xB0, 0x00, 0x40, 0x00}, ReadLen: 64})
	if err := check(r, err, "INQUIRY VPD B0h"); err != nil {
		return 0, 0, err
	}
	if len(r.DataIn) < 44 {
		return 0, 0, fmt.Errorf("Block Limits page of %d bytes", len(r.DataIn))
	}
	return binary.BigEndian.Uint64(r.DataIn[36:]), uint64(binary.BigEndian.Uint32(r.DataIn[20:])), nil
}

func cdb16(op, flags byte, lba uint64, blocks uint32) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = op, flags
	binary.BigEndian.PutUint64(cdb[2:], lba)
	binary.BigEndian.PutUint32(cdb[10:], blocks)
	return cdb
}
