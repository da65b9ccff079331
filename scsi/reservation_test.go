package scsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// prBench is a logical unit with three I_T nexuses to one target port:
// H and R register (keys kH and kR) and H reserves; O stays unregistered.
type prBench struct {
	lu      *LU
	nexuses map[string]*Nexus
	started chan struct{} // a BLOCKER (C0h) or STUBBORN (C8h, C9h) began
	release chan struct{} // closed, it lets a STUBBORN (C8h) end
	// release2, closed, lets a STUBBORN (C9h) end.
	release2 chan struct{}
}

const (
	kH, kR  = 0x1000, 0x2000
	tport   = "iqn.2025-01.io.odxtgt:t,t,0x0001"
	newKey  = 0x9999
	badKey  = 0x5555
	moveKey = 0x7777
)

var prTypes = []ReservationType{PRWriteExclusive, PRExclusiveAccess, PRWriteExclusiveRegistrantsOnly,
	PRExclusiveAccessRegistrantsOnly, PRWriteExclusiveAllRegistrants, PRExclusiveAccessAllRegistrants}

func newPRBench(t *testing.T) *prBench {
	t.Helper()
	b := &prBench{nexuses: map[string]*Nexus{}, started: make(chan struct{}, 8), release: make(chan struct{}),
		release2: make(chan struct{})}
	ok := func(*Command) error { return nil }
	table, err := NewTable(CommandSet{Commands: []CommandDesc{
		{Name: "TEST UNIT READY", Opcode: 0x00, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: ok},
		{Name: "READ (10)", Opcode: 0x28, Usage: []byte{0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Handler: ok},
		{Name: "WRITE (10)", Opcode: 0x2A, Usage: []byte{0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Flags: FlagWritesMedium, Handler: ok},
		{Name: "UNKNOWN WRITER", Opcode: 0xC3, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Flags: FlagWritesMedium, Handler: ok},
		{Name: "UNKNOWN READER", Opcode: 0xC5, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: ok},
		{Name: "COPIER", Opcode: 0xC6, Usage: []byte{0xFF, 0xFF, 0, 0, 0, 0}, Handler: func(c *Command) error {
			// Writes (byte 1 = 1) or reads its own logical unit through an
			// internal task, failing as a copy manager would.
			err := RunInternal(c.Context(), c.Nexus, []Access{{LU: c.LU(), Blocks: 1, Write: c.CDB[1] == 1}},
				func(context.Context) error { return nil })
			if err != nil {
				return NewSense(CopyAborted, ASCThirdPartyDeviceFailure).WithReason("%v", err)
			}
			return nil
		}},
		{Name: "BLOCKER", Opcode: 0xC0, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: func(c *Command) error {
			b.started <- struct{}{}
			<-c.Context().Done()
			return TaskAborted()
		}},
		{Name: "STUBBORN", Opcode: 0xC8, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: func(c *Command) error {
			// Outlives its abort until released.
			b.started <- struct{}{}
			<-b.release
			return TaskAborted()
		}},
		{Name: "STUBBORN", Opcode: 0xC9, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: func(c *Command) error {
			b.started <- struct{}{}
			<-b.release2
			return TaskAborted()
		}},
	}})
	require.NoError(t, err)
	b.lu = NewLU(LUConfig{Identity: Identity{Name: "pr", Serial: "s1"}, Store: backstore.NewMemory(1<<20, 512), Table: table,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ports:  []TargetPortID{{Name: tport, RelativeID: 1}, {Name: "iqn.2025-01.io.odxtgt:t,t,0x0002", RelativeID: 2}}})
	lus := map[uint64]*LU{0: b.lu}
	absent := NewAbsentLU(table, nil)
	for i, name := range []string{"H", "R", "O"} {
		iname := "iqn.2025-01.io.odxtgt:" + strings.ToLower(name)
		b.nexuses[name] = NewNexus(Nexus{InitiatorName: iname, InitiatorPort: fmt.Sprintf("%s,i,0x%012x", iname, i+1),
			TargetPort: tport, RelativePortID: 1}, lus, absent)
		b.cdb(name, 0, 0, 0, 0, 0, 0) // the power-on unit attention
	}
	return b
}

// setUp registers H and R and lets H reserve with type typ.
func (b *prBench) setUp(t *testing.T, typ ReservationType) {
	t.Helper()
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH}))
	require.NoError(t, b.out("R", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kR}))
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTReserve, Type: typ, Key: kH}))
}

func (b *prBench) out(who string, req PROUTRequest) error {
	return b.lu.PersistentReserveOut(&Command{Nexus: b.nexuses[who]}, &req)
}

func (b *prBench) cdb(who string, cdb ...byte) *Command {
	c := &Command{CDB: cdb, Nexus: b.nexuses[who], Attr: TaskSimple}
	done := make(chan struct{})
	Submit(c, func(*Command) { close(done) })
	<-done
	return c
}

