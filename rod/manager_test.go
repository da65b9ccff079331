package rod

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// clock is a settable time source for Manager.now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// managerRig is a manager with a fake clock, two logical units and a
// second nexus that sees both.
type managerRig struct {
	*rig
	clock *clock
	other *scsi.Nexus
}

func newManagerRig(t *testing.T, cfg Config) *managerRig {
	r := newRig(t, cfg, memDisk(16, 512), memDisk(16, 512))
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	r.m.now = c.now
	other := r.newNexus("iqn.2025-01.test:other,i,0x2", map[uint64]*scsi.LU{0: r.disks[0].lu, 1: r.disks[1].lu})
	return &managerRig{rig: r, clock: c, other: other}
}

// begin registers a list and fails the test on error.
func (r *managerRig) begin(n *scsi.Nexus, disk int, id uint32, usage ListIDUsage) (context.Context, *List) {
	r.t.Helper()
	return r.beginAs(n, disk, id, usage, false)
}

// beginAs is begin for a list in the background (IMMED) or not.
func (r *managerRig) beginAs(n *scsi.Nexus, disk int, id uint32, usage ListIDUsage, background bool) (context.Context, *List) {
	r.t.Helper()
	ctx, l, s := r.m.Begin(context.Background(), n, r.disks[disk].lu, id, usage, 0x01, background)
	require.Nil(r.t, s, "begin %d: %v", id, s)
	require.NotNil(r.t, l)
	return ctx, l
}

func (r *managerRig) status(n *scsi.Nexus, disk int, id uint32) (Progress, bool) {
	return r.m.Status(n, r.disks[disk].lu, id, false)
}

func requireCancelled(t *testing.T, ctx context.Context, want bool) {
	t.Helper()
	if want {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
			require.FailNow(t, "context not cancelled")
		}
		return
	}
	require.NoError(t, ctx.Err(), "context cancelled")
}

func TestBeginDuplicateRunning(t *testing.T) {
	for _, usage := range []ListIDUsage{UsageHold, UsageDiscard} {
		r := newManagerRig(t, Config{})
		r.begin(r.nexus, 0, 5, usage)
		// SPC-4 6.4.3.2: a list identifier in use on the I_T_L nexus is
		// OPERATION IN PROGRESS, whatever the usage of either list.
		for _, again := range []ListIDUsage{UsageHold, UsageDiscard} {
			_, l, s := r.m.Begin(context.Background(), r.nexus, r.disks[0].lu, 5, again, 0, false)
			require.Nil(t, l)
			requireSense(t, s, scsi.IllegalRequest, scsi.ASCOperationInProgress, noSKS)
		}
		// The same identifier from another nexus or on another logical
		// unit is another list.
		r.begin(r.other, 0, 5, usage)
		r.begin(r.nexus, 1, 5, usage)
		// Lists without identifier never collide.
		r.begin(r.nexus, 0, 0, UsageNone)
		r.begin(r.nexus, 0, 0, UsageNone)
		require.Equal(t, 5, r.m.Running())
	}
}

func TestHeldListReplacedBySameID(t *testing.T) {
	r := newManagerRig(t, Config{})
	_, l := r.begin(r.nexus, 0, 9, UsageHold)
	l.segments.Store(3)
	r.m.Finish(l, scsi.StatusCheckCondition, scsi.NewSense(scsi.CopyAborted, scsi.ASCThirdPartyDeviceFailure))
	p, ok := r.status(r.nexus, 0, 9)
	require.True(t, ok)
	require.True(t, p.Done)
	require.Equal(t, uint32(3), p.Segments)

	_, l2 := r.begin(r.nexus, 0, 9, UsageHold)
	p, ok = r.status(r.nexus, 0, 9)
	require.True(t, ok)
	require.False(t, p.Done, "the new list replaced the completed one")
	require.Zero(t, p.Segments)
	r.m.Finish(l2, scsi.StatusGood, nil)
	p, _ = r.status(r.nexus, 0, 9)
	require.Equal(t, scsi.StatusGood, p.Status)
	require.Nil(t, p.Sense)
}

func TestUnheldListsForgotten(t *testing.T) {
	r := newManagerRig(t, Config{})
	_, l := r.begin(r.nexus, 0, 4, UsageDiscard)
	p, ok := r.status(r.nexus, 0, 4)
	require.True(t, ok, "a 10b list can be queried while it runs")
	require.False(t, p.Done)
	r.m.Finish(l, scsi.StatusGood, nil)
	_, ok = r.status(r.nexus, 0, 4)
	require.False(t, ok, "10b: nothing held")

	_, l = r.begin(r.nexus, 0, 0, UsageNone)
	_, ok = r.status(r.nexus, 0, 0)
	require.False(t, ok, "11b: no identifier to query")
	r.m.Finish(l, scsi.StatusCheckCondition, scsi.LBAOutOfRange())
	require.False(t, r.m.Abort(r.nexus, r.disks[0].lu, 0))

	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	require.Empty(t, r.m.lists)
	require.Zero(t, r.m.running)
}

