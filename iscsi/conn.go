package iscsi

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// cmdWindow is the number of non-immediate commands the target queues per
// session: MaxCmdSN - ExpCmdSN + 1 when nothing is outstanding (RFC 7143
// 4.2.2.1).
const cmdWindow = 128

// maxHeldBytes bounds the data of the Text Requests and NOP-Out pings a
// connection keeps while they wait for their CmdSN; beyond it they are
// rejected with reason 0Ah, out of resources (RFC 7143 11.17.1).
const maxHeldBytes = 1 << 20

// maxTMFs bounds the task management functions and logouts in progress
// on a connection; more are rejected (RFC 7143 11.17.1: 06h for
// immediate ones, 0Ah otherwise).
const maxTMFs = 16

// closeFlushTimeout bounds how long a closing connection tries to send
// what it queued last (a Reject, a Logout Response).
const closeFlushTimeout = 5 * time.Second

// maxImmediateTasks bounds the immediate SCSI commands in progress; more
// are answered with Reject reason 06h (RFC 7143 11.17.1).
const maxImmediateTasks = 16

// conn is one iSCSI connection. In full feature phase its protocol state
// is guarded by mu and driven from several goroutines: the reader decodes
// and processes each PDU as it arrives, a command's completion is turned
// into its response on the goroutine that ran it (scsi.Submit), task
// management functions finish on goroutines of their own, and the control
// loop handles timers, stop and drain requests and the end of the
// connection. Responses are written by whichever goroutine finds the send
// queue idle (see sendQueue), so a long command blocks neither NOPs nor
// task management, and a busy connection needs no hand-off per command.
type conn struct {
	// Immutable after newConn.
	srv    *Server
	nc     net.Conn
	bw     *bufio.Writer
	fr     *Framer
	portal *portal

	// Set by login, read-only afterwards.
	log  *slog.Logger
	sess *session
	p    params
	cid  uint16

	// mu guards the protocol state below in full feature phase.
	mu          sync.Mutex
	statSN      uint32
	expCmdSN    uint32
	maxCmdSN    uint32
	tasks       map[uint32]*task       // by ITT
	held        map[uint32]heldRequest // non-immediate PDUs ahead of ExpCmdSN
	heldBytes   int                    // data segments copied into held
	outstanding int                    // non-immediate tasks against the window
	immediate   int                    // immediate tasks in progress
	submitted   int                    // tasks in scsi.Submit not yet completed
	nextTTT     uint32
	free        []*task
	out         []outPDU // staged for the send queue, handed over before mu is released
	text        textExchange
	tmfs        []*tmfRequest
	rxCount     uint64
	ping        pingState
	timer       *time.Timer
	draining    bool
	loggingOut  bool
	ending      error // why the connection is ending
	flushOnEnd  bool  // send what is queued before closing
	reaping     bool  // teardown waits on lastDone for the commands still running

	lastDone chan struct{} // closed by the last completion teardown waits for
	endWake  chan struct{} // tells the control loop that ending is set
	stopCh   chan error
	drainCh  chan struct{}
	quit     chan struct{} // closed when the queue is drained at the end
	finished chan struct{} // closed when the connection is torn down
	inFFP    atomic.Bool
	workers  sync.WaitGroup // reader, writer and task management goroutines

	sq sendQueue
}

