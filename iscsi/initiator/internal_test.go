package initiator

import (
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/scsi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNegotiationSettle(t *testing.T) {
	tests := []struct {
		key, ours, theirs string
		ok                bool
		want              string
	}{
		{"HeaderDigest", "CRC32C,None", "None", true, "None"},
		{"HeaderDigest", "CRC32C", "None", false, ""},
		{"ImmediateData", "No", "Yes", false, ""},
		{"ImmediateData", "Yes", "No", true, "No"},
		{"InitialR2T", "Yes", "No", false, ""},
		{"InitialR2T", "No", "Yes", true, "Yes"},
		{"InitialR2T", "No", "maybe", false, ""},
		{"MaxBurstLength", "65536", "131072", false, ""},
		{"MaxBurstLength", "65536", "4096", true, "4096"},
		{"MaxBurstLength", "65536", "100", false, ""},
		{"DefaultTime2Wait", "2", "1", false, ""},
		{"DefaultTime2Wait", "2", "5", true, "5"},
		{"ErrorRecoveryLevel", "0", "3", false, ""},
		{"MaxConnections", "1", iscsi.ValueReject, true, "1"},
		{"FirstBurstLength", "65536", iscsi.ValueIrrelevant, true, "65536"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.theirs, func(t *testing.T) {
			n := newNegotiation(&Config{Params: map[string]string{tt.key: tt.ours}})
			a, err := n.handle(tt.key, tt.theirs)
			assert.Nil(t, a)
			if !tt.ok {
				var ne *NegotiationError
				require.ErrorAs(t, err, &ne)
				assert.Equal(t, tt.key, ne.Key)
				assert.NotEmpty(t, ne.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, n.result[tt.key])
		})
	}
}

func TestNegotiationTargetOffers(t *testing.T) {
	tests := []struct {
		key, theirs, answer string
	}{
		{"ErrorRecoveryLevel", "2", "0"},
		{"DefaultTime2Wait", "7", "7"},
		{"DataPDUInOrder", "No", "Yes"},
		{"IFMarker", "Yes", iscsi.ValueNotUnderstood},
		{"MaxOutstandingR2T", "0", iscsi.ValueReject},
		{"DataSequenceInOrder", "perhaps", iscsi.ValueReject},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			n := newNegotiation(&Config{Discovery: true})
			a, err := n.handle(tt.key, tt.theirs)
			require.NoError(t, err)
			require.NotNil(t, a)
			assert.Equal(t, iscsi.KeyValue{Key: tt.key, Value: tt.answer}, *a)
		})
	}
	n := newNegotiation(&Config{Discovery: true, HeaderDigest: true})
	delete(n.offered, "HeaderDigest")
	a, err := n.handle("HeaderDigest", "None,CRC32C")
	require.NoError(t, err)
	assert.Equal(t, "CRC32C", a.Value)
	_, err = n.handle("HeaderDigest", "None")
	assert.Error(t, err, "offered again after it was settled")

	n = newNegotiation(&Config{Discovery: true})
	_, err = n.handle("MaxRecvDataSegmentLength", "100")
	assert.Error(t, err)
	a, err = n.handle("TargetAlias", "disk")
	require.NoError(t, err)
	assert.Nil(t, a)
}

func TestNegotiationFinish(t *testing.T) {
	n := newNegotiation(&Config{Params: map[string]string{"ImmediateData": "No", "X-probe": "1"}})
	for _, k := range []string{"HeaderDigest", "DataDigest", "MaxBurstLength", "FirstBurstLength",
		"MaxOutstandingR2T", "MaxConnections", "DefaultTime2Wait", "DefaultTime2Retain", "ErrorRecoveryLevel"} {
		_, err := n.handle(k, n.offered[k])
		require.NoError(t, err)
	}
	// InitialR2T, DataPDUInOrder and DataSequenceInOrder offered Yes (OR)
	// and ImmediateData offered No (AND) need no answer.
	require.NoError(t, n.finish())
	assert.Equal(t, "No", n.result["ImmediateData"])

	n = newNegotiation(&Config{})
	err := n.finish()
	var ne *NegotiationError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, "DataDigest", ne.Key)
}

func TestDecodeParams(t *testing.T) {
	n := newNegotiation(&Config{})
	m := n.values(false)
	p, err := decodeParams(m, false)
	require.NoError(t, err)
	assert.Equal(t, 8192, p.maxXmitDataSegmentLength)
	assert.Equal(t, 65536, p.firstBurstLength)
	m["FirstBurstLength"] = "300000"
	_, err = decodeParams(m, false)
	assert.Error(t, err)
	m["FirstBurstLength"] = "x"
	_, err = decodeParams(m, false)
	assert.Error(t, err)
}

func TestExtendedCDB(t *testing.T) {
	ahs := extendedCDB(make([]byte, 16))
	assert.Len(t, ahs, 20)
	assert.Equal(t, uint16(17), binary.BigEndian.Uint16(ahs))
	assert.Equal(t, byte(ahsExtendedCDB), ahs[2])
	assert.Len(t, extendedCDB(make([]byte, 1)), 8)
}

