package config

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"time"
)

// Backstore types.
const (
	TypeFile   = "file"   // a regular file, created sparse when missing
	TypeBlock  = "block"  // a raw block device
	TypeMemory = "memory" // RAM, lost when odxtgt exits
)

// Defaults and limits of the configuration.
const (
	// DefaultPort is the IANA-registered iSCSI TCP port, used when a
	// portal gives no port.
	DefaultPort = 3260
	// DefaultBlockSize is the logical block size when block_size is absent.
	DefaultBlockSize = 512
	// MaxPhysicalBlockSize is the largest physical_block_size.
	MaxPhysicalBlockSize = 64 << 10
	// MaxLUN is the highest LUN odxtgt accepts: the 14-bit range of the
	// peripheral device / flat space LUN addressing methods of SAM-5.
	MaxLUN = 16383
	// DefaultTPGTag is the tag of the single TPG of a target given in the
	// short form.
	DefaultTPGTag = 1
	// DemoIQN is the target name of the embedded demo configuration.
	DemoIQN = "iqn.2025-01.io.odxtgt:demo"
)

// Config is a complete, validated odxtgt LUN map.
type Config struct {
	Backstores   []Backstore
	Targets      []Target
	Copy         Copy
	Tokens       Tokens
	Limits       Limits
	Reservations Reservations
	Metrics      Metrics
}

// DefaultMetricsPort is the port of metrics.listen when it gives none
// (9469, unassigned in the Prometheus default port allocations list).
const DefaultMetricsPort = 9469

// Metrics configures the HTTP endpoint that serves Prometheus metrics
// (/metrics) and a health check (/healthz).
type Metrics struct {
	// Listen is the canonical "ip:port" the endpoint listens on, as
	// produced by ParseListen(...).String(); empty (the default) serves
	// no endpoint.
	Listen string
}

// Limits bound what initiators can make the target hold (YAML limits).
// Zero means the transport's default for each.
type Limits struct {
	MaxConnections, MaxConnectionsPerIP int64
	// Timeouts, in seconds.
	LoginTimeout, NOPInterval, NOPTimeout, SendTimeout, DataOutTimeout int64
	// Sizes, in bytes.
	SendQueue, DataIn, DataOutBudget, SessionDataOutBudget, InitiatorDataOutBudget int64
}

// Reservations configures where persistent reservations are kept while
// an initiator asks for them to persist (APTPL, SPC-4 5.12.4).
type Reservations struct {
	// StateDir, when set, holds the state file of every file and block
	// backstore, <StateDir>/<name>.pr.json. Empty: a file backstore's
	// lives beside it, in .odxtgt-pr/<name>.json; block backstores then
	// have none and cannot persist reservations. Memory backstores never
	// persist them, as they do not keep their data.
	StateDir string
}

// ReservationFile returns the persistent reservation state file of
// backstore b, or "" when its reservations cannot persist.
func (c *Config) ReservationFile(b *Backstore) string {
	switch {
	case b.Type == TypeMemory:
		return ""
	case c.Reservations.StateDir != "":
		return filepath.Join(c.Reservations.StateDir, b.Name+".pr.json")
	case b.Type == TypeFile:
		return filepath.Join(filepath.Dir(b.Path), ".odxtgt-pr", b.Name+".json")
	}
	return ""
}

// Token scopes (tokens.scope).
const (
	ScopeAny       = "any"
	ScopeTarget    = "target"
	ScopeInitiator = "initiator"
)

// Tokens configures ROD tokens (POPULATE TOKEN, WRITE USING TOKEN).
type Tokens struct {
	// Scope is who may use a token: ScopeAny (default), ScopeTarget or
	// ScopeInitiator.
	Scope string
	// SnapshotDir holds the point-in-time snapshot files of block
	// backstores; empty keeps their preserved data in memory. File
	// backstores keep theirs beside the file, where clones work.
	SnapshotDir string
	// SnapshotSpace bounds the bytes all snapshots preserve (0: the
	// default, 1 GiB).
	SnapshotSpace int64
	// DefaultTimeout and MaxTimeout are inactivity timeouts in seconds
	// (0: the defaults, 60 and 600).
	DefaultTimeout, MaxTimeout int64
	// WriteBudget bounds the time one WRITE USING TOKEN works before it
	// stops and reports the blocks written (0: the default, 2 s); at most
	// MaxWriteBudget.
	WriteBudget time.Duration
	// MaxTokens bounds the ROD tokens alive at once (0: the default,
	// 1024); at most MaxLiveTokens.
	MaxTokens int64
	// KeyFile holds the secret (at least MinTokenKeyLength bytes, readable
	// by its owner only) that authenticates tokens; with it, tokens that
	// need no copy-on-write survive a restart. Empty: a random secret per
	// process.
	KeyFile string
}

// MinTokenKeyLength is the least number of bytes tokens.key_file holds.
const MinTokenKeyLength = 32

// Bounds of the tokens section.
const (
	// MaxWriteBudget keeps a WRITE USING TOKEN well inside the 4 s
	// Windows gives each command before it aborts it and resets the LU.
	MaxWriteBudget = 3500 * time.Millisecond
	// MaxLiveTokens caps tokens.max_tokens: a live token of a file
	// backstore may hold an open snapshot file, and of the 65536 open
	// files contrib/odxtgt.service allows, connections and backstores
	// need theirs too.
	MaxLiveTokens = 16384
)