func newConn(s *Server, nc net.Conn, p *portal) *conn {
	bw := bufio.NewWriterSize(nc, 64<<10)
	c := &conn{
		srv:      s,
		nc:       nc,
		bw:       bw,
		fr:       NewFramer(nc, bw),
		portal:   p,
		log:      s.log.With("remote", nc.RemoteAddr().String()),
		tasks:    map[uint32]*task{},
		held:     map[uint32]heldRequest{},
		lastDone: make(chan struct{}),
		endWake:  make(chan struct{}, 1),
		stopCh:   make(chan error, 1),
		drainCh:  make(chan struct{}, 1),
		quit:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	c.sq = sendQueue{limit: s.sendQueueLimit, readLimit: s.dataInLimit, wake: make(chan struct{}, 1), idle: make(chan struct{})}
	c.sq.room.L = &c.sq.mu
	return c
}

// run serves the connection from login to close.
func (c *conn) run() {
	defer close(c.finished)
	if err := c.guardedLogin(); err != nil {
		c.nc.Close()
		c.srv.countLoginFailure(err)
		if c.sess != nil {
			c.srv.finishSession(c.sess)
		}
		if !errors.Is(err, io.EOF) {
			c.log.Info("login failed", "portal", c.portal.addr, "err", err)
		}
		return
	}
	c.log.Info("login complete", "header_digest", c.p.HeaderDigest, "data_digest", c.p.DataDigest,
		"max_recv_dsl", c.p.MaxSendDataSegmentLength, "max_burst", c.p.MaxBurstLength,
		"first_burst", c.p.FirstBurstLength, "immediate_data", c.p.ImmediateData,
		"initial_r2t", c.p.InitialR2T, "max_outstanding_r2t", c.p.MaxOutstandingR2T)
	c.serve()
}

// stop ends the connection from another goroutine (reinstatement, reset,
// shutdown); a connection still logging in is closed at once.
func (c *conn) stop(err error) {
	select {
	case c.stopCh <- err:
	default:
	}
	if !c.inFFP.Load() {
		c.nc.Close()
	}
}

// drain asks the connection to finish the commands in progress, start no
// new ones and close.
func (c *conn) drain() {
	select {
	case c.drainCh <- struct{}{}:
	default:
	}
	if !c.inFFP.Load() {
		c.nc.Close()
	}
}

// serve runs full feature phase: it starts the reader and the writer and
// runs the control loop until the connection ends.
func (c *conn) serve() {
	c.inFFP.Store(true)
	c.fr.HeaderDigest, c.fr.DataDigest = c.p.HeaderDigest, c.p.DataDigest
	c.fr.MaxRecvDataSegmentLength = targetMaxRecvDataSegmentLength
	c.timer = time.NewTimer(c.srv.nopInterval)
	defer c.timer.Stop()
	dataTick := time.NewTicker(c.srv.dataOutTimeout)
	defer dataTick.Stop()
	c.workers.Add(2)
	go c.readLoop()
	go c.writeLoop()
	for {
		var event func()
		select {
		case <-c.timer.C:
			event = c.nopTimer
		case err := <-c.stopCh:
			event = func() { c.end(err, false) }
		case <-c.drainCh:
			event = c.startDrain
		case <-dataTick.C:
			event = c.checkDataOut
		case <-c.endWake:
		}
		c.mu.Lock()
		c.control(event)
		ending := c.ending != nil
		c.mu.Unlock()
		if ending {
			break
		}
	}
	c.teardown()
}

// control runs one event of the control loop, if any, and hands what it
// staged to the send queue; c.mu is held.
func (c *conn) control(event func()) {
	defer c.recoverLocked("control loop")
	c.at(hookControl)
	if event != nil {
		event()
	}
	c.flushOut(false)
}

// end makes the connection close; with flush the PDUs queued so far (a
// Reject, a Logout Response) are sent first. c.mu is held.
func (c *conn) end(err error, flush bool) {
	if c.ending != nil {
		return
	}
	c.ending, c.flushOnEnd = err, flush
	select {
	case c.endWake <- struct{}{}:
	default:
	}
}

// fail translates an error from a PDU handler: a Reject for the PDU, and
// the end of the connection where the error says so.
func (c *conn) fail(p *PDU, err error) {
	var rej *rejectError
	if !errors.As(err, &rej) {
		c.end(err, false)
		return
	}
	c.log.Warn("PDU rejected", "opcode", p.Opcode().String(), "itt", p.ITT(), "reason", rej.reason.String(), "why", rej.why)
	c.queueReject(p, rej.reason)
	if rej.drop {
		c.end(err, true)
	}
}

// A panic on one of a connection's goroutines (reader, writer, control
// loop, task management, a command's completion) must not take the
// process down: it is recovered, logged with its stack, and ends that
// connection only, through the usual teardown, which aborts its tasks,
// returns its buffers and budget and ends its session.

// panicked logs a recovered panic and returns the error the connection
// ends with.
func (c *conn) panicked(where string, r any) error {
	c.log.Error("panic, dropping the connection", "in", where, "panic", r, "stack", string(debug.Stack()))
	return dropConn("panic in %s: %v", where, r)
}

// recoverLocked, deferred by code that runs with c.mu held, turns a panic
// into the end of the connection; c.mu is still held afterwards.
func (c *conn) recoverLocked(where string) {
	if r := recover(); r != nil {
		c.end(c.panicked(where, r), false)
	}
}

// recoverUnlocked is recoverLocked for code that runs without c.mu.
func (c *conn) recoverUnlocked(where string) {
	if r := recover(); r != nil {
		err := c.panicked(where, r)
		c.mu.Lock()
		c.end(err, false)
		c.mu.Unlock()
	}
}

// guardedLogin runs the login phase; a panic fails the login.
func (c *conn) guardedLogin() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = c.panicked("login", r)
		}
	}()
	return c.login()
}

