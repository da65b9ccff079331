package rod

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestWUTCountsBuffersWrittenBeforeAFailedWrite: a WRITE USING TOKEN step
// that goes through the copy buffer writes a range a buffer (4 MiB) at a
// time; when a later buffer's write failed, the buffers before it were on
// the destination, yet the blocks written (RECEIVE ROD TOKEN
// INFORMATION's TRANSFER COUNT) left the whole step out, so a host
// resuming from the count rewrote blocks already written and could not
// tell how far the command got.
func TestWUTCountsBuffersWrittenBeforeAFailedWrite(t *testing.T) {
	const blocks, bs = 16384, 512 // one 8 MiB range: one step of two buffers
	dst := backstore.NewFault(backstore.NewMemory(blocks*bs, bs))
	r := newRig(t, Config{}, rvProtectedMem(blocks, bs), diskSpec{store: Protect(dst)})
	defer r.m.Close()
	tok := rvPopulate(t, r, r.nexus, 0, 1, &PopulateParams{Ranges: []Range{{LBA: 0, Blocks: blocks, Offset: 16}}})
	// Fail the second buffer, and the fast paths, which would go around
	// the buffers.
	const bad = 10240 * bs
	for _, k := range []backstore.OpKind{backstore.OpWrite, backstore.OpCopy, backstore.OpClone} {
		dst.FailRange(k, bad, bs, syscall.EIO)
	}
	wut, s := rvAsync(r, r.nexus, 1, 2, 0x11, func(ctx context.Context, l *List, req Request) *scsi.Sense {
		return r.m.WriteUsingToken(ctx, l, req, &WUTParams{Token: tok, Ranges: []Range{{LBA: 0, Blocks: blocks, Offset: 536}}})
	})
	require.Nil(t, s)
	s, ok := rvWait(wut, 10*time.Second)
	require.True(t, ok)
	const written = bufferSize / bs
	require.NotNil(t, s)
	require.Equal(t, scsi.MediumError, s.Key, "%v", s)
	require.True(t, s.HasInformation)
	require.EqualValues(t, written, s.Information, "INFORMATION: the first block not written")
	p, ok := r.m.Status(r.nexus, r.disks[1].lu, 2, true)
	require.True(t, ok)
	require.EqualValues(t, written, p.Blocks, "blocks written")

	got := make([]byte, blocks*bs)
	require.NoError(t, dst.ReadAt(got, 0))
	require.True(t, bytes.Equal(got[:written*bs], r.disks[0].model[:written*bs]), "the first buffer is the token's data")
	require.True(t, bytes.Equal(got[written*bs:], r.disks[1].model[written*bs:]), "nothing after it was written")
}
