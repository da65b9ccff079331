package main

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

const (
	prHost1 = "iqn.2025-01.io.odxtgt:host1"
	prHost2 = "iqn.2025-01.io.odxtgt:host2"
	prTgt   = "iqn.2025-01.io.odxtgt:pr"
)

// proutReq is PERSISTENT RESERVE OUT with a basic parameter list.
func proutReq(lun uint64, sa, typ byte, key, sark uint64, flags byte) initiator.Request {
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p, key)
	binary.BigEndian.PutUint64(p[8:], sark)
	p[20] = flags
	cdb := []byte{0x5F, sa, typ, 0, 0, 0, 0, 0, byte(len(p)), 0}
	return initiator.Request{LUN: lun, CDB: cdb, DataOut: p}
}

func prinReq(lun uint64, sa byte) initiator.Request {
	return initiator.Request{LUN: lun, CDB: []byte{0x5E, sa, 0, 0, 0, 0, 0, 0x10, 0x00, 0}, ReadLen: 4096}
}

// prRW is READ (10) or WRITE (10) of one block at lba.
func prRW(lun uint64, write bool, lba uint32) initiator.Request {
	cdb := make([]byte, 10)
	cdb[0] = 0x28
	binary.BigEndian.PutUint32(cdb[2:], lba)
	cdb[8] = 1
	if write {
		cdb[0] = 0x2A
		return initiator.Request{LUN: lun, CDB: cdb, DataOut: make([]byte, 512)}
	}
	return initiator.Request{LUN: lun, CDB: cdb, ReadLen: 512}
}

// prSession logs in as name with a fixed ISID, as open-iscsi does for an
// interface, so that a new session after a restart is the same I_T nexus,
// and consumes the power-on unit attention of each LUN.
func prSession(t *testing.T, addr, name string, isid byte, luns ...uint64) *initiator.Session {
	t.Helper()
	s, err := initiator.Dial(context.Background(), addr, initiator.Config{InitiatorName: name, TargetName: prTgt,
		ISID: [6]byte{0x40, 0, 0, 0, 0, isid}})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	for _, lun := range luns {
		r := command(t, s, initiator.Request{LUN: lun, CDB: make([]byte, 6)})
		require.Contains(t, []scsi.Status{scsi.StatusGood, scsi.StatusCheckCondition}, r.Status)
	}
	return s
}

func good(t *testing.T, s *initiator.Session, req initiator.Request) *initiator.Response {
	t.Helper()
	r := command(t, s, req)
	require.Equal(t, scsi.StatusGood, r.Status, "% x: %v", req.CDB, r.Sense)
	return r
}

func conflict(t *testing.T, s *initiator.Session, req initiator.Request) {
	t.Helper()
	r := command(t, s, req)
	require.Equal(t, scsi.StatusReservationConflict, r.Status, "% x: %v", req.CDB, r.Sense)
}

func prConfig(t *testing.T, dir string) string {
	return writeConfig(t, dir, `
backstores:
  - {name: disk0, type: file, path: `+filepath.Join(dir, "disk0.img")+`, size: 4MiB}
  - {name: disk1, type: file, path: `+filepath.Join(dir, "disk1.img")+`, size: 4MiB}
targets:
  - iqn: `+prTgt+`
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: disk0}, {lun: 1, backstore: disk1}]
`)
}

