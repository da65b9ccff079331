package initiator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"sync"
	"sync/atomic"

	"github.com/odxtgt/odxtgt/iscsi"
)

// Session is one logged-in iSCSI session on a single connection. Its
// methods may be called from many goroutines at once.
type Session struct {
	cfg        Config
	conn       net.Conn
	fr         *iscsi.Framer
	isid       [6]byte
	tsih       uint16
	params     opParams
	negotiated map[string]string

	// sendMu serializes writes to the connection; it is taken before mu.
	sendMu sync.Mutex

	mu         sync.Mutex
	cmdSN      uint32 // CmdSN of the next non-immediate request
	expCmdSN   uint32
	maxCmdSN   uint32
	expStatSN  uint32
	windowCh   chan struct{} // closed (and replaced) when MaxCmdSN grows
	tasks      map[uint32]*task
	watchers   map[uint32]*Watcher
	readerDone bool
	violations []error
	err        error

	itt       atomic.Uint32
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// task is one outstanding request. The reader goroutine alone changes
// its state after registration; waiters read it once done is closed.
type task struct {
	itt   uint32
	cmdSN uint32
	op    iscsi.Opcode // request opcode
	lun   uint64
	done  chan struct{}
	err   error       // first error seen
	pdu   *iscsi.PDU  // final response of a non-SCSI request (copy)
	resp  *Response   // SCSI result
	tmf   *tmfRequest // task management bookkeeping

	// SCSI data-in.
	readLen    int
	buf        []byte
	inBytes    int // data-in bytes received
	inEnd      int // end of the highest data-in received
	nextDataSN uint32

	// SCSI data-out.
	dataOut     []byte
	unsolicited int    // bytes sent without R2T (immediate and unsolicited)
	solicited   int    // bytes requested by R2Ts
	nextR2TSN   uint32 // reader side
	outstanding atomic.Int32
	r2ts        chan r2tRequest
}

type r2tRequest struct {
	ttt       uint32
	off, size int
}

func (t *task) fail(err error) {
	if t.err == nil {
		t.err = err
	}
}

func newSession(conn net.Conn, cfg Config) *Session {
	s := &Session{
		cfg:      cfg,
		conn:     conn,
		fr:       iscsi.NewFramer(conn, conn),
		windowCh: make(chan struct{}),
		tasks:    map[uint32]*task{},
		watchers: map[uint32]*Watcher{},
		done:     make(chan struct{}),
		cmdSN:    cfg.InitialCmdSN,
	}
	return s
}

// NewITT returns an Initiator Task Tag not used by any other request of
// this session; never the reserved value FFFFFFFFh.
func (s *Session) NewITT() uint32 {
	for {
		if v := s.itt.Add(1); v != iscsi.ReservedTag {
			return v
		}
	}
}

// Negotiated returns the operational values in effect: what login
// settled, defaults for keys it did not touch, the target-declared keys
// (TargetPortalGroupTag, TargetAlias) and the target's
// MaxRecvDataSegmentLength under TargetMaxRecvDataSegmentLengthKey.
func (s *Session) Negotiated() map[string]string { return maps.Clone(s.negotiated) }

// ISID returns the session's ISID.
func (s *Session) ISID() [6]byte { return s.isid }

// TSIH returns the target-assigned session identifying handle.
func (s *Session) TSIH() uint16 { return s.tsih }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, nil while it is up.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Violations returns the target protocol errors seen outside any command
// (sequence numbers, PDUs for unknown tasks, unexpected opcodes).
func (s *Session) Violations() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.violations...)
}

func (s *Session) violate(op iscsi.Opcode, itt uint32, format string, args ...any) {
	s.mu.Lock()
	s.violations = append(s.violations, &ProtocolError{Op: op, ITT: itt, Msg: fmt.Sprintf(format, args...)})
	s.mu.Unlock()
}

