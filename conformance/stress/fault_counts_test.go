package stress

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// The layout of TestCopyFaultCounts: four chunks of 8 MiB copied from the
// start of LUN 0 to countDstStart on LUN 1, one segment (EXTENDED COPY)
// or range descriptor (WRITE USING TOKEN) each; the destination's writes
// or the source's reads fail countBadOffset into chunk countBadChunk,
// past the first 4 MiB piece the copy manager moves of it when it goes
// through its buffers.
const (
	countChunkBlocks = 16384 // 8 MiB
	countChunks      = 4
	countCopyBlocks  = countChunks * countChunkBlocks
	countDstStart    = 4096
	countDstBlocks   = countDstStart + countCopyBlocks + 4096
	countBadChunk    = 2
	countBadOffset   = 10240 // blocks into the chunk: 5 MiB
	countBufferBlks  = 8192  // a copy buffer, 4 MiB (rod's bufferSize)
	// countWritten is how many blocks of the copy reach the destination:
	// the chunks before the failing one, and of that one the buffer
	// written before the failing write.
	countWritten = countBadChunk*countChunkBlocks + countBadOffset/countBufferBlks*countBufferBlks
)

// TestCopyFaultCounts fails the destination's writes (and copies and
// clones, so that no fast path goes around the failure), or the source's
// reads, at a chosen block of a later chunk of a copy, and checks that
// what the target reports of the failed copy is exactly what reached the
// destination, which the test reads back: the blocks before the count
// hold the source's data, every other block its old data.
//   - EXTENDED COPY (LID1), (LID4) and (LID4) with IMMED: COPY ABORTED,
//     THIRD PARTY DEVICE FAILURE with the failed segment's number in
//     COMMAND-SPECIFIC INFORMATION (SPC-4 6.4.3.6), and RECEIVE COPY
//     STATUS (LID1 or LID4) with the segments processed (those before
//     the failed one) and a transfer count of the bytes written;
//   - WRITE USING TOKEN with and without IMMED: the device's MEDIUM
//     ERROR (WRITE ERROR naming the first destination block not written,
//     or UNRECOVERED READ ERROR naming the source block that failed), and
//     RECEIVE ROD TOKEN INFORMATION with a transfer count of the blocks
//     written.
func TestCopyFaultCounts(t *testing.T) {
	srcMem := backstore.NewMemory(countCopyBlocks*BlockSize, BlockSize)
	mem := backstore.NewMemory(countDstBlocks*BlockSize, BlockSize)
	src, dst := backstore.NewFault(srcMem), backstore.NewFault(mem)
	srcData := stampedBlocks("source", countCopyBlocks, 3)
	oldData := stampedBlocks("old destination", countDstBlocks, 4)
	if err := srcMem.WriteAt(srcData, 0, false); err != nil {
		t.Fatal(err)
	}
	tgt := startInProcess(t, map[uint64]backstore.Store{0: src, 1: dst})
	r := &lossRig{t: t, addr: tgt.addr, tgt: tgt}
	r.discover()
	s := r.login(t, [6]byte{0x80, 0xd7, 0x20, 0, 0, 1})
	defer s.Close()
	r.unitAttentions(t, s, 0)
	r.unitAttentions(t, s, 1)
	const badBlock = countBadChunk*countChunkBlocks + countBadOffset // of the copy

	i := 0
	for _, side := range []string{"destination", "source"} {
		src.Reset()
		dst.Reset()
		if side == "destination" {
			for _, k := range []backstore.OpKind{backstore.OpWrite, backstore.OpCopy, backstore.OpClone} {
				dst.FailRange(k, int64(countDstStart+badBlock)*BlockSize, BlockSize, syscall.EIO)
			}
		} else {
			src.FailRange(backstore.OpRead, int64(badBlock)*BlockSize, BlockSize, syscall.EIO)
		}
		for _, c := range []struct {
			kind  copyKind
			immed bool
		}{{copyLID1, false}, {copyLID4, false}, {copyLID4, true}, {copyWUT, false}, {copyWUT, true}} {
			i++
			name := fmt.Sprintf("%s/%s/immed=%v", side, [...]string{"LID1", "LID4", "WUT"}[c.kind], c.immed)
			t.Run(name, func(t *testing.T) {
				if err := mem.WriteAt(oldData, 0, false); err != nil {
					t.Fatal(err)
				}
				id := uint32(0x10 + i)
				resp := r.do(t, s, countRequest(t, r, s, c.kind, id, c.immed))
				var sense *scsi.Sense
				if c.immed {
					if resp.Status != scsi.StatusGood {
						t.Fatalf("the copy with IMMED: %s", senseString(resp))
					}
				} else {
					if resp.Status != scsi.StatusCheckCondition || resp.Sense == nil {
						t.Fatalf("the copy through a failing %s: %s, want CHECK CONDITION", side, senseString(resp))
					}
					sense = resp.Sense
				}
				status := countStatus(t, r, s, c.kind, id)
				if c.immed {
					sense = status.sense
				}
				checkFailureSense(t, c.kind, side == "source", sense)
				// What the status reports, and what the destination holds.
				switch c.kind {
				case copyLID1, copyLID4:
					if status.segments != countBadChunk || status.bytes != countWritten*BlockSize {
						t.Errorf("status: %d segments processed, %d bytes transferred; want %d and %d",
							status.segments, status.bytes, countBadChunk, countWritten*BlockSize)
					}
				case copyWUT:
					if status.blocks != countWritten {
						t.Errorf("RECEIVE ROD TOKEN INFORMATION: transfer count %d blocks, want %d", status.blocks, countWritten)
					}
				}
				got := make([]byte, len(oldData))
				if err := mem.ReadAt(got, 0); err != nil {
					t.Fatal(err)
				}
				for blk := range countDstBlocks {
					want := oldData[blk*BlockSize : (blk+1)*BlockSize]
					if o := blk - countDstStart; o >= 0 && o < countWritten {
						want = srcData[o*BlockSize : (o+1)*BlockSize]
					}
					if g := got[blk*BlockSize : (blk+1)*BlockSize]; !bytes.Equal(g, want) {
						t.Fatalf("destination block %d (copy range %d+%d, %d blocks written by the count): %q…, want %q…",
							blk, countDstStart, countCopyBlocks, countWritten, printable(g[:32]), printable(want[:32]))
					}
				}
			})
		}
	}
}

