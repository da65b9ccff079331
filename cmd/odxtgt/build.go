package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/config"
	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/sbc"
	"github.com/odxtgt/odxtgt/scsi"
	"github.com/odxtgt/odxtgt/spc"
)

// runtime is everything a configuration turns into: open backstores, their
// logical units and the iSCSI server configuration. reload (reload.go)
// changes it while the target runs.
type runtime struct {
	log    *slog.Logger
	cfg    *config.Config // the configuration applied
	table  *scsi.Table
	copies *rod.Manager
	stores map[string]backstore.Store // by backstore name
	lus    map[string]*scsi.LU        // by backstore name
	// rtpis are the relative target port identifiers given out, by
	// target port name; nextRTPI the next one. A portal group keeps its
	// identifier across reloads, and one is never reused for another.
	rtpis    map[string]uint16
	nextRTPI uint16
	server   iscsi.Config
	retiring sync.WaitGroup // backstores removed by a reload, not yet closed

	mu           sync.Mutex          // guards all, snapshotDirs and fresh, read by the copy manager
	all          []*scsi.LU          // every logical unit, once built
	snapshotDirs map[*scsi.LU]string // where each LU's token snapshots go
	// fresh are the snapshot directories of backstores just opened that
	// no other open backstore uses, with their logical units: the files
	// there are a previous run's, restored or removed by restoreTokens
	// once every backstore is open.
	fresh map[string][]*scsi.LU
}

// restoreTokens brings back the persistent ROD tokens of the backstores
// just opened (tokens.key_file) and removes the other snapshot and token
// files a previous run left in their snapshot directories.
func (r *runtime) restoreTokens() {
	r.mu.Lock()
	fresh := r.fresh
	r.fresh = map[string][]*scsi.LU{}
	r.mu.Unlock()
	for dir, lus := range fresh {
		restored, removed, err := r.copies.RestoreTokens(dir, lus)
		if err != nil {
			r.log.Warn("cannot restore or remove the ROD token files of a previous run", "dir", dir, "err", err)
		}
		if restored > 0 || removed > 0 {
			r.log.Info("ROD token files of a previous run", "dir", dir, "restored", restored, "removed", removed)
		}
	}
}

// readTokenKey reads the token key file: at least config.MinTokenKeyLength
// bytes, readable and writable by its owner only (a key others can read
// lets them forge tokens for any data served here).
func readTokenKey(path string) ([]byte, error) {
	// The checks are of the file read, not of whatever the path named a
	// moment earlier.
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkTokenKey(path, st); err != nil {
		return nil, err
	}
	key := make([]byte, st.Size())
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// checkTokenKey checks the key file's kind, size, mode and owner.
func checkTokenKey(path string, st os.FileInfo) error {
	uid := -1
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		uid = int(sys.Uid)
	}
	switch {
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case st.Size() < config.MinTokenKeyLength:
		return fmt.Errorf("%s holds %d bytes, at least %d random bytes are needed (head -c 32 /dev/urandom > %s)",
			path, st.Size(), config.MinTokenKeyLength, path)
	case st.Size() > 4096:
		return fmt.Errorf("%s holds %d bytes: a key file is at most 4096", path, st.Size())
	case st.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s has mode %v: other users could forge tokens (chmod 600 %s)", path, st.Mode().Perm(), path)
	case uid != os.Geteuid():
		// Its owner reads it whatever its mode says.
		return fmt.Errorf("%s is owned by uid %d, not by the user odxtgt runs as (uid %d): that user could forge tokens",
			path, uid, os.Geteuid())
	}
	return nil
}