func TestSNLess(t *testing.T) {
	assert.True(t, snLess(1, 2))
	assert.False(t, snLess(2, 2))
	assert.True(t, snLess(0xFFFFFFFF, 0))
	assert.False(t, snLess(0, 0xFFFFFFFF))
}

// testSession is a logged-in-looking session whose peer discards
// everything, for feeding target PDUs straight into dispatch.
func testSession(t testing.TB) *Session {
	a, b := net.Pipe()
	go func() { _, _ = io.Copy(io.Discard, b) }()
	s := newSession(a, Config{})
	s.params = opParams{maxRecvDataSegmentLength: 8192, maxXmitDataSegmentLength: 8192, maxBurstLength: 65536,
		firstBurstLength: 65536, initialR2T: true, immediateData: true, maxOutstandingR2T: 2, dataPDUInOrder: true}
	s.maxCmdSN = 100
	t.Cleanup(func() { s.Close(); b.Close() })
	return s
}

func (s *Session) addTask(op iscsi.Opcode, readLen int, dataOut []byte) *task {
	t := s.newTask(op)
	t.readLen, t.buf, t.dataOut = readLen, make([]byte, readLen), dataOut
	t.r2ts = make(chan r2tRequest, 4)
	s.tasks[t.itt] = t
	return t
}

// feed dispatches p with the StatSN the session expects.
func (s *Session) feed(p *iscsi.PDU, dataErr error) {
	s.mu.Lock()
	p.PutUint32(iscsi.OffStatSN, s.expStatSN)
	s.mu.Unlock()
	s.dispatch(p, dataErr)
}

func targetPDU(op iscsi.Opcode, itt uint32, data []byte) *iscsi.PDU {
	p := &iscsi.PDU{Data: data}
	p.SetOpcode(op)
	p.SetFinal(true)
	p.SetITT(itt)
	return p
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestDispatchReject(t *testing.T) {
	s := testSession(t)
	cmd := s.addTask(iscsi.OpSCSICommand, 512, nil)
	hdr := targetPDU(iscsi.OpSCSICommand, cmd.itt, nil)
	rej := targetPDU(iscsi.OpReject, iscsi.ReservedTag, hdr.BHS[:])
	rej.BHS[2] = 0x09
	s.feed(rej, nil)
	require.True(t, closed(cmd.done))
	var re *RejectError
	require.ErrorAs(t, cmd.err, &re)
	assert.Equal(t, byte(0x09), re.Reason)
	assert.Contains(t, re.Error(), "SCSI Command")

	w := s.addTask(iscsi.OpSCSICommand, 0, make([]byte, 512))
	hdr = targetPDU(iscsi.OpDataOut, w.itt, nil)
	s.feed(targetPDU(iscsi.OpReject, iscsi.ReservedTag, hdr.BHS[:]), nil)
	assert.False(t, closed(w.done), "a rejected Data-Out leaves the command waiting for status")
	require.ErrorAs(t, w.err, &re)

	s.feed(targetPDU(iscsi.OpReject, iscsi.ReservedTag, []byte{1, 2}), nil)
	s.feed(targetPDU(iscsi.OpReject, iscsi.ReservedTag, targetPDU(iscsi.OpNOPOut, 999, nil).BHS[:]), nil)
	assert.Len(t, s.Violations(), 2)
}

func TestDispatchMisc(t *testing.T) {
	s := testSession(t)
	var async []*iscsi.PDU
	s.cfg.OnAsyncMessage = func(p *iscsi.PDU) { async = append(async, p) }
	s.feed(targetPDU(iscsi.OpAsyncMessage, iscsi.ReservedTag, nil), nil)
	assert.Len(t, async, 1)
	s.feed(targetPDU(iscsi.OpSCSIResponse, 4242, nil), nil)
	s.feed(targetPDU(iscsi.OpLoginResp, 1, nil), nil)
	v := s.Violations()
	require.Len(t, v, 2)
	assert.Contains(t, v[0].Error(), "no outstanding task")
	assert.Contains(t, v[1].Error(), "Login Response")

	// A NOP-In answering a TMF request is a protocol error.
	tmf := s.addTask(iscsi.OpTaskMgmtReq, 0, nil)
	s.feed(targetPDU(iscsi.OpNOPIn, tmf.itt, nil), nil)
	require.True(t, closed(tmf.done))
	var pe *ProtocolError
	require.ErrorAs(t, tmf.err, &pe)
}

func TestDispatchSCSIResponseErrors(t *testing.T) {
	s := testSession(t)
	tests := []struct {
		name string
		set  func(p *iscsi.PDU)
		want any
	}{
		{"sense overruns", func(p *iscsi.PDU) { p.Data = []byte{0, 40, 0x70} }, &ProtocolError{}},
		{"1-byte data", func(p *iscsi.PDU) { p.Data = []byte{0} }, &ProtocolError{}},
		{"bad sense", func(p *iscsi.PDU) { p.Data = []byte{0, 3, 0x10, 0, 0} }, &ProtocolError{}},
		{"target failure", func(p *iscsi.PDU) { p.BHS[2] = 1 }, &ServiceResponseError{}},
		{"O and U", func(p *iscsi.PDU) { p.BHS[1] |= flagO | flagU }, &ProtocolError{}},
		{"bidi bits", func(p *iscsi.PDU) { p.BHS[1] |= flagBidiU }, &ProtocolError{}},
		{"F clear", func(p *iscsi.PDU) { p.BHS[1] &^= 0x80 }, &ProtocolError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := s.addTask(iscsi.OpSCSICommand, 0, nil)
			p := targetPDU(iscsi.OpSCSIResponse, task.itt, nil)
			p.BHS[3] = byte(scsi.StatusCheckCondition)
			tt.set(p)
			s.feed(p, nil)
			require.True(t, closed(task.done))
			require.Error(t, task.err)
			switch tt.want.(type) {
			case *ProtocolError:
				var e *ProtocolError
				assert.ErrorAs(t, task.err, &e)
			case *ServiceResponseError:
				var e *ServiceResponseError
				assert.ErrorAs(t, task.err, &e)
				assert.NotEmpty(t, e.Error())
			}
			assert.NotNil(t, task.resp)
		})
	}
	assert.Empty(t, s.Violations())
}

