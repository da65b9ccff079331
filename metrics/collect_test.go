package metrics

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

type fakeServer iscsi.Stats

func (f *fakeServer) Stats() iscsi.Stats { return iscsi.Stats(*f) }

type fakeCopies rod.Stats

func (f *fakeCopies) Stats() rod.Stats { return rod.Stats(*f) }

type fakeLU scsi.LUStats

func (f *fakeLU) Stats() scsi.LUStats { return scsi.LUStats(*f) }

type fakeSnapshots int64

func (f fakeSnapshots) SnapshotBytes() int64 { return int64(f) }

// lint fails the test on every problem promlint finds in c's metrics.
func lint(t *testing.T, c prometheus.Collector) {
	t.Helper()
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

func TestServerCollector(t *testing.T) {
	s := &fakeServer{
		LoggingIn: 1, FullFeature: 3,
		Sessions: []iscsi.SessionInfo{
			{Target: "iqn.2025-01.io.odxtgt:a", Initiator: "iqn.1994-05.com.redhat:h1"},
			{Target: "iqn.2025-01.io.odxtgt:a", Initiator: "iqn.1994-05.com.redhat:h1"},
		},
		DiscoverySessions:  1,
		ConnectionsRefused: 4,
		LoginsRefused:      map[iscsi.LoginStatus]uint64{iscsi.LoginAuthFailure: 2, iscsi.LoginCantIncludeInSession: 1, 0x02ee: 5},
		LoginTimeouts:      6, NOPTimeouts: 7,
		DataOutUsed: 8 << 20, DataOutLimit: 512 << 20, DataOutRefused: 9,
	}
	c := NewServerCollector(s)
	lint(t, c)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP odxtgt_connections Open iSCSI connections, by phase (login or full_feature).
# TYPE odxtgt_connections gauge
odxtgt_connections{phase="full_feature"} 3
odxtgt_connections{phase="login"} 1
# HELP odxtgt_sessions Logged-in normal sessions (each has one connection), by target and initiator name.
# TYPE odxtgt_sessions gauge
odxtgt_sessions{initiator="iqn.1994-05.com.redhat:h1",target="iqn.2025-01.io.odxtgt:a"} 2
# HELP odxtgt_discovery_sessions Logged-in discovery sessions.
# TYPE odxtgt_discovery_sessions gauge
odxtgt_discovery_sessions 1
# HELP odxtgt_connections_refused_total Connections closed at accept for max_connections or max_connections_per_ip.
# TYPE odxtgt_connections_refused_total counter
odxtgt_connections_refused_total 4
# HELP odxtgt_logins_refused_total Logins ended with a failure Login Response, by status class and detail (RFC 7143 11.13.5).
# TYPE odxtgt_logins_refused_total counter
odxtgt_logins_refused_total{class="initiator_error",detail="0xee"} 5
odxtgt_logins_refused_total{class="initiator_error",detail="authentication_failure"} 2
odxtgt_logins_refused_total{class="initiator_error",detail="cant_include_in_session"} 1
# HELP odxtgt_login_timeouts_total Logins that did not reach full feature phase within login_timeout.
# TYPE odxtgt_login_timeouts_total counter
odxtgt_login_timeouts_total 6
# HELP odxtgt_nop_timeouts_total Connections dropped because a NOP-In ping went unanswered for nop_timeout.
# TYPE odxtgt_nop_timeouts_total counter
odxtgt_nop_timeouts_total 7
# HELP odxtgt_data_out_buffered_bytes Data-out buffered for all connections, counted against data_out_budget.
# TYPE odxtgt_data_out_buffered_bytes gauge
odxtgt_data_out_buffered_bytes 8.388608e+06
# HELP odxtgt_data_out_budget_bytes The data-out budget shared by all connections.
# TYPE odxtgt_data_out_budget_bytes gauge
odxtgt_data_out_budget_bytes 5.36870912e+08
# HELP odxtgt_data_out_refused_total Commands ended with TASK SET FULL because their data-out did not fit the budget.
# TYPE odxtgt_data_out_refused_total counter
odxtgt_data_out_refused_total 9
`)))
}

func TestSessionSeriesCapped(t *testing.T) {
	var sessions []iscsi.SessionInfo
	for i := range MaxSessionSeries + 10 {
		sessions = append(sessions, iscsi.SessionInfo{Target: "t", Initiator: fmt.Sprintf("iqn.2025-01.example:h%04d", i)})
	}
	c := NewServerCollector(&fakeServer{Sessions: sessions})
	assert.Equal(t, MaxSessionSeries, testutil.CollectAndCount(c, "odxtgt_sessions"))
	got := sessionSeries(sessions)
	assert.Equal(t, 11, got[iscsi.SessionInfo{Target: "t", Initiator: OtherInitiators}], "the sessions past the cap are summed")
	total := 0
	for _, n := range got {
		total += n
	}
	assert.Equal(t, len(sessions), total, "no session is lost")
}

func TestLUCollector(t *testing.T) {
	var st scsi.LUStats
	rd := &st.Classes[scsi.ClassRead]
	rd.Commands, rd.DataInBytes = 3, 3*4096
	rd.Latency[0], rd.Latency[4], rd.Latency[len(rd.Latency)-1] = 1, 1, 1 // ≤50µs, ≤1ms, >10s
	rd.LatencySum = 11 * time.Second
	wr := &st.Classes[scsi.ClassWrite]
	wr.Commands, wr.DataOutBytes = 1, 512
	st.CheckConditions = map[scsi.SenseCode]uint64{{Key: scsi.IllegalRequest, Code: scsi.ASCLBAOutOfRange}: 2}
	c := NewLUCollector(func() []LU { return []LU{{Name: "disk0", Stats: (*fakeLU)(&st), Snapshots: fakeSnapshots(8192)}} })
	lint(t, c)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP odxtgt_scsi_check_conditions_total SCSI commands ended with CHECK CONDITION, by logical unit, sense key and ASC/ASCQ.
# TYPE odxtgt_scsi_check_conditions_total counter
odxtgt_scsi_check_conditions_total{asc="0x2100",lu="disk0",sense_key="illegal_request"} 2
# HELP odxtgt_lu_snapshot_bytes Bytes the point-in-time snapshots of ROD tokens preserve for a logical unit.
# TYPE odxtgt_lu_snapshot_bytes gauge
odxtgt_lu_snapshot_bytes{lu="disk0"} 8192
`), "odxtgt_scsi_check_conditions_total", "odxtgt_lu_snapshot_bytes"))
	assert.Equal(t, int(scsi.NumClasses), testutil.CollectAndCount(c, "odxtgt_scsi_commands_total"), "one series per class")

	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "odxtgt_scsi_command_duration_seconds", "odxtgt_scsi_commands_total",
		"odxtgt_scsi_data_in_bytes_total", "odxtgt_scsi_data_out_bytes_total")
	require.NoError(t, err)
	text := string(out)
	for _, want := range []string{
		`odxtgt_scsi_commands_total{class="read",lu="disk0"} 3`,
		`odxtgt_scsi_commands_total{class="write",lu="disk0"} 1`,
		`odxtgt_scsi_commands_total{class="token",lu="disk0"} 0`,
		`odxtgt_scsi_data_in_bytes_total{class="read",lu="disk0"} 12288`,
		`odxtgt_scsi_data_out_bytes_total{class="write",lu="disk0"} 512`,
		`odxtgt_scsi_command_duration_seconds_bucket{class="read",lu="disk0",le="5e-05"} 1`,
		`odxtgt_scsi_command_duration_seconds_bucket{class="read",lu="disk0",le="0.0005"} 1`,
		`odxtgt_scsi_command_duration_seconds_bucket{class="read",lu="disk0",le="0.001"} 2`,
		`odxtgt_scsi_command_duration_seconds_bucket{class="read",lu="disk0",le="10"} 2`,
		`odxtgt_scsi_command_duration_seconds_bucket{class="read",lu="disk0",le="+Inf"} 3`,
		`odxtgt_scsi_command_duration_seconds_sum{class="read",lu="disk0"} 11`,
		`odxtgt_scsi_command_duration_seconds_count{class="read",lu="disk0"} 3`,
	} {
		assert.Contains(t, text, want+"\n")
	}
}