// state describes the registrations in order, "*" marking holders, and
// the type: "H=1000* R=2000 type=1".
func (b *prBench) state() string {
	st := b.lu.Reservations()
	var parts []string
	for i, r := range st.Registrations {
		name := "?"
		for n, nx := range b.nexuses {
			if r.matches(nx) {
				name = n
			}
		}
		s := fmt.Sprintf("%s=%x", name, r.Key)
		if st.Holds(i) {
			s += "*"
		}
		parts = append(parts, s)
	}
	return strings.TrimSpace(strings.Join(parts, " ") + fmt.Sprintf(" type=%d", st.Type))
}

// uas drains and describes the unit attentions pending for H, R and O.
func (b *prBench) uas() string {
	var parts []string
	for _, name := range []string{"H", "R", "O"} {
		for {
			s := b.lu.TakeUA(b.nexuses[name])
			if s == nil {
				break
			}
			parts = append(parts, fmt.Sprintf("%s:%04X", name, uint16(s.Code)))
		}
	}
	return strings.Join(parts, " ")
}

// outcome describes a service action's result: GOOD, CONFLICT, or the
// ASC/ASCQ of the sense data.
func outcome(err error) string {
	var se *StatusError
	var s *Sense
	switch {
	case err == nil:
		return "GOOD"
	case errors.As(err, &se) && se.Status == StatusReservationConflict:
		return "CONFLICT"
	case errors.As(err, &s):
		return fmt.Sprintf("%04X", uint16(s.Code))
	}
	return err.Error()
}

