package iscsi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
func (h *hostile) checkAlive() { h.checkAliveFrom(nil) }

// checkAliveFrom is checkAlive from the local address ip (nil for any).
func (h *hostile) checkAliveFrom(ip net.IP) {
	t := h.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := net.Dialer{}
	if ip != nil {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	nc, err := d.DialContext(ctx, "tcp", h.addr)
	require.NoError(t, err)
	s, err := initiator.Login(ctx, nc, initiator.Config{InitiatorName: h.initiatorName(), TargetName: hostileTarget})
	require.NoError(t, err, "a new session logs in")
	defer s.Close()
	// A new nexus reports the power-on unit attention; a reset that the
	// attack's last task management functions made while this session
	// logged in reports another. A host retries them.
	pastUA := func(req initiator.Request) *initiator.Response {
		for range 4 {
			resp, err := s.Command(ctx, req)
			require.NoError(t, err)
			if resp.Status != scsi.StatusCheckCondition || resp.Sense == nil || resp.Sense.Key != scsi.UnitAttention {
				return resp
			}
		}
		t.Fatalf("CDB % x: unit attentions without end", req.CDB)
		return nil
	}
	data := make([]byte, 512)
	data[0] = 0xA5
	resp := pastUA(initiator.Request{CDB: rw10(0x2A, 100, 1), DataOut: data})
	require.Equal(t, scsi.StatusGood, resp.Status, "a 512-byte write succeeds: %v", resp.Sense)
	resp = pastUA(initiator.Request{CDB: rw10(0x28, 100, 1), ReadLen: 512})
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
	return h.rawLoginAs(h.initiatorName(), ops...)
}

// rawLoginAs is rawLogin with the given initiator name.
func (h *hostile) rawLoginAs(name string, ops ...string) *rawConn {
	h.t.Helper()
	c := h.dialRaw()
	keys := iscsi.TextKeys{{Key: "InitiatorName", Value: name}, {Key: "TargetName", Value: hostileTarget},
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
	got, err := iscsi.ParseText(resp.Data)
	require.NoError(h.t, err)
	hd, _ := got.Get("HeaderDigest")
	dd, _ := got.Get("DataDigest")
	c.fr.HeaderDigest, c.fr.DataDigest = hd == "CRC32C", dd == "CRC32C"
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

// pump reads the server's PDUs on a goroutine of its own from now on;
// the channel closes when the connection does.
func (c *rawConn) pump() <-chan *iscsi.PDU {
	ch := make(chan *iscsi.PDU, 64)
	go func() {
		defer close(ch)
		c.nc.SetReadDeadline(time.Time{})
		for {
			p, err := c.fr.ReadPDU()
			var dd *iscsi.DataDigestError
			var tl *iscsi.DataSegmentTooLongError
			if err != nil && !errors.As(err, &dd) && !errors.As(err, &tl) {
				return
			}
			p.Data = append([]byte(nil), p.Data...)
			ch <- p
		}
	}()
	return ch
}

// waitFor reads from a pump until a PDU matches, reporting false if the
// connection closes first.
func waitFor(t *testing.T, ch <-chan *iscsi.PDU, match func(*iscsi.PDU) bool) bool {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case p, ok := <-ch:
			if !ok {
				return false
			}
			if match(p) {
				return true
			}
		case <-timeout:
			require.FailNow(t, "no answer from the server")
		}
	}
}

// ping builds an immediate NOP-Out ping.
func (c *rawConn) ping(data []byte) *iscsi.PDU {
	p := &iscsi.PDU{Data: data}
	p.SetOpcode(iscsi.OpNOPOut)
	p.SetImmediate(true)
	p.SetFinal(true)
	p.SetITT(c.nextITT())
	p.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
	p.PutUint32(iscsi.OffCmdSN, c.cmdSN)
	return p
}

// roundTrip pings the server through a pump and reports whether the
// answer came before the connection closed.
func (c *rawConn) roundTrip(ch <-chan *iscsi.PDU) bool {
	c.t.Helper()
	p := c.ping(nil)
	if c.send(p) != nil {
		return false
	}
	itt := p.ITT()
	return waitFor(c.t, ch, func(q *iscsi.PDU) bool { return q.Opcode() == iscsi.OpNOPIn && q.ITT() == itt })
}

// hostileConfig gives the attacks short deadlines, so the suite runs
// fast; LoginTimeout leaves room for the well-behaved logins of a loaded
// machine.
func hostileConfig(c *iscsi.Config) {
	c.LoginTimeout = time.Second
	c.SendTimeout = 500 * time.Millisecond
	c.DataOutTimeout = 300 * time.Millisecond
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

// TestHostileIdleConnections: a flood of TCP connections that never log
// in does not keep another source from logging in, over the per-source
// cap the extra connections are closed at once, and LoginTimeout closes
// the rest.
func TestHostileIdleConnections(t *testing.T) {
	h := newHostile(t, func(c *iscsi.Config) { c.LoginTimeout = 3 * time.Second })
	probe, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial("tcp", h.addr)
	if err != nil {
		t.Skipf("cannot connect from 127.0.0.2 (%v): the per-source cap cannot be told apart", err)
	}
	probe.Close()
	closed := make(chan struct{}, 200)
	for range 200 {
		nc, err := net.Dial("tcp", h.addr)
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		go func() {
			nc.Read(make([]byte, 1)) // returns when the server closes it
			closed <- struct{}{}
		}()
	}
	for range 200 - iscsi.DefaultMaxConnectionsPerIP {
		<-closed
	}
	h.checkAliveFrom(net.IPv4(127, 0, 0, 2))
	for range iscsi.DefaultMaxConnectionsPerIP {
		<-closed // LoginTimeout
	}
	h.settle()
}

// TestHostileConnectionCap: past MaxConnections, new connections are
// closed at once, whatever their source.
func TestHostileConnectionCap(t *testing.T) {
	h := newHostile(t, hostileConfig, func(c *iscsi.Config) { c.MaxConnections = 20; c.MaxConnectionsPerIP = 1000 })
	closed := make(chan struct{}, 50)
	for range 50 {
		nc, err := net.Dial("tcp", h.addr)
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		go func() {
			nc.Read(make([]byte, 1))
			closed <- struct{}{}
		}()
	}
	for range 50 {
		<-closed // 30 at once, 20 after LoginTimeout
	}
	h.settle()
}

// TestHostileSlowLogin: LoginTimeout counts from accept, for a peer that
// sends nothing and for one that trickles a Login Request a byte at a
// time.
func TestHostileSlowLogin(t *testing.T) {
	h := newHostile(t, hostileConfig)
	silent := h.dialRaw()
	trickle := h.dialRaw()
	p := trickle.loginPDU(iscsi.TextKeys{{Key: "InitiatorName", Value: h.initiatorName()}, {Key: "TargetName", Value: hostileTarget}})
	var buf bytes.Buffer
	require.NoError(t, iscsi.NewFramer(&buf, &buf).WritePDU(p))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, b := range buf.Bytes() {
			if _, err := trickle.nc.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	silent.wantClosed()
	trickle.wantClosed()
	<-done
	h.settle()
}

// TestHostileLoginFlood: many logins that vanish without logging out, and
// many left halfway through negotiation.
func TestHostileLoginFlood(t *testing.T) {
	h := newHostile(t, hostileConfig)
	for range 200 {
		c := h.rawLogin()
		c.nc.Close()
	}
	for range 50 {
		c := h.dialRaw()
		p := c.loginPDU(iscsi.TextKeys{{Key: "InitiatorName", Value: h.initiatorName()}, {Key: "TargetName", Value: hostileTarget}})
		p.BHS[1] = 0 // security stage, no transit: the login stays open
		require.NoError(t, c.fr.WritePDU(p))
	}
	h.settle()
}

// TestHostileLoginRequests: login PDUs with oversized, malformed or absurd
// text. Each ends with a Login Response refusing it, a closed connection,
// or, where the RFC says to answer a bad value with Reject and go on, a
// login that succeeds with sane values.
func TestHostileLoginRequests(t *testing.T) {
	h := newHostile(t, hostileConfig)
	keys := func(extra ...string) iscsi.TextKeys {
		k := iscsi.TextKeys{{Key: "InitiatorName", Value: h.initiatorName()}, {Key: "TargetName", Value: hostileTarget}}
		for i := 0; i+1 < len(extra); i += 2 {
			k.Set(extra[i], extra[i+1])
		}
		return k
	}
	many := keys()
	for i := range 2000 {
		many.Add(fmt.Sprintf("X-odxtgt-%d", i), "1")
	}
	const (
		refused = iota
		closes
		succeeds
	)
	for _, tc := range []struct {
		name string
		pdus func(c *rawConn) []*iscsi.PDU
		want int
	}{
		{"a value of 255 bytes", func(c *rawConn) []*iscsi.PDU {
			return []*iscsi.PDU{c.loginPDU(keys("X-big", string(bytes.Repeat([]byte("a"), 255))))}
		}, succeeds},
		{"10 KiB of keys", func(c *rawConn) []*iscsi.PDU {
			p := c.loginPDU(keys())
			p.Data = append(p.Data, bytes.Repeat([]byte("X-a=b\x00"), 2000)...)
			return []*iscsi.PDU{p}
		}, refused},
		{"DataSegmentLength 16 MiB with no data", func(c *rawConn) []*iscsi.PDU {
			p := c.loginPDU(nil)
			p.BHS[5], p.BHS[6], p.BHS[7] = 0xFF, 0xFF, 0xFF
			c.fr.AllowIllegalWrites = true
			return []*iscsi.PDU{p}
		}, closes},
		{"text not NUL-terminated", func(c *rawConn) []*iscsi.PDU {
			p := c.loginPDU(nil)
			p.Data = []byte("InitiatorName=iqn.x")
			return []*iscsi.PDU{p}
		}, refused},
		{"binary junk", func(c *rawConn) []*iscsi.PDU {
			p := c.loginPDU(nil)
			p.Data = []byte{0xFF, 0xFE, '=', 0, 0x80, '=', 0x80, 0}
			return []*iscsi.PDU{p}
		}, refused},
		{"continuation beyond the text limit", func(c *rawConn) []*iscsi.PDU {
			var ps []*iscsi.PDU
			for range 12 {
				p := c.loginPDU(nil)
				p.BHS[1] = 0x40 | 1<<2 // C, operational stage
				p.Data = bytes.Repeat([]byte("X-a=b\x00"), 1300)
				ps = append(ps, p)
			}
			return ps
		}, refused},
		{"2000 unknown keys in continuations", func(c *rawConn) []*iscsi.PDU {
			data := many.Encode()
			var ps []*iscsi.PDU
			for len(data) > 0 {
				n := min(len(data), 8192)
				p := c.loginPDU(nil)
				p.BHS[1] = 0x40 | 1<<2
				p.Data, data = data[:n], data[n:]
				ps = append(ps, p)
			}
			ps[len(ps)-1].BHS[1] = 1 << 2 // the last one completes the text
			return ps
		}, refused},
		{"MaxRecvDataSegmentLength 0", func(c *rawConn) []*iscsi.PDU {
			return []*iscsi.PDU{c.loginPDU(keys("MaxRecvDataSegmentLength", "0"))}
		}, refused},
		{"absurd numbers", func(c *rawConn) []*iscsi.PDU {
			return []*iscsi.PDU{c.loginPDU(keys("MaxBurstLength", "99999999999999999999999", "FirstBurstLength", "0x",
				"MaxOutstandingR2T", "0", "ErrorRecoveryLevel", "7", "DefaultTime2Wait", "-1", "MaxConnections", "65536",
				"HeaderDigest", "Bogus", "DataDigest", ",,,", "iSCSIProtocolLevel", "4294967296", "IFMarkInt", "1~99999999999"))}
		}, succeeds},
		{"huge MaxRecvDataSegmentLength", func(c *rawConn) []*iscsi.PDU {
			return []*iscsi.PDU{c.loginPDU(keys("MaxRecvDataSegmentLength", "16777215"))}
		}, succeeds},
		{"version 255", func(c *rawConn) []*iscsi.PDU {
			p := c.loginPDU(keys())
			p.BHS[2], p.BHS[3] = 255, 255
			return []*iscsi.PDU{p}
		}, refused},
		{"unknown target", func(c *rawConn) []*iscsi.PDU {
			return []*iscsi.PDU{c.loginPDU(keys("TargetName", "iqn.2024-01.org.odxtgt:nobody"))}
		}, refused},
		{"a SCSI command instead of a login", func(c *rawConn) []*iscsi.PDU {
			return []*iscsi.PDU{c.command(rw10(0x28, 0, 1), 0xC0, 512, nil)}
		}, closes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dialRaw()
			c.t = t
			for _, p := range tc.pdus(c) {
				if c.fr.WritePDU(p) != nil {
					break
				}
			}
			got := closes
			require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(20*time.Second)))
			for {
				p, err := c.fr.ReadPDU()
				if err != nil {
					require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "the server answers or closes")
					break
				}
				if p.Opcode() != iscsi.OpLoginResp {
					continue
				}
				if status := p.Uint16(offLoginStatus); status != 0 {
					got = refused
					break
				}
				if p.Flags()&loginTransit != 0 {
					got = succeeds
					break
				}
			}
			assert.Equal(t, tc.want, got)
			c.nc.Close()
			h.checkAlive()
		})
	}
	h.settle()
}

