package scsi

import (
	"fmt"
	"slices"
)

// PROUTAction is a PERSISTENT RESERVE OUT service action (SPC-4 6.16.2).
type PROUTAction byte

// PERSISTENT RESERVE OUT service actions.
const (
	PROUTRegister                  PROUTAction = 0x00
	PROUTReserve                   PROUTAction = 0x01
	PROUTRelease                   PROUTAction = 0x02
	PROUTClear                     PROUTAction = 0x03
	PROUTPreempt                   PROUTAction = 0x04
	PROUTPreemptAndAbort           PROUTAction = 0x05
	PROUTRegisterAndIgnoreExisting PROUTAction = 0x06
	PROUTRegisterAndMove           PROUTAction = 0x07
)

var proutActionNames = [...]string{"REGISTER", "RESERVE", "RELEASE", "CLEAR", "PREEMPT",
	"PREEMPT AND ABORT", "REGISTER AND IGNORE EXISTING KEY", "REGISTER AND MOVE"}

func (a PROUTAction) String() string {
	if int(a) < len(proutActionNames) {
		return proutActionNames[a]
	}
	return fmt.Sprintf("SERVICE ACTION %02Xh", byte(a))
}

// PROUTRequest is a decoded PERSISTENT RESERVE OUT command: the CDB's
// service action and type, and its parameter list (SPC-4 6.16.3, and
// 6.16.4 for REGISTER AND MOVE).
type PROUTRequest struct {
	Action PROUTAction
	// Type is the CDB's TYPE, checked by the caller for the service
	// actions that use it (RESERVE, RELEASE, PREEMPT, PREEMPT AND ABORT).
	Type ReservationType
	// Key is RESERVATION KEY, ServiceActionKey SERVICE ACTION
	// RESERVATION KEY.
	Key, ServiceActionKey uint64
	// SpecIPT, AllTargetPorts and APTPL are the parameter list bits;
	// Unregister is UNREG of REGISTER AND MOVE.
	SpecIPT, AllTargetPorts, APTPL, Unregister bool
	// TransportIDs are the initiators SPEC_I_PT names; for REGISTER AND
	// MOVE exactly one, the destination, on RelativePortID.
	TransportIDs   []TransportID
	RelativePortID uint16
}

// aptplOffset is the parameter list byte holding APTPL.
func (r *PROUTRequest) aptplOffset() int {
	if r.Action == PROUTRegisterAndMove {
		return 17
	}
	return 20
}

// prNotice is a unit attention owed to the I_T nexuses of a registration.
type prNotice struct {
	reg  Registration
	code ASC
}

// prEffects is what a service action did besides changing the state.
type prEffects struct {
	changed   bool
	notices   []prNotice
	preempted []Registration // registrations PREEMPT (AND ABORT) removed
}

func (fx *prEffects) notify(r Registration, code ASC) {
	fx.notices = append(fx.notices, prNotice{r, code})
}

// PersistentReserveOut performs a PERSISTENT RESERVE OUT service action
// received as cmd (SPC-4 5.12.7-5.12.11, 6.16). It returns nil for GOOD,
// a *StatusError for RESERVATION CONFLICT or a *Sense. The new state is
// written to the state file while APTPL is in effect before it is
// installed; unit attentions go to the I_T nexuses concerned; PREEMPT AND
// ABORT returns once the preempted nexuses' tasks have ended.
func (lu *LU) PersistentReserveOut(cmd *Command, req *PROUTRequest) error {
	n := cmd.Nexus
	lu.prMu.Lock()
	cur := lu.resv.Load()
	if cur.spc2 != "" {
		lu.prMu.Unlock()
		return ReservationConflict("%s while %s", req.Action, cur.describe())
	}
	if req.APTPL && lu.prFile == "" {
		switch req.Action {
		case PROUTRegister, PROUTRegisterAndIgnoreExisting, PROUTRegisterAndMove:
			lu.prMu.Unlock()
			// SPC-4 6.16.3: APTPL set where persistence is not
			// supported (PTPL_C zero).
			return InvalidFieldInParameterList(req.aptplOffset(), 0).
				WithReason("APTPL: no state file for logical unit %s", lu.Identity.Name)
		}
	}
	next := cur.pr.clone()
	var fx prEffects
	if err := next.apply(n, req, lu.portsFor(n), &fx); err != nil {
		lu.prMu.Unlock()
		return err
	}
	if fx.changed {
		if err := lu.persist(cur.pr, next); err != nil {
			lu.prMu.Unlock()
			lu.Log.Error("cannot save the persistent reservation state", "file", lu.prFile, "err", err)
			return InternalTargetFailure().WithReason("saving %s: %v", lu.prFile, err)
		}
		lu.resv.Store(&resvState{pr: next, spc2: cur.spc2})
		lu.deliver(n, fx.notices)
		lu.Log.Info("persistent reservation changed", "action", req.Action.String(), "from", n.InitiatorPort,
			"registrations", len(next.regs), "type", next.typ.String(), "generation", next.generation)
	}
	lu.prMu.Unlock()
	if req.Action == PROUTPreemptAndAbort && len(fx.preempted) > 0 {
		lu.abortPreempted(cmd, fx.preempted)
	}
	return nil
}

