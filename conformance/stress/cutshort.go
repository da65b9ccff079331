package stress

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// The operations that cut commands short: each leaves the pending writes
// of its command for the loop to read back (errCutShort) when it cannot
// tell whether they happened.

// writeZeroToken writes zeroes with WRITE USING TOKEN and the block device
// zero ROD token to one to three ranges, at any offset into the ROD.
func (s *session) writeZeroToken(ctx context.Context) error {
	l := s.r.lus[s.rng.IntN(len(s.r.lus))]
	total := 1 + s.rng.IntN(min(256, int(s.r.region)))
	rs := s.disjointRanges(1+s.rng.IntN(3), total)
	p := wutParams(zeroToken(), s.rng.Uint64N(1<<20), false, rs)
	for _, r := range rs {
		s.expect(l, r.lba, make([]byte, r.n*BlockSize), "zero token")
	}
	resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: tokenCDB(0x11, s.listID(), len(p)), DataOut: p})
	if err != nil {
		return err
	}
	if sn := resp.Sense; resp.Status == scsi.StatusCheckCondition && sn != nil && sn.Code == scsi.ASCCopyTargetDeviceDataUnderrun &&
		(sn.Key == scsi.CopyAborted || sn.Key == scsi.AbortedCommand) && sn.HasInformation && sn.Information < uint64(total) {
		s.pending = nil
		s.writeModel(l, sliceRanges(rs, 0, int(sn.Information)), make([]byte, total*BlockSize))
		s.stats.Truncations++
		return nil
	}
	if err := s.expectGood(l, rs[0].lba, resp, fmt.Sprintf("WRITE USING TOKEN with the zero token %+v", rs)); err != nil {
		return err
	}
	s.settle()
	return nil
}

// copyAbort starts an EXTENDED COPY (LID4) with IMMED, sends COPY
// OPERATION ABORT a moment later and polls RECEIVE COPY STATUS until the
// copy has ended: completed, its writes all happened; terminated (or
// ended in error), any block of them may have.
func (s *session) copyAbort(ctx context.Context) error {
	src, dst, segs := s.pickSegments()
	delay := time.Duration(s.rng.IntN(2000)) * time.Microsecond
	resets := s.r.resetMark()
	id := s.listID()
	list := xcopyList4(id, true, src.cscd, dst.cscd, segs)
	s.expectSegments(src, dst, segs)
	what := fmt.Sprintf("EXTENDED COPY (LID4, IMMED) LUN %d -> LUN %d %+v", src.num, dst.num, segs)
	// Through the first LU, which the LU resets spare: a reset forgets
	// the lists of its LU at once, while their copies end a moment
	// later, so that the status could not tell when it is safe to read
	// the blocks back.
	lun := s.r.lus[0].num
	resp, err := s.command(ctx, initiator.Request{LUN: lun, CDB: xcopy4CDB(len(list)), DataOut: list})
	if err != nil {
		return err
	}
	if err := s.expectGood(dst, segs[0].dst, resp, what); err != nil {
		return err
	}
	time.Sleep(delay)
	resp, err = s.command(ctx, initiator.Request{LUN: lun, CDB: copyAbortCDB(id)})
	if err != nil {
		return err
	}
	// A copy already done is no longer being processed: INVALID FIELD IN
	// CDB (SPC-4 6.3), and its status tells how it ended.
	done := resp.Status == scsi.StatusCheckCondition && resp.Sense != nil && resp.Sense.Key == scsi.IllegalRequest &&
		resp.Sense.Code == scsi.ASCInvalidFieldInCDB
	if !done {
		if err := s.expectGood(dst, segs[0].dst, resp, "COPY OPERATION ABORT of "+what); err != nil {
			return err
		}
	}
	for polls := 0; ; polls++ {
		resp, err := s.command(ctx, initiator.Request{LUN: lun, CDB: copyStatus4CDB(id, 256), ReadLen: 256})
		if err != nil {
			return err
		}
		if err := s.expectGood(dst, segs[0].dst, resp, "RECEIVE COPY STATUS of "+what); err != nil {
			return err
		}
		if len(resp.DataIn) < 32 {
			return s.fail(dst, 0, false, "RECEIVE COPY STATUS: %d bytes", len(resp.DataIn))
		}
		switch st := resp.DataIn[5]; st {
		case 0x11, 0x12: // running
			if done {
				return s.fail(dst, segs[0].dst, true, "%s: COPY OPERATION ABORT found no copy running, yet it runs", what)
			}
			if polls == 1000 {
				return s.fail(dst, segs[0].dst, true, "%s still runs a second after COPY OPERATION ABORT", what)
			}
			time.Sleep(time.Millisecond)
			continue
		case 0x01: // completed before the abort reached it
			s.settle()
			return nil
		case 0x60, 0x02: // terminated by the abort, or ended in error (by it, or by a backstore fault)
			// Done before the abort came, the copy can only have failed
			// by a backstore fault or a reset of its source or
			// destination LU.
			if done && (st == 0x60 || !s.pendingBad() && !s.r.resetSince(resets)) {
				return s.fail(dst, segs[0].dst, true, "%s: COPY OPERATION ABORT found no copy running, yet it ended with status %#x", what, st)
			}
			if n, total := binary.BigEndian.Uint64(resp.DataIn[16:]), uint64(totalSegBlocks(segs)*BlockSize); n > total {
				return s.fail(dst, segs[0].dst, true, "%s terminated having copied %d bytes of %d", what, n, total)
			}
			return errCutShort
		default:
			return s.fail(dst, segs[0].dst, true, "%s: COPY OPERATION STATUS %#x after COPY OPERATION ABORT", what, st)
		}
	}
}

