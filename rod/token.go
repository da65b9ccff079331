package rod

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/odxtgt/odxtgt/internal/durable"
	"github.com/odxtgt/odxtgt/scsi"
)

// ROD types (SPC-4 table 119) this copy manager knows.
const (
	RODTypeAccessUponReference uint32 = 0x00010000
	RODTypePointInTime         uint32 = 0x00800000 // point in time, default
	RODTypePointInTimeChange   uint32 = 0x00800001 // point in time, change vulnerable
	RODTypePointInTimeAny      uint32 = 0x0080FFFF // any point in time type: the default is used
	RODTypeBlockZero           uint32 = 0xFFFF0001 // block device zero ROD token
)

// TokenLength is the length of a ROD token, and tokenBodyLength its ROD
// TOKEN LENGTH field: what follows the first eight bytes (SPC-4 8.3.6).
const (
	TokenLength     = 512
	tokenBodyLength = TokenLength - 8
)

// Offsets in the generic ROD token (SPC-4 5.17.6.5.1, table 112): the
// header, the body (identifier, creator logical unit, bytes represented,
// 32 reserved bytes), then the extension: the device type specific data,
// the target device descriptor (a 128-byte field) and the extended ROD
// token data, vendor specific: here a random nonce and the HMAC-SHA-256
// of everything before it under the copy manager's key.
const (
	tokOffID         = 8
	tokOffCreator    = 16
	tokOffBytes      = 48
	tokOffDeviceData = 96
	tokOffTargetDev  = 128
	tokOffNonce      = 256
	tokOffMAC        = TokenLength - sha256.Size
	tokCreatorLen    = 32
)

// ASCQs of INVALID TOKEN OPERATION (ASC 23h, SPC-4 table 28).
const (
	ascTokenUnsupportedType scsi.ASC = 0x2301
	ascTokenRemoteUsage     scsi.ASC = 0x2302
	ascTokenUnknown         scsi.ASC = 0x2304
	ascTokenCorrupt         scsi.ASC = 0x2305
	ascTokenRevoked         scsi.ASC = 0x2306
	ascTokenExpired         scsi.ASC = 0x2307
	ascTokenCancelled       scsi.ASC = 0x2308
	ascTokenDeleted         scsi.ASC = 0x2309
	ascTokenInvalidLength   scsi.ASC = 0x230A
)

// tokenState is what became of a token.
type tokenState uint8

const (
	tokenLive tokenState = iota
	tokenRevoked
	tokenExpired
	tokenCancelled
	tokenDeleted
)

// code is the sense code WRITE USING TOKEN returns for a token in state s.
func (s tokenState) code() scsi.ASC {
	switch s {
	case tokenRevoked:
		return ascTokenRevoked
	case tokenExpired:
		return ascTokenExpired
	case tokenCancelled:
		return ascTokenCancelled
	case tokenDeleted:
		return ascTokenDeleted
	}
	return ascTokenUnknown
}

// Scope narrows who may use a token (YAML tokens.scope).
type Scope uint8

// Token scopes.
const (
	// ScopeAny: any I_T nexus of this process that may write the
	// destination, as Windows and SMB need (a token travels between
	// hosts).
	ScopeAny Scope = iota
	// ScopeTarget: nexuses of the target the token was made through.
	ScopeTarget
	// ScopeInitiator: the initiator (by iSCSI name) that made it.
	ScopeInitiator
)

// blockRange is a range of logical blocks.
type blockRange struct{ lba, blocks uint64 }

// Token is a live ROD token: the 512 bytes a host holds, and what they
// stand for.
type Token struct {
	id        uint64
	raw       [TokenLength]byte
	rodType   uint32
	lu        *scsi.LU
	ranges    []blockRange // source ranges, in the order of the data
	bytes     int64        // bytes represented
	snap      *snapshot    // point-in-time data; nil for access upon reference
	creator   string       // key of the I_T nexus that made it, for REPORT ALL ROD TOKENS
	target    string       // its target and initiator names, for Scope
	initiator string
	timeout   time.Duration
	// frozen marks the command-long stand-in freezeOverlap makes for an
	// access upon reference token copied onto its own source.
	frozen bool

	// Guarded by tokens.mu.
	record   string // its record file, if it outlives the process (persist.go)
	state    tokenState
	lastUsed time.Time
	users    int // WRITE USING TOKEN commands reading it
}

// Raw returns the token as the host sees it.
func (t *Token) Raw() [TokenLength]byte { return t.raw }

