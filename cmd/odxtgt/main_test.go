package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
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
