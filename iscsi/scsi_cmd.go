package iscsi

import (
	"encoding/binary"
	"runtime"
	"slices"

	"github.com/odxtgt/odxtgt/scsi"
)

// SCSI Command PDU flags (RFC 7143 11.3.1).
const (
	cmdFlagRead  = 0x40
	cmdFlagWrite = 0x20
	cmdAttrMask  = 0x07
)

// AHS types (RFC 7143 11.2.2).
const (
	ahsExtendedCDB = 1
	ahsBidiReadLen = 2
)

// iSCSI conditions reported as sense data (RFC 7143 11.4.7.2).
const (
	ascUnexpectedUnsolicitedData scsi.ASC = 0x0C0C
	ascNotEnoughUnsolicitedData  scsi.ASC = 0x0C0D
	ascProtocolServiceCRCError   scsi.ASC = 0x4705
)

// dataSeq is one Data-Out sequence: the unsolicited data of a command or
// the answer to one R2T. Its DataSN starts at 0 (RFC 7143 11.7.5) and,
// with DataPDUInOrder=Yes, its buffer offsets follow on (RFC 7143 13.19).
type dataSeq struct {
	start  uint32 // first byte of the sequence
	end    uint32 // first byte after it
	next   uint32 // buffer offset expected next
	dataSN uint32 // DataSN expected next
}

// take checks a Data-Out of n bytes at off against the sequence and moves
// the sequence past it. Data outside the sequence, or out of place while
// its DataSN is in order, is a protocol error. An out-of-order DataSN
// (inOrder false) means, by RFC 7143 7.9, that earlier Data-Out PDUs were
// lost to digest errors: the caller fails the task as 7.8 says, and the
// sequence continues from this PDU.
func (s *dataSeq) take(itt, dataSN, off, n uint32) (inOrder bool, err error) {
	if off < s.start || uint64(off)+uint64(n) > uint64(s.end) {
		return false, rejectAndDrop(RejectProtocolError,
			"ITT %#x: Data-Out offset %d length %d outside the sequence %d-%d", itt, off, n, s.start, s.end)
	}
	inOrder = dataSN == s.dataSN
	if inOrder && off != s.next {
		return false, rejectAndDrop(RejectProtocolError,
			"ITT %#x: Data-Out DataSN %d at offset %d, want offset %d", itt, dataSN, off, s.next)
	}
	s.dataSN = dataSN + 1
	s.next = off + n
	return inOrder, nil
}

// r2t is one outstanding Ready To Transfer and the sequence answering it.
type r2t struct {
	ttt uint32
	seq dataSeq
}

// task is one SCSI command on a connection, from its SCSI Command PDU to
// its response. Guarded by the connection's mu, except cmd (and in) while
// the command runs.
type task struct {
	c         *conn
	gen       uint64 // bumped on reuse, so stale references can be told apart
	itt       uint32
	cmdSN     uint32
	immediate bool
	delivered bool // its CmdSN turn has come (always for immediate ones)
	submitted bool // handed to scsi.Submit
	claimed   bool // in the scope of a task management function: it gets no response
	read      bool
	write     bool
	edtl      uint32 // expected data-out length
	readLen   uint32 // expected data-in length
	cmd       scsi.Command
	cdb       [16]byte
	out       *buffer // data-out
	in        *buffer // pooled data-in, until handed to the writer

	// Unsolicited data: immediate data, then while unsolOpen Data-Out
	// with TTT ffffffff up to FirstBurstLength (RFC 7143 4.2.5.2).
	unsolOpen bool
	unsol     dataSeq

	// stalled: no Data-Out since the last data-out timeout tick.
	stalled bool

	nextR2T uint32 // first byte not yet asked for
	r2ts    []r2t
	sn      uint32 // next R2TSN / DataSN; they share one space (RFC 7143 11.7.5)

	// refused: the transport ends the command itself with failStatus
	// (and failure as sense for CHECK CONDITION) once its data is drained.
	refused    bool
	failStatus scsi.Status
	failure    *scsi.Sense
	// reserved is what the command holds of the data-out budget: the
	// length of out.
	reserved int64
	// dataIn is what the running command counts against the connection's
	// DataInLimit.
	dataIn int64

	alloc func(int) []byte
	done  func(*scsi.Command)
}

