package scsi

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"
)

// task is one command in a logical unit's task set.
type task struct {
	cmd     *Command
	key     string // nexus key
	attr    TaskAttr
	deps    []*task // older tasks this one must wait for (SAM-5 8.6)
	cancel  context.CancelFunc
	done    chan struct{}
	aborted bool // guarded by LU.mu
	// internal: run by another command (a copy), not by a transport; its
	// tag is not the initiator's, so ABORT TASK never matches it.
	internal bool
	// conflict: an internal task on this command's behalf met a
	// reservation conflict (RunInternal), so the command ends with
	// RESERVATION CONFLICT whatever its handler made of it.
	conflict atomic.Bool
	// start is when the transport submitted the command, for the
	// latency counters.
	start time.Time
}

// taskKey is the context key under which a task's context carries the
// task.
type taskKey struct{}

// InvalidLUN is the LUN a transport gives a command whose LUN field it could
// not decode; it always addresses the absent logical unit.
const InvalidLUN = ^uint64(0)

// Submit enters cmd into the task set of the logical unit its nexus maps
// cmd.LUN to and runs it on its own goroutine; done is called once with
// the finished command (cmd.Aborted set if a task management function or
// session loss ended it). The transport calls Submit in command order
// (CmdSN order for iSCSI): the task set orders execution from that.
func Submit(cmd *Command, done func(*Command)) {
	lu := cmd.Nexus.LU(cmd.LUN)
	cmd.lu = lu
	t := lu.enter(cmd)
	t.start = time.Now()
	go lu.run(t, done)
}

// enter adds a task to the task set and works out which older tasks it must
// wait for: a SIMPLE task waits for older ORDERED and HEAD OF QUEUE tasks,
// an ORDERED task for every older task, a HEAD OF QUEUE task for none
// (SAM-5 8.6, with one task set shared by all I_T nexuses).
func (lu *LU) enter(cmd *Command) *task {
	return lu.enterTask(context.Background(), cmd, false)
}

// enterTask is enter for a task whose context derives from parent: an
// internal task ends when the command it serves ends, and waits for no
// older task.
func (lu *LU) enterTask(parent context.Context, cmd *Command, internal bool) *task {
	t := &task{cmd: cmd, key: cmd.Nexus.Key(), attr: cmd.Attr, done: make(chan struct{}), internal: internal}
	ctx, cancel := context.WithCancel(context.WithValue(parent, taskKey{}, t))
	cmd.ctx, t.cancel = ctx, cancel
	lu.mu.Lock()
	defer lu.mu.Unlock()
	for _, old := range lu.tasks {
		if internal {
			break // internal tasks wait for no task (see RunInternal)
		}
		switch t.attr {
		case TaskHeadOfQueue:
		case TaskOrdered:
			t.deps = append(t.deps, old)
		default:
			if old.attr == TaskOrdered || old.attr == TaskHeadOfQueue {
				t.deps = append(t.deps, old)
			}
		}
	}
	lu.tasks = append(lu.tasks, t)
	return t
}

func (lu *LU) run(t *task, done func(*Command)) {
	if lu.waitTurn(t) {
		lu.execute(t.cmd)
		if t.conflict.Load() {
			t.cmd.Status, t.cmd.Sense, t.cmd.DataIn = StatusReservationConflict, nil, nil
		}
	}
	lu.leave(t)
	lu.stats.record(t.cmd, time.Since(t.start))
	done(t.cmd)
}

