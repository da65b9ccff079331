package rod

import (
	"context"
	"errors"

	"github.com/odxtgt/odxtgt/scsi"
)

// segmentCopy writes the n bytes of one segment to the span to: head,
// data held from the previous segments, then bytes of the span from, then
// zeros zero bytes (SPC-4 5.17.7.2).
type segmentCopy struct {
	m   *Manager
	ctx context.Context
	// stop ends ctx: called when an internal task of the copy was
	// aborted while its body ran, so the copy goes no further.
	stop  context.CancelFunc
	l     *List
	req   Request
	from  span
	to    span
	n     int64
	head  []byte
	zeros int64
	seg   int
	p     *Params
	paths *pathCounts
}

// offloader is a backstore fast path: it copies n bytes between two
// stores without passing them through the process, or reports
// backstore.ErrNotSupported.
type offloader struct {
	count func(*pathCounts) *uint64
	copy  func(dst, src *scsi.LU, dstOff, srcOff, n int64, fua bool) error
}

// run copies the segment: through the backstores' fast paths when the
// two spans are distinct and block aligned, then, for what they could not
// do, through pooled buffers. Overlapping spans of one logical unit are
// copied as if through a buffer of the whole segment (SPC-4 6.4.6.5): in
// descending order when the destination lies above the source.
func (c *segmentCopy) run() *scsi.Sense {
	if tok := c.from.ep.tok; tok != nil {
		frozen, release, err := c.m.freezeOverlap(c.ctx, c.req.Nexus, tok, c.to.ep.lu, c.from.start, c.n, []byteRange{{c.to.start, c.n}})
		if err != nil {
			return c.fail(err, c.from.ep)
		}
		defer release()
		c.from.ep.tok = frozen
	}
	src, dst := c.from.ep, c.to.ep
	head := int64(len(c.head))
	medium := c.n - head - c.zeros
	// A ROD's data is frozen: no write to the destination changes it.
	overlap := !src.rod() && src.lu == dst.lu && c.from.start < c.to.start+c.n && c.to.start < c.from.start+medium
	done := int64(0)
	if medium == c.n && !overlap && c.from.start%src.blockSize == 0 && c.to.start%dst.blockSize == 0 && c.n%dst.blockSize == 0 {
		offload := c.offload
		if src.rod() {
			offload = c.offloadROD
		}
		var s *scsi.Sense
		if done, s = offload(); s != nil {
			return s
		}
	}
	if done == c.n {
		return nil
	}
	return c.buffered(done, overlap && c.to.start+head > c.from.start)
}

// fua reports whether destination writes must be durable at once: the
// destination's write cache is disabled (SBC-3 6.4.5), so each segment is
// on the medium when the copy reports it done.
func (c *segmentCopy) fua() bool { return !c.to.ep.lu.WriteCacheEnabled() }

// offload copies from the start of the segment with the first fast path
// that works, chunk by chunk, and returns how far it got. A chunk a fast
// path fails with another error is left to the buffered copy, which
// reports the failing side precisely.
func (c *segmentCopy) offload() (int64, *scsi.Sense) {
	ways := offloaders
	done := int64(0)
	for done < c.n && len(ways) > 0 {
		if c.ctx.Err() != nil {
			return done, scsi.TaskAborted()
		}
		k := min(offloadChunk, c.n-done)
		sl, sn := c.from.blocks(done, k)
		dl, dn := c.to.blocks(done, k)
		accesses := []scsi.Access{{LU: c.from.ep.lu, LBA: sl, Blocks: sn}, {LU: c.to.ep.lu, LBA: dl, Blocks: dn, Write: true}}
		var used *offloader
		var failed bool
		err := c.m.runInternal(c.ctx, c.req.Nexus, accesses, func(ctx context.Context) error {
			// RunInternal runs fn even once ctx has ended when nothing
			// made it wait; every fn of a copy checks first, so an
			// aborted copy moves nothing more.
			if ctx.Err() != nil {
				return scsi.TaskAborted()
			}
			defer c.stopIfAborted(ctx)
			for len(ways) > 0 {
				w := &ways[0]
				err := w.copy(c.to.ep.lu, c.from.ep.lu, c.to.start+done, c.from.start+done, k, c.fua())
				if err == nil {
					used = w
					return nil
				}
				if !errors.Is(err, errNotSupported) {
					failed = true
					return nil
				}
				ways = ways[1:]
			}
			return nil
		})
		if err != nil {
			return done, c.fail(err, c.to.ep)
		}
		if failed || used == nil {
			break
		}
		*used.count(c.paths) += uint64(k)
		c.l.bytes.Add(uint64(k))
		done += k
	}
	return done, nil
}

