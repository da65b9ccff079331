package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	// maxISCSINameLen is the longest iSCSI name in bytes (RFC 7143 §4.2.7.1).
	maxISCSINameLen = 223
	// maxNameLen bounds backstore names.
	maxNameLen = 128
	// maxSerialLen bounds unit serial numbers; LIO's limit, so that every
	// serial LIO accepts can be imported.
	maxSerialLen = 254
	// maxProductLen is the INQUIRY PRODUCT IDENTIFICATION field size
	// (SPC-4 §6.6.2).
	maxProductLen = 16
	// maxTextValueLen bounds iSCSI text values such as TargetAlias and
	// CHAP_N (RFC 7143 §6.1: 255 bytes unless a key says otherwise).
	maxTextValueLen = 255
	// minSecretLen and maxSecretLen bound CHAP secrets. RFC 7143 §9.2.1
	// demands IPsec for secrets with fewer than 96 random bits; odxtgt has
	// no IPsec, so 12 bytes is the minimum. 255 is the usual target limit.
	minSecretLen = 12
	maxSecretLen = 255
)

// ErrISCSIName is wrapped by every ValidateISCSIName error.
var ErrISCSIName = errors.New("invalid iSCSI name")

// ValidateISCSIName checks that name is an iSCSI name in its normalized
// form (RFC 7143 §4.2.7, RFC 3722): at most 223 bytes of lowercase ASCII
// letters, digits, '-', '.' and ':', shaped as
//
//	iqn.yyyy-mm.reversed.domain[:anything]   (§4.2.7.3)
//	eui.<16 hex digits>                      (§4.2.7.4)
//	naa.<16 or 32 hex digits>                (§4.2.7.5, RFC 3980)
//
// Names with non-ASCII characters, legal after stringprep, are not
// accepted: odxtgt does not implement the nameprep mapping.
func ValidateISCSIName(name string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrISCSIName, name, fmt.Sprintf(format, args...))
	}
	if len(name) > maxISCSINameLen {
		return bad("longer than %d bytes", maxISCSINameLen)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.', r == ':':
		case r >= 'A' && r <= 'Z':
			return bad("must be lowercase (iSCSI names are case-folded, RFC 3722): %q", strings.ToLower(name))
		default:
			return bad("character %q not allowed (only a-z, 0-9, '-', '.', ':')", r)
		}
	}
	switch {
	case strings.HasPrefix(name, "iqn."):
		return checkIQN(name, bad)
	case strings.HasPrefix(name, "eui."):
		if !isHex(name[4:], 16) {
			return bad("eui. must be followed by 16 hex digits")
		}
	case strings.HasPrefix(name, "naa."):
		if !isHex(name[4:], 16) && !isHex(name[4:], 32) {
			return bad("naa. must be followed by 16 or 32 hex digits")
		}
	default:
		return bad("must start with iqn., eui. or naa.")
	}
	return nil
}

// checkIQN checks the iqn. form: "iqn." yyyy "-" mm "." naming-authority
// [":" unique-string], the authority being a reversed domain name.
func checkIQN(name string, bad func(string, ...any) error) error {
	rest := name[4:]
	if len(rest) < 8 || !isDigits(rest[0:4]) || rest[4] != '-' || !isDigits(rest[5:7]) || rest[7] != '.' {
		return bad("iqn. must be followed by a date yyyy-mm and a '.'")
	}
	if month := rest[5:7]; month < "01" || month > "12" {
		return bad("month %s out of range 01..12", month)
	}
	authority, unique, hasColon := strings.Cut(rest[8:], ":")
	if authority == "" {
		return bad("missing naming authority (a reversed domain name) after the date")
	}
	for label := range strings.SplitSeq(authority, ".") {
		if label == "" {
			return bad("empty label in naming authority %q", authority)
		}
	}
	if hasColon && unique == "" {
		return bad("empty string after ':'")
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkBackstoreName returns why name is not a usable backstore name, or "".
func checkBackstoreName(name string) string {
	if name == "" {
		return "required"
	}
	if len(name) > maxNameLen {
		return fmt.Sprintf("longer than %d characters", maxNameLen)
	}
	for _, r := range name {
		if !nameChar(r) {
			return fmt.Sprintf("character %q not allowed (use A-Z, a-z, 0-9, '_', '.', '-')", r)
		}
	}
	return ""
}

func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
}

// checkASCIIField returns why s cannot fill a left-aligned ASCII field of
// at most max bytes (SPC-4 §4.4.1: graphic codes 20h..7Eh, padded with
// spaces, so leading or trailing spaces would be lost), or "".
func checkASCIIField(s string, max int) string {
	if s == "" {
		return "required"
	}
	if len(s) > max {
		return fmt.Sprintf("longer than %d characters", max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Sprintf("byte %#02x not allowed (printable ASCII only)", s[i])
		}
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return "must not start or end with a space"
	}
	return ""
}

// checkTextValue returns why s is not a valid iSCSI text value of at most
// maxTextValueLen bytes (UTF-8 without NUL, RFC 7143 §6.1), or "".
func checkTextValue(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > maxTextValueLen {
		return fmt.Sprintf("longer than %d bytes", maxTextValueLen)
	}
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	if strings.ContainsRune(s, 0) {
		return "must not contain NUL"
	}
	return ""
}
