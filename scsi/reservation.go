package scsi

import (
	"fmt"
	"slices"
	"strings"
)

// Reservations. A logical unit holds two kinds (SPC-4 5.12):
//
//   - persistent reservations (PERSISTENT RESERVE IN and OUT): reservation
//     keys registered per I_T nexus, at most one persistent reservation of
//     one of six types, and a generation counter; optionally preserved
//     across a restart in a state file (APTPL, see reservation_store.go);
//   - the SPC-2 reservation of RESERVE and RELEASE (6) and (10), held by
//     one I_T nexus until it releases it, its nexus ends or the logical
//     unit is reset; odxtgt implements SPC-4's compatible reservation
//     handling (CRH, SPC-4 5.12.3) between the two.
//
// The state is an immutable value swapped atomically: the dispatcher
// (reservationCheck, called for every command) and the internal tasks of
// copies read it without a lock, while the service actions that change it
// are serialized by LU.prMu, which is held while a new state is written to
// the state file and before it is installed, so the file never lags what
// initiators have been told.

// ReservationType is the TYPE of a persistent reservation (SPC-4 6.16.2,
// table "Persistent reservation type codes").
type ReservationType byte

// Persistent reservation types.
const (
	PRWriteExclusive                 ReservationType = 0x1
	PRExclusiveAccess                ReservationType = 0x3
	PRWriteExclusiveRegistrantsOnly  ReservationType = 0x5
	PRExclusiveAccessRegistrantsOnly ReservationType = 0x6
	PRWriteExclusiveAllRegistrants   ReservationType = 0x7
	PRExclusiveAccessAllRegistrants  ReservationType = 0x8
)

var reservationTypeNames = map[ReservationType]string{
	PRWriteExclusive:                 "WRITE EXCLUSIVE",
	PRExclusiveAccess:                "EXCLUSIVE ACCESS",
	PRWriteExclusiveRegistrantsOnly:  "WRITE EXCLUSIVE - REGISTRANTS ONLY",
	PRExclusiveAccessRegistrantsOnly: "EXCLUSIVE ACCESS - REGISTRANTS ONLY",
	PRWriteExclusiveAllRegistrants:   "WRITE EXCLUSIVE - ALL REGISTRANTS",
	PRExclusiveAccessAllRegistrants:  "EXCLUSIVE ACCESS - ALL REGISTRANTS",
}

func (t ReservationType) String() string {
	if n, ok := reservationTypeNames[t]; ok {
		return n
	}
	if t == 0 {
		return "none"
	}
	return fmt.Sprintf("TYPE(%xh)", byte(t))
}

// Valid reports whether t is one of the six types odxtgt implements (all
// SPC-4 defines; the others are obsolete or reserved).
func (t ReservationType) Valid() bool {
	_, ok := reservationTypeNames[t]
	return ok
}

// AllRegistrants reports an all registrants type: every registered I_T
// nexus is a reservation holder (SPC-4 5.12.9).
func (t ReservationType) AllRegistrants() bool {
	return t == PRWriteExclusiveAllRegistrants || t == PRExclusiveAccessAllRegistrants
}

// RegistrantsOnly reports a registrants only type.
func (t ReservationType) RegistrantsOnly() bool {
	return t == PRWriteExclusiveRegistrantsOnly || t == PRExclusiveAccessRegistrantsOnly
}

// exclusiveAccess reports an exclusive access type: reads conflict too.
func (t ReservationType) exclusiveAccess() bool {
	return t == PRExclusiveAccess || t == PRExclusiveAccessRegistrantsOnly || t == PRExclusiveAccessAllRegistrants
}

// maxRegistrations bounds the registrations a logical unit holds, so the
// memory and state file size a peer can make the target keep is bounded;
// past it PERSISTENT RESERVE OUT gets INSUFFICIENT REGISTRATION RESOURCES
// (SPC-4 5.12.7).
const maxRegistrations = 128

// MaxRegistrations is maxRegistrations for other packages' bounds.
const MaxRegistrations = maxRegistrations

// TransportID names an iSCSI initiator in PERSISTENT RESERVE OUT
// parameter data and READ FULL STATUS (SPC-4 7.6.4.6, protocol identifier
// 5h): an initiator port when ISID is set (format 01b,
// "<name>,i,0x<ISID>"), every initiator port of the initiator device
// named when it is empty (format 00b).
type TransportID struct {
	Name string // iSCSI name, lowercase
	ISID string // 12 lowercase hex digits, or ""
}

func (t TransportID) String() string {
	if t.ISID == "" {
		return t.Name
	}
	return t.Name + ",i,0x" + t.ISID
}

