package main

import (
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"

	"github.com/odxtgt/odxtgt/config"
	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/scsi"
)

// reloadConfig re-reads the configuration on SIGHUP and applies it, or
// logs why it is refused and keeps the running state.
func reloadConfig(o *serveOptions, log *slog.Logger, rt *runtime, srv *iscsi.Server) error {
	notifySystemd(log, reloadingState())
	defer notifySystemd(log, "READY=1")
	log.Info("reload: reading the configuration", "config", o.configPath)
	cfg, err := loadConfig(o, log)
	if err == nil {
		err = rt.reload(o.configPath, cfg, srv)
	}
	if err != nil {
		log.Warn("reload refused, the running configuration is kept", "err", err)
		return err
	}
	log.Info("reload: done")
	return nil
}

// reload applies a new configuration, read from file, to the running
// target, or refuses it and changes nothing. Refused: a configuration that does not validate;
// a change to a backstore that stays (its path, size, block size, serial
// or any other key: the open store and the identity hosts have recorded
// cannot change under them, so a storage admin removes the backstore in
// one reload and adds it back in the next, or restarts); a new backstore
// on the path of one still open (a rename: the old one holds the file's
// lock until it is closed); a change to the
// copy, tokens, limits or reservations sections, which are fixed at
// start; a new backstore that cannot be opened; a new portal that cannot
// be bound.
//
// Applied: new backstores are opened; targets, portal groups, portals,
// LUNs and ACL entries are replaced as iscsi.Server.Reconfigure
// describes (sessions still allowed go on; the others are closed);
// backstores no longer configured are closed once the commands already
// running on them have ended. One INFO line is logged per change.
func (r *runtime) reload(file string, cfg *config.Config, srv *iscsi.Server) error {
	if err := r.unchangeable(file, cfg); err != nil {
		return err
	}
	old := r.cfg
	var added []config.Backstore
	kept := map[string]bool{}
	for _, b := range cfg.Backstores {
		if r.lus[b.Name] != nil {
			kept[b.Name] = true
		} else {
			added = append(added, b)
		}
	}
	rtpis, next := maps.Clone(r.rtpis), r.nextRTPI
	r.assignPorts(cfg)
	ports := r.targetPorts(cfg)
	undo := func(n int) {
		r.mu.Lock()
		clear(r.fresh)
		r.mu.Unlock()
		for _, b := range added[:n] {
			r.drop(b.Name)
			_ = r.stores[b.Name].Close()
			delete(r.stores, b.Name)
		}
		r.rtpis, r.nextRTPI = rtpis, next
	}
	for i := range added {
		if err := r.open(cfg, &added[i], ports); err != nil {
			undo(i)
			return err
		}
	}
	if err := srv.Reconfigure(r.targets(cfg)); err != nil {
		undo(len(added))
		return err
	}
	r.cfg = cfg
	r.restoreTokens()
	for _, b := range added {
		r.log.Info("reload: backstore added", "name", b.Name)
	}
	logTargetChanges(r, old, cfg)
	for _, b := range old.Backstores {
		if !kept[b.Name] {
			r.retire(b.Name)
		}
	}
	return nil
}