// countRequest is the copy of a TestCopyFaultCounts case, list id id
// (the held LIST ID USAGE 00b for EXTENDED COPY).
func countRequest(t *testing.T, r *lossRig, s *initiator.Session, kind copyKind, id uint32, immed bool) initiator.Request {
	switch kind {
	case copyLID1, copyLID4:
		var segs []xcopySegment
		for i := range countChunks {
			segs = append(segs, xcopySegment{src: uint64(i * countChunkBlocks), dst: countDstStart + uint64(i*countChunkBlocks), n: countChunkBlocks})
		}
		if kind == copyLID1 {
			list := xcopyList(byte(id), r.cscds[0], r.cscds[1], segs)
			list[1] &^= 0x18
			return initiator.Request{LUN: 1, CDB: xcopyCDB(len(list)), DataOut: list}
		}
		list := xcopyList4(id, immed, r.cscds[0], r.cscds[1], segs)
		list[1] &^= 0x18
		return initiator.Request{LUN: 0, CDB: xcopy4CDB(len(list)), DataOut: list}
	}
	p := populateParams(tokenTimeout, []blockRange{{0, countCopyBlocks}})
	if resp := r.do(t, s, initiator.Request{LUN: 0, CDB: tokenCDB(0x10, id+0x100, len(p)), DataOut: p}); resp.Status != scsi.StatusGood {
		t.Fatalf("POPULATE TOKEN: %s", senseString(resp))
	}
	resp := r.do(t, s, initiator.Request{LUN: 0, CDB: rrtiCDB(id+0x100, 1024), ReadLen: 1024})
	info := resp.DataIn
	if resp.Status != scsi.StatusGood || len(info) < 32 || len(info) < 32+int(info[13])+6+512 {
		t.Fatalf("RECEIVE ROD TOKEN INFORMATION: %s", senseString(resp))
	}
	tok := info[32+int(info[13])+6:][:512]
	var rs []blockRange
	for i := range countChunks {
		rs = append(rs, blockRange{countDstStart + uint64(i*countChunkBlocks), countChunkBlocks})
	}
	w := wutParams(tok, 0, false, rs)
	if immed {
		w[2] |= 0x01
	}
	return initiator.Request{LUN: 1, CDB: tokenCDB(0x11, id, len(w)), DataOut: w}
}

