package iscsi

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// This file is a small in-process harness: a real Server connection driven
// over net.Pipe by a raw Framer, so tests read like the protocol.

const (
	testTarget    = "iqn.2024-01.org.odxtgt:test"
	testInitiator = "iqn.2024-01.org.odxtgt:init"
	testBlock     = 512
	testLUSize    = 1 << 20
	opSlow        = 0xC0 // test command: runs until released or aborted
)

func full(n int) []byte { return slices.Repeat([]byte{0xFF}, n) }

// testTable is the command table of the test logical units: enough of
// READ and WRITE on the memory store, and a slow command.
func testTable(gate chan struct{}) *scsi.Table {
	table, err := scsi.NewTable(scsi.CommandSet{Commands: []scsi.CommandDesc{
		{Name: "TEST UNIT READY", Opcode: 0x00, Usage: full(6), Handler: func(*scsi.Command) error { return nil }},
		{Name: "INQUIRY", Opcode: 0x12, Usage: full(6), Direction: scsi.DirIn, Flags: scsi.FlagIgnoresUA | scsi.FlagNoLU,
			Handler: func(cmd *scsi.Command) error {
				data := make([]byte, 36)
				if !cmd.LU().Present() {
					data[0] = 0x7F
				}
				cmd.SetDataIn(data, int(binary.BigEndian.Uint16(cmd.CDB[3:])))
				return nil
			}},
		{Name: "READ(10)", Opcode: 0x28, Usage: full(10), Direction: scsi.DirIn,
			Handler: func(cmd *scsi.Command) error {
				lba, n := binary.BigEndian.Uint32(cmd.CDB[2:]), int(binary.BigEndian.Uint16(cmd.CDB[7:]))*testBlock
				if int64(lba)*testBlock+int64(n) > testLUSize {
					return scsi.LBAOutOfRange()
				}
				return cmd.LU().Store.ReadAt(cmd.AllocDataIn(n), int64(lba)*testBlock)
			}},
		{Name: "WRITE(10)", Opcode: 0x2A, Usage: full(10), Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium,
			Handler: func(cmd *scsi.Command) error {
				lba, n := binary.BigEndian.Uint32(cmd.CDB[2:]), int(binary.BigEndian.Uint16(cmd.CDB[7:]))*testBlock
				data, err := cmd.TakeDataOut(n)
				if err != nil {
					return err
				}
				if int64(lba)*testBlock+int64(n) > testLUSize {
					return scsi.LBAOutOfRange()
				}
				return cmd.LU().Store.WriteAt(data, int64(lba)*testBlock, false)
			}},
		{Name: "SLOW", Opcode: opSlow, Usage: full(6),
			Handler: func(cmd *scsi.Command) error {
				select {
				case <-gate:
				case <-cmd.Context().Done():
				}
				return nil
			}},
	}})
	if err != nil {
		panic(err)
	}
	return table
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ISCSI_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// tester is one initiator connection to a test server.
type tester struct {
	t      *testing.T
	srv    *Server
	lu     *scsi.LU
	store  *backstore.Memory
	gate   chan struct{}
	nc     net.Conn
	fr     *Framer
	isid   [6]byte
	itt    uint32
	cmdSN  uint32
	statSN uint32
	tsih   uint16
}

// newTester builds a server with one target, TPG 1, LUN 0 on a memory
// store, applies mods to its configuration and connects.
func newTester(t *testing.T, mods ...func(*Config)) *tester {
	t.Helper()
	gate := make(chan struct{})
	table := testTable(gate)
	log := testLogger(t)
	store := backstore.NewMemory(testLUSize, testBlock)
	lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "lu0"}, Store: store, Table: table, Logger: log})
	cfg := Config{
		Targets: []*Target{{Name: testTarget, Alias: "test target", TPGs: []*TPG{{
			Tag: 1, RelativePortID: 1, Portals: []string{"127.0.0.1:0"}, LUNs: map[uint64]*scsi.LU{0: lu},
		}}}},
		Absent:        scsi.NewAbsentLU(table, log),
		Logger:        log,
		NOPInInterval: time.Hour,
		NOPInTimeout:  time.Hour,
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := NewServer(cfg)
	require.NoError(t, err)
	tt := &tester{t: t, srv: srv, lu: lu, store: store, gate: gate, isid: [6]byte{0x80, 0, 0, 0, 0, 1}}
	t.Cleanup(func() {
		close(gate)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
	})
	tt.connect()
	return tt
}

