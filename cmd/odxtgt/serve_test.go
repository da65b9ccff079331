package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// servedTarget is odxtgt serve running in-process on a loopback port.
type servedTarget struct {
	addr string
	stop func() error
}

func startServe(t *testing.T, o *serveOptions) *servedTarget {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- serve(ctx, o, log, func(a []net.Addr) { ready <- a }) }()
	var addrs []net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve ended before listening: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("serve did not start listening")
	}
	require.NotEmpty(t, addrs)
	st := &servedTarget{addr: addrs[0].String()}
	stopped := false
	st.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = st.stop() })
	return st
}

func writeConfig(t *testing.T, dir, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, "odxtgt.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o644))
	return p
}

func command(t *testing.T, s *initiator.Session, req initiator.Request) *initiator.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := s.Command(ctx, req)
	require.NoError(t, err)
	return r
}

// TestServeFileLUN runs serve on a file backstore shared by two targets,
// writes through one, reads through the other, stops with the signal path
// and checks that the data reached the file.
func TestServeFileLUN(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk0.img")
	cfg := writeConfig(t, dir, `
backstores:
  - {name: disk0, type: file, path: `+img+`, size: 4MiB, physical_block_size: 4096}
  - {name: scratch, type: memory, size: 1MiB, block_size: 4096}
targets:
  - iqn: iqn.2025-01.io.odxtgt:a
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: disk0}, {lun: 3, backstore: scratch}]
  - iqn: iqn.2025-01.io.odxtgt:b
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: disk0}]
`)
	st := startServe(t, &serveOptions{configPath: cfg, logFormat: "text", logLevel: "info"})
	ctx := context.Background()

	recs, err := initiator.Discover(ctx, st.addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:test"})
	require.NoError(t, err)
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	assert.ElementsMatch(t, []string{"iqn.2025-01.io.odxtgt:a", "iqn.2025-01.io.odxtgt:b"}, names)

	a, err := initiator.Dial(ctx, st.addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:test", TargetName: "iqn.2025-01.io.odxtgt:a"})
	require.NoError(t, err)
	defer a.Close()
	b, err := initiator.Dial(ctx, st.addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:test", TargetName: "iqn.2025-01.io.odxtgt:b"})
	require.NoError(t, err)
	defer b.Close()

	tur := []byte{0, 0, 0, 0, 0, 0}
	r := command(t, a, initiator.Request{CDB: tur})
	require.Equal(t, scsi.StatusCheckCondition, r.Status, "the first command reports the power-on unit attention")
	assert.Equal(t, scsi.ASCPowerOnResetOrBusDeviceReset, r.Sense.Code)

	inq := command(t, a, initiator.Request{CDB: []byte{0x12, 0, 0, 0, 96, 0}, ReadLen: 96})
	require.Equal(t, scsi.StatusGood, inq.Status)
	assert.Equal(t, "LIO-ORG ", string(inq.DataIn[8:16]))
	assert.Equal(t, "disk0           ", string(inq.DataIn[16:32]))

	// physical_block_size: eight 512-byte blocks per physical block, the
	// LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT of READ CAPACITY (16).
	rc16 := command(t, a, initiator.Request{CDB: []byte{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, ReadLen: 32})
	require.Equal(t, scsi.StatusGood, rc16.Status)
	assert.Equal(t, byte(3), rc16.DataIn[13]&0x0F)

	payload := bytes.Repeat([]byte("odxtgt!!"), 512) // 8 blocks
	write := make([]byte, 10)
	write[0] = 0x2a
	binary.BigEndian.PutUint32(write[2:], 16)
	binary.BigEndian.PutUint16(write[7:], 8)
	r = command(t, a, initiator.Request{CDB: write, DataOut: payload})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)

	read := append([]byte(nil), write...)
	read[0] = 0x28
	command(t, b, initiator.Request{CDB: tur}) // b's own unit attention
	r = command(t, b, initiator.Request{CDB: read, ReadLen: len(payload)})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	assert.Equal(t, payload, r.DataIn, "both targets serve the same logical unit")

	// LUN 3 is a 4096-byte memory LUN, visible only through target a.
	rc := command(t, a, initiator.Request{LUN: 3, CDB: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ReadLen: 8})
	if rc.Status == scsi.StatusCheckCondition {
		rc = command(t, a, initiator.Request{LUN: 3, CDB: []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, ReadLen: 8})
	}
	require.Equal(t, scsi.StatusGood, rc.Status)
	assert.Equal(t, []byte{0, 0, 0, 255, 0, 0, 16, 0}, rc.DataIn)
	r = command(t, b, initiator.Request{LUN: 3, CDB: tur})
	require.Equal(t, scsi.StatusCheckCondition, r.Status)
	assert.Equal(t, scsi.ASCLUNotSupported, r.Sense.Code)

	require.NoError(t, a.Logout(ctx, 0))
	require.NoError(t, b.Logout(ctx, 0))
	require.NoError(t, st.stop())
	data, err := os.ReadFile(img)
	require.NoError(t, err)
	assert.Equal(t, payload, data[16*512:24*512], "acknowledged data is in the file after shutdown")
}

// TestServeDemo runs the embedded demo in a temporary data directory.
func TestServeDemo(t *testing.T) {
	dir := t.TempDir()
	st := startServeDemo(t, dir)
	info, err := os.Stat(filepath.Join(dir, "demo.img"))
	require.NoError(t, err)
	assert.Equal(t, int64(1<<30), info.Size())
	require.NoError(t, st.stop())
}

// startServeDemo starts the demo; its fixed portal 127.0.0.1:3260 may be
// taken on a shared machine, in which case the test is skipped.
func startServeDemo(t *testing.T, dir string) *servedTarget {
	l, err := net.Listen("tcp", "127.0.0.1:3260")
	if err != nil {
		t.Skipf("the demo's portal 127.0.0.1:3260 is in use: %v", err)
	}
	require.NoError(t, l.Close())
	return startServe(t, &serveOptions{dataDir: dir, logFormat: "json", logLevel: "info"})
}

func TestServeBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "backstores: []\ntargets: 3\n")
	var stderr bytes.Buffer
	assert.Equal(t, 1, run([]string{"serve", "--config", cfg}, io.Discard, &stderr))
	assert.Contains(t, stderr.String(), "targets")
}

func TestServeFlags(t *testing.T) {
	var stderr bytes.Buffer
	assert.Equal(t, 2, run([]string{"serve", "--log-format", "xml"}, io.Discard, &stderr))
	assert.Contains(t, stderr.String(), "--log-format")
	assert.Equal(t, 2, run([]string{"serve", "--nope"}, io.Discard, io.Discard))
	assert.Equal(t, 2, run([]string{"serve", "extra"}, io.Discard, io.Discard))
}
