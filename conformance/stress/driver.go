package stress

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// Op is a kind of operation the driver issues.
type Op int

// The operations, each picked with the weight in opWeights.
const (
	OpRead10 Op = iota
	OpRead16
	OpWrite10
	OpWrite16
	OpCompareAndWrite     // on the session's own region, right or wrong old data
	OpCompareAndWriteLock // on the shared lock blocks
	OpWriteSame
	OpWriteSameUnmap
	OpUnmap
	OpExtendedCopy
	OpPopulateToken // with RECEIVE ROD TOKEN INFORMATION
	OpWriteUsingToken
	OpSyncCache           // SYNCHRONIZE CACHE (10) of the whole LU
	OpWriteUsingZeroToken // the block device zero ROD token
	OpCopyAbort           // EXTENDED COPY (LID4) with IMMED, then COPY OPERATION ABORT
	OpAbortTask           // a WRITE, then ABORT TASK of it
	OpDropConnection      // a WRITE, copy or token write on a session of its own whose TCP connection is closed under it
	numOps
)

var opNames = [numOps]string{
	"READ (10)", "READ (16)", "WRITE (10)", "WRITE (16)", "COMPARE AND WRITE", "COMPARE AND WRITE (lock)",
	"WRITE SAME (16)", "WRITE SAME (16) UNMAP", "UNMAP", "EXTENDED COPY", "POPULATE TOKEN", "WRITE USING TOKEN",
	"SYNCHRONIZE CACHE (10)", "WRITE USING TOKEN (zero token)", "COPY OPERATION ABORT", "ABORT TASK", "connection drop",
}

var opWeights = [numOps]int{10, 10, 8, 8, 4, 6, 3, 3, 3, 6, 4, 5, 2, 2, 2, 2, 1}