// TestPROUTStateMachine runs every service action from the holder (H), a
// registrant that does not hold the reservation (R) and an unregistered
// I_T nexus (O), under each of the six types, and checks the status, the
// registrations and reservation left, PRGENERATION and the unit
// attentions (SPC-4 5.12.7-5.12.11).
func TestPROUTStateMachine(t *testing.T) {
	// want gives, for a type, the expected outcome, state, generation
	// increment and unit attentions. In states, "T" stands for the type
	// under test and "U" for another one.
	type want struct {
		outcome, state string
		gen            uint32
		uas            string
	}
	type tcase struct {
		name string
		who  string
		req  PROUTRequest // Type zero: the type under test; typeOther: another one
		want func(t ReservationType) want
	}
	const typeOther = 0xFF
	ar := func(t ReservationType) bool { return t.AllRegistrants() }
	ro := func(t ReservationType) bool { return t.RegistrantsOnly() }
	pick := func(c bool, a, b want) want {
		if c {
			return a
		}
		return b
	}
	holders := func(t ReservationType) string { // the state after setUp
		if ar(t) {
			return "H=1000* R=2000* type=T"
		}
		return "H=1000* R=2000 type=T"
	}
	same := func(t ReservationType) want { return want{"GOOD", holders(t), 0, ""} }
	conflict := func(t ReservationType) want { return want{"CONFLICT", holders(t), 0, ""} }
	cases := []tcase{
		{"REGISTER new key", "H", PROUTRequest{Action: PROUTRegister, Key: kH, ServiceActionKey: newKey}, func(t ReservationType) want {
			return want{"GOOD", strings.Replace(holders(t), "H=1000", "H=9999", 1), 1, ""}
		}},
		{"REGISTER new key", "R", PROUTRequest{Action: PROUTRegister, Key: kR, ServiceActionKey: newKey}, func(t ReservationType) want {
			return want{"GOOD", strings.Replace(holders(t), "R=2000", "R=9999", 1), 1, ""}
		}},
		{"REGISTER", "O", PROUTRequest{Action: PROUTRegister, ServiceActionKey: newKey}, func(t ReservationType) want {
			return pick(ar(t), want{"GOOD", "H=1000* R=2000* O=9999* type=T", 1, ""},
				want{"GOOD", "H=1000* R=2000 O=9999 type=T", 1, ""})
		}},
		{"REGISTER wrong key", "H", PROUTRequest{Action: PROUTRegister, Key: badKey, ServiceActionKey: newKey}, conflict},
		{"REGISTER wrong key", "R", PROUTRequest{Action: PROUTRegister, Key: badKey, ServiceActionKey: newKey}, conflict},
		{"REGISTER with a key", "O", PROUTRequest{Action: PROUTRegister, Key: badKey, ServiceActionKey: newKey}, conflict},
		{"unregister", "H", PROUTRequest{Action: PROUTRegister, Key: kH}, func(t ReservationType) want {
			switch {
			case ar(t):
				return want{"GOOD", "R=2000* type=T", 1, ""}
			case ro(t):
				return want{"GOOD", "R=2000 type=0", 1, "R:2A04"}
			}
			return want{"GOOD", "R=2000 type=0", 1, ""}
		}},
		{"unregister", "R", PROUTRequest{Action: PROUTRegister, Key: kR}, func(t ReservationType) want {
			return want{"GOOD", pick(ar(t), want{state: "H=1000* type=T"}, want{state: "H=1000* type=T"}).state, 1, ""}
		}},
		{"REGISTER zero key", "O", PROUTRequest{Action: PROUTRegister}, same},
		{"REGISTER AND IGNORE EXISTING KEY", "H", PROUTRequest{Action: PROUTRegisterAndIgnoreExisting, Key: badKey, ServiceActionKey: newKey}, func(t ReservationType) want {
			return want{"GOOD", strings.Replace(holders(t), "H=1000", "H=9999", 1), 1, ""}
		}},
		{"REGISTER AND IGNORE EXISTING KEY", "O", PROUTRequest{Action: PROUTRegisterAndIgnoreExisting, Key: badKey, ServiceActionKey: newKey}, func(t ReservationType) want {
			return pick(ar(t), want{"GOOD", "H=1000* R=2000* O=9999* type=T", 1, ""},
				want{"GOOD", "H=1000* R=2000 O=9999 type=T", 1, ""})
		}},
		{"REGISTER SPEC_I_PT registered", "H", PROUTRequest{Action: PROUTRegister, Key: kH, ServiceActionKey: newKey, SpecIPT: true}, func(t ReservationType) want {
			return want{"2600", holders(t), 0, ""}
		}},
		{"RESERVE same type", "H", PROUTRequest{Action: PROUTReserve, Key: kH}, same},
		{"RESERVE same type", "R", PROUTRequest{Action: PROUTReserve, Key: kR}, func(t ReservationType) want {
			return pick(ar(t), same(t), conflict(t))
		}},
		{"RESERVE", "O", PROUTRequest{Action: PROUTReserve}, conflict},
		{"RESERVE other type", "H", PROUTRequest{Action: PROUTReserve, Key: kH, Type: typeOther}, conflict},
		{"RESERVE other type", "R", PROUTRequest{Action: PROUTReserve, Key: kR, Type: typeOther}, conflict},
		{"RESERVE wrong key", "H", PROUTRequest{Action: PROUTReserve, Key: badKey}, conflict},
		{"RELEASE", "H", PROUTRequest{Action: PROUTRelease, Key: kH}, func(t ReservationType) want {
			return pick(ro(t) || ar(t), want{"GOOD", "H=1000 R=2000 type=0", 0, "R:2A04"},
				want{"GOOD", "H=1000 R=2000 type=0", 0, ""})
		}},
		{"RELEASE", "R", PROUTRequest{Action: PROUTRelease, Key: kR}, func(t ReservationType) want {
			return pick(ar(t), want{"GOOD", "H=1000 R=2000 type=0", 0, "H:2A04"}, same(t))
		}},
		{"RELEASE", "O", PROUTRequest{Action: PROUTRelease}, conflict},
		{"RELEASE other type", "H", PROUTRequest{Action: PROUTRelease, Key: kH, Type: typeOther}, func(t ReservationType) want {
			return want{"2604", holders(t), 0, ""}
		}},
		{"RELEASE other type", "R", PROUTRequest{Action: PROUTRelease, Key: kR, Type: typeOther}, func(t ReservationType) want {
			return pick(ar(t), want{"2604", holders(t), 0, ""}, same(t))
		}},
		{"RELEASE wrong key", "H", PROUTRequest{Action: PROUTRelease, Key: badKey}, conflict},
		{"CLEAR", "H", PROUTRequest{Action: PROUTClear, Key: kH}, func(ReservationType) want {
			return want{"GOOD", "type=0", 1, "R:2A03"}
		}},
		{"CLEAR", "R", PROUTRequest{Action: PROUTClear, Key: kR}, func(ReservationType) want {
			return want{"GOOD", "type=0", 1, "H:2A03"}
		}},
		{"CLEAR", "O", PROUTRequest{Action: PROUTClear}, conflict},
		{"CLEAR wrong key", "R", PROUTRequest{Action: PROUTClear, Key: badKey}, conflict},
		{"PREEMPT the holder's key", "H", PROUTRequest{Action: PROUTPreempt, Key: kH, ServiceActionKey: kH}, func(t ReservationType) want {
			return want{"GOOD", holders(t), 1, ""}
		}},
		{"PREEMPT the holder's key", "R", PROUTRequest{Action: PROUTPreempt, Key: kR, ServiceActionKey: kH}, func(t ReservationType) want {
			return want{"GOOD", "R=2000* type=T", 1, "H:2A05"}
		}},
		{"PREEMPT the holder's key, new type", "R", PROUTRequest{Action: PROUTPreempt, Key: kR, ServiceActionKey: kH, Type: typeOther}, func(t ReservationType) want {
			// Under an all registrants type the registrations with the
			// key go and the reservation stays as it was.
			return pick(ar(t), want{"GOOD", "R=2000* type=T", 1, "H:2A05"},
				want{"GOOD", "R=2000* type=U", 1, "H:2A05"})
		}},
		{"PREEMPT a registrant's key", "H", PROUTRequest{Action: PROUTPreempt, Key: kH, ServiceActionKey: kR}, func(t ReservationType) want {
			return want{"GOOD", "H=1000* type=T", 1, "R:2A05"}
		}},
		{"PREEMPT its own key", "R", PROUTRequest{Action: PROUTPreempt, Key: kR, ServiceActionKey: kR}, func(t ReservationType) want {
			return pick(ar(t), want{"GOOD", holders(t), 1, ""}, want{"GOOD", "H=1000* type=T", 1, ""})
		}},
		{"PREEMPT zero key", "H", PROUTRequest{Action: PROUTPreempt, Key: kH}, func(t ReservationType) want {
			return pick(ar(t), want{"GOOD", "H=1000* type=T", 1, "R:2A05"}, want{"2600", holders(t), 0, ""})
		}},
		{"PREEMPT zero key, new type", "R", PROUTRequest{Action: PROUTPreempt, Key: kR, Type: typeOther}, func(t ReservationType) want {
			return pick(ar(t), want{"GOOD", "R=2000* type=U", 1, "H:2A05"}, want{"2600", holders(t), 0, ""})
		}},
		{"PREEMPT unknown key", "H", PROUTRequest{Action: PROUTPreempt, Key: kH, ServiceActionKey: badKey}, conflict},
		{"PREEMPT", "O", PROUTRequest{Action: PROUTPreempt, ServiceActionKey: kH}, conflict},
		{"PREEMPT wrong key", "R", PROUTRequest{Action: PROUTPreempt, Key: badKey, ServiceActionKey: kH}, conflict},
		{"PREEMPT AND ABORT the holder's key", "R", PROUTRequest{Action: PROUTPreemptAndAbort, Key: kR, ServiceActionKey: kH}, func(t ReservationType) want {
			return want{"GOOD", "R=2000* type=T", 1, "H:2A05"}
		}},
		{"REGISTER AND MOVE", "H", PROUTRequest{Action: PROUTRegisterAndMove, Key: kH, ServiceActionKey: moveKey,
			TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:o", ISID: "000000000003"}}, RelativePortID: 1}, func(t ReservationType) want {
			return pick(ar(t), conflict(t), want{"GOOD", "H=1000 R=2000 O=7777* type=T", 1, ""})
		}},
		{"REGISTER AND MOVE with UNREG", "H", PROUTRequest{Action: PROUTRegisterAndMove, Key: kH, ServiceActionKey: moveKey, Unregister: true,
			TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:o", ISID: "000000000003"}}, RelativePortID: 1}, func(t ReservationType) want {
			return pick(ar(t), conflict(t), want{"GOOD", "R=2000 O=7777* type=T", 1, ""})
		}},
		{"REGISTER AND MOVE to itself", "H", PROUTRequest{Action: PROUTRegisterAndMove, Key: kH, ServiceActionKey: moveKey,
			TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:h"}}, RelativePortID: 1}, func(t ReservationType) want {
			return pick(ar(t), conflict(t), want{"2600", holders(t), 0, ""})
		}},
		{"REGISTER AND MOVE to itself through another target port", "H", PROUTRequest{Action: PROUTRegisterAndMove, Key: kH, ServiceActionKey: moveKey,
			TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:h", ISID: "000000000001"}}, RelativePortID: 2}, func(t ReservationType) want {
			return pick(ar(t), conflict(t), want{"GOOD", "H=1000 R=2000 ?=7777* type=T", 1, ""})
		}},
		{"REGISTER AND MOVE to an unknown port", "H", PROUTRequest{Action: PROUTRegisterAndMove, Key: kH, ServiceActionKey: moveKey,
			TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:o", ISID: "000000000003"}}, RelativePortID: 9}, func(t ReservationType) want {
			return pick(ar(t), conflict(t), want{"2600", holders(t), 0, ""})
		}},
		{"REGISTER AND MOVE zero key", "H", PROUTRequest{Action: PROUTRegisterAndMove, Key: kH,
			TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:o", ISID: "000000000003"}}, RelativePortID: 1}, func(t ReservationType) want {
			return want{"2600", holders(t), 0, ""}
		}},
		{"REGISTER AND MOVE", "R", PROUTRequest{Action: PROUTRegisterAndMove, Key: kR, ServiceActionKey: moveKey,
			TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:o", ISID: "000000000003"}}, RelativePortID: 1}, conflict},
		{"REGISTER AND MOVE", "O", PROUTRequest{Action: PROUTRegisterAndMove, ServiceActionKey: moveKey,
			TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:h", ISID: "000000000001"}}, RelativePortID: 1}, conflict},
	}
	for _, typ := range prTypes {
		other := PRExclusiveAccess
		if typ == PRExclusiveAccess || typ.AllRegistrants() {
			other = PRWriteExclusiveRegistrantsOnly
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s from %s", typ, tc.name, tc.who), func(t *testing.T) {
				b := newPRBench(t)
				b.setUp(t, typ)
				b.uas()
				gen := b.lu.Reservations().Generation
				req := tc.req
				switch req.Type {
				case 0:
					req.Type = typ
				case typeOther:
					req.Type = other
				}
				w := tc.want(typ)
				w.state = strings.NewReplacer("type=T", fmt.Sprintf("type=%d", typ), "type=U", fmt.Sprintf("type=%d", other)).Replace(w.state)
				assert.Equal(t, w.outcome, outcome(b.out(tc.who, req)), "outcome")
				assert.Equal(t, w.state, b.state(), "state")
				assert.Equal(t, gen+w.gen, b.lu.Reservations().Generation, "PRGENERATION")
				assert.Equal(t, w.uas, b.uas(), "unit attentions")
			})
		}
	}
}

// TestReservationConflictTable checks the dispatcher's answer for reads,
// writes, commands the table always allows and commands it does not name,
// from the holder, a registrant and an unregistered I_T nexus under every
// type (SPC-4 5.12.1, SBC-3 4.16).
func TestReservationConflictTable(t *testing.T) {
	cmds := map[string][]byte{
		"TUR":    {0x00, 0, 0, 0, 0, 0},
		"READ":   {0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"WRITE":  {0x2A, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"writer": {0xC3, 0, 0, 0, 0, 0}, // unknown medium writer
		"reader": {0xC5, 0, 0, 0, 0, 0}, // unknown, not a writer
	}
	// allowedFor lists, per type, what R and O may do; H may do all.
	type access struct{ R, O []string }
	all := []string{"TUR", "READ", "WRITE", "writer", "reader"}
	reads := []string{"TUR", "READ", "reader"}
	tur := []string{"TUR"}
	want := map[ReservationType]access{
		PRWriteExclusive:                 {R: reads, O: reads},
		PRExclusiveAccess:                {R: tur, O: tur},
		PRWriteExclusiveRegistrantsOnly:  {R: all, O: reads},
		PRExclusiveAccessRegistrantsOnly: {R: all, O: tur},
		PRWriteExclusiveAllRegistrants:   {R: all, O: reads},
		PRExclusiveAccessAllRegistrants:  {R: all, O: tur},
	}
	for _, typ := range prTypes {
		b := newPRBench(t)
		b.setUp(t, typ)
		b.uas()
		for name, cdb := range cmds {
			for _, who := range []string{"H", "R", "O"} {
				allowed := who == "H" || slices.Contains(map[string][]string{"R": want[typ].R, "O": want[typ].O}[who], name)
				c := b.cdb(who, cdb...)
				if allowed {
					assert.Equal(t, StatusGood, c.Status, "%s: %s from %s", typ, name, who)
				} else {
					assert.Equal(t, StatusReservationConflict, c.Status, "%s: %s from %s", typ, name, who)
					assert.Empty(t, c.Sense)
				}
			}
		}
	}
}

// TestReservationClasses pins the class of the commands other packages
// implement, including those added after this table (COMPARE AND WRITE,
// WRITE SAME, UNMAP, the third-party copy commands).
func TestReservationClasses(t *testing.T) {
	writer := &CommandDesc{Flags: FlagWritesMedium}
	for _, tc := range []struct {
		cdb  []byte
		d    *CommandDesc
		want resvKind
	}{
		{[]byte{0x89, 0}, writer, resvWrite},                            // COMPARE AND WRITE
		{[]byte{0x41, 0}, writer, resvWrite},                            // WRITE SAME (10)
		{[]byte{0x93, 0}, writer, resvWrite},                            // WRITE SAME (16)
		{[]byte{0x42, 0}, writer, resvWrite},                            // UNMAP
		{[]byte{0x83, 0x00}, writer, resvAllowed},                       // EXTENDED COPY: checked per access
		{[]byte{0x83, 0x10}, writer, resvRead},                          // POPULATE TOKEN
		{[]byte{0x83, 0x11}, writer, resvWrite},                         // WRITE USING TOKEN
		{[]byte{0x83, 0x1C}, nil, resvAllowed},                          // COPY OPERATION ABORT
		{[]byte{0x83, 0x1E}, writer, resvWrite},                         // an unknown copy-out action that writes
		{[]byte{0x84, 0x05}, nil, resvRead},                             // RECEIVE COPY STATUS (LID4)
		{[]byte{0x84, 0x07}, nil, resvRead},                             // RECEIVE ROD TOKEN INFORMATION
		{[]byte{0x12, 0}, nil, resvAllowed},                             // INQUIRY
		{[]byte{0x1A, 0}, nil, resvRead},                                // MODE SENSE (6)
		{[]byte{0x15, 0}, nil, resvWrite},                               // MODE SELECT (6)
		{[]byte{0x35, 0}, nil, resvWrite},                               // SYNCHRONIZE CACHE (10)
		{[]byte{0x9E, 0x10}, nil, resvAllowed},                          // READ CAPACITY (16)
		{[]byte{0xA3, 0x0A}, nil, resvAllowed},                          // REPORT TARGET PORT GROUPS
		{[]byte{0xA3, 0x0C}, nil, resvRead},                             // REPORT SUPPORTED OPERATION CODES
		{[]byte{0x1E, 0, 0, 0, 0, 0}, nil, resvAllowed},                 // PREVENT ALLOW, PREVENT 0
		{[]byte{0x1E, 0, 0, 0, 1, 0}, nil, resvWrite},                   // PREVENT ALLOW, PREVENT 1
		{[]byte{0x1B, 0, 0, 0, 0x01, 0}, nil, resvAllowed},              // START STOP UNIT, START
		{[]byte{0x1B, 0, 0, 0, 0x00, 0}, nil, resvWrite},                // START STOP UNIT, STOP
		{[]byte{0x1B, 0, 0, 0, 0x11, 0}, nil, resvWrite},                // START STOP UNIT, POWER CONDITION
		{[]byte{0x7F, 0, 0, 0, 0, 0, 0, 0, 0, 0x0B}, writer, resvWrite}, // WRITE (32) by its flags
		{[]byte{0x5F, 0x01}, nil, resvPersistent},
		{[]byte{0x16, 0}, nil, resvReserve},
	} {
		assert.Equal(t, tc.want, reservationClass(tc.cdb, tc.d).kind, "% x", tc.cdb)
	}
}

// TestSPC2Reservations checks RESERVE and RELEASE, and how they meet
// persistent reservations (SPC-2 5.5.1, SPC-4 5.12.3).
func TestSPC2Reservations(t *testing.T) {
	b := newPRBench(t)
	H, R := b.nexuses["H"], b.nexuses["R"]
	require.NoError(t, b.lu.Reserve(H))
	require.NoError(t, b.lu.Reserve(H), "the holder reserves again")
	assert.Equal(t, "CONFLICT", outcome(b.lu.Reserve(R)))
	require.NoError(t, b.lu.Release(R), "RELEASE from another I_T nexus does nothing")
	assert.Equal(t, StatusReservationConflict, b.cdb("R", 0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0).Status)
	assert.Equal(t, StatusReservationConflict, b.cdb("R", 0x00, 0, 0, 0, 0, 0).Status, "TEST UNIT READY conflicts too")
	assert.Equal(t, StatusGood, b.cdb("H", 0x2A, 0, 0, 0, 0, 0, 0, 0, 0, 0).Status)
	assert.Equal(t, "CONFLICT", outcome(b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH})),
		"PERSISTENT RESERVE OUT conflicts with a RESERVE reservation")
	require.NoError(t, b.lu.Release(H))
	assert.Equal(t, StatusGood, b.cdb("R", 0x2A, 0, 0, 0, 0, 0, 0, 0, 0, 0).Status)

	// The reservation ends with its I_T nexus and with a reset.
	require.NoError(t, b.lu.Reserve(H))
	H.End()
	require.NoError(t, b.lu.Reserve(R))
	b.lu.Reset(ASCBusDeviceResetFunctionOccurred)
	require.NoError(t, b.lu.Reserve(b.nexuses["O"]))
	require.NoError(t, b.lu.Release(b.nexuses["O"]))

	// With registrations: conflict, except for the holder and, under a
	// registrants only or all registrants type, any registrant; then
	// nothing changes.
	b = newPRBench(t)
	b.setUp(t, PRWriteExclusive)
	assert.Equal(t, "GOOD", outcome(b.lu.Reserve(b.nexuses["H"])))
	assert.Equal(t, "CONFLICT", outcome(b.lu.Reserve(b.nexuses["R"])))
	assert.Equal(t, "CONFLICT", outcome(b.lu.Release(b.nexuses["O"])))
	assert.Empty(t, b.lu.resv.Load().spc2)
	b = newPRBench(t)
	b.setUp(t, PRWriteExclusiveRegistrantsOnly)
	assert.Equal(t, "GOOD", outcome(b.lu.Reserve(b.nexuses["R"])))
	assert.Equal(t, "GOOD", outcome(b.lu.Release(b.nexuses["R"])))
	assert.Equal(t, "CONFLICT", outcome(b.lu.Reserve(b.nexuses["O"])))
	assert.Empty(t, b.lu.resv.Load().spc2)
}

// TestPreemptAndAbort: the preempted I_T nexus's tasks are aborted before
// PREEMPT AND ABORT completes; the preempting nexus's are not.
func TestPreemptAndAbort(t *testing.T) {
	b := newPRBench(t)
	b.setUp(t, PRWriteExclusive)
	b.uas()
	run := func(who string) (*Command, chan struct{}) {
		c := &Command{CDB: []byte{0xC0, 0, 0, 0, 0, 0}, Nexus: b.nexuses[who], Attr: TaskSimple, Tag: 7}
		done := make(chan struct{})
		Submit(c, func(*Command) { close(done) })
		return c, done
	}
	hc, hd := run("H")
	rc, rd := run("R")
	<-b.started
	<-b.started
	require.NoError(t, b.out("R", PROUTRequest{Action: PROUTPreemptAndAbort, Type: PRExclusiveAccess, Key: kR, ServiceActionKey: kH}))
	select {
	case <-hd:
	default:
		t.Fatal("the preempted nexus's task is still running after PREEMPT AND ABORT")
	}
	assert.True(t, hc.Aborted)
	select {
	case <-rd:
		t.Fatal("the preempting nexus's own task was aborted")
	default:
	}
	b.lu.AbortTaskSet(b.nexuses["R"])
	<-rd
	assert.True(t, rc.Aborted)
	assert.Equal(t, "R=2000* type=3", b.state())
	// REGISTRATIONS PREEMPTED, then COMMANDS CLEARED BY ANOTHER INITIATOR
	// for the task it lost; R's own abort (ABORT TASK SET) gives none.
	assert.Equal(t, "H:2A05 H:2F00", b.uas())
}

// TestPreemptAndAbortAbortedWhileWaiting: a PREEMPT AND ABORT that is
// itself aborted while it waits for a preempted task (one that ends only
// after the PREEMPT AND ABORT does, as another PREEMPT AND ABORT waiting
// for it would) stops waiting instead of deadlocking.
func TestPreemptAndAbortAbortedWhileWaiting(t *testing.T) {
	b := newPRBench(t)
	b.setUp(t, PRWriteExclusive)
	b.uas()
	stubborn := &Command{CDB: []byte{0xC8, 0, 0, 0, 0, 0}, Nexus: b.nexuses["H"], Attr: TaskSimple, Tag: 9}
	hd := make(chan struct{})
	Submit(stubborn, func(*Command) { close(hd) })
	<-b.started

	ctx, abort := context.WithCancel(context.Background())
	pa := &Command{Nexus: b.nexuses["R"], ctx: ctx}
	done := make(chan error, 1)
	go func() {
		done <- b.lu.PersistentReserveOut(pa, &PROUTRequest{Action: PROUTPreemptAndAbort, Type: PRExclusiveAccess, Key: kR, ServiceActionKey: kH})
	}()
	select {
	case <-done:
		t.Fatal("PREEMPT AND ABORT returned while a preempted task was still running")
	case <-time.After(50 * time.Millisecond):
	}
	abort()
	select {
	case err := <-done:
		require.NoError(t, err, "the reservation changed before the wait")
	case <-time.After(10 * time.Second):
		t.Fatal("an aborted PREEMPT AND ABORT kept waiting for the task it aborted")
	}
	close(b.release)
	<-hd
	assert.True(t, stubborn.Aborted)
	assert.Equal(t, "R=2000* type=3", b.state())
}

// TestReviewPreemptAndAbortNoUAForLostNexus: a nexus that PREEMPT AND
// ABORT took tasks from, and that was lost while the PREEMPT AND ABORT
// still waited for another nexus's task, gets no COMMANDS CLEARED BY
// ANOTHER INITIATOR queued after its state was forgotten: that entry
// would outlive the nexus (one per nexus a peer can make and lose) and
// come before I_T NEXUS LOSS OCCURRED when it returns.
func TestReviewPreemptAndAbortNoUAForLostNexus(t *testing.T) {
	b := newPRBench(t)
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH}))
	require.NoError(t, b.out("O", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH}))
	require.NoError(t, b.out("R", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kR}))
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTReserve, Type: PRWriteExclusive, Key: kH}))
	b.uas()
	hc, oc, hd, od := b.stubbornHO()

	done := make(chan error, 1)
	go func() {
		done <- b.out("R", PROUTRequest{Action: PROUTPreemptAndAbort, Type: PRExclusiveAccess, Key: kR, ServiceActionKey: kH})
	}()
	<-hc.Context().Done() // both aborted: the PREEMPT AND ABORT waits for them
	<-oc.Context().Done()
	assert.Equal(t, "R=2000* type=3", b.state())
	// H's task ends and H's nexus is lost while the PREEMPT AND ABORT
	// still waits for O's task.
	close(b.release)
	<-hd
	b.lu.nexusLost(b.nexuses["H"])
	close(b.release2)
	<-od
	require.NoError(t, <-done)

	b.lu.mu.Lock()
	_, stale := b.lu.ua[b.nexuses["H"].Key()]
	b.lu.mu.Unlock()
	assert.False(t, stale, "a unit attention was queued for the lost nexus H")
	assert.Equal(t, "O:2A05 O:2F00", b.uas())
}

