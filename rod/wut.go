package rod

import (
	"context"
	"errors"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// WriteUsingToken writes the data a ROD token represents to the ranges of
// req.LU (SBC-3 5.38) for list l, starting BLOCK OFFSET INTO ROD logical
// blocks into the token. The block device zero token (FFFF0001h) writes
// zeroes. Each command works for at most the write budget: a command that
// cannot finish in it stops at a block boundary with COPY ABORTED, COPY
// TARGET DEVICE DATA UNDERRUN and INFORMATION = the blocks written, which
// Windows takes as partial success; destination ranges that ask for more
// than the token holds end the same way with ILLEGAL REQUEST. l counts the
// blocks written, for RECEIVE ROD TOKEN INFORMATION.
func (m *Manager) WriteUsingToken(ctx context.Context, l *List, req Request, p *WUTParams) *scsi.Sense {
	dst := req.LU
	if s := checkRanges(p.Ranges, dst.Blocks()); s != nil {
		return s
	}
	tok, s := m.tok.verify(p.Token[:], m.now())
	if s != nil {
		return s
	}
	if tok == nil {
		w := &tokenWrite{m: m, ctx: ctx, l: l, req: req, bs: int64(dst.Store.BlockSize())}
		return w.run(p)
	}
	// DEL_TKN deletes the token once it has been written whole; a
	// command refused or cut short leaves it for the host to go on with.
	if !m.inScope(tok, req.Nexus) {
		m.tok.release(tok, false, false, m.now())
		return scsi.NewSense(scsi.IllegalRequest, ascTokenRemoteUsage).WithReason("ROD token %d is out of this nexus's scope", tok.id)
	}
	var result *scsi.Sense
	defer func() { m.tok.release(tok, p.DelTkn && result == nil, true, m.now()) }()
	// An access upon reference token written onto its own source reads
	// it as if whole first, like an EXTENDED COPY segment.
	bs := int64(dst.Store.BlockSize())
	var dsts []byteRange
	var want int64
	for _, r := range p.Ranges {
		dsts = append(dsts, byteRange{int64(r.LBA) * bs, int64(r.Blocks) * bs})
		want += int64(r.Blocks) * bs
	}
	// BLOCK OFFSET INTO ROD is eight bytes: checked before it is
	// multiplied, or its product may wrap to before the ROD (run refuses
	// an offset past the ROD's end).
	pos := tok.bytes
	if p.OffsetIntoROD <= uint64(tok.bytes/bs) {
		pos = int64(p.OffsetIntoROD) * bs
	}
	src, release, err := m.freezeOverlap(ctx, req.Nexus, tok, dst, pos, min(want, tok.bytes-pos), dsts)
	if err != nil {
		w := &tokenWrite{m: m, ctx: ctx, req: req, tok: tok}
		result = w.fail(err)
		return result
	}
	defer release()
	// The buffer is taken before any extent lock: a copy waiting for a
	// buffer while holding blocks could deadlock with one holding a
	// buffer while waiting for blocks.
	buf, err := m.getBuffer(ctx)
	if err != nil {
		return scsi.TaskAborted()
	}
	defer m.putBuffer(buf)
	w := &tokenWrite{m: m, ctx: ctx, l: l, req: req, tok: src, bs: bs, buf: buf}
	result = w.run(p)
	return result
}

// run writes the destination ranges of p.
func (w *tokenWrite) run(p *WUTParams) *scsi.Sense {
	tok := w.tok
	w.pos = int64(p.OffsetIntoROD)
	if tok != nil && (p.OffsetIntoROD > uint64(tok.bytes)/uint64(w.bs)) {
		return w.underrun()
	}
	w.pos *= w.bs
	deadline := time.Now().Add(w.m.tcfg.WriteBudget)
	for _, r := range p.Ranges {
		for done := uint64(0); done < uint64(r.Blocks); {
			if w.ctx.Err() != nil {
				return scsi.TaskAborted()
			}
			if w.written > 0 && time.Now().After(deadline) {
				return scsi.NewSense(scsi.CopyAborted, scsi.ASCCopyTargetDeviceDataUnderrun).WithInformation(w.written).
					WithReason("write budget of %v spent after %d blocks", w.m.tcfg.WriteBudget, w.written)
			}
			n, s := w.step(r.LBA+done, uint64(r.Blocks)-done)
			if s != nil {
				return s
			}
			done += n
		}
	}
	return nil
}

// inScope reports whether nexus n may use tok.
func (m *Manager) inScope(tok *Token, n *scsi.Nexus) bool {
	switch m.tcfg.Scope {
	case ScopeTarget:
		return n.TargetName == tok.target
	case ScopeInitiator:
		return n.InitiatorName == tok.initiator
	}
	return true
}

// tokenWrite is one WRITE USING TOKEN on its way.
type tokenWrite struct {
	m       *Manager
	ctx     context.Context
	l       *List
	req     Request
	tok     *Token // nil for the zero token
	buf     []byte // a pooled copy buffer, for the buffered path
	bs      int64  // destination block size
	pos     int64  // byte offset into the token's data
	written uint64 // blocks written
	// internalAborted: an internal task was aborted while its work ran.
	internalAborted bool
}

// underrun is the error for destination ranges that ask for more than the
// token holds (Windows: the host asked too much).
func (w *tokenWrite) underrun() *scsi.Sense {
	return scsi.NewSense(scsi.IllegalRequest, scsi.ASCCopyTargetDeviceDataUnderrun).WithInformation(w.written).
		WithReason("the ROD token holds no more data after %d blocks", w.written)
}

// step writes up to n blocks at lba of the destination and returns how
// many it wrote: one chunk, never crossing from one token range into the
// next.
func (w *tokenWrite) step(lba, n uint64) (uint64, *scsi.Sense) {
	dst := w.req.LU
	if w.tok == nil {
		k := min(n, uint64(offloadChunk/w.bs))
		var wrote int64
		err := w.m.runInternal(w.ctx, w.req.Nexus, []scsi.Access{{LU: dst, LBA: lba, Blocks: k, Write: true}}, func(ctx context.Context) error {
			defer w.noteAbort(ctx)
			return zero(dst, int64(lba)*w.bs, int64(k)*w.bs, !dst.WriteCacheEnabled(), &wrote)
		})
		if err != nil {
			return 0, w.failAfter(err, wrote)
		}
		w.done(k)
		return k, w.abortedSense()
	}
	src, srcOff, avail := w.tok.locate(w.pos)
	if avail == 0 || w.pos+w.bs > w.tok.bytes {
		return 0, w.underrun()
	}
	if avail < w.bs {
		// The block straddles two token ranges (a source with smaller
		// blocks than the destination).
		return 1, w.gather(lba)
	}
	same := backstore.Unwrap(dst.Store) == backstore.Unwrap(src.Store)
	chunk := int64(offloadChunk)
	if same {
		chunk = bufferSize
	}
	k := uint64(min(int64(n)*w.bs, avail, chunk) / w.bs)
	bytes := int64(k) * w.bs
	sbs := int64(src.Store.BlockSize())
	slba := uint64(srcOff / sbs)
	sblocks := uint64((srcOff+bytes+sbs-1)/sbs) - slba
	accesses := []scsi.Access{{LU: src, LBA: slba, Blocks: sblocks}, {LU: dst, LBA: lba, Blocks: k, Write: true}}
	var wrote int64
	err := w.m.runInternal(w.ctx, w.req.Nexus, accesses, func(ctx context.Context) error {
		defer w.noteAbort(ctx)
		if !same && w.offload(srcOff, int64(lba)*w.bs, bytes) {
			return nil
		}
		return w.buffered(srcOff, int64(lba)*w.bs, bytes, &wrote)
	})
	if err != nil {
		return 0, w.failAfter(err, wrote)
	}
	w.pos += bytes
	w.done(k)
	return k, w.abortedSense()
}

// noteAbort records, at the end of an internal task's work, that the task
// was aborted meanwhile (ABORT TASK SET or a reset on a logical unit it
// accesses): the work in hand completed, but the command must not go on
// as a task nobody aborted.
func (w *tokenWrite) noteAbort(ctx context.Context) {
	if ctx.Err() != nil {
		w.internalAborted = true
	}
}

// abortedSense ends the command once an internal task was aborted.
func (w *tokenWrite) abortedSense() *scsi.Sense {
	if w.internalAborted {
		return scsi.TaskAborted().WithReason("an internal task of WRITE USING TOKEN was aborted after %d blocks", w.written)
	}
	return nil
}

func (w *tokenWrite) done(k uint64) {
	w.written += k
	w.l.blocks.Add(k)
	w.l.bytes.Add(k * uint64(w.bs))
}

// offload copies with the backstores' fast paths (Token.offloadTo).
func (w *tokenWrite) offload(srcOff, dstOff, n int64) bool {
	var paths pathCounts
	ok := w.tok.offloadTo(w.req.LU, dstOff, srcOff, n, &paths)
	w.m.counters.addPaths(&paths)
	return ok
}

// buffered reads the whole range of the token's data into the buffer,
// then writes it, a buffer at a time; wrote counts the bytes written.
func (w *tokenWrite) buffered(srcOff, dstOff, n int64, wrote *int64) error {
	for done := int64(0); done < n; {
		k := min(n-done, bufferSize)
		p := w.buf[:k]
		if err := w.tok.readSource(p, srcOff+done); err != nil {
			return err
		}
		lu := w.req.LU
		if err := lu.Store.WriteAt(p, dstOff+done, !lu.WriteCacheEnabled()); err != nil {
			return scsi.WriteError(err, uint64((dstOff+done)/w.bs))
		}
		w.m.counters.bytes[PathBuffered].Add(uint64(k))
		done += k
		*wrote = done
	}
	return nil
}

// gather writes the one destination block at lba whose data lies in
// several token ranges.
func (w *tokenWrite) gather(lba uint64) *scsi.Sense {
	dst := w.req.LU
	src := w.tok.lu
	sbs := int64(src.Store.BlockSize())
	type part struct{ off, n int64 }
	var parts []part
	accesses := []scsi.Access{{LU: dst, LBA: lba, Blocks: 1, Write: true}}
	for pos, need := w.pos, w.bs; need > 0; {
		_, off, avail := w.tok.locate(pos)
		k := min(avail, need)
		parts = append(parts, part{off, k})
		accesses = append(accesses, scsi.Access{LU: src, LBA: uint64(off / sbs), Blocks: uint64((off+k+sbs-1)/sbs - off/sbs)})
		pos += k
		need -= k
	}
	err := w.m.runInternal(w.ctx, w.req.Nexus, accesses, func(ctx context.Context) error {
		defer w.noteAbort(ctx)
		p := w.buf[:w.bs]
		at := int64(0)
		for _, x := range parts {
			if err := w.tok.readSource(p[at:at+x.n], x.off); err != nil {
				return err
			}
			at += x.n
		}
		if err := dst.Store.WriteAt(p, int64(lba)*w.bs, !dst.WriteCacheEnabled()); err != nil {
			return scsi.WriteError(err, lba)
		}
		return nil
	})
	if err != nil {
		return w.fail(err)
	}
	w.pos += w.bs
	w.done(1)
	return w.abortedSense()
}

// failAfter is fail for a step that wrote its first wrote bytes before it
// failed: those blocks are on the destination and count as written, so
// that RECEIVE ROD TOKEN INFORMATION's TRANSFER COUNT (and the INFORMATION
// of COPY ABORTED) says how far the command got, as it does when it is
// cut short between steps.
func (w *tokenWrite) failAfter(err error, wrote int64) *scsi.Sense {
	if k := uint64(wrote / w.bs); k > 0 {
		w.done(k)
	}
	return w.fail(err)
}

// fail maps the error of an internal task: a revoked snapshot is the
// token's revocation (or, for the command's own frozen copy of an access
// upon reference token, INSUFFICIENT RESOURCES); a reservation conflict on the token's source or the
// destination is COPY ABORTED, THIRD PARTY DEVICE FAILURE with the
// conflict forwarded (it is what a copy in the background, IMMED set,
// records; without IMMED the command itself ends with RESERVATION
// CONFLICT).
func (w *tokenWrite) fail(err error) *scsi.Sense {
	if w.ctx.Err() != nil {
		return scsi.TaskAborted()
	}
	if errors.Is(err, errSnapshotRevoked) {
		if w.tok != nil && w.tok.frozen {
			// The command's own snapshot of the source ran out of
			// snapshot space; the token itself is as good as before.
			return scsi.NewSense(scsi.IllegalRequest, ascInsufficientResources).WithInformation(w.written).
				WithReason("no snapshot space to copy the token onto its own source: %v", err)
		}
		return scsi.NewSense(scsi.IllegalRequest, ascTokenRevoked).WithReason("%v", err)
	}
	if se := (*scsi.StatusError)(nil); errors.As(err, &se) {
		side := byte(scsi.ForwardedFromSource)
		if se.LU == w.req.LU {
			side = scsi.ForwardedFromDestination
		}
		s := scsi.NewSense(scsi.CopyAborted, scsi.ASCThirdPartyDeviceFailure).WithInformation(w.written).
			WithReason("after %d blocks: %v", w.written, err)
		s.Forwarded = deviceStatus(err, side, w.req.DSense)
		return s
	}
	var s *scsi.Sense
	if errors.As(err, &s) {
		return s
	}
	return scsi.InternalTargetFailure().WithReason("%v", err)
}

// zero makes n bytes at off of lu read as zeroes: the store's zeroing if
// it has one, else zero-filled writes; wrote counts the bytes zeroed.
func zero(lu *scsi.LU, off, n int64, fua bool, wrote *int64) error {
	err := backstore.WriteZeroes(lu.Store, off, n, fua)
	if !errors.Is(err, backstore.ErrNotSupported) {
		if err != nil {
			return scsi.WriteError(err, uint64(off/int64(lu.Store.BlockSize())))
		}
		*wrote = n
		return nil
	}
	zeros := make([]byte, min(n, 1<<20))
	for done := int64(0); done < n; {
		k := min(n-done, int64(len(zeros)))
		if err := lu.Store.WriteAt(zeros[:k], off+done, fua); err != nil {
			return scsi.WriteError(err, uint64((off+done)/int64(lu.Store.BlockSize())))
		}
		done += k
		*wrote = done
	}
	return nil
}

// locate returns the logical unit, byte offset and bytes left in the
// token range that holds byte pos of the token's data.
func (t *Token) locate(pos int64) (*scsi.LU, int64, int64) {
	bs := int64(t.lu.Store.BlockSize())
	for _, r := range t.ranges {
		n := int64(r.blocks) * bs
		if pos < n {
			return t.lu, int64(r.lba)*bs + pos, n - pos
		}
		pos -= n
	}
	return t.lu, 0, 0
}
