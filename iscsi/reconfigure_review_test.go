package iscsi

import (
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestReviewAbortTaskAfterLUNRemoved: ABORT TASK for a command running on
// a LUN a reload has since removed from the session's map aborts it on
// the logical unit it runs on. Before, the abort went to whatever the
// LUN maps now (nothing) and the response waited for the command to end
// on its own.
// ABORT TASK SET and LOGICAL UNIT RESET on a LUN that now maps another
// logical unit, and TARGET WARM RESET, abort the session's commands still
// running on the one it mapped before, as well.
func TestReviewAbortTaskAfterLUNRemoved(t *testing.T) {
	for _, fn := range []byte{tmfAbortTask, tmfAbortTaskSet, tmfLUReset, tmfTargetWarmReset} {
		synctest.Test(t, func(t *testing.T) {
			tt := newTester(t)
			tt.loginDefault()
			slow := tt.command(slowCDB, cmdOpts{})
			synctest.Wait()
			luns := map[uint64]*scsi.LU{}
			if fn != tmfAbortTask {
				luns[0] = scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "lu1"}, Store: backstore.NewMemory(testLUSize, testBlock),
					Table: tt.lu.Table, Logger: testLogger(t)})
			}
			assert.NoError(t, tt.srv.Reconfigure([]*Target{{Name: testTarget, TPGs: []*TPG{{
				Tag: 1, RelativePortID: 1, Portals: []string{"127.0.0.1:0"}, LUNs: luns,
			}}}}))
			itt := tt.tmf(fn, 0, slow, tt.cmdSN-1)
			assert.Equal(t, byte(tmfRespComplete), tt.wantTMF(itt), "function %d", fn)
		})
	}
}

// TestReviewClosedSessionSeesNoLUOnReturn: a session the reloaded ACL no
// longer admits sees no logical unit once Reconfigure returns. Closing
// its connection is asynchronous: until the control loop acts on it, the
// reader goes on submitting the commands that arrive, and with the old
// LUN map they would still write the medium after the reload said it
// was done.
func TestReviewClosedSessionSeesNoLUOnReturn(t *testing.T) {
	tt := newTester(t)
	tt.loginDefault()
	sess := tt.srv.sessionByTSIH(tt.tsih)
	assert.NotNil(t, sess)
	assert.NoError(t, tt.srv.Reconfigure([]*Target{{Name: testTarget, TPGs: []*TPG{{
		Tag: 1, RelativePortID: 1, Portals: []string{"127.0.0.1:0"}, LUNs: map[uint64]*scsi.LU{0: tt.lu},
		ACLs: []ACL{{Initiator: "iqn.2024-01.org.odxtgt:someone-else"}},
	}}}}))
	assert.Empty(t, sess.nexus.LUNs(), "the closed session still sees its logical units")
	assert.False(t, sess.nexus.LU(0).Present())
}

// TestReviewReloadRacingLogins: reloads that change the LUN map while
// sessions log in. A session is registered before its logger is set; a
// reload that reconciled it in between logged through a nil logger (a
// panic on the serve goroutine, which takes the process down) and raced
// the assignment.
func TestReviewReloadRacingLogins(t *testing.T) {
	tt := newTester(t)
	second := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "lu1"}, Store: backstore.NewMemory(testLUSize, testBlock),
		Table: tt.lu.Table, Logger: testLogger(t)})
	// Connecting reads the portal list a reload replaces: not at once.
	var connecting sync.Mutex
	stop := make(chan struct{})
	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			luns := map[uint64]*scsi.LU{0: tt.lu}
			if i%2 == 1 {
				luns[1] = second
			}
			connecting.Lock()
			assert.NoError(t, tt.srv.Reconfigure([]*Target{{Name: testTarget, TPGs: []*TPG{{
				Tag: 1, RelativePortID: 1, Portals: []string{"127.0.0.1:0"}, LUNs: luns,
			}}}}))
			connecting.Unlock()
		}
	}()
	for i := range 200 {
		connecting.Lock()
		o := tt.second(byte(i + 2))
		connecting.Unlock()
		o.loginStep(stageOperational, stageFullFeature, true, append(normalKeys(), opKeys()...))
		o.nc.Close()
	}
	close(stop)
	<-reloaded
}
