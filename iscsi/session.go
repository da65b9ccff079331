package iscsi

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/odxtgt/odxtgt/scsi"
)

// session is an iSCSI session: one I_T nexus. odxtgt negotiates
// MaxConnections=1, so a session has exactly one connection, whose serve
// loop owns the session's command numbering.
type session struct {
	tsih          uint16
	isid          [6]byte
	initiatorName string
	discovery     bool
	// key identifies the session for reinstatement: initiator name, ISID,
	// target name and portal group tag (RFC 7143 6.3.5). Empty for
	// discovery sessions.
	key        string
	targetName string // empty for discovery sessions
	tpgTag     uint16
	nexus      *scsi.Nexus
	conn       *conn
	log        *slog.Logger
	share      *share    // of the data-out budget; nil for discovery sessions
	finish     sync.Once // finishSession
}

// startSession creates the session a login is about to complete, first
// closing an older session with the same identity (session reinstatement,
// RFC 7143 6.3.5: its tasks are aborted before the new session goes on). It
// returns the new session's TSIH.
func (s *Server) startSession(ls *loginState) (uint16, *LoginError) {
	c := ls.c
	sess := &session{
		isid:          ls.req.isid,
		initiatorName: ls.initiatorName,
		discovery:     ls.discovery,
		conn:          c,
	}
	isid := isidString(ls.req.isid)
	if !ls.discovery {
		view, _ := ls.tpg.view(ls.acl)
		sess.key = fmt.Sprintf("%s|%s|%s|%d", ls.initiatorName, isid, ls.target.Name, ls.tpg.Tag)
		sess.targetName, sess.tpgTag = ls.target.Name, ls.tpg.Tag
		sess.nexus = scsi.NewNexus(scsi.Nexus{
			InitiatorName:  ls.initiatorName,
			InitiatorPort:  fmt.Sprintf("%s,i,0x%s", ls.initiatorName, isid),
			TargetName:     ls.target.Name,
			TargetPort:     fmt.Sprintf("%s,t,0x%04x", ls.target.Name, ls.tpg.Tag),
			TPGT:           ls.tpg.Tag,
			RelativePortID: ls.tpg.RelativePortID,
		}, view, s.cfg.Absent)
	}
	for {
		s.mu.Lock()
		if s.shuttingDown {
			s.mu.Unlock()
			return 0, loginErr(LoginServiceUnavailable, "server shutting down")
		}
		if ls.topo != nil && s.topo.Load() != ls.topo {
			// A reload changed the targets since this login looked them
			// up: the initiator retries against the new ones.
			s.mu.Unlock()
			return 0, loginErr(LoginServiceUnavailable, "configuration reloaded during login")
		}
		old := s.sessions[sess.key]
		if sess.key == "" || old == nil {
			tsih, ok := s.allocTSIH()
			if !ok {
				s.mu.Unlock()
				return 0, loginErr(LoginOutOfResources, "no free TSIH")
			}
			sess.tsih = tsih
			// Before the session is registered: a reload reconciles
			// every registered session and logs through its logger.
			sess.log = s.sessionLogger(ls, isid, tsih)
			s.byTSIH[tsih] = sess
			if sess.key != "" {
				s.sessions[sess.key] = sess
			}
			s.mu.Unlock()
			break
		}
		s.mu.Unlock()
		old.log.Info("session reinstatement: closing the old session")
		old.conn.stop(errReinstated)
		<-old.conn.finished
	}
	if !ls.discovery {
		sess.share = s.dataOut.join(ls.initiatorName)
	}
	c.sess = sess
	c.p = ls.p
	c.cid = ls.req.cid
	c.statSN = ls.statSN
	c.expCmdSN = ls.req.cmdSN
	c.maxCmdSN = ls.req.cmdSN + cmdWindow - 1
	c.log = sess.log
	return sess.tsih, nil
}

// sessionLogger returns the logger of the session a login makes.
func (s *Server) sessionLogger(ls *loginState, isid string, tsih uint16) *slog.Logger {
	attrs := []any{"initiator", ls.initiatorName, "isid", isid, "tsih", tsih, "remote", ls.c.nc.RemoteAddr().String()}
	if ls.discovery {
		attrs = append(attrs, "session", "discovery")
	} else {
		attrs = append(attrs, "target", ls.target.Name, "tpgt", ls.tpg.Tag)
	}
	return s.log.With(attrs...)
}

// allocTSIH returns an unused non-zero TSIH (RFC 7143 11.12.6); s.mu is
// held.
func (s *Server) allocTSIH() (uint16, bool) {
	for range 1 << 16 {
		s.nextTSIH++
		if s.nextTSIH != 0 && s.byTSIH[s.nextTSIH] == nil {
			return s.nextTSIH, true
		}
	}
	return 0, false
}

// finishSession ends a session whose connection has ended, once however
// many paths reach it: its I_T nexus ends (ERL 0, the session does not
// outlive its only connection, SAM-5 6.3.4) and the server forgets it.
func (s *Server) finishSession(sess *session) {
	sess.finish.Do(func() {
		if sess.nexus != nil {
			sess.nexus.End()
		}
		if sess.share != nil {
			s.dataOut.leave(sess.share)
		}
		s.forgetSession(sess)
	})
}

// forgetSession removes an ended session from the server's tables.
func (s *Server) forgetSession(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byTSIH[sess.tsih] == sess {
		delete(s.byTSIH, sess.tsih)
	}
	if sess.key != "" && s.sessions[sess.key] == sess {
		delete(s.sessions, sess.key)
	}
}

// sessionByTSIH returns the live session with the given TSIH.
func (s *Server) sessionByTSIH(tsih uint16) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byTSIH[tsih]
}

// targetSessions returns the live sessions logged in to the named target.
func (s *Server) targetSessions(name string) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for _, sess := range s.byTSIH {
		if !sess.discovery && sess.targetName == name {
			out = append(out, sess)
		}
	}
	return out
}
