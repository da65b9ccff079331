package iscsi

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

func TestConfigValidation(t *testing.T) {
	lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "x"}, Table: testTable(nil), Logger: testLogger(t)})
	absent := scsi.NewAbsentLU(testTable(nil), testLogger(t))
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no absent LU", Config{}, "Absent logical unit is required"},
		{"unnamed target", Config{Absent: absent, Targets: []*Target{{}}}, "has no name"},
		{"duplicate target", Config{Absent: absent, Targets: []*Target{{Name: "a"}, {Name: "a"}}}, "defined twice"},
		{"duplicate tag", Config{Absent: absent, Targets: []*Target{{Name: "a", TPGs: []*TPG{
			{Tag: 1, Portals: []string{":3260"}}, {Tag: 1, Portals: []string{":3261"}}}}}}, "tag used twice"},
		{"bad portal", Config{Absent: absent, Targets: []*Target{{Name: "a", TPGs: []*TPG{{Tag: 1, Portals: []string{"nohost"}}}}}}, "portal \"nohost\""},
		{"portal in two TPGs", Config{Absent: absent, Targets: []*Target{{Name: "a", TPGs: []*TPG{
			{Tag: 1, Portals: []string{":3260"}}, {Tag: 2, Portals: []string{":3260"}}}}}}, "already serves TPG 1"},
		{"LUN too large", Config{Absent: absent, Targets: []*Target{{Name: "a", TPGs: []*TPG{
			{Tag: 1, Portals: []string{":3260"}, LUNs: map[uint64]*scsi.LU{20000: lu}}}}}}, "LUN 20000 above"},
		{"CHAP without secret", Config{Absent: absent, Targets: []*Target{{Name: "a", TPGs: []*TPG{
			{Tag: 1, Portals: []string{":3260"}, Auth: &CHAP{User: "u"}}}}}}, "needs a user and a secret"},
		{"negative send queue limit", Config{Absent: absent, SendQueueLimit: -1}, "SendQueueLimit -1 and DataInLimit 0 may not be negative"},
		{"session budget below the largest transfer", Config{Absent: absent, SessionDataOutBudget: 4096},
			"SessionDataOutBudget 4096 is below the largest transfer"},
		{"same secret both ways", Config{Absent: absent, DiscoveryAuth: &CHAP{User: "u", Secret: "s", MutualUser: "t", MutualSecret: "s"}},
			"mutual CHAP secret equals"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestACLView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t, func(c *Config) {
			g := c.Targets[0].TPGs[0]
			g.ACLs = []ACL{{Initiator: testInitiator, LUNs: map[uint64]*scsi.LU{5: g.LUNs[0]}}}
		})
		tt.login(opKeys())
		// LUN 0 is not in this initiator's view; LUN 5 is.
		r := tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{}))
		assert.Equal(t, scsi.ASCLUNotSupported, r.sense.Code)
		r = tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{lun: 5}))
		assert.Equal(t, scsi.UnitAttention, r.sense.Key)
		r = tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{lun: 5}))
		assert.Equal(t, scsi.StatusGood, r.status)
	})
}

// TestNamesAreCaseInsensitive: an initiator that writes its name or the
// target's in capitals still matches the lowercase configuration (RFC 3722
// normalization).
func TestNamesAreCaseInsensitive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t, func(c *Config) {
			c.Targets[0].TPGs[0].ACLs = []ACL{{Initiator: testInitiator}}
		})
		keys := kv("InitiatorName", strings.ToUpper(testInitiator), "TargetName", strings.ToUpper(testTarget), "SessionType", "Normal")
		tt.finishLogin(append(keys, opKeys()...))
		r := tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{}))
		assert.Equal(t, scsi.UnitAttention, r.sense.Key)
	})
}

func TestShutdownLetsCommandsFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		slow := tt.command(slowCDB, cmdOpts{})
		synctest.Wait()
		done := make(chan error)
		go func() { done <- tt.srv.Shutdown(context.Background()) }()
		synctest.Wait()
		// New commands are no longer taken.
		tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		tt.gate <- struct{}{}
		assert.Equal(t, scsi.StatusGood, tt.wantResult(slow).status)
		tt.wantClosed()
		require.NoError(t, <-done)
	})
}

func TestShutdownAbortsWhenContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		tt.command(slowCDB, cmdOpts{})
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan error)
		go func() { done <- tt.srv.Shutdown(ctx) }()
		tt.wantClosed()
		require.ErrorIs(t, <-done, context.DeadlineExceeded)
	})
}