func (o Op) String() string {
	if o >= 0 && o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Config describes one stress run.
type Config struct {
	// Addr is the portal, Target the target name.
	Addr, Target string
	// Initiators are the initiator names; session i uses Initiators[i%len].
	Initiators []string
	// LUNs are the logical units to use, all with 512-byte blocks. The
	// lock blocks are on LUNs[0].
	LUNs []uint64
	// Sessions is the number of sessions (default 16).
	Sessions int
	// Workers is the number of workers per session (default 2), each
	// with its own region and random stream, so that a session has
	// several commands outstanding.
	Workers int
	// Seed makes every session's operations reproducible.
	Seed uint64
	// Duration is how long sessions issue operations before the final
	// verification.
	Duration time.Duration
	// LockBlocks is the number of COMPARE AND WRITE lock blocks (default 4).
	LockBlocks int
	// Exclude lists operations not to issue.
	Exclude map[Op]bool
	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
	// Crash, if set, makes the run a crash test: see [Crash].
	Crash *Crash
	// LUNResets, when set, sends a LOGICAL UNIT RESET every second or two
	// from a session of its own to one of the LUs but the first (whose
	// lock blocks and IMMED copies a reset would make unknown); the
	// commands it aborts on other sessions get no response (TAS=0), and
	// are taken as cut short after resetGrace.
	LUNResets bool
	// Faults, if set, is called once the regions are laid out (the
	// first block of worker 0's region and the blocks per region) and
	// returns the blocks whose writes the backstore fails: a command
	// writing any of them must end with MEDIUM ERROR or COPY ABORTED,
	// having left them as they were, and the other blocks it covers old
	// or new.
	Faults func(base, region uint64) []FaultRange

	// sabotage, if set, runs between the operations and the final
	// verification (tests of the checker itself).
	sabotage func(ctx context.Context, workers []*session) error
}

// Crash turns a run into rounds that each end in a crash of the target:
// the workers issue operations until, at a moment drawn from the seed
// between a third of Duration and Duration, Run calls Kill, which must end
// the target at once (SIGKILL). Every command the target acknowledged
// before it died must then read back as written, and every block a write,
// copy or WRITE USING TOKEN in flight at the kill covered must read back
// as its old or its new content, whole: the target keeps no data of its
// own in memory (writes go to the file with pwrite, whose data the kernel
// holds for a dead process as for a live one), so a process crash loses
// nothing acknowledged, whatever the write cache, FUA or SYNCHRONIZE CACHE
// said; those decide only what survives a power loss, which a process
// kill cannot show. Run then calls Restart, which must start the target
// again on the same files (memory LUs lose their data: use file LUs only)
// and return its portal, logs every session in again, verifies all
// regions and goes on with the next round. Tokens do not survive the
// restart: the pool is emptied.
type Crash struct {
	// Rounds is the number of kills (default 1).
	Rounds int
	// Kill ends the target.
	Kill func() error
	// Restart starts it again and returns the portal it listens on.
	Restart func(ctx context.Context) (string, error)
}

// FaultRange is a run of blocks of a LUN whose writes fail.
type FaultRange struct {
	LUN, LBA uint64
	N        int
}

// Stats counts what a run did.
type Stats struct {
	Ops                  [numOps]int
	Time                 [numOps]time.Duration // spent in each kind of operation
	Truncations          int                   // WRITE USING TOKEN resumed after COPY TARGET DEVICE DATA UNDERRUN
	Revoked              int                   // WRITE USING TOKEN refused or stopped with a revoked token
	NoToken              int                   // WRITE USING TOKEN skipped: no token in the pool
	Retries              int                   // commands retried after BUSY, TASK SET FULL or a unit attention
	Skipped              int                   // operations skipped (UNMAP unsupported, resources)
	LockWins, LockLosses int
	Interrupted          int // commands cut short by a crash of the target
	CutShort             int // commands aborted, or whose connection was dropped, before they completed
	DroppedCopies        int // connection drops under an EXTENDED COPY or WRITE USING TOKEN (with or without IMMED)
	Resets               int // LOGICAL UNIT RESETs sent
	ResetAborted         int // commands of other sessions they aborted (no response)
	Faulted              int // commands failed by a backstore fault
	TaskAbortedStatus    int // copies answered TASK ABORTED around a reset (see commandOn)
	UnknownOld           int // blocks of such commands read back with their old content
	UnknownNew           int // with one of their new contents
	Crashes              int
}

func (s *Stats) String() string {
	var b strings.Builder
	for i, n := range s.Ops {
		avg := time.Duration(0)
		if n > 0 {
			avg = s.Time[i] / time.Duration(n)
		}
		fmt.Fprintf(&b, "%s=%d (%v) ", Op(i), n, avg.Round(time.Microsecond))
	}
	fmt.Fprintf(&b, "cut-short=%d dropped-copies=%d truncations=%d revoked=%d no-token=%d retries=%d skipped=%d lock-wins=%d lock-losses=%d",
		s.CutShort, s.DroppedCopies, s.Truncations, s.Revoked, s.NoToken, s.Retries, s.Skipped, s.LockWins, s.LockLosses)
	if s.Faulted > 0 {
		fmt.Fprintf(&b, " faulted=%d", s.Faulted)
	}
	if s.Resets > 0 {
		fmt.Fprintf(&b, " lun-resets=%d reset-aborted=%d task-aborted-status=%d", s.Resets, s.ResetAborted, s.TaskAbortedStatus)
	}
	if s.Crashes > 0 {
		fmt.Fprintf(&b, " crashes=%d interrupted=%d unknown-blocks-old=%d unknown-blocks-new=%d", s.Crashes, s.Interrupted, s.UnknownOld, s.UnknownNew)
	}
	return b.String()
}

func (s *Stats) add(o *Stats) {
	for i := range s.Ops {
		s.Ops[i] += o.Ops[i]
		s.Time[i] += o.Time[i]
	}
	s.Truncations += o.Truncations
	s.Revoked += o.Revoked
	s.NoToken += o.NoToken
	s.Retries += o.Retries
	s.Skipped += o.Skipped
	s.LockWins += o.LockWins
	s.LockLosses += o.LockLosses
	s.Interrupted += o.Interrupted
	s.CutShort += o.CutShort
	s.DroppedCopies += o.DroppedCopies
	s.ResetAborted += o.ResetAborted
	s.Faulted += o.Faulted
	s.TaskAbortedStatus += o.TaskAbortedStatus
	s.UnknownOld += o.UnknownOld
	s.UnknownNew += o.UnknownNew
}

// Failure is a difference between the target and the model, or a command
// that ended in a way the model does not allow.
type Failure struct {
	Seed    uint64
	Session int
	Worker  int // the worker (of the session) whose operation failed
	OpNum   int
	Op      Op
	LUN     uint64
	LBA     uint64 // the first differing block, when HasLBA
	HasLBA  bool
	Msg     string
}

func (f *Failure) Error() string {
	where := fmt.Sprintf("LUN %d", f.LUN)
	if f.HasLBA {
		where += fmt.Sprintf(" LBA %d", f.LBA)
	}
	return fmt.Sprintf("stress: seed %d session %d worker %d op #%d (%s): %s: %s", f.Seed, f.Session, f.Worker, f.OpNum, f.Op, where, f.Msg)
}

// lu is the model of one logical unit.
type lu struct {
	num      uint64
	blocks   uint64
	data     []byte // expected content; each session touches only its region
	cscd     []byte
	unmapMu  sync.Mutex
	noUnmap  bool
	fileLike bool
}

func (l *lu) canUnmap() bool {
	l.unmapMu.Lock()
	defer l.unmapMu.Unlock()
	return !l.noUnmap
}

// token is a populated ROD token and the data it stands for.
type token struct {
	bytes   []byte
	data    []byte
	created time.Time
	uses    int  // WRITE USING TOKENs left
	shared  bool // used by several workers at once, never deleted (DEL_TKN)
	from    int  // session that populated it
}

// run is the shared state of one Run.
type run struct {
	cfg     Config
	lus     []*lu
	region  uint64 // blocks per session per LU
	base    uint64 // first block of session 0's region
	tokMu   sync.Mutex
	tokens  []*token
	lock    *lockState
	bad     []FaultRange // Config.Faults
	statsMu sync.Mutex   // for the LU resets' count while workers run
	stats   Stats
	// down is set just before a crash: a command failing from then on
	// was cut short by it.
	down atomic.Bool
	// flights are the commands in flight, for the LU resets to find
	// those they aborted without a response.
	flightMu  sync.Mutex
	flights   map[*flight]struct{}
	flightSeq atomic.Uint64
	// resetsSent counts the LOGICAL UNIT RESETs sent, from before they
	// are; resetsDone those answered.
	resetsSent, resetsDone atomic.Uint64
}

// resetMark and resetSince tell whether a LOGICAL UNIT RESET may have
// taken effect between two moments: one not yet answered at the first,
// or sent since (it travels on a connection of its own, so it may take
// effect after commands sent later).
func (r *run) resetMark() uint64 { return r.resetsDone.Load() }

func (r *run) resetSince(mark uint64) bool { return r.resetsSent.Load() != mark }

// flight is a command in flight.
type flight struct {
	lun    uint64
	seq    uint64
	cancel context.CancelCauseFunc
}

// resetGrace is how long a command in flight on an LU at its reset may
// still take to answer before it is taken as aborted: a command the
// reset did not abort answers at once (with the unit attention, if it
// came after).
const resetGrace = 2 * time.Second

// errResetAborted is the cause of cancelling a command a reset aborted.
var errResetAborted = errors.New("stress: aborted by a LOGICAL UNIT RESET")

func (r *run) startFlight(lun uint64, cancel context.CancelCauseFunc) *flight {
	f := &flight{lun: lun, seq: r.flightSeq.Add(1), cancel: cancel}
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if r.flights == nil {
		r.flights = map[*flight]struct{}{}
	}
	r.flights[f] = struct{}{}
	return f
}

func (r *run) endFlight(f *flight) {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	delete(r.flights, f)
}

// expireFlights gives the commands started on lun up to sequence number
// seq resetGrace to answer.
func (r *run) expireFlights(lun, seq uint64) {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	for f := range r.flights {
		if f.lun == lun && f.seq <= seq {
			time.AfterFunc(resetGrace, func() { f.cancel(errResetAborted) })
		}
	}
}

// resetLoop sends LOGICAL UNIT RESETs until stop ends (Config.LUNResets).
func (r *run) resetLoop(stop, ctx context.Context) error {
	c, err := initiator.Dial(ctx, r.cfg.Addr, initiator.Config{InitiatorName: r.cfg.Initiators[0], TargetName: r.cfg.Target})
	if err != nil {
		if r.down.Load() {
			return nil
		}
		return fmt.Errorf("stress: the session of the LU resets: %w", err)
	}
	defer c.Close()
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 1<<33))
	for {
		select {
		case <-stop.Done():
			return nil
		case <-time.After(time.Second + time.Duration(rng.Int64N(int64(time.Second)))):
		}
		l := r.lus[1+rng.IntN(len(r.lus)-1)]
		r.resetsSent.Add(1)
		code, err := c.TaskMgmt(ctx, initiator.TMFLogicalUnitReset, l.num, 0)
		r.resetsDone.Add(1)
		if err != nil {
			if r.down.Load() {
				return nil
			}
			return fmt.Errorf("stress: LOGICAL UNIT RESET of LUN %d: %w", l.num, err)
		}
		if code != 0 {
			return fmt.Errorf("stress: LOGICAL UNIT RESET of LUN %d: response %d", l.num, code)
		}
		r.statsMu.Lock()
		r.stats.Resets++
		r.statsMu.Unlock()
		// Every command started before the answer may have been
		// aborted: the reset may have taken effect after commands
		// other sessions sent once it was on its way.
		r.expireFlights(l.num, r.flightSeq.Load())
	}
}

// errInterrupted is what a command returns when the target crashed under
// it.
var errInterrupted = errors.New("stress: the target crashed")

// errCutShort is what an operation returns when its command was aborted
// (ABORT TASK, COPY OPERATION ABORT) or its connection dropped before it
// completed: the pending writes may have happened in part, and the target
// has ended the command (the abort's response, or the reinstatement of
// the session, comes after it).
var errCutShort = errors.New("stress: command cut short")

const (
	tokenTimeout = 5 // seconds, the POPULATE TOKEN inactivity timeout
	tokenMaxAge  = 3 * time.Second
	maxTokens    = 64
)