// TestHostileFloodsWithoutReading: floods of requests from initiators that
// read no answers. The target stops reading them, so its heap stays
// bounded, and drops them after SendTimeout without write progress.
func TestHostileFloodsWithoutReading(t *testing.T) {
	h := newHostile(t, hostileConfig)
	ping := make([]byte, 64<<10)
	for _, tc := range []struct {
		name  string
		count int
		pdu   func(c *rawConn, i int) *iscsi.PDU
	}{
		{"NOP-Out with 64 KiB of ping data", 6000, func(c *rawConn, i int) *iscsi.PDU { return c.ping(ping) }},
		{"SNACK", 100000, func(c *rawConn, i int) *iscsi.PDU {
			p := &iscsi.PDU{}
			p.SetOpcode(iscsi.OpSNACKReq)
			p.SetFinal(true)
			p.SetITT(uint32(i))
			return p
		}},
		{"NOP-Out rejected", 100000, func(c *rawConn, i int) *iscsi.PDU {
			p := c.ping(nil)
			p.SetImmediate(false)
			p.SetITT(iscsi.ReservedTag)
			return p
		}},
		{"unsupported opcode", 100000, func(c *rawConn, i int) *iscsi.PDU {
			p := &iscsi.PDU{}
			p.SetOpcode(0x1C)
			p.SetITT(uint32(i))
			return p
		}},
		{"Text Request", 100000, func(c *rawConn, i int) *iscsi.PDU {
			p := &iscsi.PDU{Data: iscsi.TextKeys{{Key: "X-odxtgt-flood", Value: "1"}}.Encode()}
			p.SetOpcode(iscsi.OpTextReq)
			p.SetImmediate(true)
			p.SetFinal(true)
			p.SetITT(c.nextITT())
			p.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.rawLogin()
			runtime.GC()
			var before, now runtime.MemStats
			runtime.ReadMemStats(&before)
			done := make(chan int)
			go func() {
				n := 0
				for ; n < tc.count; n++ {
					if c.send(tc.pdu(c, n)) != nil {
						break
					}
				}
				done <- n
			}()
			peak := before.HeapInuse
			var sent int
		wait:
			for {
				select {
				case sent = <-done:
					break wait
				case <-time.After(5 * time.Millisecond):
					runtime.ReadMemStats(&now)
					peak = max(peak, now.HeapInuse)
				}
			}
			t.Logf("%d of %d sent; heap in use grew by at most %d KiB", sent, tc.count, (peak-before.HeapInuse)>>10)
			assert.Less(t, peak-before.HeapInuse, uint64(64<<20), "heap growth")
			c.nc.Close()
			h.checkAlive()
		})
	}
	h.settle()
}

