package initiator

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/scsi"
)

// Task management functions (RFC 7143 11.5.1).
const (
	TMFAbortTask        byte = 1
	TMFAbortTaskSet     byte = 2
	TMFClearACA         byte = 3
	TMFClearTaskSet     byte = 4
	TMFLogicalUnitReset byte = 5
	TMFTargetWarmReset  byte = 6
	TMFTargetColdReset  byte = 7
	TMFTaskReassign     byte = 8
)

const (
	tmfFunctionMask  byte = 0x7F
	logoutReasonMask byte = 0x7F
	offRefTaskTag         = 20 // Referenced Task Tag (RFC 7143 11.5)
	offRefCmdSN           = 32 // RefCmdSN (RFC 7143 11.5)
	// maxTextResponseBytes and maxTextExchanges bound one text
	// negotiation's answer.
	maxTextResponseBytes = 1 << 20
	maxTextExchanges     = 1024
)

// Task management responses (RFC 7143 11.6.1).
const (
	TMFFunctionComplete         byte = 0
	TMFTaskDoesNotExist         byte = 1
	TMFLUNDoesNotExist          byte = 2
	TMFTaskStillAllegiant       byte = 3
	TMFTaskReassignNotSupported byte = 4
	TMFFunctionNotSupported     byte = 5
	TMFAuthorizationFailed      byte = 6
	TMFFunctionRejected         byte = 255
)

// Logout reason codes (RFC 7143 11.14.1).
const (
	LogoutCloseSession      byte = 0
	LogoutCloseConnection   byte = 1
	LogoutRemoveForRecovery byte = 2
)

// tmfRequest records which tasks a task management function ends when it
// completes.
type tmfRequest struct {
	affected []*task
}

// TaskMgmt sends a task management function request as an immediate
// command and returns the target's response code. refITT is the
// Referenced Task Tag of ABORT TASK (its RefCmdSN is the referenced
// command's CmdSN when that command is outstanding, else the last CmdSN
// used). When the function completes, the commands it aborted return
// ErrTaskAborted.
func (s *Session) TaskMgmt(ctx context.Context, function byte, lun uint64, refITT uint32) (byte, error) {
	if s.cfg.Discovery {
		return 0, errors.New("initiator: task management is not allowed in a discovery session")
	}
	t := s.newTask(iscsi.OpTaskMgmtReq)
	t.tmf = &tmfRequest{}
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpTaskMgmtReq)
	p.SetImmediate(true)
	p.BHS[1] = 0x80 | function&tmfFunctionMask
	switch function {
	case TMFAbortTask, TMFAbortTaskSet, TMFClearACA, TMFClearTaskSet, TMFLogicalUnitReset:
		// The LUN is reserved for the other functions (RFC 7143 11.5).
		p.SetLUN(scsi.EncodeLUN(lun))
	}
	p.SetITT(t.itt)
	ref := uint32(iscsi.ReservedTag)
	if function == TMFAbortTask || function == TMFTaskReassign {
		ref = refITT
	}
	p.PutUint32(offRefTaskTag, ref)
	// Runs under the session lock once the TMF's CmdSN is set, so the
	// affected set is exactly the commands sent before it.
	registered := func() {
		refCmdSN := s.cmdSN - 1
		for _, o := range s.tasks {
			if o.op != iscsi.OpSCSICommand {
				continue
			}
			switch function {
			case TMFAbortTask:
				if o.itt == refITT {
					refCmdSN = o.cmdSN
					t.tmf.affected = append(t.tmf.affected, o)
				}
			case TMFAbortTaskSet, TMFClearTaskSet, TMFLogicalUnitReset:
				if o.lun == lun {
					t.tmf.affected = append(t.tmf.affected, o)
				}
			case TMFTargetWarmReset, TMFTargetColdReset:
				t.tmf.affected = append(t.tmf.affected, o)
			}
		}
		if function == TMFAbortTask {
			p.PutUint32(offRefCmdSN, refCmdSN)
		}
	}
	if err := s.issue(ctx, p, t, true, issueOpts{registered: registered}); err != nil {
		return 0, err
	}
	if err := s.wait(ctx, t); err != nil {
		return 0, err
	}
	if t.pdu == nil {
		return 0, t.err
	}
	return t.pdu.BHS[2], t.err
}