// Run drives the target as cfg says, verifies every session's regions
// against the model at the end and returns what it did. The error is a
// *Failure for a difference from the model.
func Run(ctx context.Context, cfg Config) (*Stats, error) {
	if cfg.Sessions <= 0 {
		cfg.Sessions = 16
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Workers > 4 {
		return nil, errors.New("stress: at most 4 workers per session")
	}
	if cfg.LockBlocks <= 0 {
		cfg.LockBlocks = 4
	}
	if len(cfg.Initiators) == 0 || len(cfg.LUNs) == 0 {
		return nil, errors.New("stress: no initiators or no LUNs")
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	r := &run{cfg: cfg, lock: newLockState(cfg.LockBlocks)}

	var sessions []*session // the workers
	defer func() {
		for _, s := range sessions {
			if s.sub == 0 {
				s.conn.Close()
			}
		}
	}()
	for i := range cfg.Sessions {
		c, err := r.dial(ctx, i)
		if err != nil {
			return nil, err
		}
		for w := range cfg.Workers {
			id := i*cfg.Workers + w
			sessions = append(sessions, &session{r: r, id: id, sess: i, sub: w, conn: c, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(id)))})
		}
	}
	if err := r.discover(ctx, sessions[0]); err != nil {
		return nil, err
	}

	defer func() {
		for _, s := range sessions {
			r.stats.add(&s.stats)
		}
	}()
	if cfg.Crash != nil {
		if err := r.crashRounds(ctx, sessions); err != nil {
			return &r.stats, err
		}
		return &r.stats, r.lock.final(ctx, sessions[0])
	}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	if err := r.phase(runCtx, ctx, sessions); err != nil {
		return &r.stats, err
	}
	if cfg.sabotage != nil {
		if err := cfg.sabotage(ctx, sessions); err != nil {
			return &r.stats, err
		}
	}
	// Final verification: every region of every LU, and the lock blocks.
	if err := r.verify(ctx, sessions); err != nil {
		return &r.stats, err
	}
	if err := r.lock.final(ctx, sessions[0]); err != nil {
		return &r.stats, err
	}
	return &r.stats, nil
}

// phase runs every worker's loop until stop ends or one fails; commands
// run under ctx, not stop: a command cut short by the end of the phase
// would go on in the target unseen by the model.
func (r *run) phase(stop, ctx context.Context, sessions []*session) error {
	stop, cancel := context.WithCancel(stop)
	defer cancel()
	errs := make([]error, len(sessions)+1)
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.loop(stop, ctx); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	if r.cfg.LUNResets && len(r.lus) > 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The resets stop when the workers do.
			if err := r.resetLoop(stop, ctx); err != nil {
				errs[len(sessions)] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	return firstFailure(errs)
}

// verify reads every worker's regions and checks them against the model.
func (r *run) verify(ctx context.Context, sessions []*session) error {
	errs := make([]error, len(sessions))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.verifyAll(ctx)
		}()
	}
	wg.Wait()
	return firstFailure(errs)
}

// crashRounds runs the rounds of a crash test (see [Crash]).
func (r *run) crashRounds(ctx context.Context, sessions []*session) error {
	c := r.cfg.Crash
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 1<<32))
	for round := range max(c.Rounds, 1) {
		at := r.cfg.Duration/3 + time.Duration(rng.Int64N(int64(r.cfg.Duration*2/3)+1))
		killed := make(chan error, 1)
		timer := time.AfterFunc(at, func() {
			r.down.Store(true)
			killed <- c.Kill()
		})
		// The workers stop when the crash cuts their commands short.
		err := r.phase(ctx, ctx, sessions)
		if timer.Stop() {
			return err // a failure before the kill
		}
		if kerr := <-killed; kerr != nil {
			return kerr
		}
		if err != nil {
			return err
		}
		r.stats.Crashes++
		r.cfg.Logf("stress: round %d: killed the target after %v", round, at.Round(time.Millisecond))
		for _, s := range sessions {
			if s.sub == 0 {
				s.conn.Close()
			}
		}
		addr, err := c.Restart(ctx)
		if err != nil {
			return err
		}
		r.cfg.Addr = addr
		r.down.Store(false)
		r.tokMu.Lock()
		r.tokens = nil
		r.tokMu.Unlock()
		for i := range r.cfg.Sessions {
			conn, err := r.dial(ctx, i)
			if err != nil {
				return err
			}
			for _, s := range sessions {
				if s.sess == i {
					s.conn = conn
				}
			}
		}
		if err := r.verify(ctx, sessions); err != nil {
			return err
		}
	}
	return nil
}

// firstFailure prefers a model failure to the context errors other
// sessions got when the run was cancelled.
func firstFailure(errs []error) error {
	var first error
	for _, err := range errs {
		var f *Failure
		if errors.As(err, &f) {
			return err
		}
		if err != nil && first == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			first = err
		}
	}
	return first
}

// withDigests reports whether session i uses CRC32C header and data
// digests: every other one does, so both framings are under load.
func withDigests(i int) bool { return i%2 == 1 }

