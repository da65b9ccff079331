package iscsi

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/odxtgt/odxtgt/scsi"
)

// CHAP holds the secrets of CHAP authentication (RFC 7143 12.1.3). User and
// Secret authenticate the initiator to the target; MutualUser and
// MutualSecret, when set, authenticate the target to an initiator that asks
// for it.
type CHAP struct{ User, Secret, MutualUser, MutualSecret string }

// mutual reports whether the target can answer a mutual challenge.
func (c *CHAP) mutual() bool { return c.MutualUser != "" && c.MutualSecret != "" }

// ACL admits one initiator to a target portal group.
type ACL struct {
	// Initiator is the initiator's iSCSI name.
	Initiator string
	// LUNs is the initiator's view; nil means the TPG's LUNs.
	LUNs map[uint64]*scsi.LU
	// Auth overrides the TPG's CHAP settings; nil means the TPG's.
	Auth *CHAP
}

// TPG is a target portal group: the portals a target is reached on, the
// logical units it offers and who may log in.
type TPG struct {
	// Tag is the target portal group tag (RFC 7143 13.9).
	Tag uint16
	// RelativePortID is the relative target port identifier reported in
	// the Device Identification VPD page.
	RelativePortID uint16
	// Portals are "host:port" listen addresses; a port of 0 picks a free
	// one (tests).
	Portals []string
	// LUNs maps LUNs to logical units.
	LUNs map[uint64]*scsi.LU
	// Auth requires CHAP of every initiator; nil means no authentication.
	Auth *CHAP
	// ACLs lists the initiators admitted; nil admits any initiator (demo
	// mode).
	ACLs []ACL
}

// Target is one iSCSI target node.
type Target struct {
	Name, Alias string
	TPGs        []*TPG
}

// Config configures a Server.
type Config struct {
	Targets []*Target
	// Absent answers commands to LUNs that have no logical unit
	// (scsi.NewAbsentLU); required.
	Absent *scsi.LU
	Logger *slog.Logger
	// DiscoveryAuth requires CHAP for discovery sessions; nil means none.
	DiscoveryAuth *CHAP
	// NOPInInterval is how long a connection may be idle before the target
	// pings the initiator with a NOP-In; 0 means 30 s.
	NOPInInterval time.Duration
	// NOPInTimeout is how long the target waits for the answer before it
	// drops the connection; 0 means 30 s.
	NOPInTimeout time.Duration
	// LoginTimeout bounds the whole login phase of a connection, from
	// accept to full feature phase, however the initiator sends (nothing,
	// or a byte at a time); 0 means 15 s.
	LoginTimeout time.Duration
	// MaxConnections caps the connections served at once, logging in or
	// logged in, over all portals; 0 means DefaultMaxConnections. More are
	// closed as soon as they are accepted.
	MaxConnections int
	// MaxConnectionsPerIP caps the connections served at once from one
	// source address; 0 means DefaultMaxConnectionsPerIP.
	MaxConnectionsPerIP int
	// SendTimeout is how long a socket write in full feature phase may
	// make no progress, the initiator not reading, before the connection
	// is dropped; 0 means 30 s.
	SendTimeout time.Duration
	// SendQueueLimit is how many bytes of PDUs (headers and data
	// segments) may wait for a connection's socket before the target
	// stops reading from that initiator until they drain; 0 means
	// DefaultSendQueueLimit. Negative values are invalid.
	SendQueueLimit int
	// DataInLimit bounds the data-in the commands running on one
	// connection may produce, a read counting min(EDTL,
	// scsi.MaxTransferBytes) from its start to its end: past it the
	// target reads no more requests from that initiator until some
	// finish; 0 means DefaultDataInLimit. Negative values are invalid.
	DataInLimit int64
	// DataOutBudget bounds the data-out bytes buffered for commands across
	// all connections; 0 means DefaultDataOutBudget. A write that would
	// exceed it, or its session's or initiator's share, ends with TASK SET
	// FULL, which initiators retry. A write reserves its EDTL once its
	// CmdSN turn has come; before that only its unsolicited data.
	DataOutBudget int64
	// SessionDataOutBudget caps what one session may hold of
	// DataOutBudget; 0 means DefaultSessionDataOutBudget. A session's
	// share is DataOutBudget divided among the sessions logged in, at
	// least scsi.MaxTransferBytes, at most this cap. Set, it must be at
	// least scsi.MaxTransferBytes.
	SessionDataOutBudget int64
	// InitiatorDataOutBudget caps what the sessions of one initiator
	// name may hold together, shared the same way among the initiator
	// names logged in; 0 means DefaultInitiatorDataOutBudget. Set, it
	// must be at least scsi.MaxTransferBytes.
	InitiatorDataOutBudget int64
	// DataOutTimeout ends a write whose announced data stops arriving:
	// after DataOutTimeout (at most twice that) without a Data-Out for
	// it, the command ends with CHECK CONDITION, ABORTED COMMAND, ASC/ASCQ
	// 0Ch/0Dh (the iSCSI condition "incorrect amount of data", RFC 7143
	// 11.4.7.2) and its reservation is released; the connection goes on.
	// 0 means 30 s.
	DataOutTimeout time.Duration
}

