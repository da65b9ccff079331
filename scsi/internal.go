package scsi

import "context"

// Access is the medium access an internal task makes: blocks [LBA,
// LBA+Blocks) of the logical unit, written when Write is set, only read
// otherwise.
type Access struct {
	LBA, Blocks uint64
	Write       bool
}

// RunInternal runs fn as a task in the logical unit's task set on behalf
// of nexus n, for a command that works on a logical unit other than the
// one it was sent to (a copy writing its destination): the task waits for
// older ORDERED and HEAD OF QUEUE tasks as a SIMPLE task does; ABORT TASK
// SET from n, CLEAR TASK SET and a logical unit reset abort it, and so
// does the end of ctx; a write is refused with DATA PROTECT while the
// logical unit is write protected; the range is checked against the
// capacity and held in the extent lock (exclusive for a write, shared for
// a read) while fn runs. fn gets a context that ends when the task is
// aborted. fn must not take another extent lock: a copy reads its source
// and writes its destination in separate internal tasks, so two copies
// in opposite directions cannot deadlock.
//
// RunInternal returns fn's error, or the sense data that ended the task
// before fn ran: LOGICAL UNIT NOT SUPPORTED for the absent logical unit,
// DATA PROTECT, LOGICAL BLOCK ADDRESS OUT OF RANGE, or an ABORTED COMMAND
// once aborted (see TaskAborted).
func (lu *LU) RunInternal(ctx context.Context, n *Nexus, a Access, fn func(ctx context.Context) error) error {
	if !lu.Present() {
		return NewSense(IllegalRequest, ASCLUNotSupported).WithReason("internal task for an absent logical unit")
	}
	if s := CheckRange(a.LBA, a.Blocks, lu.Blocks()); s != nil {
		return s
	}
	cmd := &Command{Nexus: n, Attr: TaskSimple, lu: lu}
	t := lu.enterTask(ctx, cmd, true)
	defer lu.leave(t)
	if !lu.waitTurn(t) {
		return TaskAborted()
	}
	if a.Write && lu.WriteProtected() {
		return WriteProtected()
	}
	mode := ExtentShared
	if a.Write {
		mode = ExtentExclusive
	}
	unlock, err := lu.LockExtent(cmd.Context(), a.LBA, a.Blocks, mode)
	if err != nil {
		return TaskAborted()
	}
	defer unlock()
	return fn(cmd.Context())
}
