package iscsi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the text format (RFC 7143 6.1).
const (
	// MaxKeyNameLength is the longest key name allowed.
	MaxKeyNameLength = 63
	// MaxSimpleValueLength is the longest simple-value (and the longest
	// element of a list-of-values) unless a key's definition says
	// otherwise, not counting the comma or NUL delimiter.
	MaxSimpleValueLength = 255
	// MaxLargeBinaryLength is the longest decoded large-binary-value: the
	// CHAP challenge and response (RFC 7143 12.1.3).
	MaxLargeBinaryLength = 1024
	// MinTextNegotiationLength is the amount of key=value data every
	// implementation must accept in one negotiation sequence; TextBuffer
	// limits should not be lower.
	MinTextNegotiationLength = 8192
)

// Special values a negotiation may answer with (RFC 7143 6.2, 6.2.1).
const (
	ValueReject        = "Reject"
	ValueIrrelevant    = "Irrelevant"
	ValueNotUnderstood = "NotUnderstood"
	ValueNone          = "None"
	ValueYes           = "Yes"
	ValueNo            = "No"
)

// Errors a TextError wraps; test them with errors.Is.
var (
	ErrTextMissingEquals   = errors.New("missing '=' between key and value")
	ErrTextEmptyKey        = errors.New("empty key name")
	ErrTextKeyTooLong      = fmt.Errorf("key name longer than %d bytes", MaxKeyNameLength)
	ErrTextInvalidKey      = errors.New("invalid character in key name")
	ErrTextValueTooLong    = errors.New("value too long")
	ErrTextInvalidUTF8     = errors.New("value is not valid UTF-8")
	ErrTextValueNUL        = errors.New("value contains a NUL byte")
	ErrTextDuplicateKey    = errors.New("key sent more than once")
	ErrTextUnterminated    = errors.New("last key=value pair is not NUL-terminated")
	ErrTextBufferOverflow  = errors.New("text exceeds the negotiation buffer limit")
	ErrTextInvalidNumber   = errors.New("invalid numerical value")
	ErrTextInvalidBoolean  = errors.New("invalid boolean value (want Yes or No)")
	ErrTextInvalidBinary   = errors.New("invalid binary value")
	ErrTextInvalidRange    = errors.New("invalid range")
	ErrTextEmptyListMember = errors.New("empty list member")
)

// TextError reports a malformed key=value pair in a text or login data
// segment, naming the key when one could be read.
type TextError struct {
	Key    string // the key, empty when none could be read
	Offset int    // byte offset of the pair in the data
	Err    error  // one of the ErrText* errors
}

func (e *TextError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("iscsi: text pair at byte %d: %v", e.Offset, e.Err)
	}
	return fmt.Sprintf("iscsi: text key %q at byte %d: %v", e.Key, e.Offset, e.Err)
}

// Unwrap returns the ErrText* error.
func (e *TextError) Unwrap() error { return e.Err }

// KeyValue is one key=value pair.
type KeyValue struct {
	Key, Value string
}

// TextKeys is an ordered list of key=value pairs: the content of a Login or
// Text data segment (RFC 7143 6.1). Order is kept because negotiation
// answers follow the order of the offers.
type TextKeys []KeyValue

// largeBinaryKeys carry large-binary-values whose length limit is
// MaxLargeBinaryLength decoded bytes rather than MaxSimpleValueLength
// (RFC 7143 12.1.3).
var largeBinaryKeys = map[string]bool{"CHAP_C": true, "CHAP_R": true}

// maxEncodedLargeBinary is the longest encoding of a large-binary-value:
// "0x" and two hex digits per byte.
const maxEncodedLargeBinary = 2 + 2*MaxLargeBinaryLength

// ParseText decodes a complete data segment of NUL-terminated key=value
// pairs (RFC 7143 6.1), keeping their order. A key sent twice is an error
// (RFC 7143 6.2); use ParseTextRepeatable for SendTargets responses, where
// TargetName and TargetAddress repeat. Empty strings between NULs (padding
// some implementations add) are skipped.
func ParseText(data []byte) (TextKeys, error) {
	return parseText(data, false)
}

