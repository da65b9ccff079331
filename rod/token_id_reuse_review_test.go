package rod

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewTokenIDReusedAfterRestart: with a token key, a token of the
// previous process that did not persist (change vulnerable here, or
// copy-on-write, or deleted) still carries a valid authenticator. The
// next process numbers its tokens from the highest restored identifier
// up (when its random seed is below it, half the time), so a new token
// takes the old token's identifier, and the old token's bytes, which
// verify under the key, resolved to the new token: a host holding a
// token that should be gone was served another token's data, of any
// logical unit.
func TestReviewTokenIDReusedAfterRestart(t *testing.T) {
	dir := t.TempDir()
	f, err := backstore.OpenFile(filepath.Join(dir, "vol.img"), 4<<20, 512, backstore.FileOptions{})
	require.NoError(t, err)
	defer f.Close()
	a := newPersistRig(t, f, dir, testTokenKey)
	a.populate(&PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 8)})
	gone := a.populate(&PopulateParams{RTV: true, RODType: RODTypePointInTimeChange, Ranges: ranges(100, 8)})
	a.m.Close()

	b := newPersistRig(t, f, dir, testTokenKey)
	b.m.tok.next = 0 // the new process's seed is below the restored identifier
	restored, _, err := b.m.RestoreTokens(dir, []*scsi.LU{b.lu})
	require.NoError(t, err)
	require.Equal(t, 1, restored)
	b.populate(&PopulateParams{Ranges: ranges(200, 8)})
	before := b.read(1000, 8)
	s := b.wut(&WUTParams{Token: gone, Ranges: ranges(1000, 8)})
	require.NotNil(t, s, "a token of the previous process that did not persist")
	assert.Equal(t, scsi.IllegalRequest, s.Key, "%v", s)
	assert.Equal(t, ascTokenUnknown, s.Code, "%v", s)
	assert.Equal(t, before, b.read(1000, 8), "nothing written")
	b.m.Close()
}
