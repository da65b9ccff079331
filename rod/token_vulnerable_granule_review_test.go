package rod

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewChangeVulnerableTokenRevokedByWriteOutsideItsRanges: a change
// vulnerable token (ROD type 00800001h) is to become invalid when the data
// it represents changes. snapshot.preserve decides by 4 KiB granule, not
// by block: on a logical unit of 512-byte blocks a write to a block next
// to the token's ranges, sharing their granule, revokes the token though
// not one byte the token represents changed.
func TestReviewChangeVulnerableTokenRevokedByWriteOutsideItsRanges(t *testing.T) {
	r := newRig(t, Config{}, rvProtectedMem(1024, 512), rvProtectedMem(1024, 512))
	defer r.m.Close()
	want := append([]byte(nil), r.disks[0].model[9*512:11*512]...)
	tok := rvPopulate(t, r, r.nexus, 0, 1, &PopulateParams{RTV: true, RODType: RODTypePointInTimeChange,
		Ranges: []Range{{LBA: 9, Blocks: 2, Offset: 16}}})

	// A host write to block 8, which the token does not represent.
	lu := r.disks[0].lu
	unlock, err := lu.LockExtent(context.Background(), 8, 1, scsi.ExtentExclusive)
	require.NoError(t, err)
	require.NoError(t, lu.Store.WriteAt(bytes.Repeat([]byte{0xEE}, 512), 8*512, false))
	unlock()

	ch, s := rvAsync(r, r.nexus, 1, 2, 0x11, func(ctx context.Context, l *List, req Request) *scsi.Sense {
		return r.m.WriteUsingToken(ctx, l, req, &WUTParams{Token: tok, Ranges: []Range{{LBA: 0, Blocks: 2, Offset: 536}}})
	})
	require.Nil(t, s)
	s, ok := rvWait(ch, 5*time.Second)
	require.True(t, ok)
	require.Nil(t, s, "the token was revoked by a write to block 8; it represents blocks 9-10: %v", s)
	got := make([]byte, 2*512)
	require.NoError(t, r.disks[1].store.ReadAt(got, 0))
	require.Equal(t, want, got)
}