// ParseTextRepeatable is ParseText without the duplicate-key check, for
// text whose keys may legitimately repeat, such as a SendTargets response
// listing several targets and addresses (RFC 7143 Appendix C).
func ParseTextRepeatable(data []byte) (TextKeys, error) {
	return parseText(data, true)
}

func parseText(data []byte, repeatable bool) (TextKeys, error) {
	var keys TextKeys
	var seen map[string]bool
	if !repeatable {
		seen = map[string]bool{}
	}
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			key := ""
			if eq := bytes.IndexByte(data[off:], '='); eq >= 0 {
				key = string(data[off : off+eq])
			}
			return nil, &TextError{Key: key, Offset: off, Err: ErrTextUnterminated}
		}
		pair := data[off : off+end]
		if len(pair) > 0 {
			kv, err := parsePair(pair, off)
			if err != nil {
				return nil, err
			}
			if seen != nil {
				if seen[kv.Key] {
					return nil, &TextError{Key: kv.Key, Offset: off, Err: ErrTextDuplicateKey}
				}
				seen[kv.Key] = true
			}
			keys = append(keys, kv)
		}
		off += end + 1
	}
	return keys, nil
}

func parsePair(pair []byte, off int) (KeyValue, error) {
	eq := bytes.IndexByte(pair, '=')
	if eq < 0 {
		key := pair[:min(len(pair), MaxKeyNameLength+1)]
		if !utf8.Valid(key) {
			key = nil
		}
		return KeyValue{}, &TextError{Key: string(key), Offset: off, Err: ErrTextMissingEquals}
	}
	kv := KeyValue{Key: string(pair[:eq]), Value: string(pair[eq+1:])}
	if err := checkKeyValue(kv.Key, kv.Value); err != nil {
		err.Offset = off
		return KeyValue{}, err
	}
	return kv, nil
}

// CheckKeyValue checks one pair against the text format rules: a key name
// of 1 to 63 letters, digits and ". - + @ _" (RFC 7143 6.1) or '#' (for
// extension keys such as X#NodeArchitecture), and a UTF-8 value whose
// comma-separated members are at most 255 bytes each (CHAP_C and CHAP_R: a
// large-binary-value of up to 1024 decoded bytes, so at most 2050
// characters). The error is a *TextError.
func CheckKeyValue(key, value string) error {
	if err := checkKeyValue(key, value); err != nil {
		return err
	}
	return nil
}

func checkKeyValue(key, value string) *TextError {
	fail := func(err error) *TextError {
		// Name the key, shortened and quoted when it is itself the problem.
		k := key
		if len(k) > MaxKeyNameLength || !validKey(k) {
			k = strconv.QuoteToASCII(k[:min(len(k), MaxKeyNameLength)])
		}
		return &TextError{Key: k, Err: err}
	}
	switch {
	case key == "":
		return &TextError{Err: ErrTextEmptyKey}
	case len(key) > MaxKeyNameLength:
		return fail(ErrTextKeyTooLong)
	case !validKey(key):
		return fail(ErrTextInvalidKey)
	case !utf8.ValidString(value):
		return fail(ErrTextInvalidUTF8)
	case strings.IndexByte(value, 0) >= 0:
		return fail(ErrTextValueNUL)
	}
	if largeBinaryKeys[key] {
		if len(value) > maxEncodedLargeBinary {
			return fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTextValueTooLong, len(value), maxEncodedLargeBinary))
		}
		return nil
	}
	for member := range strings.SplitSeq(value, ",") {
		if len(member) > MaxSimpleValueLength {
			return fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTextValueTooLong, len(member), MaxSimpleValueLength))
		}
	}
	return nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == '+', c == '@', c == '_', c == '#':
		default:
			return false
		}
	}
	return true
}

// Encode returns the pairs as a data segment: each "key=value" followed by
// a NUL.
func (t TextKeys) Encode() []byte { return t.AppendTo(nil) }

