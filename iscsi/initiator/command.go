package initiator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/scsi"
)

// Request is one SCSI command.
type Request struct {
	LUN uint64
	// CDB is the command descriptor block; CDBs longer than 16 bytes go
	// in an Extended CDB AHS (RFC 7143 11.2.2.3).
	CDB []byte
	// DataOut is the data-out buffer; its length is the Expected Data
	// Transfer Length of a write.
	DataOut []byte
	// ReadLen is the Expected Data Transfer Length of a read.
	ReadLen int
	Attr    scsi.TaskAttr
	// Immediate sets the I bit: the command does not advance CmdSN nor
	// wait for the command window.
	Immediate bool
}

// Response is the outcome of a SCSI command.
type Response struct {
	// ServiceResponse is the iSCSI Response field: 0 is Command Completed
	// at Target (RFC 7143 11.4.3).
	ServiceResponse byte
	Status          scsi.Status
	// Sense is SenseRaw decoded, nil when there is none or it could not be
	// decoded.
	Sense    *scsi.Sense
	SenseRaw []byte
	// DataIn is the data-in received, up to the end of the highest Data-In.
	DataIn []byte
	// ResidualOverflow, ResidualUnderflow and Residual are the O and U
	// bits and the Residual Count (RFC 7143 11.4.5).
	ResidualOverflow, ResidualUnderflow bool
	Residual                            uint32
	ITT                                 uint32
}

// SCSI Command flags (RFC 7143 11.3.1).
const (
	cmdFinal = 0x80
	cmdRead  = 0x40
	cmdWrite = 0x20
)

// Data-In and SCSI Response flags (RFC 7143 11.4.1, 11.7.1).
const (
	dataInF         = 0x80
	dataInA         = 0x40
	flagBidiO       = 0x10
	flagBidiU       = 0x08
	flagO           = 0x04
	flagU           = 0x02
	dataInS         = 0x01
	ahsExtendedCDB  = 1
	maxExtendedCDB  = 16 + 255*4 - 4
	extraR2TBacklog = 16
)

// ErrBidirectional is returned for a Request with both DataOut and
// ReadLen: the initiator does not implement bidirectional commands.
var ErrBidirectional = errors.New("initiator: bidirectional commands are not supported")

// Command runs one SCSI command and returns its outcome. The returned
// error is a session or context error (with a nil Response), or, with a
// Response, a *ProtocolError, *RejectError, *ServiceResponseError or
// iscsi data digest error describing what went wrong on the way. A
// command aborted by TaskMgmt returns ErrTaskAborted. If ctx ends first,
// Command returns ctx.Err() while the command keeps running in the
// background (answering R2Ts) until the target completes it.
func (s *Session) Command(ctx context.Context, req Request) (*Response, error) {
	pc, err := s.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	return pc.Wait(ctx)
}

// Pending is a command that has been sent and not yet waited for.
type Pending struct {
	// ITT is the command's Initiator Task Tag, for ABORT TASK.
	ITT uint32
	s   *Session
	t   *task
}