// portsFor returns the target ports of the logical unit, the nexus's own
// first-class among them even when the configuration named none.
func (lu *LU) portsFor(n *Nexus) []TargetPortID {
	own := TargetPortID{Name: n.TargetPort, RelativeID: n.RelativePortID}
	if !slices.ContainsFunc(lu.ports, func(p TargetPortID) bool { return p.Name == own.Name }) {
		return append([]TargetPortID{own}, lu.ports...)
	}
	return lu.ports
}

// deliver queues the unit attentions of notices for every I_T nexus that
// has used the logical unit and whose registration it is, except the one
// the command came from. I_T nexuses not connected learn of changes from
// the I_T NEXUS LOSS OCCURRED they get on their return.
func (lu *LU) deliver(from *Nexus, notices []prNotice) {
	if len(notices) == 0 {
		return
	}
	lu.mu.Lock()
	defer lu.mu.Unlock()
	for key := range lu.seen {
		if key == from.Key() {
			continue
		}
		for _, nt := range notices {
			if nt.reg.matchesKey(key) {
				lu.queueUALocked(key, nt.code)
			}
		}
	}
}

// abortPreempted aborts every task of the I_T nexuses whose registrations
// PREEMPT AND ABORT removed, except the PREEMPT AND ABORT itself, and
// waits for them to end; copies those nexuses run in the background on
// this logical unit are aborted too (SPC-4 5.12.11.2.6). A nexus that
// lost tasks also gets COMMANDS CLEARED BY ANOTHER INITIATOR, as TAS is
// zero (SAM-5 5.6: commands aborted by another I_T nexus). The wait ends
// early if the PREEMPT AND ABORT is aborted itself: two of them from
// nexuses that preempt each other (one re-registered in between) would
// otherwise each wait for the other forever.
func (lu *LU) abortPreempted(cmd *Command, regs []Registration) {
	match := func(key string) bool {
		return slices.ContainsFunc(regs, func(r Registration) bool { return r.matchesKey(key) })
	}
	waits, keys := lu.abortMatching(func(t *task) bool { return t.cmd != cmd && match(t.key) })
	waitUnless(cmd.Context(), waits)
	lu.mu.Lock()
	for key := range keys {
		// A nexus lost during the wait has had its state forgotten: a
		// unit attention queued now would outlive it.
		if lu.seen[key] && (cmd.Nexus == nil || key != cmd.Nexus.Key()) {
			lu.queueUALocked(key, ASCCommandsClearedByAnotherInit)
		}
	}
	if lu.events == nil {
		lu.mu.Unlock()
		return
	}
	for key := range lu.seen {
		if match(key) {
			keys[key] = true
		}
	}
	lu.mu.Unlock()
	for key := range keys {
		lu.events.TaskSetAborted(lu, &Nexus{key: key})
	}
}