func totalSegBlocks(segs []xcopySegment) int {
	n := 0
	for _, g := range segs {
		n += g.n
	}
	return n
}

// abortTask sends a WRITE and, a moment later, ABORT TASK for it.
func (s *session) abortTask(ctx context.Context) error {
	l, rg := s.pickRange(128)
	data := s.fill(rg.n)
	delay := time.Duration(s.rng.IntN(2000)) * time.Microsecond
	req := initiator.Request{LUN: l.num, CDB: rw16(0x8A, 0, rg.lba, rg.n), DataOut: data}
	s.expect(l, rg.lba, data, "aborted")
	p, err := s.conn.Start(ctx, req)
	if err != nil {
		return s.transportErr(ctx, req.LUN, req.CDB, err)
	}
	time.Sleep(delay)
	code, err := s.conn.TaskMgmt(ctx, initiator.TMFAbortTask, l.num, p.ITT)
	if err != nil {
		return s.transportErr(ctx, l.num, []byte{0x01}, err)
	}
	if code != 0 && code != 1 { // FUNCTION COMPLETE, TASK DOES NOT EXIST
		return s.fail(l, rg.lba, true, "ABORT TASK of a WRITE: response %d", code)
	}
	// A WRITE that completed before the abort has its response ahead of
	// the abort's on the connection; one that has none yet now was
	// aborted without a response by a LOGICAL UNIT RESET.
	wctx, cancel := context.WithTimeout(ctx, resetGrace)
	resp, err := p.Wait(wctx)
	cancel()
	switch {
	case errors.Is(err, initiator.ErrTaskAborted), errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return errCutShort
	case err != nil:
		return s.transportErr(ctx, req.LUN, req.CDB, err)
	case resp.Status == scsi.StatusGood:
		s.settle()
		return nil
	case retryable(resp):
		s.pending = nil // not run
		s.stats.Retries++
		return nil
	}
	if err := s.faulted(resp); err != nil {
		return err
	}
	return s.fail(l, rg.lba, true, "WRITE then ABORT TASK (response %d): %s", code, senseString(resp))
}

