package iscsi

import "slices"

// pingState tracks the target's NOP-In pings of an idle initiator.
type pingState struct {
	pending bool
	ttt     uint32
	rxAt    uint64 // the connection's PDU count when the timer was armed
}

// processNOPOut handles a NOP-Out (RFC 7143 11.18): a ping to answer, or
// (ITT ffffffff) the answer to the target's ping, which gets no reply.
func (c *conn) processNOPOut(p *PDU) error {
	ttt := p.Uint32(OffTTT)
	if p.ITT() == ReservedTag {
		if !p.Immediate() {
			return reject(RejectInvalidPDUField, "NOP-Out with the reserved ITT must be immediate")
		}
		if ttt != ReservedTag && c.ping.pending && ttt == c.ping.ttt {
			c.ping.pending = false
			c.armIdle()
		}
		return nil
	}
	if ttt != ReservedTag {
		c.consumeCmdSN(p)
		return reject(RejectInvalidPDUField, "NOP-Out ping with TTT %#x", ttt)
	}
	return c.processOrdered(p)
}

// answerPing answers a NOP-Out ping with a NOP-In echoing its data, cut to
// what the initiator accepts.
func (c *conn) answerPing(p *PDU) error {
	o := c.queue(OpNOPIn, 0x80, p.ITT())
	copy(o.bhs[8:16], p.BHS[8:16])
	o.put32(OffTTT, ReservedTag)
	c.stamp(o, true)
	if len(p.Data) > 0 {
		o.data = slices.Clone(p.Data[:min(len(p.Data), int(c.p.MaxSendDataSegmentLength))])
	}
	return nil
}

// nopTimer runs when the NOP timer fires: after NOPInInterval without a
// PDU from the initiator it sends a NOP-In ping (TTT not ffffffff, which
// asks for an answer); after NOPInTimeout more without one, the initiator
// is gone and the connection is dropped.
func (c *conn) nopTimer() {
	idle := c.rxCount == c.ping.rxAt
	switch {
	case c.ping.pending && idle:
		c.srv.counters.nopTimeouts.Add(1)
		c.end(errNOPTimeout, false)
	case !idle:
		c.ping.pending = false
		c.armIdle()
	default:
		c.nextTTT++
		if c.nextTTT == ReservedTag {
			c.nextTTT = 0
		}
		c.ping = pingState{pending: true, ttt: c.nextTTT, rxAt: c.rxCount}
		o := c.queue(OpNOPIn, 0x80, ReservedTag)
		o.put32(OffTTT, c.ping.ttt)
		c.stamp(o, false)
		c.timer.Reset(c.srv.nopTimeout)
	}
}

// armIdle restarts the idle period.
func (c *conn) armIdle() {
	c.ping.rxAt = c.rxCount
	c.timer.Reset(c.srv.nopInterval)
}
