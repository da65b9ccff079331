package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// reloadable is odxtgt serve running in-process on a configuration file
// the test rewrites, reloaded as SIGHUP would.
type reloadable struct {
	addr    string
	cfgPath string
	log     *syncBuffer
	hup     chan os.Signal
	results chan error
	metrics chan net.Addr // the metrics endpoint, if configured
	stop    func() error
}

func startReloadable(t *testing.T, yaml string) *reloadable {
	t.Helper()
	dir := t.TempDir()
	rl := &reloadable{cfgPath: writeConfig(t, dir, yaml), log: &syncBuffer{}, hup: make(chan os.Signal, 1), results: make(chan error, 1),
		metrics: make(chan net.Addr, 1)}
	o := &serveOptions{configPath: rl.cfgPath, reload: rl.hup, reloaded: func(err error) { rl.results <- err },
		metricsReady: func(a net.Addr) { rl.metrics <- a }}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(rl.log, nil))
	go func() { done <- serve(ctx, o, log, func(a []net.Addr) { ready <- a }) }()
	select {
	case a := <-ready:
		rl.addr = a[0].String()
	case err := <-done:
		cancel()
		t.Fatalf("serve ended before listening: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("serve did not start listening")
	}
	stopped := false
	rl.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() {
		_ = rl.stop()
		assert.NotContains(t, rl.log.String(), "level=ERROR")
	})
	return rl
}

// reload rewrites the configuration and reloads it, returning the outcome.
func (rl *reloadable) reload(t *testing.T, yaml string) error {
	t.Helper()
	require.NoError(t, os.WriteFile(rl.cfgPath, []byte(yaml), 0o644))
	rl.hup <- syscall.SIGHUP
	select {
	case err := <-rl.results:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("reload did not finish")
		return nil
	}
}

const (
	rlTarget = "iqn.2025-01.io.odxtgt:rl"
	rlHost1  = "iqn.2025-01.io.odxtgt:host1"
	rlHost2  = "iqn.2025-01.io.odxtgt:host2"
)

// rlConfig is a configuration with a file backstore at LUN 0 of rlTarget
// on a fixed loopback port, plus extra YAML spliced into the backstores
// and the target.
func rlConfig(img string, port int, backstores, target string) string {
	return `backstores:
  - {name: disk0, type: file, path: ` + img + `, size: 1MiB}
` + backstores + `targets:
  - iqn: ` + rlTarget + `
    portals: ["127.0.0.1:` + strconv.Itoa(port) + `"]
` + target
}

// freePort returns a loopback TCP port that was free a moment ago: a
// reload compares portal addresses, so the tests name real ports.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

func rlDial(t *testing.T, addr, initiatorName, target string) *initiator.Session {
	t.Helper()
	s, err := initiator.Dial(context.Background(), addr, initiator.Config{InitiatorName: initiatorName, TargetName: target})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

var tur = []byte{0, 0, 0, 0, 0, 0}

// wantUA runs TEST UNIT READY on lun and wants the unit attention code.
func wantUA(t *testing.T, s *initiator.Session, lun uint64, code scsi.ASC) {
	t.Helper()
	r := command(t, s, initiator.Request{LUN: lun, CDB: tur})
	require.Equal(t, scsi.StatusCheckCondition, r.Status)
	require.NotNil(t, r.Sense)
	assert.Equal(t, scsi.UnitAttention, r.Sense.Key)
	assert.Equal(t, code, r.Sense.Code, "%v", r.Sense)
}

// wantEnded waits until the target has closed the session's connection:
// the close happens on the connection's own goroutine, after the reload.
func wantEnded(t *testing.T, s *initiator.Session, msg string) {
	t.Helper()
	assert.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := s.Command(ctx, initiator.Request{CDB: tur})
		return err != nil
	}, 10*time.Second, 10*time.Millisecond, msg)
}

func wantGood(t *testing.T, s *initiator.Session, req initiator.Request) *initiator.Response {
	t.Helper()
	r := command(t, s, req)
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	return r
}

func reportLUNs(t *testing.T, s *initiator.Session) []uint64 {
	t.Helper()
	r := wantGood(t, s, initiator.Request{CDB: []byte{0xA0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0}, ReadLen: 4096})
	n := binary.BigEndian.Uint32(r.DataIn) / 8
	var luns []uint64
	for i := range n {
		lun, err := scsi.DecodeLUN([8]byte(r.DataIn[8+8*i:]))
		require.NoError(t, err)
		luns = append(luns, lun)
	}
	return luns
}

// rwReq is READ (10) or WRITE (10) of blocks 512-byte blocks at lba.
func rwReq(lun uint64, write bool, lba uint32, data []byte, blocks int) initiator.Request {
	if write {
		return initiator.Request{LUN: lun, CDB: rw10(0x2A, lba, uint16(blocks)), DataOut: data}
	}
	return initiator.Request{LUN: lun, CDB: rw10(0x28, lba, uint16(blocks)), ReadLen: blocks * 512}
}