// TestHostileDigestErrors: wrong data digests are rejected PDU by PDU and
// the session goes on; a wrong header digest closes the connection.
func TestHostileDigestErrors(t *testing.T) {
	h := newHostile(t, hostileConfig)
	c := h.rawLogin("HeaderDigest", "CRC32C", "DataDigest", "CRC32C", "InitialR2T", "No")
	require.True(t, c.fr.DataDigest)
	in := c.pump()
	corrupt := func(p *iscsi.PDU, at func(n int) int) {
		var buf bytes.Buffer
		f := iscsi.NewFramer(&buf, &buf)
		f.HeaderDigest, f.DataDigest = true, true
		p.PutUint32(iscsi.OffExpStatSN, c.statSN)
		require.NoError(t, f.WritePDU(p))
		b := buf.Bytes()
		b[at(len(b))] ^= 0xFF
		_, err := c.nc.Write(b)
		require.NoError(t, err)
	}
	last := func(n int) int { return n - 1 }
	isReject := func(reason byte) func(*iscsi.PDU) bool {
		return func(p *iscsi.PDU) bool { return p.Opcode() == iscsi.OpReject && p.BHS[2] == reason }
	}
	// A ping and a write with immediate data: each rejected, dropped.
	corrupt(c.ping([]byte("ping data")), last)
	require.True(t, waitFor(t, in, isReject(0x02)))
	w := c.command(rw10(0x2A, 0, 1), 0xA0, 512, make([]byte, 512))
	c.cmdSN-- // a command dropped for its digest takes no CmdSN
	corrupt(w, last)
	require.True(t, waitFor(t, in, isReject(0x02)))
	// A write whose unsolicited Data-Out is corrupt ends with PROTOCOL
	// SERVICE CRC ERROR.
	w = c.command(rw10(0x2A, 0, 2), 0x20, 1024, make([]byte, 512))
	require.NoError(t, c.send(w))
	corrupt(dataOut(w.ITT(), iscsi.ReservedTag, 0, 512, make([]byte, 512), true), last)
	require.True(t, waitFor(t, in, isReject(0x02)))
	require.True(t, waitFor(t, in, func(p *iscsi.PDU) bool {
		return p.Opcode() == iscsi.OpSCSIResponse && p.ITT() == w.ITT() && p.BHS[3] == byte(scsi.StatusCheckCondition)
	}))
	require.True(t, c.roundTrip(in))
	// A corrupt header digest: the stream cannot be trusted any more.
	corrupt(c.ping(nil), func(int) int { return iscsi.BHSLength })
	require.False(t, waitFor(t, in, func(*iscsi.PDU) bool { return false }), "the connection closes")
	h.settle()
}

