package initiator_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func baseConfig() initiator.Config {
	return initiator.Config{InitiatorName: fakeInit, TargetName: fakeTarget, Timeout: 10 * time.Second}
}

func dial(t *testing.T, f *fake, cfg initiator.Config) *initiator.Session {
	t.Helper()
	s, err := initiator.Dial(testCtx(t), f.addr(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		s.Close()
		assert.Empty(t, s.Violations())
	})
	return s
}

func read10(lba uint32, blocks uint16) []byte {
	cdb := make([]byte, 10)
	cdb[0] = 0x28
	binary.BigEndian.PutUint32(cdb[2:], lba)
	binary.BigEndian.PutUint16(cdb[7:], blocks)
	return cdb
}

func write10(lba uint32, blocks uint16) []byte {
	cdb := read10(lba, blocks)
	cdb[0] = 0x2A
	return cdb
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestLoginNegotiation(t *testing.T) {
	f := newFake(t, fakeConfig{keys: map[string]string{"MaxBurstLength": "131072", "MaxRecvDataSegmentLength": "16384"}})
	s := dial(t, f, baseConfig())
	n := s.Negotiated()
	assert.Equal(t, "131072", n["MaxBurstLength"])
	assert.Equal(t, "65536", n["FirstBurstLength"])
	assert.Equal(t, "Yes", n["InitialR2T"]) // OR of the initiator's Yes and the fake's No
	assert.Equal(t, "Yes", n["ImmediateData"])
	assert.Equal(t, "None", n["HeaderDigest"])
	assert.Equal(t, "262144", n["MaxRecvDataSegmentLength"])
	assert.Equal(t, "16384", n[initiator.TargetMaxRecvDataSegmentLengthKey])
	assert.Equal(t, "1", n["TargetPortalGroupTag"])
	assert.Equal(t, uint16(1), s.TSIH())
	assert.Equal(t, byte(0x80), s.ISID()[0], "random ISID type")
	require.NoError(t, s.NOP(testCtx(t)))
	require.NoError(t, s.Ping(testCtx(t), []byte("ping data")))
	require.NoError(t, s.Logout(testCtx(t), initiator.LogoutCloseSession))
	<-s.Done()
	assert.ErrorIs(t, s.Err(), initiator.ErrSessionClosed)
	_, err := s.Command(testCtx(t), initiator.Request{CDB: []byte{0, 0, 0, 0, 0, 0}})
	assert.ErrorIs(t, err, initiator.ErrSessionClosed)
}

func TestLoginUnknownParamIsNotUnderstood(t *testing.T) {
	f := newFake(t, fakeConfig{})
	cfg := baseConfig()
	cfg.Params = map[string]string{"X-org.odxtgt.probe": "1", "MaxOutstandingR2T": "8"}
	s := dial(t, f, cfg)
	assert.Equal(t, iscsi.ValueNotUnderstood, s.Negotiated()["X-org.odxtgt.probe"])
	assert.Equal(t, "4", s.Negotiated()["MaxOutstandingR2T"])
}

func TestLoginCHAP(t *testing.T) {
	chap := fakeConfig{chapUser: "alice", chapSecret: "alice-secret-12", mutualUser: "tgt", mutualSecret: "target-secret-1"}
	tests := []struct {
		name    string
		fake    fakeConfig
		chap    *initiator.CHAPConfig
		wantErr any
	}{
		{"one-way default algorithms", chap, &initiator.CHAPConfig{User: "alice", Secret: "alice-secret-12"}, nil},
		{"one-way MD5", chap, &initiator.CHAPConfig{User: "alice", Secret: "alice-secret-12",
			Algorithms: []iscsi.CHAPAlgorithm{iscsi.CHAPMD5}}, nil},
		{"one-way SHA-1", chap, &initiator.CHAPConfig{User: "alice", Secret: "alice-secret-12",
			Algorithms: []iscsi.CHAPAlgorithm{iscsi.CHAPSHA1}}, nil},
		{"mutual SHA-256", chap, &initiator.CHAPConfig{User: "alice", Secret: "alice-secret-12",
			MutualUser: "tgt", MutualSecret: "target-secret-1", Algorithms: []iscsi.CHAPAlgorithm{iscsi.CHAPSHA256}}, nil},
		{"mutual SHA3-256", chap, &initiator.CHAPConfig{User: "alice", Secret: "alice-secret-12",
			MutualUser: "tgt", MutualSecret: "target-secret-1"}, nil},
		{"wrong secret", chap, &initiator.CHAPConfig{User: "alice", Secret: "wrong-secret-12"},
			&initiator.LoginError{Class: 2, Detail: 1}},
		{"wrong user", chap, &initiator.CHAPConfig{User: "bob", Secret: "alice-secret-12"},
			&initiator.LoginError{Class: 2, Detail: 1}},
		{"target fails mutual", chap, &initiator.CHAPConfig{User: "alice", Secret: "alice-secret-12",
			MutualUser: "tgt", MutualSecret: "another-secret"}, &initiator.NegotiationError{}},
		{"target name mismatch", chap, &initiator.CHAPConfig{User: "alice", Secret: "alice-secret-12",
			MutualUser: "other", MutualSecret: "target-secret-1"}, &initiator.NegotiationError{}},
		{"target requires CHAP", chap, nil, &initiator.LoginError{Class: 2, Detail: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.fake)
			cfg := baseConfig()
			cfg.CHAP = tt.chap
			s, err := initiator.Dial(testCtx(t), f.addr(), cfg)
			switch want := tt.wantErr.(type) {
			case nil:
				require.NoError(t, err)
				require.NoError(t, s.NOP(testCtx(t)))
				require.NoError(t, s.Close())
			case *initiator.LoginError:
				var le *initiator.LoginError
				require.ErrorAs(t, err, &le)
				assert.Equal(t, want, le)
			case *initiator.NegotiationError:
				var ne *initiator.NegotiationError
				require.ErrorAs(t, err, &ne)
			}
		})
	}
}

