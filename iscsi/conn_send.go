package iscsi

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/odxtgt/odxtgt/scsi"
)

// outPDU is a PDU queued for the writer. data may point into a pooled
// buffer; free, if set, goes back to its pool once the PDU is written.
type outPDU struct {
	bhs  [BHSLength]byte
	data []byte
	free *buffer
}

func (o *outPDU) put32(off int, v uint32) { binary.BigEndian.PutUint32(o.bhs[off:], v) }

// sendQueue carries PDUs, in StatSN order, to whichever goroutine holds
// its writer role. A goroutine that queues PDUs while nobody writes takes
// the role: a command's goroutine writes its own response at once (and
// whatever others queue meanwhile, in one flush), while the reader and the
// control loop, which must never block on the socket, pass the role to the
// writer goroutine. Replies to concurrent commands so share system calls
// without a hand-off per command.
//
// The queue is bounded where the peer controls its growth: before reading
// a PDU the reader waits until fewer than limit bytes are queued (see
// waitRoom), so an initiator that sends requests but reads no answers
// stops being read, as http2's reader waits for its serve loop. Responses
// of commands already running are queued regardless; what those may
// produce is bounded by readLimit: the reader also waits while the
// running commands may still produce that much data-in. A socket write
// that makes no progress for the send timeout fails, and the connection
// with it.
type sendQueue struct {
	mu        sync.Mutex
	room      sync.Cond // signalled when queued bytes drop below limit, or on close
	q         []outPDU
	pending   int // bytes in q (headers and data segments)
	taken     int // bytes of the batch being written
	limit     int
	reads     int64 // data-in the running commands may still produce
	readLimit int64
	writing   bool // a goroutine holds the writer role
	closed    bool
	flushBy   time.Time     // set by teardown: no write may last beyond it
	wake      chan struct{} // passes the writer role to the writer goroutine
	idle      chan struct{} // closed once the queue is closed and written out

	// Used only by the writer role's holder.
	spare []outPDU // the next backing array of q
	err   error    // the first write error; later PDUs are dropped
	batch pduBatch
}

// cost is what a queued PDU counts against the limit.
func (o *outPDU) cost() int { return BHSLength + len(o.data) }

// push queues PDUs. When nobody is writing, the caller takes the writer
// role: with inline it returns true and must call writeQueued; otherwise
// the writer goroutine is woken for it. After close, PDUs are dropped.
func (q *sendQueue) push(items []outPDU, inline bool) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		for i := range items {
			items[i].free.release()
		}
		return false
	}
	q.q = append(q.q, items...)
	for i := range items {
		q.pending += items[i].cost()
	}
	if q.writing {
		q.mu.Unlock()
		return false
	}
	q.writing = true
	q.mu.Unlock()
	if inline {
		return true
	}
	// The role is held until the writer goroutine gives it up, so at most
	// one wake-up is ever pending and this send cannot block.
	q.wake <- struct{}{}
	return false
}

// take returns the queued PDUs, the previous batch having been written;
// when there are none the writer role is given up and take returns nil.
func (q *sendQueue) take() []outPDU {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.taken, q.pending = q.pending, 0
	if q.taken < q.limit {
		q.room.Broadcast()
	}
	if len(q.q) == 0 {
		q.writing = false
		if q.closed {
			close(q.idle)
		}
		return nil
	}
	batch := q.q
	q.q, q.spare = q.spare[:0], nil
	return batch
}

// waitRoom waits until fewer than limit bytes are queued and the running
// commands may produce less than readLimit bytes of data-in, or the queue
// is closed.
func (q *sendQueue) waitRoom() {
	q.mu.Lock()
	for (q.pending+q.taken >= q.limit || q.reads >= q.readLimit) && !q.closed {
		q.room.Wait()
	}
	q.mu.Unlock()
}

// addReads counts data-in that a command submitted (n > 0) may produce,
// or that a completed one no longer will (n < 0).
func (q *sendQueue) addReads(n int64) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	q.reads += n
	if n < 0 && q.reads < q.readLimit {
		q.room.Broadcast()
	}
	q.mu.Unlock()
}

// queued returns the bytes queued and being written.
func (q *sendQueue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending + q.taken
}