// TestHostileTextContinuation: a Text Request continued with the C bit
// beyond the text limit is rejected, again and again, and the session
// goes on.
func TestHostileTextContinuation(t *testing.T) {
	h := newHostile(t, hostileConfig)
	c := h.rawLogin()
	in := c.pump()
	chunk := bytes.Repeat([]byte("X-a=b\x00"), 1300)
	rejects := 0
	for range 5 {
		itt, ttt := c.nextITT(), uint32(iscsi.ReservedTag)
		for range 20 {
			p := &iscsi.PDU{Data: chunk}
			p.SetOpcode(iscsi.OpTextReq)
			p.SetImmediate(true)
			p.BHS[1] = 0x40 // C
			p.SetITT(itt)
			p.PutUint32(iscsi.OffTTT, ttt)
			p.PutUint32(iscsi.OffCmdSN, c.cmdSN)
			require.NoError(t, c.send(p))
			var resp *iscsi.PDU
			require.True(t, waitFor(t, in, func(q *iscsi.PDU) bool {
				resp = q
				return q.Opcode() == iscsi.OpTextResp || q.Opcode() == iscsi.OpReject
			}))
			if resp.Opcode() == iscsi.OpReject {
				rejects++
				break
			}
			ttt = resp.Uint32(iscsi.OffTTT)
		}
	}
	assert.Equal(t, 5, rejects)
	require.True(t, c.roundTrip(in))
	c.nc.Close()
	h.settle()
}