func TestStatusTakeReleases(t *testing.T) {
	r := newManagerRig(t, Config{})
	_, l := r.begin(r.nexus, 0, 1, UsageHold)
	p, ok := r.m.Status(r.nexus, r.disks[0].lu, 1, true)
	require.True(t, ok)
	require.False(t, p.Done)
	_, ok = r.status(r.nexus, 0, 1)
	require.True(t, ok, "taking a running list's status keeps it")

	r.m.Finish(l, scsi.StatusGood, nil)
	p, ok = r.m.Status(r.nexus, r.disks[0].lu, 1, true)
	require.True(t, ok)
	require.True(t, p.Done)
	_, ok = r.status(r.nexus, 0, 1)
	require.False(t, ok, "taking a completed list's status releases it")
	// Released, the identifier is free without a duplicate check.
	r.begin(r.nexus, 0, 1, UsageHold)
}

func TestHeldListTimeout(t *testing.T) {
	r := newManagerRig(t, Config{HeldListTimeout: time.Minute})
	_, l := r.begin(r.nexus, 0, 1, UsageHold)
	r.clock.advance(time.Hour) // running lists never time out
	_, ok := r.status(r.nexus, 0, 1)
	require.True(t, ok)
	r.m.Finish(l, scsi.StatusGood, nil)
	r.clock.advance(time.Minute)
	_, ok = r.status(r.nexus, 0, 1)
	require.True(t, ok, "readable for the whole timeout")
	r.clock.advance(time.Nanosecond)
	_, ok = r.status(r.nexus, 0, 1)
	require.False(t, ok, "dropped after the timeout")

	// Begin prunes too, so an unread list does not stay forever.
	_, l = r.begin(r.nexus, 0, 2, UsageHold)
	r.m.Finish(l, scsi.StatusGood, nil)
	r.clock.advance(2 * time.Minute)
	_, l3 := r.begin(r.nexus, 1, 3, UsageDiscard)
	r.m.mu.Lock()
	require.Len(t, r.m.lists, 1)
	r.m.mu.Unlock()
	r.m.Finish(l3, scsi.StatusGood, nil)

	require.Equal(t, DefaultHeldListTimeout, NewManager(Config{}).ttl)
}

func TestHeldListsBoundedPerITL(t *testing.T) {
	r := newManagerRig(t, Config{})
	// Another I_T_L nexus's held lists do not count against this one's.
	for id := range uint32(maxHeldLists) {
		_, l := r.begin(r.other, 0, id, UsageHold)
		r.m.Finish(l, scsi.StatusGood, nil)
		_, l = r.begin(r.nexus, 1, id, UsageHold)
		r.m.Finish(l, scsi.StatusGood, nil)
	}
	for id := range uint32(maxHeldLists + 3) {
		r.clock.advance(time.Second)
		_, l := r.begin(r.nexus, 0, 100+id, UsageHold)
		r.m.Finish(l, scsi.StatusGood, nil)
	}
	// A running list is not held yet and is never dropped.
	_, running := r.begin(r.nexus, 0, 99, UsageHold)
	for id := range uint32(maxHeldLists + 3) {
		_, ok := r.status(r.nexus, 0, 100+id)
		require.Equal(t, id >= 3, ok, "list %d: the oldest go first", 100+id)
	}
	_, ok := r.status(r.nexus, 0, 99)
	require.True(t, ok)
	for id := range uint32(maxHeldLists) {
		_, ok := r.status(r.other, 0, id)
		require.True(t, ok)
		_, ok = r.status(r.nexus, 1, id)
		require.True(t, ok)
	}
	r.m.Finish(running, scsi.StatusGood, nil)
	_, ok = r.status(r.nexus, 0, 100+3)
	require.False(t, ok, "finishing one more drops the next oldest")
}

func TestConcurrentCopiesBounded(t *testing.T) {
	r := newManagerRig(t, Config{})
	var lists []*List
	for i := range MaxConcurrentCopies {
		usage := UsageHold
		if i%3 == 2 {
			usage = UsageNone
		}
		_, l := r.begin(r.nexus, i%2, uint32(i), usage)
		lists = append(lists, l)
	}
	require.Equal(t, MaxConcurrentCopies, r.m.Running())
	for _, n := range []*scsi.Nexus{r.nexus, r.other} {
		_, l, s := r.m.Begin(context.Background(), n, r.disks[0].lu, 1000, UsageHold, 0, false)
		require.Nil(t, l)
		requireSense(t, s, scsi.IllegalRequest, ascInsufficientResources, noSKS)
	}
	// Refused lists leave no state behind.
	_, ok := r.status(r.nexus, 0, 1000)
	require.False(t, ok)

	r.m.Finish(lists[7], scsi.StatusGood, nil)
	r.m.Finish(lists[7], scsi.StatusGood, nil) // a second Finish changes nothing
	require.Equal(t, MaxConcurrentCopies-1, r.m.Running())
	_, l := r.begin(r.nexus, 0, 1000, UsageHold)
	lists = append(lists, l)
	for _, l := range lists {
		r.m.Finish(l, scsi.StatusGood, nil)
	}
	require.Zero(t, r.m.Running())
}

