package iscsi_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// This file attacks the real server over loopback TCP, as a hostile peer
// would: after each attack the server must still be up, a new session must
// still work and the server's goroutines must go back to what they were.

const hostileTarget = "iqn.2024-01.org.odxtgt:hostile"

// hostile is a running server under attack.
type hostile struct {
	t    *testing.T
	srv  *iscsi.Server
	addr string
	base int // goroutines before the attack
	n    atomic.Uint32
}

// newHostile starts a server with one 4 MiB logical unit, applying mods to
// its configuration.
func newHostile(t *testing.T, mods ...func(*iscsi.Config)) *hostile {
	t.Helper()
	lu, absent := newRWLU(t, "hostile", 4<<20)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("ISCSI_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := iscsi.Config{
		Targets: []*iscsi.Target{{Name: hostileTarget, TPGs: []*iscsi.TPG{{Tag: 1, Portals: []string{"127.0.0.1:0"},
			LUNs: map[uint64]*scsi.LU{0: lu}}}}},
		Absent: absent,
		Logger: log,
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := iscsi.NewServer(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	// Serve runs on a goroutine of its own and starts one accept loop
	// per portal: that is the baseline an attack must come back to.
	base := runtime.NumGoroutine() + 1 + len(srv.Addrs())
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
		assert.ErrorIs(t, <-served, iscsi.ErrServerClosed)
	})
	return &hostile{t: t, srv: srv, addr: srv.Addrs()[0].String(), base: base}
}

// initiatorName returns a fresh initiator name, so sessions do not
// reinstate each other.
func (h *hostile) initiatorName() string {
	return fmt.Sprintf("iqn.2024-01.org.odxtgt:peer-%d", h.n.Add(1))
}

// checkAlive logs in a new, well-behaved session and runs a write and a
// read on it.
func (h *hostile) checkAlive() {
	t := h.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := initiator.Dial(ctx, h.addr, initiator.Config{InitiatorName: h.initiatorName(), TargetName: hostileTarget})
	require.NoError(t, err, "a new session logs in")
	defer s.Close()
	// The first command of a new nexus may report the power-on unit
	// attention.
	_, err = s.Command(ctx, initiator.Request{CDB: rw10(0x28, 0, 1), ReadLen: 512})
	require.NoError(t, err)
	data := make([]byte, 512)
	data[0] = 0xA5
	resp, err := s.Command(ctx, initiator.Request{CDB: rw10(0x2A, 100, 1), DataOut: data})
	require.NoError(t, err)
	require.Equal(t, scsi.StatusGood, resp.Status, "a 512-byte write succeeds")
	resp, err = s.Command(ctx, initiator.Request{CDB: rw10(0x28, 100, 1), ReadLen: 512})
	require.NoError(t, err)
	require.Equal(t, scsi.StatusGood, resp.Status)
	require.Equal(t, data, resp.DataIn)
	require.NoError(t, s.Logout(ctx, initiator.LogoutCloseSession))
	assert.Empty(t, s.Violations())
}

