package rod

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewPanickingWorkEndsList: a copy whose work panics (a bug) still
// ends its list: the progress logger stops, the list is finished and no
// longer counts as running, and a background (IMMED) one takes the
// process down no more than a foreground one does.
func TestReviewPanickingWorkEndsList(t *testing.T) {
	for _, immed := range []bool{false, true} {
		base := runtime.NumGoroutine()
		m := NewManager(Config{Logger: quietLogger(), ProgressInterval: time.Millisecond})
		panicking := func(context.Context, *List, Request) *scsi.Sense { panic("copy bug") }
		table, err := scsi.NewTable(scsi.CommandSet{Commands: []scsi.CommandDesc{{
			Name: "PANICKING COPY", Opcode: 0xC0, Usage: []byte{0xFF, 0, 0, 0, 0, 0},
			Handler: func(cmd *scsi.Command) error { return m.Execute(cmd, 1, UsageHold, 0, immed, panicking) },
		}}})
		require.NoError(t, err)
		lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "d", Serial: "1"}, Store: backstore.NewMemory(1<<20, 512),
			Table: table, Logger: quietLogger(), Events: m})
		n := scsi.NewNexus(scsi.Nexus{InitiatorPort: "i,i,0x1", TargetPort: "t,t,0x1"}, map[uint64]*scsi.LU{0: lu}, scsi.NewAbsentLU(table, quietLogger()))
		run := func() *scsi.Command {
			c := &scsi.Command{CDB: []byte{0xC0, 0, 0, 0, 0, 0}, Nexus: n, Attr: scsi.TaskSimple}
			done := make(chan struct{})
			scsi.Submit(c, func(*scsi.Command) { close(done) })
			<-done
			return c
		}
		run() // the power-on unit attention
		c := run()
		if !immed {
			require.Equal(t, scsi.StatusCheckCondition, c.Status)
		}
		require.Eventually(t, func() bool { return m.Running() == 0 }, 5*time.Second, time.Millisecond, "immed %v: the list still runs", immed)
		p, ok := m.Status(n, lu, 1, false)
		require.True(t, ok)
		require.True(t, p.Done)
		require.Equal(t, scsi.StatusCheckCondition, p.Status)
		m.Close()
		settleGoroutines(t, base)
	}
}

// gatedStore holds the first write made once armed until released.
type gatedStore struct {
	backstore.Store
	armed    atomic.Bool
	reached  chan struct{}
	release  chan struct{}
	blocking sync.Once
}

func (g *gatedStore) WriteAt(p []byte, off int64, fua bool) error {
	if g.armed.Load() {
		g.blocking.Do(func() {
			close(g.reached)
			<-g.release
		})
	}
	return g.Store.WriteAt(p, off, fua)
}

// TestReviewCopyStopsWritingUnmappedLU: a reload that takes the
// destination of a running EXTENDED COPY out of its nexus's LUN map (an
// ACL change fencing the initiator off) stops the copy at the next chunk:
// nothing more is written to a logical unit the nexus no longer sees,
// though the command was sent to one it still sees.
func TestReviewCopyStopsWritingUnmappedLU(t *testing.T) {
	const bs, blocks = 512, 32768 // 16 MiB: four buffered chunks
	dst := &gatedStore{Store: backstore.NewMemory(blocks*bs, bs), reached: make(chan struct{}), release: make(chan struct{})}
	r := newRig(t, Config{}, memDisk(blocks, bs), diskSpec{store: dst})
	r.clearUA(r.nexus)
	dst.armed.Store(true)
	type result struct {
		l *List
		s *scsi.Sense
	}
	done := make(chan result, 1)
	go func() {
		l, s := r.run(r.list(1, b2b(0, 1, blocks, 0, 0)))
		done <- result{l, s}
	}()
	<-dst.reached
	require.True(t, r.nexus.SetLUs(map[uint64]*scsi.LU{0: r.disks[0].lu}))
	close(dst.release)
	res := <-done
	require.NotNil(t, res.s, "the copy went on into a logical unit its nexus no longer sees")
	got := make([]byte, blocks*bs)
	require.NoError(t, dst.ReadAt(got, 0))
	written := 0
	for written < len(got) && got[written] == r.disks[0].model[written] {
		written++
	}
	require.LessOrEqual(t, written, bufferSize, "bytes copied after the LU left the nexus's map")
}

// TestReviewCloseAbortsForegroundLists: Close, as its comment says, aborts
// every copy still running, those whose command still waits for them too
// (the events of a task set leave those to their command; the process
// stopping does not).
func TestReviewCloseAbortsForegroundLists(t *testing.T) {
	r := newManagerRig(t, Config{})
	ctx, l := r.begin(r.nexus, 0, 1, UsageHold)
	closed := make(chan struct{})
	go func() {
		r.m.Close()
		close(closed)
	}()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		require.FailNow(t, "Close left a foreground copy running")
	}
	r.m.Finish(l, scsi.StatusTaskAborted, nil)
	<-closed
}

// TestReviewRetiredLUEndsItsTokens: once a reload took a logical unit
// out of service, its ROD tokens are cancelled (WRITE USING TOKEN says
// so, and a host falls back to its own copy) and their snapshots freed at
// once, instead of living until they time out and making a WRITE USING
// TOKEN to a logical unit that is still there fail with LOGICAL UNIT NOT
// SUPPORTED.
func TestReviewRetiredLUEndsItsTokens(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024, 1024)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 64)})
	require.Nil(t, s)
	r.lus[0].Retire()
	r.m.Retired(r.lus[0])
	require.Zero(t, r.m.tok.count())
	require.Empty(t, *r.lus[0].Store.(*Protected).snaps.Load())
	_, s = r.wut(r.nexus, 1, &WUTParams{Token: tok, Ranges: ranges(0, 64)})
	wantSense(t, s, scsi.IllegalRequest, ascTokenCancelled)
}
