package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// lioProducts are the INQUIRY product identifications LIO reports for
// each backstore plugin unless emulate_model_alias is set.
var lioProducts = map[string]string{
	"fileio":  "FILEIO",
	"block":   "IBLOCK",
	"ramdisk": "RAMDISK-MCP",
}

// lioPlugin maps the plugin names of old and new rtslib versions to one.
func lioPlugin(plugin string) string {
	switch plugin {
	case "iblock":
		return "block"
	case "rd_mcp":
		return "ramdisk"
	}
	return plugin
}

// ImportLIO converts a targetcli-fb saveconfig.json (as written by rtslib-fb,
// usually /etc/target/saveconfig.json) into a Config. What odxtgt cannot
// express is reported as warnings, one line each naming the JSON element:
//
//   - fileio storage objects become file backstores (one on a /dev path
//     becomes a block backstore), block (iblock) ones block backstores with
//     direct set (iblock bypasses the page cache), ramdisk (rd_mcp) ones
//     memory backstores; pscsi, user (TCMU) and unknown plugins are skipped.
//   - wwn becomes serial, so the unit serial number and the designators
//     derived from it survive the migration; the product identification is
//     LIO's (FILEIO, IBLOCK, RAMDISK-MCP, or the object's name when
//     emulate_model_alias=1); write_back (or emulate_write_cache) becomes
//     write_cache; block_size must be 512 or 4096.
//   - only targets of the iscsi fabric are imported, and only enabled TPGs
//     with at least one portal. iSER and offload flags are dropped.
//   - generate_node_acls=1 (demo mode) yields no acls; otherwise node_acls
//     become acls whose luns are the mapped LUNs' tpg_lun (odxtgt maps LUN
//     numbers 1:1, so a differing mapped index is a warning). An ACL that
//     would map nothing is skipped, as is a TPG left without ACLs, so that
//     nobody gains access LIO did not give.
//   - with authentication=1 the TPG's CHAP credentials (demo mode) or the
//     node ACLs' (otherwise) are imported; an initiator LIO would refuse for
//     lack of credentials is skipped. With authentication=0 credentials are
//     ignored: odxtgt has no optional CHAP.
//
// Problems that prevent a faithful import (malformed JSON, an invalid iSCSI
// name, a CHAP secret odxtgt refuses, an unsupported block size) are
// returned as Errors naming the JSON element. Rules spanning elements (a
// secret used in both directions, overlapping portals) are then checked by
// Validate; its Errors, naming keys of the YAML Marshal would write, come
// back wrapped as "imported configuration: ...".
func ImportLIO(data []byte) (*Config, []string, error) {
	var sc lioSaveConfig
	if err := json.Unmarshal(data, &sc); err != nil {
		return nil, nil, Errors{jsonError(data, err)}
	}
	im := &importer{stores: map[string]string{}, skipped: map[string]bool{}, names: map[string]bool{}}
	for i := range sc.StorageObjects {
		im.storageObject(i, &sc.StorageObjects[i])
	}
	for i := range sc.Targets {
		im.target(i, &sc.Targets[i])
	}
	for i, fm := range sc.FabricModules {
		if fm.DiscoveryEnableAuth {
			im.warn(fmt.Sprintf("fabric_modules[%d] (%s)", i, fm.Name), "discovery authentication is not imported")
		}
	}
	if len(im.errs) > 0 {
		return nil, im.warnings, im.errs
	}
	if err := im.cfg.Validate(); err != nil {
		// Rules that span elements (secret reuse, overlapping portals);
		// the paths are those of the YAML Marshal would write.
		return nil, im.warnings, fmt.Errorf("imported configuration: %w", err)
	}
	return &im.cfg, im.warnings, nil
}

// jsonError turns an encoding/json error into a FieldError with a line.
func jsonError(data []byte, err error) FieldError {
	lineAt := func(off int64) int {
		off = min(max(off, 0), int64(len(data)))
		return 1 + strings.Count(string(data[:off]), "\n")
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return FieldError{Line: lineAt(syn.Offset), Msg: "invalid JSON: " + syn.Error()}
	case errors.As(err, &typ):
		return FieldError{Line: lineAt(typ.Offset), Path: typ.Field, Msg: fmt.Sprintf("must be %s, got JSON %s", typ.Type, typ.Value)}
	default:
		return FieldError{Msg: "invalid JSON: " + err.Error()}
	}
}

// importer accumulates the converted configuration.
type importer struct {
	cfg      Config
	warnings []string
	errs     Errors
	// stores maps "plugin/name" of each imported storage object to the
	// name of its backstore; skipped holds the keys of skipped ones.
	stores  map[string]string
	skipped map[string]bool
	// names holds the backstore names in use.
	names map[string]bool
}

