package iscsi

import (
	"fmt"
	"net"

	"github.com/odxtgt/odxtgt/scsi"
)

// topology is the targets a server offers and the portals they are
// reached on. Reconfigure replaces it whole; the Targets, TPGs and ACLs it
// holds are never modified once it is published, so readers load it once
// and use it without a lock.
type topology struct {
	list    []*Target          // in configuration order (SendTargets=All)
	targets map[string]*Target // by name
	tpgs    map[string]map[*Target]*TPG
	addrs   []string // distinct portal addresses, in configuration order
}

func newTopology(targets []*Target) *topology {
	t := &topology{
		list:    targets,
		targets: map[string]*Target{},
		tpgs:    map[string]map[*Target]*TPG{},
	}
	for _, tg := range targets {
		t.targets[tg.Name] = tg
		for _, g := range tg.TPGs {
			for _, addr := range g.Portals {
				if t.tpgs[addr] == nil {
					t.tpgs[addr] = map[*Target]*TPG{}
					t.addrs = append(t.addrs, addr)
				}
				t.tpgs[addr][tg] = g
			}
		}
	}
	return t
}

// tpg returns the portal group of target served on the portal address,
// or nil.
func (t *topology) tpg(addr string, target *Target) *TPG { return t.tpgs[addr][target] }

// Reconfigure replaces the targets the server offers, as a configuration
// reload does, without stopping it. targets is validated as NewServer
// validates Config.Targets and must be built afresh (Reconfigure keeps
// referring to the Targets, TPGs and ACLs it is given; they must not be
// modified afterwards). An invalid configuration, or a new portal that
// cannot be bound, is refused with an error and nothing changes.
//
// Otherwise new portals start listening, portals no longer configured stop
// (sessions logged in through them stay while they are still allowed),
// and every live session is held to the new configuration: a session
// whose target or portal group is gone, or whose initiator the ACL no
// longer admits, sees no logical unit from then on and has its connection
// closed (no Logout is requested); one
// whose LUN map changed sees the new logical units, with REPORTED LUNS
// DATA HAS CHANGED pending (scsi.Nexus.SetLUs). CHAP settings apply to
// later logins only: a session has already authenticated.
func (s *Server) Reconfigure(targets []*Target) error {
	cfg := s.cfg
	cfg.Targets = targets
	if err := cfg.validate(); err != nil {
		return err
	}
	topo := newTopology(targets)

	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	gone := map[string]*portal{}
	for _, p := range s.portals {
		gone[p.addr] = p
	}
	var portals, added []*portal
	for _, addr := range topo.addrs {
		if p := gone[addr]; p != nil {
			delete(gone, addr)
			portals = append(portals, p)
			continue
		}
		p := &portal{addr: addr}
		if s.listening {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				for _, q := range added {
					q.ln.Close()
				}
				s.mu.Unlock()
				return fmt.Errorf("portal %s: %w", addr, err)
			}
			p.ln = ln
		}
		added = append(added, p)
		portals = append(portals, p)
	}
	s.portals = portals
	s.topo.Store(topo)
	for _, p := range added {
		if s.serving {
			s.acceptWG.Add(1)
			go s.acceptLoop(p)
		}
		if p.ln != nil {
			s.log.Info("reload: portal listening", "portal", p.ln.Addr().String())
		}
	}
	for _, p := range gone {
		if p.ln != nil {
			p.ln.Close()
			s.log.Info("reload: portal stopped", "portal", p.addr)
		}
	}
	var sessions []*session
	for _, sess := range s.byTSIH {
		if !sess.discovery {
			sessions = append(sessions, sess)
		}
	}
	s.mu.Unlock()

	// Logins that looked up the old topology and had not registered their
	// session yet are refused in startSession; every other session is in
	// this list.
	for _, sess := range sessions {
		s.reconcile(sess, topo)
	}
	return nil
}

// reconcile holds a live session to a new topology.
func (s *Server) reconcile(sess *session, topo *topology) {
	var g *TPG
	if t := topo.targets[sess.targetName]; t != nil {
		for _, x := range t.TPGs {
			if x.Tag == sess.tpgTag {
				g = x
			}
		}
	}
	if g == nil {
		sess.log.Info("reload: closing the session, its target portal group was removed")
		closeReconfigured(sess)
		return
	}
	acl, ok := g.acl(sess.initiatorName)
	if !ok {
		sess.log.Info("reload: closing the session, the initiator was removed from the ACL")
		closeReconfigured(sess)
		return
	}
	view, _ := g.view(acl)
	if sess.nexus.SetLUs(view) {
		sess.log.Info("reload: LUN map changed, REPORTED LUNS DATA HAS CHANGED pending", "luns", fmt.Sprint(sess.nexus.LUNs()))
	}
}

// closeReconfigured closes a session the new topology no longer allows.
// Its LUN map is emptied first: the connection closes asynchronously, and
// a command that arrives meanwhile must find no logical unit
// (LOGICAL UNIT NOT SUPPORTED) rather than the medium it may no longer
// reach. The commands already running are aborted as the connection ends.
func closeReconfigured(sess *session) {
	sess.nexus.SetLUs(map[uint64]*scsi.LU{})
	sess.conn.stop(errReconfigured)
}
