package scsi

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// testBench is an LU with a tiny command table: TEST UNIT READY (00h), a
// controllable command (C0h) that blocks until released, INQUIRY-like C1h
// that ignores UAs, a service-action opcode C2h with SA 1, and a medium
// write C3h.
type testBench struct {
	lu      *LU
	nexus   *Nexus
	other   *Nexus
	mu      sync.Mutex
	started []byte // CDB byte 2 of each C0h as it starts
	release map[byte]chan struct{}
}

func newTestBench(t *testing.T) *testBench {
	tb := &testBench{release: map[byte]chan struct{}{}}
	ok := func(*Command) error { return nil }
	table, err := NewTable(CommandSet{Commands: []CommandDesc{
		{Name: "TEST UNIT READY", Opcode: 0x00, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: ok},
		{Name: "BLOCKER", Opcode: 0xC0, Usage: []byte{0xFF, 0, 0xFF, 0, 0, 0}, Handler: func(c *Command) error {
			id := c.CDB[2]
			tb.mu.Lock()
			tb.started = append(tb.started, id)
			ch := tb.release[id]
			tb.mu.Unlock()
			if ch != nil {
				select {
				case <-ch:
				case <-c.Context().Done():
				}
			}
			return nil
		}},
		{Name: "IGNORES UA", Opcode: 0xC1, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Flags: FlagIgnoresUA | FlagNoLU, Handler: ok},
		{Name: "SA ONE", Opcode: 0xC2, ServiceAction: 1, HasServiceAction: true, Usage: []byte{0xFF, 0x1F, 0, 0, 0, 0}, Handler: ok},
		{Name: "WRITER", Opcode: 0xC3, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Flags: FlagWritesMedium, Handler: ok},
		{Name: "PANICS", Opcode: 0xC4, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: func(*Command) error { panic("boom") }},
	}})
	require.NoError(t, err)
	tb.lu = NewLU(LUConfig{Identity: Identity{Name: "t"}, Store: backstore.NewMemory(1<<20, 512), Table: table})
	absent := NewAbsentLU(table, nil)
	lus := map[uint64]*LU{0: tb.lu}
	tb.nexus = NewNexus(Nexus{InitiatorPort: "i1,i,0x1", TargetPort: "t,t,0x1"}, lus, absent)
	tb.other = NewNexus(Nexus{InitiatorPort: "i2,i,0x2", TargetPort: "t,t,0x1"}, lus, absent)
	return tb
}

// do runs a command to completion and returns it.
func (tb *testBench) do(n *Nexus, lun uint64, cdb ...byte) *Command {
	c := &Command{CDB: cdb, LUN: lun, Nexus: n, Attr: TaskSimple}
	done := make(chan struct{})
	Submit(c, func(*Command) { close(done) })
	<-done
	return c
}

func senseOf(t *testing.T, c *Command) *Sense {
	t.Helper()
	require.Equal(t, StatusCheckCondition, c.Status)
	s, err := ParseSense(c.Sense)
	require.NoError(t, err)
	return s
}

// clearUA consumes the power-on unit attention of a nexus.
func (tb *testBench) clearUA(t *testing.T, n *Nexus) {
	s := senseOf(t, tb.do(n, 0, 0, 0, 0, 0, 0, 0))
	require.Equal(t, ASCPowerOnResetOrBusDeviceReset, s.Code)
	require.Equal(t, StatusGood, tb.do(n, 0, 0, 0, 0, 0, 0, 0).Status)
}

func TestPowerOnUnitAttention(t *testing.T) {
	tb := newTestBench(t)
	// A command that ignores UAs neither reports nor clears it.
	assert.Equal(t, StatusGood, tb.do(tb.nexus, 0, 0xC1, 0, 0, 0, 0, 0).Status)
	s := senseOf(t, tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0))
	assert.Equal(t, UnitAttention, s.Key)
	assert.Equal(t, ASCPowerOnResetOrBusDeviceReset, s.Code)
	assert.Equal(t, StatusGood, tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0).Status)
	// Another nexus gets its own.
	assert.Equal(t, UnitAttention, senseOf(t, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0)).Key)
}

func TestDispatchErrors(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	for _, tc := range []struct {
		name string
		cdb  []byte
		want *Sense
	}{
		{"unknown opcode", []byte{0xD0, 0, 0, 0, 0, 0}, InvalidOpcode()},
		{"reserved bit", []byte{0x00, 0x20, 0, 0, 0, 0}, InvalidFieldInCDB(1, 5)},
		{"NACA in control byte", []byte{0x00, 0, 0, 0, 0, 0x04}, InvalidFieldInCDB(5, 2)},
		{"unknown service action", []byte{0xC2, 0x02, 0, 0, 0, 0}, InvalidFieldInCDB(1, 4)},
		{"short CDB", []byte{0x00, 0, 0}, InvalidOpcode()},
		{"panic", []byte{0xC4, 0, 0, 0, 0, 0}, InternalTargetFailure()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := senseOf(t, tb.do(tb.nexus, 0, tc.cdb...))
			assert.Equal(t, tc.want.Key, s.Key)
			assert.Equal(t, tc.want.Code, s.Code)
			assert.Equal(t, tc.want.SenseKeySpecific, s.SenseKeySpecific)
		})
	}
	assert.Equal(t, StatusGood, tb.do(tb.nexus, 0, 0xC2, 0x01, 0, 0, 0, 0).Status)
}

