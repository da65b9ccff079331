package scsi

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/odxtgt/odxtgt/backstore"
)

// Identity is what a logical unit reports about itself in INQUIRY and its
// VPD pages. It is fixed for the life of the LU and derived from the
// configuration, so it is stable across restarts.
type Identity struct {
	Name     string // backstore name, used in log lines
	Vendor   string // T10 VENDOR IDENTIFICATION, at most 8 bytes ("LIO-ORG")
	Product  string // PRODUCT IDENTIFICATION, at most 16 bytes
	Revision string // PRODUCT REVISION LEVEL, at most 4 bytes
	Serial   string // unit serial number (VPD 80h), source of the NAA designator
}

// LUConfig configures NewLU.
type LUConfig struct {
	Identity   Identity
	Store      backstore.Store
	ReadOnly   bool
	WriteCache bool // initial WCE of the caching mode page
	Table      *Table
	Logger     *slog.Logger
	// Events, if set, hears of nexus losses, task set aborts and resets
	// on this logical unit.
	Events NexusEvents
	// Ports are the target ports the logical unit is reachable through:
	// what PERSISTENT RESERVE OUT with ALL_TG_PT registers on.
	Ports []TargetPortID
	// ReservationFile is where persistent reservations are kept while
	// APTPL is in effect; empty means they cannot persist (PTPL_C zero).
	// RestoreReservations reads it back.
	ReservationFile string
}

// LU is a logical unit: a backstore with its identity, mode state, unit
// attentions and task set. All methods are safe for concurrent use.
type LU struct {
	Identity Identity
	Store    backstore.Store // nil for the absent LU
	ReadOnly bool
	Table    *Table
	Log      *slog.Logger

	defaultMode ModeState // the mode state at power on (MODE SENSE default values)
	seq         uint64    // creation order, the order in which internal tasks lock LUs
	events      NexusEvents
	extents     extentLock
	ports       []TargetPortID // see LUConfig.Ports
	retired     atomic.Bool    // set by Retire, under mu
	prFile      string         // see LUConfig.ReservationFile
	stats       luStats        // see Stats

	// prMu serializes the commands that change reservations; resv is the
	// current state, replaced whole (see reservation.go).
	prMu sync.Mutex
	resv atomic.Pointer[resvState]

	mu        sync.Mutex // guards everything below
	mode      ModeState
	ua        map[string][]ASC    // pending unit attentions by nexus key
	seen      map[string]bool     // nexus keys that have sent a command
	lost      map[string]struct{} // ended nexus keys owed I_T NEXUS LOSS OCCURRED
	lostOrder []string            // lost, oldest first
	tasks     []*task             // the task set, in arrival order
}

// ModeState is the changeable mode parameters shared by all I_T nexuses.
type ModeState struct {
	DSense bool // control mode page D_SENSE: descriptor-format sense data
	WCE    bool // caching mode page WCE: write cache enabled
	SWP    bool // control mode page SWP: software write protect
}

// luSeq numbers logical units as they are created.
var luSeq atomic.Uint64

// NewLU returns a logical unit. The first command from every I_T nexus
// reports POWER ON, RESET, OR BUS DEVICE RESET OCCURRED, as a freshly
// started device does (SAM-5 6.3.1).
func NewLU(cfg LUConfig) *LU {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	mode := ModeState{WCE: cfg.WriteCache}
	lu := &LU{
		Identity:    cfg.Identity,
		Store:       cfg.Store,
		ReadOnly:    cfg.ReadOnly,
		Table:       cfg.Table,
		Log:         log.With("lu", cfg.Identity.Name),
		defaultMode: mode,
		seq:         luSeq.Add(1),
		ports:       cfg.Ports,
		prFile:      cfg.ReservationFile,
		mode:        mode,
		ua:          map[string][]ASC{},
		seen:        map[string]bool{},
		lost:        map[string]struct{}{},
	}
	lu.resv.Store(&resvState{pr: &prState{}})
	// The SPC-2 reservation ends with its I_T nexus and with a reset:
	// the logical unit hears of both before cfg.Events does.
	lu.events = reservationEvents{lu: lu, next: cfg.Events}
	return lu
}

// NewAbsentLU returns the logical unit that answers for LUNs without one:
// INQUIRY reports peripheral qualifier 011b, REPORT LUNS and REQUEST SENSE
// work, everything else is LOGICAL UNIT NOT SUPPORTED (SPC-4 4.6.2).
func NewAbsentLU(table *Table, logger *slog.Logger) *LU {
	return NewLU(LUConfig{Identity: Identity{Name: "(no LU)"}, Table: table, Logger: logger})
}