// Defaults for the Config durations.
const (
	DefaultNOPInInterval  = 30 * time.Second
	DefaultNOPInTimeout   = 30 * time.Second
	DefaultLoginTimeout   = 15 * time.Second
	DefaultSendTimeout    = 30 * time.Second
	DefaultDataOutTimeout = 30 * time.Second
)

// Defaults of the per-connection send limits: SendQueueLimit, and
// DataInLimit, room for 8 reads of the largest transfer at once.
const (
	DefaultSendQueueLimit = 1 << 20
	DefaultDataInLimit    = 8 * scsi.MaxTransferBytes
)

// Defaults of the connection caps: a connection logging in costs about
// 130 KiB of buffers, so the default total stays within a small machine's
// means.
const (
	DefaultMaxConnections      = 1024
	DefaultMaxConnectionsPerIP = 64
)

// Defaults of the data-out budgets: room for 64 writes of the largest
// transfer at once, 16 of them for one session, 32 for one initiator.
const (
	DefaultDataOutBudget          = 64 * scsi.MaxTransferBytes
	DefaultSessionDataOutBudget   = 16 * scsi.MaxTransferBytes
	DefaultInitiatorDataOutBudget = 32 * scsi.MaxTransferBytes
)

// maxNameLength is the longest iSCSI name (RFC 7143 4.2.7.1: 223 bytes).
const maxNameLength = 223

// acl returns the ACL entry that admits the initiator, whether it is
// admitted at all, and nil with true in demo mode.
func (g *TPG) acl(initiator string) (*ACL, bool) {
	if g.ACLs == nil {
		return nil, true
	}
	for i := range g.ACLs {
		if g.ACLs[i].Initiator == initiator {
			return &g.ACLs[i], true
		}
	}
	return nil, false
}

// view returns the LUNs and CHAP settings that apply to an admitted
// initiator.
func (g *TPG) view(a *ACL) (map[uint64]*scsi.LU, *CHAP) {
	luns, auth := g.LUNs, g.Auth
	if a != nil {
		if a.LUNs != nil {
			luns = a.LUNs
		}
		if a.Auth != nil {
			auth = a.Auth
		}
	}
	return luns, auth
}