// newTask returns a cleared task, reusing a finished one when possible.
func (c *conn) newTask() *task {
	if n := len(c.free); n > 0 {
		t := c.free[n-1]
		c.free = c.free[:n-1]
		*t = task{c: c, gen: t.gen, alloc: t.alloc, done: t.done, r2ts: t.r2ts[:0]}
		return t
	}
	t := &task{c: c}
	t.alloc = t.allocDataIn
	t.done = t.completed
	return t
}

// allocDataIn is the command's Alloc: a pooled data-in buffer, returned to
// the pool once the writer has sent it.
func (t *task) allocDataIn(n int) []byte {
	b := getBuffer(n)
	t.in = b
	return b.b
}

// completed is the command's done callback, on the command's goroutine:
// the response is staged and, when nobody else is writing, written from
// here. No response goes out for an aborted command, nor for one a task
// management function claimed before its status went out: the function
// answers for it (RFC 7143 11.5.1), however the command itself ended.
func (t *task) completed(*scsi.Command) {
	c := t.c
	c.mu.Lock()
	c.submitted--
	c.sq.addReads(-t.dataIn)
	t.dataIn = 0
	write := c.finishTask(t)
	if c.reaping && c.submitted == 0 {
		close(c.lastDone)
	}
	busy := c.submitted > 0
	c.mu.Unlock()
	if write {
		if busy {
			// Other commands are running: let those ready to finish
			// queue their responses first, so one flush carries them all.
			runtime.Gosched()
		}
		c.writeQueued()
	}
}

// finishTask stages a completed command's response and recycles it; c.mu
// is held. A panic ends the connection, whose teardown and session end
// return what the task held. It reports whether the caller takes the
// writer role.
func (c *conn) finishTask(t *task) (write bool) {
	defer c.recoverLocked("command completion")
	c.at(hookCompletion)
	c.retire(t)
	if !t.cmd.Aborted && !t.claimed && c.ending == nil {
		c.queueResult(t)
	}
	c.recycle(t)
	if c.ending == nil {
		c.checkTMFs()
		c.checkDrained()
	}
	return c.flushOut(true)
}

// setFailure records why the command will be refused once its data is in.
func (t *task) setFailure(s *scsi.Sense) {
	t.refuse(scsi.StatusCheckCondition, s)
}

// refuse records that the transport ends the command itself with status
// and, for CHECK CONDITION, sense; the first refusal wins. The data-out
// buffer goes at once: what still arrives is drained.
func (t *task) refuse(status scsi.Status, s *scsi.Sense) {
	if !t.refused {
		t.refused, t.failStatus, t.failure = true, status, s
		t.c.dropData(t)
	}
}

// dataComplete reports whether no more data-out is expected.
func (t *task) dataComplete() bool {
	return !t.unsolOpen && len(t.r2ts) == 0 && (t.refused || t.nextR2T >= t.edtl)
}

// processSCSICommand handles a SCSI Command PDU (RFC 7143 11.3).
func (c *conn) processSCSICommand(p *PDU) error {
	if c.sess.discovery {
		c.consumeCmdSN(p)
		return reject(RejectCmdNotSupported, "SCSI command in a discovery session")
	}
	itt := p.ITT()
	if itt == ReservedTag {
		c.consumeCmdSN(p)
		return reject(RejectInvalidPDUField, "SCSI command with the reserved ITT")
	}
	if c.draining || c.loggingOut {
		// Shutting down: the initiator reissues it on its next session.
		return nil
	}
	imm := p.Immediate()
	sn := p.Uint32(OffCmdSN)
	verdict := admitNow
	if imm {
		if c.immediate >= maxImmediateTasks {
			return reject(RejectImmediateCmd, "%d immediate commands in progress", c.immediate)
		}
	} else if verdict = c.admit(sn); verdict == admitDrop {
		c.log.Debug("command outside the CmdSN window dropped", "cmdsn", sn, "exp_cmdsn", c.expCmdSN, "max_cmdsn", c.maxCmdSN)
		return nil
	}
	if c.tasks[itt] != nil {
		c.consumeCmdSN(p)
		return reject(RejectTaskInProgress, "ITT %#x is in use", itt)
	}
	t := c.newTask()
	if err := t.parseCommand(p); err != nil {
		c.free = append(c.free, t)
		c.consumeCmdSN(p)
		return err
	}
	c.tasks[itt] = t
	if imm {
		c.immediate++
		t.delivered = true
	} else {
		c.outstanding++
		if verdict == admitNow {
			c.expCmdSN++
			c.updateMaxCmdSN()
			t.delivered = true
		} else {
			c.held[sn] = heldRequest{kind: heldTask, t: t}
		}
	}
	c.startData(t, p)
	c.maybeRun(t)
	if !imm && verdict == admitNow {
		c.deliverHeld()
	}
	c.updateMaxCmdSN()
	return nil
}

