package iscsi

import (
	"errors"
	"maps"
	"sync"
	"sync/atomic"
)

// Stats is a snapshot of a server's state and counters, for monitoring.
type Stats struct {
	// LoggingIn and FullFeature count the open connections still logging
	// in and those in full feature phase. Every session has exactly one
	// connection (MaxConnections=1), so the connections of a target and
	// initiator are its Sessions.
	LoggingIn, FullFeature int
	// Sessions lists the live normal sessions; DiscoverySessions counts
	// the discovery ones.
	Sessions          []SessionInfo
	DiscoverySessions int
	// ConnectionsRefused counts the connections closed at accept for
	// MaxConnections or MaxConnectionsPerIP.
	ConnectionsRefused uint64
	// LoginsRefused counts the logins ended with a Login Response other
	// than success, by its status; LoginTimeouts those that ran out of
	// LoginTimeout.
	LoginsRefused map[LoginStatus]uint64
	LoginTimeouts uint64
	// NOPTimeouts counts the connections dropped because a NOP-In ping
	// went unanswered.
	NOPTimeouts uint64
	// DataOutUsed is the data-out buffered for all connections now;
	// DataOutLimit the most it may be (the data-out budget).
	DataOutUsed, DataOutLimit int64
	// DataOutRefused counts the commands ended with TASK SET FULL because
	// their data-out did not fit the budget.
	DataOutRefused uint64
}

// SessionInfo names the two ends of a normal session.
type SessionInfo struct {
	Target, Initiator string
}

// counters are the Server's monitoring counters, updated off the command
// path (at accept, at login, on timeouts) except dataOutRefused.
type counters struct {
	connsRefused, loginTimeouts, nopTimeouts, dataOutRefused atomic.Uint64

	mu            sync.Mutex
	loginsRefused map[LoginStatus]uint64
}

func (c *counters) loginRefused(s LoginStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loginsRefused == nil {
		c.loginsRefused = map[LoginStatus]uint64{}
	}
	c.loginsRefused[s]++
}

// Stats returns a snapshot of the server's sessions, connections and
// counters.
func (s *Server) Stats() Stats {
	st := Stats{
		ConnectionsRefused: s.counters.connsRefused.Load(),
		LoginTimeouts:      s.counters.loginTimeouts.Load(),
		NOPTimeouts:        s.counters.nopTimeouts.Load(),
		DataOutRefused:     s.counters.dataOutRefused.Load(),
	}
	s.counters.mu.Lock()
	st.LoginsRefused = maps.Clone(s.counters.loginsRefused)
	s.counters.mu.Unlock()
	if st.LoginsRefused == nil {
		st.LoginsRefused = map[LoginStatus]uint64{}
	}
	s.mu.Lock()
	for c := range s.conns {
		if c.inFFP.Load() {
			st.FullFeature++
		} else {
			st.LoggingIn++
		}
	}
	for _, sess := range s.byTSIH {
		if sess.discovery {
			st.DiscoverySessions++
		} else {
			st.Sessions = append(st.Sessions, SessionInfo{Target: sess.targetName, Initiator: sess.initiatorName})
		}
	}
	s.mu.Unlock()
	s.dataOut.mu.Lock()
	st.DataOutUsed, st.DataOutLimit = s.dataOut.used, s.dataOut.limit
	s.dataOut.mu.Unlock()
	return st
}

// Name returns the RFC 7143 name of a login status ("authentication
// failure"), or "" for a status without one.
func (s LoginStatus) Name() string { return loginStatusNames[s] }

// countLoginFailure counts a login that ended with err.
func (s *Server) countLoginFailure(err error) {
	var le *LoginError
	switch {
	case errors.As(err, &le):
		s.counters.loginRefused(le.Status)
	case errors.Is(err, errLoginTimeout):
		s.counters.loginTimeouts.Add(1)
	}
}
