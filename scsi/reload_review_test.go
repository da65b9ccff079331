package scsi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// TestReviewEndReachesUnmappedLU: a task a nexus started on a logical
// unit a reload then took out of its LUN map is still that nexus's task.
// The abort of all its tasks (logout, the end of the connection) and the
// end of the nexus must reach it; otherwise they wait for it to end on its
// own, which for a copy may take minutes, and the nexus's copy lists
// there are never forgotten.
func TestReviewEndReachesUnmappedLU(t *testing.T) {
	for _, how := range []string{"AbortTasks", "End"} {
		tb := newTestBench(t)
		tb.clearUA(t, tb.nexus)
		tb.hold(1)
		c, done := tb.submit(tb.nexus, TaskSimple, 7, 1)
		tb.waitStarted(t, 1)
		require.True(t, tb.nexus.SetLUs(map[uint64]*LU{}))
		if how == "AbortTasks" {
			tb.nexus.AbortTasks()
		} else {
			tb.nexus.End()
		}
		select {
		case <-done:
		default:
			require.FailNow(t, how+" returned while the nexus's task on the unmapped logical unit still runs")
		}
		assert.True(t, c.Aborted, how)
	}
}

// TestReviewSetLUsRacingEndLeavesNoState: a reload that maps a new logical
// unit to a nexus while the nexus ends leaves no unit attention or other
// state for it there (review: the REPORTED LUNS DATA HAS CHANGED queued
// for a nexus whose End had already run through the old view stayed for
// ever).
func TestReviewSetLUsRacingEndLeavesNoState(t *testing.T) {
	tb := newTestBench(t)
	extra := NewLU(LUConfig{Identity: Identity{Name: "extra"}, Store: backstore.NewMemory(1<<20, 512), Table: tb.lu.Table})
	n := NewNexus(Nexus{InitiatorPort: "i9,i,0x1", TargetPort: "t,t,0x1"}, map[uint64]*LU{0: tb.lu}, nil)
	testHookSetLUs = func(n *Nexus) { n.End() } // the session ends just then
	t.Cleanup(func() { testHookSetLUs = nil })
	n.SetLUs(map[uint64]*LU{0: tb.lu, 1: extra})
	for _, lu := range []*LU{tb.lu, extra} {
		lu.mu.Lock()
		_, ua := lu.ua[n.Key()]
		seen := lu.seen[n.Key()]
		lu.mu.Unlock()
		assert.False(t, ua || seen, "state left on %s for an ended nexus", lu.Identity.Name)
	}
}