// apply performs one service action on p, a copy of the current state.
// ports are the target ports ALL_TG_PT and REGISTER AND MOVE may name.
func (p *prState) apply(n *Nexus, req *PROUTRequest, ports []TargetPortID, fx *prEffects) error {
	switch req.Action {
	case PROUTRegister, PROUTRegisterAndIgnoreExisting:
		return p.register(n, req, ports, fx)
	}
	// Every other service action needs a registered I_T nexus and its
	// reservation key (SPC-4 5.12.1: RESERVATION CONFLICT otherwise).
	i := p.find(n)
	if i < 0 {
		return ReservationConflict("%s from an unregistered I_T nexus", req.Action)
	}
	if req.Key != p.regs[i].Key {
		return ReservationConflict("%s with reservation key %016x, registered %016x", req.Action, req.Key, p.regs[i].Key)
	}
	switch req.Action {
	case PROUTReserve:
		return p.reserve(i, req, fx)
	case PROUTRelease:
		return p.releaseBy(i, req, fx)
	case PROUTClear:
		p.clear(i, fx)
		return nil
	case PROUTPreempt, PROUTPreemptAndAbort:
		return p.preempt(i, req, fx)
	case PROUTRegisterAndMove:
		return p.registerAndMove(n, i, req, ports, fx)
	}
	return InvalidFieldInCDB(1, 4).WithReason("service action %s", req.Action)
}

// register is REGISTER and REGISTER AND IGNORE EXISTING KEY (SPC-4
// 5.12.7, tables "Register behaviors for a REGISTER service action" and
// "... REGISTER AND IGNORE EXISTING KEY ...").
func (p *prState) register(n *Nexus, req *PROUTRequest, ports []TargetPortID, fx *prEffects) error {
	ignore := req.Action == PROUTRegisterAndIgnoreExisting
	i := p.find(n)
	if i < 0 {
		if !ignore && req.Key != 0 {
			return ReservationConflict("REGISTER from an unregistered I_T nexus with reservation key %016x", req.Key)
		}
		if req.ServiceActionKey == 0 {
			return nil // nothing to register: GOOD, nothing changes
		}
		self := initiatorOf(n)
		targets := []TargetPortID{{Name: n.TargetPort, RelativeID: n.RelativePortID}}
		if req.AllTargetPorts {
			targets = ports
		}
		var add []Registration
		addFor := func(who TransportID) {
			for _, tp := range targets {
				r := Registration{Key: req.ServiceActionKey, Initiator: who, TargetPort: tp.Name,
					RelativePortID: tp.RelativeID, AllTargetPorts: req.AllTargetPorts}
				// An I_T nexus already registered keeps its registration
				// (SPEC_I_PT naming it again is not an error).
				dup := func(o Registration) bool { return o.sameRegistrant(&r) }
				if slices.ContainsFunc(p.regs, dup) || slices.ContainsFunc(add, dup) {
					continue
				}
				add = append(add, r)
			}
		}
		addFor(self)
		for _, t := range req.TransportIDs {
			addFor(t)
		}
		if len(p.regs)+len(add) > maxRegistrations {
			// SPC-4 6.16.3: no registration is made when one fails.
			return NewSense(IllegalRequest, ASCInsufficientRegistrationResources).
				WithReason("%d registrations, %d more asked, at most %d", len(p.regs), len(add), maxRegistrations)
		}
		p.regs = append(p.regs, add...)
		p.aptpl = req.APTPL
		p.generation++
		fx.changed = true
		return nil
	}
	if !ignore && req.Key != p.regs[i].Key {
		return ReservationConflict("REGISTER with reservation key %016x, registered %016x", req.Key, p.regs[i].Key)
	}
	if req.SpecIPT {
		// SPC-4 5.12.7: SPEC_I_PT from a registered I_T nexus.
		return InvalidFieldInParameterList(20, 3).WithReason("SPEC_I_PT from a registered I_T nexus")
	}
	group := p.group(i)
	if req.ServiceActionKey != 0 {
		for _, j := range group {
			p.regs[j].Key = req.ServiceActionKey
		}
	} else {
		p.unregister(group, fx)
	}
	p.aptpl = req.APTPL
	p.generation++
	fx.changed = true
	return nil
}

// group returns registration i and, when it was made with ALL_TG_PT, the
// registrations made with it on the other target ports: a change of key
// or an unregistration applies to all of them.
func (p *prState) group(i int) []int {
	g := []int{i}
	if !p.regs[i].AllTargetPorts {
		return g
	}
	for j := range p.regs {
		if j != i && p.regs[j].AllTargetPorts && p.regs[j].Initiator == p.regs[i].Initiator {
			g = append(g, j)
		}
	}
	return g
}

