package scsi

import (
	"cmp"
	"context"
	"slices"
)

// Access is medium access an internal task makes: blocks [LBA,
// LBA+Blocks) of logical unit LU, written when Write is set, only read
// otherwise.
type Access struct {
	LU          *LU
	LBA, Blocks uint64
	Write       bool
}

// RunInternal runs fn as a task in the task sets of the logical units it
// accesses, on behalf of nexus n, for a command that works on devices
// other than, or besides, the one it was sent to (a copy reading its
// source and writing its destination). The tasks are in those task sets,
// so tasks that come later and must wait for older ones (ORDERED) wait
// for them, and ABORT TASK SET from n, CLEAR TASK SET and a logical unit
// reset on any of the logical units abort them, as does the end of ctx or
// of the nexus. They themselves wait for no task: they are part of a
// command of another task set (or of this one, already running), and
// waiting behind tasks that came after that command would deadlock two
// copies in opposite directions. Ranges are checked against the
// capacity; an access that conflicts with a reservation of its logical
// unit, as a READ or WRITE from n would, is refused with RESERVATION
// CONFLICT; a write is refused with DATA PROTECT while its logical unit
// is write protected; every range is held in the extent lock (exclusive
// for a write, shared for a read) while fn runs, the logical units taken
// in one fixed order so that two copies in opposite directions cannot
// deadlock. fn gets a context that ends when any of the tasks is aborted,
// and must not take extent locks of its own.
//
// RunInternal returns fn's error, or the sense data that ended the task
// before fn ran: LOGICAL UNIT NOT SUPPORTED for the absent logical unit,
// LOGICAL BLOCK ADDRESS OUT OF RANGE, DATA PROTECT, or, once aborted,
// TaskAborted; or a *StatusError for RESERVATION CONFLICT. A conflict
// also marks the command whose context ctx derives from (a copy without
// IMMED) so that it ends with RESERVATION CONFLICT, as the command would
// from the device it could not access.
func RunInternal(ctx context.Context, n *Nexus, accesses []Access, fn func(ctx context.Context) error) error {
	var lus []*LU
	for _, a := range accesses {
		if !a.LU.Present() {
			return NewSense(IllegalRequest, ASCLUNotSupported).WithReason("internal task for an absent logical unit")
		}
		if s := CheckRange(a.LBA, a.Blocks, a.LU.Blocks()); s != nil {
			return s
		}
		if !slices.Contains(lus, a.LU) {
			lus = append(lus, a.LU)
		}
	}
	slices.SortFunc(lus, func(a, b *LU) int { return cmp.Compare(a.seq, b.seq) })

	if ctx.Err() != nil || n.Ended() {
		return TaskAborted()
	}
	tasks := make([]*task, len(lus))
	for i, lu := range lus {
		tasks[i] = lu.enterTask(ctx, &Command{Nexus: n, Attr: TaskSimple, lu: lu}, true)
	}
	defer func() {
		for i, lu := range lus {
			lu.leave(tasks[i])
		}
	}()
	for _, lu := range lus {
		if lu.retired.Load() {
			return NewSense(IllegalRequest, ASCLUNotSupported).WithReason("internal task for a logical unit removed by a reload")
		}
	}
	run, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, t := range tasks {
		stop := context.AfterFunc(t.cmd.Context(), cancel)
		defer stop()
	}
	for _, a := range accesses {
		if c := a.LU.accessConflict(n, a.Write); c != nil {
			// The command this task serves ends with RESERVATION
			// CONFLICT, whatever the copy manager reports.
			if t, ok := ctx.Value(taskKey{}).(*task); ok {
				t.conflict.Store(true)
			}
			c.LU = a.LU
			return c
		}
		if a.Write && a.LU.WriteProtected() {
			return WriteProtected()
		}
	}
	for _, lu := range lus {
		var ranges []extentRange
		for _, a := range accesses {
			if a.LU == lu {
				mode := ExtentShared
				if a.Write {
					mode = ExtentExclusive
				}
				ranges = append(ranges, extentRange{a.LBA, a.Blocks, mode})
			}
		}
		unlock, err := lu.lockExtents(run, ranges)
		if err != nil {
			return TaskAborted()
		}
		defer unlock()
	}
	if run.Err() != nil || n.Ended() {
		return TaskAborted()
	}
	return fn(run)
}

// EndsInConflict reports whether cmd is marked to end with RESERVATION
// CONFLICT because an internal task made for it met a reservation (see
// [RunInternal]).
func (c *Command) EndsInConflict() bool {
	t, ok := c.Context().Value(taskKey{}).(*task)
	return ok && t.conflict.Load()
}
