package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/config"
)

func TestRunUsage(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run(nil, &out, &errb))
	assert.Contains(t, errb.String(), "usage:")
	assert.Equal(t, 2, run([]string{"frobnicate"}, &out, &errb))
	assert.Contains(t, errb.String(), `unknown command "frobnicate"`)
	out.Reset()
	assert.Equal(t, 0, run([]string{"help"}, &out, io.Discard))
	assert.Contains(t, out.String(), "odxtgt serve")
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeConfig(t, dir, "backstores:\n  - {name: m, type: memory, size: 1MiB}\ntargets:\n  - iqn: iqn.2025-01.io.odxtgt:t\n    portals: [127.0.0.1]\n    luns: [{lun: 0, backstore: m}]\n")
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"check", "--config", good}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "ok (1 backstores, 1 targets)")

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("backstores:\n  - {name: m, type: tape}\ntargets:\n  - iqn: NOT-AN-IQN\n    portals: [127.0.0.1]\n"), 0o644))
	out.Reset()
	errb.Reset()
	assert.Equal(t, 1, run([]string{"check", "--config", bad}, &out, &errb))
	assert.Contains(t, errb.String(), "line 2")
	assert.Contains(t, errb.String(), "backstores[0].type")
	assert.Contains(t, errb.String(), "line 4")
	assert.Contains(t, errb.String(), "targets[0].iqn")

	assert.Equal(t, 2, run([]string{"check"}, io.Discard, io.Discard))
	assert.Equal(t, 1, run([]string{"check", "--config", filepath.Join(dir, "missing.yaml")}, io.Discard, io.Discard))
}

func TestImportLIO(t *testing.T) {
	var out, errb bytes.Buffer
	src := filepath.Join("..", "..", "config", "testdata", "saveconfig.json")
	require.Equal(t, 0, run([]string{"import-lio", src}, &out, &errb), errb.String())
	cfg, err := config.Parse(out.Bytes())
	require.NoError(t, err, "import-lio prints a valid configuration")
	assert.NotEmpty(t, cfg.Targets)

	assert.Equal(t, 2, run([]string{"import-lio"}, io.Discard, io.Discard))
	assert.Equal(t, 1, run([]string{"import-lio", "/nonexistent/saveconfig.json"}, io.Discard, io.Discard))
	junk := filepath.Join(t.TempDir(), "junk.json")
	require.NoError(t, os.WriteFile(junk, []byte("{not json"), 0o644))
	assert.Equal(t, 1, run([]string{"import-lio", junk}, io.Discard, io.Discard))
}

// lioTwoWWNs is a saveconfig.json with two ramdisks whose wwns the tests
// fill in.
const lioTwoWWNs = `{"storage_objects": [
  {"plugin": "ramdisk", "name": "r0", "size": 1048576, "wwn": "%s"},
  {"plugin": "ramdisk", "name": "r1", "size": 1048576, "wwn": "%s"}],
 "targets": [{"fabric": "iscsi", "wwn": "iqn.2003-01.org.linux-iscsi.h:sn.1",
  "tpgs": [{"tag": 1, "enable": true, "attributes": {"authentication": 0, "generate_node_acls": 1},
   "portals": [{"ip_address": "127.0.0.1", "port": 3260}],
   "luns": [{"index": 0, "storage_object": "/backstores/ramdisk/r0"},
            {"index": 1, "storage_object": "/backstores/ramdisk/r1"}]}]}]}`

// Two LIO storage objects whose wwns give one NAA designator are not
// imported, and import-lio output edited into such a pair fails check with
// the line of the offending serial.
func TestDesignatorCollisionRefused(t *testing.T) {
	dir := t.TempDir()
	lio := func(wwn0, wwn1 string) string {
		p := filepath.Join(dir, wwn0+"."+wwn1+".json")
		doc := strings.Replace(strings.Replace(lioTwoWWNs, "%s", wwn0, 1), "%s", wwn1, 1)
		require.NoError(t, os.WriteFile(p, []byte(doc), 0o644))
		return p
	}

	var out, errb bytes.Buffer
	assert.Equal(t, 1, run([]string{"import-lio", lio("vol_x", "vol_y")}, &out, &errb))
	assert.Empty(t, out.String())
	assert.Contains(t, errb.String(), `backstores[1].serial: NAA designator naa.60014050000000000000000000000000 of backstore "r1" (serial "vol_y") is also that of backstore "r0"`)

	out.Reset()
	errb.Reset()
	require.Equal(t, 0, run([]string{"import-lio", lio("vol_1", "vol_2")}, &out, &errb), errb.String())
	require.Contains(t, out.String(), "serial: vol_2\n")
	cfg := writeConfig(t, dir, strings.Replace(out.String(), "serial: vol_2\n", "serial: vol.1\n", 1))
	line := 1 + strings.Count(out.String()[:strings.Index(out.String(), "serial: vol_2")], "\n")
	errb.Reset()
	assert.Equal(t, 1, run([]string{"check", "--config", cfg}, io.Discard, &errb))
	assert.Contains(t, errb.String(), fmt.Sprintf("line %d: backstores[1].serial: NAA designator naa.60014051", line))
	assert.Contains(t, errb.String(), `backstore "r1" (serial "vol.1") is also that of backstore "r0" at backstores[0] (serial "vol_1")`)
}
