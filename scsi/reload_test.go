package scsi

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// A nexus whose LUN inventory changes gets REPORTED LUNS DATA HAS CHANGED
// on the logical units it still sees; the new LUN answers, the removed one
// is LOGICAL UNIT NOT SUPPORTED, and the other nexus hears nothing.
func TestSetLUs(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	tb.clearUA(t, tb.other)
	second := NewLU(LUConfig{Identity: Identity{Name: "second"}, Store: backstore.NewMemory(1<<20, 512), Table: tb.lu.Table})

	assert.False(t, tb.nexus.SetLUs(map[uint64]*LU{0: tb.lu}), "the same map is no change")
	require.True(t, tb.nexus.SetLUs(map[uint64]*LU{0: tb.lu, 1: second}))
	assert.Equal(t, []uint64{0, 1}, tb.nexus.LUNs())
	assert.Equal(t, []*LU{tb.lu, second}, tb.nexus.LogicalUnits())
	s := senseOf(t, tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0))
	assert.Equal(t, UnitAttention, s.Key)
	assert.Equal(t, ASCReportedLUNsDataChanged, s.Code)
	assert.Equal(t, StatusGood, tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0).Status)
	assert.Equal(t, StatusGood, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0).Status, "the other nexus's inventory did not change")

	require.True(t, tb.nexus.SetLUs(map[uint64]*LU{1: second}))
	assert.Equal(t, ASCLUNotSupported, senseOf(t, tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0)).Code)
	assert.Equal(t, ASCReportedLUNsDataChanged, senseOf(t, tb.do(tb.nexus, 1, 0, 0, 0, 0, 0, 0)).Code)
	assert.Equal(t, ASCPowerOnResetOrBusDeviceReset, senseOf(t, tb.do(tb.nexus, 1, 0, 0, 0, 0, 0, 0)).Code,
		"the first contact with the new logical unit")
	tb.lu.mu.Lock()
	assert.False(t, tb.lu.seen[tb.nexus.Key()], "the logical unit the nexus no longer sees forgot it")
	tb.lu.mu.Unlock()
}

// Retire waits for the running tasks, which complete normally, and
// refuses later ones without running them.
func TestRetire(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	release := tb.hold(7)
	c, done := tb.submit(tb.nexus, TaskSimple, 1, 7)
	tb.waitStarted(t, 1)
	retired := make(chan struct{})
	go func() {
		tb.lu.Retire()
		close(retired)
	}()
	select {
	case <-retired:
		t.Fatal("Retire returned while a task was running")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-done
	<-retired
	assert.Equal(t, StatusGood, c.Status)
	assert.False(t, c.Aborted)
	assert.Equal(t, ASCLUNotSupported, senseOf(t, tb.do(tb.nexus, 0, 0xC3, 0, 0, 0, 0, 0)).Code)
	ran := false
	err := RunInternal(t.Context(), tb.nexus, []Access{{LU: tb.lu, LBA: 0, Blocks: 1, Write: true}}, func(context.Context) error {
		ran = true
		return nil
	})
	var s *Sense
	require.ErrorAs(t, err, &s)
	assert.Equal(t, ASCLUNotSupported, s.Code)
	assert.False(t, ran, "an internal task on a retired logical unit does not run")
}