// close refuses further PDUs; idle is closed once what is queued has been
// written. With a non-zero flushBy, writes still to come must end by
// then.
func (q *sendQueue) close(nc net.Conn, flushBy time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.room.Broadcast()
	if !flushBy.IsZero() {
		q.flushBy = flushBy
		nc.SetWriteDeadline(flushBy)
	}
	if !q.writing {
		close(q.idle)
	}
}

// armWriteDeadline gives the next socket write the send timeout, or what
// is left of the flush time at close.
func (c *conn) armWriteDeadline() {
	q := &c.sq
	q.mu.Lock()
	defer q.mu.Unlock()
	d := time.Now().Add(c.srv.sendTimeout)
	if !q.flushBy.IsZero() && q.flushBy.Before(d) {
		d = q.flushBy
	}
	c.nc.SetWriteDeadline(d)
}

// writeLoop takes the writer role whenever the reader or the control loop
// passes it on.
func (c *conn) writeLoop() {
	defer c.workers.Done()
	for {
		select {
		case <-c.sq.wake:
			c.writeQueued()
		case <-c.quit:
			return
		}
	}
}

// writeQueued writes queued PDUs, one vectored write per batch, until the
// queue is empty; the caller holds the writer role and gives it up here.
// After a write error the connection is stopped and the remaining PDUs
// only return their buffers.
func (c *conn) writeQueued() {
	for !c.writeBatches() {
	}
}

// writeBatches is writeQueued's loop. It returns true once the writer
// role is given up; after a panic, recovered here, it returns false and
// the connection is stopped: the caller goes on, dropping what is queued,
// so the role is still given up and teardown is not kept waiting.
func (c *conn) writeBatches() (done bool) {
	q := &c.sq
	defer func() {
		if r := recover(); r != nil {
			q.err = c.panicked("writer", r)
			q.batch = pduBatch{}
			c.nc.Close()
			c.stop(q.err)
		}
	}()
	for {
		batch := q.take()
		if batch == nil {
			return true
		}
		if q.err == nil {
			c.at(hookWriter)
			for i := range batch {
				c.fr.appendPDU(&q.batch, &batch[i].bhs, batch[i].data)
			}
			if q.err = c.fr.writeBatch(&q.batch, c.nc, c.armWriteDeadline); q.err != nil {
				if errors.Is(q.err, os.ErrDeadlineExceeded) {
					q.err = dropConn("no write progress for %v: the initiator does not read", c.srv.sendTimeout)
				}
				c.nc.Close()
				c.stop(q.err)
			}
		}
		for i := range batch {
			batch[i].free.release()
		}
		clear(batch)
		q.spare = batch[:0]
	}
}

// flushOut hands the PDUs staged under c.mu to the send queue, keeping
// their StatSN order. With inline the caller may write them itself: it
// then gets true and calls writeQueued once c.mu is released.
func (c *conn) flushOut(inline bool) bool {
	if len(c.out) == 0 {
		return false
	}
	write := c.sq.push(c.out, inline)
	clear(c.out)
	c.out = c.out[:0]
	return write
}

// queue stages a target PDU with its opcode, flags and ITT; the pointer is
// valid until the next queue call.
func (c *conn) queue(op Opcode, flags byte, itt uint32) *outPDU {
	c.out = append(c.out, outPDU{})
	o := &c.out[len(c.out)-1]
	o.bhs[0] = byte(op)
	o.bhs[1] = flags
	o.put32(16, itt)
	return o
}

// stamp fills StatSN, ExpCmdSN and MaxCmdSN. A PDU that carries status
// takes the next StatSN; others show it without advancing it (RFC 7143
// 4.2.2.2).
func (c *conn) stamp(o *outPDU, status bool) {
	o.put32(OffStatSN, c.statSN)
	if status {
		c.statSN++
	}
	o.put32(OffExpCmdSN, c.expCmdSN)
	o.put32(OffMaxCmdSN, c.maxCmdSN)
}

// residuals of a command (RFC 7143 11.4.5): over/under for the data
// transfer (the write part of a bidirectional command), biOver/biUnder for
// the read part of a bidirectional command.
type residuals struct {
	over, under, biOver, biUnder uint32
}

