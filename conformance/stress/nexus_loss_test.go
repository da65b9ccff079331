package stress

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// The layout of TestCopyNexusLoss: a source LU (LUN 0) and a destination
// LU (LUN 1) twice its size; every copy moves lossChunks chunks from the
// start of the source to a quarter into the destination, one segment
// (EXTENDED COPY) or one range descriptor (WRITE USING TOKEN) per chunk,
// so that the copy manager writes each chunk in one internal task.
const (
	lossChunks    = 32
	lossInitiator = "iqn.2025-01.io.odxtgt:nexus-loss"
)

// copyKind is the command a TestCopyNexusLoss case starts.
type copyKind int

const (
	copyLID1 copyKind = iota // EXTENDED COPY (LID1)
	copyLID4                 // EXTENDED COPY (LID4)
	copyWUT                  // WRITE USING TOKEN of a token of the source
)

// nexusEnd is how a case ends the I_T nexus of the copy.
type nexusEnd int

const (
	endDrop      nexusEnd = iota // the TCP connection closed, no logout
	endLogout                    // a Logout Request (close the session)
	endReinstate                 // a new login with the same ISID
)

func (e nexusEnd) String() string {
	return [...]string{"connection drop", "logout", "session reinstatement"}[e]
}

// lossRig is a target with a source LU (LUN 0) and a destination LU
// (LUN 1), the copies the tests of this file and fault_counts_test.go
// send between them, and what a test knows of the two media.
type lossRig struct {
	t        *testing.T
	chunk    int // blocks per chunk
	addr     string
	tgt      *inProcess // nil against the binary
	src, dst *backstore.Memory
	srcData  []byte // what the source holds
	oldData  []byte // what the destination holds before each case
	cscds    [2][]byte
	// readDst and writeDst read and write the destination's medium
	// behind the target's back.
	readDst  func(p []byte, off int64) error
	writeDst func(p []byte, off int64) error
}

