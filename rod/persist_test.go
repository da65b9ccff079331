package rod

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/internal/scratchfs"
	"github.com/odxtgt/odxtgt/scsi"
)

// persistRig is one process's view of a backstore: a copy manager with a
// token key and a logical unit over store, with its snapshots in dir.
type persistRig struct {
	t     *testing.T
	m     *Manager
	lu    *scsi.LU
	nexus *scsi.Nexus
}

var testTokenKey = bytes.Repeat([]byte{0x5A}, 32)

func newPersistRig(t *testing.T, store backstore.Store, dir string, key []byte) *persistRig {
	t.Helper()
	m := NewManager(Config{Logger: quietLogger(), Tokens: TokenConfig{Key: key, SnapshotDir: func(*scsi.LU) string { return dir }}})
	table, err := scsi.NewTable(hostCommands())
	require.NoError(t, err)
	lu := scsi.NewLU(scsi.LUConfig{
		Identity: scsi.Identity{Name: "vol", Vendor: "ODXTGT", Product: "persist", Serial: "a1b2c3d4e5f60718293a4b5c6d"},
		Store:    Protect(store), Table: table, Logger: quietLogger(), Events: m,
	})
	n := scsi.NewNexus(scsi.Nexus{InitiatorName: "iqn.2025-01.test:a", InitiatorPort: "iqn.2025-01.test:a,i,0x1",
		TargetName: "iqn.2025-01.test:t", TargetPort: "iqn.2025-01.test:t,t,0x1"}, map[uint64]*scsi.LU{0: lu}, scsi.NewAbsentLU(table, quietLogger()))
	return &persistRig{t: t, m: m, lu: lu, nexus: n}
}

func (r *persistRig) populate(p *PopulateParams) [TokenLength]byte {
	r.t.Helper()
	listIDs++
	ctx, l, s := r.m.Begin(context.Background(), r.nexus, r.lu, listIDs, UsageHold, 0x10, false)
	require.Nil(r.t, s)
	s = r.m.Populate(ctx, l, Request{Nexus: r.nexus, LU: r.lu}, p)
	r.m.Finish(l, scsi.StatusGood, s)
	require.Nil(r.t, s, "%v", s)
	prog, _ := r.m.Status(r.nexus, r.lu, listIDs, true)
	return *prog.Token
}

func (r *persistRig) wut(p *WUTParams) *scsi.Sense {
	listIDs++
	ctx, l, s := r.m.Begin(context.Background(), r.nexus, r.lu, listIDs, UsageHold, 0x11, false)
	require.Nil(r.t, s)
	s = r.m.WriteUsingToken(ctx, l, Request{Nexus: r.nexus, LU: r.lu}, p)
	r.m.Finish(l, scsi.StatusGood, s)
	return s
}

func (r *persistRig) write(lba uint64, p []byte) {
	unlock, err := r.lu.LockExtent(context.Background(), lba, uint64(len(p))/uint64(r.lu.Store.BlockSize()), scsi.ExtentExclusive)
	require.NoError(r.t, err)
	defer unlock()
	require.NoError(r.t, r.lu.Store.WriteAt(p, int64(lba)*int64(r.lu.Store.BlockSize()), false))
}

func (r *persistRig) read(lba, blocks uint64) []byte {
	bs := uint64(r.lu.Store.BlockSize())
	p := make([]byte, blocks*bs)
	require.NoError(r.t, r.lu.Store.ReadAt(p, int64(lba*bs)))
	return p
}

func files(t *testing.T, dir, suffix string) []string {
	names, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	require.NoError(t, err)
	return names
}