// connect opens a new connection (a fresh initiator view) to the server.
func (tt *tester) connect() {
	a, b := net.Pipe()
	tt.srv.serveConn(b, tt.srv.portals[0])
	tt.nc = a
	tt.fr = NewFramer(a, a)
	tt.itt = 0
	tt.t.Cleanup(func() { a.Close() })
}

// second returns another tester on the same server, for a second session.
func (tt *tester) second(isid byte) *tester {
	o := &tester{t: tt.t, srv: tt.srv, lu: tt.lu, store: tt.store, gate: tt.gate, isid: [6]byte{0x80, 0, 0, 0, 0, isid}}
	o.connect()
	return o
}

func (tt *tester) send(p *PDU) {
	tt.t.Helper()
	require.NoError(tt.t, tt.fr.WritePDU(p))
}

// recv reads the next PDU; its data is copied.
func (tt *tester) recv() *PDU {
	tt.t.Helper()
	p, err := tt.fr.ReadPDU()
	require.NoError(tt.t, err)
	p.Data = slices.Clone(p.Data)
	p.AHS = slices.Clone(p.AHS)
	if isStatus(p) {
		sn := p.Uint32(OffStatSN)
		require.Equal(tt.t, tt.statSN, sn, "StatSN of %s", p.Opcode())
		tt.statSN = sn + 1
	}
	return p
}

// isStatus reports whether a target PDU takes a StatSN.
func isStatus(p *PDU) bool {
	switch p.Opcode() {
	case OpSCSIResponse, OpTaskMgmtResp, OpTextResp, OpLogoutResp, OpReject:
		return true
	case OpDataIn:
		return p.Flags()&dataInStatus != 0
	case OpNOPIn:
		return p.ITT() != ReservedTag
	}
	return false
}

// want reads the next PDU and checks its opcode.
func (tt *tester) want(op Opcode) *PDU {
	tt.t.Helper()
	p := tt.recv()
	require.Equal(tt.t, op, p.Opcode(), "got %s", p.Opcode())
	return p
}

// wantClosed checks that the target closes the connection, skipping any
// PDUs still on their way.
func (tt *tester) wantClosed() {
	tt.t.Helper()
	for {
		_, err := tt.fr.ReadPDU()
		if err != nil {
			require.True(tt.t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.ErrClosedPipe), "%v", err)
			return
		}
	}
}

// wantIdle checks that the target sends nothing for a while.
func (tt *tester) wantIdle() {
	tt.t.Helper()
	require.NoError(tt.t, tt.nc.SetReadDeadline(time.Now().Add(time.Second)))
	_, err := tt.fr.ReadPDU()
	require.ErrorIs(tt.t, err, os.ErrDeadlineExceeded)
	require.NoError(tt.t, tt.nc.SetReadDeadline(time.Time{}))
}

// loginPDU builds a Login Request.
func (tt *tester) loginPDU(csg, nsg byte, transit bool, keys TextKeys) *PDU {
	p := &PDU{Data: keys.Encode()}
	p.SetOpcode(OpLoginReq)
	p.SetImmediate(true)
	p.BHS[1] = csg<<2 | nsg
	if transit {
		p.BHS[1] |= loginFlagTransit
	}
	copy(p.BHS[offISID:], tt.isid[:])
	p.PutUint16(offTSIH, tt.tsih)
	p.SetITT(tt.itt)
	p.PutUint32(offLoginCmdSN, tt.cmdSN)
	p.PutUint32(offLoginExpStatSN, tt.statSN)
	return p
}