// unregister removes the registrations at idx (SPC-4 5.12.11.3): a holder
// losing its registration releases the reservation, with RESERVATIONS
// RELEASED for the remaining registrants of a registrants only type; an
// all registrants reservation lasts while any registrant remains.
func (p *prState) unregister(idx []int, fx *prEffects) {
	wasHolder := false
	for _, j := range idx {
		wasHolder = wasHolder || p.regs[j].holder
	}
	p.regs = removeIndexes(p.regs, idx)
	switch {
	case p.typ == 0:
	case p.typ.AllRegistrants():
		if len(p.regs) == 0 {
			p.release()
		}
	case wasHolder:
		typ := p.typ
		p.release()
		if typ.RegistrantsOnly() {
			for _, r := range p.regs {
				fx.notify(r, ASCReservationsReleased)
			}
		}
	}
}

func removeIndexes(regs []Registration, idx []int) []Registration {
	out := regs[:0:0]
	for j, r := range regs {
		if !slices.Contains(idx, j) {
			out = append(out, r)
		}
	}
	return out
}

// reserve is RESERVE (SPC-4 5.12.9): only one persistent reservation
// exists; its holder asking again for the same type changes nothing, for
// another type or from another I_T nexus it conflicts. RESERVE does not
// advance PRGENERATION.
func (p *prState) reserve(i int, req *PROUTRequest, fx *prEffects) error {
	if p.typ != 0 {
		if !p.holds(i) {
			return ReservationConflict("RESERVE while another I_T nexus holds a %s reservation", p.typ)
		}
		if p.typ != req.Type {
			return ReservationConflict("RESERVE %s by the holder of a %s reservation", req.Type, p.typ)
		}
		return nil
	}
	p.typ = req.Type
	if !req.Type.AllRegistrants() {
		p.regs[i].holder = true
	}
	fx.changed = true
	return nil
}

// releaseBy is RELEASE (SPC-4 5.12.11.2): from a registrant that holds no
// reservation it does nothing; from the holder with another type it is
// INVALID RELEASE OF PERSISTENT RESERVATION; otherwise the reservation
// goes, registrations stay, and for registrants only and all registrants
// types the other registrants get RESERVATIONS RELEASED.
func (p *prState) releaseBy(i int, req *PROUTRequest, fx *prEffects) error {
	if p.typ == 0 || !p.holds(i) {
		return nil
	}
	if req.Type != p.typ {
		return NewSense(IllegalRequest, ASCInvalidReleaseOfPR).
			WithReason("RELEASE %s of a %s reservation", req.Type, p.typ)
	}
	typ := p.typ
	p.release()
	if typ.RegistrantsOnly() || typ.AllRegistrants() {
		for j, r := range p.regs {
			if j != i {
				fx.notify(r, ASCReservationsReleased)
			}
		}
	}
	fx.changed = true
	return nil
}

// clear is CLEAR (SPC-4 5.12.11.6): the reservation and every
// registration go, the other registrants get RESERVATIONS PREEMPTED.
// Nothing is left to persist, so APTPL ends too.
func (p *prState) clear(i int, fx *prEffects) {
	for j, r := range p.regs {
		if j != i {
			fx.notify(r, ASCReservationsPreempted)
		}
	}
	p.regs = nil
	p.release()
	p.aptpl = false
	p.generation++
	fx.changed = true
}