// TestPersistentTokenOnReflinks: with a key, a point-in-time token whose
// snapshot is a clone outlives the process, a clean stop or kill -9
// alike: the next process restores it from its record, and it still
// holds the data of the moment of POPULATE TOKEN.
func TestPersistentTokenOnReflinks(t *testing.T) {
	mnt, whyNot := scratchfs.Mount(t, scratchfs.XFSReflink)
	if mnt == "" {
		t.Skip(whyNot)
	}
	for _, clean := range []bool{true, false} {
		name := map[bool]string{true: "clean stop", false: "kill -9"}[clean]
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(mnt, name)
			require.NoError(t, os.MkdirAll(dir, 0o700))
			f, err := backstore.OpenFile(filepath.Join(dir, "vol.img"), 16<<20, 4096, backstore.FileOptions{})
			require.NoError(t, err)
			defer f.Close()
			require.NoError(t, f.WriteAt(pattern(16<<20, 9), 0, false))
			a := newPersistRig(t, f, dir, testTokenKey)
			old := a.read(0, 256)
			tok := a.populate(&PopulateParams{Ranges: ranges(0, 256)})
			require.Len(t, files(t, dir, tokenRecordSuffix), 1, "the token is recorded")
			a.write(0, bytes.Repeat([]byte{0xEE}, 64*4096))
			if clean {
				a.m.Close()
			} else {
				// The process dies: its files stay as they were
				// (synced when the token was made), its descriptors
				// and the lock on the snapshot file go.
				a.m.tok.releasePersistent()
			}

			b := newPersistRig(t, f, dir, testTokenKey)
			restored, removed, err := b.m.RestoreTokens(dir, []*scsi.LU{b.lu})
			require.NoError(t, err)
			assert.Equal(t, 1, restored)
			assert.Zero(t, removed)
			require.Nil(t, b.wut(&WUTParams{Token: tok, Ranges: ranges(1024, 256)}))
			assert.Equal(t, old, b.read(1024, 256), "the data of the moment of POPULATE TOKEN")
			require.Nil(t, b.wut(&WUTParams{Token: tok, DelTkn: true, Ranges: ranges(2048, 256)}))
			assert.Empty(t, files(t, dir, tokenRecordSuffix), "a deleted token's record goes")
			assert.Empty(t, files(t, dir, snapshotSuffix), "and its snapshot")
			b.m.Close()
		})
	}
}

// TestPersistentTokenAccessUponReference: an access upon reference token
// needs no snapshot and outlives the process with a key; a point-in-time
// token whose snapshot relies on copy-on-write (no reflinks) does not,
// and its snapshot file is removed at the restart.
func TestPersistentTokenAccessUponReference(t *testing.T) {
	dir := t.TempDir()
	f, err := backstore.OpenFile(filepath.Join(dir, "vol.img"), 4<<20, 512, backstore.FileOptions{})
	require.NoError(t, err)
	defer f.Close()
	a := newPersistRig(t, f, dir, testTokenKey)
	aur := a.populate(&PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 64)})
	pit := a.populate(&PopulateParams{Ranges: ranges(100, 64)})
	if backstore.CloneRange(f, 0, f, 4096, 4096, false) == nil {
		t.Skip("the temporary directory's file system has reflinks: the point-in-time token would persist too")
	}
	require.Len(t, files(t, dir, tokenRecordSuffix), 1, "only the access upon reference token is recorded")
	a.m.Close()

	b := newPersistRig(t, f, dir, testTokenKey)
	restored, removed, err := b.m.RestoreTokens(dir, []*scsi.LU{b.lu})
	require.NoError(t, err)
	assert.Equal(t, 1, restored)
	assert.Zero(t, removed, "the clean stop removed the copy-on-write snapshot")
	b.write(0, bytes.Repeat([]byte{0x11}, 512))
	require.Nil(t, b.wut(&WUTParams{Token: aur, Ranges: ranges(1000, 64)}))
	assert.Equal(t, b.read(0, 64), b.read(1000, 64), "access upon reference reads the source as it is")
	wantSense(t, b.wut(&WUTParams{Token: pit, Ranges: ranges(2000, 64)}), scsi.IllegalRequest, ascTokenUnknown)
}

