package iscsi

import (
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

var slowCDB = []byte{opSlow, 0, 0, 0, 0, 0}

// wantUA runs TEST UNIT READY and checks it reports the unit attention.
func (tt *tester) wantUA(code scsi.ASC) {
	tt.t.Helper()
	r := tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{}))
	require.Equal(tt.t, scsi.StatusCheckCondition, r.status)
	assert.Equal(tt.t, scsi.UnitAttention, r.sense.Key)
	assert.Equal(tt.t, code, r.sense.Code)
}

func TestAbortTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		slow := tt.command(slowCDB, cmdOpts{})
		other := tt.command(slowCDB, cmdOpts{})
		synctest.Wait()
		itt := tt.tmf(tmfAbortTask, 0, slow, tt.cmdSN-2)
		// The TMF response comes, and no SCSI Response for the aborted task.
		assert.Equal(t, byte(tmfRespComplete), tt.wantTMF(itt))
		tt.gate <- struct{}{}
		assert.Equal(t, scsi.StatusGood, tt.wantResult(other).status)
	})
}

func TestAbortTaskWaitingForData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault("InitialR2T", "Yes", "ImmediateData", "No")
		w := tt.command(write10(0, 1), cmdOpts{write: true, edtl: testBlock})
		ttt, _, _, _ := tt.wantR2T(w)
		itt := tt.tmf(tmfAbortTask, 0, w, tt.cmdSN-1)
		assert.Equal(t, byte(tmfRespComplete), tt.wantTMF(itt))
		// Late data for the aborted task is discarded.
		tt.dataOut(w, ttt, 0, 0, pattern(testBlock, 0), true)
		tt.wantIdle()
	})
}

func TestAbortTaskNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		// RefCmdSN already done: the task does not exist.
		itt := tt.tmf(tmfAbortTask, 0, 555, tt.cmdSN-1)
		assert.Equal(t, byte(tmfRespNoTask), tt.wantTMF(itt))
		// RefCmdSN in the window and before the TMF's CmdSN: the command is
		// taken as received and will never run (RFC 7143 11.5.1).
		ref := tt.cmdSN
		tt.cmdSN++ // the TMF carries a CmdSN after the missing command
		itt = tt.tmf(tmfAbortTask, 0, 556, ref)
		assert.Equal(t, byte(tmfRespComplete), tt.wantTMF(itt))
		late := ref
		tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{cmdSN: &late})
		next := tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		r := tt.wantResult(next)
		assert.Equal(t, scsi.StatusGood, r.status)
	})
}

func TestTaskSetFunctions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		function byte
		ua       scsi.ASC // unit attention afterwards, 0 for none
	}{
		{"ABORT TASK SET", tmfAbortTaskSet, 0},
		{"CLEAR TASK SET", tmfClearTaskSet, 0},
		{"LOGICAL UNIT RESET", tmfLUReset, scsi.ASCBusDeviceResetFunctionOccurred},
		{"TARGET WARM RESET", tmfTargetWarmReset, scsi.ASCPowerOnResetOrBusDeviceReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t)
				tt.loginDefault("InitialR2T", "Yes", "ImmediateData", "No")
				tt.command(slowCDB, cmdOpts{})
				tt.command(slowCDB, cmdOpts{})
				w := tt.command(write10(0, 1), cmdOpts{write: true, edtl: testBlock})
				tt.wantR2T(w)
				synctest.Wait()
				itt := tt.tmf(tc.function, 0, 0, 0)
				assert.Equal(t, byte(tmfRespComplete), tt.wantTMF(itt))
				if tc.ua != 0 {
					tt.wantUA(tc.ua)
				}
				r := tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{}))
				assert.Equal(t, scsi.StatusGood, r.status)
			})
		})
	}
}

func TestClearTaskSetAffectsOtherSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newTester(t)
		a.loginDefault()
		b := a.second(2)
		b.loginDefault()
		b.command(slowCDB, cmdOpts{})
		synctest.Wait()
		itt := a.tmf(tmfClearTaskSet, 0, 0, 0)
		assert.Equal(t, byte(tmfRespComplete), a.wantTMF(itt))
		b.wantUA(scsi.ASCCommandsClearedByAnotherInit)
	})
}

func TestTargetColdReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newTester(t)
		a.loginDefault()
		b := a.second(2)
		b.loginDefault()
		itt := a.tmf(tmfTargetColdReset, 0, 0, 0)
		assert.Equal(t, byte(tmfRespComplete), a.wantTMF(itt))
		a.wantClosed()
		b.wantClosed()
	})
}