// AppendTo appends the encoded pairs to b.
func (t TextKeys) AppendTo(b []byte) []byte {
	for _, kv := range t {
		b = append(b, kv.Key...)
		b = append(b, '=')
		b = append(b, kv.Value...)
		b = append(b, 0)
	}
	return b
}

// Get returns the value of the first pair named key.
func (t TextKeys) Get(key string) (string, bool) {
	for _, kv := range t {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Has reports whether a pair named key is present.
func (t TextKeys) Has(key string) bool {
	_, ok := t.Get(key)
	return ok
}

// GetAll returns the values of every pair named key, in order.
func (t TextKeys) GetAll(key string) []string {
	var vs []string
	for _, kv := range t {
		if kv.Key == key {
			vs = append(vs, kv.Value)
		}
	}
	return vs
}

// Set replaces the value of the first pair named key, or appends the pair.
func (t *TextKeys) Set(key, value string) {
	for i := range *t {
		if (*t)[i].Key == key {
			(*t)[i].Value = value
			return
		}
	}
	t.Add(key, value)
}

// Add appends a pair, even when key is already present.
func (t *TextKeys) Add(key, value string) {
	*t = append(*t, KeyValue{Key: key, Value: value})
}

// Del removes every pair named key.
func (t *TextKeys) Del(key string) {
	out := (*t)[:0]
	for _, kv := range *t {
		if kv.Key != key {
			out = append(out, kv)
		}
	}
	clear((*t)[len(out):])
	*t = out
}

// Map returns the pairs as a map; for a repeated key the first value wins.
func (t TextKeys) Map() map[string]string {
	m := make(map[string]string, len(t))
	for _, kv := range t {
		if _, ok := m[kv.Key]; !ok {
			m[kv.Key] = kv.Value
		}
	}
	return m
}

// ParseNumber decodes a numerical-value: a decimal-constant or a
// hex-constant ("0x" or "0X" prefix) less than 2^64 (RFC 7143 6.1). Signs,
// spaces and an empty string are errors.
func ParseNumber(s string) (uint64, error) {
	digits, base := s, 10
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, base = s[2:], 16
	}
	// An explicit base makes ParseUint refuse signs, prefixes and '_'.
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrTextInvalidNumber, s)
	}
	return v, nil
}

// FormatNumber encodes a numerical-value as a decimal-constant.
func FormatNumber(v uint64) string { return strconv.FormatUint(v, 10) }

// ParseBoolean decodes a boolean-value: exactly "Yes" or "No" (RFC 7143
// 6.1).
func ParseBoolean(s string) (bool, error) {
	switch s {
	case ValueYes:
		return true, nil
	case ValueNo:
		return false, nil
	}
	return false, fmt.Errorf("%w: %q", ErrTextInvalidBoolean, s)
}

// FormatBoolean encodes a boolean-value.
func FormatBoolean(v bool) string {
	if v {
		return ValueYes
	}
	return ValueNo
}

// DecodeBinary decodes a binary value written as a hex-constant ("0x"/"0X"
// and hex digits; an odd count implies a leading zero nibble) or a
// base64-constant ("0b"/"0B" and RFC 4648 base64, padded or not) (RFC 7143
// 6.1). An empty encoding is an error.
func DecodeBinary(s string) ([]byte, error) {
	if len(s) < 3 || s[0] != '0' {
		return nil, fmt.Errorf("%w: %.40q", ErrTextInvalidBinary, s)
	}
	body := s[2:]
	switch s[1] {
	case 'x', 'X':
		if len(body)%2 == 1 {
			body = "0" + body
		}
		b, err := hex.DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %.40q: %v", ErrTextInvalidBinary, s, err)
		}
		return b, nil
	case 'b', 'B':
		// The decoder skips CR and LF; the text format has no room for them.
		if strings.ContainsAny(body, "\r\n") {
			return nil, fmt.Errorf("%w: %.40q: line break in base64", ErrTextInvalidBinary, s)
		}
		enc := base64.StdEncoding
		if len(body)%4 != 0 {
			enc = base64.RawStdEncoding
		}
		b, err := enc.Strict().DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %.40q: %v", ErrTextInvalidBinary, s, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: %.40q: want 0x or 0b prefix", ErrTextInvalidBinary, s)
}

