package iscsi

import (
	"errors"
	"slices"
)

// readLoop reads PDUs and processes each under c.mu as it arrives. The
// framer reuses its buffers, so nothing is allocated per PDU; what must
// outlive the turn is copied.
func (c *conn) readLoop() {
	defer c.workers.Done()
	var p PDU
	for {
		// Backpressure: an initiator that does not read its answers is
		// not read either.
		c.sq.waitRoom()
		err := c.readPDU(&p)
		c.mu.Lock()
		if c.ending == nil {
			c.receive(&p, err)
		}
		done := c.ending != nil
		c.mu.Unlock()
		if done || !inStep(err) {
			return
		}
	}
}

// readPDU reads the next PDU; a panic in the codec is an error that ends
// the connection.
func (c *conn) readPDU(p *PDU) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = c.panicked("reader", r)
		}
	}()
	return c.fr.ReadPDUInto(p)
}

// receive processes a PDU, or the error reading it, with c.mu held.
func (c *conn) receive(p *PDU, err error) {
	defer c.recoverLocked("reader")
	c.rxCount++
	c.at(hookReader)
	c.handleRx(p, err)
	c.checkDrained()
	c.flushOut(false)
}

// inStep reports whether the stream is still usable after a read error.
func inStep(err error) bool {
	if err == nil {
		return true
	}
	var dd *DataDigestError
	var tl *DataSegmentTooLongError
	return errors.As(err, &dd) || errors.As(err, &tl)
}

// handleRx processes a PDU, or the error reading it.
func (c *conn) handleRx(p *PDU, err error) {
	if err == nil {
		if err := c.dispatch(p); err != nil {
			c.fail(p, err)
		}
		return
	}
	var dd *DataDigestError
	var tl *DataSegmentTooLongError
	switch {
	case errors.As(err, &dd):
		c.dataDigestError(p)
	case errors.As(err, &tl):
		// RFC 7143 13.12: a data segment beyond MaxRecvDataSegmentLength is
		// a protocol error. A lost Data-Out leaves its task unfinishable.
		if p.Opcode() == OpDataOut {
			c.fail(p, rejectAndDrop(RejectProtocolError, "%v", err))
			return
		}
		c.consumeCmdSN(p)
		c.fail(p, reject(RejectProtocolError, "%v", err))
	case errors.Is(err, ErrHeaderDigest):
		// RFC 7143 7.8: PDU boundaries are lost; close the connection.
		c.end(dropConn("header digest error"), false)
	default:
		c.end(err, false)
	}
}

// dataDigestError handles a PDU whose data digest failed (RFC 7143 7.8):
// it is rejected and discarded. A Data-Out still counts towards its
// sequence, and its task ends with CHECK CONDITION, PROTOCOL SERVICE CRC
// ERROR once all its data has arrived (ERL 0 cannot ask for it again). A
// command or other PDU is simply dropped without using its CmdSN: the
// initiator retries it (RFC 7143 7.2.1).
func (c *conn) dataDigestError(p *PDU) {
	c.log.Warn("data digest error", "opcode", p.Opcode().String(), "itt", p.ITT())
	c.queueReject(p, RejectDataDigest)
	if p.Opcode() == OpDataOut {
		if err := c.processDataOut(p, true); err != nil {
			c.fail(p, err)
		}
	}
}

// dispatch processes one well-formed PDU.
func (c *conn) dispatch(p *PDU) error {
	switch p.Opcode() {
	case OpSCSICommand:
		return c.processSCSICommand(p)
	case OpDataOut:
		return c.processDataOut(p, false)
	case OpNOPOut:
		return c.processNOPOut(p)
	case OpTaskMgmtReq, OpTextReq, OpLogoutReq:
		return c.processOrdered(p)
	case OpSNACKReq:
		// SNACK needs ErrorRecoveryLevel > 0, which odxtgt never
		// negotiates (RFC 7143 11.16).
		return reject(RejectProtocolError, "SNACK at ErrorRecoveryLevel 0")
	case OpLoginReq:
		return reject(RejectProtocolError, "Login Request in full feature phase")
	default:
		return reject(RejectCmdNotSupported, "opcode %s", p.Opcode())
	}
}

// heldKind says what waits in a CmdSN slot ahead of ExpCmdSN.
type heldKind uint8

const (
	heldConsumed heldKind = iota // slot used up: a rejected or aborted command
	heldTask                     // a SCSI command, collecting data meanwhile
	heldCopy                     // a copy of another non-immediate request
)

// heldRequest is a non-immediate request that arrived ahead of ExpCmdSN.
type heldRequest struct {
	kind heldKind
	t    *task
	bhs  [BHSLength]byte
	data []byte
}