// Start sends one SCSI command (waiting for the command window) and
// returns without waiting for its outcome.
func (s *Session) Start(ctx context.Context, req Request) (*Pending, error) {
	switch {
	case s.cfg.Discovery:
		return nil, errors.New("initiator: SCSI commands are not allowed in a discovery session")
	case len(req.CDB) == 0 || len(req.CDB) > maxExtendedCDB:
		return nil, fmt.Errorf("initiator: CDB of %d bytes", len(req.CDB))
	case len(req.DataOut) > 0 && req.ReadLen > 0:
		return nil, ErrBidirectional
	case req.ReadLen < 0 || uint64(req.ReadLen) > math.MaxUint32 || uint64(len(req.DataOut)) > math.MaxUint32:
		return nil, fmt.Errorf("initiator: transfer length does not fit Expected Data Transfer Length")
	}
	t := s.newTask(iscsi.OpSCSICommand)
	t.lun = req.LUN
	p := &iscsi.PDU{}
	p.SetOpcode(iscsi.OpSCSICommand)
	p.SetImmediate(req.Immediate)
	flags := byte(req.Attr) & 0x07
	var edtl int
	switch {
	case req.ReadLen > 0:
		flags |= cmdRead
		edtl = req.ReadLen
		t.readLen = req.ReadLen
		t.buf = make([]byte, req.ReadLen)
	case len(req.DataOut) > 0:
		flags |= cmdWrite
		edtl = len(req.DataOut)
		t.dataOut = req.DataOut
		t.r2ts = make(chan r2tRequest, s.params.maxOutstandingR2T+extraR2TBacklog)
	}
	p.SetLUN(scsi.EncodeLUN(req.LUN))
	p.SetITT(t.itt)
	p.PutUint32(iscsi.OffEDTL, uint32(edtl))
	copy(p.BHS[iscsi.OffCDB:iscsi.OffCDB+16], req.CDB)
	if len(req.CDB) > 16 {
		p.AHS = extendedCDB(req.CDB[16:])
	}

	// Immediate data and unsolicited Data-Out (RFC 7143 4.2.5.2).
	immediate, unsolicited := 0, 0
	if t.dataOut != nil {
		if s.params.immediateData {
			immediate = min(len(t.dataOut), s.params.firstBurstLength, s.params.maxXmitDataSegmentLength)
			unsolicited = immediate
		}
		if !s.params.initialR2T {
			unsolicited = min(len(t.dataOut), s.params.firstBurstLength)
		}
		p.Data = t.dataOut[:immediate]
		t.unsolicited = unsolicited
	}
	if unsolicited == immediate {
		flags |= cmdFinal
	}
	p.BHS[1] = flags

	if err := s.issue(ctx, p, t, req.Immediate, issueOpts{}); err != nil {
		return nil, err
	}
	if t.dataOut != nil {
		s.wg.Add(1)
		go s.sendData(t, immediate, unsolicited)
	}
	return &Pending{ITT: t.itt, s: s, t: t}, nil
}

// Wait waits for the command's outcome; see Command for the results.
func (pc *Pending) Wait(ctx context.Context) (*Response, error) {
	if err := pc.s.wait(ctx, pc.t); err != nil {
		return nil, err
	}
	if pc.t.resp == nil {
		return nil, pc.t.err
	}
	return pc.t.resp, pc.t.err
}

// extendedCDB builds the Extended CDB AHS for the CDB bytes beyond 16
// (RFC 7143 11.2.2.3): AHSLength counts the reserved byte and the CDB
// bytes, the AHS is padded to 4 bytes.
func extendedCDB(rest []byte) []byte {
	n := 4 + len(rest)
	ahs := make([]byte, n+(4-n%4)%4)
	binary.BigEndian.PutUint16(ahs, uint16(len(rest)+1))
	ahs[2] = ahsExtendedCDB
	copy(ahs[4:], rest)
	return ahs
}

// sendData sends a write's unsolicited Data-Out sequence, then one
// sequence per R2T in arrival order (DataSequenceInOrder), until the
// command completes.
func (s *Session) sendData(t *task, from, to int) {
	defer s.wg.Done()
	if to > from && !s.sendSequence(t, iscsi.ReservedTag, from, to, false) {
		return
	}
	for {
		select {
		case r := <-t.r2ts:
			if !s.sendSequence(t, r.ttt, r.off, r.off+r.size, true) {
				return
			}
		case <-t.done:
			return
		case <-s.done:
			return
		}
	}
}

// sendSequence sends data-out bytes [start, end) as Data-Out PDUs of at
// most the target's MaxRecvDataSegmentLength, DataSN counting from 0 and
// the F bit on the last (RFC 7143 11.7). For an R2T the outstanding count
// drops before the last PDU goes out, since the target may send its next
// R2T as soon as that PDU arrives.
func (s *Session) sendSequence(t *task, ttt uint32, start, end int, forR2T bool) bool {
	var dataSN uint32
	for off := start; off < end; {
		select {
		case <-t.done:
			return false
		case <-s.done:
			return false
		default:
		}
		n := min(end-off, s.params.maxXmitDataSegmentLength)
		last := off+n == end
		p := &iscsi.PDU{Data: t.dataOut[off : off+n]}
		p.SetOpcode(iscsi.OpDataOut)
		p.SetFinal(last)
		p.SetLUN(scsi.EncodeLUN(t.lun))
		p.SetITT(t.itt)
		p.PutUint32(iscsi.OffTTT, ttt)
		p.PutUint32(iscsi.OffDataSN, dataSN)
		p.PutUint32(iscsi.OffBufferOffset, uint32(off))
		if last && forR2T {
			t.outstanding.Add(-1)
		}
		if s.write(p) != nil {
			return false
		}
		dataSN++
		off += n
	}
	return true
}

