package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Validate checks every rule of the configuration format (see the package
// documentation) and returns Errors listing every violation, or nil. Paths
// in the messages name keys as Marshal would write them; lines are those of
// the enclosing backstore or target when it came from Parse, else 0.
// Validate does not touch the file system.
func (c *Config) Validate() error {
	r := &reporter{pos: positions{lines: map[string]position{}, short: map[int]bool{}}}
	for i, b := range c.Backstores {
		if b.Line > 0 {
			r.pos.lines[indexPath("backstores", i)] = position{line: b.Line}
		}
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		r.pos.short[i] = isShortForm(t)
		if t.Line > 0 {
			r.pos.lines[indexPath("targets", i)] = position{line: t.Line}
		}
	}
	validate(c, r)
	return r.result()
}

// isShortForm tells whether a target can be written without "tpgs".
func isShortForm(t *Target) bool {
	return len(t.TPGs) == 1 && t.TPGs[0].Tag == DefaultTPGTag
}

// validator applies the semantic rules to a decoded Config.
type validator struct {
	*reporter
	cfg *Config
	// backstores holds every backstore name, valid or not, so that LUN
	// references to a misspelled-but-present name are not reported twice.
	backstores map[string]bool
	// initiatorSecrets maps each chap_secret to the first path using it;
	// targetSecrets lists the mutual_secrets in order.
	initiatorSecrets map[string]string
	targetSecrets    []secretRef
}

// secretRef is a CHAP secret and where it is configured.
type secretRef struct {
	secret, path string
}

func validate(c *Config, r *reporter) {
	v := &validator{
		reporter:         r,
		cfg:              c,
		backstores:       map[string]bool{},
		initiatorSecrets: map[string]string{},
	}
	v.checkBackstores()
	v.checkTargets()
	v.checkSecretReuse()
	v.checkMetrics()
}

func (v *validator) checkBackstores() {
	names := map[string]string{}
	files := map[string]string{}
	serials := map[string]string{}
	ids := designatorOwners{naa: map[[16]byte]int{}, t10: map[string]int{}}
	for i := range v.cfg.Backstores {
		b := &v.cfg.Backstores[i]
		p := indexPath("backstores", i)
		v.backstores[b.Name] = true
		if msg := checkBackstoreName(b.Name); msg != "" {
			v.add(p+".name", "%s", msg)
		} else if first, dup := names[b.Name]; dup {
			v.add(p+".name", "duplicate backstore name %q (already used by %s)", b.Name, first)
		} else {
			names[b.Name] = p
		}
		switch b.Type {
		case TypeFile, TypeBlock:
			v.checkStorePath(p+".path", b.Path, files)
		case TypeMemory:
			if b.Path != "" {
				v.add(p+".path", "not allowed for type memory")
			}
		case "":
			v.add(p+".type", "required (file, block or memory)")
		default:
			v.add(p+".type", "unknown type %q (use file, block or memory)", b.Type)
		}
		blockSizeOK := b.BlockSize == 512 || b.BlockSize == 4096
		if !blockSizeOK {
			v.add(p+".block_size", "must be 512 or 4096, not %d", b.BlockSize)
		}
		switch {
		case b.Size < 0:
			v.add(p+".size", "must be greater than 0")
		case b.Type == TypeBlock && b.Size != 0:
			v.add(p+".size", "not allowed for type block (the device has its own size)")
		case b.Type == TypeMemory && b.Size == 0:
			v.add(p+".size", "required for type memory")
		case b.Size > 0 && blockSizeOK && b.Size%int64(b.BlockSize) != 0:
			v.add(p+".size", "%d bytes is not a multiple of block_size %d", b.Size, b.BlockSize)
		}
		serialOK := false
		if msg := checkASCIIField(b.Serial, maxSerialLen); msg != "" {
			v.add(p+".serial", "%s", msg)
		} else if key := strings.ToLower(b.Serial); serials[key] != "" {
			// The serial seeds the NAA designator: two logical units
			// with one designator look like two paths to one LU.
			v.add(p+".serial", "serial %q already used by %s (each backstore needs its own)", b.Serial, serials[key])
		} else {
			serials[key] = p
			serialOK = true
		}
		productOK := true
		if msg := checkASCIIField(b.Product, maxProductLen); msg != "" {
			v.add(p+".product", "%s", msg)
			productOK = false
		}
		if serialOK {
			v.checkDesignators(i, productOK, ids)
		}
		if pbs := b.PhysicalBlockSize; pbs != 0 {
			switch {
			case b.Type != TypeFile:
				v.add(p+".physical_block_size", "only valid for type file (a block device reports its own)")
			case blockSizeOK && (pbs < b.BlockSize || pbs%b.BlockSize != 0 || pbs&(pbs-1) != 0 || pbs > MaxPhysicalBlockSize):
				v.add(p+".physical_block_size", "must be a power of two from block_size %d to %d, not %d", b.BlockSize, MaxPhysicalBlockSize, pbs)
			}
		}
		if b.Direct && b.Type != TypeBlock {
			v.add(p+".direct", "only valid for type block")
		}
	}
}

// designatorOwners maps the logical unit designators derived so far to the
// index of the backstore they belong to.
type designatorOwners struct {
	naa map[[16]byte]int
	t10 map[string]int // by t10VendorPart
}

// checkDesignators refuses backstore i when the NAA or T10 vendor ID
// designator derived from its serial (and product) is one an earlier
// backstore already has: initiators identify a logical unit by these
// designators (SPC-4, Device Identification VPD page), so two units sharing
// one look like two paths to a single unit, and multipath software would
// mix their data. Distinct serials do not suffice, since the NAA designator
// keeps only the first 25 hex digits of the serial. productOK tells
// whether the product identification is valid; if not, only the NAA
// designator is checked.
func (v *validator) checkDesignators(i int, productOK bool, ids designatorOwners) {
	b := &v.cfg.Backstores[i]
	path := indexPath("backstores", i) + ".serial"
	reported := false
	naa := naaDesignator(b.Serial)
	if j, dup := ids.naa[naa]; dup {
		o := &v.cfg.Backstores[j]
		v.add(path, "NAA designator %s of backstore %q (%s) is also that of backstore %q at %s (%s): "+
			"it keeps only the first 25 hex digits of the serial, so initiators would take the two for one logical unit",
			naaString(naa), b.Name, describeSerial(b), o.Name, indexPath("backstores", j), describeSerial(o))
		reported = true
	} else {
		ids.naa[naa] = i
	}
	if !productOK {
		return
	}
	t10 := t10VendorPart(b.Product, b.Serial)
	if j, dup := ids.t10[t10]; dup {
		if !reported {
			o := &v.cfg.Backstores[j]
			v.add(path, "T10 vendor ID designator of backstore %q (product %q, %s) is also that of backstore %q at %s "+
				"(product %q, %s): both end in %q (product, ':', serial, cut to %d bytes), so initiators would take the two for one logical unit",
				b.Name, b.Product, describeSerial(b), o.Name, indexPath("backstores", j), o.Product, describeSerial(o),
				t10, t10VendorPartMax)
		}
	} else {
		ids.t10[t10] = i
	}
}

// describeSerial names the serial of b for a message, saying when it is the
// default derived from the name.
func describeSerial(b *Backstore) string {
	if b.Serial == DefaultSerial(b.Name) {
		return fmt.Sprintf("default serial %q, derived from the name", b.Serial)
	}
	return fmt.Sprintf("serial %q", b.Serial)
}

// checkStorePath checks the path of a file or block backstore; seen maps
// cleaned paths to the backstore using them, since two backstores on one
// file would corrupt each other.
func (v *validator) checkStorePath(path, file string, seen map[string]string) {
	switch {
	case file == "":
		v.add(path, "required for types file and block")
	case strings.ContainsRune(file, 0):
		v.add(path, "must not contain NUL")
	case !filepath.IsAbs(file):
		v.add(path, "must be an absolute path, not %q", file)
	default:
		clean := filepath.Clean(file)
		if first, dup := seen[clean]; dup {
			v.add(path, "%q is already used by %s", file, parentPath(first))
			return
		}
		seen[clean] = path
	}
}

func (v *validator) checkTargets() {
	if len(v.cfg.Targets) == 0 {
		v.add("targets", "at least one target is required")
	}
	iqns := map[string]string{}
	for ti := range v.cfg.Targets {
		t := &v.cfg.Targets[ti]
		p := indexPath("targets", ti)
		if t.IQN == "" {
			v.add(p+".iqn", "required")
		} else if err := ValidateISCSIName(t.IQN); err != nil {
			v.add(p+".iqn", "%v", err)
		} else if first, dup := iqns[t.IQN]; dup {
			v.add(p+".iqn", "duplicate target %q (already defined by %s)", t.IQN, first)
		} else {
			iqns[t.IQN] = p
		}
		if t.Alias != "" {
			if msg := checkTextValue(t.Alias); msg != "" {
				v.add(p+".alias", "%s", msg)
			}
		}
		if len(t.TPGs) == 0 {
			v.add(p+".tpgs", "at least one portal group is required")
		}
		tags := map[uint16]string{}
		var portals []portalRef
		for gi := range t.TPGs {
			g := &t.TPGs[gi]
			gp := p
			if !v.pos.short[ti] {
				gp = indexPath(p+".tpgs", gi)
				if g.Tag == 0 {
					v.add(gp+".tag", "required (1..65535)")
				} else if first, dup := tags[g.Tag]; dup {
					v.add(gp+".tag", "duplicate tag %d (already used by %s)", g.Tag, first)
				} else {
					tags[g.Tag] = gp
				}
			}
			portals = v.checkPortals(gp, g, portals)
			luns := v.checkLUNs(gp, g)
			v.checkAuth(gp+".auth", g.Auth)
			v.checkACLs(gp, g, luns)
		}
	}
}

// portalRef is a portal already seen in a target.
type portalRef struct {
	addr netip.AddrPort
	path string // the portal's own path
	tpg  string // its portal group's path
}

// overlaps tells whether a connection to one portal could also be a
// connection to the other: same port and same address, or an unspecified
// address (which, for [::], may also accept IPv4 connections).
func (p portalRef) overlaps(q netip.AddrPort) bool {
	if p.addr.Port() != q.Port() {
		return false
	}
	a, b := p.addr.Addr(), q.Addr()
	return a == b || a.IsUnspecified() && (a.Is6() || b.Is4()) || b.IsUnspecified() && (b.Is6() || a.Is4())
}

// checkPortals checks the portals of one TPG against each other and against
// the other TPGs of the target: a network portal belongs to exactly one
// portal group of a target (RFC 7143 §2.2, "Portal Groups"), else a
// connection could not tell which group it reached.
func (v *validator) checkPortals(gp string, g *TPG, seen []portalRef) []portalRef {
	if len(g.Portals) == 0 {
		v.add(gp+".portals", "at least one portal is required")
	}
	for i, s := range g.Portals {
		pp := indexPath(gp+".portals", i)
		ap, err := ParsePortal(s)
		if err != nil {
			v.add(pp, "%v", err)
			continue
		}
		if canon := ap.String(); canon != s {
			v.add(pp, "portal %q is not in canonical form %q", s, canon)
			continue
		}
		for _, q := range seen {
			if q.addr == ap {
				v.add(pp, "duplicate portal %s (already listed at %s)", s, q.path)
				break
			}
			if q.tpg != gp && q.overlaps(ap) {
				v.add(pp, "portal %s overlaps %s of another portal group (%s); a portal belongs to one portal group of a target",
					s, q.addr, q.tpg)
				break
			}
		}
		seen = append(seen, portalRef{addr: ap, path: pp, tpg: gp})
	}
	return seen
}

// checkLUNs checks the LUN map of a TPG and returns its LUN numbers.
func (v *validator) checkLUNs(gp string, g *TPG) map[uint64]bool {
	luns := map[uint64]string{}
	for i, l := range g.LUNs {
		lp := indexPath(gp+".luns", i)
		first, dup := luns[l.LUN]
		switch {
		case v.pos.isQuiet(lp + ".lun"):
			// Undecodable: its zero LUN number must not clash with a real LUN 0.
		case l.LUN > MaxLUN:
			v.add(lp+".lun", "must be between 0 and %d", MaxLUN)
		case dup:
			v.add(lp+".lun", "duplicate LUN %d (already at %s)", l.LUN, first)
		default:
			luns[l.LUN] = lp
		}
		switch {
		case l.Backstore == "":
			v.add(lp+".backstore", "required")
		case !v.backstores[l.Backstore]:
			v.add(lp+".backstore", "unknown backstore %q", l.Backstore)
		}
	}
	set := make(map[uint64]bool, len(luns))
	for l := range luns {
		set[l] = true
	}
	return set
}

func (v *validator) checkACLs(gp string, g *TPG, luns map[uint64]bool) {
	initiators := map[string]string{}
	for i := range g.ACLs {
		a := &g.ACLs[i]
		ap := indexPath(gp+".acls", i)
		if a.Initiator == "" {
			v.add(ap+".initiator", "required")
		} else if err := ValidateISCSIName(a.Initiator); err != nil {
			v.add(ap+".initiator", "%v", err)
		} else if first, dup := initiators[a.Initiator]; dup {
			v.add(ap+".initiator", "duplicate initiator %q (already at %s)", a.Initiator, first)
		} else {
			initiators[a.Initiator] = ap
		}
		if a.LUNs != nil && len(a.LUNs) == 0 {
			v.add(ap+".luns", "must not be empty (omit luns to grant every LUN)")
		}
		seen := map[uint64]bool{}
		for j, l := range a.LUNs {
			lp := indexPath(ap+".luns", j)
			switch {
			case v.pos.isQuiet(lp):
				continue
			case seen[l]:
				v.add(lp, "duplicate LUN %d", l)
			case !luns[l]:
				v.add(lp, "LUN %d is not in the luns of this portal group", l)
			}
			seen[l] = true
		}
		v.checkAuth(ap+".auth", a.Auth)
	}
}

// checkAuth checks one set of CHAP credentials (RFC 7143 §12.1.3).
func (v *validator) checkAuth(path string, a *Auth) {
	if a == nil {
		return
	}
	v.checkChapName(path+".chap_user", a.ChapUser)
	if v.checkSecret(path+".chap_secret", a.ChapSecret) {
		if _, ok := v.initiatorSecrets[a.ChapSecret]; !ok {
			v.initiatorSecrets[a.ChapSecret] = path + ".chap_secret"
		}
	}
	if a.MutualUser == "" && a.MutualSecret == "" {
		return
	}
	v.checkChapName(path+".mutual_user", a.MutualUser)
	if !v.checkSecret(path+".mutual_secret", a.MutualSecret) {
		return
	}
	if a.MutualSecret == a.ChapSecret {
		v.add(path+".mutual_secret", "must differ from chap_secret (RFC 7143 §9.2.1)")
		return
	}
	v.targetSecrets = append(v.targetSecrets, secretRef{a.MutualSecret, path + ".mutual_secret"})
}

func (v *validator) checkChapName(path, name string) {
	if name == "" {
		v.add(path, "required")
	} else if msg := checkTextValue(name); msg != "" {
		v.add(path, "%s", msg)
	}
}

// checkSecret reports a CHAP secret of the wrong length and tells whether
// the secret is acceptable.
func (v *validator) checkSecret(path, secret string) bool {
	switch n := len(secret); {
	case n == 0:
		v.add(path, "required")
	case n < minSecretLen:
		v.add(path, "must be at least %d bytes, got %d (RFC 7143 §9.2.1: shorter secrets are only safe over IPsec)",
			minSecretLen, n)
	case n > maxSecretLen:
		v.add(path, "must be at most %d bytes, got %d", maxSecretLen, n)
	default:
		return true
	}
	return false
}

// checkSecretReuse enforces RFC 7143 §9.2.1: a secret that authenticates
// initiators must not also authenticate a target, and vice versa. (A
// mutual_secret equal to its own chap_secret was already reported.)
func (v *validator) checkSecretReuse() {
	for _, t := range v.targetSecrets {
		if ip, reused := v.initiatorSecrets[t.secret]; reused {
			v.add(t.path, "same secret as %s; a secret must not authenticate both initiators and targets (RFC 7143 §9.2.1)", ip)
		}
	}
}

// checkMetrics checks the metrics endpoint's address: canonical, and not
// one a portal listens on.
func (v *validator) checkMetrics() {
	l := v.cfg.Metrics.Listen
	if l == "" {
		return
	}
	ap, err := ParseListen(l)
	if err != nil {
		v.add("metrics.listen", "%v", err)
		return
	}
	if canon := ap.String(); canon != l {
		v.add("metrics.listen", "listen address %q is not in canonical form %q", l, canon)
		return
	}
	if ap.Port() == 0 {
		return // any free port: it cannot clash
	}
	for ti := range v.cfg.Targets {
		for _, g := range v.cfg.Targets[ti].TPGs {
			for _, p := range g.Portals {
				if q, err := ParsePortal(p); err == nil && (portalRef{addr: q}).overlaps(ap) {
					v.add("metrics.listen", "%s is also portal %s of %s", l, p, v.cfg.Targets[ti].IQN)
					return
				}
			}
		}
	}
}
