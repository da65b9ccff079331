package scsi

// SPC-2 reservations: RESERVE and RELEASE (6) and (10) (SPC-2 5.5.1,
// 7.21, 7.22), with the exceptions SPC-4 5.12.3 makes for logical units
// that also implement persistent reservations (CRH set in REPORT
// CAPABILITIES). The reservation belongs to one I_T nexus and reserves
// the whole logical unit; third-party and extent reservations are not
// implemented (the usage masks refuse their bits).

// Reserve is RESERVE (6) or (10) from nexus n. While an I_T nexus is
// registered for a persistent reservation the command conflicts, except
// that it completes with GOOD and changes nothing when n holds the
// persistent reservation, or is registered and the reservation is of a
// registrants only or all registrants type (SPC-4 5.12.3). Otherwise it
// conflicts when another I_T nexus holds the SPC-2 reservation, and
// reserves the logical unit for n (again) when none or n does.
func (lu *LU) Reserve(n *Nexus) error {
	lu.prMu.Lock()
	defer lu.prMu.Unlock()
	cur := lu.resv.Load()
	if len(cur.pr.regs) > 0 {
		return crhException(cur.pr, n, "RESERVE")
	}
	if cur.spc2 != "" && cur.spc2 != n.Key() {
		return ReservationConflict("RESERVE while %s", cur.describe())
	}
	if cur.spc2 == "" {
		lu.resv.Store(&resvState{pr: cur.pr, spc2: n.Key()})
		lu.Log.Debug("reserved (SPC-2)", "by", n.InitiatorPort)
	}
	return nil
}

// Release is RELEASE (6) or (10) from nexus n: it ends n's SPC-2
// reservation, and from any other I_T nexus completes with GOOD and does
// nothing (SPC-2 5.5.1). Registrations for persistent reservations make
// it conflict with the same exceptions as Reserve.
func (lu *LU) Release(n *Nexus) error {
	lu.prMu.Lock()
	defer lu.prMu.Unlock()
	cur := lu.resv.Load()
	if len(cur.pr.regs) > 0 {
		return crhException(cur.pr, n, "RELEASE")
	}
	if cur.spc2 == n.Key() {
		lu.resv.Store(&resvState{pr: cur.pr})
		lu.Log.Debug("released (SPC-2)", "by", n.InitiatorPort)
	}
	return nil
}

// crhException decides a RESERVE or RELEASE received while registrations
// exist (SPC-4 5.12.3).
func crhException(p *prState, n *Nexus, what string) error {
	if i := p.find(n); i >= 0 && (p.holds(i) || p.typ.RegistrantsOnly()) {
		return nil
	}
	return ReservationConflict("%s while I_T nexuses are registered for persistent reservations", what)
}

// releaseSPC2 ends the SPC-2 reservation when key holds it, or whoever
// holds it when key is empty.
func (lu *LU) releaseSPC2(key string) {
	lu.prMu.Lock()
	defer lu.prMu.Unlock()
	cur := lu.resv.Load()
	if cur.spc2 != "" && (key == "" || cur.spc2 == key) {
		lu.resv.Store(&resvState{pr: cur.pr})
	}
}

// reservationEvents ends the SPC-2 reservation of a logical unit when the
// I_T nexus holding it ends or the logical unit is reset (SPC-2 5.5.1;
// persistent reservations survive both, SPC-4 5.12.1), then passes the
// event on.
type reservationEvents struct {
	lu   *LU
	next NexusEvents
}

func (e reservationEvents) NexusLost(lu *LU, n *Nexus) {
	e.lu.releaseSPC2(n.Key())
	if e.next != nil {
		e.next.NexusLost(lu, n)
	}
}

func (e reservationEvents) TaskSetAborted(lu *LU, n *Nexus) {
	if e.next != nil {
		e.next.TaskSetAborted(lu, n)
	}
}

func (e reservationEvents) Reset(lu *LU) {
	e.lu.releaseSPC2("")
	if e.next != nil {
		e.next.Reset(lu)
	}
}