// settle checks the server is alive and waits, bounded, for its
// goroutines to come back to the count before the attack.
func (h *hostile) settle() {
	h.t.Helper()
	h.checkAlive()
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > h.base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			h.t.Fatalf("%d goroutines, %d before the attack:\n%s", runtime.NumGoroutine(), h.base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func rw10(op byte, lba, blocks int) []byte {
	cdb := []byte{op, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(cdb[2:], uint32(lba))
	binary.BigEndian.PutUint16(cdb[7:], uint16(blocks))
	return cdb
}

// rawConn is a hand-driven initiator connection: it logs in with one
// Login Request and then sends whatever a test builds, reading only when
// asked.
type rawConn struct {
	t      *testing.T
	nc     net.Conn
	fr     *iscsi.Framer
	itt    uint32
	cmdSN  uint32
	statSN uint32
}

// Login Request fields used here (RFC 7143 11.12).
const (
	loginTransit   = 0x80
	offLoginCmdSN  = 24
	offLoginStatus = 36
)

// dialRaw opens a TCP connection to the server without logging in.
func (h *hostile) dialRaw() *rawConn {
	h.t.Helper()
	nc, err := net.Dial("tcp", h.addr)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { nc.Close() })
	return &rawConn{t: h.t, nc: nc, fr: iscsi.NewFramer(nc, nc)}
}

// rawLogin logs a raw connection in, straight from the operational stage
// to full feature phase, with the given operational keys.
func (h *hostile) rawLogin(ops ...string) *rawConn {
	h.t.Helper()
	c := h.dialRaw()
	keys := iscsi.TextKeys{{Key: "InitiatorName", Value: h.initiatorName()}, {Key: "TargetName", Value: hostileTarget},
		{Key: "SessionType", Value: "Normal"}, {Key: "MaxRecvDataSegmentLength", Value: "262144"}}
	for i := 0; i+1 < len(ops); i += 2 {
		keys.Set(ops[i], ops[i+1])
	}
	p := c.loginPDU(keys)
	require.NoError(h.t, c.fr.WritePDU(p))
	resp := c.recv()
	require.Equal(h.t, iscsi.OpLoginResp, resp.Opcode())
	require.Zero(h.t, resp.Uint16(offLoginStatus), "login status")
	require.NotZero(h.t, resp.Flags()&loginTransit)
	c.statSN = resp.Uint32(iscsi.OffStatSN) + 1
	c.fr.MaxRecvDataSegmentLength = iscsi.MaxDataSegmentLength
	return c
}

// loginPDU builds a leading Login Request from the operational stage to
// full feature phase.
func (c *rawConn) loginPDU(keys iscsi.TextKeys) *iscsi.PDU {
	p := &iscsi.PDU{Data: keys.Encode()}
	p.SetOpcode(iscsi.OpLoginReq)
	p.SetImmediate(true)
	p.BHS[1] = loginTransit | 1<<2 | 3 // CSG operational, NSG full feature
	p.BHS[8] = 0x80                    // ISID type random
	p.BHS[13] = 1
	p.SetITT(c.nextITT())
	p.PutUint32(offLoginCmdSN, c.cmdSN)
	return p
}

func (c *rawConn) nextITT() uint32 {
	c.itt++
	return c.itt
}

// send writes a PDU, filling in ExpStatSN.
func (c *rawConn) send(p *iscsi.PDU) error {
	p.PutUint32(iscsi.OffExpStatSN, c.statSN)
	return c.fr.WritePDU(p)
}

// recv reads the next PDU, failing the test on error; its data is copied.
func (c *rawConn) recv() *iscsi.PDU {
	c.t.Helper()
	require.NoError(c.t, c.nc.SetReadDeadline(time.Now().Add(20*time.Second)))
	p, err := c.fr.ReadPDU()
	require.NoError(c.t, err)
	p.Data = append([]byte(nil), p.Data...)
	return p
}

// wantClosed reads until the server closes the connection.
func (c *rawConn) wantClosed() {
	c.t.Helper()
	require.NoError(c.t, c.nc.SetReadDeadline(time.Now().Add(20*time.Second)))
	for {
		_, err := c.fr.ReadPDU()
		var dd *iscsi.DataDigestError
		var tl *iscsi.DataSegmentTooLongError
		if err == nil || errors.As(err, &dd) || errors.As(err, &tl) {
			continue
		}
		require.False(c.t, errors.Is(err, os.ErrDeadlineExceeded), "the server closes the connection")
		return
	}
}

// command builds a SCSI Command PDU taking the next CmdSN.
func (c *rawConn) command(cdb []byte, flags byte, edtl uint32, data []byte) *iscsi.PDU {
	p := &iscsi.PDU{Data: data}
	p.SetOpcode(iscsi.OpSCSICommand)
	p.BHS[1] = flags | 1 // SIMPLE
	p.SetITT(c.nextITT())
	p.PutUint32(iscsi.OffEDTL, edtl)
	p.PutUint32(iscsi.OffCmdSN, c.cmdSN)
	c.cmdSN++
	copy(p.BHS[iscsi.OffCDB:], cdb)
	return p
}

// dataOut builds a Data-Out PDU.
func dataOut(itt, ttt, dataSN, offset uint32, data []byte, final bool) *iscsi.PDU {
	p := &iscsi.PDU{Data: data}
	p.SetOpcode(iscsi.OpDataOut)
	p.SetFinal(final)
	p.SetITT(itt)
	p.PutUint32(iscsi.OffTTT, ttt)
	p.PutUint32(iscsi.OffDataSN, dataSN)
	p.PutUint32(iscsi.OffBufferOffset, offset)
	return p
}

// wantStatus reads PDUs up to the SCSI Response for itt and returns its
// status and sense data.
func (c *rawConn) wantStatus(itt uint32) (scsi.Status, *scsi.Sense) {
	c.t.Helper()
	for {
		p := c.recv()
		if p.Opcode() != iscsi.OpSCSIResponse && !(p.Opcode() == iscsi.OpDataIn && p.Flags()&0x01 != 0) || p.ITT() != itt {
			continue
		}
		var sense *scsi.Sense
		if p.Opcode() == iscsi.OpSCSIResponse && len(p.Data) >= 2 {
			n := int(binary.BigEndian.Uint16(p.Data))
			s, err := scsi.ParseSense(p.Data[2 : 2+n])
			require.NoError(c.t, err)
			sense = s
		}
		return scsi.Status(p.BHS[3]), sense
	}
}

// discard reads and drops whatever the server sends until the connection
// closes.
func (c *rawConn) discard() {
	go io.Copy(io.Discard, c.nc)
}

// TestImmediateDataBeyondEDTLThenDataOutAtEndTCP is the crash of
// TestImmediateDataBeyondEDTLThenDataOutAtEnd against the real server.
func TestImmediateDataBeyondEDTLThenDataOutAtEndTCP(t *testing.T) {
	h := newHostile(t)
	c := h.rawLogin("InitialR2T", "No", "ImmediateData", "Yes")
	p := c.command(rw10(0x2A, 0, 1), 0x20, 512, make([]byte, 1024)) // W, F=0
	require.NoError(t, c.send(p))
	require.NoError(t, c.send(dataOut(p.ITT(), iscsi.ReservedTag, 0, 1024, nil, true)))
	status, sense := c.wantStatus(p.ITT())
	require.Equal(t, scsi.StatusCheckCondition, status)
	require.NotNil(t, sense)
	assert.Equal(t, scsi.AbortedCommand, sense.Key)
	assert.Equal(t, scsi.ASC(0x0C0C), sense.Code)
	c.nc.Close()
	h.settle()
}
