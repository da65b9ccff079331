package rod

import (
	"encoding/binary"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewPersistAfterTokenEnded: Populate makes the token live, then
// writes its record. A token that ends in between (DEL_TKN or a
// cancellation by a host that found it with REPORT ALL ROD TOKENS, the
// reaper, a reload retiring its logical unit) was freed before it had a
// record, and the record written afterwards stayed: the next process
// restored a token that had ended. tok.record was also written without
// the lock freeLocked reads it under (a data race).
func TestReviewPersistAfterTokenEnded(t *testing.T) {
	dir := t.TempDir()
	f, err := backstore.OpenFile(filepath.Join(dir, "vol.img"), 4<<20, 512, backstore.FileOptions{})
	require.NoError(t, err)
	defer f.Close()
	a := newPersistRig(t, f, dir, testTokenKey)
	raw := a.populate(&PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 8)})
	tok := a.m.tok.live[binary.BigEndian.Uint64(raw[tokOffID:])]
	require.NotNil(t, tok)
	require.Len(t, files(t, dir, tokenRecordSuffix), 1)
	// The token ends, then persist writes its record: the order a
	// cancellation racing POPULATE TOKEN can take.
	a.m.tok.end(tok, tokenDeleted)
	require.Empty(t, files(t, dir, tokenRecordSuffix))
	a.m.persist(tok)
	assert.Empty(t, files(t, dir, tokenRecordSuffix), "no record for a token that has ended")
	a.m.Close()

	b := newPersistRig(t, f, dir, testTokenKey)
	restored, _, err := b.m.RestoreTokens(dir, []*scsi.LU{b.lu})
	require.NoError(t, err)
	assert.Zero(t, restored, "the ended token stays ended")
	b.m.Close()
}

// TestReviewPersistRacesEnd runs POPULATE TOKEN against cancellations of
// every token, for the race detector.
func TestReviewPersistRacesEnd(t *testing.T) {
	dir := t.TempDir()
	f, err := backstore.OpenFile(filepath.Join(dir, "vol.img"), 4<<20, 512, backstore.FileOptions{})
	require.NoError(t, err)
	defer f.Close()
	a := newPersistRig(t, f, dir, testTokenKey)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				a.m.tok.endMatching(func(*Token) bool { return true }, tokenCancelled)
			}
		}
	})
	for range 50 {
		a.populate(&PopulateParams{RTV: true, RODType: RODTypeAccessUponReference, Ranges: ranges(0, 8)})
	}
	close(stop)
	wg.Wait()
	a.m.tok.endMatching(func(*Token) bool { return true }, tokenCancelled)
	assert.Empty(t, files(t, dir, tokenRecordSuffix), "every token ended, every record gone")
	a.m.Close()
}
