package scsi

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// eventLog records NexusEvents calls as strings.
type eventLog struct {
	mu  sync.Mutex
	got []string
}

func (e *eventLog) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, fmt.Sprintf(format, args...))
}

func (e *eventLog) NexusLost(lu *LU, n *Nexus) { e.add("lost %s %s", lu.Identity.Name, n.Key()) }
func (e *eventLog) TaskSetAborted(lu *LU, n *Nexus) {
	key := "all"
	if n != nil {
		key = n.Key()
	}
	e.add("aborted %s %s", lu.Identity.Name, key)
}
func (e *eventLog) Reset(lu *LU) { e.add("reset %s", lu.Identity.Name) }

func (e *eventLog) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	got := e.got
	e.got = nil
	return got
}

func TestNexusEnd(t *testing.T) {
	tb := newTestBench(t)
	events := &eventLog{}
	tb.lu.events = events
	tb.clearUA(t, tb.nexus)
	tb.clearUA(t, tb.other)
	tb.lu.EstablishUA(ASCModeParametersChanged, tb.nexus.Key())

	// A running task of the nexus is aborted; the other nexus's is not.
	tb.hold(1)
	c1, d1 := tb.submit(tb.nexus, TaskSimple, 1, 1)
	tb.waitStarted(t, 1)
	tb.nexus.End()
	<-d1
	assert.True(t, c1.Aborted)
	assert.Equal(t, []string{"lost t " + tb.nexus.Key()}, events.take(), "the absent LU reports no events")

	// Its state is gone: no pending unit attention, no longer seen.
	tb.lu.mu.Lock()
	_, seen := tb.lu.seen[tb.nexus.Key()]
	pending := len(tb.lu.ua[tb.nexus.Key()])
	tb.lu.mu.Unlock()
	assert.False(t, seen)
	assert.Zero(t, pending)

	// The same initiator port logging in again (a new Nexus value, same
	// key) hears I_T NEXUS LOSS OCCURRED once, then runs.
	again := NewNexus(Nexus{InitiatorPort: "i1,i,0x1", TargetPort: "t,t,0x1"}, map[uint64]*LU{0: tb.lu}, tb.nexus.absent)
	assert.Equal(t, ASCITNexusLossOccurred, senseOf(t, tb.do(again, 0, 0, 0, 0, 0, 0, 0)).Code)
	assert.Equal(t, StatusGood, tb.do(again, 0, 0, 0, 0, 0, 0, 0).Status)
	// The other nexus is untouched.
	assert.Equal(t, ASCModeParametersChanged, senseOf(t, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0)).Code)

	// TMF events.
	tb.lu.AbortTaskSet(tb.other)
	tb.lu.ClearTaskSet(tb.other)
	tb.lu.Reset(ASCBusDeviceResetFunctionOccurred)
	assert.Equal(t, []string{"aborted t " + tb.other.Key(), "aborted t all", "reset t"}, events.take())
}

func TestNexusEndNeverSeen(t *testing.T) {
	tb := newTestBench(t)
	// A nexus that never sent a command leaves nothing behind and gets
	// POWER ON when its port returns.
	tb.nexus.End()
	assert.Equal(t, ASCPowerOnResetOrBusDeviceReset, senseOf(t, tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0)).Code)
}

// TestLostNexusesBounded ends many nexuses that never return: the logical
// unit keeps at most maxLostNexuses of them.
func TestLostNexusesBounded(t *testing.T) {
	tb := newTestBench(t)
	for i := range 10 * maxLostNexuses {
		n := NewNexus(Nexus{InitiatorPort: fmt.Sprintf("i,i,0x%d", i), TargetPort: "t,t,0x1"}, map[uint64]*LU{0: tb.lu}, tb.nexus.absent)
		tb.do(n, 0, 0, 0, 0, 0, 0, 0)
		n.End()
	}
	tb.lu.mu.Lock()
	defer tb.lu.mu.Unlock()
	assert.Len(t, tb.lu.lost, maxLostNexuses)
	assert.Len(t, tb.lu.lostOrder, maxLostNexuses)
	assert.Empty(t, tb.lu.seen)
	assert.Empty(t, tb.lu.ua)
}