// parseCommand fills the task from a SCSI Command PDU.
func (t *task) parseCommand(p *PDU) error {
	flags := p.Flags()
	t.itt = p.ITT()
	t.cmdSN = p.Uint32(OffCmdSN)
	t.immediate = p.Immediate()
	t.read = flags&cmdFlagRead != 0
	t.write = flags&cmdFlagWrite != 0
	edtl := p.Uint32(OffEDTL)
	copy(t.cdb[:], p.BHS[OffCDB:OffCDB+16])
	cdb := t.cdb[:]
	if t.write {
		t.edtl = edtl
		if t.read {
			t.readLen = 0 // unless the bidirectional AHS says otherwise
		}
	} else if t.read {
		t.readLen = edtl
	}
	for ahs := p.AHS; len(ahs) > 0; {
		if len(ahs) < 4 {
			return reject(RejectInvalidPDUField, "truncated AHS")
		}
		n := int(binary.BigEndian.Uint16(ahs))
		typ := ahs[2]
		total := 3 + n + padLen(3+n)
		if n == 0 || total > len(ahs) {
			return reject(RejectInvalidPDUField, "AHS length %d overruns TotalAHSLength", n)
		}
		body := ahs[4 : 3+n] // after the reserved byte
		switch typ {
		case ahsExtendedCDB:
			cdb = append(t.cdb[:16:16], body...)
		case ahsBidiReadLen:
			if n != 5 || !t.read || !t.write {
				return reject(RejectInvalidPDUField, "bidirectional read length AHS on a command that is not bidirectional")
			}
			t.readLen = binary.BigEndian.Uint32(body)
		default:
			return reject(RejectInvalidPDUField, "AHS type %d", typ)
		}
		ahs = ahs[total:]
	}
	lun, err := scsi.DecodeLUN(p.LUN())
	if err != nil {
		lun = scsi.InvalidLUN
	}
	t.cmd = scsi.Command{
		CDB:        cdb,
		LUN:        lun,
		Tag:        uint64(t.itt),
		Attr:       scsi.TaskAttr(flags & cmdAttrMask),
		Nexus:      t.c.sess.nexus,
		ExpectedIn: int(t.readLen),
		Alloc:      t.alloc,
	}
	return nil
}

// startData takes a command's immediate data and works out which data-out
// is still to come: unsolicited Data-Out up to FirstBurstLength, the rest
// through R2Ts (RFC 7143 4.2.5).
func (c *conn) startData(t *task, p *PDU) {
	imm := uint32(len(p.Data))
	if !t.write {
		if imm > 0 {
			t.setFailure(scsi.NewSense(scsi.AbortedCommand, ascUnexpectedUnsolicitedData).
				WithReason("immediate data on a command without the W bit"))
		}
		return
	}
	if t.edtl > scsi.MaxTransferBytes {
		// Refused without buffering; unsolicited data is still drained.
		t.setFailure(scsi.NewSense(scsi.IllegalRequest, scsi.ASCInvalidFieldInCommandIU).
			WithReason("expected data transfer length %d exceeds %d", t.edtl, scsi.MaxTransferBytes))
	}
	// FirstBurstLength bounds the unsolicited data, immediate data
	// included (RFC 7143 13.14), and no data-out goes beyond EDTL (RFC 7143
	// 11.3.4, 11.7.6). More immediate data than that is not stored: the
	// command ends with UNEXPECTED UNSOLICITED DATA (RFC 7143 11.4.7.2),
	// and every offset below is clipped to firstBurst, so no sequence
	// reaches past the buffer.
	firstBurst := min(c.p.FirstBurstLength, t.edtl)
	taken := min(imm, firstBurst)
	if imm > 0 && (!c.p.ImmediateData || imm > firstBurst) {
		t.setFailure(scsi.NewSense(scsi.AbortedCommand, ascUnexpectedUnsolicitedData).
			WithReason("%d bytes of immediate data, %d allowed", imm, firstBurst))
	}
	t.nextR2T = taken
	// With InitialR2T=No and F=0, unsolicited Data-Out follows up to
	// FirstBurstLength (RFC 7143 13.10, 13.14).
	if !c.p.InitialR2T && !p.Final() {
		t.unsolOpen = true
		t.unsol = dataSeq{start: taken, end: firstBurst, next: taken}
		t.nextR2T = firstBurst
	}
	c.growData(t)
	if t.out != nil {
		copy(t.out.b, p.Data[:taken])
	}
	c.issueR2Ts(t)
}

