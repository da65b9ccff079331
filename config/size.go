package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes ParseSize accepts. The bare letters are binary
// multiples, as in most storage tools; the "B"-terminated two-letter forms
// are decimal.
var sizeUnits = map[string]int64{
	"":    1,
	"B":   1,
	"K":   1 << 10,
	"KiB": 1 << 10,
	"M":   1 << 20,
	"MiB": 1 << 20,
	"G":   1 << 30,
	"GiB": 1 << 30,
	"T":   1 << 40,
	"TiB": 1 << 40,
	"KB":  1e3,
	"MB":  1e6,
	"GB":  1e9,
	"TB":  1e12,
}

// ErrSize is wrapped by every ParseSize error.
var ErrSize = errors.New("invalid size")

// ParseSize parses a byte count written as decimal digits with an optional
// unit: B, KiB, MiB, GiB, TiB (or K, M, G, T, meaning the same binary
// multiples), or KB, MB, GB, TB (decimal multiples). Spaces may separate
// the number from the unit; fractions and signs are not accepted.
func ParseSize(s string) (int64, error) {
	digits := len(s) - len(strings.TrimLeft(s, "0123456789"))
	if digits == 0 {
		return 0, fmt.Errorf("%w %q: must start with decimal digits", ErrSize, s)
	}
	unit := strings.TrimLeft(s[digits:], " ")
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("%w %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, K, M, G, T, KB, MB, GB or TB)",
			ErrSize, s, unit)
	}
	n, err := strconv.ParseInt(s[:digits], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%w %q: too large", ErrSize, s)
	}
	return n * mult, nil
}

// FormatSize writes n with the largest binary unit that divides it exactly
// ("10GiB", "1536KiB"), or as bytes ("1000B"). ParseSize reads it back.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