// Close ends the session without logging out and waits for its
// goroutines.
func (s *Session) Close() error {
	s.fail(ErrSessionClosed)
	s.wg.Wait()
	return nil
}

// fail ends the session with err (the first error wins).
func (s *Session) fail(err error) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.done)
		s.conn.Close()
	})
}

// snLess compares sequence numbers in serial number arithmetic (RFC 1982,
// RFC 7143 4.2.2.1).
func snLess(a, b uint32) bool { return a != b && int32(a-b) < 0 }

// writeLocked writes p with sendMu held, filling ExpStatSN and the length
// fields unless asIs.
func (s *Session) writeLocked(p *iscsi.PDU, asIs bool) error {
	s.mu.Lock()
	err := s.err
	if !asIs {
		p.PutUint32(iscsi.OffExpStatSN, s.expStatSN)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.fr.AllowIllegalWrites = asIs
	werr := s.fr.WritePDU(p)
	s.fr.AllowIllegalWrites = false
	if werr != nil {
		s.fail(fmt.Errorf("initiator: write: %w", werr))
		return s.Err()
	}
	return nil
}

func (s *Session) write(p *iscsi.PDU) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.writeLocked(p, false)
}

// issueOpts qualify issue.
type issueOpts struct {
	asIs       bool   // write the header as built (SendRaw)
	registered func() // runs under the session lock once the CmdSN is set
}

// issue sends a request carrying a CmdSN: it waits for the command window
// unless immediate (RFC 7143 4.2.2.1: a non-immediate command may be sent
// only while CmdSN <= MaxCmdSN), assigns the CmdSN (advancing it unless
// immediate), registers t and writes p, so CmdSNs reach the wire in order.
func (s *Session) issue(ctx context.Context, p *iscsi.PDU, t *task, immediate bool, o issueOpts) error {
	for {
		s.mu.Lock()
		err, open, ch := s.err, immediate || !snLess(s.maxCmdSN, s.cmdSN), s.windowCh
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if !open {
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			case <-s.done:
				return s.Err()
			}
			continue
		}
		s.sendMu.Lock()
		s.mu.Lock()
		if !immediate && snLess(s.maxCmdSN, s.cmdSN) && s.err == nil {
			s.mu.Unlock()
			s.sendMu.Unlock()
			continue
		}
		sn := s.cmdSN
		if !immediate {
			s.cmdSN++
		}
		p.PutUint32(iscsi.OffCmdSN, sn)
		if t != nil {
			t.cmdSN = sn
			s.tasks[t.itt] = t
		}
		if o.registered != nil {
			o.registered()
		}
		s.mu.Unlock()
		err = s.writeLocked(p, o.asIs)
		s.sendMu.Unlock()
		return err
	}
}

// wait waits for t, preferring its result over the session's end.
func (s *Session) wait(ctx context.Context, t *task) error {
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		select {
		case <-t.done:
			return nil
		default:
			return s.Err()
		}
	}
}

func (s *Session) newTask(op iscsi.Opcode) *task {
	return &task{itt: s.NewITT(), op: op, done: make(chan struct{})}
}

// complete ends t with resp (reader goroutine only).
func (s *Session) complete(t *task, resp *Response) {
	s.mu.Lock()
	delete(s.tasks, t.itt)
	s.mu.Unlock()
	t.resp = resp
	close(t.done)
}

func (s *Session) start() {
	s.wg.Add(1)
	go s.readLoop()
}

func (s *Session) readLoop() {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.readerDone = true
		for _, w := range s.watchers {
			close(w.c)
		}
		clear(s.watchers)
		s.mu.Unlock()
	}()
	for {
		p, err := s.fr.ReadPDU()
		var dd *iscsi.DataDigestError
		var tl *iscsi.DataSegmentTooLongError
		if err != nil && !errors.As(err, &dd) && !errors.As(err, &tl) {
			s.fail(fmt.Errorf("initiator: read: %w", err))
			return
		}
		s.dispatch(p, err)
	}
}