// TestHostileTMFStorm: thousands of task management functions, with
// commands running, while the answers are read.
func TestHostileTMFStorm(t *testing.T) {
	h := newHostile(t, hostileConfig)
	c := h.rawLogin("ImmediateData", "Yes", "InitialR2T", "No")
	in := c.pump()
	go func() {
		for range in {
		}
	}()
	functions := []byte{1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 0x7F}
	for i := range 5000 {
		if i%10 == 0 {
			require.NoError(t, c.send(c.command(rw10(0x2A, i%64, 1), 0xA0, 512, make([]byte, 512))))
		}
		p := &iscsi.PDU{}
		p.SetOpcode(iscsi.OpTaskMgmtReq)
		p.SetImmediate(i%2 == 0)
		p.BHS[1] = 0x80 | functions[i%len(functions)]
		p.SetITT(c.nextITT())
		p.PutUint32(20, uint32(i)) // Referenced Task Tag
		p.PutUint32(iscsi.OffCmdSN, c.cmdSN)
		if !p.Immediate() {
			c.cmdSN++
		}
		require.NoError(t, c.send(p))
	}
	c.nc.Close()
	h.settle()
}

// TestHostileSequenceNumbers: a reused ITT is rejected, CmdSNs outside
// the window are dropped silently, and the session goes on.
func TestHostileSequenceNumbers(t *testing.T) {
	h := newHostile(t, hostileConfig)
	c := h.rawLogin("ImmediateData", "No", "InitialR2T", "Yes")
	in := c.pump()
	w := c.command(rw10(0x2A, 0, 8), 0xA0, 4096, nil) // waits for its R2T's data
	require.NoError(t, c.send(w))
	again := c.command(rw10(0x28, 0, 1), 0xC0, 512, nil)
	again.SetITT(w.ITT())
	require.NoError(t, c.send(again))
	require.True(t, waitFor(t, in, func(p *iscsi.PDU) bool { return p.Opcode() == iscsi.OpReject && p.BHS[2] == 0x07 }))
	for _, off := range []uint32{1 << 30, 1 << 31, 0xFFFFFFFF, 129, 1000} {
		p := c.command(rw10(0x28, 0, 1), 0xC0, 512, nil)
		c.cmdSN--
		p.PutUint32(iscsi.OffCmdSN, c.cmdSN+off)
		require.NoError(t, c.send(p))
	}
	// A non-immediate ping in the window is answered in order.
	p := c.ping(nil)
	p.SetImmediate(false)
	p.PutUint32(iscsi.OffCmdSN, c.cmdSN)
	c.cmdSN++
	require.NoError(t, c.send(p))
	itt := p.ITT()
	require.True(t, waitFor(t, in, func(q *iscsi.PDU) bool { return q.Opcode() == iscsi.OpNOPIn && q.ITT() == itt }))
	c.nc.Close()
	h.settle()
}