// copyEnd is what RECEIVE COPY STATUS or RECEIVE ROD TOKEN INFORMATION
// reports of a copy that ended.
type copyEnd struct {
	segments      int
	bytes, blocks uint64
	sense         *scsi.Sense // the copy's sense data (LID4 and tokens)
}

// countStatus reads the status of list id once it has ended (an IMMED
// copy may still run), checking that it ended in error.
func countStatus(t *testing.T, r *lossRig, s *initiator.Session, kind copyKind, id uint32) copyEnd {
	t.Helper()
	lun := map[copyKind]uint64{copyLID1: 1, copyLID4: 0, copyWUT: 1}[kind]
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp := r.listStatus(t, s, kind, lun, id)
		d := resp.DataIn
		if resp.Status != scsi.StatusGood || len(d) < 12 || kind != copyLID1 && len(d) < 32 {
			t.Fatalf("status of list %d: %s % x", id, senseString(resp), d)
		}
		if kind == copyLID1 {
			// SPC-4 6.18.2: COPY MANAGER STATUS, SEGMENTS PROCESSED,
			// TRANSFER COUNT UNITS, TRANSFER COUNT.
			if d[4]&0x7F == 0x00 { // in progress
				if time.Now().After(deadline) {
					t.Fatalf("list %d still runs after 20 s", id)
				}
				time.Sleep(time.Millisecond)
				continue
			}
			if d[4]&0x7F != 0x02 || d[7] != 0 {
				t.Fatalf("RECEIVE COPY STATUS (LID1): copy manager status %#x, transfer count units %#x; want 02h (completed with error) and 00h (bytes)", d[4], d[7])
			}
			return copyEnd{segments: int(binary.BigEndian.Uint16(d[5:])), bytes: uint64(binary.BigEndian.Uint32(d[8:]))}
		}
		// SPC-4 6.18.6 (and 6.19 for RECEIVE ROD TOKEN INFORMATION).
		if d[5] == 0x11 || d[5] == 0x12 {
			if time.Now().After(deadline) {
				t.Fatalf("list %d still runs after 20 s", id)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		units := byte(0x00) // bytes
		if kind == copyWUT {
			units = 0xF1 // logical blocks
		}
		if d[5] != 0x02 || d[12] != byte(scsi.StatusCheckCondition) || d[15] != units {
			t.Fatalf("status of list %d: operation status %#x, completion status %#x, transfer count units %#x; want 02h, 02h and %#x",
				id, d[5], d[12], d[15], units)
		}
		e := copyEnd{segments: int(binary.BigEndian.Uint16(d[24:]))}
		if kind == copyWUT {
			e.blocks = binary.BigEndian.Uint64(d[16:])
		} else {
			e.bytes = binary.BigEndian.Uint64(d[16:])
		}
		if n := int(d[14]); n > 0 && len(d) >= 32+n {
			sn, err := scsi.ParseSense(d[32 : 32+n])
			if err != nil {
				t.Fatalf("sense data of list %d: %v", id, err)
			}
			e.sense = sn
		}
		return e
	}
}

// checkFailureSense checks the sense data of a copy the failing write
// (or, with source, read) stopped.
func checkFailureSense(t *testing.T, kind copyKind, source bool, sn *scsi.Sense) {
	t.Helper()
	if sn == nil {
		t.Fatal("no sense data for the failed copy")
	}
	switch kind {
	case copyLID1, copyLID4:
		if sn.Key != scsi.CopyAborted || sn.Code != scsi.ASCThirdPartyDeviceFailure || !sn.HasCommandSpecific || sn.CommandSpecific != countBadChunk {
			t.Errorf("sense %v (command-specific %d, valid %v), want COPY ABORTED, THIRD PARTY DEVICE FAILURE for segment %d",
				sn, sn.CommandSpecific, sn.HasCommandSpecific, countBadChunk)
		}
	case copyWUT:
		// The device's own sense data, as FreeBSD's copy manager also
		// returns it: the first destination block not written, or the
		// source block of the read that failed (the token's data starts
		// at LBA 0).
		code, at := scsi.ASCWriteError, uint64(countDstStart+countWritten)
		if source {
			code, at = scsi.ASCUnrecoveredReadError, countWritten
		}
		if sn.Key != scsi.MediumError || sn.Code != code || !sn.HasInformation || sn.Information != at {
			t.Errorf("sense %v (information %d, valid %v), want MEDIUM ERROR, %v at LBA %d", sn, sn.Information, sn.HasInformation, code, at)
		}
	}
}
