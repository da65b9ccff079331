package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parse reads a YAML configuration (see the package documentation), fills
// in defaults and validates it. On failure the error is Errors, listing
// every problem with its line and key path. Parse does not touch the file
// system: whether files and devices exist is for the caller to check.
func Parse(data []byte) (*Config, error) {
	r := &reporter{pos: positions{lines: map[string]position{}, short: map[int]bool{}, quiet: map[string]bool{}}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{Msg: "configuration is empty"}}
		}
		return nil, Errors{syntaxError(err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Errors{{Line: extra.Line, Msg: "only one YAML document is allowed"}}
	case !errors.Is(err, io.EOF):
		return nil, Errors{syntaxError(err)}
	}
	d := &decoder{reporter: r}
	cfg := d.config(doc.Content[0])
	if cfg == nil {
		return nil, r.result()
	}
	validate(cfg, r)
	if err := r.result(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Load reads and parses the configuration file at path. Errors from Parse
// come back as Errors with File set to path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data)
	var errs Errors
	if errors.As(err, &errs) {
		for i := range errs {
			errs[i].File = path
		}
		return nil, errs
	}
	return cfg, err
}

// yamlLine matches the position prefix of the YAML parser's messages.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a YAML parser error into a FieldError.
func syntaxError(err error) FieldError {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return FieldError{Line: line, Msg: "YAML syntax: " + m[2]}
	}
	return FieldError{Msg: "YAML syntax: " + err.Error()}
}

// decoder turns the YAML node tree into a Config. It reports malformed
// YAML: wrong node kinds and types, unknown and duplicate keys, and values
// that do not parse. Everything else is left to the validator.
type decoder struct {
	*reporter
}

// fail reports a problem with the value n at path and silences the
// validator for path and everything under it.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.report(at(n), path, fmt.Sprintf(format, args...))
	d.pos.quiet[path] = true
}

// at returns the position of a node.
func at(n *yaml.Node) position {
	return position{line: n.Line, column: n.Column}
}

// describe names the kind of a node for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch tag := n.ShortTag(); tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	default:
		return "a value tagged " + tag
	}
}

// want checks that n is a node of the given kind (and, for scalars, tag).
func (d *decoder) want(n *yaml.Node, path string, kind yaml.Kind, tag, name string) bool {
	if n.Kind == yaml.AliasNode {
		d.fail(n, path, "YAML aliases are not supported")
		return false
	}
	if n.Kind == kind && (tag == "" || n.ShortTag() == tag) {
		return true
	}
	hint := ""
	if tag == "!!str" && n.Kind == yaml.ScalarNode {
		hint = " (quote the value)"
	}
	d.fail(n, path, "must be %s, got %s%s", name, describe(n), hint)
	return false
}

// fields is a decoded mapping: the value node of each known key present.
type fields struct {
	d    *decoder
	path string
	m    map[string]*yaml.Node
}

// mapping reads mapping n, reporting keys that are not in known and keys
// given twice. A nil m means n was not a mapping.
func (d *decoder) mapping(n *yaml.Node, path string, known ...string) fields {
	f := fields{d: d, path: path}
	if !d.want(n, path, yaml.MappingNode, "", "a mapping") {
		return f
	}
	f.m = map[string]*yaml.Node{}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.report(at(k), path, "keys must be plain strings, got "+describe(k))
			continue
		}
		kp := childPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.report(at(k), kp, fmt.Sprintf("duplicate key (first given at line %d)", first))
			continue
		}
		seen[k.Value] = k.Line
		if !slices.Contains(known, k.Value) {
			d.report(at(k), kp, "unknown key"+suggest(k.Value, known))
			continue
		}
		f.m[k.Value] = v
		d.pos.lines[kp] = at(v)
	}
	return f
}

// str decodes a string field into dst, if the key is present.
func (f fields) str(key string, dst *string) bool {
	n := f.m[key]
	if n == nil {
		return false
	}
	if f.d.want(n, childPath(f.path, key), yaml.ScalarNode, "!!str", "a string") {
		*dst = n.Value
	}
	return true
}

// boolean decodes a boolean field into dst, if the key is present.
func (f fields) boolean(key string, dst *bool) {
	n := f.m[key]
	if n == nil {
		return
	}
	path := childPath(f.path, key)
	if f.d.want(n, path, yaml.ScalarNode, "!!bool", "true or false") {
		if err := n.Decode(dst); err != nil {
			f.d.fail(n, path, "must be true or false")
		}
	}
}