// Registration is one registered I_T nexus: a reservation key for an
// initiator port (or, registered through a format 00b TransportID, for
// every initiator port of an initiator device) and a target port.
type Registration struct {
	Key uint64
	// Initiator is the initiator port, or device when its ISID is empty.
	Initiator TransportID
	// TargetPort is the SCSI target port name ("<iqn>,t,0x<TPGT>"),
	// RelativePortID its relative target port identifier.
	TargetPort     string
	RelativePortID uint16
	// AllTargetPorts records that the registration was made with ALL_TG_PT
	// set, together with one registration on each other target port.
	AllTargetPorts bool

	// holder marks the holder of a reservation that is not of an all
	// registrants type.
	holder bool
}

// initiatorOf returns the initiator port of a nexus as a TransportID:
// InitiatorPort is "<name>,i,0x<ISID>" for iSCSI (RFC 7143 10.1).
func initiatorOf(n *Nexus) TransportID { return portTransportID(n.InitiatorPort) }

// portTransportID splits an initiator port name at its last ",i,0x": a
// login accepts any InitiatorName, which may hold ",i,0x" itself, while
// the ISID the transport appends never does.
func portTransportID(port string) TransportID {
	if i := strings.LastIndex(port, ",i,0x"); i >= 0 {
		return TransportID{Name: port[:i], ISID: strings.ToLower(port[i+len(",i,0x"):])}
	}
	// Not an iSCSI port name: the whole name stands for the port.
	return TransportID{Name: port, ISID: "-"}
}

// covers reports whether the registration's initiator includes the port p.
func (r *Registration) covers(p TransportID) bool {
	if r.Initiator.ISID == "" {
		return r.Initiator.Name == p.Name
	}
	return r.Initiator == p
}

// matches reports whether the registration is the one of nexus n.
func (r *Registration) matches(n *Nexus) bool {
	return r.TargetPort == n.TargetPort && r.covers(initiatorOf(n))
}

// matchesKey reports whether the registration is that of the nexus with
// the given key (see Nexus.Key: "<initiator port>|<target port>").
func (r *Registration) matchesKey(key string) bool {
	// Either name may hold "|" (a login accepts any InitiatorName): match
	// the target port as the key's suffix.
	port, ok := strings.CutSuffix(key, "|"+r.TargetPort)
	return ok && r.covers(portTransportID(port))
}

// sameRegistrant reports whether two registrations are for the same
// initiator (port or device) and target port.
func (r *Registration) sameRegistrant(o *Registration) bool {
	return r.Initiator == o.Initiator && r.TargetPort == o.TargetPort
}

// TargetPortID is one target port through which a logical unit is
// reachable: what ALL_TG_PT registers on and what the RELATIVE TARGET
// PORT IDENTIFIER of REGISTER AND MOVE selects.
type TargetPortID struct {
	Name       string // "<iqn>,t,0x<TPGT>"
	RelativeID uint16
}

// prState is the persistent reservation state of a logical unit.
type prState struct {
	generation uint32
	regs       []Registration // in registration order
	typ        ReservationType
	aptpl      bool
}

func (p *prState) clone() *prState {
	c := *p
	c.regs = slices.Clone(p.regs)
	return &c
}

// find returns the index of nexus n's registration, or -1: one made for
// its initiator port before one made for its initiator device.
func (p *prState) find(n *Nexus) int {
	ip := initiatorOf(n)
	wild := -1
	for i := range p.regs {
		r := &p.regs[i]
		if r.TargetPort != n.TargetPort || !r.covers(ip) {
			continue
		}
		if r.Initiator.ISID != "" {
			return i
		}
		if wild < 0 {
			wild = i
		}
	}
	return wild
}

// holds reports whether registration i holds the persistent reservation.
func (p *prState) holds(i int) bool {
	return p.typ != 0 && (p.typ.AllRegistrants() || p.regs[i].holder)
}

// holderIndex returns the holder of a reservation that is not of an all
// registrants type, or -1.
func (p *prState) holderIndex() int {
	for i := range p.regs {
		if p.regs[i].holder {
			return i
		}
	}
	return -1
}

// release drops the persistent reservation, keeping the registrations.
func (p *prState) release() {
	p.typ = 0
	for i := range p.regs {
		p.regs[i].holder = false
	}
}

// resvState is everything a logical unit knows about reservations.
type resvState struct {
	pr   *prState
	spc2 string // nexus key of the SPC-2 reservation holder, "" for none
}

