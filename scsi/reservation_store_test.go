package scsi

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// TestReservationFileRoundTrip: with APTPL every change is in the file; a
// new logical unit restores it; APTPL zero removes it.
func TestReservationFileRoundTrip(t *testing.T) {
	b := newPRBench(t)
	path := filepath.Join(t.TempDir(), "pr", "disk.json")
	b.lu.prFile = path
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, APTPL: true}))
	require.NoError(t, b.out("R", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kR, APTPL: true,
		SpecIPT: true, TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:o"}}}))
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTReserve, Type: PRExclusiveAccessRegistrantsOnly, Key: kH}))
	want := b.lu.Reservations()
	require.True(t, want.APTPL)

	lu := NewLU(LUConfig{Identity: Identity{Name: "pr", Serial: "s1"}, Store: backstore.NewMemory(1<<20, 512),
		ReservationFile: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, lu.RestoreReservations())
	assert.Equal(t, want, lu.Reservations())
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")

	// RESERVE and RELEASE are saved too.
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRelease, Type: PRExclusiveAccessRegistrantsOnly, Key: kH}))
	require.NoError(t, lu.RestoreReservations())
	assert.Equal(t, ReservationType(0), lu.Reservations().Type)

	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, Key: kH, ServiceActionKey: kH}))
	assert.NoFileExists(t, path, "APTPL zero removes the state")
	assert.False(t, b.lu.Reservations().APTPL)

	// CLEAR leaves nothing to persist.
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, Key: kH, ServiceActionKey: kH, APTPL: true}))
	require.FileExists(t, path)
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTClear, Key: kH}))
	assert.NoFileExists(t, path)
}

// TestReservationFileSaveFails: a state that cannot be saved is not
// installed, and the command fails.
func TestReservationFileSaveFails(t *testing.T) {
	b := newPRBench(t)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o600))
	b.lu.prFile = filepath.Join(dir, "file", "disk.json") // its directory is a file
	err := b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, APTPL: true})
	assert.Equal(t, "4400", outcome(err))
	assert.Equal(t, "type=0", b.state())
}

func TestDecodeReservations(t *testing.T) {
	const ok = `{"version": 1, "serial": "s1", "generation": 7, "type": 1, "registrations": [
	  {"key": "0000000000001000", "initiator": "iqn.a", "isid": "000000000001", "target_port": "t,t,0x0001", "relative_port": 1, "all_target_ports": false, "holder": true},
	  {"key": "0000000000002000", "initiator": "iqn.b", "isid": "", "target_port": "t,t,0x0001", "relative_port": 1, "all_target_ports": false, "holder": false}]}`
	p, err := decodeReservations([]byte(ok), "s1")
	require.NoError(t, err)
	assert.Equal(t, uint32(7), p.generation)
	assert.Equal(t, PRWriteExclusive, p.typ)
	assert.Len(t, p.regs, 2)
	assert.True(t, p.aptpl)

	for name, tc := range map[string]struct{ from, to, err string }{
		"truncated":       {`]}`, ``, "not a valid state file"},
		"trailing data":   {`]}`, `]} {}`, "data after"},
		"unknown field":   {`"generation"`, `"colour": 1, "generation"`, "unknown field"},
		"version":         {`"version": 1`, `"version": 2`, "version 2"},
		"serial":          {`"serial": "s1"`, `"serial": "s2"`, "serial"},
		"type":            {`"type": 1`, `"type": 2`, "invalid reservation type"},
		"key":             {`"0000000000001000"`, `"1000"`, "16 lowercase hex"},
		"zero key":        {`"0000000000001000"`, `"0000000000000000"`, "key is zero"},
		"isid":            {`"000000000001"`, `"01"`, "ISID"},
		"no initiator":    {`"iqn.a"`, `""`, "initiator name"},
		"duplicate":       {`"iqn.b", "isid": ""`, `"iqn.a", "isid": "000000000001"`, "same I_T nexus"},
		"two holders":     {`"holder": false`, `"holder": true`, "2 holders"},
		"no holder":       {`"holder": true`, `"holder": false`, "0 holders"},
		"holder, no type": {`"type": 1`, `"type": 0`, "there is none"},
		"AR with holder":  {`"type": 1`, `"type": 7`, "all registrants"},
	} {
		t.Run(name, func(t *testing.T) {
			data := strings.Replace(ok, tc.from, tc.to, 1)
			require.NotEqual(t, ok, data)
			_, err := decodeReservations([]byte(data), "s1")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}

// TestRestoreNamesTheFile: a corrupt file is an error naming it, and the
// logical unit keeps no state from it.
func TestRestoreNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk.json")
	require.NoError(t, os.WriteFile(path, []byte("{"), 0o600))
	lu := NewLU(LUConfig{Identity: Identity{Name: "pr", Serial: "s1"}, Store: backstore.NewMemory(1<<20, 512), ReservationFile: path})
	err := lu.RestoreReservations()
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)
	assert.Empty(t, lu.Reservations().Registrations)

	require.NoError(t, os.Remove(path))
	require.NoError(t, lu.RestoreReservations(), "no file, no state")
}

// TestReservationFileHostileInitiatorName: an initiator whose name holds
// ",i,0x" (a login accepts any name of up to 223 bytes) registers with
// APTPL; the file saved must still restore, or the target cannot start
// again with its state file.
func TestReservationFileHostileInitiatorName(t *testing.T) {
	b := newPRBench(t)
	path := filepath.Join(t.TempDir(), "disk.json")
	b.lu.prFile = path
	const iname = "iqn.2025-01.io.odxtgt:evil,i,0xzz"
	b.nexuses["E"] = NewNexus(Nexus{InitiatorName: iname, InitiatorPort: iname + ",i,0x400001370000",
		TargetPort: tport, RelativePortID: 1}, map[uint64]*LU{0: b.lu}, nil)
	require.NoError(t, b.out("E", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, APTPL: true}))
	require.NoError(t, b.out("E", PROUTRequest{Action: PROUTReserve, Type: PRWriteExclusive, Key: kH}))
	want := b.lu.Reservations()

	lu := NewLU(LUConfig{Identity: Identity{Name: "pr", Serial: "s1"}, Store: backstore.NewMemory(1<<20, 512),
		ReservationFile: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, lu.RestoreReservations())
	assert.Equal(t, want, lu.Reservations())
	assert.Equal(t, "E=1000* type=1", b.state())
}

// TestRestoreRemovesTornStateUpdates: a process killed between writing
// the temporary file of a state update and renaming it over the state
// file (the crash test saw it) leaves the temporary file; the restart
// restores the old state, whole, and removes the temporary file, so that
// repeated crashes do not pile them up. Files of other names stay.
func TestRestoreRemovesTornStateUpdates(t *testing.T) {
	b := newPRBench(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "disk.json")
	b.lu.prFile = path
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, APTPL: true}))
	want := b.lu.Reservations()
	torn := filepath.Join(dir, ".disk.json.tmp123456")
	require.NoError(t, os.WriteFile(torn, []byte(`{"version":`), 0o600))
	other := filepath.Join(dir, ".other.json.tmp1")
	require.NoError(t, os.WriteFile(other, nil, 0o600))

	lu := NewLU(LUConfig{Identity: Identity{Name: "pr", Serial: "s1"}, Store: backstore.NewMemory(1<<20, 512),
		ReservationFile: path, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, lu.RestoreReservations())
	assert.Equal(t, want, lu.Reservations())
	assert.NoFileExists(t, torn)
	assert.FileExists(t, other, "another LU's temporary file is not this one's to remove")
}
