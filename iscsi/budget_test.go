package iscsi

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

const maxXfer = scsi.MaxTransferBytes

// announce sends a write of n bytes whose data is all solicited and
// returns its ITT.
func (tt *tester) announce(n uint32) uint32 {
	tt.t.Helper()
	return tt.command(write10(0, uint16(n/testBlock)), cmdOpts{write: true, edtl: n})
}

// TestDataOutBudgetSharedBySessions: with two sessions logged in, each may
// hold half of DataOutBudget; a write beyond its share ends with TASK SET
// FULL while the other session still gets its own.
func TestDataOutBudgetSharedBySessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newTester(t, func(c *Config) { c.DataOutBudget = 4 * maxXfer })
		a.loginDefault("InitialR2T", "Yes", "ImmediateData", "No", "MaxOutstandingR2T", "1")
		b := a.second(2)
		b.loginDefault("InitialR2T", "Yes", "ImmediateData", "No", "MaxOutstandingR2T", "1")
		for range 2 {
			a.wantR2T(a.announce(maxXfer))
		}
		itt := a.announce(maxXfer)
		assert.Equal(t, scsi.StatusTaskSetFull, a.wantResult(itt).status, "beyond the session's half")
		b.wantR2T(b.announce(maxXfer))
		assert.Equal(t, int64(3*maxXfer), a.budgetUsed())
	})
}

// TestDataOutBudgetPerInitiator: the sessions of one initiator name share
// InitiatorDataOutBudget.
func TestDataOutBudgetPerInitiator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newTester(t, func(c *Config) { c.InitiatorDataOutBudget = 2 * maxXfer })
		a.loginDefault("InitialR2T", "Yes", "ImmediateData", "No", "MaxOutstandingR2T", "1")
		b := a.second(2) // same initiator name, another ISID
		b.loginDefault("InitialR2T", "Yes", "ImmediateData", "No", "MaxOutstandingR2T", "1")
		a.wantR2T(a.announce(maxXfer))
		b.wantR2T(b.announce(maxXfer))
		assert.Equal(t, scsi.StatusTaskSetFull, b.wantResult(b.announce(testBlock)).status)
		assert.Equal(t, scsi.StatusTaskSetFull, a.wantResult(a.announce(testBlock)).status)
	})
}

// TestHeldCommandReservesOnlyUnsolicitedData: a write waiting for its
// CmdSN holds only the data it may send unsolicited; the rest is
// reserved, and solicited, when its turn comes.
func TestHeldCommandReservesOnlyUnsolicitedData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault("InitialR2T", "Yes", "FirstBurstLength", "4096")
		gap := tt.cmdSN
		sn := gap + 1
		tt.cmdSN += 2
		data := pattern(8*testBlock, 3)
		itt := tt.command(write10(0, 8), cmdOpts{write: true, edtl: 8 * testBlock, data: data[:2048], cmdSN: &sn})
		tt.wantIdle()
		assert.Equal(t, int64(2048), tt.budgetUsed(), "the immediate data only")

		// A ping fills the gap; its answer goes out before the R2T.
		p := floods[0].pdu(tt, int(tt.nextITT()))
		p.SetImmediate(false)
		p.Data = nil
		p.PutUint32(OffCmdSN, gap)
		tt.send(p)
		tt.want(OpNOPIn)
		ttt, _, off, n := tt.wantR2T(itt)
		require.Equal(t, []uint32{2048, 2048}, []uint32{off, n})
		assert.Equal(t, int64(len(data)), tt.budgetUsed())
		tt.dataOut(itt, ttt, 0, off, data[off:], true)
		assert.Equal(t, scsi.StatusGood, tt.wantResult(itt).status)
		got := make([]byte, len(data))
		require.NoError(t, tt.store.ReadAt(got, 0))
		assert.Equal(t, data, got)
		assert.Zero(t, tt.budgetUsed())
	})
}

// TestDataOutTimeout: a write whose announced data does not come ends,
// after DataOutTimeout without Data-Out, with CHECK CONDITION, ABORTED
// COMMAND, 0C0Dh, and gives its reservation back; solicited and
// unsolicited alike, while Data-Out that keeps coming keeps it alive.
func TestDataOutTimeout(t *testing.T) {
	for _, unsolicited := range []bool{false, true} {
		t.Run(map[bool]string{false: "solicited", true: "unsolicited"}[unsolicited], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t, func(c *Config) { c.DataOutTimeout = 10 * time.Second })
				tt.loginDefault("InitialR2T", map[bool]string{false: "Yes", true: "No"}[unsolicited], "ImmediateData", "No")
				itt := tt.command(write10(0, 8), cmdOpts{write: true, edtl: 8 * testBlock, notFinal: unsolicited})
				ttt := uint32(ReservedTag)
				if !unsolicited {
					ttt, _, _, _ = tt.wantR2T(itt)
				}
				// Data-Out every 9 s keeps the command alive.
				for i := range 4 {
					time.Sleep(9 * time.Second)
					tt.dataOut(itt, ttt, uint32(i), uint32(i*testBlock), pattern(testBlock, 1), false)
				}
				synctest.Wait()
				assert.Equal(t, int64(8*testBlock), tt.budgetUsed())
				start := time.Now()
				r := tt.wantResult(itt)
				assert.GreaterOrEqual(t, time.Since(start), 10*time.Second)
				require.Equal(t, scsi.StatusCheckCondition, r.status)
				require.NotNil(t, r.sense)
				assert.Equal(t, scsi.AbortedCommand, r.sense.Key)
				assert.Equal(t, ascNotEnoughUnsolicitedData, r.sense.Code)
				assert.Zero(t, tt.budgetUsed())
				// Late Data-Out for the ended command is discarded.
				tt.dataOut(itt, ttt, 4, 4*testBlock, pattern(testBlock, 1), true)
				assert.Equal(t, scsi.StatusGood, tt.wantResult(tt.command(tur, cmdOpts{})).status)
			})
		})
	}
}

// budgetUsed returns the data-out bytes reserved server-wide.
func (tt *tester) budgetUsed() int64 {
	b := tt.srv.dataOut
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
