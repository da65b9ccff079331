package spc

import (
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"

	"github.com/odxtgt/odxtgt/scsi"
)

// FuzzCDB feeds arbitrary CDBs and data-out buffers to a logical unit with
// the spc table, and to the absent logical unit. No command may panic
// (the dispatcher would turn a panic into HARDWARE ERROR, INTERNAL TARGET
// FAILURE, which no handler here reports otherwise), every command ends in
// GOOD or CHECK CONDITION with sense data that parses, and no data-in
// exceeds what the CDB allows. The seeds are the CDBs of the testdata
// scripts.
func FuzzCDB(f *testing.F) {
	// Every script is a seed file; parseScript and unhex fail f on one
	// that does not parse, and a file must give at least one CDB.
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed scripts in testdata (%v)", err)
	}
	for _, p := range paths {
		cases, _ := parseScript(f, p)
		seeds := 0
		for _, c := range cases {
			words := strings.Fields(c.directive)
			if words[0] != "cdb" {
				continue
			}
			_, rest := args(words[1:])
			f.Add(unhex(f, strings.Join(rest, " ")), unhex(f, strings.Join(c.input, " ")), false)
			seeds++
		}
		if seeds == 0 {
			f.Fatalf("%s: no cdb cases to seed FuzzCDB with", p)
		}
	}
	f.Add([]byte{0x12, 0x01, 0x83, 0x00, 0xFF, 0x00}, []byte{}, true)
	f.Fuzz(func(t *testing.T, cdb, dataOut []byte, absent bool) {
		if len(cdb) > 32 || len(dataOut) > 4096 {
			return
		}
		e := &testEnv{}
		e.addLU(t, map[string]string{"blocks": "64"}, nil)
		lun := uint64(0)
		if absent {
			lun = 1
		}
		n := e.nexuses["a"]
		e.submit(n, lun, []byte{0x03, 0, 0, 0, 18, 0}, nil)
		cmd := e.submit(n, lun, cdb, dataOut)
		switch cmd.Status {
		case scsi.StatusGood:
		case scsi.StatusCheckCondition:
			s, err := scsi.ParseSense(cmd.Sense)
			if err != nil {
				t.Fatalf("% x: undecodable sense % x: %v", cdb, cmd.Sense, err)
			}
			if s.Key == scsi.HardwareError {
				t.Fatalf("% x: %v", cdb, s)
			}
		case scsi.StatusReservationConflict:
			if len(cmd.Sense) != 0 {
				t.Fatalf("% x: RESERVATION CONFLICT with sense data", cdb)
			}
		default:
			t.Fatalf("% x: status %v", cdb, cmd.Status)
		}
		if limit, ok := allocationLength(cdb); ok && len(cmd.DataIn) > limit {
			t.Fatalf("% x: %d bytes of data-in, allocation length %d", cdb, len(cmd.DataIn), limit)
		}
	})
}

// allocationFields says where the data-in commands of this package keep
// their ALLOCATION LENGTH: byte offset and size.
var allocationFields = map[byte][2]int{
	0x03: {4, 1}, 0x1A: {4, 1}, 0x12: {3, 2}, 0x5A: {7, 2}, 0xA0: {6, 4}, 0xA3: {6, 4}, 0x5E: {7, 2},
}

// allocationLength returns the ALLOCATION LENGTH of a data-in command of
// this package.
func allocationLength(cdb []byte) (int, bool) {
	if len(cdb) == 0 {
		return 0, false
	}
	f, ok := allocationFields[cdb[0]]
	if !ok || len(cdb) < f[0]+f[1] {
		return 0, false
	}
	switch f[1] {
	case 1:
		return int(cdb[f[0]]), true
	case 2:
		return int(binary.BigEndian.Uint16(cdb[f[0]:])), true
	}
	return int(binary.BigEndian.Uint32(cdb[f[0]:])), true
}
