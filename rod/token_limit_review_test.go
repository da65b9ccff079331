package rod

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewMaxTokensConcurrentPopulate: Populate checks the live token
// count against tokens.max_tokens before it takes its snapshot and adds
// the token only afterwards. Concurrent POPULATE TOKENs all pass the
// check while they wait for their extent lock (any host write to the
// range makes them wait), then all add a token: the bound is exceeded by
// up to MaxConcurrentCopies, each with its snapshot.
func TestReviewMaxTokensConcurrentPopulate(t *testing.T) {
	const limit, n = 2, 16
	r := newRig(t, Config{Tokens: TokenConfig{MaxTokens: limit}}, rvProtectedMem(1024, 512))
	defer r.m.Close()
	// A host write to the range is in progress.
	unlock, err := r.disks[0].lu.LockExtent(context.Background(), 0, 8, scsi.ExtentExclusive)
	require.NoError(t, err)
	var waits []<-chan *scsi.Sense
	for i := range n {
		ch, s := rvAsync(r, r.nexus, 0, uint32(10+i), 0x10, func(ctx context.Context, l *List, req Request) *scsi.Sense {
			return r.m.Populate(ctx, l, req, &PopulateParams{Ranges: []Range{{LBA: 0, Blocks: 8, Offset: 16}}})
		})
		require.Nil(t, s)
		waits = append(waits, ch)
	}
	time.Sleep(100 * time.Millisecond)
	unlock()
	for _, ch := range waits {
		_, ok := rvWait(ch, 5*time.Second)
		require.True(t, ok)
	}
	require.LessOrEqual(t, r.m.tok.count(), limit, "live tokens with tokens.max_tokens = %d", limit)
}
