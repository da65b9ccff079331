package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
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
// logical units and the iSCSI server configuration.
type runtime struct {
	stores []backstore.Store
	lus    map[string]*scsi.LU
	server iscsi.Config
	copies *rod.Manager
}

// close stops the copies still running, drops the ROD tokens, then
// flushes and closes every backstore, returning the first error.
func (r *runtime) close() error {
	if r.copies != nil {
		r.copies.Close()
	}
	var errs []error
	for _, s := range r.stores {
		if err := s.Sync(); err != nil {
			errs = append(errs, err)
		}
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// build opens the backstores of cfg and wires logical units, targets and
// portal groups. On error everything already opened is closed.
func build(cfg *config.Config, log *slog.Logger) (*runtime, error) {
	var all []*scsi.LU                    // every logical unit, once built
	snapshotDirs := map[*scsi.LU]string{} // where each LU's token snapshots go
	copyCfg := rod.Config{Logger: log, Tokens: tokenConfig(cfg.Tokens, snapshotDirs)}
	if cfg.Copy.CrossTarget {
		copyCfg.CrossTarget = func() []*scsi.LU { return all }
	}
	copies := rod.NewManager(copyCfg)
	table, err := scsi.NewTable(spc.Commands(spc.Options{Copy: copies}), sbc.Commands(sbc.Options{Copy: copies}))
	if err != nil {
		return nil, fmt.Errorf("command table: %w", err)
	}
	r := &runtime{lus: map[string]*scsi.LU{}, copies: copies}
	ports := targetPorts(cfg)
	for i := range cfg.Backstores {
		b := cfg.Backstores[i]
		store, err := openStore(b)
		if err != nil {
			_ = r.close()
			return nil, fmt.Errorf("backstore %s: %w", b.Name, err)
		}
		r.stores = append(r.stores, store)
		dir := snapshotDir(b, cfg.Tokens)
		if dir != "" {
			if n, err := rod.StaleSnapshots(dir); err != nil {
				log.Warn("cannot remove old snapshot files", "dir", dir, "err", err)
			} else if n > 0 {
				log.Info("removed snapshot files of a previous run", "dir", dir, "files", n)
			}
		}
		r.lus[b.Name] = scsi.NewLU(scsi.LUConfig{
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
			Table:           table,
			Logger:          log,
			Events:          copies,
			Ports:           ports[b.Name],
			ReservationFile: cfg.ReservationFile(&cfg.Backstores[i]),
		})
		if err := r.lus[b.Name].RestoreReservations(); err != nil {
			_ = r.close()
			return nil, fmt.Errorf("backstore %s: %w", b.Name, err)
		}
		all = append(all, r.lus[b.Name])
		snapshotDirs[r.lus[b.Name]] = dir
		log.Info("backstore ready", "name", b.Name, "type", b.Type, "path", b.Path,
			"size", store.Size(), "block_size", store.BlockSize(), "serial", b.Serial)
	}
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
	// Relative target port identifiers are unique across the whole
	// target device, one per portal group, starting at 1 (SPC-4 7.8.6.6).
	var rtpi uint16
	for _, t := range cfg.Targets {
		target := &iscsi.Target{Name: t.IQN, Alias: t.Alias}
		for _, g := range t.TPGs {
			rtpi++
			tpg := &iscsi.TPG{
				Tag:            g.Tag,
				RelativePortID: rtpi,
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
		r.server.Targets = append(r.server.Targets, target)
	}
	return r, nil
}

// targetPorts returns, for each backstore, the target ports that map it:
// one per portal group, with the relative target port identifiers the
// loop in build assigns.
func targetPorts(cfg *config.Config) map[string][]scsi.TargetPortID {
	ports := map[string][]scsi.TargetPortID{}
	var rtpi uint16
	for _, t := range cfg.Targets {
		for _, g := range t.TPGs {
			rtpi++
			seen := map[string]bool{}
			for _, l := range g.LUNs {
				if !seen[l.Backstore] {
					seen[l.Backstore] = true
					ports[l.Backstore] = append(ports[l.Backstore], scsi.TargetPortID{Name: scsi.TargetPortName(t.IQN, g.Tag), RelativeID: rtpi})
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
// token configuration; dirs maps each logical unit to its snapshot
// directory once built.
func tokenConfig(t config.Tokens, dirs map[*scsi.LU]string) rod.TokenConfig {
	tc := rod.TokenConfig{
		SnapshotSpace:  t.SnapshotSpace,
		DefaultTimeout: time.Duration(t.DefaultTimeout) * time.Second,
		MaxTimeout:     time.Duration(t.MaxTimeout) * time.Second,
		SnapshotDir:    func(lu *scsi.LU) string { return dirs[lu] },
	}
	if tc.SnapshotSpace == 0 {
		tc.SnapshotSpace = defaultSnapshotSpace
	}
	switch t.Scope {
	case config.ScopeTarget:
		tc.Scope = rod.ScopeTarget
	case config.ScopeInitiator:
		tc.Scope = rod.ScopeInitiator
	}
	return tc
}

// defaultSnapshotSpace bounds what token snapshots preserve when the YAML
// says nothing: block backstores may keep it in memory.
const defaultSnapshotSpace = 1 << 30

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