// dispatch handles one target PDU; dataErr is a data digest or length
// error that made its data segment unusable.
func (s *Session) dispatch(p *iscsi.PDU, dataErr error) {
	op := p.Opcode()
	s.trackSN(p)
	itt := p.ITT()
	if op == iscsi.OpReject && len(p.Data) >= iscsi.BHSLength {
		itt = binaryITT(p.Data)
	}
	if op == iscsi.OpNOPIn && itt == iscsi.ReservedTag {
		s.answerNOPIn(p)
	}
	if op == iscsi.OpAsyncMessage && s.cfg.OnAsyncMessage != nil {
		s.cfg.OnAsyncMessage(clonePDU(p))
	}
	s.mu.Lock()
	w := s.watchers[itt]
	t := s.tasks[itt]
	s.mu.Unlock()
	if w != nil {
		w.deliver(clonePDU(p), s.done)
		return
	}
	switch op {
	case iscsi.OpNOPIn, iscsi.OpAsyncMessage:
		if itt == iscsi.ReservedTag {
			return
		}
	case iscsi.OpReject:
		s.reject(p, t)
		return
	case iscsi.OpLoginResp:
		s.violate(op, itt, "Login Response in full feature phase")
		return
	}
	if t == nil {
		s.violate(op, itt, "PDU for no outstanding task")
		return
	}
	switch op {
	case iscsi.OpSCSIResponse:
		s.scsiResponse(t, p, dataErr)
	case iscsi.OpDataIn:
		s.dataIn(t, p, dataErr)
	case iscsi.OpR2T:
		s.r2t(t, p)
	case iscsi.OpNOPIn, iscsi.OpTaskMgmtResp, iscsi.OpTextResp, iscsi.OpLogoutResp:
		s.simpleResponse(t, p, dataErr)
	default:
		s.violate(op, itt, "unexpected opcode")
	}
}

func binaryITT(hdr []byte) uint32 {
	var p iscsi.PDU
	copy(p.BHS[:], hdr)
	return p.ITT()
}

func clonePDU(p *iscsi.PDU) *iscsi.PDU {
	return &iscsi.PDU{BHS: p.BHS, AHS: append([]byte(nil), p.AHS...), Data: append([]byte(nil), p.Data...)}
}

// statSNAdvances reports whether a target PDU consumes a StatSN (RFC 7143
// 11: responses, Reject, Asynchronous Message, Data-In with the S bit, a
// NOP-In answering a ping).
func statSNAdvances(p *iscsi.PDU) (advances, carries bool) {
	switch p.Opcode() {
	case iscsi.OpSCSIResponse, iscsi.OpTaskMgmtResp, iscsi.OpTextResp, iscsi.OpLogoutResp,
		iscsi.OpReject, iscsi.OpAsyncMessage:
		return true, true
	case iscsi.OpDataIn:
		return p.Flags()&dataInS != 0, p.Flags()&dataInS != 0
	case iscsi.OpNOPIn:
		return p.ITT() != iscsi.ReservedTag, true
	case iscsi.OpR2T:
		return false, true
	}
	return false, false
}