// growData gives a write command the buffer, and the budget reservation,
// its data-out needs so far: while it waits for its CmdSN only what the
// initiator may send unsolicited (at most FirstBurstLength, RFC 7143
// 13.14), all of EDTL once its turn has come and the rest is solicited.
// A reservation that does not fit refuses the command with TASK SET FULL
// (SAM-5 5.3.1), which initiators retry once other commands have ended;
// its unsolicited data is drained as for any refused command.
func (c *conn) growData(t *task) {
	if !t.write || t.refused {
		return
	}
	want := t.nextR2T // the unsolicited part
	if t.delivered {
		want = t.edtl
	}
	if int64(want) <= t.reserved {
		return
	}
	if !c.srv.dataOut.reserve(c.sess.share, int64(want)-t.reserved) {
		c.log.Debug("data-out budget exhausted", "itt", t.itt, "edtl", t.edtl, "want", want)
		c.srv.counters.dataOutRefused.Add(1)
		t.refuse(scsi.StatusTaskSetFull, nil)
		return
	}
	b := getBuffer(int(want))
	if t.out != nil {
		copy(b.b, t.out.b)
		t.out.release()
	}
	t.out, t.reserved = b, int64(want)
	t.cmd.DataOut = b.b
}

// dropData returns a task's data-out buffer and budget reservation.
func (c *conn) dropData(t *task) {
	t.out.release()
	t.out = nil
	t.cmd.DataOut = nil
	c.srv.dataOut.release(c.sess.share, t.reserved)
	t.reserved = 0
}

// deliverTask starts a held command whose CmdSN turn has come: its data
// is solicited now, then it runs once that is in.
func (c *conn) deliverTask(t *task) {
	t.delivered = true
	c.growData(t)
	c.issueR2Ts(t)
	c.maybeRun(t)
}

// issueR2Ts solicits the data still missing, up to MaxOutstandingR2T
// bursts of at most MaxBurstLength at a time (RFC 7143 13.17).
func (c *conn) issueR2Ts(t *task) {
	for t.delivered && !t.refused && len(t.r2ts) < int(c.p.MaxOutstandingR2T) && t.nextR2T < t.edtl {
		n := min(t.edtl-t.nextR2T, c.p.MaxBurstLength)
		c.nextTTT++
		if c.nextTTT == ReservedTag {
			c.nextTTT = 0
		}
		r := r2t{ttt: c.nextTTT, seq: dataSeq{start: t.nextR2T, end: t.nextR2T + n, next: t.nextR2T}}
		t.r2ts = append(t.r2ts, r)
		c.queueR2T(t, r, t.sn)
		t.sn++
		t.nextR2T += n
	}
}

