package iscsi

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestPanicDropsOnlyThatConnection injects a panic on each goroutine of a
// connection that has a command running and a write waiting for its data:
// that connection closes, its command is aborted, its data-out budget
// comes back and its I_T nexus ends, while another session goes on.
func TestPanicDropsOnlyThatConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		point   hookPoint
		trigger func(a *tester)
	}{
		{"reader", hookReader, func(a *tester) { a.command(tur, cmdOpts{}) }},
		{"writer", hookWriter, func(a *tester) { a.ping(true, nil) }},
		{"control loop", hookControl, func(*tester) { time.Sleep(5 * time.Second) }},
		{"task management", hookTMF, func(a *tester) { a.tmf(tmfAbortTaskSet, 0, 0, 0) }},
		{"command completion", hookCompletion, func(a *tester) { a.command(tur, cmdOpts{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a := newTester(t, func(c *Config) {
					c.NOPInInterval = 5 * time.Second
					c.NOPInTimeout = time.Hour
				})
				victim := a.isid
				var armed atomic.Bool
				a.srv.hook = func(c *conn, at hookPoint) {
					if at == tc.point && c.sess != nil && c.sess.isid == victim && armed.CompareAndSwap(true, false) {
						panic("injected panic")
					}
				}
				a.loginDefault()
				b := a.second(2)
				b.loginDefault()

				a.command(slowCDB, cmdOpts{})
				itt := a.command(write10(0, 4), cmdOpts{write: true, edtl: 4 * testBlock})
				a.wantR2T(itt)
				synctest.Wait()
				require.Equal(t, int64(4*testBlock), a.budgetUsed())

				armed.Store(true)
				tc.trigger(a)
				a.wantClosed()
				synctest.Wait()
				assert.False(t, armed.Load(), "the hook fired")
				assert.Zero(t, a.budgetUsed(), "the budget is back")
				assert.Equal(t, 1, a.connCount(), "the connection is torn down, its slow command aborted")

				if tc.point == hookControl {
					// The other connection's NOP timer fired too.
					b.answerNOPIn(b.want(OpNOPIn))
				}
				assert.Equal(t, scsi.StatusGood, b.wantResult(b.command(tur, cmdOpts{})).status, "the other session goes on")

				// The victim's I_T nexus ended: logging in again with its
				// ISID finds I_T NEXUS LOSS OCCURRED.
				a.connect()
				a.tsih = 0
				a.login(opKeys())
				r := a.wantResult(a.command(tur, cmdOpts{}))
				require.Equal(t, scsi.StatusCheckCondition, r.status)
				assert.Equal(t, scsi.ASCITNexusLossOccurred, r.sense.Code)
			})
		})
	}
}

var tur = []byte{0, 0, 0, 0, 0, 0}