// validate checks the configuration and returns every problem found.
func (cfg *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.Absent == nil {
		bad("config: Absent logical unit is required")
	}
	if cfg.SendQueueLimit < 0 || cfg.DataInLimit < 0 {
		bad("config: SendQueueLimit %d and DataInLimit %d may not be negative", cfg.SendQueueLimit, cfg.DataInLimit)
	}
	if cfg.MaxConnections < 0 || cfg.MaxConnectionsPerIP < 0 {
		bad("config: MaxConnections %d and MaxConnectionsPerIP %d may not be negative", cfg.MaxConnections, cfg.MaxConnectionsPerIP)
	}
	if cfg.DataOutBudget < 0 {
		bad("config: DataOutBudget %d is negative", cfg.DataOutBudget)
	}
	for _, b := range []struct {
		name string
		v    int64
	}{{"SessionDataOutBudget", cfg.SessionDataOutBudget}, {"InitiatorDataOutBudget", cfg.InitiatorDataOutBudget}} {
		if b.v != 0 && b.v < scsi.MaxTransferBytes {
			bad("config: %s %d is below the largest transfer, %d", b.name, b.v, scsi.MaxTransferBytes)
		}
	}
	names := map[string]bool{}
	for ti, t := range cfg.Targets {
		if t == nil {
			bad("config: target %d is nil", ti)
			continue
		}
		where := fmt.Sprintf("target %q", t.Name)
		switch {
		case t.Name == "":
			bad("config: target %d has no name", ti)
		case len(t.Name) > maxNameLength:
			bad("%s: name longer than %d bytes", where, maxNameLength)
		case names[t.Name]:
			bad("%s: defined twice", where)
		}
		names[t.Name] = true
		tags := map[uint16]bool{}
		portals := map[string]uint16{}
		for gi, g := range t.TPGs {
			if g == nil {
				bad("%s: TPG %d is nil", where, gi)
				continue
			}
			gw := fmt.Sprintf("%s TPG %d", where, g.Tag)
			if tags[g.Tag] {
				bad("%s: tag used twice", gw)
			}
			tags[g.Tag] = true
			if len(g.Portals) == 0 {
				bad("%s: no portals", gw)
			}
			for _, p := range g.Portals {
				if _, _, err := net.SplitHostPort(p); err != nil {
					bad("%s: portal %q: %v", gw, p, err)
				}
				if other, dup := portals[p]; dup {
					bad("%s: portal %q already serves TPG %d", gw, p, other)
				}
				portals[p] = g.Tag
			}
			errs = append(errs, checkLUNs(gw, g.LUNs)...)
			errs = append(errs, checkCHAP(gw, g.Auth)...)
			for _, a := range g.ACLs {
				aw := fmt.Sprintf("%s ACL %q", gw, a.Initiator)
				if a.Initiator == "" || len(a.Initiator) > maxNameLength {
					bad("%s: initiator name must be 1 to %d bytes", aw, maxNameLength)
				}
				errs = append(errs, checkLUNs(aw, a.LUNs)...)
				errs = append(errs, checkCHAP(aw, a.Auth)...)
			}
		}
	}
	errs = append(errs, checkCHAP("discovery", cfg.DiscoveryAuth)...)
	return joinErrors(errs)
}

func checkLUNs(where string, luns map[uint64]*scsi.LU) []error {
	var errs []error
	for lun, lu := range luns {
		if lun > scsi.MaxLUN {
			errs = append(errs, fmt.Errorf("%s: LUN %d above %d", where, lun, scsi.MaxLUN))
		}
		if lu == nil {
			errs = append(errs, fmt.Errorf("%s: LUN %d has no logical unit", where, lun))
		}
	}
	return errs
}

func checkCHAP(where string, c *CHAP) []error {
	if c == nil {
		return nil
	}
	var errs []error
	if c.User == "" || c.Secret == "" {
		errs = append(errs, fmt.Errorf("%s: CHAP needs a user and a secret", where))
	}
	if (c.MutualUser == "") != (c.MutualSecret == "") {
		errs = append(errs, fmt.Errorf("%s: mutual CHAP needs both a user and a secret", where))
	}
	// RFC 7143 12.1.3: the secrets of the two directions must differ, or
	// a reflected challenge would authenticate an impostor.
	if c.MutualSecret != "" && c.MutualSecret == c.Secret {
		errs = append(errs, fmt.Errorf("%s: mutual CHAP secret equals the initiator's secret", where))
	}
	return errs
}

func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("iscsi: invalid configuration: %w", errors.Join(errs...))
}