// dropConnection logs in a session of the worker's own (so that the
// other workers of its session are not disturbed), sends a command on it,
// closes the TCP connection a moment later without a logout, and logs in
// again with the same ISID: the target reinstates the session, ending the
// old one's tasks first (RFC 7143 6.3.5) and, with the nexus, the copies
// it started in the background (IMMED), so that once the login has
// completed the command can no longer change anything. The command is a
// WRITE, an EXTENDED COPY (LID4) with or without IMMED, or a WRITE USING
// TOKEN with or without IMMED of a token from the pool.
func (s *session) dropConnection(ctx context.Context) error {
	delay := time.Duration(s.rng.IntN(2000)) * time.Microsecond
	kind, immed := s.rng.IntN(3), s.rng.IntN(2) == 0
	pick, frac, layout := s.rng.IntN(1<<30), s.rng.Float64(), s.rng.Uint64()
	cfg := initiator.Config{
		InitiatorName: s.r.cfg.Initiators[s.sess%len(s.r.cfg.Initiators)], TargetName: s.r.cfg.Target,
		ISID:         [6]byte{0x80, 0xd7, 0x09, 0x00, byte(s.id >> 8), byte(s.id)},
		HeaderDigest: withDigests(s.sess), DataDigest: withDigests(s.sess),
	}
	var req initiator.Request
	var tok *token
	switch kind {
	case 1: // EXTENDED COPY (LID4)
		src, dst, segs := s.pickSegments()
		list := xcopyList4(s.listID(), immed, src.cscd, dst.cscd, segs)
		s.expectSegments(src, dst, segs)
		req = initiator.Request{LUN: []uint64{src.num, dst.num}[s.rng.IntN(2)], CDB: xcopy4CDB(len(list)), DataOut: list}
	case 2: // WRITE USING TOKEN
		if tok = s.r.takeToken(pick); tok != nil {
			l := s.r.lus[s.rng.IntN(len(s.r.lus))]
			n := min(1+int(frac*float64(len(tok.data)/BlockSize-1)), int(s.r.region))
			main := s.rng
			s.rng = rand.New(rand.NewPCG(layout, 0))
			rs := s.disjointRanges(1+s.rng.IntN(3), n)
			s.rng = main
			p := wutParams(tok.bytes, 0, false, rs)
			if immed {
				p[2] |= 0x01
			}
			s.expectRanges(l, rs, tok.data)
			req = initiator.Request{LUN: l.num, CDB: tokenCDB(0x11, s.listID(), len(p)), DataOut: p}
			break
		}
		kind = 0 // no token in the pool: a WRITE
		fallthrough
	default:
		l, rg := s.pickRange(128)
		data := s.fill(rg.n)
		s.expect(l, rg.lba, data, "connection dropped")
		req = initiator.Request{LUN: l.num, CDB: rw16(0x8A, 0, rg.lba, rg.n), DataOut: data}
	}
	if kind != 0 {
		s.stats.DroppedCopies++
	}
	if tok != nil && !tok.shared {
		defer s.r.putToken(tok) // not deleted (no DEL_TKN): it stays usable
	}
	// Whatever the command's LU, the unit attentions of the
	// reinstatement are taken on the first one.
	lun0 := s.r.lus[0].num
	login := func() (*initiator.Session, error) {
		c, err := initiator.Dial(ctx, s.r.cfg.Addr, cfg)
		if err != nil {
			return nil, s.transportErr(ctx, req.LUN, nil, err)
		}
		// Unit attentions of the reinstatement or of resets (the login
		// is what ends the old session's tasks: a reset aborting this
		// TEST UNIT READY changes nothing).
		for _, lun := range []uint64{lun0, req.LUN} {
			if _, err := s.commandOn(ctx, c, initiator.Request{LUN: lun, CDB: make([]byte, 6)}); err != nil && !errors.Is(err, errCutShort) {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
	c, err := login()
	if err != nil {
		return err
	}
	p, err := c.Start(ctx, req)
	if err == nil {
		time.Sleep(delay)
	}
	c.Close()
	if err == nil {
		if resp, err := p.Wait(ctx); err == nil {
			if err := s.droppedResponse(resp, kind, immed); err != nil {
				return err
			}
		}
	}
	c, err = login()
	if err != nil {
		return err
	}
	c.Close()
	if s.pending != nil {
		return errCutShort
	}
	return nil
}

// droppedResponse takes the response a command of dropConnection got
// before its connection closed: GOOD settles its writes, unless it only
// started a copy in the background (IMMED), which the end of its nexus
// may have cut short; a command refused before it ran writes nothing;
// a copy or token write that stopped part way (a truncation, a revoked
// token, a backstore fault, a reset of an LU it accesses) leaves its
// blocks to be read back.
func (s *session) droppedResponse(resp *initiator.Response, kind int, immed bool) error {
	sn := resp.Sense
	switch {
	case resp.Status == scsi.StatusGood && kind != 0 && immed:
	case resp.Status == scsi.StatusGood:
		s.settle()
	case retryable(resp), resp.Status == scsi.StatusCheckCondition && sn != nil && sn.Key == scsi.IllegalRequest && sn.Code == 0x5503:
		s.pending = nil // not run (INSUFFICIENT RESOURCES: too many copies)
	case kind != 0 && resp.Status == scsi.StatusCheckCondition && sn != nil &&
		(sn.Key == scsi.CopyAborted || sn.Key == scsi.AbortedCommand || sn.Key == scsi.IllegalRequest && sn.Code == 0x2306):
	case kind != 0 && resp.Status == scsi.StatusTaskAborted:
		// The known flaw commandOn tolerates around LU resets.
	default:
		if err := s.faulted(resp); !errors.Is(err, errFaulted) {
			if err != nil {
				return err
			}
			return s.fail(nil, 0, false, "%s on a connection about to drop: %s", []string{"WRITE", "EXTENDED COPY (LID4)", "WRITE USING TOKEN"}[kind], senseString(resp))
		}
	}
	return nil
}