// processDataOut handles a SCSI Data-Out PDU (RFC 7143 11.7). crcError
// says its data digest failed: the data is dropped but the sequence goes
// on.
func (c *conn) processDataOut(p *PDU, crcError bool) error {
	t := c.tasks[p.ITT()]
	if t == nil || t.submitted || !t.write {
		// Data for a task that is gone, aborted or finished; discard it.
		c.log.Debug("Data-Out for no task in progress discarded", "itt", p.ITT())
		return nil
	}
	t.stalled = false
	n := uint32(p.DataSegmentLength())
	ttt := p.Uint32(OffTTT)
	dataSN := p.Uint32(OffDataSN)
	off := p.Uint32(OffBufferOffset)
	var inOrder bool
	var err error
	if ttt == ReservedTag {
		if !t.unsolOpen {
			t.setFailure(scsi.NewSense(scsi.AbortedCommand, ascUnexpectedUnsolicitedData).
				WithReason("unsolicited Data-Out not allowed"))
			c.maybeRun(t)
			return nil
		}
		if t.refused {
			// The command fails whatever its data: the rest of the
			// unsolicited sequence is drained, unchecked and unstored,
			// until its F bit.
			if p.Final() {
				t.unsolOpen = false
			}
			c.maybeRun(t)
			return nil
		}
		if inOrder, err = t.unsol.take(t.itt, dataSN, off, n); err != nil {
			return err
		}
		if err := t.copyIn(off, p.Data, crcError || !inOrder); err != nil {
			return err
		}
		if p.Final() {
			t.unsolOpen = false
			if t.unsol.next < t.unsol.end {
				t.setFailure(scsi.NewSense(scsi.AbortedCommand, ascNotEnoughUnsolicitedData).
					WithReason("%d bytes of unsolicited data, %d expected", t.unsol.next, t.unsol.end))
			}
		}
	} else {
		i := slices.IndexFunc(t.r2ts, func(r r2t) bool { return r.ttt == ttt })
		if i < 0 {
			return rejectAndDrop(RejectInvalidPDUField, "Data-Out TTT %#x matches no R2T of ITT %#x", ttt, t.itt)
		}
		seq := &t.r2ts[i].seq
		if inOrder, err = seq.take(t.itt, dataSN, off, n); err != nil {
			return err
		}
		if err := t.copyIn(off, p.Data, crcError || !inOrder); err != nil {
			return err
		}
		if p.Final() {
			if seq.next != seq.end {
				return rejectAndDrop(RejectProtocolError, "ITT %#x: F bit at offset %d, the R2T asked for %d-%d",
					t.itt, seq.next, seq.start, seq.end)
			}
			t.r2ts = slices.Delete(t.r2ts, i, i+1)
			c.issueR2Ts(t)
		}
	}
	switch {
	case crcError:
		t.setFailure(scsi.NewSense(scsi.AbortedCommand, ascProtocolServiceCRCError).
			WithReason("Data-Out data digest error"))
	case !inOrder:
		// RFC 7143 7.9: an out-of-order DataSN stands for Data-Out PDUs
		// lost to digest errors. At ErrorRecoveryLevel 0 the task ends,
		// once all its data is in, with CHECK CONDITION, PROTOCOL SERVICE
		// CRC ERROR (RFC 7143 7.8).
		c.log.Warn("Data-Out DataSN out of order", "itt", t.itt, "ttt", ttt, "datasn", dataSN, "offset", off)
		t.setFailure(scsi.NewSense(scsi.AbortedCommand, ascProtocolServiceCRCError).
			WithReason("Data-Out DataSN %d out of order", dataSN))
	}
	c.maybeRun(t)
	return nil
}

// awaitingData reports whether the command waits for Data-Out the
// initiator has been allowed or asked to send.
func (t *task) awaitingData() bool {
	return !t.submitted && (t.unsolOpen || len(t.r2ts) > 0)
}

// checkDataOut runs every DataOutTimeout: a command that has waited for
// Data-Out through a whole period without receiving any ends, so data an
// initiator announces (EDTL, F=0) and withholds cannot hold the budget.
// At ErrorRecoveryLevel 0 the data cannot be asked for again; the command
// ends with CHECK CONDITION, ABORTED COMMAND and the iSCSI condition
// "incorrect amount of data" (RFC 7143 11.4.7.2), and the connection goes
// on.
func (c *conn) checkDataOut() {
	for _, t := range c.tasks {
		switch {
		case !t.awaitingData():
			t.stalled = false
		case !t.stalled:
			t.stalled = true
		default:
			c.log.Warn("no Data-Out for a write", "itt", t.itt, "edtl", t.edtl, "timeout", c.srv.dataOutTimeout)
			t.setFailure(scsi.NewSense(scsi.AbortedCommand, ascNotEnoughUnsolicitedData).
				WithReason("no Data-Out for %v", c.srv.dataOutTimeout))
			t.unsolOpen = false
			t.r2ts = t.r2ts[:0]
			c.maybeRun(t)
		}
	}
}