func TestLoginRefused(t *testing.T) {
	f := newFake(t, fakeConfig{loginFail: [2]byte{3, 1}})
	_, err := initiator.Dial(testCtx(t), f.addr(), baseConfig())
	var le *initiator.LoginError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, byte(3), le.Class)
	assert.Equal(t, byte(1), le.Detail)

	f = newFake(t, fakeConfig{})
	cfg := baseConfig()
	cfg.TargetName = "iqn.2024-01.org.odxtgt:nonexistent"
	_, err = initiator.Dial(testCtx(t), f.addr(), cfg)
	require.ErrorAs(t, err, &le)
}

func TestLoginTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			buf := make([]byte, 1024)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = initiator.Dial(ctx, ln.Addr().String(), baseConfig())
	require.Error(t, err)
	cfg := baseConfig()
	cfg.Timeout = 50 * time.Millisecond
	_, err = initiator.Dial(context.Background(), ln.Addr().String(), cfg)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestReadWrite(t *testing.T) {
	tests := []struct {
		name   string
		fake   fakeConfig
		params map[string]string
		digest bool
	}{
		{name: "defaults"},
		{name: "no immediate data, InitialR2T", params: map[string]string{"ImmediateData": "No"}},
		{name: "unsolicited data", params: map[string]string{"InitialR2T": "No", "FirstBurstLength": "16384"}},
		{name: "immediate and unsolicited", params: map[string]string{"InitialR2T": "No", "ImmediateData": "Yes",
			"FirstBurstLength": "20000"}},
		{name: "small bursts, many R2Ts", params: map[string]string{"MaxBurstLength": "4096", "FirstBurstLength": "1024",
			"MaxOutstandingR2T": "3"}},
		{name: "small segments both ways", params: map[string]string{"MaxRecvDataSegmentLength": "512"},
			fake: fakeConfig{keys: map[string]string{"MaxRecvDataSegmentLength": "1024"}}},
		{name: "status in Data-In", fake: fakeConfig{statusInData: true, dataInSize: 3000}},
		{name: "digests", digest: true, params: map[string]string{"InitialR2T": "No", "MaxBurstLength": "8192"},
			fake: fakeConfig{statusInData: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.fake)
			cfg := baseConfig()
			cfg.Params = tt.params
			cfg.HeaderDigest, cfg.DataDigest = tt.digest, tt.digest
			s := dial(t, f, cfg)
			if tt.digest {
				assert.Equal(t, "CRC32C", s.Negotiated()["HeaderDigest"])
				assert.Equal(t, "CRC32C", s.Negotiated()["DataDigest"])
			}
			ctx := testCtx(t)
			lba := uint32(0)
			for _, blocks := range []uint16{1, 3, 16, 129, 600} {
				data := randomBytes(int(blocks) * fakeBlock)
				resp, err := s.Command(ctx, initiator.Request{CDB: write10(lba, blocks), DataOut: data})
				require.NoError(t, err, "write %d blocks", blocks)
				assert.Equal(t, scsi.StatusGood, resp.Status)
				resp, err = s.Command(ctx, initiator.Request{CDB: read10(lba, blocks), ReadLen: len(data)})
				require.NoError(t, err, "read %d blocks", blocks)
				assert.Equal(t, scsi.StatusGood, resp.Status)
				require.Equal(t, data, resp.DataIn, "read back %d blocks", blocks)
				assert.False(t, resp.ResidualUnderflow || resp.ResidualOverflow)
				lba += uint32(blocks)
			}
		})
	}
}