// A LUN added by a reload appears to a live session after REPORTED LUNS
// DATA HAS CHANGED; a LUN removed gives the same unit attention, leaves
// REPORT LUNS and answers LOGICAL UNIT NOT SUPPORTED; its backstore is
// closed; data written before the reloads reads back after them.
func TestReloadLUNs(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk0.img")
	port := freePort(t)
	lun0 := "    luns: [{lun: 0, backstore: disk0}]\n"
	rl := startReloadable(t, rlConfig(img, port, "", lun0))
	s := rlDial(t, rl.addr, rlHost1, rlTarget)
	wantUA(t, s, 0, scsi.ASCPowerOnResetOrBusDeviceReset)
	payload := bytes.Repeat([]byte("reload!!"), 128)
	wantGood(t, s, rwReq(0, true, 5, payload, 2))

	mem := "  - {name: mem1, type: memory, size: 1MiB}\n"
	require.NoError(t, rl.reload(t, rlConfig(img, port, mem, "    luns: [{lun: 0, backstore: disk0}, {lun: 1, backstore: mem1}]\n")))
	wantUA(t, s, 0, scsi.ASCReportedLUNsDataChanged)
	assert.Equal(t, []uint64{0, 1}, reportLUNs(t, s))
	wantUA(t, s, 1, scsi.ASCPowerOnResetOrBusDeviceReset)
	wantGood(t, s, rwReq(1, true, 0, payload, 2))
	assert.Contains(t, rl.log.String(), `msg="reload: backstore added" name=mem1`)
	assert.Contains(t, rl.log.String(), `msg="reload: LUN added" target=`+rlTarget+` tpgt=1 lun=1 backstore=mem1`)

	require.NoError(t, rl.reload(t, rlConfig(img, port, "", lun0)))
	wantUA(t, s, 0, scsi.ASCReportedLUNsDataChanged)
	assert.Equal(t, []uint64{0}, reportLUNs(t, s))
	r := command(t, s, initiator.Request{LUN: 1, CDB: tur})
	require.Equal(t, scsi.StatusCheckCondition, r.Status)
	assert.Equal(t, scsi.ASCLUNotSupported, r.Sense.Code)
	assert.Equal(t, payload, wantGood(t, s, rwReq(0, false, 5, nil, 2)).DataIn, "data written before the reloads")
	assert.Eventually(t, func() bool {
		return strings.Contains(rl.log.String(), `msg="reload: backstore removed and closed" name=mem1`)
	}, 5*time.Second, 10*time.Millisecond)
	assert.Contains(t, rl.log.String(), `msg="reload: LUN removed"`)
}