// TestServeReservationsPersist registers two initiators with APTPL and
// reserves through one, restarts the target on the same configuration and
// finds the registrations, the reservation and PRGENERATION again; APTPL
// zero then removes the state file and the next restart starts clean.
func TestServeReservationsPersist(t *testing.T) {
	dir := t.TempDir()
	o := &serveOptions{configPath: prConfig(t, dir), logFormat: "text", logLevel: "info"}
	stateFile := filepath.Join(dir, ".odxtgt-pr", "disk0.json")

	st := startServe(t, o)
	h1 := prSession(t, st.addr, prHost1, 1, 0)
	h2 := prSession(t, st.addr, prHost2, 2, 0)
	good(t, h1, proutReq(0, 0x00, 0, 0, 0x1111, 0x01)) // REGISTER, APTPL
	good(t, h2, proutReq(0, 0x00, 0, 0, 0x2222, 0x01))
	good(t, h1, proutReq(0, 0x01, 0x01, 0x1111, 0, 0)) // RESERVE WRITE EXCLUSIVE
	conflict(t, h2, prRW(0, true, 8))
	good(t, h2, prRW(0, false, 8))
	keys := good(t, h1, prinReq(0, 0x00)).DataIn
	require.NoError(t, h1.Logout(context.Background(), 0))
	require.NoError(t, h2.Logout(context.Background(), 0))
	require.NoError(t, st.stop())
	require.FileExists(t, stateFile)

	st = startServe(t, o)
	h1 = prSession(t, st.addr, prHost1, 1, 0)
	h2 = prSession(t, st.addr, prHost2, 2, 0)
	assert.Equal(t, keys, good(t, h2, prinReq(0, 0x00)).DataIn, "READ KEYS, PRGENERATION included, survive the restart")
	rr := good(t, h2, prinReq(0, 0x01)).DataIn
	require.Len(t, rr, 24)
	assert.Equal(t, uint64(0x1111), binary.BigEndian.Uint64(rr[8:]))
	assert.Equal(t, byte(0x01), rr[21])
	caps := good(t, h2, prinReq(0, 0x02)).DataIn
	assert.Equal(t, byte(0x01), caps[2]&0x01, "PTPL_C")
	assert.Equal(t, byte(0x01), caps[3]&0x01, "PTPL_A")
	conflict(t, h2, prRW(0, true, 8))
	good(t, h1, prRW(0, true, 8))
	// LUN 1 has no state file: it was never asked to persist anything.
	assert.NoFileExists(t, filepath.Join(dir, ".odxtgt-pr", "disk1.json"))

	// APTPL zero (re-registering the same key) removes the file.
	good(t, h1, proutReq(0, 0x00, 0, 0x1111, 0x1111, 0))
	assert.NoFileExists(t, stateFile)
	require.NoError(t, h1.Logout(context.Background(), 0))
	require.NoError(t, h2.Logout(context.Background(), 0))
	require.NoError(t, st.stop())

	st = startServe(t, o)
	h2 = prSession(t, st.addr, prHost2, 2, 0)
	rk := good(t, h2, prinReq(0, 0x00)).DataIn
	assert.Equal(t, []byte{0, 0, 0, 0}, rk[4:8], "no registrations once APTPL was cleared")
	good(t, h2, prRW(0, true, 8))
	require.NoError(t, st.stop())
}