// trackSN applies the ExpCmdSN/MaxCmdSN and StatSN of a target PDU.
func (s *Session) trackSN(p *iscsi.PDU) {
	op, itt := p.Opcode(), p.ITT()
	exp, maxSN := p.Uint32(iscsi.OffExpCmdSN), p.Uint32(iscsi.OffMaxCmdSN)
	advances, carries := statSNAdvances(p)
	statSN := p.Uint32(iscsi.OffStatSN)
	var problems []string
	s.mu.Lock()
	if carries {
		if statSN != s.expStatSN {
			problems = append(problems, fmt.Sprintf("StatSN %d, expected %d", statSN, s.expStatSN))
		}
		if advances {
			s.expStatSN = statSN + 1
		}
	}
	if op >= iscsi.OpNOPIn && op != iscsi.OpLoginResp {
		// RFC 7143 4.2.2.1: MaxCmdSN < ExpCmdSN-1 makes both invalid.
		if !snLess(maxSN, exp-1) {
			if snLess(s.cmdSN, exp) {
				problems = append(problems, fmt.Sprintf("ExpCmdSN %d beyond the next CmdSN %d", exp, s.cmdSN))
			}
			if snLess(s.expCmdSN, exp) {
				s.expCmdSN = exp
			}
			if snLess(s.maxCmdSN, maxSN) {
				s.maxCmdSN = maxSN
				close(s.windowCh)
				s.windowCh = make(chan struct{})
			}
		}
	}
	s.mu.Unlock()
	for _, m := range problems {
		s.violate(op, itt, "%s", m)
	}
}

// answerNOPIn answers a target ping (TTT other than FFFFFFFFh) with a
// NOP-Out echoing its LUN, TTT and data (RFC 7143 11.18).
func (s *Session) answerNOPIn(p *iscsi.PDU) {
	ttt := p.Uint32(iscsi.OffTTT)
	if ttt == iscsi.ReservedTag {
		return
	}
	out := &iscsi.PDU{Data: append([]byte(nil), p.Data...)}
	out.SetOpcode(iscsi.OpNOPOut)
	out.SetImmediate(true)
	out.SetFinal(true)
	out.SetLUN(p.LUN())
	out.SetITT(iscsi.ReservedTag)
	out.PutUint32(iscsi.OffTTT, ttt)
	// Written from its own goroutine so the reader never blocks on a full
	// send buffer.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.issue(context.Background(), out, nil, true, issueOpts{})
	}()
}

// answerOpcode is the response opcode of each non-SCSI request.
var answerOpcode = map[iscsi.Opcode]iscsi.Opcode{
	iscsi.OpNOPOut: iscsi.OpNOPIn, iscsi.OpTaskMgmtReq: iscsi.OpTaskMgmtResp,
	iscsi.OpTextReq: iscsi.OpTextResp, iscsi.OpLogoutReq: iscsi.OpLogoutResp,
}

// simpleResponse completes a NOP-Out, TMF, Text or Logout request.
func (s *Session) simpleResponse(t *task, p *iscsi.PDU, dataErr error) {
	if p.Opcode() != answerOpcode[t.op] {
		t.fail(&ProtocolError{Op: p.Opcode(), ITT: t.itt, Msg: fmt.Sprintf("answer to a %s", t.op)})
		s.complete(t, nil)
		return
	}
	if dataErr != nil {
		t.fail(dataErr)
	}
	t.pdu = clonePDU(p)
	if t.tmf != nil && p.BHS[2] == TMFFunctionComplete {
		s.abortTasks(t.tmf)
	}
	s.complete(t, nil)
	if p.Opcode() == iscsi.OpLogoutResp && p.BHS[2] == 0 {
		// After a successful logout the target closes the connection.
		s.fail(ErrSessionClosed)
	}
}

// reject handles a Reject PDU: the rejected request's task ends with a
// *RejectError, except for a rejected Data-Out, whose command still gets
// a response (RFC 7143 11.17.1).
func (s *Session) reject(p *iscsi.PDU, t *task) {
	if len(p.Data) < iscsi.BHSLength {
		s.violate(p.Opcode(), p.ITT(), "Reject carries %d bytes, not the rejected header", len(p.Data))
		return
	}
	rej := &RejectError{Reason: p.BHS[2], Header: [iscsi.BHSLength]byte(p.Data)}
	if t == nil {
		s.violate(p.Opcode(), binaryITT(p.Data), "%v (no outstanding task)", rej)
		return
	}
	t.fail(rej)
	if iscsi.Opcode(rej.Header[0]&0x3F) != iscsi.OpDataOut {
		s.complete(t, nil)
	}
}