// EncodeHex encodes b as a hex-constant ("0x" and lower-case digits).
func EncodeHex(b []byte) string { return "0x" + hex.EncodeToString(b) }

// EncodeBase64 encodes b as a base64-constant ("0b" and padded base64).
func EncodeBase64(b []byte) string { return "0b" + base64.StdEncoding.EncodeToString(b) }

// ParseList splits a list-of-values at commas (RFC 7143 6.1). An empty
// member (",," or a leading or trailing comma) is an error.
func ParseList(s string) ([]string, error) {
	members := strings.Split(s, ",")
	for _, m := range members {
		if m == "" {
			return nil, fmt.Errorf("%w in %q", ErrTextEmptyListMember, s)
		}
	}
	return members, nil
}

// FormatList joins values into a list-of-values.
func FormatList(values []string) string { return strings.Join(values, ",") }

// ParseRange decodes a range: two numerical-values separated by '~', the
// first not greater than the second (RFC 7143 6.1).
func ParseRange(s string) (lo, hi uint64, err error) {
	a, b, ok := strings.Cut(s, "~")
	if !ok {
		return 0, 0, fmt.Errorf("%w: %q has no '~'", ErrTextInvalidRange, s)
	}
	if lo, err = ParseNumber(a); err != nil {
		return 0, 0, fmt.Errorf("%w: %q: %v", ErrTextInvalidRange, s, err)
	}
	if hi, err = ParseNumber(b); err != nil {
		return 0, 0, fmt.Errorf("%w: %q: %v", ErrTextInvalidRange, s, err)
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("%w: %q: low end above high end", ErrTextInvalidRange, s)
	}
	return lo, hi, nil
}

// FormatRange encodes a range.
func FormatRange(lo, hi uint64) string { return FormatNumber(lo) + "~" + FormatNumber(hi) }

// TextBuffer reassembles a text or login data segment that arrives in
// several PDUs with the C (continue) bit set (RFC 7143 11.10.2, 11.12.2):
// Append each PDU's data and parse once a PDU without the C bit arrives. A
// pair may be split anywhere, even inside a key.
type TextBuffer struct {
	limit int
	buf   []byte
}

// NewTextBuffer returns a buffer that refuses to grow beyond limit bytes;
// limit should be at least MinTextNegotiationLength.
func NewTextBuffer(limit int) *TextBuffer { return &TextBuffer{limit: limit} }

// Append adds one PDU's data segment. It returns ErrTextBufferOverflow
// (and keeps nothing of data) when the total would exceed the limit.
func (b *TextBuffer) Append(data []byte) error {
	if len(b.buf)+len(data) > b.limit {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTextBufferOverflow, len(b.buf)+len(data), b.limit)
	}
	b.buf = append(b.buf, data...)
	return nil
}

// Len returns the number of bytes buffered.
func (b *TextBuffer) Len() int { return len(b.buf) }

// Bytes returns the buffered data; it stays valid until the next Append or
// Reset.
func (b *TextBuffer) Bytes() []byte { return b.buf }

// Reset empties the buffer for the next sequence.
func (b *TextBuffer) Reset() { b.buf = b.buf[:0] }

// SplitText cuts an encoded text into data segments of at most limit bytes
// for a peer whose MaxRecvDataSegmentLength is limit; every segment but the
// last goes in a PDU with the C bit set. An empty text gives one empty
// segment.
func SplitText(data []byte, limit int) [][]byte {
	if limit <= 0 || len(data) <= limit {
		return [][]byte{data}
	}
	var out [][]byte
	for len(data) > limit {
		out = append(out, data[:limit])
		data = data[limit:]
	}
	return append(out, data)
}
