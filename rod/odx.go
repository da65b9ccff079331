package rod

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TokenConfig configures the ROD tokens of a copy manager.
type TokenConfig struct {
	// DefaultTimeout and MaxTimeout are the inactivity timeout a token
	// gets when POPULATE TOKEN asks for none, and the most it may ask for;
	// zero means DefaultInactivityTimeout and MaxInactivityTimeout seconds.
	DefaultTimeout, MaxTimeout time.Duration
	// MaxTokens bounds the live tokens; zero means DefaultMaxTokens.
	MaxTokens int
	// SnapshotSpace bounds the bytes copy-on-write may preserve for all
	// point-in-time tokens together; zero means DefaultSnapshotSpace.
	SnapshotSpace int64
	// SnapshotDir returns the directory for the snapshot files of a
	// logical unit's tokens, which clones need on the file system of its
	// backstore; "" keeps preserved data in memory.
	SnapshotDir func(lu *scsi.LU) string
	// Scope narrows who may use a token.
	Scope Scope
	// WriteBudget bounds the time one WRITE USING TOKEN works before it
	// reports how far it got (Windows gives each 4 s); zero means
	// DefaultWriteBudget.
	WriteBudget time.Duration
	// DeviceData returns the device type specific data of the tokens made
	// from a logical unit (for a block device, SBC-3: what READ CAPACITY
	// (16) reports from LOGICAL BLOCK LENGTH on); nil puts only the block
	// length there.
	DeviceData func(lu *scsi.LU) []byte
	// Key authenticates tokens; empty means a random key of the process.
	// With a key, tokens that need no copy-on-write outlive the process
	// (persist.go).
	Key []byte
}

// Token defaults.
const (
	DefaultMaxTokens = 1024
	// DefaultSnapshotSpace is small enough to keep in memory, where the
	// snapshots of block backstores without a snapshot directory live.
	DefaultSnapshotSpace = 1 << 30
	DefaultWriteBudget   = 2 * time.Second
	// snapshotSuffix names snapshot files, which RestoreTokens removes
	// when no persistent token needs them.
	snapshotSuffix = ".odxtgt-snapshot"
)

// Populate makes the token of a POPULATE TOKEN command (SBC-3 5.9) for
// list l, sent by req.Nexus to req.LU: it checks the parameters, takes a
// point-in-time snapshot of the ranges (unless access upon reference was
// asked for) and records the token in l for RECEIVE ROD TOKEN
// INFORMATION. A request for more than MaxTokenBytes represents the first
// MaxTokenBytes, which RRTI reports.
func (m *Manager) Populate(ctx context.Context, l *List, req Request, p *PopulateParams) *scsi.Sense {
	lu := req.LU
	rodType, timeout, s := m.checkPopulate(lu, p)
	if s != nil {
		return s
	}
	prot, _ := lu.Store.(*Protected)
	if !m.tok.reserve(m.tcfg.MaxTokens) {
		return scsi.NewSense(scsi.IllegalRequest, ascInsufficientResources).WithReason("%d tokens live", m.tcfg.MaxTokens)
	}
	made := false
	defer func() {
		if !made {
			m.tok.unreserve()
		}
	}()
	bs := uint64(lu.Store.BlockSize())
	tok := &Token{rodType: rodType, lu: lu, timeout: timeout, creator: req.Nexus.Key(),
		target: req.Nexus.TargetName, initiator: req.Nexus.InitiatorName}
	var asked uint64
	var accesses []scsi.Access
	var byteRanges []byteRange
	for _, r := range p.Ranges {
		asked += uint64(r.Blocks)
		n := min(uint64(r.Blocks), (MaxTokenBytes-uint64(tok.bytes))/bs)
		if n == 0 {
			continue
		}
		tok.ranges = append(tok.ranges, blockRange{r.LBA, n})
		tok.bytes += int64(n * bs)
		accesses = append(accesses, scsi.Access{LU: lu, LBA: r.LBA, Blocks: n})
		byteRanges = append(byteRanges, byteRange{int64(r.LBA * bs), int64(n * bs)})
	}
	err := m.runInternal(ctx, req.Nexus, accesses, func(context.Context) error {
		if rodType == RODTypeAccessUponReference {
			return nil
		}
		return m.snapshot(tok, prot, byteRanges)
	})
	if err != nil {
		var s *scsi.Sense
		if errors.As(err, &s) {
			return s
		}
		return scsi.InternalTargetFailure().WithReason("point-in-time snapshot: %v", err)
	}
	m.tok.add(tok, m.now())
	made = true
	m.persist(tok)
	m.startReaper()
	m.setToken(l, tok, uint64(tok.bytes)/bs, uint64(tok.bytes)/bs < asked)
	m.log.Info("ROD token created", "token", tok.id, "lu", lu.Identity.Name, "rod_type", fmt.Sprintf("%08xh", rodType),
		"bytes", tok.bytes, "ranges", len(tok.ranges), "snapshot_space_used", m.tok.space.Used())
	return nil
}

// CheckPopulate checks the parameters of a POPULATE TOKEN for lu as
// Populate will, so that a command with IMMED set is refused at once
// rather than reporting the error later (SBC-3 5.9.1).
func (m *Manager) CheckPopulate(lu *scsi.LU, p *PopulateParams) *scsi.Sense {
	_, _, s := m.checkPopulate(lu, p)
	return s
}

