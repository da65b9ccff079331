package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/config"
	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

const metricsConfig = `
backstores:
  - {name: mem0, type: memory, size: 1MiB}
targets:
  - iqn: iqn.2025-01.io.odxtgt:m
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: mem0}]
metrics:
  listen: "127.0.0.1:0"
`

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestServeMetrics runs serve with the metrics endpoint on a free
// loopback port, runs a few commands through a real login and sees the
// counters move in /metrics; /healthz answers 200 while the portal
// accepts connections.
func TestServeMetrics(t *testing.T) {
	dir := t.TempDir()
	addrCh := make(chan net.Addr, 1)
	st := startServe(t, &serveOptions{configPath: writeConfig(t, dir, metricsConfig), logFormat: "text", logLevel: "info",
		metricsReady: func(a net.Addr) { addrCh <- a }})
	base := "http://" + (<-addrCh).String()

	code, body := get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "ok\n", body)

	code, before := get(t, base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, before, `odxtgt_scsi_commands_total{class="write",lu="mem0"} 0`+"\n")
	assert.Contains(t, before, "odxtgt_data_out_budget_bytes ")
	assert.Contains(t, before, "go_goroutines ", "the Go collector is registered")

	ctx := context.Background()
	const ini = "iqn.2025-01.io.odxtgt:metrics-test"
	_, err := initiator.Dial(ctx, st.addr, initiator.Config{InitiatorName: ini, TargetName: "iqn.2025-01.io.odxtgt:nope"})
	require.Error(t, err, "no such target")
	s, err := initiator.Dial(ctx, st.addr, initiator.Config{InitiatorName: ini, TargetName: "iqn.2025-01.io.odxtgt:m"})
	require.NoError(t, err)
	defer s.Close()

	r := command(t, s, initiator.Request{CDB: []byte{0, 0, 0, 0, 0, 0}})
	require.Equal(t, scsi.StatusCheckCondition, r.Status, "the power-on unit attention")
	payload := bytes.Repeat([]byte{0xa5}, 4096)
	write := make([]byte, 10)
	write[0] = 0x2a
	binary.BigEndian.PutUint16(write[7:], 8)
	r = command(t, s, initiator.Request{CDB: write, DataOut: payload})
	require.Equal(t, scsi.StatusGood, r.Status)
	read := append([]byte(nil), write...)
	read[0] = 0x28
	r = command(t, s, initiator.Request{CDB: read, ReadLen: len(payload)})
	require.Equal(t, scsi.StatusGood, r.Status)

	_, after := get(t, base+"/metrics")
	for _, want := range []string{
		`odxtgt_sessions{initiator="` + ini + `",target="iqn.2025-01.io.odxtgt:m"} 1`,
		`odxtgt_connections{phase="full_feature"} 1`,
		`odxtgt_logins_refused_total{class="initiator_error",detail="not_found"} 1`,
		`odxtgt_scsi_commands_total{class="write",lu="mem0"} 1`,
		`odxtgt_scsi_commands_total{class="read",lu="mem0"} 1`,
		`odxtgt_scsi_commands_total{class="other",lu="mem0"} 1`,
		`odxtgt_scsi_data_out_bytes_total{class="write",lu="mem0"} 4096`,
		`odxtgt_scsi_data_in_bytes_total{class="read",lu="mem0"} 4096`,
		`odxtgt_scsi_command_duration_seconds_count{class="write",lu="mem0"} 1`,
		`odxtgt_scsi_check_conditions_total{asc="0x2900",lu="mem0",sense_key="unit_attention"} 1`,
		`odxtgt_lu_snapshot_bytes{lu="mem0"} 0`,
		`odxtgt_copies_running 0`,
		`odxtgt_rod_tokens 0`,
	} {
		assert.Contains(t, after, want+"\n")
	}

	require.NoError(t, s.Logout(ctx, 0))
	require.Eventually(t, func() bool {
		_, m := get(t, base+"/metrics")
		return !bytes.Contains([]byte(m), []byte("odxtgt_sessions{"))
	}, 10*time.Second, 20*time.Millisecond, "the session's series goes with it")
	require.NoError(t, st.stop())
}

// TestMetricsHealthzPortalDown checks that /healthz turns 503, naming the
// portal, once the portal stops accepting connections.
func TestMetricsHealthzPortalDown(t *testing.T) {
	cfg, err := config.Parse([]byte(metricsConfig))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := build(cfg, log)
	require.NoError(t, err)
	defer rt.close()
	srv, err := iscsi.NewServer(rt.server)
	require.NoError(t, err)
	var addr net.Addr
	stop, err := startMetrics(cfg.Metrics, rt, srv, log, func(a net.Addr) { addr = a })
	require.NoError(t, err)
	defer stop()
	base := "http://" + addr.String()

	code, body := get(t, base+"/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "not listening yet")
	assert.Equal(t, "unhealthy: no portal is listening\n", body)

	require.NoError(t, srv.Listen())
	go func() { _ = srv.Serve() }()
	code, body = get(t, base+"/healthz")
	require.Equal(t, http.StatusOK, code, body)

	portal := srv.Addrs()[0].String()
	require.NoError(t, srv.Shutdown(context.Background()))
	code, body = get(t, base+"/healthz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "unhealthy: portal "+portal+" does not accept connections")
	assert.Equal(t, 1, bytes.Count([]byte(body), []byte("\n")), "one line")
}

// TestServeMetricsListenInUse: an endpoint that cannot listen stops serve
// with the key's name.
func TestServeMetricsListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, metricsConfig[:len(metricsConfig)-len(`"127.0.0.1:0"`+"\n")]+`"`+ln.Addr().String()+`"`+"\n")
	err = serve(context.Background(), &serveOptions{configPath: cfg}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "metrics.listen")
}

// TestReviewMetricsServerBoundsIdleConnections: a scraper's keep-alive
// connection that goes quiet after a request is closed after a while,
// and a response that cannot be written ends, so connections to the
// endpoint cannot pile up (ReadHeaderTimeout only covers the wait for a
// request's headers).
func TestReviewMetricsServerBoundsIdleConnections(t *testing.T) {
	hs := newMetricsServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	assert.Positive(t, hs.ReadHeaderTimeout)
	assert.Positive(t, hs.IdleTimeout)
	assert.Positive(t, hs.WriteTimeout)
}