// unchangeable reports, with the file and line of each, the changes
// reload cannot apply.
func (r *runtime) unchangeable(file string, cfg *config.Config) error {
	var errs config.Errors
	for i, b := range cfg.Backstores {
		j := slices.IndexFunc(r.cfg.Backstores, func(o config.Backstore) bool { return o.Name == b.Name })
		if j < 0 {
			continue
		}
		o := r.cfg.Backstores[j]
		for _, f := range changedFields(o, b) {
			errs = append(errs, config.FieldError{File: file, Line: b.Line, Path: fmt.Sprintf("backstores[%d].%s", i, f.name),
				Msg: fmt.Sprintf("backstore %s: cannot change while it is served (%v → %v); remove the backstore in one reload and add it back in another, or restart",
					b.Name, f.was, f.now)})
		}
	}
	for i, b := range cfg.Backstores {
		for _, o := range r.cfg.Backstores {
			if o.Name != b.Name && b.Path != "" && o.Path == b.Path {
				errs = append(errs, config.FieldError{File: file, Line: b.Line, Path: fmt.Sprintf("backstores[%d].path", i),
					Msg: fmt.Sprintf("backstore %s: %s is still open as backstore %s; remove %s in one reload and add %s in the next",
						b.Name, b.Path, o.Name, o.Name, b.Name)})
			}
		}
	}
	sections := []struct {
		name     string
		was, now any
	}{
		{"copy", r.cfg.Copy, cfg.Copy}, {"tokens", r.cfg.Tokens, cfg.Tokens},
		{"limits", r.cfg.Limits, cfg.Limits}, {"reservations", r.cfg.Reservations, cfg.Reservations},
		{"metrics", r.cfg.Metrics, cfg.Metrics},
	}
	for _, s := range sections {
		if !reflect.DeepEqual(s.was, s.now) {
			errs = append(errs, config.FieldError{File: file, Path: s.name, Msg: "cannot change while the target runs; restart to apply"})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// fieldChange is one key of a backstore whose value changed.
type fieldChange struct {
	name     string
	was, now any
}

// changedFields compares two definitions of one backstore, key by key.
func changedFields(o, b config.Backstore) []fieldChange {
	all := []fieldChange{
		{"type", o.Type, b.Type}, {"path", o.Path, b.Path}, {"size", o.Size, b.Size},
		{"block_size", o.BlockSize, b.BlockSize}, {"physical_block_size", o.PhysicalBlockSize, b.PhysicalBlockSize},
		{"serial", o.Serial, b.Serial}, {"product", o.Product, b.Product}, {"readonly", o.ReadOnly, b.ReadOnly},
		{"write_cache", o.WriteCache, b.WriteCache}, {"direct", o.Direct, b.Direct},
	}
	var out []fieldChange
	for _, c := range all {
		if c.was != c.now {
			out = append(out, c)
		}
	}
	return out
}

// drop forgets a backstore's logical unit in the copy manager's view.
func (r *runtime) drop(name string) {
	lu := r.lus[name]
	delete(r.lus, name)
	r.mu.Lock()
	r.all = slices.DeleteFunc(r.all, func(x *scsi.LU) bool { return x == lu })
	delete(r.snapshotDirs, lu)
	r.mu.Unlock()
}

// retire closes a backstore no LUN maps any more, once the commands that
// were running on it have ended; its ROD tokens end with it.
func (r *runtime) retire(name string) {
	lu, store := r.lus[name], r.stores[name]
	r.drop(name)
	delete(r.stores, name)
	r.retiring.Add(1)
	go func() {
		defer r.retiring.Done()
		lu.Retire()
		r.copies.Retired(lu)
		err := store.Sync()
		if cerr := store.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			r.log.Warn("reload: backstore removed, closing it failed", "name", name, "err", err)
			return
		}
		r.log.Info("reload: backstore removed and closed", "name", name)
	}()
}

// logTargetChanges logs one INFO line per target, portal group, LUN, ACL
// entry and authentication change between two configurations.
func logTargetChanges(r *runtime, old, cfg *config.Config) {
	type tpgKey struct {
		iqn string
		tag uint16
	}
	tpgs := func(c *config.Config) map[tpgKey]*config.TPG {
		m := map[tpgKey]*config.TPG{}
		for i := range c.Targets {
			for j := range c.Targets[i].TPGs {
				m[tpgKey{c.Targets[i].IQN, c.Targets[i].TPGs[j].Tag}] = &c.Targets[i].TPGs[j]
			}
		}
		return m
	}
	iqns := func(c *config.Config) map[string]bool {
		m := map[string]bool{}
		for _, t := range c.Targets {
			m[t.IQN] = true
		}
		return m
	}
	was, now := iqns(old), iqns(cfg)
	for _, t := range cfg.Targets {
		if !was[t.IQN] {
			r.log.Info("reload: target added", "target", t.IQN)
		}
	}
	for _, t := range old.Targets {
		if !now[t.IQN] {
			r.log.Info("reload: target removed", "target", t.IQN)
		}
	}
	og, ng := tpgs(old), tpgs(cfg)
	for k, g := range ng {
		o := og[k]
		if o == nil {
			if was[k.iqn] {
				r.log.Info("reload: portal group added", "target", k.iqn, "tpgt", k.tag)
			}
			continue
		}
		logTPGChanges(r, k.iqn, k.tag, o, g)
	}
	for k := range og {
		if ng[k] == nil && now[k.iqn] {
			r.log.Info("reload: portal group removed", "target", k.iqn, "tpgt", k.tag)
		}
	}
}

// logTPGChanges logs the LUN, ACL and authentication changes of one
// portal group.
func logTPGChanges(r *runtime, iqn string, tag uint16, o, g *config.TPG) {
	at := []any{"target", iqn, "tpgt", tag}
	luns := func(g *config.TPG) map[uint64]string {
		m := map[uint64]string{}
		for _, l := range g.LUNs {
			m[l.LUN] = l.Backstore
		}
		return m
	}
	ol, nl := luns(o), luns(g)
	for _, lun := range slices.Sorted(maps.Keys(nl)) {
		switch was, ok := ol[lun]; {
		case !ok:
			r.log.Info("reload: LUN added", append(at, "lun", lun, "backstore", nl[lun])...)
		case was != nl[lun]:
			r.log.Info("reload: LUN now maps another backstore", append(at, "lun", lun, "was", was, "backstore", nl[lun])...)
		}
	}
	for _, lun := range slices.Sorted(maps.Keys(ol)) {
		if _, ok := nl[lun]; !ok {
			r.log.Info("reload: LUN removed", append(at, "lun", lun, "backstore", ol[lun])...)
		}
	}
	acls := func(g *config.TPG) map[string]config.ACL {
		m := map[string]config.ACL{}
		for _, a := range g.ACLs {
			m[a.Initiator] = a
		}
		return m
	}
	oa, na := acls(o), acls(g)
	if len(oa) > 0 && len(na) == 0 {
		r.log.Info("reload: ACL removed, any initiator may log in", at...)
	}
	for _, name := range slices.Sorted(maps.Keys(na)) {
		a := na[name]
		switch p, ok := oa[name]; {
		case !ok:
			r.log.Info("reload: ACL entry added", append(at, "initiator", name)...)
		case !reflect.DeepEqual(p.LUNs, a.LUNs):
			r.log.Info("reload: ACL entry LUNs changed", append(at, "initiator", name, "luns", fmt.Sprint(a.LUNs))...)
		case !reflect.DeepEqual(p.Auth, a.Auth):
			r.log.Info("reload: ACL entry authentication changed, applies to new logins", append(at, "initiator", name)...)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(oa)) {
		if _, ok := na[name]; !ok {
			r.log.Info("reload: ACL entry removed", append(at, "initiator", name)...)
		}
	}
	if !reflect.DeepEqual(o.Auth, g.Auth) {
		r.log.Info("reload: portal group authentication changed, applies to new logins", at...)
	}
	if !slices.Equal(o.Portals, g.Portals) {
		r.log.Info("reload: portal group portals changed", append(at, "portals", fmt.Sprint(g.Portals))...)
	}
}