// loginStep sends a Login Request and returns the response and its keys.
func (tt *tester) loginStep(csg, nsg byte, transit bool, keys TextKeys) (*PDU, TextKeys) {
	tt.t.Helper()
	tt.send(tt.loginPDU(csg, nsg, transit, keys))
	p, err := tt.fr.ReadPDU()
	require.NoError(tt.t, err)
	require.Equal(tt.t, OpLoginResp, p.Opcode())
	tt.statSN = p.Uint32(OffStatSN) + 1
	resp, err := ParseText(p.Data)
	require.NoError(tt.t, err)
	p.Data = slices.Clone(p.Data)
	return p, resp
}

// loginStatus returns a Login Response's status.
func loginStatus(p *PDU) LoginStatus {
	return LoginStatus(p.Uint16(offStatusClass))
}

func kv(pairs ...string) TextKeys {
	var k TextKeys
	for i := 0; i+1 < len(pairs); i += 2 {
		k.Add(pairs[i], pairs[i+1])
	}
	return k
}

// normalKeys are the leading keys of a normal session.
func normalKeys(extra ...string) TextKeys {
	return kv(append([]string{"InitiatorName", testInitiator, "TargetName", testTarget, "SessionType", "Normal"}, extra...)...)
}

// opKeys are typical operational offers; extra pairs replace or add.
func opKeys(extra ...string) TextKeys {
	k := kv("HeaderDigest", "None", "DataDigest", "None", "InitialR2T", "No", "ImmediateData", "Yes",
		"MaxRecvDataSegmentLength", "65536", "MaxBurstLength", "262144", "FirstBurstLength", "65536",
		"MaxOutstandingR2T", "4", "ErrorRecoveryLevel", "0")
	for i := 0; i+1 < len(extra); i += 2 {
		k.Set(extra[i], extra[i+1])
	}
	return k
}

// login runs a leading login straight into the operational stage with
// the given operational keys and checks it succeeds; it returns the keys
// of the final response.
func (tt *tester) login(ops TextKeys) TextKeys {
	tt.t.Helper()
	return tt.finishLogin(append(normalKeys(), ops...))
}

// finishLogin sends the operational stage's last request and checks the
// login succeeds.
func (tt *tester) finishLogin(keys TextKeys) TextKeys {
	tt.t.Helper()
	p, resp := tt.loginStep(stageOperational, stageFullFeature, true, keys)
	require.Equal(tt.t, LoginSuccess, loginStatus(p), "login failed")
	require.NotZero(tt.t, p.Flags()&loginFlagTransit)
	tt.tsih = p.Uint16(offTSIH)
	tt.enterFFP(resp)
	return resp
}

// enterFFP applies the negotiated digests after a successful login.
func (tt *tester) enterFFP(resp TextKeys) {
	hd, _ := resp.Get("HeaderDigest")
	dd, _ := resp.Get("DataDigest")
	tt.fr.HeaderDigest, tt.fr.DataDigest = hd == "CRC32C", dd == "CRC32C"
	tt.fr.MaxRecvDataSegmentLength = MaxDataSegmentLength
}

// loginDefault logs in with opKeys and clears the power-on unit attention.
func (tt *tester) loginDefault(extra ...string) TextKeys {
	tt.t.Helper()
	resp := tt.login(opKeys(extra...))
	tt.clearUA()
	return resp
}

// clearUA absorbs the power-on unit attention of a new nexus.
func (tt *tester) clearUA() {
	tt.t.Helper()
	itt := tt.command([]byte{0x00, 0, 0, 0, 0, 0}, cmdOpts{})
	p := tt.want(OpSCSIResponse)
	require.Equal(tt.t, itt, p.ITT())
	require.Equal(tt.t, byte(scsi.StatusCheckCondition), p.BHS[3])
}