// idle reports that no reservation restricts any command.
func (s *resvState) idle() bool { return s.spc2 == "" && s.pr.typ == 0 }

// ReservationStatus is a snapshot of a logical unit's persistent
// reservations, what PERSISTENT RESERVE IN reports.
type ReservationStatus struct {
	// Generation is PRGENERATION (SPC-4 6.15.2).
	Generation uint32
	// Registrations are in registration order.
	Registrations []Registration
	// Type is the persistent reservation's type, 0 when there is none.
	Type ReservationType
	// APTPL reports that the state persists across a restart (PTPL_A);
	// Persistable that it can (PTPL_C).
	APTPL, Persistable bool
}

// Holds reports whether registration i holds the persistent reservation:
// every registration for an all registrants type.
func (s *ReservationStatus) Holds(i int) bool {
	return s.Type != 0 && (s.Type.AllRegistrants() || s.Registrations[i].holder)
}

// Reservations returns a snapshot of the persistent reservations.
func (lu *LU) Reservations() ReservationStatus {
	st := lu.resv.Load()
	return ReservationStatus{
		Generation:    st.pr.generation,
		Registrations: slices.Clone(st.pr.regs),
		Type:          st.pr.typ,
		APTPL:         st.pr.aptpl,
		Persistable:   lu.prFile != "",
	}
}

// StatusError ends a command with a status that carries no sense data,
// RESERVATION CONFLICT (SAM-5 5.3). Handlers return it as they return a
// *Sense; Reason is log-only.
type StatusError struct {
	Status Status
	Reason string
	// LU, for a conflict an internal task met (see [RunInternal]), is the
	// logical unit it met it on.
	LU *LU
}

func (e *StatusError) Error() string {
	if e.Reason == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Reason
}

// ReservationConflict returns the error that ends a command with
// RESERVATION CONFLICT.
func ReservationConflict(format string, args ...any) *StatusError {
	return &StatusError{Status: StatusReservationConflict, Reason: fmt.Sprintf(format, args...)}
}

// conflicts reports whether a command of class c (see reservationClass)
// from nexus n conflicts with the reservations: SPC-4 5.12.1 and the
// tables of SPC-4 and SBC-3 ("commands that are allowed in the presence
// of various reservations"), and SPC-2 5.5.1 for the SPC-2 reservation.
func (s *resvState) conflicts(n *Nexus, c resvClass) bool {
	if s.spc2 != "" {
		switch c.kind {
		case resvPersistent:
			// SPC-2 5.5.1: while a RESERVE reservation exists, every
			// PERSISTENT RESERVE IN and OUT conflicts, whoever sends it.
			return true
		case resvReserve:
			return false // the handler decides
		}
		return s.spc2 != n.Key() && !c.spc2Allowed
	}
	p := s.pr
	if p.typ == 0 || c.kind == resvAllowed || c.kind == resvPersistent || c.kind == resvReserve {
		return false
	}
	if i := p.find(n); i >= 0 {
		// The holder, and for registrants only and all registrants
		// types every registered I_T nexus, is allowed everything.
		if p.holds(i) || p.typ.RegistrantsOnly() {
			return false
		}
	}
	if c.kind == resvWrite {
		return true
	}
	return p.typ.exclusiveAccess()
}

// reservationCheck is the dispatcher's check, after the unit attention
// and CDB checks and before the handler: a command that conflicts ends
// with RESERVATION CONFLICT.
func (lu *LU) reservationCheck(cmd *Command, d *CommandDesc) *StatusError {
	st := lu.resv.Load()
	if st.idle() {
		return nil
	}
	if st.conflicts(cmd.Nexus, reservationClass(cmd.CDB, d)) {
		return ReservationConflict("%s from %s conflicts with %s", d.Name, cmd.Nexus.InitiatorPort, st.describe())
	}
	return nil
}

// accessConflict checks an internal task's access to lu on behalf of n
// (RunInternal): a read or a write of the medium.
func (lu *LU) accessConflict(n *Nexus, write bool) *StatusError {
	st := lu.resv.Load()
	if st.idle() {
		return nil
	}
	c := resvClass{kind: resvRead}
	if write {
		c.kind = resvWrite
	}
	if st.conflicts(n, c) {
		op := "read"
		if write {
			op = "write"
		}
		return ReservationConflict("copy %s of %s for %s conflicts with %s", op, lu.Identity.Name, n.InitiatorPort, st.describe())
	}
	return nil
}

func (s *resvState) describe() string {
	if s.spc2 != "" {
		return "the RESERVE reservation of " + s.spc2
	}
	return "a " + s.pr.typ.String() + " persistent reservation"
}
