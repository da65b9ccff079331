package rod

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewWUTWaitsForBufferWhileHoldingExtentLocks: WRITE USING TOKEN
// takes a pooled copy buffer (tokenWrite.buffered -> getBuffer) inside
// scsi.RunInternal, i.e. while it holds the extent locks of its source
// (shared) and destination (exclusive). A buffered EXTENDED COPY takes its
// two buffers first and then waits in RunInternal for extent locks. When
// the copy's buffers are the last ones and its read waits behind the
// WRITE USING TOKEN's exclusive hold, neither ever moves: a deadlock,
// which also freezes every later host write to those blocks.
//
// Here the pool has two buffers (BufferBytes 1), a host write in progress
// (a held extent lock) only orders the arrivals, as any concurrent host
// write does: the WRITE USING TOKEN (a copy within one logical unit, the
// usual ODX case, which always takes the buffered path) queues for
// blocks 0-7, the EXTENDED COPY (byte offset 1, so buffered) takes both
// buffers and queues for blocks 0-4 behind it, then the host write ends.
func TestReviewWUTWaitsForBufferWhileHoldingExtentLocks(t *testing.T) {
	r := newRig(t, Config{BufferBytes: 1}, rvProtectedMem(1024, 512), rvProtectedMem(1024, 512))
	require.Equal(t, 2, cap(r.m.buffers))
	defer r.m.Close()
	lu0 := r.disks[0].lu
	tok := rvPopulate(t, r, r.nexus, 0, 1, &PopulateParams{Ranges: []Range{{LBA: 512, Blocks: 8, Offset: 16}}})

	// A host write to blocks 0-7 of disk 0 is in progress.
	unlock, err := lu0.LockExtent(context.Background(), 0, 8, scsi.ExtentExclusive)
	require.NoError(t, err)

	wut, s := rvAsync(r, r.nexus, 0, 2, 0x11, func(ctx context.Context, l *List, req Request) *scsi.Sense {
		return r.m.WriteUsingToken(ctx, l, req, &WUTParams{Token: tok, Ranges: []Range{{LBA: 0, Blocks: 8, Offset: 536}}})
	})
	require.Nil(t, s)
	time.Sleep(100 * time.Millisecond) // WRITE USING TOKEN queued for blocks 0-7

	p := mustParse(t, r.list(3, b2bOffset(0, 1, 2048, 0, 1, 0, 0)))
	xcopy, s := rvAsync(r, r.nexus, 0, 3, 0x00, func(ctx context.Context, l *List, req Request) *scsi.Sense {
		return r.m.Run(ctx, l, req, p)
	})
	require.Nil(t, s)
	time.Sleep(100 * time.Millisecond) // EXTENDED COPY holds both buffers, queued behind it

	unlock() // the host write completes

	ws, ok := rvWait(wut, 5*time.Second)
	require.True(t, ok, "deadlock: WRITE USING TOKEN holds the extent lock of blocks 0-7 and waits for a copy buffer; "+
		"the EXTENDED COPY holds both buffers and waits for that extent lock")
	require.Nil(t, ws)
	xs, ok := rvWait(xcopy, 5*time.Second)
	require.True(t, ok, "EXTENDED COPY never ended")
	require.Nil(t, xs)
}
