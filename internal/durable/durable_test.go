package durable

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteFileRemoveAndTemps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "a.json")
	require.NoError(t, WriteFile(path, []byte("one")))
	require.NoError(t, WriteFile(path, []byte("two")))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	temps, err := Temps(dir, func(string) bool { return true })
	require.NoError(t, err)
	assert.Empty(t, temps, "nothing left behind")

	// What a process that died before its rename leaves.
	left := filepath.Join(dir, ".a.json.tmp123")
	other := filepath.Join(dir, ".b.json.tmp9")
	require.NoError(t, os.WriteFile(left, []byte("o"), 0o600))
	require.NoError(t, os.WriteFile(other, nil, 0o600))
	require.NoError(t, os.Symlink(left, filepath.Join(dir, ".a.json.tmp-link")))
	temps, err = Temps(dir, func(name string) bool { return name == "a.json" })
	require.NoError(t, err)
	assert.Equal(t, []string{left}, temps, "regular files of that target only")

	temps, err = Temps(filepath.Join(dir, "none"), func(string) bool { return true })
	require.NoError(t, err, "a missing directory holds no temporary files")
	assert.Empty(t, temps)

	require.NoError(t, Remove(path))
	require.NoError(t, Remove(path), "removing what is gone is no error")
	assert.NoFileExists(t, path)
}
