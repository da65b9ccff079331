package scsi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
