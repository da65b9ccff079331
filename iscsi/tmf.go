package iscsi

import (
	"slices"

	"github.com/odxtgt/odxtgt/scsi"
)

// Task management function codes (RFC 7143 11.5.1; 9-12 from RFC 7144
// 3.3).
const (
	tmfAbortTask       = 1
	tmfAbortTaskSet    = 2
	tmfClearACA        = 3
	tmfClearTaskSet    = 4
	tmfLUReset         = 5
	tmfTargetWarmReset = 6
	tmfTargetColdReset = 7
	tmfTaskReassign    = 8
	tmfQueryTask       = 9
	tmfQueryTaskSet    = 10
	tmfITNexusReset    = 11
	tmfQueryAsyncEvent = 12
	offReferencedTag   = 20
	offRefCmdSN        = 32
)

// Task management response codes (RFC 7143 11.6.1, RFC 7144 3.4).
const (
	tmfRespComplete             = 0
	tmfRespNoTask               = 1
	tmfRespNoLUN                = 2
	tmfRespReassignNotSupported = 4
	tmfRespNotSupported         = 5
	tmfRespSucceeded            = 7
)

// taskRef names a task at one point of its life; a reused task has a new
// generation.
type taskRef struct {
	t   *task
	gen uint64
}

// tmfRequest is a task management function (or a logout) in progress. Its
// response waits until the abort work has returned and every affected
// task's completion has been processed, so no SCSI Response for an
// aborted task can follow it.
type tmfRequest struct {
	itt      uint32
	response byte
	running  bool // the abort work is still going on
	waitFor  []taskRef
	cold     bool // TARGET COLD RESET: drop the target's connections after the response
	logout   bool // a Logout Request, answered with a Logout Response
}

// processTaskMgmt handles a Task Management Function Request (RFC 7143
// 11.5).
func (c *conn) processTaskMgmt(p *PDU) error {
	if c.sess.discovery {
		return reject(RejectCmdNotSupported, "task management in a discovery session")
	}
	fn := p.Flags() & 0x7F
	if err := c.tmfRoom(p); err != nil {
		return err
	}
	tm := &tmfRequest{itt: p.ITT()}
	nexus := c.sess.nexus
	lun, err := scsi.DecodeLUN(p.LUN())
	lu := nexus.LU(lun)
	if err != nil || !lu.Present() {
		lu = nil
	}
	onLUN := func(t *task) bool { return t.cmd.LUN == lun }
	rtt := p.Uint32(offReferencedTag)
	switch fn {
	case tmfAbortTask:
		t := c.tasks[rtt]
		if t == nil {
			tm.response = c.abortMissing(p)
			break
		}
		// The logical unit the command was submitted to, not the one
		// its LUN maps now: a reload may have changed the map since.
		target := t.cmd.LU()
		c.abortScope(tm, func(x *task) bool { return x == t }, func() {
			if target != nil {
				target.AbortTask(nexus, uint64(rtt))
			}
		})
		return nil
	case tmfAbortTaskSet, tmfClearTaskSet, tmfLUReset:
		if lu == nil {
			tm.response = tmfRespNoLUN
			break
		}
		former := c.formerLUs(onLUN, func(x *scsi.LU) bool { return x == lu })
		var work func()
		switch fn {
		case tmfAbortTaskSet:
			work = func() { lu.AbortTaskSet(nexus) }
		case tmfClearTaskSet:
			work = func() { lu.ClearTaskSet(nexus) }
		default:
			work = func() { lu.Reset(scsi.ASCBusDeviceResetFunctionOccurred) }
		}
		c.abortScope(tm, onLUN, func() {
			for _, old := range former {
				old.AbortTaskSet(nexus)
			}
			work()
		})
		return nil
	case tmfTargetWarmReset, tmfTargetColdReset:
		// Every logical unit of the target is reset (SAM-5 7.12), as
		// far as this initiator may reach it: one whose ACL maps only
		// some of the target's logical units cannot reset the others,
		// which it cannot address either (RFC 7143 11.5.1 lets a target
		// refuse a reset it does not authorize; it is narrowed instead).
		lus := nexus.LogicalUnits()
		former := c.formerLUs(func(*task) bool { return true }, func(x *scsi.LU) bool { return slices.Contains(lus, x) })
		tm.cold = fn == tmfTargetColdReset
		c.abortScope(tm, func(*task) bool { return true }, func() {
			for _, old := range former {
				old.AbortTaskSet(nexus)
			}
			for _, lu := range lus {
				lu.Reset(scsi.ASCPowerOnResetOrBusDeviceReset)
			}
		})
		return nil
	case tmfQueryTask:
		tm.response = tmfRespComplete
		if t := c.tasks[rtt]; t != nil && onLUN(t) {
			tm.response = tmfRespSucceeded
		}
	case tmfQueryTaskSet:
		tm.response = tmfRespComplete
		for _, t := range c.tasks {
			if onLUN(t) {
				tm.response = tmfRespSucceeded
				break
			}
		}
	case tmfTaskReassign:
		// Task reassignment needs ErrorRecoveryLevel 2.
		tm.response = tmfRespReassignNotSupported
	case tmfClearACA, tmfITNexusReset, tmfQueryAsyncEvent:
		// ACA is never established (NACA=1 is refused); the other two
		// are not implemented.
		tm.response = tmfRespNotSupported
	default:
		tm.response = tmfRespNotSupported
	}
	c.queueTMFResponse(tm)
	return nil
}

