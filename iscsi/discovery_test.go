package iscsi

import (
	"context"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// discoveryServer listens on loopback with three targets: open, one that
// admits only testInitiator, one that admits only another initiator.
func discoveryServer(t *testing.T) (*Server, []net.Addr) {
	log := testLogger(t)
	table := testTable(make(chan struct{}))
	lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "d"}, Store: nil, Table: table, Logger: log})
	luns := map[uint64]*scsi.LU{0: lu}
	srv, err := NewServer(Config{
		Targets: []*Target{
			{Name: "iqn.2024-01.org.odxtgt:open", TPGs: []*TPG{
				{Tag: 1, Portals: []string{"127.0.0.1:0"}, LUNs: luns},
				{Tag: 2, Portals: []string{"127.0.0.2:0"}, LUNs: luns},
			}},
			{Name: "iqn.2024-01.org.odxtgt:mine", TPGs: []*TPG{
				{Tag: 1, Portals: []string{"127.0.0.1:0"}, LUNs: luns, ACLs: []ACL{{Initiator: testInitiator}}},
			}},
			{Name: "iqn.2024-01.org.odxtgt:theirs", TPGs: []*TPG{
				{Tag: 1, Portals: []string{"127.0.0.1:0"}, LUNs: luns, ACLs: []ACL{{Initiator: "iqn.2024-01.org.odxtgt:other"}}},
			}},
		},
		Absent: scsi.NewAbsentLU(table, log),
		Logger: log,
	})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.ErrorIs(t, <-done, ErrServerClosed)
	})
	return srv, srv.Addrs()
}

// dial connects a tester to a real listener.
func dial(t *testing.T, srv *Server, addr net.Addr) *tester {
	nc, err := net.Dial("tcp", addr.String())
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	return &tester{t: t, srv: srv, nc: nc, fr: NewFramer(nc, nc), isid: [6]byte{0x80, 0, 0, 0, 0, 9}}
}

// sendTargets runs one SendTargets exchange, following continuations.
func (tt *tester) sendTargets(value string) TextKeys {
	tt.t.Helper()
	var text []byte
	ttt := uint32(ReservedTag)
	var keys TextKeys
	if value != "-" {
		keys = kv("SendTargets", value)
	}
	for {
		itt := tt.text(keys, ttt, true)
		keys = nil
		p := tt.want2(itt, OpTextResp)
		text = append(text, p.Data...)
		if p.Flags()&textFlagContinue == 0 {
			require.NotZero(tt.t, p.Flags()&textFlagFinal)
			require.Equal(tt.t, uint32(ReservedTag), p.Uint32(OffTTT))
			break
		}
		ttt = p.Uint32(OffTTT)
	}
	resp, err := ParseTextRepeatable(text)
	require.NoError(tt.t, err)
	return resp
}