// abortTasks ends the commands a completed task management function
// aborted (reader goroutine only): the target sends no status for them.
func (s *Session) abortTasks(r *tmfRequest) {
	for _, o := range r.affected {
		s.mu.Lock()
		live := s.tasks[o.itt] == o
		s.mu.Unlock()
		if live {
			o.fail(ErrTaskAborted)
			s.complete(o, nil)
		}
	}
}

// NOP sends a NOP-Out ping and waits for the target's NOP-In.
func (s *Session) NOP(ctx context.Context) error { return s.Ping(ctx, nil) }

// Ping sends a NOP-Out ping carrying data (at most the target's
// MaxRecvDataSegmentLength) and checks that the NOP-In echoes it (RFC
// 7143 11.19).
func (s *Session) Ping(ctx context.Context, data []byte) error {
	if len(data) > s.params.maxXmitDataSegmentLength {
		return fmt.Errorf("initiator: ping data of %d bytes exceeds the target's MaxRecvDataSegmentLength %d",
			len(data), s.params.maxXmitDataSegmentLength)
	}
	t := s.newTask(iscsi.OpNOPOut)
	p := &iscsi.PDU{Data: data}
	p.SetOpcode(iscsi.OpNOPOut)
	p.SetImmediate(true)
	p.SetFinal(true)
	p.SetITT(t.itt)
	p.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
	if err := s.issue(ctx, p, t, true, issueOpts{}); err != nil {
		return err
	}
	if err := s.wait(ctx, t); err != nil {
		return err
	}
	if t.err != nil {
		return t.err
	}
	if !bytes.Equal(t.pdu.Data, data) {
		return &ProtocolError{Op: iscsi.OpNOPIn, ITT: t.itt,
			Msg: fmt.Sprintf("ping data of %d bytes echoed as %d different bytes", len(data), len(t.pdu.Data))}
	}
	if ttt := t.pdu.Uint32(iscsi.OffTTT); ttt != iscsi.ReservedTag {
		return &ProtocolError{Op: iscsi.OpNOPIn, ITT: t.itt, Msg: fmt.Sprintf("ping answer with TTT %#x", ttt)}
	}
	return nil
}

// Logout sends a Logout Request with the given reason code as an
// immediate command. On success the session closes; a response other
// than success is a *LogoutError.
func (s *Session) Logout(ctx context.Context, reason byte) error {
	t := s.newTask(iscsi.OpLogoutReq)
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpLogoutReq)
	p.SetImmediate(true)
	p.BHS[1] = 0x80 | reason&logoutReasonMask
	p.SetITT(t.itt)
	// CID (bytes 20-21) is 0, this connection's.
	if err := s.issue(ctx, p, t, true, issueOpts{}); err != nil {
		return err
	}
	if err := s.wait(ctx, t); err != nil {
		return err
	}
	if t.err != nil {
		return t.err
	}
	if code := t.pdu.BHS[2]; code != 0 {
		return &LogoutError{Response: code}
	}
	s.wg.Wait()
	return nil
}