// tokens is the token table of a copy manager.
type tokens struct {
	key []byte
	// deviceData is the device type specific data of a logical unit's
	// tokens (TokenConfig.DeviceData).
	deviceData func(*scsi.LU) []byte
	space      *space
	next       uint64

	mu       sync.Mutex
	live     map[uint64]*Token
	pending  int                   // tokens being made, counted against the limit
	gone     map[uint64]tokenState // tombstones, so a host learns why
	goneFIFO []uint64
	reaping  bool
}

// maxTombstones bounds the tombstones kept; past it the oldest token
// becomes merely unknown.
const maxTombstones = 4096

// newTokens returns a token table whose tokens are authenticated under
// key, or a random key of the process's own when key is empty.
func newTokens(limit int64, key []byte) *tokens {
	t := &tokens{space: &space{limit: limit}, live: map[uint64]*Token{}, gone: map[uint64]tokenState{}}
	t.key = key
	if len(key) == 0 {
		t.key = make([]byte, 32)
		if _, err := rand.Read(t.key); err != nil {
			panic(err) // crypto/rand never fails on Linux
		}
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	t.next = binary.BigEndian.Uint64(seed[:]) >> 1
	return t
}

// mac is the authenticator of a token's first tokOffMAC bytes.
func (t *tokens) mac(raw *[TokenLength]byte) [sha256.Size]byte {
	h := hmac.New(sha256.New, t.key)
	h.Write(raw[:tokOffMAC])
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// seal fills in tok's raw bytes: the header, the creator logical unit as
// an identification CSCD descriptor, the bytes represented, the block
// device data READ CAPACITY (16) reports, a nonce and the authenticator.
func (t *tokens) seal(tok *Token) {
	r := &tok.raw
	binary.BigEndian.PutUint32(r[0:], tok.rodType)
	binary.BigEndian.PutUint16(r[6:], tokenBodyLength)
	binary.BigEndian.PutUint64(r[tokOffID:], tok.id)
	creator := r[tokOffCreator : tokOffCreator+tokCreatorLen]
	creator[0] = CSCDIdentification
	for _, d := range tok.lu.Designators(nil) {
		if d.Type == scsi.DesignatorNAA && len(d.Value) <= 20 {
			copy(creator[4:28], d.AppendTo(nil))
			break
		}
	}
	bs := uint32(tok.lu.Store.BlockSize())
	creator[29], creator[30], creator[31] = byte(bs>>16), byte(bs>>8), byte(bs)
	binary.BigEndian.PutUint64(r[tokOffBytes+8:], uint64(tok.bytes))
	if t.deviceData != nil {
		copy(r[tokOffDeviceData:tokOffTargetDev], t.deviceData(tok.lu))
	} else {
		binary.BigEndian.PutUint32(r[tokOffDeviceData:], bs) // LOGICAL BLOCK LENGTH
	}
	// The SCSI target device of the creator logical unit: the target the
	// token was made through, named as VPD page 83h names it (a SCSI name
	// string, association 10b). A name too long for the field leaves it
	// zero.
	target := scsi.Designator{ProtocolID: scsi.ProtocolISCSI, CodeSet: scsi.CodeSetUTF8, PIV: true,
		Association: scsi.AssocTargetDevice, Type: scsi.DesignatorSCSIName, Value: scsi.SCSINameString(tok.target)}
	if d := target.AppendTo(nil); len(d) <= tokOffNonce-tokOffTargetDev {
		copy(r[tokOffTargetDev:], d)
	}
	_, _ = rand.Read(r[tokOffNonce:tokOffMAC])
	mac := t.mac(r)
	copy(r[tokOffMAC:], mac[:])
}

// reserve claims room for one more token under limit; add or unreserve
// must follow.
func (t *tokens) reserve(limit int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.live)+t.pending >= limit {
		return false
	}
	t.pending++
	return true
}

// unreserve gives back room reserve claimed for a token not made.
func (t *tokens) unreserve() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending--
}

// add registers a new token, in the room reserve claimed, and seals it.
func (t *tokens) add(tok *Token, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending--
	t.next++
	tok.id = t.next
	tok.lastUsed = now
	t.seal(tok)
	t.live[tok.id] = tok
}

// count returns the number of live tokens.
func (t *tokens) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.live)
}