// copyIn stores data-out at its buffer offset unless the data is known to
// be bad. The caller has checked the range against the sequence, which
// lies within EDTL; the buffer is checked again all the same, so no
// sequence bookkeeping error can index past it.
func (t *task) copyIn(off uint32, data []byte, bad bool) error {
	if t.out == nil || bad {
		return nil
	}
	if uint64(off)+uint64(len(data)) > uint64(len(t.out.b)) {
		return rejectAndDrop(RejectProtocolError, "ITT %#x: Data-Out offset %d length %d beyond the %d-byte buffer",
			t.itt, off, len(data), len(t.out.b))
	}
	copy(t.out.b[off:], data)
	return nil
}

// maybeRun submits the command once its CmdSN turn has come and its data
// is in, or refuses it when the transport already knows it fails.
func (c *conn) maybeRun(t *task) {
	if t.submitted || !t.delivered || !t.dataComplete() {
		return
	}
	if t.refused {
		c.retire(t)
		var sense []byte
		if t.failure != nil {
			c.log.Warn("command refused", "itt", t.itt, "cdb0", t.cdb[0], "sense", t.failure.Error())
			sense = t.failure.Encode(c.dSense(t))
		}
		c.queueStatus(t, t.failStatus, sense, residuals{})
		c.recycle(t)
		return
	}
	// Counted once Submit returns: the completion cannot run before c.mu
	// is released, and a Submit that panics leaves nothing to wait for.
	scsi.Submit(&t.cmd, t.done)
	t.submitted = true
	c.submitted++
	t.dataIn = int64(min(t.readLen, scsi.MaxTransferBytes))
	c.sq.addReads(t.dataIn)
}

// dSense reports whether the addressed logical unit wants descriptor
// format sense data.
func (c *conn) dSense(t *task) bool {
	return c.sess.nexus.LU(t.cmd.LUN).Mode().DSense
}

// retire removes a task from the connection's bookkeeping and opens the
// command window.
func (c *conn) retire(t *task) {
	if c.tasks[t.itt] != t {
		return
	}
	delete(c.tasks, t.itt)
	if t.immediate {
		c.immediate--
	} else {
		c.outstanding--
		if !t.delivered {
			c.held[t.cmdSN] = heldRequest{kind: heldConsumed}
		}
	}
	c.updateMaxCmdSN()
}

// recycle returns a retired task's buffers and keeps it for reuse.
func (c *conn) recycle(t *task) {
	c.dropData(t)
	t.in.release()
	t.in = nil
	t.cmd = scsi.Command{}
	t.failure, t.refused = nil, false
	t.gen++
	c.free = append(c.free, t)
}

// releaseTask drops a task that will get no response.
func (c *conn) releaseTask(t *task) {
	c.retire(t)
	c.recycle(t)
}

// queueResult sends a finished command's data-in and status: Data-In PDUs
// in sequences of MaxBurstLength, status in the last one when there is no
// sense data (RFC 7143 11.7.4), otherwise a SCSI Response; residuals per
// RFC 7143 11.4.5.
func (c *conn) queueResult(t *task) {
	cmd := &t.cmd
	data := cmd.DataIn
	var over, under uint32   // data-in residual
	var wOver, wUnder uint32 // data-out residual
	if len(data) > int(t.readLen) {
		over = uint32(len(data)) - t.readLen
		data = data[:t.readLen]
	} else if t.read && (cmd.Status != scsi.StatusCheckCondition || len(data) > 0) {
		under = t.readLen - uint32(len(data))
	}
	if t.write && (cmd.DataOutLength > 0 || cmd.Status != scsi.StatusCheckCondition) {
		spdtl := uint32(min(cmd.DataOutLength, 1<<32-1))
		if spdtl > t.edtl {
			wOver = spdtl - t.edtl
		} else {
			wUnder = t.edtl - spdtl
		}
	}
	var res residuals
	switch {
	case t.read && t.write:
		res = residuals{over: wOver, under: wUnder, biOver: over, biUnder: under}
	case t.write:
		res = residuals{over: wOver, under: wUnder}
	default:
		res = residuals{over: over, under: under}
	}
	good := cmd.Status == scsi.StatusGood || cmd.Status == scsi.StatusConditionMet
	if len(data) > 0 {
		c.queueDataIn(t, data, good, res)
		if good {
			return
		}
	}
	c.queueStatus(t, cmd.Status, cmd.Sense, res)
}