// TestRegisterSpecIPTAndAllTargetPorts registers TransportIDs with
// SPEC_I_PT, on every target port with ALL_TG_PT, and bounds the number
// of registrations.
func TestRegisterSpecIPTAndAllTargetPorts(t *testing.T) {
	b := newPRBench(t)
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, SpecIPT: true,
		TransportIDs: []TransportID{{Name: "iqn.2025-01.io.odxtgt:r", ISID: "000000000002"}, {Name: "iqn.2025-01.io.odxtgt:o"},
			{Name: "iqn.2025-01.io.odxtgt:h", ISID: "000000000001"}}}))
	assert.Equal(t, "H=1000 R=1000 O=1000 type=0", b.state(), "the TransportID naming the sender itself adds nothing")
	// A format 00b registration covers every port of the initiator.
	o2 := NewNexus(Nexus{InitiatorName: "iqn.2025-01.io.odxtgt:o", InitiatorPort: "iqn.2025-01.io.odxtgt:o,i,0x00000000abcd", TargetPort: tport}, nil, nil)
	assert.GreaterOrEqual(t, b.lu.resv.Load().pr.find(o2), 0)

	b = newPRBench(t)
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, AllTargetPorts: true}))
	st := b.lu.Reservations()
	require.Len(t, st.Registrations, 2)
	assert.Equal(t, []uint16{1, 2}, []uint16{st.Registrations[0].RelativePortID, st.Registrations[1].RelativePortID})
	assert.True(t, st.Registrations[1].AllTargetPorts)
	// Unregistering removes both.
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, Key: kH}))
	assert.Empty(t, b.lu.Reservations().Registrations)

	// Bounded: past maxRegistrations nothing is registered.
	var tids []TransportID
	for i := range maxRegistrations {
		tids = append(tids, TransportID{Name: fmt.Sprintf("iqn.2025-01.io.odxtgt:n%d", i)})
	}
	err := b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, SpecIPT: true, TransportIDs: tids})
	assert.Equal(t, "5504", outcome(err))
	assert.Empty(t, b.lu.Reservations().Registrations)
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, SpecIPT: true, TransportIDs: tids[1:]}))
	assert.Len(t, b.lu.Reservations().Registrations, maxRegistrations)
	assert.Equal(t, "5504", outcome(b.out("R", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kR})))
}

