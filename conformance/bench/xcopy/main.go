// Command xcopy measures one copy between two LUNs of a running target,
// for conformance/bench/xcopy.sh and odx.sh: offloaded with EXTENDED COPY
// (LID1, one 0Ah segment per MAXIMUM SEGMENT LENGTH), offloaded with ODX
// (POPULATE TOKEN and RECEIVE ROD TOKEN INFORMATION, then WRITE USING
// TOKEN in pieces, as Windows sends them), or done by the host with READ
// (16) and WRITE (16) over iSCSI, several commands in flight. It prints the
// seconds the copy took. Three more modes time one part of ODX: pt (the
// POPULATE TOKEN and RRTI of -bytes in -ranges ranges), wut (one WRITE
// USING TOKEN of -bytes, resumed if the target truncates it) and writes
// (-writes random 4 KiB writes over the first -bytes of the source, with
// -live-token a point-in-time token over them).
//
//	xcopy -addr 127.0.0.1:3260 -target IQN -src 0 -dst 1 -bytes 1073741824 -mode xcopy|odx|host|pt|wut|writes
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
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
	mode := flag.String("mode", "xcopy", "xcopy, odx, host, pt, wut or writes")
	depth := flag.Int("qd", 8, "host copy and writes: commands in flight")
	flag.IntVar(&odxRanges, "ranges", 1, "odx and pt: range descriptors of the POPULATE TOKEN (at most 64)")
	flag.Int64Var(&odxPiece, "piece", 256<<20, "odx: bytes per WRITE USING TOKEN (Windows: 256 MiB when OPTIMAL TRANSFER COUNT is)")
	flag.IntVar(&writes, "writes", 20000, "writes: 4 KiB writes")
	flag.BoolVar(&liveToken, "live-token", false, "writes: with a point-in-time token over the range")
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
	elapsed := func() time.Duration { return time.Since(start) }
	switch mode {
	case "xcopy":
		err = offload(ctx, s, src, dst, n)
	case "odx":
		err = odxCopy(ctx, s, src, dst, n, bs)
	case "host":
		err = hostCopy(ctx, s, src, dst, n, bs, depth)
	case "pt":
		var token []byte
		token, _, err = populate(ctx, s, src, splitRanges(0, uint64(n/bs), odxRanges))
		if err == nil {
			d := time.Since(start)
			elapsed = func() time.Duration { return d }
			err = deleteToken(ctx, s, dst, token)
		}
	case "wut":
		elapsed, err = timeOneWUT(ctx, s, src, dst, n, bs)
	case "writes":
		elapsed, err = randomWrites(ctx, s, src, dst, n, bs, depth)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%.6f\n", elapsed().Seconds())
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

// ODX parameters (flags).
var (
	odxRanges int
	odxPiece  int64
	writes    int
	liveToken bool
)

// listID counts list identifiers from 100h, as Windows does host-wide.
var listID uint32 = 0x100

func nextListID() uint32 {
	listID++
	return listID
}

// blockRange is a block device range descriptor.
type blockRange struct {
	lba    uint64
	blocks uint32
}

// splitRanges cuts blocks blocks from lba into k adjacent ranges.
func splitRanges(lba, blocks uint64, k int) []blockRange {
	k = max(1, min(k, 64))
	var out []blockRange
	for i := range k {
		from, to := blocks*uint64(i)/uint64(k), blocks*uint64(i+1)/uint64(k)
		if to > from {
			out = append(out, blockRange{lba + from, uint32(to - from)})
		}
	}
	return out
}

func rangeList(rs []blockRange) []byte {
	var b []byte
	for _, r := range rs {
		d := make([]byte, 16)
		binary.BigEndian.PutUint64(d, r.lba)
		binary.BigEndian.PutUint32(d[8:], r.blocks)
		b = append(b, d...)
	}
	return b
}

func tokenCDB(sa byte, id uint32, n int) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x83, sa
	binary.BigEndian.PutUint32(cdb[6:], id)
	binary.BigEndian.PutUint32(cdb[10:], uint32(n))
	return cdb
}

