package config

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"512", 512},
		{"512B", 512},
		{"4K", 4096},
		{"4KiB", 4096},
		{"10 GiB", 10 << 30},
		{"3M", 3 << 20},
		{"3MiB", 3 << 20},
		{"2G", 2 << 30},
		{"1T", 1 << 40},
		{"1TiB", 1 << 40},
		{"1KB", 1000},
		{"5MB", 5_000_000},
		{"7GB", 7_000_000_000},
		{"2TB", 2_000_000_000_000},
		{"8388607TiB", 8388607 << 40},
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseSizeErrors(t *testing.T) {
	tests := []struct {
		in, msg string
	}{
		{"", "must start with decimal digits"},
		{"GiB", "must start with decimal digits"},
		{"-1", "must start with decimal digits"},
		{"+1", "must start with decimal digits"},
		{" 1", "must start with decimal digits"},
		{"1.5GiB", `unknown unit ".5GiB"`},
		{"1gib", `unknown unit "gib"`},
		{"1KIB", `unknown unit "KIB"`},
		{"1PiB", `unknown unit "PiB"`},
		{"1GiB ", `unknown unit "GiB "`},
		{"8388608TiB", "too large"},
		{"9223372036854775808", "too large"},
		{"99999999999999999999999", "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseSize(tt.in)
			require.ErrorIs(t, err, ErrSize)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		0:                   "0B",
		512:                 "512B",
		1000:                "1000B",
		1 << 10:             "1KiB",
		1536 << 10:          "1536KiB",
		10 << 30:            "10GiB",
		3 << 40:             "3TiB",
		1<<40 + 1<<30:       "1025GiB",
		math.MaxInt64:       "9223372036854775807B",
		math.MaxInt64 - 511: "9223372036854775296B",
	} {
		assert.Equal(t, want, FormatSize(n))
		back, err := ParseSize(want)
		require.NoError(t, err)
		assert.Equal(t, n, back)
	}
}