// buffered copies the segment from byte done on, through at most two
// pooled buffers: one chunk is read while the previous one is written.
// With descending it starts at the end.
func (c *segmentCopy) buffered(done int64, descending bool) *scsi.Sense {
	var bufs [2][]byte
	var err error
	if bufs[0], err = c.m.getBuffer(c.ctx); err != nil {
		return scsi.TaskAborted()
	}
	defer c.m.putBuffer(bufs[0])
	select {
	case bufs[1] = <-c.m.buffers:
		bufs[1] = ensureBuffer(bufs[1])
		defer c.m.putBuffer(bufs[1])
	default:
	}
	var chunks [][2]int64 // offset and length within the segment
	for off := done; off < c.n; off += bufferSize {
		chunks = append(chunks, [2]int64{off, min(bufferSize, c.n-off)})
	}
	if descending {
		for i, j := 0, len(chunks)-1; i < j; i, j = i+1, j-1 {
			chunks[i], chunks[j] = chunks[j], chunks[i]
		}
	}
	var pending chan *scsi.Sense
	wait := func() *scsi.Sense {
		if pending == nil {
			return nil
		}
		s := <-pending
		pending = nil
		return s
	}
	for i, ch := range chunks {
		// Between chunks the copy stops as soon as it is aborted.
		if c.ctx.Err() != nil {
			wait()
			return scsi.TaskAborted()
		}
		buf := bufs[i%2]
		if bufs[1] == nil { // one buffer: the previous write must end first
			buf = bufs[0]
			if s := wait(); s != nil {
				return s
			}
		}
		data, s := c.read(ch[0], ch[1], buf)
		if s != nil {
			wait()
			return s
		}
		if s := wait(); s != nil {
			return s
		}
		pending = make(chan *scsi.Sense, 1)
		go func(off, n int64) {
			s := c.write(off, n, data)
			if s == nil {
				c.paths.buffered += uint64(n)
				c.l.bytes.Add(uint64(n))
			}
			pending <- s
		}(ch[0], ch[1])
	}
	return wait()
}

// read returns the n bytes at offset off of what the segment writes, in
// buf: held data, source data read into buf, zeros. buf has room for a
// chunk and the partial blocks at either end of the source data.
func (c *segmentCopy) read(off, n int64, buf []byte) ([]byte, *scsi.Sense) {
	head := int64(len(c.head))
	end := c.n - c.zeros // of the source data
	if off >= head && off+n <= end {
		return c.readMedium(off-head, n, buf)
	}
	out := buf[:n]
	if from, to := max(off, head), min(off+n, end); from < to {
		// Read into the end of buf, then move the data into place: the
		// partial blocks around it may overlap where it goes.
		data, s := c.readMedium(from-head, to-from, buf[int64(len(buf))-c.from.room(from-head, to-from):])
		if s != nil {
			return nil, s
		}
		copy(out[from-off:], data)
	}
	if off < head {
		copy(out, c.head[off:min(head, off+n)])
	}
	if off+n > end {
		clear(out[max(end, off)-off:])
	}
	return out, nil
}

// readMedium reads n bytes at offset off of the source span into buf and
// returns them, reading the whole blocks that hold them.
func (c *segmentCopy) readMedium(off, n int64, buf []byte) ([]byte, *scsi.Sense) {
	if c.from.ep.rod() {
		return c.readROD(off, n, buf)
	}
	lba, count := c.from.blocks(off, n)
	bs := c.from.ep.blockSize
	whole := buf[:int64(count)*bs]
	err := c.m.runInternal(c.ctx, c.req.Nexus, []scsi.Access{{LU: c.from.ep.lu, LBA: lba, Blocks: count}}, func(ctx context.Context) error {
		if ctx.Err() != nil {
			return scsi.TaskAborted()
		}
		defer c.stopIfAborted(ctx)
		if err := c.from.ep.lu.Store.ReadAt(whole, int64(lba)*bs); err != nil {
			return scsi.ReadError(err, lba)
		}
		return nil
	})
	if err != nil {
		return nil, c.fail(err, c.from.ep)
	}
	head := c.from.start + off - int64(lba)*bs
	return whole[head : head+n], nil
}

