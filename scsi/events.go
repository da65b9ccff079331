package scsi

// NexusEvents is told when state that belongs to an I_T nexus, or to a
// logical unit's task set, ends outside the command that created it: the
// copy manager implements it to abort copies and drop the list state of a
// nexus that is gone. Methods are called after the tasks concerned have
// ended, on the goroutine of the transport or task management function
// that caused the event, never with a logical unit's lock held; they must
// not block for long.
type NexusEvents interface {
	// NexusLost reports that the I_T nexus n ended (logout, connection
	// loss, session reinstatement, SAM-5 6.3.4), once for each logical
	// unit it could see.
	NexusLost(lu *LU, n *Nexus)
	// TaskSetAborted reports that the tasks from nexus n on lu were
	// aborted (ABORT TASK SET); with n nil, the tasks of every nexus
	// (CLEAR TASK SET).
	TaskSetAborted(lu *LU, n *Nexus)
	// Reset reports a logical unit reset of lu (LOGICAL UNIT RESET, or a
	// target reset reaching every logical unit, SAM-5 7.7 and 7.12).
	Reset(lu *LU)
}

// maxLostNexuses bounds how many ended I_T nexuses a logical unit keeps
// I_T NEXUS LOSS OCCURRED pending for. Initiators pick a new ISID for each
// session, so most never come back; past the bound the oldest is
// forgotten (SPC-4 5.14 lets a device drop unit attentions it has no room
// for), and a returning one then sees POWER ON instead.
const maxLostNexuses = 64

// End ends the I_T nexus (SAM-5 6.3.4): every task it has on a logical
// unit it could see (or saw before a reload, see AbortTasks) is aborted,
// its per-nexus state there (pending unit attentions, the note that it
// has sent commands) is dropped, I_T NEXUS LOSS OCCURRED is kept for the
// initiator port in case it logs in again, and NexusEvents hears of it. The transport calls End once, when the
// session's last connection is gone.
func (n *Nexus) End() {
	if n.ended != nil {
		n.ended.Store(true)
	}
	for _, lu := range n.withTasks() {
		lu.nexusLost(n)
	}
}

// Ended reports whether End was called: no internal task runs for the
// nexus any more.
func (n *Nexus) Ended() bool { return n.ended != nil && n.ended.Load() }

// AbortTasks aborts every task of the nexus on every logical unit it can
// see, or saw before a reload while it still has tasks there, and waits
// until they have ended, as a logout or the end of a connection requires
// before its response or its teardown.
func (n *Nexus) AbortTasks() {
	for _, lu := range n.withTasks() {
		lu.AbortTaskSet(n)
	}
}

// nexusLost aborts the nexus's tasks, forgets its state and queues I_T
// NEXUS LOSS OCCURRED for its return.
func (lu *LU) nexusLost(n *Nexus) {
	key := n.Key()
	waits, _ := lu.abortMatching(func(t *task) bool { return t.key == key })
	wait(waits)
	lu.mu.Lock()
	wasSeen := lu.seen[key]
	delete(lu.seen, key)
	delete(lu.ua, key)
	if wasSeen && lu.Present() {
		lu.rememberLostLocked(key)
	}
	lu.mu.Unlock()
	if lu.events != nil {
		lu.events.NexusLost(lu, n)
	}
}

// forgetNexus drops the state of a nexus that no longer sees the logical
// unit (SetLUs) without aborting its tasks: pending unit attentions and
// the note that it has sent commands, so that seeing the logical unit
// again starts like a first contact.
func (lu *LU) forgetNexus(n *Nexus) {
	key := n.Key()
	lu.mu.Lock()
	delete(lu.seen, key)
	delete(lu.ua, key)
	lu.mu.Unlock()
	if lu.events != nil {
		lu.events.NexusLost(lu, n)
	}
}

// rememberLostLocked records an ended nexus, forgetting the oldest past
// maxLostNexuses.
func (lu *LU) rememberLostLocked(key string) {
	if _, ok := lu.lost[key]; ok {
		return
	}
	if len(lu.lostOrder) == maxLostNexuses {
		delete(lu.lost, lu.lostOrder[0])
		lu.lostOrder = lu.lostOrder[1:]
	}
	lu.lost[key] = struct{}{}
	lu.lostOrder = append(lu.lostOrder, key)
}

// forgetLostLocked reports whether key named an ended nexus, and forgets
// it.
func (lu *LU) forgetLostLocked(key string) bool {
	if _, ok := lu.lost[key]; !ok {
		return false
	}
	delete(lu.lost, key)
	if i := indexOf(lu.lostOrder, key); i >= 0 {
		lu.lostOrder = append(lu.lostOrder[:i], lu.lostOrder[i+1:]...)
	}
	return true
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