func TestConcurrentCommandsRespectWindow(t *testing.T) {
	f := newFake(t, fakeConfig{depth: 2})
	cfg := baseConfig()
	cfg.Params = map[string]string{"MaxBurstLength": "8192", "MaxOutstandingR2T": "2"}
	cfg.InitialCmdSN = 0xFFFFFFF0 // wraps during the test
	s := dial(t, f, cfg)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lba := uint32(i * 40)
			data := randomBytes(24 * fakeBlock)
			if _, err := s.Command(ctx, initiator.Request{CDB: write10(lba, 24), DataOut: data, Attr: scsi.TaskSimple}); err != nil {
				errs <- err
				return
			}
			resp, err := s.Command(ctx, initiator.Request{CDB: read10(lba, 24), ReadLen: len(data)})
			if err != nil {
				errs <- err
				return
			}
			if string(resp.DataIn) != string(data) {
				errs <- fmt.Errorf("command %d: data mismatch", i)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCheckConditionAndResiduals(t *testing.T) {
	for _, statusInData := range []bool{false, true} {
		t.Run(fmt.Sprintf("statusInData=%v", statusInData), func(t *testing.T) {
			f := newFake(t, fakeConfig{statusInData: statusInData})
			s := dial(t, f, baseConfig())
			ctx := testCtx(t)

			resp, err := s.Command(ctx, initiator.Request{CDB: []byte{0x00, 0, 0, 0, 0, 0}})
			require.NoError(t, err)
			assert.Equal(t, scsi.StatusGood, resp.Status)

			resp, err = s.Command(ctx, initiator.Request{CDB: []byte{0xFF, 0, 0, 0, 0, 0}, ReadLen: 36})
			require.NoError(t, err)
			assert.Equal(t, scsi.StatusCheckCondition, resp.Status)
			require.NotNil(t, resp.Sense)
			assert.Equal(t, scsi.IllegalRequest, resp.Sense.Key)
			assert.Equal(t, scsi.ASCInvalidCommandOperationCode, resp.Sense.Code)
			assert.Len(t, resp.SenseRaw, 18)

			resp, err = s.Command(ctx, initiator.Request{CDB: read10(0, 1), ReadLen: 2048})
			require.NoError(t, err)
			assert.True(t, resp.ResidualUnderflow)
			assert.Equal(t, uint32(1536), resp.Residual)
			assert.Len(t, resp.DataIn, 512)

			resp, err = s.Command(ctx, initiator.Request{CDB: read10(0, 4), ReadLen: 1024})
			require.NoError(t, err)
			assert.True(t, resp.ResidualOverflow)
			assert.Equal(t, uint32(1024), resp.Residual)
			assert.Len(t, resp.DataIn, 1024)
		})
	}
}

func TestRequestValidation(t *testing.T) {
	f := newFake(t, fakeConfig{})
	s := dial(t, f, baseConfig())
	ctx := testCtx(t)
	_, err := s.Command(ctx, initiator.Request{})
	assert.Error(t, err)
	_, err = s.Command(ctx, initiator.Request{CDB: read10(0, 1), ReadLen: 512, DataOut: make([]byte, 512)})
	assert.ErrorIs(t, err, initiator.ErrBidirectional)
	_, err = s.Command(ctx, initiator.Request{CDB: read10(0, 1), ReadLen: -1})
	assert.Error(t, err)
	// A 32-byte CDB travels in an Extended CDB AHS; the fake does not know
	// opcode 7Fh and says so.
	cdb := make([]byte, 32)
	cdb[0] = 0x7F
	resp, err := s.Command(ctx, initiator.Request{CDB: cdb})
	require.NoError(t, err)
	assert.Equal(t, scsi.StatusCheckCondition, resp.Status)
}

func TestTargetNOPIn(t *testing.T) {
	f := newFake(t, fakeConfig{})
	s := dial(t, f, baseConfig())
	require.NoError(t, s.NOP(testCtx(t)))
	f.ping([]byte("are you there?"))
	select {
	case got := <-f.pingAnswers:
		assert.Equal(t, []byte("are you there?"), got)
	case <-testCtx(t).Done():
		t.Fatal("no NOP-Out answer")
	}
	require.NoError(t, s.NOP(testCtx(t)))
}

func TestTaskManagement(t *testing.T) {
	f := newFake(t, fakeConfig{})
	s := dial(t, f, baseConfig())
	ctx := testCtx(t)
	hang := initiator.Request{LUN: 3, CDB: []byte{opHang, 0, 0, 0, 0, 0}}

	p1, err := s.Start(ctx, hang)
	require.NoError(t, err)
	resp, err := s.TaskMgmt(ctx, initiator.TMFAbortTask, 3, p1.ITT)
	require.NoError(t, err)
	assert.Equal(t, initiator.TMFFunctionComplete, resp)
	_, err = p1.Wait(ctx)
	assert.ErrorIs(t, err, initiator.ErrTaskAborted)

	resp, err = s.TaskMgmt(ctx, initiator.TMFAbortTask, 3, 0x12345)
	require.NoError(t, err)
	assert.Equal(t, initiator.TMFTaskDoesNotExist, resp)

	p2, err := s.Start(ctx, hang)
	require.NoError(t, err)
	p3, err := s.Start(ctx, hang)
	require.NoError(t, err)
	resp, err = s.TaskMgmt(ctx, initiator.TMFLogicalUnitReset, 3, 0)
	require.NoError(t, err)
	assert.Equal(t, initiator.TMFFunctionComplete, resp)
	for _, p := range []*initiator.Pending{p2, p3} {
		_, err = p.Wait(ctx)
		assert.ErrorIs(t, err, initiator.ErrTaskAborted)
	}

	resp, err = s.TaskMgmt(ctx, initiator.TMFClearACA, 3, 0)
	require.NoError(t, err)
	assert.Equal(t, initiator.TMFFunctionNotSupported, resp)

	// The session still works.
	_, err = s.Command(ctx, initiator.Request{CDB: []byte{0, 0, 0, 0, 0, 0}})
	require.NoError(t, err)
}

func TestCancelAndClose(t *testing.T) {
	f := newFake(t, fakeConfig{})
	s, err := initiator.Dial(testCtx(t), f.addr(), baseConfig())
	require.NoError(t, err)
	hang := initiator.Request{CDB: []byte{opHang, 0, 0, 0, 0, 0}}

	ctx, cancel := context.WithCancel(testCtx(t))
	p, err := s.Start(ctx, hang)
	require.NoError(t, err)
	cancel()
	_, err = p.Wait(ctx)
	assert.ErrorIs(t, err, context.Canceled)

	p, err = s.Start(testCtx(t), hang)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := p.Wait(context.Background())
		done <- err
	}()
	require.NoError(t, s.Close())
	assert.ErrorIs(t, <-done, initiator.ErrSessionClosed)
	assert.ErrorIs(t, s.NOP(testCtx(t)), initiator.ErrSessionClosed)
}

func TestDiscover(t *testing.T) {
	f := newFake(t, fakeConfig{extraTargets: 40})
	cfg := baseConfig()
	cfg.Params = map[string]string{"MaxRecvDataSegmentLength": "1024"}
	recs, err := initiator.Discover(testCtx(t), f.addr(), cfg)
	require.NoError(t, err)
	require.Len(t, recs, 41)
	assert.Equal(t, fakeTarget, recs[0].Name)
	assert.Equal(t, []string{f.addr() + ",1"}, recs[0].Addresses)
	assert.Equal(t, fakeTarget+"-0039", recs[40].Name)
	assert.Equal(t, []string{f.addr() + ",1", "[::1]:3260,2"}, recs[40].Addresses)

	// A discovery session refuses SCSI commands locally.
	cfg.Discovery = true
	s := dial(t, f, cfg)
	_, err = s.Command(testCtx(t), initiator.Request{CDB: []byte{0, 0, 0, 0, 0, 0}})
	assert.Error(t, err)
	assert.NotContains(t, s.Negotiated(), "MaxBurstLength")
}

func TestParseSendTargets(t *testing.T) {
	_, err := initiator.ParseSendTargets(iscsi.TextKeys{{Key: "TargetAddress", Value: "a"}})
	assert.Error(t, err)
	_, err = initiator.ParseSendTargets(iscsi.TextKeys{{Key: "TargetName", Value: "a"}, {Key: "Foo", Value: "b"}})
	assert.Error(t, err)
	recs, err := initiator.ParseSendTargets(nil)
	require.NoError(t, err)
	assert.Empty(t, recs)
}

// TestTargetProtocolErrors makes the fake break rules and checks the
// initiator reports each one.
func TestTargetProtocolErrors(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(p *iscsi.PDU)
		write     bool
		violation bool // reported in Violations rather than by the command
		want      string
	}{
		{name: "DataSN gap", mutate: func(p *iscsi.PDU) {
			if p.Opcode() == iscsi.OpDataIn && p.Uint32(iscsi.OffDataSN) == 1 {
				p.PutUint32(iscsi.OffDataSN, 2)
			}
		}, want: "DataSN 2, expected 1"},
		{name: "Data-In beyond buffer", mutate: func(p *iscsi.PDU) {
			if p.Opcode() == iscsi.OpDataIn && p.Final() {
				p.PutUint32(iscsi.OffBufferOffset, p.Uint32(iscsi.OffBufferOffset)+512)
			}
		}, want: "beyond the expected"},
		{name: "wrong residual", mutate: func(p *iscsi.PDU) {
			if p.Opcode() == iscsi.OpSCSIResponse {
				p.BHS[1] |= 0x02
				p.PutUint32(iscsi.OffResidual, 512)
			}
		}, want: "residual underflow"},
		{name: "ExpDataSN", mutate: func(p *iscsi.PDU) {
			if p.Opcode() == iscsi.OpSCSIResponse {
				p.PutUint32(iscsi.OffDataSN, 99)
			}
		}, want: "ExpDataSN 99"},
		{name: "R2T beyond buffer", write: true, mutate: func(p *iscsi.PDU) {
			if p.Opcode() == iscsi.OpR2T {
				p.PutUint32(iscsi.OffDesiredDTL, 1<<20)
			}
		}, want: "beyond the"},
		{name: "R2TSN", write: true, mutate: func(p *iscsi.PDU) {
			if p.Opcode() == iscsi.OpR2T {
				p.PutUint32(iscsi.OffDataSN, p.Uint32(iscsi.OffDataSN)+5)
			}
		}, want: "R2TSN"},
		{name: "StatSN skipped", violation: true, mutate: func(p *iscsi.PDU) {
			if p.Opcode() == iscsi.OpSCSIResponse {
				p.PutUint32(iscsi.OffStatSN, p.Uint32(iscsi.OffStatSN)+7)
			}
		}, want: "StatSN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, fakeConfig{mutate: tt.mutate, dataInSize: 1024})
			cfg := baseConfig()
			cfg.Params = map[string]string{"ImmediateData": "No", "MaxBurstLength": "2048"}
			s, err := initiator.Dial(testCtx(t), f.addr(), cfg)
			require.NoError(t, err)
			defer s.Close()
			ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
			defer cancel()
			req := initiator.Request{CDB: read10(0, 4), ReadLen: 2048}
			if tt.write {
				req = initiator.Request{CDB: write10(0, 4), DataOut: make([]byte, 2048)}
			}
			_, err = s.Command(ctx, req)
			if tt.violation {
				require.NoError(t, err)
				require.NotEmpty(t, s.Violations())
				assert.Contains(t, s.Violations()[0].Error(), tt.want)
				return
			}
			var pe *initiator.ProtocolError
			require.ErrorAs(t, err, &pe)
			assert.Contains(t, pe.Error(), tt.want)
		})
	}
}

