package iscsi

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatsSessionsAndLogins checks what Stats reports around a refused
// login, a logged-in session and its end.
func TestStatsSessionsAndLogins(t *testing.T) {
	tt := newTester(t)
	st := tt.srv.Stats()
	assert.Equal(t, 1, st.LoggingIn, "the tester's connection, not logged in yet")
	assert.Empty(t, st.Sessions)

	bad := tt.second(2)
	p, _ := bad.loginStep(stageOperational, stageFullFeature, true,
		kv("InitiatorName", testInitiator, "TargetName", "iqn.2024-01.org.odxtgt:none"))
	require.Equal(t, LoginNotFound, loginStatus(p))
	bad.wantClosed()
	require.Eventually(t, func() bool { return tt.srv.Stats().LoginsRefused[LoginNotFound] == 1 },
		10*time.Second, time.Millisecond)

	tt.loginDefault()
	st = tt.srv.Stats()
	assert.Equal(t, []SessionInfo{{Target: testTarget, Initiator: testInitiator}}, st.Sessions)
	assert.Equal(t, 1, st.FullFeature)
	assert.Equal(t, map[LoginStatus]uint64{LoginNotFound: 1}, st.LoginsRefused)
	assert.Positive(t, st.DataOutLimit)
	assert.Zero(t, st.DataOutUsed)

	tt.nc.Close()
	require.Eventually(t, func() bool { s := tt.srv.Stats(); return len(s.Sessions) == 0 && s.FullFeature == 0 },
		10*time.Second, time.Millisecond, "the session ends with its connection")
}

func TestStatsNOPTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t, withNOP)
		tt.loginDefault()
		tt.want(OpNOPIn) // left unanswered
		tt.wantClosed()
		synctest.Wait()
		assert.Equal(t, uint64(1), tt.srv.Stats().NOPTimeouts)
	})
}

func TestStatsLoginTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t, func(c *Config) { c.LoginTimeout = 5 * time.Second })
		tt.wantClosed() // says nothing: the login times out
		synctest.Wait()
		st := tt.srv.Stats()
		assert.Equal(t, uint64(1), st.LoginTimeouts)
		assert.Empty(t, st.LoginsRefused)
	})
}

func TestStatsConnectionsRefused(t *testing.T) {
	tt := newTester(t, func(c *Config) { c.MaxConnections = 1 })
	tt.second(2).wantClosed()
	assert.Equal(t, uint64(1), tt.srv.Stats().ConnectionsRefused)
	assert.Equal(t, 1, tt.srv.Stats().LoggingIn, "the first connection stays")
}
