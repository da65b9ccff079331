package sbc_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewReadWaitingForWriteAborts: a READ waiting in the extent lock
// for a WRITE of its blocks ends at once when ABORT TASK aborts it, while
// the WRITE is still half done; the WRITE then completes as it would.
func TestReviewReadWaitingForWriteAborts(t *testing.T) {
	const bs, lba = 512, 3
	m := backstore.NewMemory(16*bs, bs)
	store := &pausedWriteStore{Store: m, halfway: make(chan struct{}), resume: make(chan struct{}), reading: make(chan struct{}, 1)}
	b := newBench(t, store, benchConfig{writeCache: true})
	wrote := make(chan *scsi.Command)
	go func() { wrote <- b.run(cdb16(opWrite16, 0, lba, 1), pattern(bs, 2)) }()
	<-store.halfway
	c := &scsi.Command{CDB: cdb16(opRead16, 0, lba, 1), Nexus: b.nexus, Attr: scsi.TaskSimple, Tag: 7, ExpectedIn: scsi.MaxTransferBytes}
	done := make(chan struct{})
	scsi.Submit(c, func(*scsi.Command) { close(done) })
	select {
	case <-done:
		t.Fatal("the READ ended while a WRITE of its block was half done")
	case <-time.After(50 * time.Millisecond):
	}
	aborted := make(chan bool)
	go func() { aborted <- b.lu.AbortTask(b.nexus, 7) }()
	select {
	case ok := <-aborted:
		require.True(t, ok, "the READ was in the task set")
	case <-time.After(30 * time.Second):
		t.Fatal("ABORT TASK of a READ waiting for its blocks did not end")
	}
	<-done
	// An aborted task's status is not sent (the transport drops it);
	// its handler gave up with the TASK ABORTED stand-in.
	require.Equal(t, scsi.StatusCheckCondition, c.Status)
	sense, err := scsi.ParseSense(c.Sense)
	require.NoError(t, err)
	require.Equal(t, scsi.AbortedCommand, sense.Key)
	require.Empty(t, c.DataIn, "nothing was read")
	close(store.resume)
	requireGood(t, <-wrote)
}
