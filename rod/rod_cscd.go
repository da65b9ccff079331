package rod

import (
	"context"
	"errors"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// A ROD CSCD descriptor turns a ROD token into a copy source of EXTENDED
// COPY: a block device whose logical blocks run from zero over the data
// the token represents, in the order of its ranges (SPC-4 5.17.7.6). For
// a point-in-time token that is the frozen data, read through its
// snapshot; the block device zero token reads as zeroes of any length.
// The tokens are verified and held while the copy runs, so they neither
// expire nor free their snapshots under it.

// zeroRODBytes is the size of the block device zero ROD: larger than any
// destination, small enough that LBA arithmetic on it cannot overflow.
const zeroRODBytes = 1 << 62

// holdRODs verifies the ROD token of every ROD CSCD descriptor of p for
// nexus n and holds it. The result is parallel to p.CSCDs: the held
// token, or nil for an identification descriptor or the block device
// zero token. A token that does not verify, or that n may not use, is
// the INVALID TOKEN OPERATION that WRITE USING TOKEN would return.
func (m *Manager) holdRODs(n *scsi.Nexus, p *Params) ([]*Token, *scsi.Sense) {
	var toks []*Token
	for i, c := range p.CSCDs {
		if c.ROD == nil {
			continue
		}
		tok, s := m.tok.verify(c.ROD.Token[:], m.now())
		if s == nil && tok != nil && !m.inScope(tok, n) {
			m.tok.release(tok, false, false, m.now())
			s = scsi.NewSense(scsi.IllegalRequest, ascTokenRemoteUsage).WithReason("ROD token %d is out of this nexus's scope", tok.id)
		}
		if s != nil {
			m.releaseRODs(p, toks, false, false)
			return nil, s.WithReason("CSCD descriptor %d: %s", i, s.Reason)
		}
		if toks == nil {
			toks = make([]*Token, len(p.CSCDs))
		}
		toks[i] = tok
	}
	return toks, nil
}

// releaseRODs ends the holds of holdRODs. After a copy that completed
// (done), DEL_TKN deletes a token (SPC-4 table 145); a copy that was
// refused (used false) leaves the tokens' inactivity timers as they were.
func (m *Manager) releaseRODs(p *Params, toks []*Token, used, done bool) {
	for i, tok := range toks {
		if tok != nil {
			m.tok.release(tok, done && p.CSCDs[i].ROD.DelTkn, used, m.now())
		}
	}
}

// CheckRODs checks the ROD tokens of p for nexus n as the copy will, so
// that a command with IMMED set is refused at once.
func (m *Manager) CheckRODs(n *scsi.Nexus, p *Params) *scsi.Sense {
	toks, s := m.holdRODs(n, p)
	m.releaseRODs(p, toks, false, false)
	return s
}

// rodEndpoint is the copy source a ROD CSCD descriptor names: tok held
// by holdRODs, or nil for the zero token, whose block length is the
// descriptor's, else the other side's (filled in by runSegment).
func rodEndpoint(c CSCD, tok *Token, fwd byte) (endpoint, error) {
	if tok == nil {
		return endpoint{zero: true, blockSize: int64(c.BlockLength), fwd: fwd}, nil
	}
	bs := tok.lu.Store.BlockSize()
	if c.BlockLength != 0 && int(c.BlockLength) != bs {
		return endpoint{lu: tok.lu, blockSize: int64(bs)}, errBlockLength
	}
	return endpoint{lu: tok.lu, tok: tok, blockSize: int64(bs), fwd: fwd}, nil
}

// pieces returns where the n bytes at byte off of the token's source
// logical unit are now: in its snapshot or still in the source. The
// caller holds the source's extent lock over them, shared.
func (t *Token) pieces(off, n int64) ([]piece, error) {
	if t.snap == nil {
		return []piece{{t.lu.Store, off, n}}, nil
	}
	return t.snap.pieces(off, n)
}

// readSource fills p with the token's data at byte off of its source
// logical unit, inside one of its ranges.
func (t *Token) readSource(p []byte, off int64) error {
	ps, err := t.pieces(off, int64(len(p)))
	if err != nil {
		return err
	}
	for _, x := range ps {
		if err := x.store.ReadAt(p[x.off-off:x.off-off+x.n], x.off); err != nil {
			return scsi.ReadError(err, uint64(x.off/int64(t.lu.Store.BlockSize())))
		}
	}
	return nil
}

// readAt fills p with the token's data from byte pos of the ROD, across
// its ranges.
func (t *Token) readAt(p []byte, pos int64) error {
	for len(p) > 0 {
		_, off, avail := t.locate(pos)
		k := min(int64(len(p)), avail)
		if k == 0 {
			return scsi.LBAOutOfRange().WithReason("ROD token %d holds %d bytes", t.id, t.bytes)
		}
		if err := t.readSource(p[:k], off); err != nil {
			return err
		}
		p, pos = p[k:], pos+k
	}
	return nil
}

// accesses are the shared holds on the token's source that reading the n
// bytes at byte pos of the ROD needs.
func (t *Token) accesses(pos, n int64) []scsi.Access {
	bs := int64(t.lu.Store.BlockSize())
	var out []scsi.Access
	for n > 0 {
		_, off, avail := t.locate(pos)
		k := min(n, avail)
		if k == 0 {
			break
		}
		out = append(out, scsi.Access{LU: t.lu, LBA: uint64(off / bs), Blocks: uint64((off+k+bs-1)/bs - off/bs)})
		pos, n = pos+k, n-k
	}
	return out
}

// offloadTo copies the n bytes at byte srcOff of the token's source,
// inside one of its ranges, to byte dstOff of dst with the backstores'
// fast paths, one piece at a time, asking where the rest is after each: a
// write to dst may have moved source data into the snapshot. paths counts
// the bytes each path moved. It reports false, having possibly written
// part of the range, when no fast path could do it.
func (t *Token) offloadTo(dst *scsi.LU, dstOff, srcOff, n int64, paths *pathCounts) bool {
	fua := !dst.WriteCacheEnabled()
	for done := int64(0); done < n; {
		ps, err := t.pieces(srcOff+done, n-done)
		if err != nil {
			return false
		}
		p := ps[0]
		count := &paths.clone
		err = backstore.CloneRange(dst.Store, dstOff+done, p.store, p.off, p.n, fua)
		if err != nil {
			count = &paths.copyRange
			err = backstore.CopyRange(dst.Store, dstOff+done, p.store, p.off, p.n, fua)
		}
		if err != nil {
			return false
		}
		*count += uint64(p.n)
		done += p.n
	}
	return true
}

// offloadROD is offload for a segment whose source is a ROD: the zero
// token zeroes the destination (WriteZeroes, else zero-filled writes);
// a token's data goes by clone or copy_file_range, piece by piece, unless
// the destination is the token's own source store, which the buffered
// copy handles.
func (c *segmentCopy) offloadROD() (int64, *scsi.Sense) {
	tok, dst := c.from.ep.tok, c.to.ep.lu
	if tok != nil && backstore.Unwrap(tok.lu.Store) == backstore.Unwrap(dst.Store) {
		return 0, nil
	}
	done := int64(0)
	for done < c.n {
		if c.ctx.Err() != nil {
			return done, scsi.TaskAborted()
		}
		k := min(offloadChunk, c.n-done)
		pos, at := c.from.start+done, c.to.start+done
		dl, dn := c.to.blocks(done, k)
		var accesses []scsi.Access
		if tok != nil {
			accesses = tok.accesses(pos, k)
		}
		accesses = append(accesses, scsi.Access{LU: dst, LBA: dl, Blocks: dn, Write: true})
		moved := true
		var zeroed int64 // of a chunk that fails part way
		err := c.m.runInternal(c.ctx, c.req.Nexus, accesses, func(ctx context.Context) error {
			if ctx.Err() != nil {
				return scsi.TaskAborted()
			}
			defer c.stopIfAborted(ctx)
			if tok == nil {
				return zero(dst, at, k, c.fua(), &zeroed)
			}
			for part := int64(0); part < k && moved; {
				_, off, avail := tok.locate(pos + part)
				piece := min(avail, k-part)
				moved = piece > 0 && tok.offloadTo(dst, at+part, off, piece, c.paths)
				part += piece
			}
			return nil
		})
		if err != nil {
			// What was zeroed before the failure is on the
			// destination: the copy's status counts it.
			c.paths.zeroed += uint64(zeroed)
			c.l.bytes.Add(uint64(zeroed))
			return done, c.fail(err, c.to.ep)
		}
		if !moved {
			break
		}
		if tok == nil {
			c.paths.zeroed += uint64(k)
		}
		c.l.bytes.Add(uint64(k))
		done += k
	}
	return done, nil
}

// readROD is read for a segment whose source is a ROD.
func (c *segmentCopy) readROD(off, n int64, buf []byte) ([]byte, *scsi.Sense) {
	tok := c.from.ep.tok
	if tok == nil {
		// The zero ROD's block length is the peer's choice, up to
		// FFFFFFh: its blocks need not fit the buffer, and reading
		// zeroes needs no whole blocks.
		clear(buf[:n])
		return buf[:n], nil
	}
	lba, count := c.from.blocks(off, n)
	bs := c.from.ep.blockSize
	whole := buf[:int64(count)*bs]
	head := c.from.start + off - int64(lba)*bs
	pos := int64(lba) * bs
	err := c.m.runInternal(c.ctx, c.req.Nexus, tok.accesses(pos, int64(len(whole))), func(ctx context.Context) error {
		if ctx.Err() != nil {
			return scsi.TaskAborted()
		}
		defer c.stopIfAborted(ctx)
		return tok.readAt(whole, pos)
	})
	if err != nil {
		return nil, c.fail(err, c.from.ep)
	}
	return whole[head : head+n], nil
}

// freezeOverlap makes a command that copies the n bytes at byte pos of
// the ROD of an access upon reference token onto the token's own source,
// at the byte ranges dsts of dst (a segment, or the ranges of a WRITE USING
// TOKEN), read the source as if whole before any of it is written (SPC-4
// 6.4.6.5), whatever the order of the token's ranges: when what it reads
// overlaps what it writes, the returned token reads a point-in-time
// snapshot of its ranges taken now and ended by release. Otherwise it is
// tok itself.
func (m *Manager) freezeOverlap(ctx context.Context, nexus *scsi.Nexus, tok *Token, dst *scsi.LU, pos, n int64, dsts []byteRange) (frozen *Token, release func(), err error) {
	release = func() {}
	if tok.snap != nil || backstore.Unwrap(tok.lu.Store) != backstore.Unwrap(dst.Store) {
		return tok, release, nil
	}
	var ranges []byteRange
	overlap := false
	for done := int64(0); done < n; {
		_, off, avail := tok.locate(pos + done)
		k := min(avail, n-done)
		if k == 0 {
			break
		}
		ranges = append(ranges, byteRange{off, k})
		for _, d := range dsts {
			overlap = overlap || off < d.end() && d.off < off+k
		}
		done += k
	}
	if !overlap {
		return tok, release, nil
	}
	prot, ok := tok.lu.Store.(*Protected)
	if !ok {
		return nil, release, errors.New("the token's source has no copy-on-write to copy it onto itself")
	}
	frozen = &Token{id: tok.id, rodType: RODTypePointInTime, lu: tok.lu, ranges: tok.ranges, bytes: tok.bytes, frozen: true}
	err = m.runInternal(ctx, nexus, tok.accesses(pos, n), func(ctx context.Context) error {
		if ctx.Err() != nil {
			return scsi.TaskAborted()
		}
		sink, path, err := m.snapshotSink(tok.lu, prot)
		if err != nil {
			return err
		}
		// A snapshot that runs out of space reads as revoked, which
		// ends the copy; the token itself stays as it is.
		frozen.snap = newSnapshot(prot, sink, path, ranges, false, m.tok.space, func() {})
		return nil
	})
	if err != nil {
		return nil, release, err
	}
	return frozen, frozen.snap.close, nil
}