// integer decodes an integer node.
func (d *decoder) integer(n *yaml.Node, path string) (int64, bool) {
	if !d.want(n, path, yaml.ScalarNode, "!!int", "an integer") {
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		d.fail(n, path, "integer out of range")
		return 0, false
	}
	return v, true
}

// list decodes a sequence field, if the key is present.
func (f fields) list(key string) (items []*yaml.Node, present bool) {
	n := f.m[key]
	if n == nil {
		return nil, false
	}
	path := childPath(f.path, key)
	if !f.d.want(n, path, yaml.SequenceNode, "", "a list") {
		return nil, true
	}
	for i, item := range n.Content {
		f.d.pos.lines[indexPath(path, i)] = at(item)
	}
	return n.Content, true
}

// suggest proposes the known key closest to an unknown one.
func suggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return fmt.Sprintf(" (expected one of: %s)", strings.Join(known, ", "))
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (d *decoder) config(root *yaml.Node) *Config {
	f := d.mapping(root, "", "backstores", "targets", "copy", "tokens", "limits", "reservations", "metrics")
	if f.m == nil {
		return nil
	}
	cfg := &Config{}
	d.pos.lines[""] = at(root)
	if items, _ := f.list("backstores"); items != nil {
		cfg.Backstores = make([]Backstore, len(items))
		for i, n := range items {
			cfg.Backstores[i] = d.backstore(n, indexPath("backstores", i))
		}
	}
	if items, _ := f.list("targets"); items != nil {
		cfg.Targets = make([]Target, len(items))
		for i, n := range items {
			cfg.Targets[i] = d.target(n, i)
		}
	}
	if n := f.m["tokens"]; n != nil {
		cfg.Tokens = d.tokens(n)
	}
	if n := f.m["limits"]; n != nil {
		cfg.Limits = d.limits(n)
	}
	if n := f.m["reservations"]; n != nil {
		d.pos.lines["reservations"] = at(n)
		if r := d.mapping(n, "reservations", "state_dir"); r.m != nil {
			if r.str("state_dir", &cfg.Reservations.StateDir) && !filepath.IsAbs(cfg.Reservations.StateDir) &&
				!d.pos.quiet["reservations.state_dir"] {
				d.fail(r.m["state_dir"], "reservations.state_dir", "must be an absolute path")
			}
		}
	}
	if n := f.m["metrics"]; n != nil {
		cfg.Metrics = d.metrics(n)
	}
	if n := f.m["copy"]; n != nil {
		d.pos.lines["copy"] = at(n)
		if c := d.mapping(n, "copy", "cross_target"); c.m != nil {
			c.boolean("cross_target", &cfg.Copy.CrossTarget)
		}
	}
	return cfg
}

func (d *decoder) backstore(n *yaml.Node, path string) Backstore {
	d.pos.lines[path] = at(n)
	b := Backstore{Line: n.Line, BlockSize: DefaultBlockSize, WriteCache: true}
	f := d.mapping(n, path, "name", "type", "path", "size", "block_size",
		"physical_block_size", "serial", "product", "readonly", "write_cache", "direct")
	if f.m == nil {
		return b
	}
	f.str("name", &b.Name)
	f.str("type", &b.Type)
	f.str("path", &b.Path)
	if v := f.m["size"]; v != nil {
		b.Size = d.size(v, path+".size")
	}
	if v := f.m["block_size"]; v != nil {
		if bs, ok := d.integer(v, path+".block_size"); ok {
			if bs != 512 && bs != 4096 {
				d.fail(v, path+".block_size", "must be 512 or 4096, not %d", bs)
			}
			b.BlockSize = int(bs)
		}
	}
	if v := f.m["physical_block_size"]; v != nil {
		if pbs, ok := d.integer(v, path+".physical_block_size"); ok {
			if pbs <= 0 || pbs > MaxPhysicalBlockSize {
				d.fail(v, path+".physical_block_size", "must be from 512 to %d, not %d", MaxPhysicalBlockSize, pbs)
			} else {
				b.PhysicalBlockSize = int(pbs)
			}
		}
	}
	// The defaults derive from the name; when the name is unusable, they
	// would only produce follow-on errors.
	nameOK := checkBackstoreName(b.Name) == ""
	if !f.str("serial", &b.Serial) {
		if nameOK {
			b.Serial = DefaultSerial(b.Name)
		} else {
			d.pos.quiet[path+".serial"] = true
		}
	}
	if !f.str("product", &b.Product) {
		if nameOK {
			b.Product = DefaultProduct(b.Name)
		} else {
			d.pos.quiet[path+".product"] = true
		}
	}
	f.boolean("readonly", &b.ReadOnly)
	f.boolean("write_cache", &b.WriteCache)
	f.boolean("direct", &b.Direct)
	return b
}