// TestPersistentTokenRecordsRefused: records that do not verify under the
// key, name another logical unit or were altered are not restored, and
// their files are removed; without a key nothing is restored.
func TestPersistentTokenRecordsRefused(t *testing.T) {
	dir := t.TempDir()
	f, err := backstore.OpenFile(filepath.Join(dir, "vol.img"), 4<<20, 512, backstore.FileOptions{})
	require.NoError(t, err)
	defer f.Close()
	make3 := func() {
		a := newPersistRig(t, f, dir, testTokenKey)
		for range 3 {
			a.populate(&PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 8)})
		}
		a.m.Close()
	}

	make3()
	recs := files(t, dir, tokenRecordSuffix)
	require.Len(t, recs, 3)
	var rec tokenRecord
	b, err := os.ReadFile(recs[0])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rec))
	rec.Ranges[0][0] = 1000 // read other blocks than the token's
	b, err = json.Marshal(rec)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(recs[0], b, 0o600))
	require.NoError(t, os.WriteFile(recs[1], []byte("{"), 0o600))
	other := newPersistRig(t, f, dir, testTokenKey)
	restored, removed, err := other.m.RestoreTokens(dir, nil) // names none of them
	require.NoError(t, err)
	assert.Zero(t, restored)
	assert.Equal(t, 3, removed)

	make3()
	wrong := newPersistRig(t, f, dir, bytes.Repeat([]byte{1}, 32))
	restored, removed, err = wrong.m.RestoreTokens(dir, []*scsi.LU{wrong.lu})
	require.NoError(t, err)
	assert.Zero(t, restored, "another key verifies none")
	assert.Equal(t, 3, removed)

	make3()
	none := newPersistRig(t, f, dir, nil)
	restored, removed, err = none.m.RestoreTokens(dir, []*scsi.LU{none.lu})
	require.NoError(t, err)
	assert.Zero(t, restored, "no key, no persistent tokens")
	assert.Equal(t, 3, removed)
}

// TestPersistentTokensWithinTodaysLimits: restored tokens count against
// max_tokens and get at most today's maximum inactivity timeout.
func TestPersistentTokensWithinTodaysLimits(t *testing.T) {
	dir := t.TempDir()
	f, err := backstore.OpenFile(filepath.Join(dir, "vol.img"), 4<<20, 512, backstore.FileOptions{})
	require.NoError(t, err)
	defer f.Close()
	a := newPersistRig(t, f, dir, testTokenKey)
	for range 3 {
		a.populate(&PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Timeout: 600, Ranges: ranges(0, 8)})
	}
	a.m.Close()

	m := NewManager(Config{Logger: quietLogger(), Tokens: TokenConfig{Key: testTokenKey, MaxTokens: 2, MaxTimeout: 30 * time.Second,
		SnapshotDir: func(*scsi.LU) string { return dir }}})
	b := newPersistRig(t, f, dir, testTokenKey)
	restored, removed, err := m.RestoreTokens(dir, []*scsi.LU{b.lu})
	require.NoError(t, err)
	assert.Equal(t, 2, restored, "max_tokens")
	assert.Equal(t, 1, removed)
	m.tok.mu.Lock()
	for _, tok := range m.tok.live {
		assert.Equal(t, 30*time.Second, tok.timeout, "today's max_timeout")
	}
	m.tok.mu.Unlock()
}

// TestRestoreTokensWithoutDirectory: a snapshot directory that does not
// exist yet (a first start) holds nothing to restore or remove, and is no
// error (a warning in the log would fail the conformance runs).
func TestRestoreTokensWithoutDirectory(t *testing.T) {
	m := NewManager(Config{Logger: quietLogger(), Tokens: TokenConfig{Key: testTokenKey}})
	restored, removed, err := m.RestoreTokens(filepath.Join(t.TempDir(), "none"), nil)
	require.NoError(t, err)
	assert.Zero(t, restored+removed)
}