// TestServeCorruptReservationFile: serve refuses to start on a state file
// it cannot use, and says which.
func TestServeCorruptReservationFile(t *testing.T) {
	for name, content := range map[string]string{
		"not json":     "{garbage",
		"wrong serial": `{"version":1,"serial":"x","generation":0,"type":0,"registrations":[]}`,
		"bad type":     `{"version":1,"serial":"` + "SERIAL" + `","generation":0,"type":2,"registrations":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			o := &serveOptions{configPath: prConfig(t, dir), logFormat: "text", logLevel: "info"}
			stateFile := filepath.Join(dir, ".odxtgt-pr", "disk0.json")
			require.NoError(t, os.MkdirAll(filepath.Dir(stateFile), 0o700))
			cfg, err := loadConfig(o, slog.New(slog.NewTextHandler(io.Discard, nil)))
			require.NoError(t, err)
			content := []byte(content)
			content = []byte(strings.ReplaceAll(string(content), "SERIAL", cfg.Backstores[0].Serial))
			require.NoError(t, os.WriteFile(stateFile, content, 0o600))
			err = serve(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), stateFile)
			data, _ := os.ReadFile(stateFile)
			assert.Equal(t, content, data, "the file is left for the operator")
		})
	}
}

// TestServeReservationConflicts drives two initiators over loopback: the
// access each reservation type leaves the other, PREEMPT with its unit
// attention, and an EXTENDED COPY that would write a logical unit another
// initiator reserved.
func TestServeReservationConflicts(t *testing.T) {
	dir := t.TempDir()
	st := startServe(t, &serveOptions{configPath: prConfig(t, dir), logFormat: "text", logLevel: "info"})
	h1 := prSession(t, st.addr, prHost1, 1, 0, 1)
	h2 := prSession(t, st.addr, prHost2, 2, 0, 1)

	good(t, h1, proutReq(0, 0x00, 0, 0, 0xA1, 0))
	// WRITE EXCLUSIVE: h2, not registered, reads but does not write.
	good(t, h1, proutReq(0, 0x01, 0x01, 0xA1, 0, 0))
	good(t, h2, prRW(0, false, 0))
	conflict(t, h2, prRW(0, true, 0))
	conflict(t, h2, proutReq(0, 0x01, 0x01, 0, 0, 0)) // RESERVE while unregistered
	good(t, h1, proutReq(0, 0x02, 0x01, 0xA1, 0, 0))  // RELEASE
	// EXCLUSIVE ACCESS: no reads either.
	good(t, h1, proutReq(0, 0x01, 0x03, 0xA1, 0, 0))
	conflict(t, h2, prRW(0, false, 0))
	good(t, h2, initiator.Request{CDB: []byte{0x12, 0, 0, 0, 36, 0}, ReadLen: 36})
	good(t, h2, initiator.Request{CDB: make([]byte, 6)}) // TEST UNIT READY (ALLOW COMMANDS 011b)

	// h2 registers and preempts h1: h1's registration and reservation go,
	// h1 learns it from REGISTRATIONS PREEMPTED.
	good(t, h2, proutReq(0, 0x00, 0, 0, 0xB2, 0))
	good(t, h2, proutReq(0, 0x04, 0x01, 0xB2, 0xA1, 0))
	r := command(t, h1, prRW(0, false, 0))
	require.Equal(t, scsi.StatusCheckCondition, r.Status)
	assert.Equal(t, scsi.ASCRegistrationsPreempted, r.Sense.Code)
	conflict(t, h1, prRW(0, true, 0))
	good(t, h2, prRW(0, true, 0))

	// A copy from LUN 1 to LUN 0, which h2 holds, sent by h1 to LUN 1:
	// the write of LUN 0 conflicts, so the EXTENDED COPY does.
	src, dst := naaCSCD(t, h1, 1), naaCSCD(t, h1, 0)
	list := b2bList(1, src, dst, 8, 0, 0)
	list[1] = 0x00 // LIST ID USAGE 00b: held, so its record can be read
	conflict(t, h1, initiator.Request{LUN: 1, CDB: xcopyCDB(len(list)), DataOut: list})
	// The record says what the command said: RECEIVE COPY FAILURE DETAILS
	// shows COPY COMMAND STATUS RESERVATION CONFLICT and no sense data.
	details := good(t, h1, initiator.Request{LUN: 1, CDB: []byte{0x84, 0x04, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, ReadLen: 256})
	require.Len(t, details.DataIn, 60, "% x", details.DataIn)
	assert.Equal(t, byte(scsi.StatusReservationConflict), details.DataIn[56])
	assert.Equal(t, []byte{0, 0}, details.DataIn[58:60], "SENSE DATA LENGTH")
	// The other direction only reads LUN 0, which WRITE EXCLUSIVE allows.
	list = b2bList(2, dst, src, 8, 0, 0)
	good(t, h1, initiator.Request{LUN: 1, CDB: xcopyCDB(len(list)), DataOut: list})
	// The holder copies into its own logical unit.
	list = b2bList(3, naaCSCD(t, h2, 1), naaCSCD(t, h2, 0), 8, 0, 16)
	good(t, h2, initiator.Request{LUN: 1, CDB: xcopyCDB(len(list)), DataOut: list})

	good(t, h2, proutReq(0, 0x03, 0, 0xB2, 0, 0)) // CLEAR
	good(t, h1, prRW(0, true, 0))
	require.NoError(t, st.stop())
}