// Copy configures the copy manager (EXTENDED COPY, ROD tokens).
type Copy struct {
	// CrossTarget lets a copy reach logical units of every target of the
	// process, not only those the requesting I_T nexus has mapped. Off by
	// default: with it, an initiator that knows a designator can read or
	// write any backstore served here (the lesson of CVE-2020-28374).
	CrossTarget bool
}

// Backstore is one storage object that targets map as LUNs.
type Backstore struct {
	// Name identifies the backstore in LUN maps; [A-Za-z0-9_.-]+.
	Name string
	// Type is TypeFile, TypeBlock or TypeMemory.
	Type string
	// Path is the file or device; empty for TypeMemory.
	Path string
	// Size in bytes. For TypeFile 0 means "use the size of the existing
	// file"; for TypeBlock it is always 0 (the device decides).
	Size int64
	// BlockSize is the logical block size: 512 or 4096.
	BlockSize int
	// PhysicalBlockSize is the physical block size a TypeFile store
	// reports (READ CAPACITY (16), Block Limits VPD page): 0 for
	// BlockSize, or a power of two from BlockSize to
	// MaxPhysicalBlockSize.
	PhysicalBlockSize int
	// Serial is the unit serial number (VPD page 80h), also the seed of the
	// NAA designator; printable ASCII.
	Serial string
	// Product is the INQUIRY PRODUCT IDENTIFICATION, at most 16 printable
	// ASCII characters.
	Product string
	// ReadOnly makes the logical unit write protected.
	ReadOnly bool
	// WriteCache is the WCE bit of the caching mode page.
	WriteCache bool
	// Direct opens a TypeBlock device with O_DIRECT.
	Direct bool
	// Line is where the backstore starts in the YAML source (0 if none).
	Line int
}

// Target is one iSCSI target node.
type Target struct {
	// IQN is the iSCSI name of the target (iqn., eui. or naa. form).
	IQN string
	// Alias is the optional TargetAlias (RFC 7143 §13.6).
	Alias string
	// TPGs are the target portal groups; a target written in the short
	// form has exactly one, with tag DefaultTPGTag.
	TPGs []TPG
	// Line is where the target starts in the YAML source (0 if none).
	Line int
}

// TPG is a target portal group: the portals that reach a target together
// with the LUNs, authentication and access list served through them.
type TPG struct {
	// Tag is the Target Portal Group Tag, 1..65535.
	Tag uint16
	// Portals are canonical "ip:port" strings ("[ipv6]:port" for IPv6),
	// as produced by ParsePortal(...).String().
	Portals []string
	// LUNs maps LUN numbers to backstores.
	LUNs []LUN
	// Auth, when set, requires CHAP from every initiator that has no ACL
	// auth of its own.
	Auth *Auth
	// ACLs, when non-empty, list the only initiators allowed to log in.
	// Empty means any initiator may log in and sees every LUN.
	ACLs []ACL
}

// LUN maps one logical unit number to a backstore.
type LUN struct {
	LUN       uint64
	Backstore string
}

// ACL lets one initiator log in.
type ACL struct {
	// Initiator is the initiator's iSCSI name.
	Initiator string
	// LUNs are the TPG LUNs this initiator sees (with the same numbers);
	// nil means all of them.
	LUNs []uint64
	// Auth, when set, replaces the TPG's Auth for this initiator.
	Auth *Auth
}

// Auth holds CHAP credentials (RFC 7143 §12.1.3). ChapUser/ChapSecret
// authenticate the initiator; MutualUser/MutualSecret, when set, are what
// the target answers with when the initiator asks for mutual CHAP.
type Auth struct {
	ChapUser     string
	ChapSecret   string
	MutualUser   string
	MutualSecret string
}

// DefaultSerial returns the unit serial number used when a backstore has
// none: the first 16 bytes of SHA-256("odxtgt:" + name), with the version
// and variant bits set as for an RFC 9562 version 8 UUID, written as
// lowercase hex in the 8-4-4-4-12 layout (the shape LIO gives its own unit
// serials). The same name always yields the same serial, so designators
// survive restarts.
func DefaultSerial(name string) string {
	sum := sha256.Sum256([]byte("odxtgt:" + name))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x80 // version 8 (RFC 9562 §5.8)
	u[8] = u[8]&0x3f | 0x80 // variant 10b (RFC 9562 §4.1)
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// DefaultProduct returns the INQUIRY product identification used when a
// backstore has none: its name cut to 16 characters.
func DefaultProduct(name string) string {
	if len(name) > maxProductLen {
		return name[:maxProductLen]
	}
	return name
}

// Default returns the embedded demo configuration: target DemoIQN on
// 127.0.0.1:3260 with LUN 0 backed by the 1 GiB sparse file
// <dataDir>/demo.img (backstore "demo"), open to any initiator. dataDir
// must be an absolute path.
func Default(dataDir string) *Config {
	const name = "demo"
	return &Config{
		Backstores: []Backstore{{
			Name:       name,
			Type:       TypeFile,
			Path:       filepath.Join(dataDir, "demo.img"),
			Size:       1 << 30,
			BlockSize:  DefaultBlockSize,
			Serial:     DefaultSerial(name),
			Product:    DefaultProduct(name),
			WriteCache: true,
		}},
		Targets: []Target{{
			IQN: DemoIQN,
			TPGs: []TPG{{
				Tag:     DefaultTPGTag,
				Portals: []string{"127.0.0.1:3260"},
				LUNs:    []LUN{{LUN: 0, Backstore: name}},
			}},
		}},
	}
}