// waitTurn waits for the older tasks t depends on; it reports false when t
// was aborted meanwhile.
func (lu *LU) waitTurn(t *task) bool {
	ctx := t.cmd.Context()
	defer func() { t.deps = nil }()
	for _, d := range t.deps {
		select {
		case <-d.done:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// leave removes a finished task from the task set, recording whether it
// was aborted, and wakes the tasks waiting for it.
func (lu *LU) leave(t *task) {
	lu.mu.Lock()
	t.cmd.Aborted = t.aborted
	if i := slices.Index(lu.tasks, t); i >= 0 {
		lu.tasks = slices.Delete(lu.tasks, i, i+1)
	}
	lu.mu.Unlock()
	t.cancel()
	close(t.done)
}

// execute dispatches one command: absent LU, unit attention, table lookup
// and CDB check, write protection, then the handler. A handler panic is
// logged with its stack and reported as INTERNAL TARGET FAILURE for this
// command only.
func (lu *LU) execute(cmd *Command) {
	defer func() {
		if r := recover(); r != nil {
			lu.Log.Error("command handler panicked", "cdb", fmt.Sprintf("% x", cmd.CDB), "panic", r, "stack", string(debug.Stack()))
			cmd.DataIn = nil
			lu.fail(cmd, InternalTargetFailure())
		}
	}()
	cmd.Status = StatusGood
	d, sense := lu.Table.Lookup(cmd.CDB)
	if lu.retired.Load() {
		lu.fail(cmd, NewSense(IllegalRequest, ASCLUNotSupported).WithReason("logical unit removed by a reload"))
		return
	}
	if !lu.Present() {
		if d == nil || d.Flags&FlagNoLU == 0 {
			lu.fail(cmd, NewSense(IllegalRequest, ASCLUNotSupported))
			return
		}
	} else if d == nil || d.Flags&FlagIgnoresUA == 0 {
		lu.mu.Lock()
		lu.noteNexusLocked(cmd.Nexus.Key())
		ua := lu.takeUALocked(cmd.Nexus.Key())
		lu.mu.Unlock()
		if ua != nil {
			lu.fail(cmd, ua)
			return
		}
	} else {
		lu.mu.Lock()
		lu.noteNexusLocked(cmd.Nexus.Key())
		lu.mu.Unlock()
	}
	if sense != nil {
		lu.fail(cmd, sense)
		return
	}
	if c := lu.reservationCheck(cmd, d); c != nil {
		lu.endWithStatus(cmd, c)
		return
	}
	if d.Flags&FlagWritesMedium != 0 && lu.WriteProtected() {
		lu.fail(cmd, WriteProtected())
		return
	}
	if err := d.Handler(cmd); err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			lu.endWithStatus(cmd, se)
			return
		}
		var s *Sense
		if !errors.As(err, &s) {
			lu.Log.Error("command failed", "command", d.Name, "err", err)
			s = InternalTargetFailure()
		}
		lu.fail(cmd, s)
	}
}

// fail ends cmd with CHECK CONDITION and s encoded per D_SENSE.
func (lu *LU) fail(cmd *Command, s *Sense) {
	lu.Log.Debug("check condition", "cdb", fmt.Sprintf("% x", cmd.CDB), "sense", s)
	lu.stats.checkCondition(s)
	cmd.Status = StatusCheckCondition
	cmd.Sense = s.Encode(lu.Mode().DSense)
	cmd.DataIn = nil
}

// endWithStatus ends cmd with a status that has no sense data.
func (lu *LU) endWithStatus(cmd *Command, e *StatusError) {
	lu.Log.Debug("command ended", "cdb", fmt.Sprintf("% x", cmd.CDB), "status", e.Status, "reason", e.Reason)
	cmd.Status, cmd.Sense, cmd.DataIn = e.Status, nil, nil
}

// abortMatching marks the tasks that match as aborted, cancels them and
// returns their done channels along with the nexus keys they belonged to.
func (lu *LU) abortMatching(match func(*task) bool) (waits []chan struct{}, keys map[string]bool) {
	keys = map[string]bool{}
	lu.mu.Lock()
	defer lu.mu.Unlock()
	for _, t := range lu.tasks {
		if match(t) {
			t.aborted = true
			t.cancel()
			waits = append(waits, t.done)
			keys[t.key] = true
		}
	}
	return waits, keys
}

// hasTasksOf reports whether the nexus with the given key has a task in
// the task set.
func (lu *LU) hasTasksOf(key string) bool {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	return slices.ContainsFunc(lu.tasks, func(t *task) bool { return t.key == key })
}

func wait(chans []chan struct{}) {
	for _, c := range chans {
		<-c
	}
}

// waitUnless is wait that gives up when ctx ends.
func waitUnless(ctx context.Context, chans []chan struct{}) {
	for _, c := range chans {
		select {
		case <-c:
		case <-ctx.Done():
			return
		}
	}
}

// AbortTask aborts the task with the given tag from the nexus and waits
// until it has ended. It reports whether such a task was in the task set.
func (lu *LU) AbortTask(n *Nexus, tag uint64) bool {
	key := n.Key()
	waits, _ := lu.abortMatching(func(t *task) bool { return t.key == key && !t.internal && t.cmd.Tag == tag && !t.aborted })
	wait(waits)
	return len(waits) > 0
}

// AbortTaskSet aborts every task from the nexus and waits for them to end
// (SAM-5 7.3). It is also what a transport calls when a session ends.
func (lu *LU) AbortTaskSet(n *Nexus) {
	key := n.Key()
	waits, _ := lu.abortMatching(func(t *task) bool { return t.key == key })
	wait(waits)
	if lu.events != nil {
		lu.events.TaskSetAborted(lu, n)
	}
}

// ClearTaskSet aborts every task from every nexus; nexuses other than n
// that lost tasks get COMMANDS CLEARED BY ANOTHER INITIATOR (SAM-5 7.4,
// with TAS=0).
func (lu *LU) ClearTaskSet(n *Nexus) {
	waits, keys := lu.abortMatching(func(*task) bool { return true })
	wait(waits)
	lu.mu.Lock()
	for key := range keys {
		// Not for a nexus lost during the wait (see abortPreempted).
		if lu.seen[key] && key != n.Key() {
			lu.queueUALocked(key, ASCCommandsClearedByAnotherInit)
		}
	}
	lu.mu.Unlock()
	if lu.events != nil {
		lu.events.TaskSetAborted(lu, nil)
	}
}

// Reset performs a logical unit reset (SAM-5 7.7): every task is aborted
// and every I_T nexus gets a unit attention with the given code (BUS DEVICE
// RESET FUNCTION OCCURRED for LOGICAL UNIT RESET, POWER ON, RESET, OR BUS
// DEVICE RESET OCCURRED for a target reset).
func (lu *LU) Reset(code ASC) {
	waits, _ := lu.abortMatching(func(*task) bool { return true })
	wait(waits)
	lu.EstablishUA(code, "")
	if lu.events != nil {
		lu.events.Reset(lu)
	}
}