// cmdOpts shape a SCSI Command PDU.
type cmdOpts struct {
	read, write bool
	edtl        uint32
	data        []byte // immediate data
	notFinal    bool   // F=0: unsolicited Data-Out follows
	immediate   bool
	lun         uint64
	itt         *uint32 // force an ITT
	cmdSN       *uint32 // force a CmdSN (not advancing the tester's)
}

// command sends a SCSI Command and returns its ITT.
func (tt *tester) command(cdb []byte, o cmdOpts) uint32 {
	tt.t.Helper()
	p := tt.commandPDU(cdb, o)
	tt.send(p)
	return p.ITT()
}

func (tt *tester) commandPDU(cdb []byte, o cmdOpts) *PDU {
	p := &PDU{Data: o.data}
	p.SetOpcode(OpSCSICommand)
	p.SetImmediate(o.immediate)
	if !o.notFinal {
		p.BHS[1] |= 0x80
	}
	if o.read {
		p.BHS[1] |= cmdFlagRead
	}
	if o.write {
		p.BHS[1] |= cmdFlagWrite
	}
	p.BHS[1] |= 1 // SIMPLE
	p.SetLUN(scsi.EncodeLUN(o.lun))
	itt := tt.nextITT()
	if o.itt != nil {
		itt = *o.itt
	}
	p.SetITT(itt)
	p.PutUint32(OffEDTL, o.edtl)
	p.PutUint32(OffCmdSN, tt.takeCmdSN(o.immediate, o.cmdSN))
	p.PutUint32(OffExpStatSN, tt.statSN)
	copy(p.BHS[OffCDB:], cdb)
	return p
}

func (tt *tester) nextITT() uint32 {
	tt.itt++
	return tt.itt
}

func (tt *tester) takeCmdSN(immediate bool, force *uint32) uint32 {
	if force != nil {
		return *force
	}
	sn := tt.cmdSN
	if !immediate {
		tt.cmdSN++
	}
	return sn
}

// dataOut sends one Data-Out PDU.
func (tt *tester) dataOut(itt, ttt, dataSN, offset uint32, data []byte, final bool) {
	tt.t.Helper()
	p := &PDU{Data: data}
	p.SetOpcode(OpDataOut)
	p.SetFinal(final)
	p.SetITT(itt)
	p.PutUint32(OffTTT, ttt)
	p.PutUint32(OffExpStatSN, tt.statSN)
	p.PutUint32(OffDataSN, dataSN)
	p.PutUint32(OffBufferOffset, offset)
	tt.send(p)
}

// result is what came back for a command.
type result struct {
	status   scsi.Status
	data     []byte
	sense    *scsi.Sense
	flags    byte // O/U bits of the status PDU
	residual uint32
	dataPDUs int
}

// wantResult collects Data-In PDUs and the status of a command.
func (tt *tester) wantResult(itt uint32) result {
	tt.t.Helper()
	var r result
	for {
		p := tt.recv()
		require.Equal(tt.t, itt, p.ITT(), "%s for another task", p.Opcode())
		switch p.Opcode() {
		case OpDataIn:
			require.Equal(tt.t, uint32(r.dataPDUs), p.Uint32(OffDataSN), "DataSN")
			require.Equal(tt.t, uint32(len(r.data)), p.Uint32(OffBufferOffset), "buffer offset")
			r.data = append(r.data, p.Data...)
			r.dataPDUs++
			if p.Flags()&dataInStatus != 0 {
				r.status = scsi.Status(p.BHS[3])
				r.flags = p.Flags() & 0x06
				r.residual = p.Uint32(OffResidual)
				return r
			}
		case OpSCSIResponse:
			r.status = scsi.Status(p.BHS[3])
			r.flags = p.Flags() & 0x1E
			r.residual = p.Uint32(OffResidual)
			if len(p.Data) >= 2 {
				n := int(binary.BigEndian.Uint16(p.Data))
				s, err := scsi.ParseSense(p.Data[2 : 2+n])
				require.NoError(tt.t, err)
				r.sense = s
			}
			return r
		default:
			tt.t.Fatalf("unexpected %s", p.Opcode())
		}
	}
}