// Present reports whether this is a real logical unit.
func (lu *LU) Present() bool { return lu.Store != nil }

// Retire takes the logical unit out of service once no nexus can reach it
// any more (its backstore was removed by a configuration reload): it waits
// until the tasks in its task set have ended, and any task that enters it
// later ends with LOGICAL UNIT NOT SUPPORTED without touching the medium,
// so the caller may then close the backstore.
func (lu *LU) Retire() {
	lu.mu.Lock()
	lu.retired.Store(true)
	var waits []chan struct{}
	for _, t := range lu.tasks {
		waits = append(waits, t.done)
	}
	lu.mu.Unlock()
	wait(waits)
}

// Mode returns the current mode state.
func (lu *LU) Mode() ModeState {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	return lu.mode
}

// DefaultMode returns the mode state the logical unit starts with, which
// MODE SENSE reports as the default values (SPC-4 MODE SENSE, PC 10b).
func (lu *LU) DefaultMode() ModeState { return lu.defaultMode }

// UpdateMode applies update to the mode state atomically, so concurrent
// MODE SELECT commands changing different parameters do not undo each
// other. When the state changed, every other I_T nexus gets MODE
// PARAMETERS CHANGED (SPC-4 7.5.1).
func (lu *LU) UpdateMode(from *Nexus, update func(*ModeState)) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	m := lu.mode
	update(&m)
	if m == lu.mode {
		return
	}
	lu.mode = m
	lu.establishUALocked(ASCModeParametersChanged, from.Key())
}

// WriteCacheEnabled reports WCE: when clear, every write is forced to the
// medium before GOOD (SBC-3 6.4.5).
func (lu *LU) WriteCacheEnabled() bool { return lu.Mode().WCE }

// WriteProtected reports whether writes are refused: the LU is read-only or
// software write protect is set.
func (lu *LU) WriteProtected() bool { return lu.ReadOnly || lu.Mode().SWP }

// EstablishUA queues a unit attention for every I_T nexus except the one
// named by exceptKey ("" for none).
func (lu *LU) EstablishUA(code ASC, exceptKey string) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	lu.establishUALocked(code, exceptKey)
}

func (lu *LU) establishUALocked(code ASC, exceptKey string) {
	for key := range lu.seen {
		if key != exceptKey {
			lu.queueUALocked(key, code)
		}
	}
}

// maxPendingUA bounds the unit attentions queued per nexus; past it the
// oldest is dropped, as SPC-4 5.14 allows when storage runs out.
const maxPendingUA = 8

func (lu *LU) queueUALocked(key string, code ASC) {
	q := lu.ua[key]
	for _, c := range q {
		if c == code {
			return
		}
	}
	if len(q) == maxPendingUA {
		q = q[1:]
	}
	lu.ua[key] = append(q, code)
}

// noteNexusLocked records a nexus's first command, queueing the power-on
// unit attention for it, or I_T NEXUS LOSS OCCURRED when the same
// initiator port had a nexus that ended (SAM-5 6.3.4).
func (lu *LU) noteNexusLocked(key string) {
	if lu.seen[key] {
		return
	}
	lu.seen[key] = true
	if lu.forgetLostLocked(key) {
		lu.queueUALocked(key, ASCITNexusLossOccurred)
		return
	}
	lu.queueUALocked(key, ASCPowerOnResetOrBusDeviceReset)
}

// TakeUA removes and returns the oldest pending unit attention for the
// nexus, or nil.
func (lu *LU) TakeUA(n *Nexus) *Sense {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	return lu.takeUALocked(n.Key())
}

func (lu *LU) takeUALocked(key string) *Sense {
	q := lu.ua[key]
	if len(q) == 0 {
		return nil
	}
	if len(q) == 1 {
		delete(lu.ua, key)
	} else {
		lu.ua[key] = q[1:]
	}
	return NewSense(UnitAttention, q[0])
}

// ClearUA drops a pending unit attention with the given code for the nexus
// (REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED, SPC-4 6.33).
func (lu *LU) ClearUA(n *Nexus, code ASC) {
	lu.mu.Lock()
	defer lu.mu.Unlock()
	key := n.Key()
	q := lu.ua[key][:0:0]
	for _, c := range lu.ua[key] {
		if c != code {
			q = append(q, c)
		}
	}
	if len(q) == 0 {
		delete(lu.ua, key)
	} else {
		lu.ua[key] = q
	}
}