func (im *importer) warn(where, format string, args ...any) {
	im.warnings = append(im.warnings, where+": "+fmt.Sprintf(format, args...))
}

func (im *importer) fail(path, format string, args ...any) {
	im.errs = append(im.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (im *importer) storageObject(i int, so *lioStorageObject) {
	path := indexPath("storage_objects", i)
	plugin := lioPlugin(so.Plugin)
	key := plugin + "/" + so.Name
	where := fmt.Sprintf("%s (%s/%s)", path, so.Plugin, so.Name)
	b := Backstore{WriteCache: true, ReadOnly: bool(so.ReadOnly)}
	switch plugin {
	case "fileio":
		b.Type = TypeFile
		if strings.HasPrefix(so.Dev, "/dev/") {
			b.Type = TypeBlock
			im.warn(where, "fileio on device %s imported as a block backstore", so.Dev)
		}
	case "block":
		b.Type, b.Direct = TypeBlock, true
	case "ramdisk":
		b.Type = TypeMemory
	default:
		im.warn(where, "plugin %q is not supported; skipped", so.Plugin)
		im.skipped[key] = true
		return
	}
	if _, dup := im.stores[key]; dup {
		im.fail(path, "duplicate storage object %s/%s", so.Plugin, so.Name)
		return
	}
	if so.Name == "" {
		im.fail(path+".name", "missing")
		return
	}
	b.Name = im.backstoreName(where, so.Name)

	if b.Type != TypeMemory {
		if so.Dev == "" {
			im.fail(path+".dev", "missing")
		}
		b.Path = so.Dev
	}
	b.BlockSize = DefaultBlockSize
	if bs, ok, err := so.Attributes.int("block_size"); err != nil {
		im.fail(path+".attributes.block_size", "%v", err)
	} else if ok {
		if bs != 512 && bs != 4096 {
			im.fail(path+".attributes.block_size", "block size %d is not supported (odxtgt serves 512 or 4096)", bs)
		}
		b.BlockSize = int(bs)
	}
	if b.Type != TypeBlock {
		b.Size = im.size(path, where, so.Size, b.BlockSize)
	}

	b.Serial = so.WWN
	if b.Serial == "" {
		b.Serial = DefaultSerial(b.Name)
		im.warn(where, "no wwn; serial %s derived from the name", b.Serial)
	} else if msg := checkASCIIField(b.Serial, maxSerialLen); msg != "" {
		im.fail(path+".wwn", "unit serial %q: %s", b.Serial, msg)
	}
	b.Product = lioProducts[plugin]
	if alias, _, _ := so.Attributes.int("emulate_model_alias"); alias == 1 {
		b.Product = DefaultProduct(so.Name)
		if checkASCIIField(b.Product, maxProductLen) != "" {
			b.Product = DefaultProduct(b.Name)
			im.warn(where, "name is not printable ASCII; product identification set to %q", b.Product)
		}
	}
	if so.WriteBack != nil {
		b.WriteCache = bool(*so.WriteBack)
	} else if wce, ok, _ := so.Attributes.int("emulate_write_cache"); ok {
		b.WriteCache = wce == 1
	}
	if so.Nullio {
		im.warn(where, "nullio ramdisk imported as a memory backstore that keeps its data")
	}
	for _, tpg := range so.ALUATPGs {
		if tpg.Name != "default_tg_pt_gp" {
			im.warn(where, "ALUA target port group %q is not imported", tpg.Name)
		}
	}
	im.stores[key] = b.Name
	im.cfg.Backstores = append(im.cfg.Backstores, b)
}

// backstoreName turns a LIO storage object name (anything but '/' and
// white space) into an unused backstore name.
func (im *importer) backstoreName(where, lioName string) string {
	name := strings.Map(func(r rune) rune {
		if nameChar(r) {
			return r
		}
		return '_'
	}, lioName)
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
	}
	base := name
	for n := 2; im.names[name]; n++ {
		suffix := "-" + strconv.Itoa(n)
		name = base[:min(len(base), maxNameLen-len(suffix))] + suffix
	}
	if name != lioName {
		im.warn(where, "renamed to backstore %q", name)
	}
	im.names[name] = true
	return name
}

// size converts the size of a fileio or ramdisk object; LIO ignores a
// partial last block, so the size is rounded down to whole blocks.
func (im *importer) size(path, where string, size int64, blockSize int) int64 {
	if size <= 0 {
		im.fail(path+".size", "missing or not positive")
		return 0
	}
	if blockSize != 512 && blockSize != 4096 {
		return size // reported with block_size
	}
	whole := size - size%int64(blockSize)
	if whole == 0 {
		im.fail(path+".size", "%d bytes is less than one %d-byte block", size, blockSize)
		return 0
	}
	if whole != size {
		im.warn(where, "size %d rounded down to %d, a multiple of the %d-byte block size", size, whole, blockSize)
	}
	return whole
}

func (im *importer) target(i int, t *lioTarget) {
	path := indexPath("targets", i)
	where := fmt.Sprintf("%s (%s)", path, t.WWN)
	if t.Fabric != "iscsi" {
		im.warn(where, "fabric %q is not supported; skipped", t.Fabric)
		return
	}
	if err := ValidateISCSIName(t.WWN); err != nil {
		im.fail(path+".wwn", "%v", err)
		return
	}
	target := Target{IQN: t.WWN}
	for gi := range t.TPGs {
		g := &t.TPGs[gi]
		gp := indexPath(path+".tpgs", gi)
		tpg, ok := im.tpg(gp, fmt.Sprintf("%s (%s tpg %d)", gp, t.WWN, g.Tag), g)
		if !ok {
			continue
		}
		alias := g.Parameters.str("TargetAlias")
		switch {
		case len(target.TPGs) == 0:
			target.Alias = alias
		case alias != target.Alias:
			im.warn(gp, "TargetAlias %q differs from the first portal group's %q, which is kept", alias, target.Alias)
		}
		target.TPGs = append(target.TPGs, tpg)
	}
	if len(target.TPGs) == 0 {
		im.warn(where, "no usable portal group; skipped")
		return
	}
	im.cfg.Targets = append(im.cfg.Targets, target)
}

// lioFlag reads a 0/1 TPG attribute, def when absent.
func (im *importer) lioFlag(path string, attrs lioAttributes, key string, def bool) bool {
	v, ok, err := attrs.int(key)
	if err != nil {
		im.fail(path+".attributes."+key, "%v", err)
	}
	if !ok {
		return def
	}
	return v != 0
}

// tpg converts one TPG; ok is false when it is skipped.
func (im *importer) tpg(path, where string, g *lioTPG) (TPG, bool) {
	if g.Enable != nil && !*g.Enable {
		im.warn(where, "disabled; skipped")
		return TPG{}, false
	}
	if g.Tag < 1 || g.Tag > 65535 {
		im.fail(path+".tag", "must be between 1 and 65535, not %d", g.Tag)
		return TPG{}, false
	}
	tpg := TPG{Tag: uint16(g.Tag)}

	for i, p := range g.Portals {
		pp := indexPath(path+".portals", i)
		addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(p.IPAddress, "["), "]"))
		if err != nil {
			im.fail(pp+".ip_address", "%q is not an IP address", p.IPAddress)
			continue
		}
		if p.Port < 1 || p.Port > 65535 {
			im.fail(pp+".port", "must be between 1 and 65535, not %d", p.Port)
			continue
		}
		ap := netip.AddrPortFrom(addr, uint16(p.Port))
		if p.ISER {
			im.warn(pp, "iSER is not supported; %s imported as a TCP portal", ap)
		}
		if p.Offload {
			im.warn(pp, "offload is not supported; %s imported as a plain portal", ap)
		}
		tpg.Portals = append(tpg.Portals, ap.String())
	}
	if len(g.Portals) == 0 {
		im.warn(where, "no portals; skipped")
		return TPG{}, false
	}

	luns := map[uint64]bool{}
	for i, l := range g.LUNs {
		lp := indexPath(path+".luns", i)
		ref, ok := strings.CutPrefix(l.StorageObject, "/backstores/")
		plugin, name, ok2 := strings.Cut(ref, "/")
		if !ok || !ok2 || name == "" || strings.Contains(name, "/") {
			im.fail(lp+".storage_object", "malformed reference %q", l.StorageObject)
			continue
		}
		if l.Index < 0 || l.Index > MaxLUN {
			im.fail(lp+".index", "must be between 0 and %d, not %d", MaxLUN, l.Index)
			continue
		}
		key := lioPlugin(plugin) + "/" + name
		bs, found := im.stores[key]
		if !found {
			if im.skipped[key] {
				im.warn(lp, "LUN %d maps skipped storage object %s; skipped", l.Index, l.StorageObject)
			} else {
				im.warn(lp, "LUN %d maps unknown storage object %s; skipped", l.Index, l.StorageObject)
			}
			continue
		}
		luns[uint64(l.Index)] = true
		tpg.LUNs = append(tpg.LUNs, LUN{LUN: uint64(l.Index), Backstore: bs})
	}

	authOn := im.lioFlag(path, g.Attributes, "authentication", false)
	demo := im.lioFlag(path, g.Attributes, "generate_node_acls", false)
	if !authOn {
		if g.lioCHAP != (lioCHAP{}) || slices.ContainsFunc(g.NodeACLs, func(a lioNodeACL) bool { return a.lioCHAP != (lioCHAP{}) }) {
			im.warn(where, "authentication=0: CHAP credentials ignored (odxtgt has no optional CHAP)")
		}
	}
	if demo {
		if authOn {
			if g.UserID == "" && g.Password == "" {
				im.warn(where, "authentication=1 in demo mode without TPG CHAP credentials: LIO refuses every login; skipped")
				return TPG{}, false
			}
			tpg.Auth = im.auth(path, g.lioCHAP)
		}
		if len(g.NodeACLs) > 0 {
			im.warn(where, "generate_node_acls=1: node_acls not imported; any initiator may log in and sees every LUN")
		}
		if im.lioFlag(path, g.Attributes, "demo_mode_write_protect", true) {
			im.warn(where, "demo_mode_write_protect=1: LIO gave initiators read-only access, odxtgt gives read-write (set readonly on the backstores to keep them read-only)")
		}
		return tpg, true
	}
	if authOn && g.lioCHAP != (lioCHAP{}) {
		im.warn(where, "TPG CHAP credentials are unused by LIO with generate_node_acls=0; not imported")
	}
	for i := range g.NodeACLs {
		if acl, ok := im.nodeACL(indexPath(path+".node_acls", i), &g.NodeACLs[i], luns, authOn); ok {
			tpg.ACLs = append(tpg.ACLs, acl)
		}
	}
	if len(tpg.ACLs) == 0 {
		im.warn(where, "generate_node_acls=0 and no usable node ACL: no initiator could log in; skipped")
		return TPG{}, false
	}
	return tpg, true
}

