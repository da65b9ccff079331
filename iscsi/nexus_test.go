package iscsi

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// nexusEvents counts the I_T nexus losses a logical unit reports.
type nexusEvents struct {
	mu   sync.Mutex
	lost map[string]int // by nexus key
}

func (e *nexusEvents) NexusLost(_ *scsi.LU, n *scsi.Nexus) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lost[n.Key()]++
}

func (e *nexusEvents) TaskSetAborted(*scsi.LU, *scsi.Nexus) {}
func (e *nexusEvents) Reset(*scsi.LU)                       {}

func (e *nexusEvents) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, v := range e.lost {
		n += v
	}
	return n
}

// TestNexusEndsOnceOnEveryPath: however a session ends, its I_T nexus
// ends exactly once.
func TestNexusEndsOnceOnEveryPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(tt *tester)
	}{
		{"logout", func(tt *tester) {
			tt.logout(logoutCloseSession, 0)
			tt.want(OpLogoutResp)
			tt.wantClosed()
		}},
		{"connection lost", func(tt *tester) { tt.nc.Close() }},
		{"reinstatement", func(tt *tester) {
			again := tt.second(tt.isid[5])
			again.login(opKeys())
			tt.wantClosed()
		}},
		{"NOP timeout", func(tt *tester) { time.Sleep(16 * time.Second) }},
		{"panic", func(tt *tester) {
			tt.srv.hook = func(_ *conn, at hookPoint) {
				if at == hookReader {
					panic("injected panic")
				}
			}
			tt.command(tur, cmdOpts{})
			tt.wantClosed()
		}},
		{"shutdown", func(tt *tester) {
			assert.NoError(t, tt.srv.Shutdown(context.Background()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ev := &nexusEvents{lost: map[string]int{}}
				tt := newTester(t, func(c *Config) {
					c.NOPInInterval, c.NOPInTimeout = 5*time.Second, 5*time.Second
					c.Targets[0].TPGs[0].LUNs[0] = scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "events"},
						Store: backstore.NewMemory(testLUSize, testBlock), Table: testTable(nil), Logger: c.Logger, Events: ev})
				})
				tt.loginDefault()
				tc.end(tt)
				synctest.Wait()
				assert.Equal(t, 1, ev.count())
			})
		})
	}
}

// TestNexusEndsWhenLoginFailsLate: a login that fails after its session
// was created (here its final response would exceed the login
// MaxRecvDataSegmentLength) ends that session's nexus too.
func TestNexusEndsWhenLoginFailsLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ev := &nexusEvents{lost: map[string]int{}}
		tt := newTester(t, func(c *Config) {
			c.Targets[0].TPGs[0].LUNs[0] = scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "events"},
				Store: backstore.NewMemory(testLUSize, testBlock), Table: testTable(nil), Logger: c.Logger, Events: ev})
		})
		keys := append(normalKeys(), opKeys()...)
		for i := range 400 {
			keys.Add(fmt.Sprintf("X-k%d", i), "1")
		}
		p, _ := tt.loginStep(stageOperational, stageFullFeature, true, keys)
		assert.Equal(t, LoginInitiatorError, loginStatus(p))
		tt.wantClosed()
		synctest.Wait()
		assert.Equal(t, 1, ev.count())
		assert.Zero(t, tt.connCount())
		tt.srv.mu.Lock()
		assert.Empty(t, tt.srv.byTSIH, "the session is forgotten")
		tt.srv.mu.Unlock()
	})
}