// size decodes a size: an integer byte count or a ParseSize string.
func (d *decoder) size(n *yaml.Node, path string) int64 {
	var size int64
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
		v, ok := d.integer(n, path)
		if !ok {
			return 0
		}
		size = v
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		v, err := ParseSize(n.Value)
		if err != nil {
			d.fail(n, path, "%v", err)
			return 0
		}
		size = v
	default:
		d.want(n, path, yaml.ScalarNode, "!!int", `a byte count or a size such as "10GiB"`)
		return 0
	}
	if size <= 0 {
		d.fail(n, path, "must be greater than 0")
		return 0
	}
	return size
}

func (d *decoder) target(n *yaml.Node, i int) Target {
	path := indexPath("targets", i)
	d.pos.lines[path] = at(n)
	t := Target{Line: n.Line}
	f := d.mapping(n, path, "iqn", "alias", "portals", "luns", "auth", "acls", "tpgs")
	if f.m == nil {
		return t
	}
	f.str("iqn", &t.IQN)
	if f.str("alias", &t.Alias) && t.Alias == "" && !d.pos.quiet[path+".alias"] {
		d.fail(f.m["alias"], path+".alias", "must not be empty (omit alias for none)")
	}
	items, long := f.list("tpgs")
	if !long {
		d.pos.short[i] = true
		t.TPGs = []TPG{d.tpgBody(f, DefaultTPGTag)}
		return t
	}
	for _, key := range []string{"portals", "luns", "auth", "acls"} {
		if v := f.m[key]; v != nil {
			d.fail(v, childPath(path, key), "cannot be combined with tpgs (give %s inside each tpg)", key)
		}
	}
	t.TPGs = make([]TPG, len(items))
	for j, item := range items {
		t.TPGs[j] = d.tpg(item, indexPath(path+".tpgs", j))
	}
	return t
}

// tpg decodes one element of a target's tpgs list.
func (d *decoder) tpg(n *yaml.Node, path string) TPG {
	d.pos.lines[path] = at(n)
	f := d.mapping(n, path, "tag", "portals", "luns", "auth", "acls")
	if f.m == nil {
		return TPG{}
	}
	var tag uint16
	if v := f.m["tag"]; v != nil {
		if t, ok := d.integer(v, path+".tag"); ok {
			if t < 1 || t > math.MaxUint16 {
				d.fail(v, path+".tag", "must be between 1 and 65535")
			} else {
				tag = uint16(t)
			}
		}
	}
	return d.tpgBody(f, tag)
}

// tpgBody decodes the keys a TPG shares with a short-form target.
func (d *decoder) tpgBody(f fields, tag uint16) TPG {
	g := TPG{Tag: tag}
	items, _ := f.list("portals")
	for i, n := range items {
		path := indexPath(f.path+".portals", i)
		var s string
		if d.want(n, path, yaml.ScalarNode, "!!str", "a string") {
			if ap, err := ParsePortal(n.Value); err != nil {
				d.fail(n, path, "%v", err)
			} else {
				s = ap.String()
			}
		}
		g.Portals = append(g.Portals, s)
	}
	items, _ = f.list("luns")
	for i, n := range items {
		g.LUNs = append(g.LUNs, d.lun(n, indexPath(f.path+".luns", i)))
	}
	if v := f.m["auth"]; v != nil {
		g.Auth = d.auth(v, f.path+".auth")
	}
	if items, present := f.list("acls"); present {
		if len(items) == 0 && f.m["acls"].Kind == yaml.SequenceNode {
			d.fail(f.m["acls"], f.path+".acls", "must not be empty (omit acls to let any initiator log in)")
		}
		for i, n := range items {
			g.ACLs = append(g.ACLs, d.acl(n, indexPath(f.path+".acls", i)))
		}
	}
	return g
}