// populate sends POPULATE TOKEN (IMMED=0, RTV=0) for rs of lun, then
// RECEIVE ROD TOKEN INFORMATION with the same list identifier, and returns
// the token and the blocks it represents.
func populate(ctx context.Context, s *initiator.Session, lun uint64, rs []blockRange) ([]byte, uint64, error) {
	id := nextListID()
	p := make([]byte, 16)
	binary.BigEndian.PutUint16(p[14:], uint16(16*len(rs)))
	p = append(p, rangeList(rs)...)
	binary.BigEndian.PutUint16(p, uint16(len(p)-2))
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: tokenCDB(0x10, id, len(p)), DataOut: p})
	if err := check(r, err, "POPULATE TOKEN"); err != nil {
		return nil, 0, err
	}
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x84, 0x07
	binary.BigEndian.PutUint32(cdb[2:], id)
	binary.BigEndian.PutUint32(cdb[10:], 1024)
	r, err = s.Command(ctx, initiator.Request{LUN: lun, CDB: cdb, ReadLen: 1024})
	if err := check(r, err, "RECEIVE ROD TOKEN INFORMATION"); err != nil {
		return nil, 0, err
	}
	info := r.DataIn
	if len(info) < 32 || info[5]&0x7F != 0x01 || info[15] != 0xF1 {
		return nil, 0, fmt.Errorf("RECEIVE ROD TOKEN INFORMATION: unexpected answer % x", info[:min(len(info), 32)])
	}
	off := 32 + int(info[13])
	if len(info) < off+6+512 || binary.BigEndian.Uint32(info[off:]) != 514 {
		return nil, 0, errors.New("RECEIVE ROD TOKEN INFORMATION: no token")
	}
	return bytes.Clone(info[off+6 : off+6+512]), binary.BigEndian.Uint64(info[16:]), nil
}

// writeUsingToken sends one WRITE USING TOKEN and returns the blocks
// written: all on GOOD, INFORMATION when the target stopped early with
// COPY TARGET DEVICE DATA UNDERRUN (its write budget), the partial success
// Windows takes.
func writeUsingToken(ctx context.Context, s *initiator.Session, lun uint64, token []byte, offset uint64, rs []blockRange, del bool) (uint64, error) {
	p := make([]byte, 536)
	if del {
		p[2] = 0x02 // DEL_TKN
	}
	binary.BigEndian.PutUint64(p[8:], offset)
	copy(p[16:], token)
	binary.BigEndian.PutUint16(p[534:], uint16(16*len(rs)))
	p = append(p, rangeList(rs)...)
	binary.BigEndian.PutUint16(p, uint16(len(p)-2))
	r, err := s.Command(ctx, initiator.Request{LUN: lun, CDB: tokenCDB(0x11, nextListID(), len(p)), DataOut: p})
	if err == nil && r.Status == scsi.StatusCheckCondition && r.Sense != nil &&
		(r.Sense.Key == scsi.CopyAborted || r.Sense.Key == scsi.AbortedCommand) &&
		r.Sense.Code == scsi.ASCCopyTargetDeviceDataUnderrun && r.Sense.HasInformation {
		return r.Sense.Information, nil
	}
	if err := check(r, err, "WRITE USING TOKEN"); err != nil {
		return 0, err
	}
	var n uint64
	for _, x := range rs {
		n += uint64(x.blocks)
	}
	return n, nil
}

// writeAll writes blocks blocks of token from offset to lba of lun in
// WRITE USING TOKEN commands of at most piece blocks, resuming after
// truncations, the last with DEL_TKN when del. It returns the number of
// commands that were truncated.
func writeAll(ctx context.Context, s *initiator.Session, lun uint64, token []byte, offset, lba, blocks, piece uint64, del bool) (int, error) {
	truncated := 0
	for done := uint64(0); done < blocks; {
		k := min(piece, blocks-done)
		last := done+k == blocks
		w, err := writeUsingToken(ctx, s, lun, token, offset+done, []blockRange{{lba + done, uint32(k)}}, del && last)
		if err != nil {
			return truncated, err
		}
		if w == 0 {
			return truncated, errors.New("WRITE USING TOKEN wrote nothing")
		}
		if w < k {
			// A truncated command keeps the token, DEL_TKN or not:
			// the next one goes on with it.
			truncated++
		}
		done += w
	}
	return truncated, nil
}