func (s *Session) protoErr(t *task, p *iscsi.PDU, format string, args ...any) {
	t.fail(&ProtocolError{Op: p.Opcode(), ITT: t.itt, Msg: fmt.Sprintf(format, args...)})
}

// r2t queues an R2T for the task's data goroutine after checking it
// against RFC 7143 11.8.
func (s *Session) r2t(t *task, p *iscsi.PDU) {
	if t.dataOut == nil {
		s.protoErr(t, p, "R2T for a command without data-out")
		return
	}
	r2tSN := p.Uint32(iscsi.OffDataSN)
	if r2tSN != t.nextR2TSN {
		s.protoErr(t, p, "R2TSN %d, expected %d", r2tSN, t.nextR2TSN)
	}
	t.nextR2TSN = r2tSN + 1
	ttt := p.Uint32(iscsi.OffTTT)
	off := uint64(p.Uint32(iscsi.OffBufferOffset))
	size := uint64(p.Uint32(iscsi.OffDesiredDTL))
	// An R2T that cannot be answered ends the command at once: the target
	// would wait for data forever.
	switch {
	case ttt == iscsi.ReservedTag:
		s.protoErr(t, p, "R2T with the reserved Target Transfer Tag")
		s.complete(t, nil)
		return
	case size == 0:
		s.protoErr(t, p, "R2T with Desired Data Transfer Length 0")
		s.complete(t, nil)
		return
	case off+size > uint64(len(t.dataOut)):
		s.protoErr(t, p, "R2T for bytes %d-%d beyond the %d-byte data-out buffer", off, off+size, len(t.dataOut))
		s.complete(t, nil)
		return
	case size > uint64(s.params.maxBurstLength):
		s.protoErr(t, p, "R2T for %d bytes exceeds MaxBurstLength %d", size, s.params.maxBurstLength)
	case off < uint64(t.unsolicited):
		s.protoErr(t, p, "R2T at offset %d asks again for unsolicited data (first %d bytes)", off, t.unsolicited)
	}
	if n := t.outstanding.Add(1); int(n) > s.params.maxOutstandingR2T {
		s.protoErr(t, p, "%d outstanding R2Ts exceed MaxOutstandingR2T %d", n, s.params.maxOutstandingR2T)
	}
	t.solicited += int(size)
	select {
	case t.r2ts <- r2tRequest{ttt: ttt, off: int(off), size: int(size)}:
	default:
		s.protoErr(t, p, "R2T backlog overflow")
	}
}

// dataIn stores one Data-In PDU, checking DataSN order and the buffer
// offset (RFC 7143 11.7), and completes the command when it carries
// status.
func (s *Session) dataIn(t *task, p *iscsi.PDU, dataErr error) {
	flags := p.Flags()
	dataSN := p.Uint32(iscsi.OffDataSN)
	if dataSN != t.nextDataSN {
		s.protoErr(t, p, "DataSN %d, expected %d", dataSN, t.nextDataSN)
	}
	t.nextDataSN = dataSN + 1
	off := int(p.Uint32(iscsi.OffBufferOffset))
	n := len(p.Data)
	switch {
	case t.readLen == 0:
		s.protoErr(t, p, "Data-In for a command without data-in")
	case dataErr != nil:
		t.fail(dataErr)
	case off < 0 || off+n > t.readLen:
		s.protoErr(t, p, "Data-In bytes %d-%d beyond the expected %d", off, off+n, t.readLen)
	default:
		if s.params.dataPDUInOrder && off != t.inBytes {
			s.protoErr(t, p, "Data-In at offset %d, expected %d (DataPDUInOrder=Yes)", off, t.inBytes)
		}
		copy(t.buf[off:], p.Data)
		t.inBytes += n
		t.inEnd = max(t.inEnd, off+n)
	}
	if flags&dataInA != 0 {
		s.protoErr(t, p, "A bit set at ErrorRecoveryLevel 0")
	}
	if flags&dataInS == 0 {
		return
	}
	if flags&dataInF == 0 {
		s.protoErr(t, p, "S bit without the F bit")
	}
	r := &Response{
		Status:            scsi.Status(p.BHS[3]),
		ResidualOverflow:  flags&flagO != 0,
		ResidualUnderflow: flags&flagU != 0,
		Residual:          p.Uint32(iscsi.OffResidual),
		ITT:               t.itt,
	}
	if r.Status == scsi.StatusCheckCondition {
		s.protoErr(t, p, "CHECK CONDITION in a Data-In PDU, which cannot carry sense data")
	}
	s.finishSCSI(t, p, r)
}

