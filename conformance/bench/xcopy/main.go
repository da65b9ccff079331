// Command xcopy measures one copy between two LUNs of a running target,
// for conformance/bench/xcopy.sh: either offloaded with EXTENDED COPY
// (LID1, one 0Ah segment per MAXIMUM SEGMENT LENGTH) or done by the host
// with READ (16) and WRITE (16) over iSCSI, several commands in flight. It
// prints the seconds the copy took.
//
//	xcopy -addr 127.0.0.1:3260 -target IQN -src 0 -dst 1 -bytes 1073741824 -mode xcopy|host
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
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
	src := flag.Uint64("src", 0, "source LUN")
	dst := flag.Uint64("dst", 1, "destination LUN")
	n := flag.Int64("bytes", 1<<30, "bytes to copy, a multiple of the block size")
	mode := flag.String("mode", "xcopy", "xcopy or host")
	depth := flag.Int("qd", 8, "host copy: commands in flight")
	flag.Parse()
	if err := run(*addr, *target, *src, *dst, *n, *mode, *depth); err != nil {
		fmt.Fprintln(os.Stderr, "xcopy:", err)
		os.Exit(1)
	}
}

func run(addr, target string, src, dst uint64, n int64, mode string, depth int) error {
	ctx := context.Background()
	s, err := initiator.Dial(ctx, addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:bench", TargetName: target})
	if err != nil {
		return err
	}
	defer s.Logout(ctx, initiator.LogoutCloseSession)
	for _, lun := range []uint64{src, dst} {
		// Consume the power-on unit attention.
		if _, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: make([]byte, 6)}); err != nil {
			return err
		}
	}
	bs, err := blockSize(ctx, s, src)
	if err != nil {
		return err
	}
	start := time.Now()
	switch mode {
	case "xcopy":
		err = offload(ctx, s, src, dst, n)
	case "host":
		err = hostCopy(ctx, s, src, dst, n, bs, depth)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%.6f\n", time.Since(start).Seconds())
	return nil
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

// naa returns the NAA designator descriptor (4-byte header and value) of
// a LUN from its Device Identification VPD page.
func naa(ctx context.Context, s *initiator.Session, lun uint64) ([]byte, error) {
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: []byte{0x12, 0x01, 0x83, 0x10, 0x00, 0x00}, ReadLen: 4096})
	if err := check(r, err, "INQUIRY VPD 83h"); err != nil {
		return nil, err
	}
	for p := r.DataIn[4:]; len(p) >= 4; p = p[4+int(p[3]):] {
		if p[1]&0x3F == 0x03 && 4+int(p[3]) <= len(p) { // LU association, NAA
			return bytes.Clone(p[:4+int(p[3])]), nil
		}
	}
	return nil, errors.New("no NAA designator")
}

// offload copies with EXTENDED COPY (LID1), LIST ID USAGE 11b, in
// segments of at most 1 GiB.
func offload(ctx context.Context, s *initiator.Session, src, dst uint64, n int64) error {
	var cscds []byte
	for _, lun := range []uint64{src, dst} {
		d, err := naa(ctx, s, lun)
		if err != nil {
			return err
		}
		c := make([]byte, 32)
		c[0] = 0xE4
		copy(c[4:], d)
		cscds = append(cscds, c...)
	}
	const maxSeg = 1 << 30
	var segs []byte
	for off := int64(0); off < n; off += maxSeg {
		k := min(maxSeg, n-off)
		seg := make([]byte, 32)
		seg[0] = 0x0A
		binary.BigEndian.PutUint16(seg[2:], 0x1C)
		binary.BigEndian.PutUint16(seg[6:], 1)
		binary.BigEndian.PutUint32(seg[8:], uint32(k))
		binary.BigEndian.PutUint64(seg[12:], uint64(off/512))
		binary.BigEndian.PutUint64(seg[20:], uint64(off/512))
		segs = append(segs, seg...)
	}
	hdr := make([]byte, 16)
	hdr[1] = 0x18 // LIST ID USAGE 11b
	binary.BigEndian.PutUint16(hdr[2:], uint16(len(cscds)))
	binary.BigEndian.PutUint32(hdr[8:], uint32(len(segs)))
	list := append(append(hdr, cscds...), segs...)
	cdb := make([]byte, 16)
	cdb[0] = 0x83
	binary.BigEndian.PutUint32(cdb[10:], uint32(len(list)))
	r, err := s.Command(ctx, initiator.Request{LUN: dst, CDB: cdb, DataOut: list})
	return check(r, err, "EXTENDED COPY")
}

// hostCopy reads and writes 1 MiB at a time with depth commands in flight.
func hostCopy(ctx context.Context, s *initiator.Session, src, dst uint64, n, bs int64, depth int) error {
	const chunk = 1 << 20
	errs := make(chan error, depth)
	next := make(chan int64)
	go func() {
		defer close(next)
		for off := int64(0); off < n; off += chunk {
			next <- off
		}
	}()
	for range depth {
		go func() {
			for off := range next {
				k := min(chunk, n-off)
				lba := uint64(off / bs)
				rcdb := rw16(0x88, lba, uint32(k/bs))
				r, err := s.Command(ctx, initiator.Request{LUN: src, CDB: rcdb, ReadLen: int(k)})
				if err := check(r, err, "READ (16)"); err != nil {
					errs <- err
					return
				}
				wr, err := s.Command(ctx, initiator.Request{LUN: dst, CDB: rw16(0x8A, lba, uint32(k/bs)), DataOut: r.DataIn})
				if err := check(wr, err, "WRITE (16)"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
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

func rw16(op byte, lba uint64, blocks uint32) []byte {
	cdb := make([]byte, 16)
	cdb[0] = op
	binary.BigEndian.PutUint64(cdb[2:], lba)
	binary.BigEndian.PutUint32(cdb[10:], blocks)
	return cdb
}
