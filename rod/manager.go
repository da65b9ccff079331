package rod

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/odxtgt/odxtgt/scsi"
)

// Config configures NewManager.
type Config struct {
	Logger *slog.Logger
	// CrossTarget, when set, returns logical units of other targets of
	// this process that a copy may reach besides those its I_T nexus
	// sees (YAML copy.cross_target). Without it a copy reaches only the
	// logical units mapped to the requesting nexus, the rule Linux LIO
	// adopted after CVE-2020-28374.
	CrossTarget func() []*scsi.LU
	// HeldListTimeout is how long a completed list's status stays
	// readable; zero means DefaultHeldListTimeout.
	HeldListTimeout time.Duration
	// BufferBytes bounds the memory all buffered copies share; zero means
	// DefaultBufferBytes.
	BufferBytes int
	// Tokens configures ROD tokens (POPULATE TOKEN, WRITE USING TOKEN).
	Tokens TokenConfig
	// ProgressInterval is how often a copy that is still running logs
	// how far it got; zero means DefaultProgressInterval.
	ProgressInterval time.Duration
}

// DefaultProgressInterval is how often long copies log their progress by
// default.
const DefaultProgressInterval = 5 * time.Second

// DefaultBufferBytes is the memory buffered copies share by default.
const DefaultBufferBytes = 64 << 20

// Manager is the copy manager of a process: one for all logical units,
// so copies between targets work when allowed. It implements
// scsi.NexusEvents; logical units are built with it as their Events.
type Manager struct {
	log      *slog.Logger
	cross    func() []*scsi.LU
	ttl      time.Duration
	progress time.Duration // see Config.ProgressInterval
	buffers  chan []byte   // pooled copy buffers, bounded in number
	now      func() time.Time
	tcfg     TokenConfig
	tok      *tokens
	active   sync.WaitGroup // lists begun and not finished
	counters counters       // see Stats

	mu      sync.Mutex // guards everything below and the done fields of List
	lists   map[listKey]*List
	running int    // lists not yet done
	anon    uint64 // the last anon key handed out
}

// listKey identifies a list: the I_T nexus and logical unit it came on
// (an I_T_L nexus, as SPC-4 scopes list identifiers) and its identifier.
type listKey struct {
	nexus string
	lu    *scsi.LU
	id    uint32
	anon  uint64 // non-zero for a list without identifier (LIST ID USAGE 11b)
}

// NewManager returns a copy manager.
func NewManager(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	n := max(cmp.Or(cfg.BufferBytes, DefaultBufferBytes)/bufferSize, 2)
	m := &Manager{
		log:      log,
		cross:    cfg.CrossTarget,
		ttl:      cmp.Or(cfg.HeldListTimeout, DefaultHeldListTimeout),
		progress: cmp.Or(cfg.ProgressInterval, DefaultProgressInterval),
		buffers:  make(chan []byte, n),
		now:      time.Now,
		lists:    map[listKey]*List{},
	}
	for range n {
		m.buffers <- nil // allocated on first use
	}
	tc := cfg.Tokens
	tc.DefaultTimeout = cmp.Or(tc.DefaultTimeout, DefaultInactivityTimeout*time.Second)
	tc.MaxTimeout = cmp.Or(tc.MaxTimeout, MaxInactivityTimeout*time.Second)
	tc.MaxTokens = cmp.Or(tc.MaxTokens, DefaultMaxTokens)
	tc.SnapshotSpace = cmp.Or(tc.SnapshotSpace, DefaultSnapshotSpace)
	tc.WriteBudget = cmp.Or(tc.WriteBudget, DefaultWriteBudget)
	m.tcfg = tc
	m.tok = newTokens(tc.SnapshotSpace, tc.Key)
	m.tok.deviceData = tc.DeviceData
	return m
}

// List is one copy operation: an EXTENDED COPY parameter list (and, for
// tokens, the lists of POPULATE TOKEN and WRITE USING TOKEN) from its
// command to the moment its status is no longer held.
type List struct {
	key           listKey
	Usage         ListIDUsage
	ServiceAction byte // of the command that started it, for RECEIVE COPY STATUS
	Background    bool // IMMED: the command completed before the copy
	started       time.Time

	cancel  context.CancelFunc
	aborted atomic.Bool // COPY OPERATION ABORT asked for it

	segments atomic.Uint32 // segments processed
	bytes    atomic.Uint64 // bytes written to destinations
	blocks   atomic.Uint64 // logical blocks represented (POPULATE TOKEN) or written (WRITE USING TOKEN)

	// Guarded by Manager.mu.
	done     bool
	status   scsi.Status
	sense    *scsi.Sense
	finished time.Time
	token    *Token // the token POPULATE TOKEN made
	partial  bool   // the token represents fewer blocks than asked
}

// setToken records the token a POPULATE TOKEN list made, the blocks it
// represents and whether they are fewer than asked.
func (m *Manager) setToken(l *List, tok *Token, blocks uint64, partial bool) {
	l.blocks.Store(blocks)
	m.mu.Lock()
	defer m.mu.Unlock()
	l.token, l.partial = tok, partial
}