// TestEventsCancelAndForget drives the scsi.NexusEvents methods through
// the logical units that call them: nexus loss and logical unit reset
// cancel and forget background (IMMED) lists, ABORT TASK SET and CLEAR
// TASK SET only cancel them. Foreground lists are left to their command,
// which the task set aborts (here there is none: they must stay as they
// are).
func TestEventsCancelAndForget(t *testing.T) {
	type entry struct {
		n    *scsi.Nexus
		disk int
		id   uint32
		ctx  context.Context
		l    *List
	}
	cases := []struct {
		name string
		do   func(r *managerRig)
		// cancelled and forgotten report, for a running (or held) list
		// of nexus (0: r.nexus, 1: r.other) on disk, what the event does.
		cancelled, forgotten func(nexus, disk int) bool
	}{
		{"nexus loss", func(r *managerRig) { r.nexus.End() },
			func(n, d int) bool { return n == 0 }, func(n, d int) bool { return n == 0 }},
		{"NexusLost on one LU", func(r *managerRig) { r.m.NexusLost(r.disks[0].lu, r.nexus) },
			func(n, d int) bool { return n == 0 && d == 0 }, func(n, d int) bool { return n == 0 && d == 0 }},
		{"ABORT TASK SET", func(r *managerRig) { r.disks[0].lu.AbortTaskSet(r.nexus) },
			func(n, d int) bool { return n == 0 && d == 0 }, func(int, int) bool { return false }},
		{"CLEAR TASK SET", func(r *managerRig) { r.disks[0].lu.ClearTaskSet(r.other) },
			func(n, d int) bool { return d == 0 }, func(int, int) bool { return false }},
		{"LOGICAL UNIT RESET", func(r *managerRig) { r.disks[0].lu.Reset(scsi.ASCBusDeviceResetFunctionOccurred) },
			func(n, d int) bool { return d == 0 }, func(n, d int) bool { return d == 0 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			r := newManagerRig(t, Config{})
			nexuses := []*scsi.Nexus{r.nexus, r.other}
			var running, held, foreground []entry
			id := uint32(0)
			for _, n := range nexuses {
				for d := range 2 {
					ctx, l := r.beginAs(n, d, id, UsageHold, true)
					running = append(running, entry{n, d, id, ctx, l})
					id++
					ctx, l = r.begin(n, d, id, UsageHold)
					foreground = append(foreground, entry{n, d, id, ctx, l})
					id++
					_, l = r.begin(n, d, id, UsageHold)
					r.m.Finish(l, scsi.StatusGood, nil)
					held = append(held, entry{n, d, id, nil, l})
					id++
				}
			}
			c.do(r)
			idx := func(n *scsi.Nexus) int {
				if n == r.nexus {
					return 0
				}
				return 1
			}
			for _, e := range running {
				requireCancelled(t, e.ctx, c.cancelled(idx(e.n), e.disk))
				_, ok := r.status(e.n, e.disk, e.id)
				require.Equal(t, !c.forgotten(idx(e.n), e.disk), ok, "running list %d", e.id)
			}
			for _, e := range foreground {
				requireCancelled(t, e.ctx, false)
				_, ok := r.status(e.n, e.disk, e.id)
				require.True(t, ok, "foreground list %d", e.id)
				r.m.Finish(e.l, scsi.StatusGood, nil)
			}
			for _, e := range held {
				p, ok := r.status(e.n, e.disk, e.id)
				require.Equal(t, !c.forgotten(idx(e.n), e.disk), ok, "held list %d", e.id)
				if ok {
					require.False(t, p.Aborted, "a completed list stays as it ended")
				}
			}
			// The copies end as the handler ends them; a kept list then
			// reports that it was aborted.
			for _, e := range running {
				status, aborted := scsi.StatusGood, e.ctx.Err() != nil
				if aborted {
					status = scsi.StatusTaskAborted
				}
				r.m.Finish(e.l, status, nil)
				if p, ok := r.status(e.n, e.disk, e.id); ok {
					require.Equal(t, aborted, p.Aborted, "list %d", e.id)
				}
			}
			require.Zero(t, r.m.Running())
			settleGoroutines(t, base)
		})
	}
}