// odxCopy copies n bytes from src to dst: one POPULATE TOKEN of -ranges
// ranges, then WRITE USING TOKEN pieces of -piece bytes.
func odxCopy(ctx context.Context, s *initiator.Session, src, dst uint64, n, bs int64) error {
	blocks := uint64(n / bs)
	t0 := time.Now()
	token, got, err := populate(ctx, s, src, splitRanges(0, blocks, odxRanges))
	if err != nil {
		return err
	}
	if got != blocks {
		return fmt.Errorf("the token represents %d of %d blocks", got, blocks)
	}
	t1 := time.Now()
	truncated, err := writeAll(ctx, s, dst, token, 0, 0, blocks, uint64(odxPiece/bs), true)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "odx: populate %.3f s, write %.3f s, %d truncated WRITE USING TOKEN resumed\n",
		t1.Sub(t0).Seconds(), time.Since(t1).Seconds(), truncated)
	return nil
}

// deleteToken ends token with a one-block WRITE USING TOKEN with DEL_TKN
// to the first block of lun.
func deleteToken(ctx context.Context, s *initiator.Session, lun uint64, token []byte) error {
	_, err := writeUsingToken(ctx, s, lun, token, 0, []blockRange{{0, 1}}, true)
	return err
}

// timeOneWUT populates n bytes of src, then times one WRITE USING TOKEN of
// all of them to dst, with the commands that finish it if the target
// truncates it.
func timeOneWUT(ctx context.Context, s *initiator.Session, src, dst uint64, n, bs int64) (func() time.Duration, error) {
	blocks := uint64(n / bs)
	token, _, err := populate(ctx, s, src, []blockRange{{0, uint32(blocks)}})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	truncated, err := writeAll(ctx, s, dst, token, 0, 0, blocks, blocks, true)
	d := time.Since(start)
	if truncated > 0 {
		fmt.Fprintf(os.Stderr, "wut: the target truncated %d command(s) (write budget); the time covers the resumed ones\n", truncated)
	}
	return func() time.Duration { return d }, err
}

// randomWrites times -writes random 4 KiB writes over the first n bytes
// of src, depth in flight, with a live point-in-time token over them when
// -live-token is given (made before, deleted after: not timed).
func randomWrites(ctx context.Context, s *initiator.Session, src, dst uint64, n, bs int64, depth int) (func() time.Duration, error) {
	const size = 4096
	var token []byte
	if liveToken {
		var err error
		token, _, err = populate(ctx, s, src, splitRanges(0, uint64(n/bs), 1))
		if err != nil {
			return nil, err
		}
	}
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(rand.Uint32())
	}
	next := make(chan uint64)
	go func() {
		defer close(next)
		for range writes {
			next <- uint64(rand.Int64N(n/size)) * size / uint64(bs)
		}
	}()
	errs := make(chan error, depth)
	start := time.Now()
	for range depth {
		go func() {
			for lba := range next {
				r, err := s.Command(ctx, initiator.Request{LUN: src, CDB: rw16(0x8A, lba, size/uint32(bs)), DataOut: buf})
				if err := check(r, err, "WRITE (16)"); err != nil {
					errs <- err
					for range next {
					}
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
	d := time.Since(start)
	if first != nil {
		return nil, first
	}
	if token != nil {
		// The token must still be live: a revoked one (snapshot space
		// exhausted) would have made the writes cheaper than real.
		if err := deleteToken(ctx, s, dst, token); err != nil {
			return nil, fmt.Errorf("the token did not survive the writes: %w", err)
		}
	}
	return func() time.Duration { return d }, nil
}