func TestAbsentLU(t *testing.T) {
	tb := newTestBench(t)
	s := senseOf(t, tb.do(tb.nexus, 3, 0, 0, 0, 0, 0, 0))
	assert.Equal(t, ASCLUNotSupported, s.Code)
	s = senseOf(t, tb.do(tb.nexus, InvalidLUN, 0xD0, 0, 0, 0, 0, 0))
	assert.Equal(t, ASCLUNotSupported, s.Code)
	assert.Equal(t, StatusGood, tb.do(tb.nexus, 3, 0xC1, 0, 0, 0, 0, 0).Status)
}

func TestWriteProtected(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	assert.Equal(t, StatusGood, tb.do(tb.nexus, 0, 0xC3, 0, 0, 0, 0, 0).Status)
	tb.lu.UpdateMode(tb.nexus, func(s *ModeState) { *s = ModeState{SWP: true} })
	s := senseOf(t, tb.do(tb.nexus, 0, 0xC3, 0, 0, 0, 0, 0))
	assert.Equal(t, DataProtect, s.Key)
	// The other nexus learns that mode parameters changed.
	assert.Equal(t, ASCPowerOnResetOrBusDeviceReset, senseOf(t, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0)).Code)
	assert.Equal(t, StatusGood, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0).Status)
	tb.lu.UpdateMode(tb.nexus, func(s *ModeState) { *s = ModeState{} })
	assert.Equal(t, ASCModeParametersChanged, senseOf(t, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0)).Code)
}

func TestDescriptorSense(t *testing.T) {
	tb := newTestBench(t)
	tb.lu.UpdateMode(tb.nexus, func(s *ModeState) { *s = ModeState{DSense: true} })
	c := tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0)
	require.Equal(t, StatusCheckCondition, c.Status)
	assert.Equal(t, byte(0x72), c.Sense[0])
}

// submit starts a command without waiting; the returned channel closes
// when it is done.
func (tb *testBench) submit(n *Nexus, attr TaskAttr, tag uint64, id byte) (*Command, chan struct{}) {
	c := &Command{CDB: []byte{0xC0, 0, id, 0, 0, 0}, Nexus: n, Attr: attr, Tag: tag}
	done := make(chan struct{})
	Submit(c, func(*Command) { close(done) })
	return c, done
}

func (tb *testBench) hold(id byte) chan struct{} {
	ch := make(chan struct{})
	tb.mu.Lock()
	tb.release[id] = ch
	tb.mu.Unlock()
	return ch
}

func (tb *testBench) waitStarted(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		return len(tb.started) >= n
	}, 5*time.Second, time.Millisecond)
}

func (tb *testBench) startedOrder() []byte {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]byte(nil), tb.started...)
}

func TestTaskOrdering(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	r1 := tb.hold(1)
	_, d1 := tb.submit(tb.nexus, TaskSimple, 1, 1)
	tb.waitStarted(t, 1)
	r2 := tb.hold(2)
	_, d2 := tb.submit(tb.nexus, TaskOrdered, 2, 2) // waits for 1
	_, d3 := tb.submit(tb.nexus, TaskSimple, 3, 3)  // waits for the ORDERED 2
	_, d4 := tb.submit(tb.nexus, TaskHeadOfQueue, 4, 4)
	<-d4 // HEAD OF QUEUE runs at once
	assert.Equal(t, []byte{1, 4}, tb.startedOrder())
	close(r1)
	<-d1
	tb.waitStarted(t, 3)
	assert.Equal(t, []byte{1, 4, 2}, tb.startedOrder())
	close(r2)
	<-d2
	<-d3
	assert.Equal(t, []byte{1, 4, 2, 3}, tb.startedOrder())
}

func TestAbortTask(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	tb.hold(1)
	c, d := tb.submit(tb.nexus, TaskSimple, 7, 1)
	tb.waitStarted(t, 1)
	assert.False(t, tb.lu.AbortTask(tb.other, 7))
	assert.True(t, tb.lu.AbortTask(tb.nexus, 7))
	<-d
	assert.True(t, c.Aborted)
	assert.False(t, tb.lu.AbortTask(tb.nexus, 7))
}

func TestAbortWaitingTask(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	r1 := tb.hold(1)
	_, d1 := tb.submit(tb.nexus, TaskOrdered, 1, 1)
	tb.waitStarted(t, 1)
	c2, d2 := tb.submit(tb.nexus, TaskSimple, 2, 2)
	assert.True(t, tb.lu.AbortTask(tb.nexus, 2))
	<-d2
	assert.True(t, c2.Aborted)
	close(r1)
	<-d1
	assert.Equal(t, []byte{1}, tb.startedOrder(), "an aborted waiting task never runs")
}