func TestAbortRunningList(t *testing.T) {
	r := newManagerRig(t, Config{})
	ctx, l := r.begin(r.nexus, 0, 3, UsageHold)
	require.False(t, r.m.Abort(r.other, r.disks[0].lu, 3), "another nexus's list")
	require.False(t, r.m.Abort(r.nexus, r.disks[1].lu, 3), "another logical unit's list")
	requireCancelled(t, ctx, false)
	require.True(t, r.m.Abort(r.nexus, r.disks[0].lu, 3))
	requireCancelled(t, ctx, true)
	p, _ := r.status(r.nexus, 0, 3)
	require.True(t, p.Aborted)
	require.False(t, p.Done)
	r.m.Finish(l, scsi.StatusTaskAborted, nil)
	p, _ = r.status(r.nexus, 0, 3)
	require.True(t, p.Aborted)
	require.True(t, p.Done)
}

// TestAbortCompletedListIsUnknown: COPY OPERATION ABORT names a copy
// being processed (SPC-4 6.3); a completed list is not one, and aborting
// it must neither succeed nor turn its reported outcome into "aborted".
func TestAbortCompletedListIsUnknown(t *testing.T) {
	r := newManagerRig(t, Config{})
	_, l := r.begin(r.nexus, 0, 3, UsageHold)
	r.m.Finish(l, scsi.StatusGood, nil)
	require.False(t, r.m.Abort(r.nexus, r.disks[0].lu, 3))
	p, ok := r.status(r.nexus, 0, 3)
	require.True(t, ok)
	require.True(t, p.Done)
	require.False(t, p.Aborted, "a list that completed GOOD was not aborted")
	require.Equal(t, scsi.StatusGood, p.Status)
}

// TestAbortLosingRaceReportsCompletion: an abort that arrives as the last
// segment completes leaves a list that ended GOOD; it reports completion,
// not termination.
func TestAbortLosingRaceReportsCompletion(t *testing.T) {
	r := newManagerRig(t, Config{})
	_, l := r.begin(r.nexus, 0, 3, UsageHold)
	require.True(t, r.m.Abort(r.nexus, r.disks[0].lu, 3))
	r.m.Finish(l, scsi.StatusGood, nil)
	p, _ := r.status(r.nexus, 0, 3)
	require.True(t, p.Done)
	require.False(t, p.Aborted)
}

// TestFinishOfDroppedListKeepsSuccessor: a reset forgets a running list
// at once, but its copy only ends later; meanwhile the initiator may
// reuse the list identifier. The old list's Finish must not remove the
// new one.
func TestFinishOfDroppedListKeepsSuccessor(t *testing.T) {
	for _, usage := range []ListIDUsage{UsageHold, UsageDiscard} {
		r := newManagerRig(t, Config{})
		ctx, old := r.beginAs(r.nexus, 0, 8, usage, true)
		r.disks[0].lu.Reset(scsi.ASCBusDeviceResetFunctionOccurred)
		requireCancelled(t, ctx, true)
		ctx2, l := r.begin(r.nexus, 0, 8, usage)
		r.m.Finish(old, scsi.StatusTaskAborted, nil)
		p, ok := r.status(r.nexus, 0, 8)
		require.True(t, ok, "usage %d: the new list is still known", usage)
		require.False(t, p.Done)
		require.False(t, p.Aborted)
		requireCancelled(t, ctx2, false)
		_, _, s := r.m.Begin(context.Background(), r.nexus, r.disks[0].lu, 8, usage, 0, false)
		requireSense(t, s, scsi.IllegalRequest, scsi.ASCOperationInProgress, noSKS)
		require.True(t, r.m.Abort(r.nexus, r.disks[0].lu, 8))
		r.m.Finish(l, scsi.StatusTaskAborted, nil)
		require.Zero(t, r.m.Running())
	}
}

// A list still running logs how far it got every progress interval, and
// stops once it ends.
func TestLongCopyLogsProgress(t *testing.T) {
	var logs logBuffer
	m := NewManager(Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), ProgressInterval: 5 * time.Millisecond})
	l := &List{key: listKey{id: 7}, ServiceAction: 0x11}
	l.segments.Store(2)
	l.bytes.Store(1 << 20)
	lines := func() int {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		return strings.Count(logs.buf.String(), `"msg":"copy in progress","list_id":7,"service_action":17,"segments":2,"bytes":1048576`)
	}
	stop := m.logProgress(l)
	require.Eventually(t, func() bool { return lines() >= 2 }, 5*time.Second, time.Millisecond)
	stop()
	n := lines()
	time.Sleep(30 * time.Millisecond)
	require.Equal(t, n, lines(), "no progress line after the list ended")
}
