package iscsi

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

func withNOP(c *Config) {
	c.NOPInInterval = 5 * time.Second
	c.NOPInTimeout = 5 * time.Second
}

func TestInitiatorPing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		for _, immediate := range []bool{true, false} {
			itt := tt.ping(immediate, []byte("ping data"))
			p := tt.want(OpNOPIn)
			assert.Equal(t, itt, p.ITT())
			assert.Equal(t, uint32(ReservedTag), p.Uint32(OffTTT))
			assert.Equal(t, []byte("ping data"), p.Data)
			assert.Equal(t, tt.cmdSN, p.Uint32(OffExpCmdSN))
		}
		// A NOP-Out with the reserved ITT must be immediate.
		p := &PDU{}
		p.SetOpcode(OpNOPOut)
		p.SetFinal(true)
		p.SetITT(ReservedTag)
		p.PutUint32(OffTTT, ReservedTag)
		tt.send(p)
		tt.wantReject(RejectInvalidPDUField, OpNOPOut)
	})
}

// answerNOPIn answers a target ping.
func (tt *tester) answerNOPIn(in *PDU) {
	p := &PDU{}
	p.SetOpcode(OpNOPOut)
	p.SetImmediate(true)
	p.SetFinal(true)
	p.SetITT(ReservedTag)
	p.PutUint32(OffTTT, in.Uint32(OffTTT))
	p.PutUint32(OffCmdSN, tt.cmdSN)
	p.PutUint32(OffExpStatSN, tt.statSN)
	tt.send(p)
}

func TestTargetPingsIdleInitiator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t, withNOP)
		tt.loginDefault()
		start := time.Now()
		for range 3 {
			p := tt.want(OpNOPIn)
			assert.Equal(t, uint32(ReservedTag), p.ITT())
			assert.NotEqual(t, uint32(ReservedTag), p.Uint32(OffTTT))
			assert.Equal(t, tt.statSN, p.Uint32(OffStatSN), "StatSN shown, not advanced")
			tt.answerNOPIn(p)
		}
		assert.GreaterOrEqual(t, time.Since(start), 15*time.Second)
		// No answer: the connection is dropped after NOPInTimeout.
		tt.want(OpNOPIn)
		tt.wantClosed()
	})
}

func TestPingWhileCommandRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t, withNOP)
		tt.loginDefault()
		slow := tt.command([]byte{opSlow, 0, 0, 0, 0, 0}, cmdOpts{})
		itt := tt.ping(true, nil)
		require.Equal(t, itt, tt.want(OpNOPIn).ITT())
		p := tt.want(OpNOPIn)
		require.Equal(t, uint32(ReservedTag), p.ITT())
		tt.answerNOPIn(p)
		tt.gate <- struct{}{}
		assert.Equal(t, scsi.StatusGood, tt.wantResult(slow).status)
	})
}