// Text runs one text negotiation (RFC 7143 11.10): it sends keys in a Text
// Request and, while the target answers with the F bit clear, sends empty
// requests carrying the target's Target Transfer Tag to collect the rest.
// Keys may repeat in the answer (SendTargets).
func (s *Session) Text(ctx context.Context, keys iscsi.TextKeys) (iscsi.TextKeys, error) {
	data := keys.Encode()
	if len(data) > s.params.maxXmitDataSegmentLength {
		return nil, fmt.Errorf("initiator: text of %d bytes exceeds the target's MaxRecvDataSegmentLength %d",
			len(data), s.params.maxXmitDataSegmentLength)
	}
	buf := iscsi.NewTextBuffer(maxTextResponseBytes)
	itt := s.NewITT()
	ttt := uint32(iscsi.ReservedTag)
	for range maxTextExchanges {
		// Every request of the sequence keeps the ITT (RFC 7143 11.10.4).
		t := &task{itt: itt, op: iscsi.OpTextReq, done: make(chan struct{})}
		p := &iscsi.PDU{Data: data}
		p.SetOpcode(iscsi.OpTextReq)
		p.SetFinal(true)
		p.SetITT(itt)
		p.PutUint32(iscsi.OffTTT, ttt)
		if err := s.issue(ctx, p, t, false, issueOpts{}); err != nil {
			return nil, err
		}
		if err := s.wait(ctx, t); err != nil {
			return nil, err
		}
		if t.err != nil {
			return nil, t.err
		}
		r := t.pdu
		if err := buf.Append(r.Data); err != nil {
			return nil, err
		}
		ttt = r.Uint32(iscsi.OffTTT)
		if r.Final() {
			if r.Flags()&0x40 != 0 {
				return nil, &ProtocolError{Op: iscsi.OpTextResp, ITT: itt, Msg: "F and C bits both set"}
			}
			if ttt != iscsi.ReservedTag {
				return nil, &ProtocolError{Op: iscsi.OpTextResp, ITT: itt, Msg: "final Text Response with a Target Transfer Tag"}
			}
			return iscsi.ParseTextRepeatable(buf.Bytes())
		}
		if ttt == iscsi.ReservedTag {
			return nil, &ProtocolError{Op: iscsi.OpTextResp, ITT: itt, Msg: "continued Text Response without a Target Transfer Tag"}
		}
		data = nil
	}
	return nil, &ProtocolError{Op: iscsi.OpTextResp, ITT: itt, Msg: "text sequence never ends"}
}

// TargetRecord is one target of a SendTargets answer.
type TargetRecord struct {
	Name string
	// Addresses are the TargetAddress values, "host:port,tpgt".
	Addresses []string
}

// SendTargets asks for targets with SendTargets=what ("All" in a discovery
// session; a target name or empty in a normal session, RFC 7143 Appendix
// C).
func (s *Session) SendTargets(ctx context.Context, what string) ([]TargetRecord, error) {
	keys, err := s.Text(ctx, iscsi.TextKeys{{Key: "SendTargets", Value: what}})
	if err != nil {
		return nil, err
	}
	return ParseSendTargets(keys)
}

// ParseSendTargets groups a SendTargets answer into records: each
// TargetName starts one and the TargetAddress keys after it belong to it.
func ParseSendTargets(keys iscsi.TextKeys) ([]TargetRecord, error) {
	var recs []TargetRecord
	for _, kv := range keys {
		switch kv.Key {
		case "TargetName":
			recs = append(recs, TargetRecord{Name: kv.Value})
		case "TargetAddress":
			if len(recs) == 0 {
				return nil, fmt.Errorf("initiator: SendTargets: TargetAddress %q before any TargetName", kv.Value)
			}
			recs[len(recs)-1].Addresses = append(recs[len(recs)-1].Addresses, kv.Value)
		default:
			return nil, fmt.Errorf("initiator: SendTargets: unexpected key %s=%q", kv.Key, kv.Value)
		}
	}
	return recs, nil
}

// Discover opens a discovery session, asks for SendTargets=All and logs
// out.
func Discover(ctx context.Context, addr string, cfg Config) ([]TargetRecord, error) {
	cfg.Discovery = true
	s, err := Dial(ctx, addr, cfg)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	recs, err := s.SendTargets(ctx, "All")
	if err != nil {
		return nil, err
	}
	if err := s.Logout(ctx, LogoutCloseSession); err != nil {
		return nil, err
	}
	return recs, nil
}
