package rod

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// Helpers of the review tests (hostile review of the copy offload code).

// rvProtectedMem is a diskSpec for a protected memory store, as build.go
// gives every logical unit.
func rvProtectedMem(blocks int64, bs int) diskSpec {
	return diskSpec{store: Protect(backstore.NewMemory(blocks*int64(bs), bs))}
}

// rvPopulate runs POPULATE TOKEN on disk i of r, as sbc's handler does,
// and returns the token.
func rvPopulate(t *testing.T, r *rig, n *scsi.Nexus, i int, id uint32, p *PopulateParams) [TokenLength]byte {
	t.Helper()
	lu := r.disks[i].lu
	ctx, l, s := r.m.Begin(context.Background(), n, lu, id, UsageHold, 0x10, false)
	require.Nil(t, s, "begin: %v", s)
	s = r.m.Populate(ctx, l, Request{Nexus: n, LU: lu}, p)
	status := scsi.StatusGood
	if s != nil {
		status = scsi.StatusCheckCondition
	}
	r.m.Finish(l, status, s)
	require.Nil(t, s, "populate: %v", s)
	prog, ok := r.m.Status(n, lu, id, true)
	require.True(t, ok)
	require.NotNil(t, prog.Token)
	return *prog.Token
}

// rvAsync runs work as list id of nexus n on disk i in the background,
// as the handlers do, and returns a channel that yields its result.
func rvAsync(r *rig, n *scsi.Nexus, i int, id uint32, sa byte, work func(context.Context, *List, Request) *scsi.Sense) (<-chan *scsi.Sense, *scsi.Sense) {
	lu := r.disks[i].lu
	ctx, l, s := r.m.Begin(context.Background(), n, lu, id, UsageHold, sa, false)
	if s != nil {
		return nil, s
	}
	done := make(chan *scsi.Sense, 1)
	go func() {
		s := work(ctx, l, Request{Nexus: n, LU: lu})
		status := scsi.StatusGood
		if s != nil {
			status = scsi.StatusCheckCondition
		}
		r.m.Finish(l, status, s)
		done <- s
	}()
	return done, nil
}

// rvWait waits at most d for a result.
func rvWait(ch <-chan *scsi.Sense, d time.Duration) (*scsi.Sense, bool) {
	select {
	case s := <-ch:
		return s, true
	case <-time.After(d):
		return nil, false
	}
}
