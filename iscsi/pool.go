package iscsi

import (
	"math/bits"
	"sync"

	"github.com/odxtgt/odxtgt/scsi"
)

// buffer is a pooled data buffer: data-out collected for a command, or the
// data-in a command produced. Buffers come in power-of-two size classes so
// a pool always hands out one large enough.
type buffer struct {
	b     []byte
	class int // index into bufferPools; -1 for buffers too large to pool
}

const (
	minBufferShift = 9  // 512 bytes
	maxBufferShift = 23 // 8 MiB, scsi.MaxTransferBytes
)

var bufferPools [maxBufferShift - minBufferShift + 1]sync.Pool

func init() {
	for i := range bufferPools {
		size := 1 << (minBufferShift + i)
		class := i
		bufferPools[i].New = func() any { return &buffer{b: make([]byte, size), class: class} }
	}
}

// getBuffer returns a buffer of at least n bytes; its b is sliced to n.
// The content is not cleared.
func getBuffer(n int) *buffer {
	shift := minBufferShift
	if n > 1<<minBufferShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxBufferShift {
		return &buffer{b: make([]byte, n), class: -1}
	}
	buf := bufferPools[shift-minBufferShift].Get().(*buffer)
	buf.b = buf.b[:n]
	return buf
}

// release returns the buffer to its pool; it must not be used afterwards.
func (b *buffer) release() {
	if b == nil || b.class < 0 {
		return
	}
	b.b = b.b[:cap(b.b)]
	bufferPools[b.class].Put(b)
}

// budget bounds the data-out bytes buffered for commands: server-wide,
// per session and per initiator name across its sessions. Each session,
// and each initiator name, may hold at most its fair share of the
// server-wide limit: the limit divided among those logged in, never less
// than scsi.MaxTransferBytes (so one can always make the largest
// transfer) nor more than its configured cap. A reservation either fits
// or is refused at once, never waited for, so a connection's reader is
// never blocked by another connection's data.
type budget struct {
	mu        sync.Mutex
	limit     int64 // server-wide
	session   int64 // cap per session
	initiator int64 // cap per initiator name
	used      int64
	sessions  int
	names     map[string]*nameShare
}

// share is one session's account in the budget.
type share struct {
	used int64
	name *nameShare
	left bool // the session ended; later releases are no-ops
}

// nameShare is one initiator name's account across its sessions.
type nameShare struct {
	name     string
	sessions int
	used     int64
}

func newBudget(limit, session, initiator int64) *budget {
	return &budget{limit: limit, session: session, initiator: initiator, names: map[string]*nameShare{}}
}

// fair returns a holder's share when n hold accounts.
func (b *budget) fair(limit int64, n int) int64 {
	return min(limit, max(scsi.MaxTransferBytes, b.limit/int64(max(n, 1))))
}

// join opens the account of a new session of the named initiator.
func (b *budget) join(initiator string) *share {
	b.mu.Lock()
	defer b.mu.Unlock()
	ns := b.names[initiator]
	if ns == nil {
		ns = &nameShare{name: initiator}
		b.names[initiator] = ns
	}
	ns.sessions++
	b.sessions++
	return &share{name: ns}
}

// leave closes a session's account, returning whatever it still holds.
func (b *budget) leave(s *share) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(s, s.used)
	s.left = true
	b.sessions--
	if s.name.sessions--; s.name.sessions == 0 {
		delete(b.names, s.name.name)
	}
}

// reserve takes n bytes for the session if they fit and reports whether
// it did.
func (b *budget) reserve(s *share, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.left || b.used+n > b.limit || s.used+n > b.fair(b.session, b.sessions) ||
		s.name.used+n > b.fair(b.initiator, len(b.names)) {
		return false
	}
	b.used += n
	s.used += n
	s.name.used += n
	return true
}

// release returns n bytes the session reserved.
func (b *budget) release(s *share, n int64) {
	if s == nil || n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(s, n)
}

func (b *budget) releaseLocked(s *share, n int64) {
	if s.left {
		return
	}
	b.used -= n
	s.used -= n
	s.name.used -= n
}