// TestHostileUnansweredR2Ts: many writes with R2Ts outstanding that the
// initiator never answers end by DataOutTimeout, or are refused for the
// budget, and the budget comes back.
func TestHostileUnansweredR2Ts(t *testing.T) {
	h := newHostile(t, hostileConfig)
	c := h.rawLogin("ImmediateData", "No", "InitialR2T", "Yes", "MaxOutstandingR2T", "16", "MaxBurstLength", "65536")
	in := c.pump()
	const writes = 128
	for i := range writes {
		require.NoError(t, c.send(c.command(rw10(0x2A, i, 2048), 0xA0, 1<<20, nil)))
	}
	statuses := map[scsi.Status]int{}
	for range writes {
		require.True(t, waitFor(t, in, func(p *iscsi.PDU) bool {
			if p.Opcode() == iscsi.OpSCSIResponse {
				statuses[scsi.Status(p.BHS[3])]++
				return true
			}
			return false
		}))
	}
	t.Log(statuses)
	assert.Equal(t, writes, statuses[scsi.StatusCheckCondition]+statuses[scsi.StatusTaskSetFull])
	require.True(t, c.roundTrip(in))
	c.nc.Close()
	h.settle()
}

// TestHostileDataOutHog: a session announces 64 writes of 8 MiB and sends
// no data; another session's 512-byte write succeeds all the same.
func TestHostileDataOutHog(t *testing.T) {
	h := newHostile(t) // default budgets and DataOutTimeout
	c := h.rawLogin("ImmediateData", "No", "InitialR2T", "Yes", "MaxOutstandingR2T", "1")
	in := c.pump()
	for i := range 64 {
		require.NoError(t, c.send(c.command(rw10(0x2A, i, 16384), 0xA0, scsi.MaxTransferBytes, nil)))
	}
	var r2ts, full int
	for range 64 {
		require.True(t, waitFor(t, in, func(p *iscsi.PDU) bool {
			switch {
			case p.Opcode() == iscsi.OpR2T:
				r2ts++
			case p.Opcode() == iscsi.OpSCSIResponse && p.BHS[3] == byte(scsi.StatusTaskSetFull):
				full++
			default:
				return false
			}
			return true
		}))
	}
	t.Logf("%d writes hold their 8 MiB, %d refused with TASK SET FULL", r2ts, full)
	assert.Equal(t, int(iscsi.DefaultSessionDataOutBudget/scsi.MaxTransferBytes), r2ts)
	h.checkAlive()
	c.nc.Close()
	h.settle()
}

// TestHostileReinstatement: a new login with the initiator name and ISID
// of a live session closes it, aborting its tasks, and the new session's
// first command reports I_T NEXUS LOSS OCCURRED.
func TestHostileReinstatement(t *testing.T) {
	h := newHostile(t, hostileConfig)
	name := h.initiatorName()
	old := h.rawLoginAs(name, "ImmediateData", "No", "InitialR2T", "Yes")
	oldIn := old.pump()
	w := old.command(rw10(0x2A, 0, 8), 0xA0, 4096, nil)
	require.NoError(t, old.send(w))
	require.True(t, waitFor(t, oldIn, func(p *iscsi.PDU) bool { return p.Opcode() == iscsi.OpR2T }))
	require.True(t, old.roundTrip(oldIn)) // the nexus has been seen
	r := old.command(rw10(0x28, 0, 1), 0xC0, 512, nil)
	require.NoError(t, old.send(r))
	require.True(t, waitFor(t, oldIn, func(p *iscsi.PDU) bool {
		return p.ITT() == r.ITT() && p.Flags()&0x01 != 0 || p.Opcode() == iscsi.OpSCSIResponse
	}))

	c := h.rawLoginAs(name)
	require.False(t, waitFor(t, oldIn, func(*iscsi.PDU) bool { return false }), "the old connection closes")
	p := c.command(rw10(0x28, 0, 1), 0xC0, 512, nil)
	require.NoError(t, c.send(p))
	status, sense := c.wantStatus(p.ITT())
	require.Equal(t, scsi.StatusCheckCondition, status)
	require.NotNil(t, sense)
	assert.Equal(t, scsi.ASCITNexusLossOccurred, sense.Code)
	c.nc.Close()
	h.settle()
}

