package iscsi

import (
	"bytes"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// sendCorrupted sends p with the current digests and one byte flipped at
// offset of the encoded PDU.
func (tt *tester) sendCorrupted(p *PDU, offset int) {
	tt.t.Helper()
	var buf bytes.Buffer
	f := NewFramer(&buf, &buf)
	f.HeaderDigest, f.DataDigest = tt.fr.HeaderDigest, tt.fr.DataDigest
	require.NoError(tt.t, f.WritePDU(p))
	b := buf.Bytes()
	b[offset] ^= 0x55
	_, err := tt.nc.Write(b)
	require.NoError(tt.t, err)
}

func digestKeys() []string { return []string{"HeaderDigest", "CRC32C", "DataDigest", "CRC32C"} }

func TestDigestsOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		resp := tt.loginDefault(append(digestKeys(), "InitialR2T", "Yes", "FirstBurstLength", "512")...)
		assert.Equal(t, "CRC32C", resp.Map()["HeaderDigest"])
		data := pattern(3*testBlock, 2)
		itt := tt.command(write10(2, 3), cmdOpts{write: true, edtl: uint32(len(data)), data: data[:512]})
		ttt, _, off, n := tt.wantR2T(itt)
		tt.dataOut(itt, ttt, 0, off, data[off:off+n], true)
		require.Equal(t, scsi.StatusGood, tt.wantResult(itt).status)
		itt = tt.command(read10(2, 3), cmdOpts{read: true, edtl: uint32(len(data))})
		r := tt.wantResult(itt)
		assert.Equal(t, data, r.data)
	})
}

func TestHeaderDigestErrorDropsConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault(digestKeys()...)
		p := tt.commandPDU([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		tt.sendCorrupted(p, BHSLength) // inside the header digest
		tt.wantClosed()
	})
}

func TestDataDigestErrorOnDataOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault(append(digestKeys(), "InitialR2T", "Yes", "ImmediateData", "No")...)
		itt := tt.command(write10(0, 2), cmdOpts{write: true, edtl: 2 * testBlock})
		ttt, _, _, _ := tt.wantR2T(itt)
		bad := &PDU{Data: pattern(testBlock, 1)}
		bad.SetOpcode(OpDataOut)
		bad.SetITT(itt)
		bad.PutUint32(OffTTT, ttt)
		tt.sendCorrupted(bad, BHSLength+DigestLength+10)
		tt.wantReject(RejectDataDigest, OpDataOut)
		// The sequence goes on; the task ends with PROTOCOL SERVICE CRC
		// ERROR once its data is in (RFC 7143 7.8, ERL 0).
		tt.dataOut(itt, ttt, 1, testBlock, pattern(testBlock, 2), true)
		r := tt.wantResult(itt)
		require.Equal(t, scsi.StatusCheckCondition, r.status)
		assert.Equal(t, scsi.AbortedCommand, r.sense.Key)
		assert.Equal(t, ascProtocolServiceCRCError, r.sense.Code)
	})
}

func TestDataDigestErrorOnCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault(digestKeys()...)
		data := pattern(testBlock, 3)
		p := tt.commandPDU(write10(0, 1), cmdOpts{write: true, edtl: testBlock, data: data})
		tt.sendCorrupted(p, BHSLength+DigestLength+1)
		tt.wantReject(RejectDataDigest, OpSCSICommand)
		// The command was discarded with its CmdSN unused: the initiator
		// retries it as it was (RFC 7143 7.2.1).
		tt.send(p)
		assert.Equal(t, scsi.StatusGood, tt.wantResult(p.ITT()).status)
	})
}

func TestRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		op     Opcode
		flags  byte
		reason RejectReason
	}{
		{"SNACK", OpSNACKReq, 0x80, RejectProtocolError},
		{"login in full feature phase", OpLoginReq, 0x87, RejectProtocolError},
		{"unknown opcode", Opcode(0x1C), 0x80, RejectCmdNotSupported},
		{"target opcode", OpSCSIResponse, 0x80, RejectCmdNotSupported},
		{"logout reason", OpLogoutReq, 0x85, RejectProtocolError},
		{"text with F and C", OpTextReq, 0xC0, RejectProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t)
				tt.loginDefault()
				p := &PDU{}
				p.SetOpcode(tc.op)
				p.SetImmediate(true)
				p.BHS[1] = tc.flags
				p.SetITT(tt.nextITT())
				p.PutUint32(OffTTT, ReservedTag)
				p.PutUint32(OffCmdSN, tt.cmdSN)
				tt.send(p)
				tt.wantReject(tc.reason, tc.op)
				// The connection goes on.
				r := tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{}))
				assert.Equal(t, scsi.StatusGood, r.status)
			})
		})
	}
}

func TestOversizedDataSegment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		p := tt.commandPDU(write10(0, 1), cmdOpts{write: true, edtl: 300 << 10, data: make([]byte, 300<<10)})
		tt.send(p)
		tt.wantReject(RejectProtocolError, OpSCSICommand)
		r := tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{}))
		assert.Equal(t, scsi.StatusGood, r.status)
	})
}