func TestQueryAndUnsupportedFunctions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		slow := tt.command(slowCDB, cmdOpts{})
		assert.Equal(t, byte(tmfRespSucceeded), tt.wantTMF(tt.tmf(tmfQueryTask, 0, slow, 0)))
		assert.Equal(t, byte(tmfRespComplete), tt.wantTMF(tt.tmf(tmfQueryTask, 0, slow+100, 0)))
		assert.Equal(t, byte(tmfRespSucceeded), tt.wantTMF(tt.tmf(tmfQueryTaskSet, 0, 0, 0)))
		assert.Equal(t, byte(tmfRespComplete), tt.wantTMF(tt.tmf(tmfQueryTaskSet, 3, 0, 0)))
		assert.Equal(t, byte(tmfRespReassignNotSupported), tt.wantTMF(tt.tmf(tmfTaskReassign, 0, slow, 0)))
		for _, fn := range []byte{tmfClearACA, tmfITNexusReset, tmfQueryAsyncEvent, 13, 0x7F} {
			assert.Equal(t, byte(tmfRespNotSupported), tt.wantTMF(tt.tmf(fn, 0, 0, 0)), "function %d", fn)
		}
		assert.Equal(t, byte(tmfRespNoLUN), tt.wantTMF(tt.tmf(tmfLUReset, 9, 0, 0)))
		tt.gate <- struct{}{}
		assert.Equal(t, scsi.StatusGood, tt.wantResult(slow).status)
	})
}

func TestLogout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		p := tt.want2(tt.logout(logoutRecovery, 0), OpLogoutResp)
		assert.Equal(t, byte(logoutRecoveryNotSupported), p.BHS[2])
		p = tt.want2(tt.logout(logoutCloseConnection, 9), OpLogoutResp)
		assert.Equal(t, byte(logoutCIDNotFound), p.BHS[2])
		tt.command(slowCDB, cmdOpts{})
		synctest.Wait()
		p = tt.want2(tt.logout(logoutCloseConnection, 0), OpLogoutResp)
		assert.Equal(t, byte(logoutSuccess), p.BHS[2])
		tt.wantClosed()
	})
}

// want2 reads the next PDU, checking its ITT and opcode.
func (tt *tester) want2(itt uint32, op Opcode) *PDU {
	tt.t.Helper()
	p := tt.want(op)
	require.Equal(tt.t, itt, p.ITT())
	return p
}

// ABORT TASK for a command that has just finished races with its
// completion. Whichever wins, the two answers agree: a GOOD status and
// Task Does Not Exist, or Function Complete and no status (libiscsi's
// AbortTaskSimpleAsync). Each round leaves the race to the scheduler.
func TestAbortTaskRacingCompletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		for range 50 {
			data := pattern(8*testBlock, 2)
			w := tt.command(write10(0, 8), cmdOpts{write: true, edtl: uint32(len(data)), data: data})
			itt := tt.tmf(tmfAbortTask, 0, w, tt.cmdSN-1)
			p := tt.recv()
			switch p.Opcode() {
			case OpSCSIResponse:
				require.Equal(t, w, p.ITT())
				assert.Equal(t, byte(scsi.StatusGood), p.BHS[3])
				assert.Equal(t, byte(tmfRespNoTask), tt.wantTMF(itt), "a task whose status went out does not exist")
			case OpTaskMgmtResp:
				require.Equal(t, itt, p.ITT())
				assert.Equal(t, byte(tmfRespComplete), p.BHS[2])
			default:
				t.Fatalf("unexpected %s", p.Opcode())
			}
		}
		// Nothing else follows: no status for an aborted write.
		assert.Equal(t, scsi.StatusGood, tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})).status)
	})
}

// resetRecorder counts the logical unit resets it hears of.
type resetRecorder struct{ resets atomic.Int32 }

func (r *resetRecorder) NexusLost(*scsi.LU, *scsi.Nexus)      {}
func (r *resetRecorder) TaskSetAborted(*scsi.LU, *scsi.Nexus) {}
func (r *resetRecorder) Reset(*scsi.LU)                       { r.resets.Add(1) }

// TestTargetResetStaysInsideTheACL: a TARGET WARM RESET from an initiator
// whose ACL maps only some of the target's logical units resets those,
// not the ones it cannot address (review: it reset every LU of the
// target).
func TestTargetResetStaysInsideTheACL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen, hidden resetRecorder
		tt := newTester(t, func(c *Config) {
			g := c.Targets[0].TPGs[0]
			table, err := scsi.NewTable()
			require.NoError(t, err)
			lu := func(name string, events scsi.NexusEvents) *scsi.LU {
				return scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: name}, Store: backstore.NewMemory(testLUSize, testBlock),
					Table: table, Logger: c.Logger, Events: events})
			}
			g.LUNs[1], g.LUNs[2] = lu("seen", &seen), lu("hidden", &hidden)
			g.ACLs = []ACL{{Initiator: testInitiator, LUNs: map[uint64]*scsi.LU{1: g.LUNs[1]}}}
		})
		tt.loginDefault()
		assert.Equal(t, byte(tmfRespComplete), tt.wantTMF(tt.tmf(tmfTargetWarmReset, 0, 0, 0)))
		assert.Equal(t, int32(1), seen.resets.Load(), "the LU in the ACL is reset")
		assert.Zero(t, hidden.resets.Load(), "the LU outside it is not")
	})
}
