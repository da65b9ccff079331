package rod

import (
	"context"
	"runtime"
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