func TestRunInternal(t *testing.T) {
	tb := newTestBench(t)
	ctx := context.Background()
	ran := 0
	fn := func(context.Context) error { ran++; return nil }

	require.NoError(t, RunInternal(ctx, tb.nexus, []Access{{LU: tb.lu, LBA: 0, Blocks: 2048, Write: true}}, fn))
	assert.Equal(t, 1, ran)
	s := &Sense{}
	require.ErrorAs(t, RunInternal(ctx, tb.nexus, []Access{{LU: tb.lu, LBA: 2047, Blocks: 2}}, fn), &s)
	assert.Equal(t, ASCLBAOutOfRange, s.Code)
	require.ErrorAs(t, RunInternal(ctx, tb.nexus, []Access{{LU: tb.nexus.absent}}, fn), &s)
	assert.Equal(t, ASCLUNotSupported, s.Code)

	tb.lu.UpdateMode(tb.nexus, func(m *ModeState) { m.SWP = true })
	require.ErrorAs(t, RunInternal(ctx, tb.nexus, []Access{{LU: tb.lu, Blocks: 1, Write: true}}, fn), &s)
	assert.Equal(t, ASCWriteProtected, s.Code)
	require.NoError(t, RunInternal(ctx, tb.nexus, []Access{{LU: tb.lu, Blocks: 1}}, fn), "reads are not write protected")
	assert.Equal(t, 2, ran)
	tb.lu.UpdateMode(tb.nexus, func(m *ModeState) { m.SWP = false })

	// An internal task waits for no older task, not even an ORDERED one
	// (it belongs to a command of its own); a later ORDERED task waits
	// for it. ABORT TASK SET from its nexus aborts it while it waits for
	// its blocks.
	tb.clearUA(t, tb.nexus)
	release := tb.hold(1)
	_, d := tb.submit(tb.nexus, TaskOrdered, 1, 1)
	tb.waitStarted(t, 1)
	require.NoError(t, RunInternal(ctx, tb.nexus, []Access{{LU: tb.lu, Blocks: 1, Write: true}}, fn))
	assert.Equal(t, 3, ran, "it ran while the ORDERED task was running")
	close(release)
	<-d
	held, err := tb.lu.LockExtent(ctx, 0, 1, ExtentExclusive)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { errc <- RunInternal(ctx, tb.nexus, []Access{{LU: tb.lu, Blocks: 1, Write: true}}, fn) }()
	require.Eventually(t, func() bool { return taskCount(tb.lu) == 1 }, waitFor, tick)
	later := tb.hold(2)
	_, d2 := tb.submit(tb.nexus, TaskOrdered, 2, 2)
	go tb.lu.AbortTaskSet(tb.nexus)
	require.ErrorAs(t, <-errc, &s)
	assert.Equal(t, AbortedCommand, s.Key)
	close(later)
	<-d2
	held()
	assert.Equal(t, 3, ran, "the aborted internal task never ran")

	// ABORT TASK by tag never reaches an internal task, and the end of
	// the parent context ends it.
	unlock, err := tb.lu.LockExtent(ctx, 0, 1, ExtentExclusive)
	require.NoError(t, err)
	parent, cancel := context.WithCancel(ctx)
	go func() { errc <- RunInternal(parent, tb.nexus, []Access{{LU: tb.lu, Blocks: 1, Write: true}}, fn) }()
	require.Eventually(t, func() bool { return taskCount(tb.lu) == 1 }, waitFor, tick)
	assert.False(t, tb.lu.AbortTask(tb.nexus, 0))
	cancel()
	require.ErrorAs(t, <-errc, &s)
	assert.Equal(t, AbortedCommand, s.Key)
	unlock()
	assert.Equal(t, 3, ran)
}

func taskCount(lu *LU) int {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	return len(lu.tasks)
}

// TestRunInternalTwoUnits holds a source and a destination together;
// overlapping ranges of one logical unit in one call do not wait for each
// other, and copies in opposite directions racing with host writes never
// deadlock.
func TestRunInternalTwoUnits(t *testing.T) {
	tb := newTestBench(t)
	other := NewLU(LUConfig{Identity: Identity{Name: "u"}, Store: backstore.NewMemory(1<<20, 512), Table: tb.lu.Table})
	ctx := context.Background()
	nop := func(context.Context) error { return nil }
	require.NoError(t, RunInternal(ctx, tb.nexus, []Access{{LU: tb.lu, LBA: 0, Blocks: 10}, {LU: tb.lu, LBA: 5, Blocks: 10, Write: true}}, nop))

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := tb.lu, other
			if i%2 == 1 {
				a, b = b, a
			}
			for range 200 {
				assert.NoError(t, RunInternal(ctx, tb.nexus, []Access{{LU: a, LBA: 0, Blocks: 64}, {LU: b, LBA: 0, Blocks: 64, Write: true}}, nop))
				unlock, err := b.LockExtent(ctx, 32, 8, ExtentExclusive)
				assert.NoError(t, err)
				unlock()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 0, queued(tb.lu))
	assert.Equal(t, 0, queued(other))
}

func TestFindByDesignator(t *testing.T) {
	mk := func(serial string) *LU {
		return NewLU(LUConfig{Identity: Identity{Name: serial, Vendor: "LIO-ORG", Product: "p", Serial: serial}, Store: backstore.NewMemory(1<<20, 512)})
	}
	a, b, noSerial := mk("aaaa1111"), mk("bbbb2222"), mk("")
	lus := []*LU{a, b, a, noSerial}
	naa := a.Designators(nil)[0]
	got, err := FindByDesignator(naa, lus)
	require.NoError(t, err)
	assert.Same(t, a, got, "the same LU under two LUNs is one match")

	t10 := b.Designators(nil)[1]
	got, err = FindByDesignator(t10, lus)
	require.NoError(t, err)
	assert.Same(t, b, got)

	// Every LU reports the same logical unit group designator.
	group := a.Designators(nil)[2]
	require.Equal(t, DesignatorLUGroup, group.Type)
	_, err = FindByDesignator(group, lus)
	assert.ErrorIs(t, err, ErrAmbiguousMatch)

	other := naa
	other.Value = append([]byte(nil), naa.Value...)
	other.Value[15] ^= 1
	_, err = FindByDesignator(other, lus)
	assert.ErrorIs(t, err, ErrNoDesignatorMatch)
	port := naa
	port.Association = AssocTargetPort
	_, err = FindByDesignator(port, lus)
	assert.ErrorIs(t, err, ErrNoDesignatorMatch)
	ascii := naa
	ascii.CodeSet = CodeSetASCII
	_, err = FindByDesignator(ascii, lus)
	assert.ErrorIs(t, err, ErrNoDesignatorMatch)
}

func TestRunInternalAfterNexusEnd(t *testing.T) {
	tb := newTestBench(t)
	tb.nexus.End()
	ran := false
	err := RunInternal(context.Background(), tb.nexus, []Access{{LU: tb.lu, Blocks: 1, Write: true}}, func(context.Context) error { ran = true; return nil })
	s := &Sense{}
	require.ErrorAs(t, err, &s)
	assert.Equal(t, AbortedCommand, s.Key)
	assert.False(t, ran, "no internal task runs for an ended nexus")
}