// A configuration with errors is refused at WARN with its line, and so is
// a change to a backstore that is being served; the running state stays.
func TestReloadRefused(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk0.img")
	port := freePort(t)
	good := rlConfig(img, port, "", "    luns: [{lun: 0, backstore: disk0}]\n")
	rl := startReloadable(t, good)
	s := rlDial(t, rl.addr, rlHost1, rlTarget)
	wantUA(t, s, 0, scsi.ASCPowerOnResetOrBusDeviceReset)

	err := rl.reload(t, good+"    bogus: 1\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 7")
	logs := rl.log.String()
	assert.Contains(t, logs, `level=WARN msg="reload refused, the running configuration is kept"`)
	assert.Contains(t, logs, "line 7")

	err = rl.reload(t, strings.Replace(good, "size: 1MiB", "size: 2MiB", 1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), rl.cfgPath+": line 2: backstores[0].size: backstore disk0: cannot change while it is served (1048576 → 2097152)")

	err = rl.reload(t, strings.Replace(good, "backstores:", "copy: {cross_target: true}\nbackstores:", 1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "copy: cannot change while the target runs")

	err = rl.reload(t, strings.NewReplacer("name: disk0", "name: renamed", "backstore: disk0", "backstore: renamed").Replace(good))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2: backstores[0].path: backstore renamed: "+img+" is still open as backstore disk0")

	// A new backstore that cannot be opened: nothing changes.
	err = rl.reload(t, rlConfig(img, port, "  - {name: ro, type: file, path: "+filepath.Join(t.TempDir(), "missing.img")+", readonly: true}\n",
		"    luns: [{lun: 0, backstore: disk0}, {lun: 1, backstore: ro}]\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "backstore ro")

	wantGood(t, s, initiator.Request{CDB: tur})
	assert.Equal(t, []uint64{0}, reportLUNs(t, s))
}

// The metrics endpoint follows reloads: a backstore added has its series,
// one removed loses them; the metrics section itself is fixed at start.
func TestReloadMetrics(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk0.img")
	port := freePort(t)
	withMetrics := func(c string) string { return c + "metrics: {listen: \"127.0.0.1:0\"}\n" }
	lun0 := "    luns: [{lun: 0, backstore: disk0}]\n"
	rl := startReloadable(t, withMetrics(rlConfig(img, port, "", lun0)))
	base := "http://" + (<-rl.metrics).String()
	series := `odxtgt_scsi_commands_total{class="read",lu="mem1"}`

	_, body := get(t, base+"/metrics")
	assert.NotContains(t, body, series)
	mem := "  - {name: mem1, type: memory, size: 1MiB}\n"
	require.NoError(t, rl.reload(t, withMetrics(rlConfig(img, port, mem, "    luns: [{lun: 0, backstore: disk0}, {lun: 1, backstore: mem1}]\n"))))
	_, body = get(t, base+"/metrics")
	assert.Contains(t, body, series)

	require.NoError(t, rl.reload(t, withMetrics(rlConfig(img, port, "", lun0))))
	_, body = get(t, base+"/metrics")
	assert.NotContains(t, body, series)

	err := rl.reload(t, rlConfig(img, port, "", lun0))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "metrics: cannot change while the target runs")
}

// Removing an initiator from the ACL ends its session; a change of
// another initiator's ACL LUN list reaches its live session.
func TestReloadACL(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk0.img")
	port := freePort(t)
	mem := "  - {name: mem1, type: memory, size: 1MiB}\n"
	luns := "    luns: [{lun: 0, backstore: disk0}, {lun: 1, backstore: mem1}]\n"
	both := luns + "    acls: [{initiator: " + rlHost1 + "}, {initiator: " + rlHost2 + "}]\n"
	rl := startReloadable(t, rlConfig(img, port, mem, both))
	s1 := rlDial(t, rl.addr, rlHost1, rlTarget)
	s2 := rlDial(t, rl.addr, rlHost2, rlTarget)
	wantUA(t, s1, 0, scsi.ASCPowerOnResetOrBusDeviceReset)
	wantUA(t, s2, 0, scsi.ASCPowerOnResetOrBusDeviceReset)

	one := luns + "    acls: [{initiator: " + rlHost1 + ", luns: [1]}]\n"
	require.NoError(t, rl.reload(t, rlConfig(img, port, mem, one)))
	wantEnded(t, s2, "host2's session was ended")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := initiator.Dial(ctx, rl.addr, initiator.Config{InitiatorName: rlHost2, TargetName: rlTarget})
	assert.Error(t, err, "host2 may no longer log in")

	wantUA(t, s1, 1, scsi.ASCReportedLUNsDataChanged)
	assert.Equal(t, []uint64{1}, reportLUNs(t, s1), "host1's ACL LUN list applies to its live session")
	r := command(t, s1, initiator.Request{LUN: 0, CDB: tur})
	require.Equal(t, scsi.StatusCheckCondition, r.Status)
	assert.Equal(t, scsi.ASCLUNotSupported, r.Sense.Code)
	logs := rl.log.String()
	assert.Contains(t, logs, `msg="reload: ACL entry removed" target=`+rlTarget+` tpgt=1 initiator=`+rlHost2)
	assert.Contains(t, logs, `msg="reload: ACL entry LUNs changed"`)
	assert.Contains(t, logs, `msg="reload: closing the session, the initiator was removed from the ACL"`)
}

// A target added by a reload is discoverable and serves the backstore it
// maps; a portal added listens and a portal removed stops.
func TestReloadNewTargetAndPortal(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk0.img")
	port, port2 := freePort(t), freePort(t)
	lun0 := "    luns: [{lun: 0, backstore: disk0}]\n"
	rl := startReloadable(t, rlConfig(img, port, "", lun0))
	s := rlDial(t, rl.addr, rlHost1, rlTarget)
	wantUA(t, s, 0, scsi.ASCPowerOnResetOrBusDeviceReset)
	payload := bytes.Repeat([]byte{0xA5}, 512)
	wantGood(t, s, rwReq(0, true, 9, payload, 1))

	other := "iqn.2025-01.io.odxtgt:other"
	addr2 := "127.0.0.1:" + strconv.Itoa(port2)
	require.NoError(t, rl.reload(t, rlConfig(img, port, "", lun0+"  - iqn: "+other+"\n    portals: [\""+addr2+"\"]\n"+lun0)))
	recs, err := initiator.Discover(context.Background(), rl.addr, initiator.Config{InitiatorName: rlHost1})
	require.NoError(t, err)
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	assert.ElementsMatch(t, []string{rlTarget, other}, names)
	s2 := rlDial(t, addr2, rlHost1, other)
	wantUA(t, s2, 0, scsi.ASCPowerOnResetOrBusDeviceReset)
	assert.Equal(t, payload, wantGood(t, s2, rwReq(0, false, 9, nil, 1)).DataIn, "the new target serves the same backstore")
	wantGood(t, s, initiator.Request{CDB: tur})
	assert.Contains(t, rl.log.String(), `msg="reload: target added" target=`+other)
	assert.Contains(t, rl.log.String(), `msg="reload: portal listening" portal=`+addr2)

	require.NoError(t, rl.reload(t, rlConfig(img, port, "", lun0)))
	wantEnded(t, s2, "the session of the removed target was ended")
	_, err = net.DialTimeout("tcp", addr2, time.Second)
	assert.Error(t, err, "the removed portal stopped listening")
	wantGood(t, s, initiator.Request{CDB: tur})
}