func (r *run) dial(ctx context.Context, i int) (*initiator.Session, error) {
	name := r.cfg.Initiators[i%len(r.cfg.Initiators)]
	d := withDigests(i)
	c, err := initiator.Dial(ctx, r.cfg.Addr, initiator.Config{InitiatorName: name, TargetName: r.cfg.Target, HeaderDigest: d, DataDigest: d})
	if err != nil {
		return nil, fmt.Errorf("stress: session %d (%s): %w", i, name, err)
	}
	for _, lun := range r.cfg.LUNs {
		// The power-on unit attention.
		if _, err := c.Command(ctx, initiator.Request{LUN: lun, CDB: make([]byte, 6)}); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// discover reads the capacity and the NAA designator of every LU and lays
// out the regions.
func (r *run) discover(ctx context.Context, s *session) error {
	minBlocks := uint64(0)
	for _, lun := range r.cfg.LUNs {
		cdb := make([]byte, 16)
		cdb[0], cdb[1] = 0x9E, 0x10
		binary.BigEndian.PutUint32(cdb[10:], 32)
		resp, err := s.conn.Command(ctx, initiator.Request{LUN: lun, CDB: cdb, ReadLen: 32})
		if err != nil || resp.Status != scsi.StatusGood || len(resp.DataIn) < 12 {
			return fmt.Errorf("stress: READ CAPACITY (16) of LUN %d: %v %v", lun, err, resp)
		}
		blocks := binary.BigEndian.Uint64(resp.DataIn) + 1
		if bs := binary.BigEndian.Uint32(resp.DataIn[8:]); bs != BlockSize {
			return fmt.Errorf("stress: LUN %d has %d-byte blocks, not %d", lun, bs, BlockSize)
		}
		resp, err = s.conn.Command(ctx, initiator.Request{LUN: lun, CDB: []byte{0x12, 0x01, 0x83, 0x10, 0x00, 0x00}, ReadLen: 4096})
		if err != nil || resp.Status != scsi.StatusGood {
			return fmt.Errorf("stress: VPD 83h of LUN %d: %v %v", lun, err, resp)
		}
		c := naaCSCD(resp.DataIn)
		if c == nil {
			return fmt.Errorf("stress: LUN %d reports no NAA designator", lun)
		}
		r.lus = append(r.lus, &lu{num: lun, blocks: blocks, data: make([]byte, blocks*BlockSize), cscd: c})
		if minBlocks == 0 || blocks < minBlocks {
			minBlocks = blocks
		}
	}
	r.base = uint64(r.cfg.LockBlocks)
	r.region = (minBlocks - r.base) / uint64(r.cfg.Sessions*r.cfg.Workers)
	if r.region < 16 {
		return fmt.Errorf("stress: %d blocks per session region is too few", r.region)
	}
	if r.cfg.Faults != nil {
		r.bad = r.cfg.Faults(r.base, r.region)
	}
	r.cfg.Logf("stress: %d sessions of %d workers, %d LUs, %d blocks per worker region, %d lock blocks",
		r.cfg.Sessions, r.cfg.Workers, len(r.lus), r.region, r.cfg.LockBlocks)
	return nil
}

func (r *run) putToken(t *token) {
	r.tokMu.Lock()
	defer r.tokMu.Unlock()
	if len(r.tokens) >= maxTokens {
		r.tokens = r.tokens[1:]
	}
	r.tokens = append(r.tokens, t)
}

// takeToken takes one use of a token of the pool, dropping those close to
// their inactivity timeout; i picks which. An exclusive token leaves the
// pool while it is used (putToken puts it back); a shared one stays, for
// other workers to use at once, until its uses are taken.
func (r *run) takeToken(i int) *token {
	r.tokMu.Lock()
	defer r.tokMu.Unlock()
	now := time.Now()
	kept := r.tokens[:0]
	for _, t := range r.tokens {
		if now.Sub(t.created) < tokenMaxAge {
			kept = append(kept, t)
		}
	}
	r.tokens = kept
	if len(r.tokens) == 0 {
		return nil
	}
	i %= len(r.tokens)
	t := r.tokens[i]
	t.uses--
	if !t.shared || t.uses == 0 {
		r.tokens = append(r.tokens[:i], r.tokens[i+1:]...)
	}
	return t
}

// change is a model update, kept to explain a failure.
type change struct {
	opn   int
	op    Op
	lun   uint64
	lba   uint64
	n     int
	extra string
}

const historyLen = 4096

func (s *session) touch(l *lu, lba uint64, n int, extra string) {
	if len(s.hist) >= historyLen {
		s.hist = s.hist[historyLen/2:]
	}
	s.hist = append(s.hist, change{s.opn, s.op, l.num, lba, n, extra})
}

// historyOf describes the last model updates of the session to a block.
func (s *session) historyOf(lun, lba uint64) string {
	var out []string
	for i := len(s.hist) - 1; i >= 0 && len(out) < 6; i-- {
		c := s.hist[i]
		if c.lun == lun && lba >= c.lba && lba < c.lba+uint64(c.n) {
			out = append(out, fmt.Sprintf("op #%d %s blocks %d+%d %s", c.opn, c.op, c.lba, c.n, c.extra))
		}
	}
	if len(out) == 0 {
		return "; no recent model update of this block by the worker"
	}
	return "; last updates by the worker, newest first: " + strings.Join(out, "; ")
}

// session is one worker of an iSCSI session: its region and its random
// stream; the workers of a session share its connection.
type session struct {
	r     *run
	id    int // worker number, over all sessions; owns region id
	sess  int // session number
	sub   int // worker number within the session
	conn  *initiator.Session
	rng   *rand.Rand
	opn   int
	op    Op
	stats Stats
	hist  []change
	// pending are the model updates of the command in flight, made when
	// it completes.
	pending []pendingWrite
	// unknown holds, for each block of the worker's regions that a
	// command cut short by a crash covered, the contents it may hold
	// besides the model's; the next read settles it.
	unknown map[blockKey][][]byte
	// recent names the worker's last operations, for a command that
	// gets no answer.
	recent []string
}

type blockKey struct{ lun, lba uint64 }

// pendingWrite is data a command in flight writes at lba of l.
type pendingWrite struct {
	l     *lu
	lba   uint64
	data  []byte
	extra string
}

// expect notes that the command about to be sent writes data at lba.
func (s *session) expect(l *lu, lba uint64, data []byte, extra string) {
	s.pending = append(s.pending, pendingWrite{l, lba, data, extra})
}

// settle applies the pending writes, in order, to the model: the command
// completed.
func (s *session) settle() {
	for _, p := range s.pending {
		n := len(p.data) / BlockSize
		s.touch(p.l, p.lba, n, p.extra)
		copy(p.l.at(p.lba, n), p.data)
		for i := range uint64(n) {
			delete(s.unknown, blockKey{p.l.num, p.lba + i})
		}
	}
	s.pending = nil
}

// readBack settles the pending writes of a command cut short: the blocks
// they cover are read back, each of which must be the old or one of the
// new contents.
func (s *session) readBack(ctx context.Context) error {
	saved := s.pending
	s.unsettle()
	// A failed write never reaches the store: its blocks keep their
	// content.
	for k := range s.unknown {
		if s.r.isBad(k.lun, k.lba) {
			delete(s.unknown, k)
		}
	}
	for _, p := range saved {
		n := len(p.data) / BlockSize
		got, err := s.readSettled(ctx, p.l, p.lba, n)
		if err != nil {
			return err
		}
		if err := s.compare(p.l, p.lba, got, "read back after a command cut short"); err != nil {
			return err
		}
	}
	return nil
}

// readSettled reads blocks whose content must be known before the worker
// goes on, again if a reset aborts the read.
func (s *session) readSettled(ctx context.Context, l *lu, lba uint64, n int) ([]byte, error) {
	for {
		got, err := s.readBlocks(ctx, l, lba, n, true)
		if !errors.Is(err, errCutShort) {
			return got, err
		}
	}
}

// unsettle records that the pending writes may or may not have happened,
// block by block: each block holds its old content or one of the new ones.
func (s *session) unsettle() {
	if s.unknown == nil {
		s.unknown = map[blockKey][][]byte{}
	}
	for _, p := range s.pending {
		for i := range len(p.data) / BlockSize {
			k := blockKey{p.l.num, p.lba + uint64(i)}
			b := p.data[i*BlockSize : (i+1)*BlockSize]
			if bytes.Equal(b, p.l.at(k.lba, 1)) || slices.ContainsFunc(s.unknown[k], func(x []byte) bool { return bytes.Equal(x, b) }) {
				continue
			}
			s.unknown[k] = append(s.unknown[k], b)
		}
	}
	s.pending = nil
}

func (s *session) fail(l *lu, lba uint64, hasLBA bool, format string, args ...any) error {
	f := &Failure{Seed: s.r.cfg.Seed, Session: s.sess, Worker: s.id, OpNum: s.opn, Op: s.op, LBA: lba, HasLBA: hasLBA, Msg: fmt.Sprintf(format, args...)}
	if l != nil {
		f.LUN = l.num
		if hasLBA {
			f.Msg += s.historyOf(l.num, lba)
		}
	}
	return f
}

// loop issues operations until stop ends; commands run under ctx.
func (s *session) loop(stop, ctx context.Context) error {
	total := 0
	for i, w := range opWeights {
		if !s.r.cfg.Exclude[Op(i)] {
			total += w
		}
	}
	for stop.Err() == nil {
		s.opn++
		k := s.rng.IntN(total)
		s.op = 0
		for i, w := range opWeights {
			if s.r.cfg.Exclude[Op(i)] {
				continue
			}
			if k < w {
				s.op = Op(i)
				break
			}
			k -= w
		}
		s.stats.Ops[s.op]++
		t0 := time.Now()
		s.pending = nil
		if len(s.recent) == 8 {
			s.recent = s.recent[1:]
		}
		s.recent = append(s.recent, fmt.Sprintf("#%d %s", s.opn, s.op))
		if err := s.do(ctx); err != nil {
			if errors.Is(err, errInterrupted) {
				s.stats.Interrupted++
				s.unsettle()
				return nil
			}
			if !errors.Is(err, errCutShort) {
				return err
			}
			s.stats.CutShort++
			if err := s.readBack(ctx); errors.Is(err, errInterrupted) {
				return nil
			} else if err != nil {
				return err
			}
		}
		s.stats.Time[s.op] += time.Since(t0)
	}
	return nil
}

func (s *session) do(ctx context.Context) error {
	switch s.op {
	case OpRead10, OpRead16:
		l, rg := s.pickRange(128)
		return s.read(ctx, l, rg.lba, rg.n, s.op == OpRead16)
	case OpWrite10, OpWrite16:
		return s.write(ctx)
	case OpCompareAndWrite:
		return s.compareAndWrite(ctx)
	case OpCompareAndWriteLock:
		return s.r.lock.round(ctx, s)
	case OpWriteSame, OpWriteSameUnmap:
		return s.writeSame(ctx, s.op == OpWriteSameUnmap)
	case OpUnmap:
		return s.unmap(ctx)
	case OpExtendedCopy:
		return s.extendedCopy(ctx)
	case OpPopulateToken:
		return s.populate(ctx)
	case OpWriteUsingToken:
		return s.writeUsingToken(ctx)
	case OpWriteUsingZeroToken:
		return s.writeZeroToken(ctx)
	case OpCopyAbort:
		return s.copyAbort(ctx)
	case OpAbortTask:
		return s.abortTask(ctx)
	case OpDropConnection:
		return s.dropConnection(ctx)
	case OpSyncCache:
		l := s.r.lus[s.rng.IntN(len(s.r.lus))]
		resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}})
		if err != nil {
			return err
		}
		return s.expectGood(l, 0, resp, "SYNCHRONIZE CACHE")
	}
	return nil
}

