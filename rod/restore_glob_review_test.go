package rod

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewRestoreDirWithPatternCharacters: RestoreTokens found the
// files of a snapshot directory with filepath.Glob on the directory's
// name, so a directory named "vm[1]" was taken as a pattern matching
// "vm1": the snapshot and token files of another directory were removed,
// and its own were left.
func TestReviewRestoreDirWithPatternCharacters(t *testing.T) {
	parent := t.TempDir()
	dir, other := filepath.Join(parent, "vm[1]"), filepath.Join(parent, "vm1")
	require.NoError(t, os.Mkdir(dir, 0o700))
	require.NoError(t, os.Mkdir(other, 0o700))
	theirs := filepath.Join(other, "0123456789abcdef"+snapshotSuffix)
	ours := filepath.Join(dir, "fedcba9876543210"+snapshotSuffix)
	require.NoError(t, os.WriteFile(theirs, nil, 0o600))
	require.NoError(t, os.WriteFile(ours, nil, 0o600))
	f, err := backstore.OpenFile(filepath.Join(parent, "vol.img"), 4<<20, 512, backstore.FileOptions{})
	require.NoError(t, err)
	defer f.Close()
	r := newPersistRig(t, f, dir, testTokenKey)
	_, removed, err := r.m.RestoreTokens(dir, []*scsi.LU{r.lu})
	require.NoError(t, err)
	assert.Equal(t, 1, removed)
	assert.FileExists(t, theirs, "another directory's file")
	assert.NoFileExists(t, ours, "the leftover of this directory")
	r.m.Close()
}