// TestAPTPLWithoutStateFile: APTPL is refused where nothing can persist.
func TestAPTPLWithoutStateFile(t *testing.T) {
	b := newPRBench(t)
	err := b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH, APTPL: true})
	var s *Sense
	require.ErrorAs(t, err, &s)
	assert.Equal(t, ASCInvalidFieldInParameterList, s.Code)
	assert.Equal(t, [3]byte{0x88, 0, 20}, s.SenseKeySpecific)
	assert.False(t, b.lu.Reservations().Persistable)
}

// TestRunInternalReservations: an internal task is checked as a READ or a
// WRITE from its nexus would be, and a conflict ends the command it serves
// with RESERVATION CONFLICT whatever the handler returns.
func TestRunInternalReservations(t *testing.T) {
	b := newPRBench(t)
	b.setUp(t, PRWriteExclusive)
	b.uas()
	nop := func(context.Context) error { return nil }
	err := RunInternal(context.Background(), b.nexuses["O"], []Access{{LU: b.lu, Blocks: 1, Write: true}}, nop)
	var se *StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, StatusReservationConflict, se.Status)
	require.NoError(t, RunInternal(context.Background(), b.nexuses["O"], []Access{{LU: b.lu, Blocks: 1}}, nop))
	require.NoError(t, RunInternal(context.Background(), b.nexuses["H"], []Access{{LU: b.lu, Blocks: 1, Write: true}}, nop))

	c := b.cdb("O", 0xC6, 1, 0, 0, 0, 0)
	assert.Equal(t, StatusReservationConflict, c.Status)
	assert.Empty(t, c.Sense)
	assert.Equal(t, StatusGood, b.cdb("O", 0xC6, 0, 0, 0, 0, 0).Status, "reading is allowed")
	assert.Equal(t, StatusGood, b.cdb("H", 0xC6, 1, 0, 0, 0, 0).Status)
}