func TestCopyCollector(t *testing.T) {
	var st rod.Stats
	st.Running, st.Tokens = 1, 2
	st.Finished[rod.KindExtendedCopy][rod.ResultGood] = 3
	st.Finished[rod.KindWriteUsingToken][rod.ResultAborted] = 1
	st.Bytes[rod.PathCopyFileRange] = 1 << 20
	st.SnapshotSpaceUsed, st.SnapshotSpaceLimit = 4096, 1<<30
	c := NewCopyCollector((*fakeCopies)(&st))
	lint(t, c)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP odxtgt_copies_running Copy operations (EXTENDED COPY, POPULATE TOKEN, WRITE USING TOKEN) running.
# TYPE odxtgt_copies_running gauge
odxtgt_copies_running 1
# HELP odxtgt_copy_bytes_total Bytes EXTENDED COPY and WRITE USING TOKEN wrote, by data path (clone, copy_file_range, buffered).
# TYPE odxtgt_copy_bytes_total counter
odxtgt_copy_bytes_total{path="buffered"} 0
odxtgt_copy_bytes_total{path="clone"} 0
odxtgt_copy_bytes_total{path="copy_file_range"} 1.048576e+06
# HELP odxtgt_rod_tokens Live ROD tokens.
# TYPE odxtgt_rod_tokens gauge
odxtgt_rod_tokens 2
# HELP odxtgt_snapshot_space_used_bytes Bytes all point-in-time snapshots of ROD tokens preserve.
# TYPE odxtgt_snapshot_space_used_bytes gauge
odxtgt_snapshot_space_used_bytes 4096
# HELP odxtgt_snapshot_space_limit_bytes The most the point-in-time snapshots may preserve (tokens.snapshot_space).
# TYPE odxtgt_snapshot_space_limit_bytes gauge
odxtgt_snapshot_space_limit_bytes 1.073741824e+09
`), "odxtgt_copies_running", "odxtgt_copy_bytes_total", "odxtgt_rod_tokens", "odxtgt_snapshot_space_used_bytes",
		"odxtgt_snapshot_space_limit_bytes"))
	assert.Equal(t, 9, testutil.CollectAndCount(c, "odxtgt_copies_total"), "every kind and result, zeros included")
	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "odxtgt_copies_total")
	require.NoError(t, err)
	assert.Contains(t, string(out), `odxtgt_copies_total{kind="extended_copy",result="good"} 3`)
	assert.Contains(t, string(out), `odxtgt_copies_total{kind="write_using_token",result="aborted"} 1`)
}

// TestRegistryReadsRealSources builds the registry over a real server,
// copy manager and logical unit (nothing listening, no command run): every
// collector registers, gathers and lints clean.
func TestRegistryReadsRealSources(t *testing.T) {
	srv, err := iscsi.NewServer(iscsi.Config{Absent: scsi.NewAbsentLU(nil, nil)})
	require.NoError(t, err)
	copies := rod.NewManager(rod.Config{})
	t.Cleanup(copies.Close)
	prot := rod.Protect(nil)
	lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "disk0"}})
	reg := NewRegistry(Sources{Server: srv, Copies: copies, LUs: func() []LU { return []LU{{Name: "disk0", Stats: lu, Snapshots: prot}} }})
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	var ours []string
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, namespace+"_") {
			ours = append(ours, p.Metric+": "+p.Text)
		}
	}
	assert.Empty(t, ours)
	n, err := testutil.GatherAndCount(reg, "odxtgt_scsi_commands_total", "odxtgt_copies_running", "odxtgt_data_out_budget_bytes")
	require.NoError(t, err)
	assert.Equal(t, int(scsi.NumClasses)+2, n)
}

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCopyCollector(&fakeCopies{Tokens: 1}))
	var health error
	ts := httptest.NewServer(Handler(reg, func(context.Context) error { return health }))
	defer ts.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "odxtgt_rod_tokens 1\n")
	code, body = get("/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	health = fmt.Errorf("portal 127.0.0.1:3260 does not accept connections")
	code, body = get("/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "unhealthy: portal 127.0.0.1:3260 does not accept connections\n", body)
	code, _ = get("/other")
	assert.Equal(t, http.StatusNotFound, code)
}

func TestCheckPortals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx := context.Background()
	require.NoError(t, CheckPortals(ctx, []net.Addr{ln.Addr()}))
	addr := ln.Addr()
	ln.Close()
	err = CheckPortals(ctx, []net.Addr{addr})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "portal "+addr.String()+" does not accept connections")
	require.Error(t, CheckPortals(ctx, nil))
}

// TestReviewHealthzProbesOncePerBurst: /healthz dials every portal, and
// each dial is a connection the target accepts and counts against
// max_connections and max_connections_per_ip; concurrent requests share
// one probe instead of each making its own, so a burst of scrapes cannot
// turn into a burst of connections to the target.
func TestReviewHealthzProbesOncePerBurst(t *testing.T) {
	var probes atomic.Int32
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	h := Handler(prometheus.NewRegistry(), func(context.Context) error {
		probes.Add(1)
		entered <- struct{}{}
		<-release
		return nil
	})
	var arrived atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	const n = 8
	codes := make(chan int, n)
	for range n {
		go func() {
			resp, err := http.Get(ts.URL + "/healthz")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	<-entered
	// Every request reaches the handler while the first probe runs.
	require.Eventually(t, func() bool { return arrived.Load() == n }, 10*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // and gets past the arrival count
	close(release)
	for range n {
		assert.Equal(t, http.StatusOK, <-codes)
	}
	assert.Equal(t, int32(1), probes.Load(), "probes for %d concurrent /healthz requests", n)
}