func TestClearTaskSetAndReset(t *testing.T) {
	tb := newTestBench(t)
	tb.clearUA(t, tb.nexus)
	tb.clearUA(t, tb.other)
	tb.hold(1)
	tb.hold(2)
	c1, d1 := tb.submit(tb.nexus, TaskSimple, 1, 1)
	c2, d2 := tb.submit(tb.other, TaskSimple, 1, 2)
	tb.waitStarted(t, 2)
	tb.lu.AbortTaskSet(tb.nexus)
	<-d1
	assert.True(t, c1.Aborted)
	select {
	case <-d2:
		t.Fatal("ABORT TASK SET from one nexus ended another nexus's task")
	default:
	}
	tb.lu.ClearTaskSet(tb.nexus)
	<-d2
	assert.True(t, c2.Aborted)
	assert.Equal(t, ASCCommandsClearedByAnotherInit, senseOf(t, tb.do(tb.other, 0, 0, 0, 0, 0, 0, 0)).Code)
	assert.Equal(t, StatusGood, tb.do(tb.nexus, 0, 0, 0, 0, 0, 0, 0).Status)

	tb.lu.Reset(ASCBusDeviceResetFunctionOccurred)
	for _, n := range []*Nexus{tb.nexus, tb.other} {
		assert.Equal(t, ASCBusDeviceResetFunctionOccurred, senseOf(t, tb.do(n, 0, 0, 0, 0, 0, 0, 0)).Code)
	}
}

func TestTableRejectsDuplicates(t *testing.T) {
	ok := func(*Command) error { return nil }
	_, err := NewTable(CommandSet{Commands: []CommandDesc{
		{Name: "A", Opcode: 1, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: ok},
		{Name: "B", Opcode: 1, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: ok},
	}})
	assert.Error(t, err)
	_, err = NewTable(CommandSet{Commands: []CommandDesc{{Name: "C", Opcode: 1, Usage: []byte{0x00, 0, 0, 0, 0, 0}, Handler: ok}}})
	assert.Error(t, err)
}

func TestTakeDataOut(t *testing.T) {
	c := &Command{DataOut: make([]byte, 512)}
	_, err := c.TakeDataOut(1024)
	var s *Sense
	require.ErrorAs(t, err, &s)
	assert.Equal(t, ASCInvalidFieldInCommandIU, s.Code)
	assert.Equal(t, 1024, c.DataOutLength)
	p, err := c.TakeDataOut(512)
	require.NoError(t, err)
	assert.Len(t, p, 512)
	p, err = c.TakeDataOut(100)
	require.NoError(t, err, "an underflow uses the first bytes")
	assert.Len(t, p, 100)
	assert.Equal(t, 100, c.DataOutLength)
}

func TestTakeDataOutBlocks(t *testing.T) {
	for _, tc := range []struct {
		name       string
		carried, n int
		want       int // bytes returned, -1 for 0E/03
	}{
		{"exact", 1024, 1024, 1024},
		{"underflow", 4096, 1024, 1024},
		{"overflow by whole blocks", 512, 1024, 512},
		{"nothing carried", 0, 1024, 0},
		{"partial block", 200, 512, -1},
		{"partial block after whole ones", 700, 1024, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Command{DataOut: make([]byte, tc.carried)}
			p, err := c.TakeDataOutBlocks(tc.n, 512)
			assert.Equal(t, tc.n, c.DataOutLength)
			if tc.want < 0 {
				var s *Sense
				require.ErrorAs(t, err, &s)
				assert.Equal(t, ASCInvalidFieldInCommandIU, s.Code)
				return
			}
			require.NoError(t, err)
			assert.Len(t, p, tc.want)
		})
	}
}

func TestTableVPDPages(t *testing.T) {
	page := func(code byte) VPDPage {
		return VPDPage{Code: code, Name: "p", Build: func(*Command) ([]byte, error) { return nil, nil }}
	}
	table, err := NewTable(CommandSet{VPDPages: []VPDPage{page(0xB0), page(0x00)}}, CommandSet{VPDPages: []VPDPage{page(0x83)}})
	require.NoError(t, err)
	assert.Equal(t, []byte{0x00, 0x83, 0xB0}, table.VPDCodes())
	assert.NotNil(t, table.VPDPage(0x83))
	assert.Nil(t, table.VPDPage(0x80))

	_, err = NewTable(CommandSet{VPDPages: []VPDPage{page(0x80)}}, CommandSet{VPDPages: []VPDPage{page(0x80)}})
	assert.ErrorContains(t, err, "registered twice")
	_, err = NewTable(CommandSet{VPDPages: []VPDPage{{Code: 0x80}}})
	assert.ErrorContains(t, err, "no Build")
}
