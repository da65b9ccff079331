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

// TestReviewRestoreRemovesTemporaryRecords: a process killed while it
// wrote a token record leaves the temporary file durable.WriteFile renames
// from; RestoreTokens removed only records and snapshots, so such files
// piled up in the snapshot directory, one per crash.
func TestReviewRestoreRemovesTemporaryRecords(t *testing.T) {
	dir := t.TempDir()
	f, err := backstore.OpenFile(filepath.Join(dir, "vol.img"), 4<<20, 512, backstore.FileOptions{})
	require.NoError(t, err)
	defer f.Close()
	tmp := filepath.Join(dir, ".00000000000000ab"+tokenRecordSuffix+".tmp1234567")
	require.NoError(t, os.WriteFile(tmp, []byte(`{"token":`), 0o600))
	for _, key := range [][]byte{testTokenKey, nil} {
		r := newPersistRig(t, f, dir, key)
		_, removed, err := r.m.RestoreTokens(dir, []*scsi.LU{r.lu})
		require.NoError(t, err)
		assert.Equal(t, 1, removed)
		assert.NoFileExists(t, tmp)
		r.m.Close()
		require.NoError(t, os.WriteFile(tmp, nil, 0o600))
	}
}
