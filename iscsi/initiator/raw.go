package initiator

import (
	"context"
	"sync"

	"github.com/odxtgt/odxtgt/iscsi"
)

// RawFlags select what SendRaw fills in.
type RawFlags uint8

const (
	// RawCmdSN gives the PDU the next CmdSN as a command would get it:
	// after waiting for the command window, and advancing the session's
	// CmdSN unless the PDU's I bit is set.
	RawCmdSN RawFlags = 1 << iota
	// RawAsIs sends the header exactly as built: ExpStatSN,
	// TotalAHSLength and DataSegmentLength are not filled in.
	RawAsIs
)

// SendRaw writes a hand-built PDU, for negative tests. Unless RawAsIs is
// given, ExpStatSN and the length fields are filled in. Use NewITT for its
// tag and Watch to see the target's answers. A PDU that confuses the
// target may end the session.
func (s *Session) SendRaw(ctx context.Context, p *iscsi.PDU, flags RawFlags) error {
	asIs := flags&RawAsIs != 0
	if flags&RawCmdSN != 0 {
		return s.issue(ctx, p, nil, p.Immediate(), issueOpts{asIs: asIs})
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.writeLocked(p, asIs)
}

// Watcher receives copies of the target PDUs for one Initiator Task Tag:
// PDUs carrying it and Rejects of a PDU that carried it. Watched PDUs
// bypass the initiator's own task handling (sequence numbers are still
// tracked, target NOP-Ins still answered).
type Watcher struct {
	// C delivers the PDUs; it is closed when the session's reader stops.
	// The reader waits while C is full, so drain it.
	C <-chan *iscsi.PDU

	c    chan *iscsi.PDU
	itt  uint32
	s    *Session
	stop chan struct{}
	once sync.Once
}

// Watch starts delivering target PDUs for itt, which may be the reserved
// tag FFFFFFFFh to see unsolicited NOP-Ins and Asynchronous Messages.
func (s *Session) Watch(itt uint32) *Watcher {
	c := make(chan *iscsi.PDU, 64)
	w := &Watcher{C: c, c: c, itt: itt, s: s, stop: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readerDone {
		close(c)
		return w
	}
	s.watchers[itt] = w
	return w
}

// Stop ends delivery; C is not closed.
func (w *Watcher) Stop() {
	w.once.Do(func() {
		w.s.mu.Lock()
		if w.s.watchers[w.itt] == w {
			delete(w.s.watchers, w.itt)
		}
		w.s.mu.Unlock()
		close(w.stop)
	})
}

func (w *Watcher) deliver(p *iscsi.PDU, done <-chan struct{}) {
	select {
	case w.c <- p:
	case <-w.stop:
	case <-done:
	}
}