func (d *decoder) lun(n *yaml.Node, path string) LUN {
	d.pos.lines[path] = at(n)
	var l LUN
	f := d.mapping(n, path, "lun", "backstore")
	if f.m == nil {
		return l
	}
	if v := f.m["lun"]; v != nil {
		l.LUN, _ = d.lunNumber(v, path+".lun")
	} else {
		d.fail(n, path+".lun", "required")
	}
	f.str("backstore", &l.Backstore)
	return l
}

// lunNumber decodes a LUN number, 0..MaxLUN.
func (d *decoder) lunNumber(n *yaml.Node, path string) (uint64, bool) {
	v, ok := d.integer(n, path)
	if !ok {
		return 0, false
	}
	if v < 0 || v > MaxLUN {
		d.fail(n, path, "must be between 0 and %d", MaxLUN)
		return 0, false
	}
	return uint64(v), true
}

func (d *decoder) acl(n *yaml.Node, path string) ACL {
	d.pos.lines[path] = at(n)
	var a ACL
	f := d.mapping(n, path, "initiator", "luns", "auth")
	if f.m == nil {
		return a
	}
	f.str("initiator", &a.Initiator)
	if items, present := f.list("luns"); present {
		a.LUNs = []uint64{}
		if len(items) == 0 && f.m["luns"].Kind == yaml.SequenceNode {
			d.fail(f.m["luns"], path+".luns", "must not be empty (omit luns to grant every LUN)")
		}
		for i, item := range items {
			// A LUN that does not decode stays as a (silenced) 0 so
			// that the indexes in later messages match the source.
			l, _ := d.lunNumber(item, indexPath(path+".luns", i))
			a.LUNs = append(a.LUNs, l)
		}
	}
	if v := f.m["auth"]; v != nil {
		a.Auth = d.auth(v, path+".auth")
	}
	return a
}

func (d *decoder) auth(n *yaml.Node, path string) *Auth {
	f := d.mapping(n, path, "chap_user", "chap_secret", "mutual_user", "mutual_secret")
	if f.m == nil {
		return nil
	}
	a := &Auth{}
	f.str("chap_user", &a.ChapUser)
	f.str("chap_secret", &a.ChapSecret)
	f.str("mutual_user", &a.MutualUser)
	f.str("mutual_secret", &a.MutualSecret)
	return a
}

func (d *decoder) tokens(n *yaml.Node) Tokens {
	d.pos.lines["tokens"] = at(n)
	t := Tokens{Scope: ScopeAny}
	f := d.mapping(n, "tokens", "scope", "snapshot_dir", "snapshot_space", "default_timeout", "max_timeout", "write_budget", "max_tokens", "key_file")
	if f.m == nil {
		return t
	}
	if f.str("scope", &t.Scope) {
		switch t.Scope {
		case ScopeAny, ScopeTarget, ScopeInitiator:
		default:
			d.fail(f.m["scope"], "tokens.scope", "must be any, target or initiator, not %q", t.Scope)
		}
	}
	if f.str("snapshot_dir", &t.SnapshotDir) && !filepath.IsAbs(t.SnapshotDir) {
		d.fail(f.m["snapshot_dir"], "tokens.snapshot_dir", "must be an absolute path")
	}
	if f.str("key_file", &t.KeyFile) && !filepath.IsAbs(t.KeyFile) {
		d.fail(f.m["key_file"], "tokens.key_file", "must be an absolute path")
	}
	if v := f.m["snapshot_space"]; v != nil {
		t.SnapshotSpace = d.size(v, "tokens.snapshot_space")
	}
	for key, dst := range map[string]*int64{"default_timeout": &t.DefaultTimeout, "max_timeout": &t.MaxTimeout} {
		if v := f.m[key]; v != nil {
			if secs, ok := d.integer(v, "tokens."+key); ok {
				if secs < 1 || secs > 86400 {
					d.fail(v, "tokens."+key, "must be 1 to 86400 seconds, not %d", secs)
				}
				*dst = secs
			}
		}
	}
	if t.DefaultTimeout != 0 && t.MaxTimeout != 0 && t.DefaultTimeout > t.MaxTimeout {
		d.fail(f.m["default_timeout"], "tokens.default_timeout", "%d s exceeds max_timeout %d s", t.DefaultTimeout, t.MaxTimeout)
	}
	if v := f.m["write_budget"]; v != nil {
		if b, ok := d.seconds(v, "tokens.write_budget"); ok {
			if b <= 0 || b > MaxWriteBudget {
				d.fail(v, "tokens.write_budget", "must be more than 0 and at most %v seconds (Windows aborts a command after 4 s), not %s", MaxWriteBudget.Seconds(), v.Value)
			}
			t.WriteBudget = b
		}
	}
	if v := f.m["max_tokens"]; v != nil {
		if x, ok := d.integer(v, "tokens.max_tokens"); ok {
			if x < 1 || x > MaxLiveTokens {
				d.fail(v, "tokens.max_tokens", "must be 1 to %d, not %d", MaxLiveTokens, x)
			}
			t.MaxTokens = x
		}
	}
	return t
}