// flags returns the o, u, O and U bits of a SCSI Response (RFC 7143
// 11.4.1), O and U alone for a Data-In (11.7.5).
func (r residuals) flags() byte {
	var f byte
	if r.biOver > 0 {
		f |= 0x10
	}
	if r.biUnder > 0 {
		f |= 0x08
	}
	if r.over > 0 {
		f |= 0x04
	}
	if r.under > 0 {
		f |= 0x02
	}
	return f
}

func (r residuals) count() uint32   { return r.over + r.under }
func (r residuals) biCount() uint32 { return r.biOver + r.biUnder }

// queueR2T stages an R2T (RFC 7143 11.8).
func (c *conn) queueR2T(t *task, r r2t, r2tSN uint32) {
	o := c.queue(OpR2T, 0x80, t.itt)
	if t.cmd.LUN != scsi.InvalidLUN {
		lun := scsi.EncodeLUN(t.cmd.LUN)
		copy(o.bhs[8:16], lun[:])
	}
	o.put32(OffTTT, r.ttt)
	c.stamp(o, false)
	o.put32(OffDataSN, r2tSN)
	o.put32(OffBufferOffset, r.seq.start)
	o.put32(OffDesiredDTL, r.seq.end-r.seq.start)
}

// Data-In flags (RFC 7143 11.7.1).
const (
	dataInFinal  = 0x80
	dataInStatus = 0x01
)

// queueDataIn stages the data-in of a command: PDUs of at most the
// initiator's MaxRecvDataSegmentLength, F at the end of every
// MaxBurstLength sequence, and with status the S bit and residuals on the
// last one.
func (c *conn) queueDataIn(t *task, data []byte, withStatus bool, res residuals) {
	maxSeg := int(min(c.p.MaxSendDataSegmentLength, c.p.MaxBurstLength))
	burst := int(c.p.MaxBurstLength)
	for off := 0; off < len(data); {
		seqEnd := min(off-off%burst+burst, len(data))
		n := min(maxSeg, seqEnd-off)
		last := off+n == len(data)
		var flags byte
		if off+n == seqEnd {
			flags |= dataInFinal
		}
		status := last && withStatus
		if status {
			flags |= dataInStatus | res.flags()&0x06
		}
		o := c.queue(OpDataIn, flags, t.itt)
		o.put32(OffTTT, ReservedTag)
		if status {
			o.bhs[3] = byte(t.cmd.Status)
			c.stamp(o, true)
			o.put32(OffResidual, res.count())
		} else {
			o.put32(OffExpCmdSN, c.expCmdSN)
			o.put32(OffMaxCmdSN, c.maxCmdSN)
		}
		o.put32(OffDataSN, t.sn)
		t.sn++
		o.put32(OffBufferOffset, uint32(off))
		o.data = data[off : off+n]
		if last {
			o.free, t.in = t.in, nil
		}
		off += n
	}
}

// queueStatus stages a SCSI Response (RFC 7143 11.4) with the sense data,
// if any, as its data segment.
func (c *conn) queueStatus(t *task, status scsi.Status, sense []byte, res residuals) {
	o := c.queue(OpSCSIResponse, 0x80|res.flags(), t.itt)
	o.bhs[2] = 0 // Command Completed at Target
	o.bhs[3] = byte(status)
	c.stamp(o, true)
	o.put32(36, t.sn) // ExpDataSN: Data-In and R2T PDUs sent for the task
	o.put32(40, res.biCount())
	o.put32(OffResidual, res.count())
	if len(sense) > 0 {
		d := make([]byte, 2+len(sense))
		binary.BigEndian.PutUint16(d, uint16(len(sense)))
		copy(d[2:], sense)
		o.data = d
	}
}

// queueReject stages a Reject carrying the rejected PDU's header (RFC 7143
// 11.17).
func (c *conn) queueReject(p *PDU, reason RejectReason) {
	o := c.queue(OpReject, 0x80, ReservedTag)
	o.bhs[2] = byte(reason)
	c.stamp(o, true)
	hdr := p.BHS
	o.data = hdr[:]
}