// preempt is PREEMPT and PREEMPT AND ABORT (SPC-4 5.12.11.2.4-5.12.11.2.6,
// table "Preempting actions"). The caller aborts the preempted nexuses'
// tasks for PREEMPT AND ABORT.
func (p *prState) preempt(i int, req *PROUTRequest, fx *prEffects) error {
	sark := req.ServiceActionKey
	caller := p.regs[i]
	all := p.typ.AllRegistrants()
	if !all && sark == 0 {
		return InvalidFieldInParameterList(8, -1).WithReason("%s with a zero service action reservation key", req.Action)
	}
	drop := func(keep func(j int, r Registration) bool) {
		out := p.regs[:0:0]
		for j, r := range p.regs {
			if keep(j, r) {
				out = append(out, r)
				continue
			}
			fx.preempted = append(fx.preempted, r)
			if !r.sameRegistrant(&caller) {
				fx.notify(r, ASCRegistrationsPreempted)
			}
		}
		p.regs = out
	}
	switch h := p.holderIndex(); {
	case all && sark == 0:
		// Every other registration goes and the caller holds the new
		// reservation.
		drop(func(j int, _ Registration) bool { return j == i })
		p.establish(0, req.Type)
	case all || p.typ == 0 || p.regs[h].Key != sark:
		// No reservation changes: the registrations with the key go
		// (the caller's own too, except under an all registrants
		// type, where it is a holder).
		matched := false
		drop(func(j int, r Registration) bool {
			if r.Key != sark {
				return true
			}
			matched = true
			return all && j == i
		})
		if !matched {
			return ReservationConflict("%s: no registration has key %016x", req.Action, sark)
		}
	default:
		// The key is the holder's: its reservation goes, the
		// registrations with the key go except the caller's, the
		// caller holds a reservation of the new type.
		old := p.typ
		drop(func(j int, r Registration) bool { return j == i || r.Key != sark })
		p.release()
		p.establish(slices.IndexFunc(p.regs, func(r Registration) bool { return r.sameRegistrant(&caller) }), req.Type)
		if old != req.Type {
			for _, r := range p.regs {
				if !r.sameRegistrant(&caller) {
					fx.notify(r, ASCReservationsReleased)
				}
			}
		}
	}
	p.generation++
	fx.changed = true
	return nil
}

// establish makes registration i the holder of a reservation of type t.
func (p *prState) establish(i int, t ReservationType) {
	p.release()
	p.typ = t
	if !t.AllRegistrants() {
		p.regs[i].holder = true
	}
}

// registerAndMove is REGISTER AND MOVE (SPC-4 5.12.8): the holder of a
// reservation that is not of an all registrants type registers another
// I_T nexus with the service action reservation key and moves the
// reservation, of the same type, to it; with UNREG it unregisters
// itself.
func (p *prState) registerAndMove(n *Nexus, i int, req *PROUTRequest, ports []TargetPortID, fx *prEffects) error {
	if req.ServiceActionKey == 0 {
		return InvalidFieldInParameterList(8, -1).WithReason("REGISTER AND MOVE with a zero service action reservation key")
	}
	if p.typ == 0 || !p.holds(i) {
		return ReservationConflict("REGISTER AND MOVE from an I_T nexus that holds no reservation")
	}
	if p.typ.AllRegistrants() {
		return ReservationConflict("REGISTER AND MOVE of a %s reservation", p.typ)
	}
	if len(req.TransportIDs) != 1 {
		return InvalidFieldInParameterList(24, -1).WithReason("REGISTER AND MOVE needs one TransportID")
	}
	dest := req.TransportIDs[0]
	pi := slices.IndexFunc(ports, func(tp TargetPortID) bool { return tp.RelativeID == req.RelativePortID })
	if pi < 0 {
		return InvalidFieldInParameterList(18, -1).WithReason("no target port with relative identifier %d", req.RelativePortID)
	}
	// Only the I_T nexus the command came in on is refused as the
	// destination (SPC-4 REGISTER AND MOVE): the same initiator port
	// through another target port is a move.
	self := initiatorOf(n)
	if dest.Name == self.Name && (dest.ISID == "" || dest.ISID == self.ISID) && ports[pi].Name == n.TargetPort {
		return InvalidFieldInParameterList(24, -1).WithReason("REGISTER AND MOVE to the I_T nexus it came from")
	}
	r := Registration{Key: req.ServiceActionKey, Initiator: dest, TargetPort: ports[pi].Name, RelativePortID: ports[pi].RelativeID}
	d := slices.IndexFunc(p.regs, func(o Registration) bool { return o.sameRegistrant(&r) })
	if d < 0 {
		if len(p.regs) >= maxRegistrations {
			return NewSense(IllegalRequest, ASCInsufficientRegistrationResources).
				WithReason("%d registrations, at most %d", len(p.regs), maxRegistrations)
		}
		p.regs = append(p.regs, r)
		d = len(p.regs) - 1
	} else {
		p.regs[d].Key = req.ServiceActionKey
	}
	typ := p.typ
	p.establish(d, typ)
	if req.Unregister {
		p.regs = removeIndexes(p.regs, []int{i})
	}
	p.aptpl = req.APTPL
	p.generation++
	fx.changed = true
	return nil
}
