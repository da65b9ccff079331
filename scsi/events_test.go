package scsi

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

	require.NoError(t, tb.lu.RunInternal(ctx, tb.nexus, Access{LBA: 0, Blocks: 2048, Write: true}, fn))
	assert.Equal(t, 1, ran)
	s := &Sense{}
	require.ErrorAs(t, tb.lu.RunInternal(ctx, tb.nexus, Access{LBA: 2047, Blocks: 2}, fn), &s)
	assert.Equal(t, ASCLBAOutOfRange, s.Code)
	require.ErrorAs(t, tb.nexus.absent.RunInternal(ctx, tb.nexus, Access{}, fn), &s)
	assert.Equal(t, ASCLUNotSupported, s.Code)

	tb.lu.UpdateMode(tb.nexus, func(m *ModeState) { m.SWP = true })
	require.ErrorAs(t, tb.lu.RunInternal(ctx, tb.nexus, Access{Blocks: 1, Write: true}, fn), &s)
	assert.Equal(t, ASCWriteProtected, s.Code)
	require.NoError(t, tb.lu.RunInternal(ctx, tb.nexus, Access{Blocks: 1}, fn), "reads are not write protected")
	assert.Equal(t, 2, ran)
	tb.lu.UpdateMode(tb.nexus, func(m *ModeState) { m.SWP = false })

	// An internal task waits for an older ORDERED task and is aborted by
	// ABORT TASK SET from its nexus while it waits.
	tb.clearUA(t, tb.nexus)
	release := tb.hold(1)
	_, d := tb.submit(tb.nexus, TaskOrdered, 1, 1)
	tb.waitStarted(t, 1)
	errc := make(chan error, 1)
	go func() { errc <- tb.lu.RunInternal(ctx, tb.nexus, Access{Blocks: 1, Write: true}, fn) }()
	require.Eventually(t, func() bool { return taskCount(tb.lu) == 2 }, waitFor, tick)
	go tb.lu.AbortTaskSet(tb.nexus)
	require.ErrorAs(t, <-errc, &s)
	assert.Equal(t, AbortedCommand, s.Key)
	close(release)
	<-d
	assert.Equal(t, 2, ran, "the aborted internal task never ran")

	// ABORT TASK by tag never reaches an internal task, and the end of
	// the parent context ends it.
	unlock, err := tb.lu.LockExtent(ctx, 0, 1, ExtentExclusive)
	require.NoError(t, err)
	parent, cancel := context.WithCancel(ctx)
	go func() { errc <- tb.lu.RunInternal(parent, tb.nexus, Access{Blocks: 1, Write: true}, fn) }()
	require.Eventually(t, func() bool { return taskCount(tb.lu) == 1 }, waitFor, tick)
	assert.False(t, tb.lu.AbortTask(tb.nexus, 0))
	cancel()
	require.ErrorAs(t, <-errc, &s)
	assert.Equal(t, AbortedCommand, s.Key)
	unlock()
	assert.Equal(t, 2, ran)
}

func taskCount(lu *LU) int {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	return len(lu.tasks)
}