// TestCopyNexusLoss ends the I_T nexus of a copy while it runs, by
// dropping the TCP connection without a logout, by a logout and by a
// session reinstatement (a new login with the same initiator name and
// ISID), for EXTENDED COPY (LID1), EXTENDED COPY (LID4) and WRITE USING
// TOKEN, each with and without IMMED (LID1 has no IMMED). Each copy is
// stopped at a chosen chunk by an extent lock the test holds on the
// destination, so the loss comes when it is provably half done, and
// the test checks, through the project's initiator against an
// in-process target:
//   - before the loss the nexus sees the list running (RECEIVE COPY
//     STATUS or RECEIVE ROD TOKEN INFORMATION);
//   - the loss aborts the copy (SAM-5 6.3.4: the tasks of a lost nexus
//     are aborted, and the copy manager aborts the copy operations of
//     that nexus, background ones included): a foreground command gets
//     no response (TAS is zero), the logout or the reinstating login
//     completes, and nothing is running once the test lets go of the
//     destination;
//   - the destination holds the source's data in exactly the chunks
//     before the one that waited and its old data everywhere else:
//     nothing outside the copy's range, nothing after the abort, no
//     torn block;
//   - a new session with the same initiator name and ISID gets I_T
//     NEXUS LOSS OCCURRED on both logical units and finds no list with
//     that identifier (ILLEGAL REQUEST, INVALID FIELD IN CDB): the list
//     state went with the nexus;
//   - lists that completed and were held for their status, unread,
//     are gone with the nexus too;
//   - goroutines and open file descriptors of the process (target and
//     initiator) come back to what they were before the cases.
func TestCopyNexusLoss(t *testing.T) {
	r := newLossRig(t, 512) // chunks of 256 KiB
	r.warmUp()
	waitFor(t, "the warm-up's token to expire", func() bool { return r.tgt.copies.Stats().Tokens == 0 })
	goroutines0, fds0 := settledGoroutines(), openFDs(t)

	cases := []struct {
		kind  copyKind
		immed bool
		end   nexusEnd
		lun   uint64 // the logical unit the command goes to (WRITE USING TOKEN: the destination)
	}{
		{copyLID1, false, endDrop, 0},
		{copyLID1, false, endLogout, 1},
		{copyLID1, false, endReinstate, 0},
		{copyLID4, false, endDrop, 1},
		{copyLID4, false, endLogout, 0},
		{copyLID4, false, endReinstate, 1},
		{copyLID4, true, endDrop, 0},
		{copyLID4, true, endLogout, 1},
		{copyLID4, true, endReinstate, 0},
		{copyWUT, false, endDrop, 1},
		{copyWUT, false, endLogout, 1},
		{copyWUT, false, endReinstate, 1},
		{copyWUT, true, endDrop, 1},
		{copyWUT, true, endLogout, 1},
		{copyWUT, true, endReinstate, 1},
	}
	for i, c := range cases {
		name := fmt.Sprintf("%s/immed=%v/%s", [...]string{"LID1", "LID4", "WUT"}[c.kind], c.immed, c.end)
		t.Run(name, func(t *testing.T) {
			stopAt := 1 + (i*7)%(lossChunks-1) // a different chunk each time
			r.runCase(t, i, c.kind, c.immed, c.end, c.lun, stopAt)
		})
	}

	t.Run("completed lists", r.heldListsLost)

	// Every session is closed: the process must come back to where it
	// was. Tokens expire at their inactivity timeout.
	deadline := time.Now().Add(tokenTimeout*time.Second + 10*time.Second)
	for {
		g, fds := runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines0 && fds <= fds0 {
			t.Logf("after the cases: %d goroutines (%d before), %d open files (%d before)", g, goroutines0, fds, fds0)
			break
		}
		if time.Now().After(deadline) {
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Fatalf("after the cases: %d goroutines (%d before), %d open files (%d before); goroutines:\n%s",
				g, goroutines0, fds, fds0, stacks.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newLossRig serves a source and a destination memory LU from an
// in-process target, for copies of lossChunks chunks of chunk blocks.
func newLossRig(t *testing.T, chunk int) *lossRig {
	r := &lossRig{t: t, chunk: chunk}
	r.src = backstore.NewMemory(int64(r.copyBlocks()*BlockSize), BlockSize)
	r.dst = backstore.NewMemory(int64(r.dstBlocks()*BlockSize), BlockSize)
	r.srcData = stampedBlocks("source", r.copyBlocks(), 1)
	r.oldData = stampedBlocks("old destination", r.dstBlocks(), 2)
	if err := r.src.WriteAt(r.srcData, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := r.dst.WriteAt(r.oldData, 0, false); err != nil {
		t.Fatal(err)
	}
	r.readDst = r.dst.ReadAt
	r.writeDst = func(p []byte, off int64) error { return r.dst.WriteAt(p, off, false) }
	r.tgt = startInProcess(t, map[uint64]backstore.Store{0: r.src, 1: r.dst})
	r.addr = r.tgt.addr
	r.discover()
	return r
}

// copyBlocks is the length of a copy, and of the source.
func (r *lossRig) copyBlocks() int { return lossChunks * r.chunk }

// dstBlocks is the length of the destination.
func (r *lossRig) dstBlocks() int { return 2 * r.copyBlocks() }

// dstStart is the first block a copy writes on the destination.
func (r *lossRig) dstStart() int { return r.copyBlocks() / 4 }

// discover reads the NAA designators of both logical units, for the
// copies' CSCD descriptors.
func (r *lossRig) discover() {
	t := r.t
	s := r.login(t, [6]byte{0x80, 0xd7, 0x10, 0, 0, 0xFF})
	defer s.Close()
	for lun := range uint64(2) {
		resp := r.do(t, s, initiator.Request{LUN: lun, CDB: []byte{0x12, 0x01, 0x83, 0x10, 0x00, 0x00}, ReadLen: 4096})
		if resp.Status != scsi.StatusGood {
			t.Fatalf("VPD 83h of LUN %d: %s", lun, senseString(resp))
		}
		if r.cscds[lun] = naaCSCD(resp.DataIn); r.cscds[lun] == nil {
			t.Fatalf("LUN %d reports no NAA designator", lun)
		}
	}
}

// stampedBlocks returns n blocks of random data, each starting with its
// name and block number.
func stampedBlocks(name string, n int, seed uint64) []byte {
	b := make([]byte, n*BlockSize)
	var key [32]byte
	key[0] = byte(seed)
	_, _ = rand.NewChaCha8(key).Read(b)
	for i := range n {
		copy(b[i*BlockSize:], fmt.Sprintf("%s block %d ", name, i))
	}
	return b
}

// login opens a session of lossInitiator with the given ISID and takes
// the unit attentions both logical units have for it, which it returns.
func (r *lossRig) login(t *testing.T, isid [6]byte) *initiator.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, r.addr, initiator.Config{InitiatorName: lossInitiator, TargetName: stressTarget, ISID: isid})
	if err != nil {
		t.Fatalf("login with ISID % x: %v", isid, err)
	}
	return s
}

// do runs one command, failing the test when it gets no response.
func (r *lossRig) do(t *testing.T, s *initiator.Session, req initiator.Request) *initiator.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Command(ctx, req)
	if err != nil {
		t.Fatalf("command % x: %v", req.CDB, err)
	}
	return resp
}

// unitAttentions sends TEST UNIT READY to lun until it is GOOD and
// returns the unit attentions it reported on the way.
func (r *lossRig) unitAttentions(t *testing.T, s *initiator.Session, lun uint64) []scsi.ASC {
	t.Helper()
	var uas []scsi.ASC
	for range 10 {
		resp := r.do(t, s, initiator.Request{LUN: lun, CDB: make([]byte, 6)})
		if resp.Status == scsi.StatusGood {
			return uas
		}
		if resp.Status != scsi.StatusCheckCondition || resp.Sense == nil || resp.Sense.Key != scsi.UnitAttention {
			t.Fatalf("TEST UNIT READY of LUN %d: %s", lun, senseString(resp))
		}
		uas = append(uas, resp.Sense.Code)
	}
	t.Fatalf("TEST UNIT READY of LUN %d: still a unit attention after %v", lun, uas)
	return nil
}

// warmUp runs one of each copy to completion, so that whatever the
// process starts once (pools, timers) is there before the goroutines
// are counted; its token lives a second.
func (r *lossRig) warmUp() {
	t := r.t
	s := r.login(t, [6]byte{0x80, 0xd7, 0x10, 0, 0, 0xFE})
	r.unitAttentions(t, s, 0)
	r.unitAttentions(t, s, 1)
	list := r.copyList(copyLID4, 7, false)
	if resp := r.do(t, s, initiator.Request{LUN: 1, CDB: xcopy4CDB(len(list)), DataOut: list}); resp.Status != scsi.StatusGood {
		t.Fatalf("warm-up EXTENDED COPY (LID4): %s", senseString(resp))
	}
	p := r.wutList(r.populate(t, s, 8, 1), false)
	if resp := r.do(t, s, initiator.Request{LUN: 1, CDB: tokenCDB(0x11, 9, len(p)), DataOut: p}); resp.Status != scsi.StatusGood {
		t.Fatalf("warm-up WRITE USING TOKEN: %s", senseString(resp))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Logout(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.writeDst(r.oldData, 0); err != nil {
		t.Fatal(err)
	}
}

// copyList is the EXTENDED COPY parameter list of a copy of every chunk,
// LIST ID USAGE 00b (held, so that RECEIVE COPY STATUS can see it).
func (r *lossRig) copyList(kind copyKind, id uint32, immed bool) []byte {
	var segs []xcopySegment
	for i := range lossChunks {
		segs = append(segs, xcopySegment{src: uint64(i * r.chunk), dst: uint64(r.dstStart() + i*r.chunk), n: r.chunk})
	}
	var list []byte
	if kind == copyLID1 {
		list = xcopyList(byte(id), r.cscds[0], r.cscds[1], segs)
	} else {
		list = xcopyList4(id, immed, r.cscds[0], r.cscds[1], segs)
	}
	list[1] &^= 0x18 // LIST ID USAGE 00b
	return list
}

// populate makes a token of the whole source (list id) with the given
// inactivity timeout (seconds) and returns it.
func (r *lossRig) populate(t *testing.T, s *initiator.Session, id, timeout uint32) []byte {
	t.Helper()
	p := populateParams(timeout, []blockRange{{0, r.copyBlocks()}})
	if resp := r.do(t, s, initiator.Request{LUN: 0, CDB: tokenCDB(0x10, id, len(p)), DataOut: p}); resp.Status != scsi.StatusGood {
		t.Fatalf("POPULATE TOKEN: %s", senseString(resp))
	}
	resp := r.do(t, s, initiator.Request{LUN: 0, CDB: rrtiCDB(id, 1024), ReadLen: 1024})
	if resp.Status != scsi.StatusGood {
		t.Fatalf("RECEIVE ROD TOKEN INFORMATION: %s", senseString(resp))
	}
	info := resp.DataIn
	off := 32 + int(info[13])
	if len(info) < off+6+512 || binary.BigEndian.Uint64(info[16:]) != uint64(r.copyBlocks()) {
		t.Fatalf("RECEIVE ROD TOKEN INFORMATION: % x", info[:min(len(info), 64)])
	}
	return bytes.Clone(info[off+6 : off+6+512])
}

// wutList is the WRITE USING TOKEN parameter list writing tok to the
// copy's range, one range descriptor per chunk.
func (r *lossRig) wutList(tok []byte, immed bool) []byte {
	var rs []blockRange
	for i := range lossChunks {
		rs = append(rs, blockRange{uint64(r.dstStart() + i*r.chunk), r.chunk})
	}
	p := wutParams(tok, 0, false, rs)
	if immed {
		p[2] |= 0x01
	}
	return p
}

// listStatus asks, on s, for the status of list id on lun as the case's
// kind does: RECEIVE COPY STATUS (LID1) or (LID4), or RECEIVE ROD TOKEN
// INFORMATION.
func (r *lossRig) listStatus(t *testing.T, s *initiator.Session, kind copyKind, lun uint64, id uint32) *initiator.Response {
	t.Helper()
	cdb := copyStatus4CDB(id, 1024)
	switch kind {
	case copyLID1:
		cdb = make([]byte, 16)
		cdb[0], cdb[1], cdb[2] = 0x84, 0x00, byte(id)
		binary.BigEndian.PutUint32(cdb[10:], 1024)
	case copyWUT:
		cdb = rrtiCDB(id, 1024)
	}
	return r.do(t, s, initiator.Request{LUN: lun, CDB: cdb, ReadLen: 1024})
}

// chunkDone reports whether chunk i of the copy is on the destination.
func (r *lossRig) chunkDone(i int) bool {
	got := make([]byte, BlockSize)
	last := (i+1)*r.chunk - 1
	if err := r.readDst(got, int64(r.dstStart()+last)*BlockSize); err != nil {
		r.t.Fatal(err)
	}
	return bytes.Equal(got, r.srcData[last*BlockSize:(last+1)*BlockSize])
}

// copyRequest is case i's copy of the given kind, list id, to LUN lun: an
// EXTENDED COPY, or a WRITE USING TOKEN of a token s makes now.
func (r *lossRig) copyRequest(t *testing.T, s *initiator.Session, i int, kind copyKind, immed bool, lun uint64, id uint32) initiator.Request {
	if kind == copyWUT {
		p := r.wutList(r.populate(t, s, 0x1000+uint32(i), 1), immed)
		return initiator.Request{LUN: lun, CDB: tokenCDB(0x11, id, len(p)), DataOut: p}
	}
	list := r.copyList(kind, id, immed)
	cdb := xcopyCDB(len(list))
	if kind == copyLID4 {
		cdb = xcopy4CDB(len(list))
	}
	return initiator.Request{LUN: lun, CDB: cdb, DataOut: list}
}

// endNexus ends session a's nexus the given way while its copy runs and
// returns a new session with the same ISID, from which the test looks at
// what the end left.
func (r *lossRig) endNexus(ctx context.Context, t *testing.T, a *initiator.Session, isid [6]byte, end nexusEnd) *initiator.Session {
	switch end {
	case endDrop:
		a.Close()
	case endLogout:
		if err := a.Logout(ctx, 0); err != nil {
			t.Fatalf("logout while a copy runs: %v", err)
		}
	}
	return r.login(t, isid) // endReinstate: the login itself ends the old nexus
}

// runCase is one case of TestCopyNexusLoss: the copy waits at chunk
// stopAt while the nexus ends.
func (r *lossRig) runCase(t *testing.T, i int, kind copyKind, immed bool, end nexusEnd, lun uint64, stopAt int) {
	isid := [6]byte{0x80, 0xd7, 0x10, 0, 0, byte(i)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := r.login(t, isid)
	defer a.Close()
	r.unitAttentions(t, a, 0)
	r.unitAttentions(t, a, 1)

	id := uint32(0x40 + i)
	req := r.copyRequest(t, a, i, kind, immed, lun, id)

	// The destination's first block of chunk stopAt, held exclusively:
	// the copy writes the chunks before it and waits there.
	unlock, err := r.tgt.lus[1].LockExtent(ctx, uint64(r.dstStart()+stopAt*r.chunk), 1, scsi.ExtentExclusive)
	if err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	var pending *initiator.Pending
	if immed {
		if resp := r.do(t, a, req); resp.Status != scsi.StatusGood {
			t.Fatalf("the copy with IMMED: %s", senseString(resp))
		}
	} else if pending, err = a.Start(ctx, req); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !r.chunkDone(stopAt - 1); {
		if time.Now().After(deadline) {
			t.Fatalf("chunk %d of the copy is not on the destination after 20 s", stopAt-1)
		}
		time.Sleep(time.Millisecond)
	}
	// The nexus sees its list running.
	resp := r.listStatus(t, a, kind, lun, id)
	running := resp.Status == scsi.StatusGood && len(resp.DataIn) >= 8 && (kind == copyLID1 && resp.DataIn[4] == 0x00 ||
		kind != copyLID1 && (resp.DataIn[5] == 0x11 || resp.DataIn[5] == 0x12))
	if !running {
		t.Fatalf("status of the running copy: %s % x", senseString(resp), resp.DataIn[:min(len(resp.DataIn), 32)])
	}

	b := r.endNexus(ctx, t, a, isid, end)
	defer b.Close()
	if pending != nil {
		if resp, err := pending.Wait(ctx); err == nil {
			t.Fatalf("the copy cut short by the loss of its nexus answered: %s", senseString(resp))
		}
	}

	// The new nexus has the same initiator port: I_T NEXUS LOSS
	// OCCURRED on both logical units, and no list.
	for l := range uint64(2) {
		if uas := r.unitAttentions(t, b, l); len(uas) != 1 || uas[0] != scsi.ASCITNexusLossOccurred {
			t.Errorf("LUN %d after the %v: unit attentions %v, want I_T NEXUS LOSS OCCURRED (29h/07h)", l, end, uas)
		}
	}
	resp = r.listStatus(t, b, kind, lun, id)
	if resp.Status != scsi.StatusCheckCondition || resp.Sense == nil || resp.Sense.Key != scsi.IllegalRequest || resp.Sense.Code != scsi.ASCInvalidFieldInCDB {
		t.Errorf("status of list %d after the %v: %s % x, want ILLEGAL REQUEST, INVALID FIELD IN CDB", id, end, senseString(resp), resp.DataIn)
	}

	// Aborted: nothing runs any more, while the destination is still
	// held.
	for deadline := time.Now().Add(20 * time.Second); r.tgt.copies.Running() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d copies still run 20 s after the %v", r.tgt.copies.Running(), end)
		}
		time.Sleep(time.Millisecond)
	}
	unlock()
	locked = false
	r.checkDestination(t, stopAt)
	if err := b.Logout(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.writeDst(r.oldData, 0); err != nil {
		t.Fatal(err)
	}
}

// heldListsLost: the lists a nexus holds for RECEIVE COPY STATUS and
// RECEIVE ROD TOKEN INFORMATION after they completed, unread, go with
// the nexus too: an EXTENDED COPY (LID1 and LID4) and a POPULATE TOKEN.
func (r *lossRig) heldListsLost(t *testing.T) {
	isid := [6]byte{0x80, 0xd7, 0x10, 0, 0, 0xF0}
	a := r.login(t, isid)
	defer a.Close()
	r.unitAttentions(t, a, 0)
	r.unitAttentions(t, a, 1)
	for _, kind := range []copyKind{copyLID1, copyLID4} {
		list := r.copyList(kind, 0x30+uint32(kind), false)
		cdb := xcopyCDB(len(list))
		if kind == copyLID4 {
			cdb = xcopy4CDB(len(list))
		}
		if resp := r.do(t, a, initiator.Request{LUN: 1, CDB: cdb, DataOut: list}); resp.Status != scsi.StatusGood {
			t.Fatalf("EXTENDED COPY: %s", senseString(resp))
		}
	}
	p := populateParams(1, []blockRange{{0, r.copyBlocks()}})
	if resp := r.do(t, a, initiator.Request{LUN: 0, CDB: tokenCDB(0x10, 0x32, len(p)), DataOut: p}); resp.Status != scsi.StatusGood {
		t.Fatalf("POPULATE TOKEN: %s", senseString(resp))
	}
	a.Close()
	b := r.login(t, isid)
	defer b.Close()
	r.unitAttentions(t, b, 0)
	r.unitAttentions(t, b, 1)
	for _, l := range []struct {
		kind copyKind
		lun  uint64
		id   uint32
	}{{copyLID1, 1, 0x30}, {copyLID4, 1, 0x31}, {copyWUT, 0, 0x32}} { // copyWUT: RECEIVE ROD TOKEN INFORMATION
		resp := r.listStatus(t, b, l.kind, l.lun, l.id)
		if resp.Status != scsi.StatusCheckCondition || resp.Sense == nil || resp.Sense.Key != scsi.IllegalRequest || resp.Sense.Code != scsi.ASCInvalidFieldInCDB {
			t.Errorf("status of completed list %d after the connection drop: %s % x, want ILLEGAL REQUEST, INVALID FIELD IN CDB", l.id, senseString(resp), resp.DataIn)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Logout(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.writeDst(r.oldData, 0); err != nil {
		t.Fatal(err)
	}
}

// checkDestination checks that the destination holds the source's data
// in the first done chunks of the copy's range and its old data in every
// other block.
func (r *lossRig) checkDestination(t *testing.T, done int) {
	t.Helper()
	got := make([]byte, len(r.oldData))
	if err := r.readDst(got, 0); err != nil {
		t.Fatal(err)
	}
	wrong, first := 0, -1
	var what string
	for blk := range r.dstBlocks() {
		g := got[blk*BlockSize : (blk+1)*BlockSize]
		old := r.oldData[blk*BlockSize : (blk+1)*BlockSize]
		var src []byte
		if s := blk - r.dstStart(); s >= 0 && s < r.copyBlocks() {
			src = r.srcData[s*BlockSize : (s+1)*BlockSize]
		}
		want := old
		if src != nil && blk < r.dstStart()+done*r.chunk {
			want = src
		}
		if bytes.Equal(g, want) {
			continue
		}
		wrong++
		if first < 0 {
			first = blk
			switch {
			case bytes.Equal(g, old):
				what = "its old data"
			case src != nil && bytes.Equal(g, src):
				what = "the source's data"
			default:
				what = fmt.Sprintf("neither old nor source data: %q", printable(g[:32]))
			}
		}
	}
	if wrong > 0 {
		t.Errorf("destination: %d blocks wrong; the first, block %d (copy range %d+%d, %d chunks of %d blocks copied), holds %s",
			wrong, first, r.dstStart(), r.copyBlocks(), done, r.chunk, what)
	}
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20 s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settledGoroutines returns the number of goroutines once it has stayed
// the same for a while (or a second has passed).
func settledGoroutines() int {
	n, same := runtime.NumGoroutine(), 0
	for deadline := time.Now().Add(time.Second); same < 10 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// openFDs counts the open file descriptors of the test process.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