func TestRawPDUs(t *testing.T) {
	f := newFake(t, fakeConfig{})
	s := dial(t, f, baseConfig())
	ctx := testCtx(t)

	itt := s.NewITT()
	w := s.Watch(itt)
	defer w.Stop()
	p := &iscsi.PDU{Data: []byte("raw")}
	p.SetOpcode(iscsi.OpNOPOut)
	p.SetImmediate(true)
	p.SetFinal(true)
	p.SetITT(itt)
	p.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
	require.NoError(t, s.SendRaw(ctx, p, initiator.RawCmdSN))
	select {
	case r := <-w.C:
		assert.Equal(t, iscsi.OpNOPIn, r.Opcode())
		assert.Equal(t, []byte("raw"), r.Data)
	case <-ctx.Done():
		t.Fatal("no answer to the raw NOP-Out")
	}

	// A raw write answered by hand: the R2T comes to the watcher.
	itt = s.NewITT()
	w2 := s.Watch(itt)
	defer w2.Stop()
	cmd := &iscsi.PDU{}
	cmd.SetOpcode(iscsi.OpSCSICommand)
	cmd.BHS[1] = 0xA1 // F, W, SIMPLE
	cmd.SetITT(itt)
	cmd.PutUint32(iscsi.OffEDTL, 512)
	copy(cmd.BHS[iscsi.OffCDB:], write10(5, 1))
	require.NoError(t, s.SendRaw(ctx, cmd, initiator.RawCmdSN))
	r2t := <-w2.C
	require.Equal(t, iscsi.OpR2T, r2t.Opcode())
	out := &iscsi.PDU{Data: make([]byte, 512)}
	out.SetOpcode(iscsi.OpDataOut)
	out.SetFinal(true)
	out.SetITT(itt)
	out.PutUint32(iscsi.OffTTT, r2t.Uint32(iscsi.OffTTT))
	require.NoError(t, s.SendRaw(ctx, out, 0))
	status := <-w2.C
	assert.Equal(t, iscsi.OpSCSIResponse, status.Opcode())
	assert.Equal(t, byte(scsi.StatusGood), status.BHS[3])

	// The session's own commands still line up after the raw ones.
	require.NoError(t, s.NOP(ctx))
	_, err := s.Command(ctx, initiator.Request{CDB: []byte{0, 0, 0, 0, 0, 0}})
	require.NoError(t, err)
}

func TestWatcherClosedWithSession(t *testing.T) {
	f := newFake(t, fakeConfig{})
	s, err := initiator.Dial(testCtx(t), f.addr(), baseConfig())
	require.NoError(t, err)
	w := s.Watch(iscsi.ReservedTag)
	require.NoError(t, s.Close())
	_, ok := <-w.C
	assert.False(t, ok)
	w2 := s.Watch(5)
	_, ok = <-w2.C
	assert.False(t, ok)
	assert.True(t, errors.Is(s.Err(), initiator.ErrSessionClosed))
}