// regionStart is the first block of the session's region (on every LU).
func (s *session) regionStart() uint64 { return s.r.base + uint64(s.id)*s.r.region }

// pickRange picks an LU and a range of 1 to max blocks in the session's
// region of it.
func (s *session) pickRange(max int) (*lu, blockRange) {
	l := s.r.lus[s.rng.IntN(len(s.r.lus))]
	return l, s.rangeIn(max)
}

func (s *session) rangeIn(max int) blockRange {
	n := 1 + s.rng.IntN(min(max, int(s.r.region)))
	off := s.rng.Uint64N(s.r.region - uint64(n) + 1)
	return blockRange{s.regionStart() + off, n}
}

// disjointRanges picks k non-overlapping ranges of the region holding
// total blocks (total <= region).
func (s *session) disjointRanges(k, total int) []blockRange {
	k = max(1, min(k, total))
	// Split total into k positive parts and the rest of the region into k+1 gaps.
	cuts := []int{0, total}
	for len(cuts) < k+1 {
		c := 1 + s.rng.IntN(total-1)
		dup := false
		for _, x := range cuts {
			dup = dup || x == c
		}
		if !dup {
			cuts = append(cuts, c)
		}
	}
	sort.Ints(cuts)
	spare := int(s.r.region) - total
	marks := make([]int, k)
	for i := range marks {
		marks[i] = s.rng.IntN(spare + 1)
	}
	sort.Ints(marks)
	gaps := make([]int, k)
	prev := 0
	for i, m := range marks {
		gaps[i], prev = m-prev, m
	}
	var out []blockRange
	pos := s.regionStart()
	for i := range k {
		pos += uint64(gaps[i])
		n := cuts[i+1] - cuts[i]
		out = append(out, blockRange{pos, n})
		pos += uint64(n)
	}
	return out
}

// fill returns n blocks of random data, each stamped with the worker,
// op and block number so that a misplaced block is recognisable.
func (s *session) fill(n int) []byte {
	b := make([]byte, n*BlockSize)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], s.rng.Uint64())
	}
	for i := range n {
		copy(b[i*BlockSize:], fmt.Sprintf("w%d op%d b%d ", s.id, s.opn, i))
	}
	return b
}

func (l *lu) at(lba uint64, n int) []byte {
	return l.data[lba*BlockSize : (lba+uint64(n))*BlockSize]
}

// command runs req, retrying on BUSY, TASK SET FULL and unit attentions.
func (s *session) command(ctx context.Context, req initiator.Request) (*initiator.Response, error) {
	return s.commandOn(ctx, s.conn, req)
}