// admission is what the CmdSN window says about a non-immediate request.
type admission uint8

const (
	admitDrop admission = iota // outside the window: dropped silently
	admitNow                   // CmdSN == ExpCmdSN
	admitHold                  // in the window, ahead of ExpCmdSN
)

// snLess compares sequence numbers in serial number arithmetic (RFC 1982,
// RFC 7143 4.2.2.1).
func snLess(a, b uint32) bool { return int32(a-b) < 0 }

// admit checks a non-immediate request's CmdSN against the window: one
// outside ExpCmdSN..MaxCmdSN, or a duplicate, is dropped without a
// response (RFC 7143 4.2.2.1).
func (c *conn) admit(sn uint32) admission {
	if snLess(sn, c.expCmdSN) || snLess(c.maxCmdSN, sn) {
		return admitDrop
	}
	if sn == c.expCmdSN {
		return admitNow
	}
	if _, dup := c.held[sn]; dup {
		return admitDrop
	}
	return admitHold
}

// advance moves ExpCmdSN past the request just delivered and delivers the
// held requests that now come in order.
func (c *conn) advance() {
	c.expCmdSN++
	c.deliverHeld()
}

// deliverHeld delivers the held requests from ExpCmdSN on, in order.
func (c *conn) deliverHeld() {
	for c.ending == nil {
		h, ok := c.held[c.expCmdSN]
		if !ok {
			break
		}
		delete(c.held, c.expCmdSN)
		c.expCmdSN++
		switch h.kind {
		case heldTask:
			c.deliverTask(h.t)
		case heldCopy:
			c.heldBytes -= len(h.data)
			p := &PDU{BHS: h.bhs, Data: h.data}
			if err := c.deliver(p); err != nil {
				c.fail(p, err)
			}
		}
	}
	c.updateMaxCmdSN()
}

// consumeCmdSN uses up the CmdSN of a non-immediate request that is
// rejected, so later commands are not held behind it.
func (c *conn) consumeCmdSN(p *PDU) {
	if p.Immediate() || !carriesCmdSN(p) {
		return
	}
	sn := p.Uint32(OffCmdSN)
	switch c.admit(sn) {
	case admitNow:
		c.advance()
	case admitHold:
		c.held[sn] = heldRequest{kind: heldConsumed}
	}
}

// carriesCmdSN reports whether a request takes part in command numbering.
func carriesCmdSN(p *PDU) bool {
	switch p.Opcode() {
	case OpSCSICommand, OpTaskMgmtReq, OpTextReq, OpLogoutReq:
		return true
	case OpNOPOut:
		return p.ITT() != ReservedTag
	}
	return false
}

// updateMaxCmdSN opens the window as tasks finish: MaxCmdSN is ExpCmdSN-1
// plus the free command slots. It never goes back (RFC 7143 4.2.2.1).
func (c *conn) updateMaxCmdSN() {
	m := c.expCmdSN - 1 + uint32(max(cmdWindow-c.outstanding, 0))
	if snLess(c.maxCmdSN, m) {
		c.maxCmdSN = m
	}
}

// processOrdered handles Task Management, Text and Logout requests and
// NOP-Out pings: immediate ones at once, others in CmdSN order.
func (c *conn) processOrdered(p *PDU) error {
	if p.Immediate() {
		return c.deliver(p)
	}
	sn := p.Uint32(OffCmdSN)
	switch c.admit(sn) {
	case admitDrop:
		c.log.Debug("request outside the CmdSN window dropped", "opcode", p.Opcode().String(), "cmdsn", sn,
			"exp_cmdsn", c.expCmdSN, "max_cmdsn", c.maxCmdSN)
	case admitHold:
		if c.heldBytes+len(p.Data) > maxHeldBytes {
			c.consumeCmdSN(p)
			return reject(RejectLongOp, "%d bytes of requests already wait for their CmdSN", c.heldBytes)
		}
		c.heldBytes += len(p.Data)
		c.held[sn] = heldRequest{kind: heldCopy, bhs: p.BHS, data: slices.Clone(p.Data)}
	case admitNow:
		// ExpCmdSN counts the request as received before its answer goes
		// out.
		c.expCmdSN++
		c.updateMaxCmdSN()
		err := c.deliver(p)
		c.deliverHeld()
		return err
	}
	return nil
}

// deliver runs a Task Management, Text, Logout or NOP-Out request whose
// turn has come.
func (c *conn) deliver(p *PDU) error {
	switch p.Opcode() {
	case OpTaskMgmtReq:
		return c.processTaskMgmt(p)
	case OpTextReq:
		return c.processText(p)
	case OpLogoutReq:
		return c.processLogout(p)
	default:
		return c.answerPing(p)
	}
}