// scsiResponse completes a command with its SCSI Response (RFC 7143 11.4).
func (s *Session) scsiResponse(t *task, p *iscsi.PDU, dataErr error) {
	flags := p.Flags()
	r := &Response{
		ServiceResponse:   p.BHS[2],
		Status:            scsi.Status(p.BHS[3]),
		ResidualOverflow:  flags&flagO != 0,
		ResidualUnderflow: flags&flagU != 0,
		Residual:          p.Uint32(iscsi.OffResidual),
		ITT:               t.itt,
	}
	if flags&cmdFinal == 0 {
		s.protoErr(t, p, "F bit clear")
	}
	if flags&(flagBidiO|flagBidiU) != 0 {
		s.protoErr(t, p, "bidirectional residual bits on a unidirectional command")
	}
	if t.readLen > 0 && t.nextDataSN > 0 && r.ServiceResponse == 0 {
		if exp := p.Uint32(iscsi.OffDataSN); exp != t.nextDataSN {
			s.protoErr(t, p, "ExpDataSN %d after %d Data-In PDUs", exp, t.nextDataSN)
		}
	}
	switch d := p.Data; {
	case dataErr != nil:
		t.fail(dataErr)
	case len(d) == 1:
		s.protoErr(t, p, "1-byte data segment")
	case len(d) >= 2:
		n := int(binary.BigEndian.Uint16(d))
		if 2+n > len(d) {
			s.protoErr(t, p, "SenseLength %d exceeds the %d-byte data segment", n, len(d))
			break
		}
		if n > 0 {
			r.SenseRaw = append([]byte(nil), d[2:2+n]...)
			sense, err := scsi.ParseSense(r.SenseRaw)
			if err != nil {
				s.protoErr(t, p, "sense data: %v", err)
			}
			r.Sense = sense
		}
	}
	if r.ServiceResponse != 0 {
		t.fail(&ServiceResponseError{Response: r.ServiceResponse})
	}
	s.finishSCSI(t, p, r)
}

// finishSCSI checks the residual against the data moved and completes
// the command.
func (s *Session) finishSCSI(t *task, p *iscsi.PDU, r *Response) {
	if r.ResidualOverflow && r.ResidualUnderflow {
		s.protoErr(t, p, "both O and U set")
	}
	if t.readLen > 0 {
		r.DataIn = t.buf[:t.inEnd]
	}
	if r.Status == scsi.StatusGood && r.ServiceResponse == 0 {
		edtl := t.readLen + len(t.dataOut)
		moved := t.inBytes
		if t.dataOut != nil {
			moved = t.solicited + t.unsolicited
		}
		switch {
		case r.ResidualUnderflow && int64(r.Residual) > int64(edtl):
			s.protoErr(t, p, "underflow residual %d exceeds the expected length %d", r.Residual, edtl)
		case r.ResidualUnderflow && t.readLen > 0 && moved != edtl-int(r.Residual):
			s.protoErr(t, p, "%d bytes of data-in with residual underflow %d of %d", moved, r.Residual, edtl)
		case !r.ResidualUnderflow && moved != edtl:
			s.protoErr(t, p, "GOOD status after %d of %d bytes without residual underflow", moved, edtl)
		}
	}
	s.complete(t, r)
}