// transportErr turns the error of a command that got no response into
// what the operation returns.
func (s *session) transportErr(ctx context.Context, lun uint64, cdb []byte, err error) error {
	if s.r.down.Load() {
		return errInterrupted
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f := s.fail(nil, 0, false, "command % x: %v (the worker's last operations: %s)", cdb, err, strings.Join(s.recent, ", "))
	f.(*Failure).LUN = lun
	return f
}

// retryable reports whether a command ended without effect in a way an
// initiator retries.
func retryable(resp *initiator.Response) bool {
	return resp.Status == scsi.StatusBusy || resp.Status == scsi.StatusTaskSetFull ||
		(resp.Status == scsi.StatusCheckCondition && resp.Sense != nil && resp.Sense.Key == scsi.UnitAttention)
}

func (s *session) commandOn(ctx context.Context, conn *initiator.Session, req initiator.Request) (*initiator.Response, error) {
	for try := 0; ; try++ {
		resets := s.r.resetMark()
		fctx, fcancel := context.WithCancelCause(ctx)
		f := s.r.startFlight(req.LUN, fcancel)
		cctx, cancel := context.WithTimeout(fctx, 60*time.Second)
		resp, err := conn.Command(cctx, req)
		cancel()
		s.r.endFlight(f)
		fcancel(nil)
		if err != nil {
			if errors.Is(context.Cause(fctx), errResetAborted) {
				s.stats.ResetAborted++
				return nil, errCutShort
			}
			if errors.Is(err, initiator.ErrTaskAborted) {
				return nil, errCutShort
			}
			return nil, s.transportErr(ctx, req.LUN, req.CDB, err)
		}
		if sn := resp.Sense; resp.Status == scsi.StatusCheckCondition && sn != nil && sn.Key == scsi.AbortedCommand && sn.Code == 0 &&
			s.r.resetSince(resets) {
			// A copy or token command whose source or destination LU
			// was reset under it, its own LU not: ABORTED COMMAND.
			s.stats.ResetAborted++
			return nil, errCutShort
		}
		if resp.Status == scsi.StatusTaskAborted && s.r.resetSince(resets) {
			// A known flaw of the target, tolerated here: a copy whose
			// command reached its LU while a LOGICAL UNIT RESET was
			// being processed, too late to be aborted by it, has its
			// list cancelled when the reset then forgets the LU's lists
			// (rod.Manager.Reset), and ends with TASK ABORTED status,
			// which TAS=0 does not allow.
			s.stats.TaskAbortedStatus++
			return nil, errCutShort
		}
		if !retryable(resp) || try >= 50 {
			return resp, nil
		}
		s.stats.Retries++
		time.Sleep(time.Duration(1+try) * time.Millisecond)
	}
}

func senseString(resp *initiator.Response) string {
	if resp.Sense != nil {
		return fmt.Sprintf("%v %v (info %d/%v)", resp.Status, resp.Sense, resp.Sense.Information, resp.Sense.HasInformation)
	}
	return fmt.Sprintf("%v sense % x", resp.Status, resp.SenseRaw)
}

// isBad reports whether writes of block lba of LUN lun fail.
func (r *run) isBad(lun, lba uint64) bool {
	for _, b := range r.bad {
		if b.LUN == lun && lba >= b.LBA && lba < b.LBA+uint64(b.N) {
			return true
		}
	}
	return false
}

// pendingBad reports whether a pending write covers a block whose writes
// fail.
func (s *session) pendingBad() bool {
	for _, p := range s.pending {
		for b := range uint64(len(p.data) / BlockSize) {
			if s.r.isBad(p.l.num, p.lba+b) {
				return true
			}
		}
	}
	return false
}

// errFaulted is what an operation returns when a backstore fault failed
// its command as it should: the loop reads its blocks back.
var errFaulted = fmt.Errorf("%w by a backstore fault", errCutShort)

// faulted returns errFaulted if resp is the failure a backstore fault
// under the pending writes must cause: MEDIUM ERROR (an I/O error), DATA
// PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT (the file system is
// full), or COPY ABORTED.
// The INFORMATION of a MEDIUM ERROR (when valid) is the first block of
// the store write that failed: a block of the command at or before a
// failing one.
func (s *session) faulted(resp *initiator.Response) error {
	sn := resp.Sense
	if resp.Status != scsi.StatusCheckCondition || sn == nil {
		return nil
	}
	noSpace := sn.Key == scsi.DataProtect && sn.Code == scsi.ASCSpaceAllocationFailedWP
	if sn.Key != scsi.MediumError && sn.Key != scsi.CopyAborted && !noSpace {
		return nil
	}
	var bad *pendingWrite
	named := false // INFORMATION is at or before a failing block of a pending write
	for i, p := range s.pending {
		for b := range uint64(len(p.data) / BlockSize) {
			if s.r.isBad(p.l.num, p.lba+b) {
				bad = &s.pending[i]
				named = named || sn.Information >= p.lba && sn.Information <= p.lba+b
			}
		}
	}
	if bad == nil {
		return nil
	}
	if sn.Key == scsi.MediumError && sn.HasInformation && !named {
		return s.fail(bad.l, sn.Information, true, "MEDIUM ERROR names no block at or before a failing one: %s", senseString(resp))
	}
	s.stats.Faulted++
	return errFaulted
}

func (s *session) expectGood(l *lu, lba uint64, resp *initiator.Response, what string) error {
	if err := s.faulted(resp); err != nil {
		return err
	}
	if resp.Status != scsi.StatusGood {
		return s.fail(l, lba, true, "%s: %s", what, senseString(resp))
	}
	return nil
}

// compare checks got against the model at lba.
func (s *session) compare(l *lu, lba uint64, got []byte, what string) error {
	want := l.at(lba, len(got)/BlockSize)
	if bytes.Equal(got, want) && len(s.unknown) == 0 {
		return nil
	}
	if len(got) != len(want) {
		return s.fail(l, lba, true, "%s: %d bytes, want %d", what, len(got), len(want))
	}
	for i := 0; i < len(got); i += BlockSize {
		g, w := got[i:i+BlockSize], want[i:i+BlockSize]
		b := lba + uint64(i/BlockSize)
		alts, unknown := s.unknown[blockKey{l.num, b}]
		// Only a crash makes blocks unknown, and its process can write
		// no more: what this read shows is the block's content.
		delete(s.unknown, blockKey{l.num, b})
		switch {
		case bytes.Equal(g, w):
			if unknown {
				s.stats.UnknownOld++
			}
		case unknown && slices.ContainsFunc(alts, func(x []byte) bool { return bytes.Equal(x, g) }):
			s.stats.UnknownNew++
			s.touch(l, b, 1, "written by a command cut short by a crash")
			copy(w, g)
		case unknown:
			return s.fail(l, b, true, "%s: block a command cut short by a crash covered is neither its old content nor one of %d new ones: got %q…, want %q…",
				what, len(alts), printable(g[:32]), printable(w[:32]))
		default:
			return s.fail(l, b, true, "%s: block differs from the model: got %q…, want %q…",
				what, printable(g[:32]), printable(w[:32]))
		}
	}
	return nil
}

func printable(b []byte) string {
	out := []byte{}
	for _, c := range b {
		if c >= 0x20 && c < 0x7F {
			out = append(out, c)
		} else {
			out = append(out, '.')
		}
	}
	return string(out)
}

func (s *session) readBlocks(ctx context.Context, l *lu, lba uint64, n int, use16 bool) ([]byte, error) {
	cdb := rw10(0x28, false, lba, n)
	if use16 {
		cdb = rw16(0x88, 0, lba, n)
	}
	resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: cdb, ReadLen: n * BlockSize})
	if err != nil {
		return nil, err
	}
	if err := s.expectGood(l, lba, resp, "read"); err != nil {
		return nil, err
	}
	return resp.DataIn, nil
}

func (s *session) read(ctx context.Context, l *lu, lba uint64, n int, use16 bool) error {
	got, err := s.readBlocks(ctx, l, lba, n, use16)
	if err != nil {
		return err
	}
	return s.compare(l, lba, got, fmt.Sprintf("read of %d blocks at %d", n, lba))
}

func (s *session) write(ctx context.Context) error {
	l, rg := s.pickRange(128)
	fua := s.rng.IntN(2) == 0
	data := s.fill(rg.n)
	cdb := rw10(0x2A, fua, rg.lba, rg.n)
	if s.op == OpWrite16 {
		flags := byte(0)
		if fua {
			flags = 0x08
		}
		cdb = rw16(0x8A, flags, rg.lba, rg.n)
	}
	s.expect(l, rg.lba, data, "")
	resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: cdb, DataOut: data})
	if err != nil {
		return err
	}
	if err := s.expectGood(l, rg.lba, resp, "write"); err != nil {
		return err
	}
	s.settle()
	return nil
}

// compareAndWrite sends COMPARE AND WRITE on one block of the region,
// with the model's block as the old data or, one time in four, with one
// byte changed, which must miscompare at that byte and write nothing.
func (s *session) compareAndWrite(ctx context.Context) error {
	l, rg := s.pickRange(1)
	old := bytes.Clone(l.at(rg.lba, 1))
	wrong := -1
	if s.rng.IntN(4) == 0 {
		wrong = s.rng.IntN(BlockSize)
		old[wrong] ^= 1 << s.rng.IntN(8)
	}
	data := s.fill(1)
	if wrong < 0 {
		s.expect(l, rg.lba, data, "")
	}
	resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: cawCDB(rg.lba), DataOut: append(old, data...)})
	if err != nil {
		return err
	}
	if wrong < 0 {
		if err := s.expectGood(l, rg.lba, resp, "COMPARE AND WRITE with the right old data"); err != nil {
			return err
		}
		s.settle()
		return nil
	}
	if resp.Status != scsi.StatusCheckCondition || resp.Sense == nil || resp.Sense.Key != scsi.Miscompare {
		return s.fail(l, rg.lba, true, "COMPARE AND WRITE with byte %d wrong: want MISCOMPARE, got %s", wrong, senseString(resp))
	}
	if !resp.Sense.HasInformation || resp.Sense.Information != uint64(wrong) {
		return s.fail(l, rg.lba, true, "COMPARE AND WRITE with byte %d wrong: INFORMATION %d (valid %v)", wrong, resp.Sense.Information, resp.Sense.HasInformation)
	}
	return nil
}