func TestSendTargets(t *testing.T) {
	srv, addrs := discoveryServer(t)
	require.Len(t, addrs, 2)
	port1 := addrs[0].(*net.TCPAddr).Port
	port2 := addrs[1].(*net.TCPAddr).Port

	tt := dial(t, srv, addrs[0])
	p, resp := tt.loginStep(stageOperational, stageFullFeature, true, kv("InitiatorName", testInitiator, "SessionType", "Discovery", "MaxRecvDataSegmentLength", "512"))
	require.Equal(t, LoginSuccess, loginStatus(p))
	tt.enterFFP(resp)

	got := tt.sendTargets("All")
	want := kv(
		"TargetName", "iqn.2024-01.org.odxtgt:open",
		"TargetAddress", net.JoinHostPort("127.0.0.1", itoa(port1))+",1",
		"TargetAddress", net.JoinHostPort("127.0.0.2", itoa(port2))+",2",
		"TargetName", "iqn.2024-01.org.odxtgt:mine",
		"TargetAddress", net.JoinHostPort("127.0.0.1", itoa(port1))+",1",
	)
	assert.Equal(t, want, got)
	assert.Equal(t, want[3:], tt.sendTargets("iqn.2024-01.org.odxtgt:mine"))
	assert.Empty(t, tt.sendTargets("iqn.2024-01.org.odxtgt:theirs"), "hidden by its ACL")
	assert.Empty(t, tt.sendTargets(""))

	// Long answers come in pieces of the initiator's MaxRecvDataSegmentLength.
	_, addrs2 := discoveryServerMany(t)
	tt2 := dial(t, srv, addrs2[0])
	p, resp = tt2.loginStep(stageOperational, stageFullFeature, true, kv("InitiatorName", testInitiator, "SessionType", "Discovery", "MaxRecvDataSegmentLength", "512"))
	require.Equal(t, LoginSuccess, loginStatus(p))
	tt2.enterFFP(resp)
	assert.Len(t, tt2.sendTargets("All").GetAll("TargetName"), 40)

	// SCSI commands and task management do not belong in discovery.
	itt := tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
	tt.wantReject(RejectCmdNotSupported, OpSCSICommand)
	_ = itt
	tt.tmf(tmfAbortTaskSet, 0, 0, 0)
	tt.wantReject(RejectCmdNotSupported, OpTaskMgmtReq)
	tt.want2(tt.logout(logoutCloseSession, 0), OpLogoutResp)
	tt.wantClosed()
}

func itoa(n int) string { return strings.TrimSpace(FormatNumber(uint64(n))) }

// discoveryServerMany has forty open targets on one wildcard portal.
func discoveryServerMany(t *testing.T) (*Server, []net.Addr) {
	log := testLogger(t)
	table := testTable(make(chan struct{}))
	var targets []*Target
	for i := range 40 {
		targets = append(targets, &Target{Name: "iqn.2024-01.org.odxtgt:many-" + itoa(i), TPGs: []*TPG{{Tag: 1, Portals: []string{"127.0.0.1:0"}}}})
	}
	srv, err := NewServer(Config{Targets: targets, Absent: scsi.NewAbsentLU(table, log), Logger: log})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	go srv.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
	})
	return srv, srv.Addrs()
}

func TestSendTargetsInNormalSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		got := tt.sendTargets("")
		assert.Equal(t, []string{testTarget}, got.GetAll("TargetName"))
		assert.Equal(t, []string{"127.0.0.1:0,1"}, got.GetAll("TargetAddress"))
		assert.Equal(t, got, tt.sendTargets(testTarget))
		assert.Equal(t, kv("SendTargets", ValueReject), tt.sendTargets("All"))
		// Login-only keys cannot change in full feature phase; unknown
		// keys are not understood.
		itt := tt.text(kv("MaxBurstLength", "4096", "X-org.example.k", "v", "MaxRecvDataSegmentLength", "4096"), ReservedTag, true)
		p := tt.want2(itt, OpTextResp)
		resp, err := ParseText(p.Data)
		require.NoError(t, err)
		assert.Equal(t, kv("MaxBurstLength", ValueReject, "X-org.example.k", ValueNotUnderstood), resp)
	})
}

func TestWildcardPortalAddress(t *testing.T) {
	srv, err := NewServer(Config{Targets: []*Target{{Name: testTarget, TPGs: []*TPG{{Tag: 3, Portals: []string{"0.0.0.0:0"}}}}},
		Absent: scsi.NewAbsentLU(testTable(nil), testLogger(t)), Logger: testLogger(t)})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	go srv.Serve()
	defer srv.Shutdown(context.Background())
	port := srv.Addrs()[0].(*net.TCPAddr).Port
	tt := dial(t, srv, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	p, resp := tt.loginStep(stageOperational, stageFullFeature, true, kv("InitiatorName", testInitiator, "SessionType", "Discovery"))
	require.Equal(t, LoginSuccess, loginStatus(p))
	tt.enterFFP(resp)
	assert.Equal(t, []string{"127.0.0.1:" + itoa(port) + ",3"}, tt.sendTargets("All").GetAll("TargetAddress"))
}
