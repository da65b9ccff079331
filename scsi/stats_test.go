package scsi

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		cdb  []byte
		want CommandClass
	}{
		{nil, ClassOther},
		{[]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, ClassRead},
		{[]byte{0x88}, ClassRead},
		{[]byte{0x2A}, ClassWrite},
		{[]byte{0x93}, ClassWrite},       // WRITE SAME (16)
		{[]byte{0x89}, ClassWrite},       // COMPARE AND WRITE
		{[]byte{0x42}, ClassWrite},       // UNMAP
		{[]byte{0x83, 0x00}, ClassCopy},  // EXTENDED COPY (LID1)
		{[]byte{0x83, 0x1C}, ClassCopy},  // COPY OPERATION ABORT
		{[]byte{0x84, 0x05}, ClassCopy},  // RECEIVE COPY STATUS (LID4)
		{[]byte{0x83, 0x10}, ClassToken}, // POPULATE TOKEN
		{[]byte{0x83, 0x11}, ClassToken}, // WRITE USING TOKEN
		{[]byte{0x84, 0x07}, ClassToken}, // RECEIVE ROD TOKEN INFORMATION
		{[]byte{0x84, 0x08}, ClassToken}, // REPORT ALL ROD TOKENS
		{[]byte{0x83}, ClassCopy},        // too short for its service action
		{[]byte{0x12}, ClassOther},
		{[]byte{0x00}, ClassOther},
	} {
		assert.Equal(t, tc.want, ClassOf(tc.cdb), "% x", tc.cdb)
	}
	assert.Equal(t, "token", ClassToken.String())
}

// TestLUStats runs commands through the task set and checks what the
// counters saw: every command once, under its class, CHECK CONDITION by
// sense, latencies in the histogram.
func TestLUStats(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)                             // one CHECK CONDITION, then GOOD
	tb.do(tb.nexus, 0, 0xC3, 0, 0, 0, 0, 0)             // WRITER, classed other
	tb.do(tb.nexus, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0) // not in this table: INVALID COMMAND OPERATION CODE
	s := tb.lu.Stats()
	other := s.Classes[ClassOther]
	assert.Equal(t, uint64(3), other.Commands)
	assert.Equal(t, uint64(1), s.Classes[ClassRead].Commands, "counted by opcode even when refused")
	var n uint64
	for _, b := range other.Latency {
		n += b
	}
	assert.Equal(t, other.Commands, n, "every command in one latency bucket")
	assert.Positive(t, other.LatencySum)
	assert.Equal(t, map[SenseCode]uint64{
		{UnitAttention, ASCPowerOnResetOrBusDeviceReset}: 1,
		{IllegalRequest, ASCInvalidCommandOperationCode}: 1,
	}, s.CheckConditions)
	s.CheckConditions[SenseCode{}] = 7
	assert.NotContains(t, tb.lu.Stats().CheckConditions, SenseCode{}, "a snapshot, not the live map")
}