// ListID returns the list identifier.
func (l *List) ListID() uint32 { return l.key.id }

// Progress is a snapshot of a list for RECEIVE COPY RESULTS.
type Progress struct {
	ServiceAction byte
	Background    bool
	Done          bool
	// Aborted: ended by COPY OPERATION ABORT, a task management function
	// or the loss of its nexus.
	Aborted  bool
	Status   scsi.Status // the command's status, once Done
	Sense    *scsi.Sense // why it failed, once Done
	Segments uint32
	Bytes    uint64
	// Blocks counts logical blocks for the token commands: represented by
	// POPULATE TOKEN's token, or written by WRITE USING TOKEN.
	Blocks uint64
	// Token is the token POPULATE TOKEN made; Partial says it represents
	// fewer blocks than were asked for.
	Token   *[TokenLength]byte
	Partial bool
}

func (l *List) progressLocked() Progress {
	p := Progress{
		ServiceAction: l.ServiceAction,
		Background:    l.Background,
		Done:          l.done,
		Aborted:       l.abortedLocked(),
		Status:        l.status,
		Sense:         l.sense,
		Segments:      l.segments.Load(),
		Bytes:         l.bytes.Load(),
		Blocks:        l.blocks.Load(),
		Partial:       l.partial,
	}
	if l.token != nil {
		raw := l.token.Raw()
		p.Token = &raw
	}
	return p
}

// abortedLocked reports whether the list was, or is being, aborted. Once
// done, its status says: an abort that came as the last segment completed
// leaves a list that ended GOOD, and that is what it reports.
func (l *List) abortedLocked() bool {
	if l.done {
		return l.status == scsi.StatusTaskAborted
	}
	return l.aborted.Load()
}

// Begin registers a list that nexus n sent to logical unit lu. With
// LIST ID USAGE 00b or 10b, a list with the same identifier still running
// on that I_T_L nexus makes it ILLEGAL REQUEST, OPERATION IN PROGRESS
// (SPC-4 6.4.3.2); a completed one is replaced. Past MaxConcurrentCopies
// it is ILLEGAL REQUEST, INSUFFICIENT RESOURCES. The returned context
// ends when the list is aborted or parent ends; Finish must follow.
func (m *Manager) Begin(parent context.Context, n *scsi.Nexus, lu *scsi.LU, id uint32, usage ListIDUsage, sa byte, background bool) (context.Context, *List, *scsi.Sense) {
	l := &List{key: listKey{nexus: n.Key(), lu: lu, id: id}, Usage: usage, ServiceAction: sa, Background: background, started: m.now()}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked()
	if usage != UsageNone {
		if old := m.lists[l.key]; old != nil && !old.done {
			return nil, nil, scsi.NewSense(scsi.IllegalRequest, scsi.ASCOperationInProgress).
				WithReason("list identifier %d is in use", id)
		}
	}
	if m.running >= MaxConcurrentCopies {
		return nil, nil, scsi.NewSense(scsi.IllegalRequest, ascInsufficientResources).
			WithReason("%d copies running", m.running)
	}
	m.running++
	m.active.Add(1)
	if usage == UsageNone {
		m.anon++
		l.key.anon = m.anon
	}
	m.lists[l.key] = l
	ctx, cancel := context.WithCancel(parent)
	l.cancel = cancel
	return ctx, l, nil
}

// ascInsufficientResources is INSUFFICIENT RESOURCES (SPC-4 table 28).
const ascInsufficientResources scsi.ASC = 0x5503

// Finish records the end of a list: the status of its command and, for
// CHECK CONDITION, the sense data. A list whose LIST ID USAGE is not 00b
// is forgotten; a held one stays readable until read, replaced, timed out
// or its nexus is lost.
func (m *Manager) Finish(l *List, status scsi.Status, sense *scsi.Sense) {
	l.cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.done {
		return
	}
	l.done, l.status, l.sense, l.finished = true, status, sense, m.now()
	result := ResultGood
	switch status {
	case scsi.StatusGood:
	case scsi.StatusTaskAborted:
		result = ResultAborted
	default:
		result = ResultFailed
	}
	m.counters.finished[kindOf(l.ServiceAction)][result].Add(1)
	m.running--
	m.active.Done()
	if m.lists[l.key] != l {
		// Forgotten while it ran (a reset, the loss of its nexus), and
		// its identifier possibly reused by a newer list since.
		return
	}
	if l.Usage != UsageHold {
		delete(m.lists, l.key)
		return
	}
	m.limitHeldLocked(l.key)
}

