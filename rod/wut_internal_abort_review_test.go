package rod

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewWUTStopsWhenInternalTaskAborted: EXTENDED COPY was fixed to
// stop when one of its internal tasks is aborted while it runs (ABORT
// TASK SET or a logical unit reset on a logical unit it accesses: "the
// copy must not go on as a task nobody aborted"). WRITE USING TOKEN has no
// such check: its internal task on the token's source logical unit is
// aborted and waited for, the task management function completes, and the
// WRITE USING TOKEN (received on another logical unit, so not aborted)
// goes on reading the source and writing the destination with fresh
// internal tasks, ending GOOD.
func TestReviewWUTStopsWhenInternalTaskAborted(t *testing.T) {
	for _, how := range []string{"ABORT TASK SET", "LOGICAL UNIT RESET"} {
		t.Run(how, func(t *testing.T) {
			dst := backstore.NewFault(backstore.NewMemory(1024*512, 512))
			r := newRig(t, Config{}, rvProtectedMem(1024, 512), diskSpec{store: Protect(dst)})
			defer r.m.Close()
			// Two token ranges: WRITE USING TOKEN works one step per range.
			tok := rvPopulate(t, r, r.nexus, 0, 1, &PopulateParams{Ranges: []Range{{LBA: 0, Blocks: 8, Offset: 16}, {LBA: 100, Blocks: 8, Offset: 32}}})
			before := make([]byte, 8*512)
			require.NoError(t, dst.ReadAt(before, 8*512))

			started, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			dst.Inject(func(op backstore.Op) error {
				switch op.Kind {
				case backstore.OpWrite, backstore.OpClone, backstore.OpCopy:
					once.Do(func() { close(started); <-release })
				}
				return nil
			})
			wut, s := rvAsync(r, r.nexus, 1, 2, 0x11, func(ctx context.Context, l *List, req Request) *scsi.Sense {
				return r.m.WriteUsingToken(ctx, l, req, &WUTParams{Token: tok, Ranges: []Range{{LBA: 0, Blocks: 16, Offset: 536}}})
			})
			require.Nil(t, s)
			<-started
			go func() {
				time.Sleep(20 * time.Millisecond)
				close(release)
			}()
			// The task management function on the source logical unit:
			// it aborts the internal task and waits for it to end.
			if how == "ABORT TASK SET" {
				r.disks[0].lu.AbortTaskSet(r.nexus)
			} else {
				r.disks[0].lu.Reset(scsi.ASCBusDeviceResetFunctionOccurred)
			}
			s, ok := rvWait(wut, 5*time.Second)
			require.True(t, ok)
			after := make([]byte, 8*512)
			require.NoError(t, dst.ReadAt(after, 8*512))
			require.Equal(t, before, after, "after the task management function completed, the next step wrote blocks 8-15 (WRITE USING TOKEN ended %v)", s)
			require.NotNil(t, s, "WRITE USING TOKEN ended GOOD after its internal task on the source was aborted")
			require.Equal(t, scsi.AbortedCommand, s.Key, "%v", s)
		})
	}
}