// hookPoint names a place where Server.hook is called, so tests can
// inject panics where they must stay within one connection.
type hookPoint uint8

const (
	hookReader     hookPoint = iota // each PDU the reader processes, c.mu held
	hookWriter                      // each batch the writer role writes
	hookControl                     // each control loop event, c.mu held
	hookTMF                         // each task management function's work
	hookCompletion                  // each command completion, c.mu held
)

// at calls the server's test hook, if any.
func (c *conn) at(point hookPoint) {
	if h := c.srv.hook; h != nil {
		h(c, point)
	}
}

// startDrain begins a graceful shutdown: the connection closes as soon as
// no command is in progress.
func (c *conn) startDrain() {
	c.draining = true
	c.checkDrained()
}

func (c *conn) checkDrained() {
	if c.draining && len(c.tasks) == 0 && len(c.tmfs) == 0 {
		c.end(errShutdown, true)
	}
}

// teardown closes the connection and ends the session (ERL 0: a session
// does not outlive its only connection): tasks in progress are aborted,
// buffers returned, goroutines waited for. Once ending is set nothing new
// starts and no response is staged. Should teardown itself panic, the
// connection is closed and the session ended all the same.
func (c *conn) teardown() {
	defer func() {
		if r := recover(); r != nil {
			c.panicked("teardown", r)
			c.nc.Close()
			c.srv.finishSession(c.sess)
		}
	}()
	c.mu.Lock()
	c.flushOut(false)
	flush := c.flushOnEnd
	c.mu.Unlock()
	var flushBy time.Time
	if flush {
		// Bounded: a peer that stops reading cannot hold the close.
		flushBy = time.Now().Add(min(closeFlushTimeout, c.srv.sendTimeout))
	} else {
		c.nc.Close()
	}
	c.sq.close(c.nc, flushBy)
	<-c.sq.idle
	c.nc.Close()
	close(c.quit)

	// Abort what is still running; completions arrive without responses.
	c.mu.Lock()
	reap := c.submitted > 0
	c.reaping = reap
	c.mu.Unlock()
	if reap {
		if c.sess.nexus != nil {
			c.sess.nexus.AbortTasks()
		}
		<-c.lastDone
	}
	c.workers.Wait()
	c.mu.Lock()
	for _, t := range c.tasks {
		c.releaseTask(t)
	}
	clear(c.held)
	c.heldBytes = 0
	c.mu.Unlock()
	c.srv.finishSession(c.sess)
	switch {
	case errors.Is(c.ending, errLogout):
		c.log.Info("logout")
	case errors.Is(c.ending, io.EOF), errors.Is(c.ending, net.ErrClosed):
		c.log.Info("connection closed by the initiator")
	case errors.Is(c.ending, errShutdown):
		// The operator stopped the target: an expected end, even when
		// the initiator was about to close the connection itself.
		c.log.Info("connection closed for shutdown")
	case errors.Is(c.ending, errReconfigured):
		c.log.Info("connection closed: no longer allowed by the reloaded configuration")
	case errors.Is(c.ending, syscall.ECONNRESET):
		// open-iscsi ends discovery sessions with a reset rather than a
		// Logout: the initiator's choice, not a target problem.
		c.log.Info("connection reset by the initiator")
	default:
		c.log.Warn("connection ended", "reason", c.ending.Error())
	}
}