func (s *session) writeSame(ctx context.Context, unmap bool) error {
	l, rg := s.pickRange(512)
	flags := byte(0)
	var block []byte
	switch {
	case !unmap:
		block = s.fill(1)
	case s.rng.IntN(4) == 0:
		block = s.fill(1) // not zeroes: deallocated all the same
		flags = 0x08
	case s.rng.IntN(3) == 0:
		flags = 0x09 // UNMAP, NDOB
	default:
		block = make([]byte, BlockSize)
		flags = 0x08
	}
	written := block
	if unmap {
		// An unmap operation on a thin LU (every LU here: file and
		// memory), whatever the block; LBPRZ: the blocks read as zeroes.
		written = make([]byte, BlockSize)
	}
	s.expect(l, rg.lba, bytes.Repeat(written, rg.n), fmt.Sprintf("flags %#x", flags))
	resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: rw16(0x93, flags, rg.lba, rg.n), DataOut: block})
	if err != nil {
		return err
	}
	if err := s.expectGood(l, rg.lba, resp, "WRITE SAME"); err != nil {
		return err
	}
	s.settle()
	return nil
}

func (s *session) unmap(ctx context.Context) error {
	l := s.r.lus[s.rng.IntN(len(s.r.lus))]
	total := 1 + s.rng.IntN(min(256, int(s.r.region)))
	rs := s.disjointRanges(1+s.rng.IntN(3), total)
	if !l.canUnmap() {
		s.stats.Skipped++
		return nil
	}
	p := unmapList(rs)
	for _, r := range rs {
		s.expect(l, r.lba, make([]byte, r.n*BlockSize), "") // LBPRZ: unmapped blocks read as zeroes
	}
	resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: unmapCDB(len(p)), DataOut: p})
	if err != nil {
		return err
	}
	if resp.Status == scsi.StatusCheckCondition && resp.Sense != nil && resp.Sense.Key == scsi.IllegalRequest && resp.Sense.Code == scsi.ASCInvalidCommandOperationCode {
		l.unmapMu.Lock()
		l.noUnmap = true
		l.unmapMu.Unlock()
		s.stats.Skipped++
		return nil
	}
	if err := s.expectGood(l, rs[0].lba, resp, "UNMAP"); err != nil {
		return err
	}
	s.settle()
	return nil
}

// extendedCopy copies one to three segments between the session's
// regions of two LUs (or of one), through EXTENDED COPY (LID1).
func (s *session) extendedCopy(ctx context.Context) error {
	src, dst, segs := s.pickSegments()
	// LID1 list identifiers are per I_T nexus: the workers of a session
	// use distinct ones.
	list := xcopyList(byte(s.sub<<6|s.opn&63), src.cscd, dst.cscd, segs)
	cdb := xcopyCDB(len(list))
	if s.rng.IntN(2) == 0 {
		list = xcopyList4(s.listID(), false, src.cscd, dst.cscd, segs)
		cdb = xcopy4CDB(len(list))
	}
	s.expectSegments(src, dst, segs)
	lun := []uint64{src.num, dst.num}[s.rng.IntN(2)]
	resp, err := s.command(ctx, initiator.Request{LUN: lun, CDB: cdb, DataOut: list})
	if err != nil {
		return err
	}
	if err := s.expectGood(dst, segs[0].dst, resp, fmt.Sprintf("EXTENDED COPY LUN %d -> LUN %d %+v", src.num, dst.num, segs)); err != nil {
		return err
	}
	s.settle()
	return nil
}

// pickSegments picks two LUs (or one) and one to three segments between
// the worker's regions of them.
func (s *session) pickSegments() (src, dst *lu, segs []xcopySegment) {
	src = s.r.lus[s.rng.IntN(len(s.r.lus))]
	dst = s.r.lus[s.rng.IntN(len(s.r.lus))]
	for range 1 + s.rng.IntN(3) {
		n := 1 + s.rng.IntN(min(128, int(s.r.region)))
		segs = append(segs, xcopySegment{
			src: s.regionStart() + s.rng.Uint64N(s.r.region-uint64(n)+1),
			dst: s.regionStart() + s.rng.Uint64N(s.r.region-uint64(n)+1),
			n:   n,
		})
	}
	return src, dst, segs
}

// expectSegments notes what each segment of a copy writes. The segments
// run in order, each as through a buffer (overlapping copies): they are
// applied to the model to learn what each writes, then undone.
func (s *session) expectSegments(src, dst *lu, segs []xcopySegment) {
	saved := make([][]byte, len(segs))
	for i, g := range segs {
		buf := bytes.Clone(src.at(g.src, g.n))
		saved[i] = bytes.Clone(dst.at(g.dst, g.n))
		copy(dst.at(g.dst, g.n), buf)
		s.expect(dst, g.dst, buf, fmt.Sprintf("from LUN %d LBA %d", src.num, g.src))
	}
	for i := len(segs) - 1; i >= 0; i-- {
		copy(dst.at(segs[i].dst, segs[i].n), saved[i])
	}
}

// listID is the list identifier of the worker's POPULATE TOKEN, WRITE
// USING TOKEN and EXTENDED COPY (LID4) commands: at least 2^24, so never
// one of the LID1 identifiers (0-255) the workers of the session use at
// the same time on the same nexus.
func (s *session) listID() uint32 { return uint32(s.id+1)<<24 | uint32(s.opn)&0xFFFFFF }