func TestDispatchDataInErrors(t *testing.T) {
	s := testSession(t)
	task := s.addTask(iscsi.OpSCSICommand, 1024, nil)
	p := targetPDU(iscsi.OpDataIn, task.itt, make([]byte, 512))
	p.BHS[1] = 0 // neither F nor S
	s.feed(p, &iscsi.DataDigestError{PDU: p})
	var de *iscsi.DataDigestError
	require.ErrorAs(t, task.err, &de)

	w := s.addTask(iscsi.OpSCSICommand, 0, make([]byte, 512))
	s.feed(targetPDU(iscsi.OpDataIn, w.itt, make([]byte, 4)), nil)
	assert.Error(t, w.err)

	// Status in a Data-In with CHECK CONDITION and the A bit.
	task = s.addTask(iscsi.OpSCSICommand, 512, nil)
	p = targetPDU(iscsi.OpDataIn, task.itt, make([]byte, 512))
	p.BHS[1] = dataInF | dataInS | dataInA
	p.BHS[3] = byte(scsi.StatusCheckCondition)
	s.feed(p, nil)
	require.True(t, closed(task.done))
	assert.Error(t, task.err)

	// An R2T for a read, one with the reserved TTT, one of length 0.
	r := s.addTask(iscsi.OpSCSICommand, 512, nil)
	s.feed(targetPDU(iscsi.OpR2T, r.itt, nil), nil)
	assert.Error(t, r.err)
	for _, set := range []func(p *iscsi.PDU){
		func(p *iscsi.PDU) {
			p.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
			p.PutUint32(iscsi.OffDesiredDTL, 512)
		},
		func(p *iscsi.PDU) { p.PutUint32(iscsi.OffTTT, 1) },
	} {
		w := s.addTask(iscsi.OpSCSICommand, 0, make([]byte, 512))
		p := targetPDU(iscsi.OpR2T, w.itt, nil)
		set(p)
		s.feed(p, nil)
		assert.True(t, closed(w.done))
		assert.Error(t, w.err)
	}
	assert.Empty(t, s.Violations())
	assert.NoError(t, s.Err())
}

// FuzzDispatch feeds arbitrary target PDUs to a session with a read, a
// write and a NOP task outstanding: nothing may panic and completed reads
// never report more data than their buffer.
func FuzzDispatch(f *testing.F) {
	seed := targetPDU(iscsi.OpDataIn, 1, []byte("data"))
	seed.BHS[1] = dataInF | dataInS
	f.Add(seed.BHS[:], seed.Data)
	seed = targetPDU(iscsi.OpSCSIResponse, 1, []byte{0, 18, 0x70, 0, 5})
	f.Add(seed.BHS[:], seed.Data)
	seed = targetPDU(iscsi.OpR2T, 2, nil)
	seed.PutUint32(iscsi.OffTTT, 9)
	seed.PutUint32(iscsi.OffDesiredDTL, 100)
	f.Add(seed.BHS[:], seed.Data)
	seed = targetPDU(iscsi.OpReject, iscsi.ReservedTag, targetPDU(iscsi.OpSCSICommand, 2, nil).BHS[:])
	f.Add(seed.BHS[:], seed.Data)
	f.Fuzz(func(t *testing.T, bhs, data []byte) {
		s := testSession(t)
		read := s.addTask(iscsi.OpSCSICommand, 64, nil)
		s.addTask(iscsi.OpSCSICommand, 0, make([]byte, 300))
		s.addTask(iscsi.OpNOPOut, 0, nil)
		for len(bhs) >= iscsi.BHSLength {
			p := &iscsi.PDU{BHS: [iscsi.BHSLength]byte(bhs), Data: data}
			bhs = bhs[iscsi.BHSLength:]
			p.BHS[0] |= 0x20 // a target opcode
			s.dispatch(p, nil)
		}
		if closed(read.done) && read.resp != nil {
			require.LessOrEqual(t, len(read.resp.DataIn), 64)
		}
	})
}