// wantR2T reads an R2T for itt and returns its TTT, offset and length.
func (tt *tester) wantR2T(itt uint32) (ttt, r2tSN, offset, length uint32) {
	tt.t.Helper()
	p := tt.want(OpR2T)
	require.Equal(tt.t, itt, p.ITT())
	return p.Uint32(OffTTT), p.Uint32(OffDataSN), p.Uint32(OffBufferOffset), p.Uint32(OffDesiredDTL)
}

// wantReject reads a Reject and checks its reason and the rejected
// header's opcode.
func (tt *tester) wantReject(reason RejectReason, op Opcode) {
	tt.t.Helper()
	p := tt.want(OpReject)
	require.Equal(tt.t, reason, RejectReason(p.BHS[2]), "reject reason")
	require.Len(tt.t, p.Data, BHSLength)
	require.Equal(tt.t, op, Opcode(p.Data[0]&0x3F))
}

// read10 and write10 build CDBs.
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

// pattern returns n bytes of a recognizable pattern.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ seed
	}
	return b
}

// tmf sends a Task Management Function Request and returns its ITT.
func (tt *tester) tmf(function byte, lun uint64, rtt, refCmdSN uint32) uint32 {
	p := &PDU{}
	p.SetOpcode(OpTaskMgmtReq)
	p.SetImmediate(true)
	p.BHS[1] = 0x80 | function
	p.SetLUN(scsi.EncodeLUN(lun))
	itt := tt.nextITT()
	p.SetITT(itt)
	p.PutUint32(offReferencedTag, rtt)
	p.PutUint32(OffCmdSN, tt.cmdSN)
	p.PutUint32(OffExpStatSN, tt.statSN)
	p.PutUint32(offRefCmdSN, refCmdSN)
	tt.send(p)
	return itt
}

// wantTMF reads a TMF response for itt and returns its response code.
func (tt *tester) wantTMF(itt uint32) byte {
	tt.t.Helper()
	p := tt.want(OpTaskMgmtResp)
	require.Equal(tt.t, itt, p.ITT())
	return p.BHS[2]
}

// text sends a Text Request; ttt other than ffffffff continues the
// exchange of the last one, with its ITT.
func (tt *tester) text(keys TextKeys, ttt uint32, final bool) uint32 {
	p := &PDU{Data: keys.Encode()}
	p.SetOpcode(OpTextReq)
	p.SetImmediate(true)
	p.SetFinal(final)
	itt := tt.itt
	if ttt == ReservedTag {
		itt = tt.nextITT()
	}
	p.SetITT(itt)
	p.PutUint32(OffTTT, ttt)
	p.PutUint32(OffCmdSN, tt.cmdSN)
	p.PutUint32(OffExpStatSN, tt.statSN)
	tt.send(p)
	return itt
}

// logout sends a Logout Request with the given reason.
func (tt *tester) logout(reason byte, cid uint16) uint32 {
	p := &PDU{}
	p.SetOpcode(OpLogoutReq)
	p.SetImmediate(true)
	p.BHS[1] = 0x80 | reason
	itt := tt.nextITT()
	p.SetITT(itt)
	p.PutUint16(offCID, cid)
	p.PutUint32(OffCmdSN, tt.cmdSN)
	p.PutUint32(OffExpStatSN, tt.statSN)
	tt.send(p)
	return itt
}

// ping sends a NOP-Out ping (ITT not ffffffff) and returns its ITT.
func (tt *tester) ping(immediate bool, data []byte) uint32 {
	p := &PDU{Data: data}
	p.SetOpcode(OpNOPOut)
	p.SetImmediate(immediate)
	p.SetFinal(true)
	itt := tt.nextITT()
	p.SetITT(itt)
	p.PutUint32(OffTTT, ReservedTag)
	p.PutUint32(OffCmdSN, tt.takeCmdSN(immediate, nil))
	p.PutUint32(OffExpStatSN, tt.statSN)
	tt.send(p)
	return itt
}