// limitHeldLocked keeps at most maxHeldLists completed lists of one I_T_L
// nexus, dropping the oldest.
func (m *Manager) limitHeldLocked(k listKey) {
	var held []*List
	for key, l := range m.lists {
		if key.nexus == k.nexus && key.lu == k.lu && key.anon == 0 && l.done {
			held = append(held, l)
		}
	}
	for len(held) > maxHeldLists {
		oldest := 0
		for i, l := range held {
			if l.finished.Before(held[oldest].finished) {
				oldest = i
			}
		}
		delete(m.lists, held[oldest].key)
		held = append(held[:oldest], held[oldest+1:]...)
	}
}

// pruneLocked drops completed lists nobody read within the timeout.
func (m *Manager) pruneLocked() {
	now := m.now()
	for k, l := range m.lists {
		if l.done && now.Sub(l.finished) > m.ttl {
			delete(m.lists, k)
		}
	}
}

// Status returns a snapshot of the list with identifier id that nexus n
// sent to lu. With take, a completed list is forgotten once reported, as
// reading the final status of a held list releases it.
func (m *Manager) Status(n *scsi.Nexus, lu *scsi.LU, id uint32, take bool) (Progress, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked()
	k := listKey{nexus: n.Key(), lu: lu, id: id}
	l := m.lists[k]
	if l == nil {
		return Progress{}, false
	}
	p := l.progressLocked()
	if take && l.done {
		delete(m.lists, k)
	}
	return p, true
}

// Abort asks the running list with identifier id from nexus n on lu to
// stop (COPY OPERATION ABORT, SPC-4 6.3). It reports false when there is
// no such list being processed: a list already done is left as it is, so
// its status keeps reporting how it ended.
func (m *Manager) Abort(n *scsi.Nexus, lu *scsi.LU, id uint32) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.lists[listKey{nexus: n.Key(), lu: lu, id: id}]
	if l == nil || l.done {
		return false
	}
	l.aborted.Store(true)
	l.cancel()
	return true
}

// cancelMatching cancels the running lists that match and, with drop,
// forgets every matching list.
//
// A list still running in the foreground (no IMMED) is left alone: its
// command's task set ends it when the event aborted that command, and a
// command that reached the logical unit after the event, while it was
// still being processed, is new work the event must not touch (with TAS
// zero it would get TASK ABORTED though nobody aborted it). It forgets
// itself when its command ends.
func (m *Manager) cancelMatching(match func(listKey) bool, drop bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, l := range m.lists {
		if !match(k) || !l.done && !l.Background {
			continue
		}
		if !l.done {
			l.cancel()
		}
		if drop {
			delete(m.lists, k)
		}
	}
}

// NexusLost aborts the copies of a nexus that is gone and forgets their
// state: nobody can ask for it any more (scsi.NexusEvents).
func (m *Manager) NexusLost(lu *scsi.LU, n *scsi.Nexus) {
	key := n.Key()
	m.cancelMatching(func(k listKey) bool { return k.nexus == key && k.lu == lu }, true)
}

// TaskSetAborted aborts the background copies the affected nexus started
// on lu; copies that still have their command are aborted with it
// (scsi.NexusEvents).
func (m *Manager) TaskSetAborted(lu *scsi.LU, n *scsi.Nexus) {
	m.cancelMatching(func(k listKey) bool { return k.lu == lu && (n == nil || k.nexus == n.Key()) }, false)
}

// Reset aborts every copy started on lu and forgets all its list state,
// as a logical unit reset clears it (scsi.NexusEvents). ROD tokens made
// from lu stay valid: SPC-4 5.17.6.7 ends a token with its lifetime, its
// inactivity timeout, DEL_TKN, a cancellation for the copy manager's own
// reasons or an administrator's revocation, not with a reset, and Windows
// hosts use a token from other hosts whose resets the holder never sees.
func (m *Manager) Reset(lu *scsi.LU) {
	m.cancelMatching(func(k listKey) bool { return k.lu == lu }, true)
}

// Retired tells the manager that lu was taken out of service (a reload
// removed its backstore, scsi.LU.Retire): the background copies sent to
// it are aborted, its list state is forgotten, and its ROD tokens are
// cancelled, their snapshots freed at once, so a WRITE USING TOKEN
// elsewhere reports the token gone rather than its source.
func (m *Manager) Retired(lu *scsi.LU) {
	m.cancelMatching(func(k listKey) bool { return k.lu == lu }, true)
	m.tok.endMatching(func(t *Token) bool { return t.lu == lu }, tokenCancelled)
}

// Running returns the number of lists not yet finished.
func (m *Manager) Running() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

// Close aborts every copy still running, waits for them to end and ends
// every token, removing the snapshot files: the process is stopping and
// its backstores are about to be closed. Persistent tokens (persist.go)
// keep their snapshot and record files for the next process.
func (m *Manager) Close() {
	// Foreground lists too (cancelMatching leaves them to their
	// command): nothing new can come that an abort must spare.
	m.mu.Lock()
	for _, l := range m.lists {
		if !l.done {
			l.cancel()
		}
	}
	m.mu.Unlock()
	m.active.Wait()
	m.tok.endMatching(func(t *Token) bool { return t.record == "" }, tokenCancelled)
	m.tok.releasePersistent()
}