// write writes data, n bytes at offset off of the segment. A range that
// starts or ends inside a block reads that block first, inside the same
// exclusive hold, so the rest of the block is kept.
func (c *segmentCopy) write(off, n int64, data []byte) *scsi.Sense {
	lba, count := c.to.blocks(off, n)
	bs := c.to.ep.blockSize
	store := c.to.ep.lu.Store
	at := int64(lba) * bs
	head := c.to.start + off - at
	err := c.m.runInternal(c.ctx, c.req.Nexus, []scsi.Access{{LU: c.to.ep.lu, LBA: lba, Blocks: count, Write: true}}, func(ctx context.Context) error {
		if ctx.Err() != nil {
			return scsi.TaskAborted()
		}
		defer c.stopIfAborted(ctx)
		p := data
		if head != 0 || n%bs != 0 {
			p = make([]byte, int64(count)*bs)
			if err := store.ReadAt(p[:bs], at); err != nil {
				return scsi.ReadError(err, lba)
			}
			if count > 1 {
				if err := store.ReadAt(p[len(p)-int(bs):], at+int64(len(p))-bs); err != nil {
					return scsi.ReadError(err, lba+count-1)
				}
			}
			copy(p[head:], data)
		}
		if err := store.WriteAt(p, at, c.fua()); err != nil {
			return scsi.WriteError(err, lba)
		}
		return nil
	})
	if err != nil {
		return c.fail(err, c.to.ep)
	}
	return nil
}

// stopIfAborted ends the copy when the context of an internal task body,
// which ends when the copy or any of the task's tasks is aborted, ended
// while the body ran. What the body did stands; nothing follows it.
func (c *segmentCopy) stopIfAborted(ctx context.Context) {
	if ctx.Err() != nil {
		c.stop()
	}
}

// fail turns the error of an internal task on ep into the command's
// sense data: TASK ABORTED's stand-in when the copy was aborted, else
// COPY ABORTED, THIRD PARTY DEVICE FAILURE with the segment number, a
// pointer to the failing CSCD descriptor (or the segment for CSCD
// FFFFh), and the device's status and sense forwarded (SPC-4 6.4.3.6):
// CHECK CONDITION and its sense, or RESERVATION CONFLICT, which has none.
func (c *segmentCopy) fail(err error, ep endpoint) *scsi.Sense {
	if c.ctx.Err() != nil {
		return scsi.TaskAborted()
	}
	if s := (*scsi.Sense)(nil); errors.As(err, &s) && s.Key == scsi.AbortedCommand {
		// An internal task of the copy was aborted (ABORT TASK SET, a
		// reset or the loss of the nexus on a logical unit it accesses)
		// before its work ran: the copy stops as when that happens while
		// the work runs (stopIfAborted), whichever comes first.
		c.stop()
		return scsi.TaskAborted()
	}
	if errors.Is(err, errSnapshotRevoked) {
		// A ROD that became invalid while the copy ran is an
		// unreachable CSCD (SPC-4 5.17.7.5.1).
		return segmentError(c.seg, c.p, scsi.ASCCopyTargetDeviceNotReachable).WithReason("segment %d: %v", c.seg, err)
	}
	fwd := deviceStatus(err, ep.fwd, c.req.DSense)
	seg := c.p.Segments[c.seg]
	id := seg.Src
	if ep.fwd == scsi.ForwardedFromDestination {
		id = seg.Dst
	}
	s := scsi.NewSense(scsi.CopyAborted, scsi.ASCThirdPartyDeviceFailure).WithCommandSpecific(uint64(c.seg)).
		WithReason("segment %d, %s: %v", c.seg, sideName(ep.fwd), err)
	if int(id) < len(c.p.CSCDs) {
		s.SegmentPointer(false, c.p.CSCDs[id].Offset)
	} else {
		s.SegmentPointer(false, seg.Offset)
	}
	s.Forwarded = fwd
	return s
}

// deviceStatus is what a copy forwards of the error a source or
// destination (source: ForwardedFromSource or ForwardedFromDestination)
// ended an internal task with: RESERVATION CONFLICT with no sense data,
// or CHECK CONDITION with its sense encoded per dsense (an error that is
// neither is an internal target failure).
func deviceStatus(err error, source byte, dsense bool) *scsi.ForwardedSense {
	var se *scsi.StatusError
	if errors.As(err, &se) {
		return &scsi.ForwardedSense{Source: source, Status: se.Status}
	}
	var dev *scsi.Sense
	if !errors.As(err, &dev) {
		dev = scsi.InternalTargetFailure().WithReason("%v", err)
	}
	return &scsi.ForwardedSense{Source: source, Status: scsi.StatusCheckCondition, Sense: dev.Encode(dsense)}
}

// getBuffer takes a copy buffer from the pool, waiting while all are in
// use.
func (m *Manager) getBuffer(ctx context.Context) ([]byte, error) {
	select {
	case b := <-m.buffers:
		return ensureBuffer(b), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *Manager) putBuffer(b []byte) { m.buffers <- b }

// ensureBuffer allocates a pool slot's buffer the first time it is used.
func ensureBuffer(b []byte) []byte {
	if b == nil {
		b = make([]byte, bufferSize+bufferSlack)
	}
	return b
}
