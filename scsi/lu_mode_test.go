package scsi

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/odxtgt/odxtgt/backstore"
)

func TestDefaultMode(t *testing.T) {
	lu := NewLU(LUConfig{Store: backstore.NewMemory(1<<20, 512), WriteCache: true})
	assert.Equal(t, ModeState{WCE: true}, lu.DefaultMode())
	lu.UpdateMode(&Nexus{}, func(s *ModeState) { *s = ModeState{SWP: true} })
	assert.Equal(t, ModeState{WCE: true}, lu.DefaultMode(), "the default values do not follow MODE SELECT")
}

func TestUpdateMode(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	tb.clearUA(t, tb.other)

	// Each update changes only what it touches.
	tb.lu.UpdateMode(tb.nexus, func(m *ModeState) { m.WCE = true })
	tb.lu.UpdateMode(tb.nexus, func(m *ModeState) { m.SWP = true })
	assert.Equal(t, ModeState{WCE: true, SWP: true}, tb.lu.Mode())

	// The other nexus gets one MODE PARAMETERS CHANGED; the one that made
	// the change none.
	assert.Equal(t, StatusGood, tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0).Status)
	assert.Equal(t, ASCModeParametersChanged, senseOf(t, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0)).Code)
	assert.Equal(t, StatusGood, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0).Status)

	// An update that changes nothing raises no unit attention.
	tb.lu.UpdateMode(tb.nexus, func(m *ModeState) { m.WCE = true })
	assert.Equal(t, StatusGood, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0).Status)
}
