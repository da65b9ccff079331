package rod

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/odxtgt/odxtgt/scsi"
)

// Work is what a third-party copy command does once its list is
// registered: a copy, a token made or a token written.
type Work func(ctx context.Context, l *List, req Request) *scsi.Sense

// Execute runs work for cmd as list id of the command's I_T_L nexus with
// the given LIST ID USAGE, recording its end for RECEIVE COPY STATUS and
// RECEIVE ROD TOKEN INFORMATION. With immed the command is GOOD once the
// list is accepted and the work goes on in the background, until it ends,
// COPY OPERATION ABORT, a reset or the loss of the nexus. Without it the
// command ends with the work: CHECK CONDITION with its sense, or TASK
// ABORTED once aborted (COPY OPERATION ABORT; after a task management
// function the transport sends nothing).
func (m *Manager) Execute(cmd *scsi.Command, id uint32, usage ListIDUsage, sa byte, immed bool, work Work) error {
	lu := cmd.LU()
	parent := cmd.Context()
	if immed {
		parent = context.Background()
	}
	ctx, l, s := m.Begin(parent, cmd.Nexus, lu, id, usage, sa, immed)
	if s != nil {
		return s
	}
	req := Request{Nexus: cmd.Nexus, LU: lu, DSense: lu.Mode().DSense}
	finish := func() (status scsi.Status, s *scsi.Sense) {
		defer m.logProgress(l)()
		defer func() {
			// A bug in the work must still end the list, or it would
			// count as running for ever (and Close wait for it).
			if r := recover(); r != nil {
				m.Finish(l, scsi.StatusCheckCondition, scsi.InternalTargetFailure())
				if !immed {
					panic(r) // the task set reports it for the command
				}
				m.log.Error("background copy panicked", "list_id", l.key.id, "panic", r, "stack", string(debug.Stack()))
			}
		}()
		s = work(ctx, l, req)
		status = scsi.StatusGood
		switch {
		case s == nil:
		case ctx.Err() != nil && s.Key == scsi.AbortedCommand:
			status, s = scsi.StatusTaskAborted, nil
		case !immed && cmd.EndsInConflict():
			// The command ends with RESERVATION CONFLICT
			// (scsi.RunInternal marked it): the record says the
			// same.
			status, s = scsi.StatusReservationConflict, nil
		default:
			status = scsi.StatusCheckCondition
		}
		m.Finish(l, status, s)
		return status, s
	}
	if immed {
		if cmd.Context().Err() != nil {
			// Aborted before the work could start: it never does.
			m.Finish(l, scsi.StatusTaskAborted, nil)
			return scsi.TaskAborted()
		}
		go finish()
		return nil
	}
	status, s := finish()
	if status == scsi.StatusReservationConflict {
		return nil // the task set ends the command so
	}
	if status == scsi.StatusTaskAborted {
		cmd.Status = status
		return nil
	}
	if s != nil {
		return s
	}
	return nil
}

// logProgress logs, every progress interval until stop is called, how far
// list l got: one line per long copy, POPULATE TOKEN or WRITE USING TOKEN
// every few seconds, none for the short ones.
func (m *Manager) logProgress(l *List) (stop func()) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTicker(m.progress)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				m.log.Info("copy in progress", "list_id", l.key.id, "service_action", l.ServiceAction,
					"segments", l.segments.Load(), "bytes", l.bytes.Load(), "blocks", l.blocks.Load(),
					"elapsed", time.Since(start).Round(time.Millisecond))
			}
		}
	}()
	return func() { close(done) }
}