// TestHostileClosesMidPDU: connections that end in the middle of a PDU,
// during login and in full feature phase.
func TestHostileClosesMidPDU(t *testing.T) {
	h := newHostile(t, hostileConfig)
	encode := func(p *iscsi.PDU) []byte {
		var buf bytes.Buffer
		require.NoError(t, iscsi.NewFramer(&buf, &buf).WritePDU(p))
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name  string
		login bool
		bytes func(c *rawConn) []byte
	}{
		{"half a BHS during login", false, func(c *rawConn) []byte { return encode(c.loginPDU(nil))[:20] }},
		{"login text cut short", false, func(c *rawConn) []byte {
			return encode(c.loginPDU(iscsi.TextKeys{{Key: "InitiatorName", Value: h.initiatorName()}}))[:60]
		}},
		{"half a BHS", true, func(c *rawConn) []byte { return encode(c.ping(nil))[:30] }},
		{"immediate data cut short", true, func(c *rawConn) []byte {
			return encode(c.command(rw10(0x2A, 0, 8), 0xA0, 4096, make([]byte, 4096)))[:1000]
		}},
		{"Data-Out cut short", true, func(c *rawConn) []byte {
			w := c.command(rw10(0x2A, 0, 8), 0x20, 4096, make([]byte, 512))
			return append(encode(w), encode(dataOut(w.ITT(), iscsi.ReservedTag, 0, 512, make([]byte, 2048), false))[:700]...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *rawConn
			if tc.login {
				c = h.rawLogin("ImmediateData", "Yes", "InitialR2T", "No")
			} else {
				c = h.dialRaw()
			}
			_, err := c.nc.Write(tc.bytes(c))
			require.NoError(t, err)
			c.nc.Close()
		})
	}
	h.settle()
}

// TestHostileMalformedPDUs: Data-Out and other PDUs of every bad shape, each
// on a session of its own. Whatever the target answers, or if it closes
// the connection, it stays up for others.
func TestHostileMalformedPDUs(t *testing.T) {
	h := newHostile(t, hostileConfig)
	write := func(c *rawConn, edtl uint32, imm int, final bool) *iscsi.PDU {
		flags := byte(0x20)
		if final {
			flags |= 0x80
		}
		p := c.command(rw10(0x2A, 0, int(edtl/512)), flags, edtl, make([]byte, imm))
		require.NoError(t, c.send(p))
		return p
	}
	unsol := func(c *rawConn, itt, dataSN, off uint32, n int, final bool) {
		require.NoError(t, c.send(dataOut(itt, iscsi.ReservedTag, dataSN, off, make([]byte, n), final)))
	}
	for _, tc := range []struct {
		name string
		run  func(c *rawConn)
	}{
		{"Data-Out for an unknown ITT", func(c *rawConn) { unsol(c, 0xDEAD, 0, 0, 512, true) }},
		{"Data-Out with an unknown TTT", func(c *rawConn) {
			w := write(c, 4096, 0, true)
			require.NoError(t, c.send(dataOut(w.ITT(), 0x1234, 0, 0, make([]byte, 512), true)))
		}},
		{"Data-Out for a read", func(c *rawConn) {
			p := c.command(rw10(0x28, 0, 1), 0xC0, 512, nil)
			require.NoError(t, c.send(p))
			unsol(c, p.ITT(), 0, 0, 512, true)
		}},
		{"Data-Out for an immediate command", func(c *rawConn) {
			p := c.command(rw10(0x2A, 0, 2), 0x20, 1024, make([]byte, 512))
			p.SetImmediate(true)
			c.cmdSN--
			require.NoError(t, c.send(p))
			unsol(c, p.ITT(), 0, 512, 512, true)
		}},
		{"EDTL 0 with immediate data", func(c *rawConn) { write(c, 0, 512, true) }},
		{"EDTL 0, F=0, then Data-Out", func(c *rawConn) {
			w := write(c, 0, 0, false)
			unsol(c, w.ITT(), 0, 0, 512, true)
		}},
		{"immediate data beyond EDTL, then Data-Out beyond", func(c *rawConn) {
			w := write(c, 512, 2048, false)
			unsol(c, w.ITT(), 0, 2048, 512, true)
		}},
		{"zero-length Data-Out at the end", func(c *rawConn) {
			w := write(c, 1024, 0, false)
			unsol(c, w.ITT(), 0, 1024, 0, true)
		}},
		{"offset 2^31", func(c *rawConn) {
			w := write(c, 1024, 0, false)
			unsol(c, w.ITT(), 0, 1<<31, 512, true)
		}},
		{"offset ffffffff", func(c *rawConn) {
			w := write(c, 1024, 0, false)
			unsol(c, w.ITT(), 0, 0xFFFFFFFF, 512, true)
		}},
		{"offset wrapping past 2^32", func(c *rawConn) {
			w := write(c, 1024, 0, false)
			unsol(c, w.ITT(), 0, 0xFFFFFE00, 1024, true)
		}},
		{"DataSN gaps", func(c *rawConn) {
			w := write(c, 2048, 0, false)
			unsol(c, w.ITT(), 5, 0, 512, false)
			unsol(c, w.ITT(), 0x80000000, 512, 512, false)
			unsol(c, w.ITT(), 2, 1024, 1024, true)
		}},
		{"Data-Out after F", func(c *rawConn) {
			w := write(c, 2048, 512, false)
			unsol(c, w.ITT(), 0, 512, 512, true)
			unsol(c, w.ITT(), 1, 1024, 512, true)
		}},
		{"DataSegmentLength beyond MaxRecvDataSegmentLength", func(c *rawConn) {
			require.NoError(t, c.send(c.ping(make([]byte, 1<<20))))
		}},
		{"Data-Out beyond MaxRecvDataSegmentLength", func(c *rawConn) {
			w := write(c, 4<<20, 0, false)
			unsol(c, w.ITT(), 0, 0, 1<<20, true)
		}},
		{"TotalAHSLength with garbage", func(c *rawConn) {
			p := c.command(rw10(0x28, 0, 1), 0xC0, 512, nil)
			p.AHS = bytes.Repeat([]byte{0xFF}, 1020)
			require.NoError(t, c.send(p))
		}},
		{"Login Request in full feature phase", func(c *rawConn) { require.NoError(t, c.send(c.loginPDU(nil))) }},
		{"Logout with an unknown reason", func(c *rawConn) {
			p := &iscsi.PDU{}
			p.SetOpcode(iscsi.OpLogoutReq)
			p.SetImmediate(true)
			p.BHS[1] = 0x80 | 0x55
			p.SetITT(c.nextITT())
			require.NoError(t, c.send(p))
		}},
		{"two logouts", func(c *rawConn) {
			for range 2 {
				p := &iscsi.PDU{}
				p.SetOpcode(iscsi.OpLogoutReq)
				p.SetImmediate(true)
				p.BHS[1] = 0x80
				p.SetITT(c.nextITT())
				require.NoError(t, c.send(p))
			}
		}},
		{"write of 2^32-1 bytes", func(c *rawConn) {
			w := write(c, 0xFFFFFFFF, 0, false)
			unsol(c, w.ITT(), 0, 0, 65536, true)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.rawLogin("ImmediateData", "Yes", "InitialR2T", "No", "FirstBurstLength", "65536")
			c.t = t
			in := c.pump()
			tc.run(c)
			c.roundTrip(in) // answered, or the connection closed
			c.nc.Close()
			h.checkAlive()
		})
	}
	h.settle()
}

// TestHostileDiscoverySession: a discovery session may only ask for
// targets; SCSI commands, task management and operational keys are
// refused, and odd SendTargets values answered, without harm.
func TestHostileDiscoverySession(t *testing.T) {
	h := newHostile(t, hostileConfig)
	c := h.dialRaw()
	p := c.loginPDU(iscsi.TextKeys{{Key: "InitiatorName", Value: h.initiatorName()}, {Key: "SessionType", Value: "Discovery"}})
	require.NoError(t, c.fr.WritePDU(p))
	resp := c.recv()
	require.Zero(t, resp.Uint16(offLoginStatus), "login status")
	c.statSN = resp.Uint32(iscsi.OffStatSN) + 1
	in := c.pump()
	isReject := func(p *iscsi.PDU) bool { return p.Opcode() == iscsi.OpReject }
	require.NoError(t, c.send(c.command(rw10(0x28, 0, 1), 0xC0, 512, nil)))
	require.True(t, waitFor(t, in, isReject))
	tmf := &iscsi.PDU{}
	tmf.SetOpcode(iscsi.OpTaskMgmtReq)
	tmf.SetImmediate(true)
	tmf.BHS[1] = 0x80 | 5 // LOGICAL UNIT RESET
	tmf.SetITT(c.nextITT())
	require.NoError(t, c.send(tmf))
	require.True(t, waitFor(t, in, isReject))
	for _, v := range []string{"All", "", "iqn.2024-01.org.odxtgt:nobody", string(bytes.Repeat([]byte("x"), 255)), hostileTarget} {
		text := &iscsi.PDU{Data: iscsi.TextKeys{{Key: "SendTargets", Value: v}, {Key: "MaxBurstLength", Value: "1"}}.Encode()}
		text.SetOpcode(iscsi.OpTextReq)
		text.SetImmediate(true)
		text.SetFinal(true)
		text.SetITT(c.nextITT())
		text.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
		require.NoError(t, c.send(text))
		itt := text.ITT()
		require.True(t, waitFor(t, in, func(p *iscsi.PDU) bool { return p.ITT() == itt || isReject(p) }))
	}
	require.True(t, c.roundTrip(in))
	c.nc.Close()
	h.settle()
}
