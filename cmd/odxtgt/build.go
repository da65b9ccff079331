package main

import (
	"errors"
	"fmt"
	"log/slog"

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
}

// close flushes and closes every backstore, returning the first error.
func (r *runtime) close() error {
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
	var all []*scsi.LU // every logical unit, once built
	copyCfg := rod.Config{Logger: log}
	if cfg.Copy.CrossTarget {
		copyCfg.CrossTarget = func() []*scsi.LU { return all }
	}
	copies := rod.NewManager(copyCfg)
	table, err := scsi.NewTable(spc.Commands(spc.Options{Copy: copies}), sbc.Commands())
	if err != nil {
		return nil, fmt.Errorf("command table: %w", err)
	}
	r := &runtime{lus: map[string]*scsi.LU{}}
	for _, b := range cfg.Backstores {
		store, err := openStore(b)
		if err != nil {
			_ = r.close()
			return nil, fmt.Errorf("backstore %s: %w", b.Name, err)
		}
		r.stores = append(r.stores, store)
		r.lus[b.Name] = scsi.NewLU(scsi.LUConfig{
			Identity: scsi.Identity{
				Name:     b.Name,
				Vendor:   spc.DefaultVendor,
				Product:  b.Product,
				Revision: spc.DefaultRevision,
				Serial:   b.Serial,
			},
			Store:      store,
			ReadOnly:   b.ReadOnly,
			WriteCache: b.WriteCache,
			Table:      table,
			Logger:     log,
			Events:     copies,
		})
		all = append(all, r.lus[b.Name])
		log.Info("backstore ready", "name", b.Name, "type", b.Type, "path", b.Path,
			"size", store.Size(), "block_size", store.BlockSize(), "serial", b.Serial)
	}
	r.server = iscsi.Config{Absent: scsi.NewAbsentLU(table, log), Logger: log}
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
		return backstore.OpenFile(b.Path, b.Size, b.BlockSize, backstore.FileOptions{ReadOnly: b.ReadOnly})
	case config.TypeBlock:
		return backstore.OpenBlock(b.Path, backstore.BlockOptions{ReadOnly: b.ReadOnly, Direct: b.Direct, BlockSize: b.BlockSize})
	case config.TypeMemory:
		return backstore.NewMemory(b.Size, b.BlockSize), nil
	}
	return nil, fmt.Errorf("unknown type %q", b.Type)
}