// close waits for the backstores a reload removed to close, stops the
// copies still running, drops the ROD tokens, then flushes and closes
// every backstore, returning the first error.
func (r *runtime) close() error {
	r.retiring.Wait()
	if r.copies != nil {
		r.copies.Close()
	}
	var errs []error
	for _, b := range r.cfg.Backstores {
		s := r.stores[b.Name]
		if s == nil {
			continue
		}
		if err := s.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// allLUs is the copy manager's view of every logical unit of the process
// (copy.cross_target).
func (r *runtime) allLUs() []*scsi.LU {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

func (r *runtime) snapshotDir(lu *scsi.LU) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshotDirs[lu]
}

// build opens the backstores of cfg and wires logical units, targets and
// portal groups. On error everything already opened is closed.
func build(cfg *config.Config, log *slog.Logger) (*runtime, error) {
	r := &runtime{
		log: log, cfg: &config.Config{}, stores: map[string]backstore.Store{}, lus: map[string]*scsi.LU{},
		rtpis: map[string]uint16{}, nextRTPI: 1, snapshotDirs: map[*scsi.LU]string{}, fresh: map[string][]*scsi.LU{},
	}
	tc := tokenConfig(cfg.Tokens, r.snapshotDir)
	if cfg.Tokens.KeyFile != "" {
		key, err := readTokenKey(cfg.Tokens.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tokens.key_file: %w", err)
		}
		tc.Key = key
	}
	copyCfg := rod.Config{Logger: log, Tokens: tc}
	if cfg.Copy.CrossTarget {
		copyCfg.CrossTarget = r.allLUs
	}
	r.copies = rod.NewManager(copyCfg)
	table, err := scsi.NewTable(spc.Commands(spc.Options{Copy: r.copies}), sbc.Commands(sbc.Options{Copy: r.copies}))
	if err != nil {
		return nil, fmt.Errorf("command table: %w", err)
	}
	r.table = table
	r.assignPorts(cfg)
	ports := r.targetPorts(cfg)
	for i := range cfg.Backstores {
		if err := r.open(cfg, &cfg.Backstores[i], ports); err != nil {
			_ = r.close()
			return nil, err
		}
		r.cfg.Backstores = append(r.cfg.Backstores, cfg.Backstores[i])
	}
	r.restoreTokens()
	l := cfg.Limits
	secs := func(n int64) time.Duration { return time.Duration(n) * time.Second }
	r.server = iscsi.Config{
		Absent: scsi.NewAbsentLU(table, log), Logger: log,
		MaxConnections: int(l.MaxConnections), MaxConnectionsPerIP: int(l.MaxConnectionsPerIP),
		LoginTimeout: secs(l.LoginTimeout), NOPInInterval: secs(l.NOPInterval), NOPInTimeout: secs(l.NOPTimeout),
		SendTimeout: secs(l.SendTimeout), DataOutTimeout: secs(l.DataOutTimeout),
		SendQueueLimit: int(l.SendQueue), DataInLimit: l.DataIn, DataOutBudget: l.DataOutBudget,
		SessionDataOutBudget: l.SessionDataOutBudget, InitiatorDataOutBudget: l.InitiatorDataOutBudget,
	}
	r.server.Targets = r.targets(cfg)
	r.cfg = cfg
	return r, nil
}

// open opens backstore b of cfg and makes its logical unit, reachable
// through ports[b.Name].
func (r *runtime) open(cfg *config.Config, b *config.Backstore, ports map[string][]scsi.TargetPortID) error {
	store, err := openStore(*b)
	if err != nil {
		return fmt.Errorf("backstore %s: %w", b.Name, err)
	}
	dir := snapshotDir(*b, cfg.Tokens)
	r.mu.Lock()
	// A directory another open backstore uses holds live snapshots, not
	// a previous run's, unless that backstore was opened just now too.
	inUse := slices.Contains(slices.Collect(maps.Values(r.snapshotDirs)), dir) && r.fresh[dir] == nil
	r.mu.Unlock()
	lu := scsi.NewLU(scsi.LUConfig{
		Identity: scsi.Identity{
			Name:     b.Name,
			Vendor:   spc.DefaultVendor,
			Product:  b.Product,
			Revision: spc.DefaultRevision,
			Serial:   b.Serial,
		},
		// Every write passes the point-in-time protection of ROD
		// tokens, whichever command makes it.
		Store:           rod.Protect(store),
		ReadOnly:        b.ReadOnly,
		WriteCache:      b.WriteCache,
		Table:           r.table,
		Logger:          r.log,
		Events:          r.copies,
		Ports:           ports[b.Name],
		ReservationFile: cfg.ReservationFile(b),
	})
	if err := lu.RestoreReservations(); err != nil {
		_ = store.Close()
		return fmt.Errorf("backstore %s: %w", b.Name, err)
	}
	r.stores[b.Name] = store
	r.lus[b.Name] = lu
	r.mu.Lock()
	r.all = append(r.all, lu)
	r.snapshotDirs[lu] = dir
	if dir != "" && !inUse {
		r.fresh[dir] = append(r.fresh[dir], lu)
	}
	r.mu.Unlock()
	r.log.Info("backstore ready", "name", b.Name, "type", b.Type, "path", b.Path,
		"size", store.Size(), "block_size", store.BlockSize(), "serial", b.Serial)
	return nil
}

// targets builds the iSCSI targets of cfg from the open logical units,
// afresh: the server keeps what it is given.
func (r *runtime) targets(cfg *config.Config) []*iscsi.Target {
	var out []*iscsi.Target
	for _, t := range cfg.Targets {
		target := &iscsi.Target{Name: t.IQN, Alias: t.Alias}
		for _, g := range t.TPGs {
			tpg := &iscsi.TPG{
				Tag:            g.Tag,
				RelativePortID: r.rtpis[scsi.TargetPortName(t.IQN, g.Tag)],
				Portals:        g.Portals,
				LUNs:           map[uint64]*scsi.LU{},
				Auth:           chap(g.Auth),
			}
			for _, l := range g.LUNs {
				tpg.LUNs[l.LUN] = r.lus[l.Backstore]
			}
			for _, a := range g.ACLs {
				acl := iscsi.ACL{Initiator: a.Initiator, Auth: chap(a.Auth)}
				if a.LUNs != nil {
					acl.LUNs = map[uint64]*scsi.LU{}
					for _, lun := range a.LUNs {
						acl.LUNs[lun] = tpg.LUNs[lun]
					}
				}
				tpg.ACLs = append(tpg.ACLs, acl)
			}
			target.TPGs = append(target.TPGs, tpg)
		}
		out = append(out, target)
	}
	return out
}

// assignPorts gives every portal group of cfg that has none a relative
// target port identifier. Identifiers are unique across the whole target
// device, one per portal group (SPC-4 7.8.6.6); on the first
// configuration they run from 1 in configuration order.
func (r *runtime) assignPorts(cfg *config.Config) {
	for _, t := range cfg.Targets {
		for _, g := range t.TPGs {
			name := scsi.TargetPortName(t.IQN, g.Tag)
			if _, ok := r.rtpis[name]; !ok {
				r.rtpis[name] = r.nextRTPI
				r.nextRTPI++
			}
		}
	}
}

// targetPorts returns, for each backstore, the target ports that map it:
// one per portal group, with the identifiers assignPorts gave them.
func (r *runtime) targetPorts(cfg *config.Config) map[string][]scsi.TargetPortID {
	ports := map[string][]scsi.TargetPortID{}
	for _, t := range cfg.Targets {
		for _, g := range t.TPGs {
			name := scsi.TargetPortName(t.IQN, g.Tag)
			seen := map[string]bool{}
			for _, l := range g.LUNs {
				if !seen[l.Backstore] {
					seen[l.Backstore] = true
					ports[l.Backstore] = append(ports[l.Backstore], scsi.TargetPortID{Name: name, RelativeID: r.rtpis[name]})
				}
			}
		}
	}
	return ports
}

func chap(a *config.Auth) *iscsi.CHAP {
	if a == nil {
		return nil
	}
	return &iscsi.CHAP{User: a.ChapUser, Secret: a.ChapSecret, MutualUser: a.MutualUser, MutualSecret: a.MutualSecret}
}

// openStore opens one configured backstore.
func openStore(b config.Backstore) (backstore.Store, error) {
	switch b.Type {
	case config.TypeFile:
		return backstore.OpenFile(b.Path, b.Size, b.BlockSize, backstore.FileOptions{ReadOnly: b.ReadOnly, PhysicalBlockSize: b.PhysicalBlockSize})
	case config.TypeBlock:
		return backstore.OpenBlock(b.Path, backstore.BlockOptions{ReadOnly: b.ReadOnly, Direct: b.Direct, BlockSize: b.BlockSize})
	case config.TypeMemory:
		return backstore.NewMemory(b.Size, b.BlockSize), nil
	}
	return nil, fmt.Errorf("unknown type %q", b.Type)
}

// tokenConfig turns the YAML tokens section into the copy manager's
// token configuration; dir tells each logical unit's snapshot directory.
func tokenConfig(t config.Tokens, dir func(*scsi.LU) string) rod.TokenConfig {
	tc := rod.TokenConfig{
		SnapshotSpace:  t.SnapshotSpace,
		DefaultTimeout: time.Duration(t.DefaultTimeout) * time.Second,
		MaxTimeout:     time.Duration(t.MaxTimeout) * time.Second,
		MaxTokens:      int(t.MaxTokens),
		WriteBudget:    t.WriteBudget,
		SnapshotDir:    dir,
		DeviceData:     sbc.RODTokenDeviceData,
	}
	switch t.Scope {
	case config.ScopeTarget:
		tc.Scope = rod.ScopeTarget
	case config.ScopeInitiator:
		tc.Scope = rod.ScopeInitiator
	}
	return tc
}

// snapshotDir is where the point-in-time snapshots of a backstore's tokens
// live: beside a file backstore, on its file system, so a snapshot can be
// a clone; tokens.snapshot_dir for block backstores; nowhere (memory) for
// memory backstores or without snapshot_dir.
func snapshotDir(b config.Backstore, t config.Tokens) string {
	switch b.Type {
	case config.TypeFile:
		return filepath.Join(filepath.Dir(b.Path), ".odxtgt-snapshots")
	case config.TypeBlock:
		return t.SnapshotDir
	}
	return ""
}