// checkPopulate checks p and returns the ROD type and inactivity timeout
// of the token to make.
func (m *Manager) checkPopulate(lu *scsi.LU, p *PopulateParams) (uint32, time.Duration, *scsi.Sense) {
	if s := checkRanges(p.Ranges, lu.Blocks()); s != nil {
		return 0, 0, s
	}
	timeout := m.tcfg.DefaultTimeout
	if p.Timeout != 0 {
		timeout = time.Duration(p.Timeout) * time.Second
		if timeout > m.tcfg.MaxTimeout {
			return 0, 0, scsi.InvalidFieldInParameterList(4, -1).WithReason("inactivity timeout %d s exceeds %v", p.Timeout, m.tcfg.MaxTimeout)
		}
	}
	rodType := RODTypePointInTime
	if p.RTV {
		switch p.RODType {
		case RODTypePointInTimeAny:
		case RODTypeAccessUponReference, RODTypePointInTime, RODTypePointInTimeChange:
			rodType = p.RODType
		default:
			return 0, 0, scsi.InvalidFieldInParameterList(8, -1).WithReason("ROD type %08xh", p.RODType)
		}
	}
	if _, ok := lu.Store.(*Protected); rodType != RODTypeAccessUponReference && !ok {
		return 0, 0, scsi.InvalidFieldInParameterList(8, -1).WithReason("logical unit %s takes no point-in-time tokens", lu.Identity.Name)
	}
	return rodType, timeout, nil
}

// CheckWriteUsingToken checks the parameters of a WRITE USING TOKEN to lu
// from nexus n as WriteUsingToken will, the token included, so that a
// command with IMMED set is refused at once.
func (m *Manager) CheckWriteUsingToken(n *scsi.Nexus, lu *scsi.LU, p *WUTParams) *scsi.Sense {
	if s := checkRanges(p.Ranges, lu.Blocks()); s != nil {
		return s
	}
	tok, s := m.tok.verify(p.Token[:], m.now())
	if s != nil || tok == nil {
		return s
	}
	defer m.tok.release(tok, false, false, m.now())
	if !m.inScope(tok, n) {
		return scsi.NewSense(scsi.IllegalRequest, ascTokenRemoteUsage).WithReason("ROD token %d is out of this nexus's scope", tok.id)
	}
	return nil
}

// snapshot takes tok's point-in-time snapshot of ranges of prot's store.
func (m *Manager) snapshot(tok *Token, prot *Protected, ranges []byteRange) error {
	sink, path, err := m.snapshotSink(tok.lu, prot)
	if err != nil {
		return err
	}
	tok.snap = newSnapshot(prot, sink, path, ranges, tok.rodType == RODTypePointInTimeChange, m.tok.space, func() { m.revoked(tok) })
	return nil
}

// snapshotSink makes the sink of a snapshot of lu, whose store is prot: a
// file in lu's snapshot directory, named by path, or memory.
func (m *Manager) snapshotSink(lu *scsi.LU, prot *Protected) (sink backstore.Store, path string, err error) {
	size, bs := prot.Size(), prot.BlockSize()
	dir := m.snapshotDir(lu)
	if dir == "" {
		return newMemorySink(size, bs), "", nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	var name [8]byte
	_, _ = rand.Read(name[:])
	path = filepath.Join(dir, hex.EncodeToString(name[:])+snapshotSuffix)
	st, err := backstore.OpenFile(path, size, bs, backstore.FileOptions{})
	if err != nil {
		os.Remove(path)
		return nil, "", err
	}
	return st, path, nil
}

func (m *Manager) snapshotDir(lu *scsi.LU) string {
	if m.tcfg.SnapshotDir == nil {
		return ""
	}
	return m.tcfg.SnapshotDir(lu)
}

// revoked ends a token whose snapshot lost data (PIT-2).
func (m *Manager) revoked(tok *Token) {
	m.tok.end(tok, tokenRevoked)
	m.log.Warn("ROD token revoked", "token", tok.id, "lu", tok.lu.Identity.Name,
		"snapshot_space_used", m.tok.space.Used(), "snapshot_space", m.tok.space.limit)
}

// startReaper runs, while any token lives, a loop that ends the tokens
// whose inactivity timeout has passed, so their snapshots stop costing
// writes and space even when no command arrives.
func (m *Manager) startReaper() {
	m.tok.mu.Lock()
	if m.tok.reaping {
		m.tok.mu.Unlock()
		return
	}
	m.tok.reaping = true
	m.tok.mu.Unlock()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for range t.C {
			if !m.tok.expire(m.now()) {
				return
			}
		}
	}()
}

// TokensOf returns the live tokens nexus n made through lu, in the order
// they were made.
func (m *Manager) TokensOf(n *scsi.Nexus, lu *scsi.LU) [][TokenLength]byte {
	m.tok.mu.Lock()
	defer m.tok.mu.Unlock()
	var found []*Token
	for _, t := range m.tok.live {
		if t.creator == n.Key() && t.lu == lu {
			found = append(found, t)
		}
	}
	slices.SortFunc(found, func(a, b *Token) int { return cmp.Compare(a.id, b.id) })
	out := make([][TokenLength]byte, len(found))
	for i, t := range found {
		out[i] = t.raw
	}
	return out
}

// SnapshotSpaceUsed returns the bytes point-in-time snapshots preserve.
func (m *Manager) SnapshotSpaceUsed() int64 { return m.tok.space.Used() }

// TokenTimeouts returns the default and the longest inactivity timeout of
// a token.
func (m *Manager) TokenTimeouts() (def, most time.Duration) {
	return m.tcfg.DefaultTimeout, m.tcfg.MaxTimeout
}