// populate makes a token of one to three ranges of the region with
// POPULATE TOKEN and RECEIVE ROD TOKEN INFORMATION and puts it, with the
// data it stands for, in the pool.
func (s *session) populate(ctx context.Context) error {
	l := s.r.lus[s.rng.IntN(len(s.r.lus))]
	total := 1 + s.rng.IntN(min(256, int(s.r.region)))
	rs := s.disjointRanges(1+s.rng.IntN(3), total)
	uses, shared := 1+s.rng.IntN(2), s.rng.IntN(3) == 0
	if shared {
		uses = 2 + s.rng.IntN(3)
	}
	id := s.listID()
	p := populateParams(tokenTimeout, rs)
	resets := s.r.resetMark()
	resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: tokenCDB(0x10, id, len(p)), DataOut: p})
	if err != nil {
		return err
	}
	if resp.Status == scsi.StatusCheckCondition && resp.Sense != nil && resp.Sense.Key == scsi.IllegalRequest && resp.Sense.Code == 0x5503 {
		s.stats.Skipped++ // INSUFFICIENT RESOURCES: too many tokens
		return nil
	}
	if err := s.expectGood(l, rs[0].lba, resp, fmt.Sprintf("POPULATE TOKEN %+v", rs)); err != nil {
		return err
	}
	// The data the token stands for is the model's now.
	var data []byte
	for _, r := range rs {
		data = append(data, l.at(r.lba, r.n)...)
	}
	resp, err = s.command(ctx, initiator.Request{LUN: l.num, CDB: rrtiCDB(id, 1024), ReadLen: 1024})
	if err != nil {
		return err
	}
	if resp.Status == scsi.StatusCheckCondition && resp.Sense != nil && resp.Sense.Code == scsi.ASCInvalidFieldInCDB && s.r.resetSince(resets) {
		s.stats.Skipped++ // a LOGICAL UNIT RESET forgot the list
		return nil
	}
	if err := s.expectGood(l, rs[0].lba, resp, "RECEIVE ROD TOKEN INFORMATION"); err != nil {
		return err
	}
	info := resp.DataIn
	if len(info) < 32 {
		return s.fail(l, 0, false, "RRTI: %d bytes", len(info))
	}
	count := binary.BigEndian.Uint64(info[16:])
	off := 32 + int(info[13])
	if info[5]&0x7F != 0x01 || count == 0 || count > uint64(total) || len(info) < off+6+512 {
		return s.fail(l, 0, false, "RRTI: status %#x, transfer count %d of %d, %d bytes", info[5], count, total, len(info))
	}
	s.r.putToken(&token{bytes: bytes.Clone(info[off+6 : off+6+512]), data: data[:count*BlockSize], created: time.Now(), uses: uses, shared: shared, from: s.id})
	return nil
}

// writeUsingToken writes part of a token from the pool to one to three
// ranges of the session's region, as Windows does: a truncation (COPY
// TARGET DEVICE DATA UNDERRUN, INFORMATION = blocks written) is resumed
// from there; a revoked token may have written any prefix of each block
// run, which is read back and must be, block by block, old or new data.
func (s *session) writeUsingToken(ctx context.Context) error {
	// Draw the random numbers first so the stream does not depend on
	// whether the pool has a token.
	pick, k, offFrac, lenFrac := s.rng.IntN(1<<30), 1+s.rng.IntN(3), s.rng.Float64(), s.rng.Float64()
	l := s.r.lus[s.rng.IntN(len(s.r.lus))]
	useOffset := s.rng.IntN(2) == 0
	layout := s.rng.Uint64()
	tok := s.r.takeToken(pick)
	if tok == nil {
		s.stats.NoToken++
		return nil
	}
	count := len(tok.data) / BlockSize
	off := 0
	if useOffset {
		off = int(offFrac * float64(count))
	}
	n := 1 + int(lenFrac*float64(count-off-1))
	n = min(n, count-off, int(s.r.region))
	// The ranges depend on the token picked: draw them from a stream of
	// their own so that the worker's stream stays reproducible.
	main := s.rng
	s.rng = rand.New(rand.NewPCG(layout, 0))
	rs := s.disjointRanges(k, n)
	s.rng = main
	last := !tok.shared && tok.uses == 0 // then DEL_TKN
	for done := 0; done < n; {
		part := sliceRanges(rs, done, n-done)
		p := wutParams(tok.bytes, uint64(off+done), last, part)
		src := tok.data[(off+done)*BlockSize:]
		s.pending = nil
		s.expectRanges(l, part, src)
		resp, err := s.command(ctx, initiator.Request{LUN: l.num, CDB: tokenCDB(0x11, s.listID(), len(p)), DataOut: p})
		if err != nil {
			return err
		}
		if resp.Status == scsi.StatusGood {
			s.settle()
			break
		}
		part0 := s.pending
		s.pending = nil
		sn := resp.Sense
		what := fmt.Sprintf("WRITE USING TOKEN (token of session %d, offset %d, ranges %+v)", tok.from, off+done, part)
		if resp.Status != scsi.StatusCheckCondition || sn == nil {
			return s.fail(l, part[0].lba, true, "%s: %s", what, senseString(resp))
		}
		switch {
		case (sn.Key == scsi.CopyAborted || sn.Key == scsi.AbortedCommand) && sn.Code == scsi.ASCCopyTargetDeviceDataUnderrun:
			if !sn.HasInformation || sn.Information >= uint64(n-done) {
				return s.fail(l, part[0].lba, true, "%s: truncated with INFORMATION %d (valid %v) of %d blocks", what, sn.Information, sn.HasInformation, n-done)
			}
			w := int(sn.Information)
			s.writeModel(l, sliceRanges(part, 0, w), src)
			done += w
			s.stats.Truncations++
			continue
		case sn.Key == scsi.IllegalRequest && sn.Code == 0x2306: // INVALID TOKEN OPERATION, TOKEN REVOKED
			s.stats.Revoked++
			return s.acceptPartial(ctx, l, part, src, what)
		}
		s.pending = part0
		if err := s.faulted(resp); err != nil {
			return err
		}
		return s.fail(l, part[0].lba, true, "%s: %s", what, senseString(resp))
	}
	if !tok.shared && !last {
		s.r.putToken(tok)
	}
	return nil
}

// expectRanges notes that the command about to be sent writes src to rs.
func (s *session) expectRanges(l *lu, rs []blockRange, src []byte) {
	for _, r := range rs {
		s.expect(l, r.lba, src[:r.n*BlockSize], "token")
		src = src[r.n*BlockSize:]
	}
}

func (s *session) writeModel(l *lu, rs []blockRange, src []byte) {
	for _, r := range rs {
		s.touch(l, r.lba, r.n, "token")
		copy(l.at(r.lba, r.n), src[:r.n*BlockSize])
		src = src[r.n*BlockSize:]
	}
}

// acceptPartial reads back ranges a failed copy may have written in part
// and takes each block as written if it is the old or the new data.
func (s *session) acceptPartial(ctx context.Context, l *lu, rs []blockRange, src []byte, what string) error {
	for _, r := range rs {
		got, err := s.readSettled(ctx, l, r.lba, r.n)
		if err != nil {
			return err
		}
		for i := range r.n {
			g, old, nw := got[i*BlockSize:(i+1)*BlockSize], l.at(r.lba+uint64(i), 1), src[i*BlockSize:(i+1)*BlockSize]
			switch {
			case bytes.Equal(g, old):
			case bytes.Equal(g, nw):
				s.touch(l, r.lba+uint64(i), 1, "revoked token, new data read back")
				copy(old, nw)
			default:
				return s.fail(l, r.lba+uint64(i), true, "%s: after a revoked token the block is neither the old nor the token's data: %q", what, printable(g[:32]))
			}
		}
		src = src[r.n*BlockSize:]
	}
	return nil
}

// verifyAll reads the session's whole region of every LU.
func (s *session) verifyAll(ctx context.Context) error {
	s.opn++
	s.op = OpRead16
	for _, l := range s.r.lus {
		for lba, end := s.regionStart(), s.regionStart()+s.r.region; lba < end; {
			n := int(min(end-lba, 1024))
			got, err := s.readBlocks(ctx, l, lba, n, true)
			if err != nil {
				return err
			}
			if err := s.compare(l, lba, got, "final verification"); err != nil {
				return err
			}
			lba += uint64(n)
		}
	}
	return nil
}