// TestHostileInitiatorNameUA: an initiator whose name holds "|" and
// ",i,0x" still gets the unit attentions owed to its registration.
func TestHostileInitiatorNameUA(t *testing.T) {
	b := newPRBench(t)
	const iname = "iqn.2025-01.io.odxtgt:e|v,i,0x1"
	e := NewNexus(Nexus{InitiatorName: iname, InitiatorPort: iname + ",i,0x400001370000",
		TargetPort: tport, RelativePortID: 1}, map[uint64]*LU{0: b.lu}, nil)
	b.nexuses["E"] = e
	b.cdb("E", 0, 0, 0, 0, 0, 0) // the power-on unit attention
	require.NoError(t, b.out("E", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kR}))
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTRegister, ServiceActionKey: kH}))
	require.NoError(t, b.out("H", PROUTRequest{Action: PROUTClear, Key: kH}))
	s := b.lu.TakeUA(e)
	require.NotNil(t, s)
	assert.Equal(t, ASCReservationsPreempted, s.Code)
}

// stubbornHO starts a STUBBORN (C8h) from H and a C9h from O and waits
// until both run; hd and od close when they end.
func (b *prBench) stubbornHO() (hc, oc *Command, hd, od chan struct{}) {
	hd, od = make(chan struct{}), make(chan struct{})
	hc = &Command{CDB: []byte{0xC8, 0, 0, 0, 0, 0}, Nexus: b.nexuses["H"], Attr: TaskSimple, Tag: 1}
	oc = &Command{CDB: []byte{0xC9, 0, 0, 0, 0, 0}, Nexus: b.nexuses["O"], Attr: TaskSimple, Tag: 2}
	Submit(hc, func(*Command) { close(hd) })
	Submit(oc, func(*Command) { close(od) })
	<-b.started
	<-b.started
	return hc, oc, hd, od
}

// TestReviewClearTaskSetNoUAForLostNexus: CLEAR TASK SET has the same
// wait as PREEMPT AND ABORT; a nexus lost during it gets no COMMANDS
// CLEARED BY ANOTHER INITIATOR queued after its state was forgotten.
func TestReviewClearTaskSetNoUAForLostNexus(t *testing.T) {
	b := newPRBench(t)
	b.uas()
	hc, oc, hd, od := b.stubbornHO()
	cleared := make(chan struct{})
	go func() {
		b.lu.ClearTaskSet(b.nexuses["R"])
		close(cleared)
	}()
	<-hc.Context().Done() // both aborted: the clear waits for them
	<-oc.Context().Done()
	close(b.release)
	<-hd
	b.lu.nexusLost(b.nexuses["H"])
	close(b.release2)
	<-od
	<-cleared

	b.lu.mu.Lock()
	_, stale := b.lu.ua[b.nexuses["H"].Key()]
	b.lu.mu.Unlock()
	assert.False(t, stale, "a unit attention was queued for the lost nexus H")
	assert.Equal(t, "O:2F00", b.uas())
}