// formerLUs returns the logical units that submitted tasks match selects
// run on, other than those current accepts: where their LUN pointed
// before a reload changed the map. They are this nexus's tasks there, and
// a task management function aborts them with ABORT TASK SET, which no
// other nexus sees, rather than leave its response waiting for them.
func (c *conn) formerLUs(match func(*task) bool, current func(*scsi.LU) bool) []*scsi.LU {
	var out []*scsi.LU
	for _, t := range c.tasks {
		if lu := t.cmd.LU(); t.submitted && match(t) && lu != nil && !current(lu) && !slices.Contains(out, lu) {
			out = append(out, lu)
		}
	}
	return out
}

// tmfRoom refuses a task management function or logout while maxTMFs
// are in progress.
func (c *conn) tmfRoom(p *PDU) error {
	if len(c.tmfs) < maxTMFs {
		return nil
	}
	reason := RejectLongOp
	if p.Immediate() {
		reason = RejectImmediateCmd
	}
	return reject(reason, "%d task management functions in progress", len(c.tmfs))
}

// abortMissing answers ABORT TASK for a tag with no task (RFC 7143
// 11.5.1): if its RefCmdSN is in the window and older than the request,
// the command may still be on its way; that CmdSN counts as received, the
// command is never run, and the answer is Function Complete. Otherwise
// the task does not exist.
func (c *conn) abortMissing(p *PDU) byte {
	ref := p.Uint32(offRefCmdSN)
	sn := p.Uint32(OffCmdSN)
	if snLess(ref, c.expCmdSN) || snLess(c.maxCmdSN, ref) || !snLess(ref, sn) {
		return tmfRespNoTask
	}
	if ref == c.expCmdSN {
		c.advance()
	} else if _, ok := c.held[ref]; !ok {
		c.held[ref] = heldRequest{kind: heldConsumed}
	}
	return tmfRespComplete
}

// abortScope aborts the connection's tasks that match: those not yet
// handed to scsi are dropped here, the others are aborted by work, which
// runs on its own goroutine, without c.mu, because the scsi abort calls
// wait for the aborted commands to end.
func (c *conn) abortScope(tm *tmfRequest, match func(*task) bool, work func()) {
	for _, t := range c.tasks {
		if !match(t) {
			continue
		}
		if t.submitted {
			// The command may already have finished, its completion not
			// yet processed; it is aborted all the same, so no SCSI
			// Response can contradict the function's answer.
			t.claimed = true
			tm.waitFor = append(tm.waitFor, taskRef{t, t.gen})
		} else {
			c.releaseTask(t)
		}
	}
	tm.running = true
	c.tmfs = append(c.tmfs, tm)
	c.workers.Add(1)
	go c.runTMF(tm, work)
}

// runTMF runs a task management function's work and then answers the
// functions that are ready; a panic ends the connection.
func (c *conn) runTMF(tm *tmfRequest, work func()) {
	defer c.workers.Done()
	if !c.tmfWork(work) {
		return
	}
	c.mu.Lock()
	write := c.tmfDone(tm)
	c.mu.Unlock()
	if write {
		c.writeQueued()
	}
}

// tmfWork runs the abort work without c.mu; it reports false after a
// panic.
func (c *conn) tmfWork(work func()) (ok bool) {
	defer c.recoverUnlocked("task management")
	c.at(hookTMF)
	work()
	return true
}

// tmfDone records that tm's work has returned and answers what is ready;
// c.mu is held. It reports whether the caller takes the writer role.
func (c *conn) tmfDone(tm *tmfRequest) (write bool) {
	defer c.recoverLocked("task management")
	tm.running = false
	if c.ending == nil {
		c.checkTMFs()
	}
	return c.flushOut(true)
}

// checkTMFs answers the functions whose work is done and whose affected
// tasks have all been retired.
func (c *conn) checkTMFs() {
	kept := c.tmfs[:0]
	for _, tm := range c.tmfs {
		if tm.running || !tm.allRetired() {
			kept = append(kept, tm)
			continue
		}
		c.queueTMFResponse(tm)
	}
	clear(c.tmfs[len(kept):])
	c.tmfs = kept
}

func (tm *tmfRequest) allRetired() bool {
	for _, r := range tm.waitFor {
		if r.t.gen == r.gen {
			return false
		}
	}
	return true
}

// queueTMFResponse stages the response to a task management function or
// logout, and ends the connection where the function says so.
func (c *conn) queueTMFResponse(tm *tmfRequest) {
	if tm.logout {
		c.queueLogoutResponse(tm.itt, logoutSuccess)
		c.end(errLogout, true)
		return
	}
	o := c.queue(OpTaskMgmtResp, 0x80, tm.itt)
	o.bhs[2] = tm.response
	c.stamp(o, true)
	if tm.cold {
		// TARGET COLD RESET: the response goes out, then every
		// connection to the target is dropped (RFC 7143 11.5.1).
		c.end(errColdReset, true)
		for _, s := range c.srv.targetSessions(c.sess.targetName) {
			if s != c.sess {
				s.conn.stop(errColdReset)
			}
		}
	}
}
