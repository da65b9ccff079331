package iscsi

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Server is an iSCSI target server: it listens on the portals of every
// target portal group and runs discovery and normal sessions.
type Server struct {
	cfg          Config // Targets as first configured; topo has the current ones
	log          *slog.Logger
	topo         atomic.Pointer[topology]
	nopInterval  time.Duration
	nopTimeout   time.Duration
	loginTimeout time.Duration
	sendTimeout  time.Duration
	// dataOutTimeout is how long a command may wait for Data-Out.
	dataOutTimeout time.Duration
	// sendQueueLimit is the bytes queued for a connection's socket past
	// which its reader waits.
	sendQueueLimit int
	dataInLimit    int64 // data-in the running commands of a connection may produce
	// maxConns and maxConnsPerHost cap the connections served at once.
	maxConns, maxConnsPerHost int
	refuseLog                 throttledLog
	counters                  counters // see Stats
	dataOut                   *budget  // data-out bytes buffered by all connections
	// hook, set only by tests, is called at the points hookPoint names.
	hook func(*conn, hookPoint)

	mu           sync.Mutex
	listening    bool
	serving      bool      // Serve has started the accept loops
	portals      []*portal // the listen addresses of topo, in order
	shuttingDown bool
	sessions     map[string]*session // normal sessions by identity key
	byTSIH       map[uint16]*session
	conns        map[*conn]struct{}
	perHost      map[string]int // connections by source address
	nextTSIH     uint16
	closed       chan struct{} // closed by Shutdown
	connWG       sync.WaitGroup
	acceptWG     sync.WaitGroup
}

// portal is one listen address; the target portal groups it serves are
// in the topology.
type portal struct {
	addr string // as configured
	ln   net.Listener
}

// NewServer checks the configuration and returns a server; nothing listens
// until Listen.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:            cfg,
		log:            cfg.Logger,
		nopInterval:    orDefault(cfg.NOPInInterval, DefaultNOPInInterval),
		nopTimeout:     orDefault(cfg.NOPInTimeout, DefaultNOPInTimeout),
		loginTimeout:   orDefault(cfg.LoginTimeout, DefaultLoginTimeout),
		sendTimeout:    orDefault(cfg.SendTimeout, DefaultSendTimeout),
		sendQueueLimit: cmp.Or(cfg.SendQueueLimit, DefaultSendQueueLimit),
		dataInLimit:    cmp.Or(cfg.DataInLimit, DefaultDataInLimit),
		dataOut: newBudget(cmp.Or(cfg.DataOutBudget, DefaultDataOutBudget),
			cmp.Or(cfg.SessionDataOutBudget, DefaultSessionDataOutBudget),
			cmp.Or(cfg.InitiatorDataOutBudget, DefaultInitiatorDataOutBudget)),
		dataOutTimeout:  orDefault(cfg.DataOutTimeout, DefaultDataOutTimeout),
		sessions:        map[string]*session{},
		byTSIH:          map[uint16]*session{},
		conns:           map[*conn]struct{}{},
		perHost:         map[string]int{},
		maxConns:        cmp.Or(cfg.MaxConnections, DefaultMaxConnections),
		maxConnsPerHost: cmp.Or(cfg.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP),
		closed:          make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	topo := newTopology(cfg.Targets)
	s.topo.Store(topo)
	for _, addr := range topo.addrs {
		s.portals = append(s.portals, &portal{addr: addr})
	}
	return s, nil
}

func orDefault(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

// Listen opens a listener on every distinct portal.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening {
		return nil
	}
	if s.shuttingDown {
		return ErrServerClosed
	}
	for i, p := range s.portals {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			for _, q := range s.portals[:i] {
				q.ln.Close()
				q.ln = nil
			}
			return err
		}
		p.ln = ln
	}
	s.listening = true
	return nil
}

// Addrs returns the listen addresses, in portal order, with ports chosen
// for ":0" portals resolved. It is empty before Listen.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, p := range s.portals {
		if p.ln != nil {
			out = append(out, p.ln.Addr())
		}
	}
	return out
}

// Serve accepts connections on every portal until Shutdown, listening
// first if Listen was not called. It returns ErrServerClosed after
// Shutdown.
func (s *Server) Serve() error {
	if err := s.Listen(); err != nil {
		return err
	}
	// The accept loops are counted under mu, so Shutdown, which marks the
	// server shutting down under mu before it waits for them, never waits
	// while Serve is still adding.
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.serving = true
	for _, p := range s.portals {
		s.acceptWG.Add(1)
		go s.acceptLoop(p)
	}
	s.mu.Unlock()
	<-s.closed
	s.acceptWG.Wait()
	return ErrServerClosed
}

func (s *Server) acceptLoop(p *portal) {
	defer s.acceptWG.Done()
	var backoff time.Duration
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed, retrying", "portal", p.addr, "err", err, "delay", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.serveConn(nc, p)
	}
}

// serveConn runs a new connection on its own goroutine: login, then full
// feature phase. Over MaxConnections, or MaxConnectionsPerIP from its
// source address, the connection is closed at once, before anything is
// read or allocated for it.
func (s *Server) serveConn(nc net.Conn, p *portal) {
	host := remoteHost(nc)
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if len(s.conns) >= s.maxConns || s.perHost[host] >= s.maxConnsPerHost {
		total, fromHost := len(s.conns), s.perHost[host]
		s.mu.Unlock()
		nc.Close()
		s.counters.connsRefused.Add(1)
		s.refuseLog.warn(s.log, "connection refused: too many connections",
			"remote", nc.RemoteAddr().String(), "total", total, "from_source", fromHost)
		return
	}
	c := newConn(s, nc, p)
	s.conns[c] = struct{}{}
	s.perHost[host]++
	s.connWG.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.connWG.Done()
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			if s.perHost[host]--; s.perHost[host] == 0 {
				delete(s.perHost, host)
			}
			s.mu.Unlock()
		}()
		c.run()
	}()
}

// remoteHost is the source address a connection counts against for
// MaxConnectionsPerIP.
func remoteHost(nc net.Conn) string {
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return nc.RemoteAddr().String()
}

// throttledLog logs at most one message per refuseLogInterval, counting
// the ones it drops, so a flood cannot flood the log.
type throttledLog struct {
	mu      sync.Mutex
	last    time.Time
	dropped int
}

const refuseLogInterval = 10 * time.Second

func (l *throttledLog) warn(log *slog.Logger, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < refuseLogInterval {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.last, l.dropped = now, 0
	l.mu.Unlock()
	log.Warn(msg, append(args, "not_logged_since_last", dropped)...)
}

// Shutdown stops accepting connections and lets every connection finish
// the commands it has started, refusing new ones; when ctx ends first, the
// remaining commands are aborted. It returns when every connection is
// closed, with ctx's error if it had to abort.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.shuttingDown {
		s.shuttingDown = true
		close(s.closed)
		for _, p := range s.portals {
			if p.ln != nil {
				p.ln.Close()
			}
		}
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.acceptWG.Wait()
	for _, c := range conns {
		c.drain()
	}
	all := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(all)
	}()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
	}
	for _, c := range conns {
		c.stop(errShutdown)
	}
	<-all
	return ctx.Err()
}