// seconds decodes a number of seconds, whole (2) or not (0.5), into a
// duration rounded to the nanosecond.
func (d *decoder) seconds(n *yaml.Node, path string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		d.want(n, path, yaml.ScalarNode, "!!float", "a number of seconds such as 2 or 0.5")
		return 0, false
	}
	var secs float64
	if err := n.Decode(&secs); err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > 1e9 {
		d.fail(n, path, "must be a number of seconds such as 2 or 0.5, not %s", n.Value)
		return 0, false
	}
	return time.Duration(math.Round(secs * 1e9)), true
}

// minBudget is the smallest data-out budget worth having: one command of
// the largest transfer odxtgt takes (8 MiB).
const minBudget = 8 << 20

func (d *decoder) limits(n *yaml.Node) Limits {
	d.pos.lines["limits"] = at(n)
	var l Limits
	counts := []struct {
		key string
		dst *int64
		max int64
	}{
		{"max_connections", &l.MaxConnections, 1 << 20},
		{"max_connections_per_ip", &l.MaxConnectionsPerIP, 1 << 20},
		{"login_timeout", &l.LoginTimeout, 3600},
		{"nop_interval", &l.NOPInterval, 3600},
		{"nop_timeout", &l.NOPTimeout, 3600},
		{"send_timeout", &l.SendTimeout, 3600},
		{"data_out_timeout", &l.DataOutTimeout, 3600},
	}
	sizes := []struct {
		key string
		dst *int64
		min int64
	}{
		{"send_queue", &l.SendQueue, 64 << 10},
		{"data_in", &l.DataIn, minBudget},
		{"data_out_budget", &l.DataOutBudget, minBudget},
		{"session_data_out_budget", &l.SessionDataOutBudget, minBudget},
		{"initiator_data_out_budget", &l.InitiatorDataOutBudget, minBudget},
	}
	keys := []string{}
	for _, c := range counts {
		keys = append(keys, c.key)
	}
	for _, c := range sizes {
		keys = append(keys, c.key)
	}
	f := d.mapping(n, "limits", keys...)
	if f.m == nil {
		return l
	}
	for _, c := range counts {
		if v := f.m[c.key]; v != nil {
			if x, ok := d.integer(v, "limits."+c.key); ok {
				if x < 1 || x > c.max {
					d.fail(v, "limits."+c.key, "must be 1 to %d, not %d", c.max, x)
				}
				*c.dst = x
			}
		}
	}
	for _, c := range sizes {
		if v := f.m[c.key]; v != nil {
			if x := d.size(v, "limits."+c.key); x != 0 && x < c.min {
				d.fail(v, "limits."+c.key, "must be at least %s, not %s", FormatSize(c.min), FormatSize(x))
			} else {
				*c.dst = x
			}
		}
	}
	return l
}

func (d *decoder) metrics(n *yaml.Node) Metrics {
	d.pos.lines["metrics"] = at(n)
	var m Metrics
	f := d.mapping(n, "metrics", "listen")
	if f.m == nil {
		return m
	}
	if f.str("listen", &m.Listen) && !d.pos.quiet["metrics.listen"] {
		if ap, err := ParseListen(m.Listen); err != nil {
			d.fail(f.m["listen"], "metrics.listen", "%v", err)
		} else {
			m.Listen = ap.String()
		}
	}
	return m
}