// verify checks raw and returns its live token, the zero token as a nil
// token and no error, or the sense data of INVALID TOKEN OPERATION that
// fits (SBC-3 5.33.3): a length or type the copy manager cannot take, a
// token it did not make or that was altered (checked before any
// lookup), one it no longer has and why. A live token it returns is held
// for use until release.
func (t *tokens) verify(raw []byte, now time.Time) (*Token, *scsi.Sense) {
	rodType := binary.BigEndian.Uint32(raw)
	if rodType == RODTypeBlockZero {
		return nil, nil
	}
	if binary.BigEndian.Uint16(raw[6:]) != tokenBodyLength {
		return nil, scsi.NewSense(scsi.IllegalRequest, ascTokenInvalidLength).WithReason("ROD token length %d", binary.BigEndian.Uint16(raw[6:]))
	}
	switch rodType {
	case RODTypeAccessUponReference, RODTypePointInTime, RODTypePointInTimeChange:
	default:
		return nil, scsi.NewSense(scsi.IllegalRequest, ascTokenUnsupportedType).WithReason("ROD type %08xh", rodType)
	}
	var r [TokenLength]byte
	copy(r[:], raw)
	want := t.mac(&r)
	if !hmac.Equal(want[:], r[tokOffMAC:]) {
		return nil, scsi.NewSense(scsi.IllegalRequest, ascTokenCorrupt).WithReason("ROD token authenticator does not verify")
	}
	id := binary.BigEndian.Uint64(r[tokOffID:])
	t.mu.Lock()
	defer t.mu.Unlock()
	tok := t.live[id]
	if tok == nil {
		return nil, scsi.NewSense(scsi.IllegalRequest, t.gone[id].code()).WithReason("ROD token %d is gone", id)
	}
	if tok.raw != r {
		// Authentic, but not the live token of that identifier: under a
		// key kept across restarts (persist.go), a token of an earlier
		// process whose identifier this one has handed out again.
		return nil, scsi.NewSense(scsi.IllegalRequest, ascTokenUnknown).WithReason("ROD token %d is not the one of that identifier", id)
	}
	if tok.users == 0 && now.Sub(tok.lastUsed) > tok.timeout {
		t.endLocked(tok, tokenExpired)
		return nil, scsi.NewSense(scsi.IllegalRequest, ascTokenExpired).WithReason("ROD token %d expired", id)
	}
	tok.users++
	return tok, nil
}

// release ends one use of tok; with del (DEL_TKN) the token is deleted.
// A use that was refused does not count as activity: untouched, the
// token's inactivity timer runs on as if it had not been presented.
func (t *tokens) release(tok *Token, del, used bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tok.users--
	if used {
		tok.lastUsed = now
	}
	if del && tok.state == tokenLive {
		t.endLocked(tok, tokenDeleted)
	} else if tok.state != tokenLive && tok.users == 0 {
		t.freeLocked(tok)
	}
}

// end ends tok for reason s (revoked, cancelled…).
func (t *tokens) end(tok *Token, s tokenState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.endLocked(tok, s)
}

// endLocked takes tok out of the live table, leaving a tombstone, and
// frees its snapshot once nobody reads it.
func (t *tokens) endLocked(tok *Token, s tokenState) {
	if tok.state != tokenLive {
		return
	}
	tok.state = s
	delete(t.live, tok.id)
	if len(t.goneFIFO) == maxTombstones {
		delete(t.gone, t.goneFIFO[0])
		t.goneFIFO = t.goneFIFO[1:]
	}
	t.gone[tok.id] = s
	t.goneFIFO = append(t.goneFIFO, tok.id)
	if tok.users == 0 {
		t.freeLocked(tok)
	}
}

func (t *tokens) freeLocked(tok *Token) {
	if tok.snap != nil {
		tok.snap.close()
	}
	if tok.record != "" {
		// Durably: a token that ended must not come back after a power
		// loss (only tokens.key_file makes records, one per token).
		_ = durable.Remove(tok.record)
	}
}

// expire ends the tokens whose inactivity timeout has passed and reports
// whether any token is still live.
func (t *tokens) expire(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tok := range t.live {
		if tok.users == 0 && now.Sub(tok.lastUsed) > tok.timeout {
			t.endLocked(tok, tokenExpired)
		}
	}
	if len(t.live) == 0 {
		t.reaping = false
		return false
	}
	return true
}

// matching ends, for reason s, every live token match selects.
func (t *tokens) endMatching(match func(*Token) bool, s tokenState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tok := range t.live {
		if match(tok) {
			t.endLocked(tok, s)
		}
	}
}