// nodeACL converts one node ACL; ok is false when it is skipped.
func (im *importer) nodeACL(path string, a *lioNodeACL, luns map[uint64]bool, authOn bool) (ACL, bool) {
	where := fmt.Sprintf("%s (%s)", path, a.NodeWWN)
	if err := ValidateISCSIName(a.NodeWWN); err != nil {
		im.fail(path+".node_wwn", "%v", err)
		return ACL{}, false
	}
	acl := ACL{Initiator: a.NodeWWN}
	for i, m := range a.MappedLUNs {
		mp := indexPath(path+".mapped_luns", i)
		if m.TPGLUN < 0 || !luns[uint64(m.TPGLUN)] {
			im.warn(mp, "maps TPG LUN %d, which is not imported; skipped", m.TPGLUN)
			continue
		}
		if m.Index != m.TPGLUN {
			im.warn(mp, "the initiator saw TPG LUN %d as LUN %d; odxtgt maps LUN numbers 1:1, so it becomes LUN %d",
				m.TPGLUN, m.Index, m.TPGLUN)
		}
		if m.WriteProtect {
			im.warn(mp, "write_protect is not supported; LUN %d is writable for this initiator", m.TPGLUN)
		}
		if !slices.Contains(acl.LUNs, uint64(m.TPGLUN)) {
			acl.LUNs = append(acl.LUNs, uint64(m.TPGLUN))
		}
	}
	if len(acl.LUNs) == 0 {
		im.warn(where, "maps no LUN; skipped (an odxtgt ACL without luns would grant every LUN)")
		return ACL{}, false
	}
	slices.Sort(acl.LUNs)
	if authOn {
		if a.UserID == "" && a.Password == "" {
			im.warn(where, "authentication=1 without CHAP credentials: LIO refuses this initiator; skipped")
			return ACL{}, false
		}
		acl.Auth = im.auth(path, a.lioCHAP)
	}
	return acl, true
}

// lioCHAPKeys names the saveconfig keys of the Auth fields.
var lioCHAPKeys = map[string]string{
	"chap_user":     "chap_userid",
	"chap_secret":   "chap_password",
	"mutual_user":   "chap_mutual_userid",
	"mutual_secret": "chap_mutual_password",
}

// auth converts CHAP credentials, reporting with saveconfig paths what the
// validator would refuse.
func (im *importer) auth(path string, c lioCHAP) *Auth {
	a := &Auth{ChapUser: c.UserID, ChapSecret: c.Password, MutualUser: c.MutualUserID, MutualSecret: c.MutualPassword}
	v := &validator{reporter: &reporter{}, initiatorSecrets: map[string]string{}}
	v.checkAuth("", a)
	for _, e := range v.errs {
		field := e.Path[strings.LastIndexByte(e.Path, '.')+1:]
		im.fail(path+"."+lioCHAPKeys[field], "%s", e.Msg)
	}
	return a
}
