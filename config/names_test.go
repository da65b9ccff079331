package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidateISCSIName(t *testing.T) {
	valid := []string{
		"iqn.1994-05.com.redhat:abc",
		"iqn.2001-04.com.example",
		"iqn.2001-04.com.example:storage:diskarrays-sn-a8675309",
		"iqn.2001-04.com.example:storage.tape1.sys1.xyz",
		"iqn.1991-05.com.microsoft:host.domain.example",
		"eui.02004567a425678d",
		"naa.52004567ba64678d",
		"naa.62004567ba64678d0123456789abcdef",
		"iqn.2025-01.io.odxtgt:" + strings.Repeat("x", 223-len("iqn.2025-01.io.odxtgt:")),
	}
	for _, name := range valid {
		assert.NoError(t, ValidateISCSIName(name), name)
	}

	invalid := []struct {
		name, msg string
	}{
		{"", "must start with iqn., eui. or naa."},
		{"iqn.2025-01.io.odxtgt:" + strings.Repeat("x", 224-len("iqn.2025-01.io.odxtgt:")), "longer than 223 bytes"},
		{"Iqn.2001-04.com.example", `must be lowercase (iSCSI names are case-folded, RFC 3722): "iqn.2001-04.com.example"`},
		{"eui.02004567A425678D", `must be lowercase`},
		{"iqn.2001-04.com.example:a_b", `character '_' not allowed`},
		{"iqn.2001-04.com.example:a b", `character ' ' not allowed`},
		{"iqn.2001-04.com.exämple", `character 'ä' not allowed`},
		{"host1", "must start with iqn., eui. or naa."},
		{"iqn.01-04.com.example", "date yyyy-mm"},
		{"iqn.2001-4.com.example", "date yyyy-mm"},
		{"iqn.2001-04com.example", "date yyyy-mm"},
		{"iqn.2001-00.com.example", "month 00 out of range"},
		{"iqn.2001-04.", "missing naming authority"},
		{"iqn.2001-04.:x", "missing naming authority"},
		{"iqn.2001-04.com..example", `empty label in naming authority "com..example"`},
		{"iqn.2001-04.com.example:", "empty string after ':'"},
		{"eui.02004567a425678", "eui. must be followed by 16 hex digits"},
		{"eui.02004567a425678g", "eui. must be followed by 16 hex digits"},
		{"naa.52004567ba64678d01", "naa. must be followed by 16 or 32 hex digits"},
	}
	for _, tt := range invalid {
		err := ValidateISCSIName(tt.name)
		require.ErrorIs(t, err, ErrISCSIName, tt.name)
		assert.Contains(t, err.Error(), tt.msg, tt.name)
	}
}

func TestParsePortal(t *testing.T) {
	valid := map[string]string{
		"127.0.0.1:3260":        "127.0.0.1:3260",
		"127.0.0.1":             "127.0.0.1:3260",
		"0.0.0.0":               "0.0.0.0:3260",
		"192.0.2.1:860":         "192.0.2.1:860",
		"[::1]:3260":            "[::1]:3260",
		"[::1]":                 "[::1]:3260",
		"::1":                   "[::1]:3260",
		"[::]":                  "[::]:3260",
		"2001:db8::1":           "[2001:db8::1]:3260",
		"[2001:DB8::1]:3261":    "[2001:db8::1]:3261",
		"[fe80::1%eth0]:3260":   "[fe80::1%eth0]:3260",
		"[::ffff:192.0.2.1]":    "[::ffff:192.0.2.1]:3260",
		"192.0.2.1:65535":       "192.0.2.1:65535",
		"127.0.0.1:0":           "127.0.0.1:0", // any free port
		"[2001:db8::1]:0003260": "[2001:db8::1]:3260",
	}
	for in, want := range valid {
		ap, err := ParsePortal(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, ap.String(), in)
	}
	invalid := map[string]string{
		"":                  "want an IP address",
		"localhost":         "want an IP address",
		"localhost:3260":    "want an IP address",
		"192.0.2.1:65536":   "want an IP address",
		"192.0.2.1:":        "want an IP address",
		"[192.0.2.1]":       "brackets must enclose an IPv6 address",
		"[192.0.2.1]:3260":  "want an IP address",
		"[::1]:x":           "want an IP address",
		" 192.0.2.1":        "want an IP address",
		"192.0.2.256":       "want an IP address",
		"2001:db8::1:3260:": "want an IP address",
	}
	for in, msg := range invalid {
		_, err := ParsePortal(in)
		require.ErrorIs(t, err, ErrPortal, in)
		assert.Contains(t, err.Error(), msg, in)
	}
}
