package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNAAString(t *testing.T) {
	assert.Equal(t, "naa.60014050000000000000000000000000", naaString(naaDesignator("vol_x")))
	assert.Equal(t, "naa.6001405c9d3e6f01a2b4c5d8e9f01234", naaString(naaDesignator("c9d3e6f0-1a2b-4c5d-8e9f-0123456789ab")))
}

// twoBackstores is a configuration with backstores a and b whose serial
// and product lines the tests below fill in (line 4 is a's serial, line 7
// b's).
const twoBackstores = `backstores:
  - name: a
    type: memory
    serial: %s
    size: 1MiB
  - name: b
    serial: %s
    type: memory
    size: 1MiB
targets:
  - iqn: iqn.2025-01.io.odxtgt:t
    portals: [127.0.0.1]
    luns: [{lun: 0, backstore: a}, {lun: 1, backstore: b}]
`

func TestDesignatorCollisions(t *testing.T) {
	long := strings.Repeat("z", 240)
	tests := []struct {
		name string
		a, b string // serial lines (YAML scalars, may add a product line)
		want []wantErr
	}{
		{"no hex digits", "vol_x", "vol_y", []wantErr{{7, "backstores[1].serial",
			`NAA designator naa.60014050000000000000000000000000 of backstore "b" (serial "vol_y") is also that of ` +
				`backstore "a" at backstores[0] (serial "vol_x"): it keeps only the first 25 hex digits of the serial`}}},
		{"same hex digits", "vol-1a", "VOL_1A", []wantErr{{7, "backstores[1].serial", naaString(naaDesignator("1a"))}}},
		{"distinct", "vol_1", "vol_2", nil},
		{"differ in the 25th hex digit", "11111111-2222-3333-4444-555550000000", "11111111-2222-3333-4444-555560000000", nil},
		{"differ after the 25th hex digit", "11111111-2222-3333-4444-555550000000", "11111111-2222-3333-4444-555551111111",
			[]wantErr{{7, "backstores[1].serial", "naa.60014051111111122223333444455555 "}}},
		{"T10 vendor ID", "\"2\"\n    product: \"x:1\"", "\"1:2\"\n    product: x",
			[]wantErr{{8, "backstores[1].serial", `T10 vendor ID designator of backstore "b" (product "x", serial "1:2") is also ` +
				`that of backstore "a" at backstores[0] (product "x:1", serial "2"): both end in "x:1:2"`}}},
		{"T10 vendor ID cut", long + "1\n    product: abcdefghijklmnop", long + "2\n    product: abcdefghijklmnop",
			[]wantErr{{8, "backstores[1].serial", "cut to 246 bytes"}}},
		{"T10 vendor ID with distinct products", long + "1\n    product: p", long + "2\n    product: q", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(twoBackstores, "%s", tt.a, 1)
			doc = strings.Replace(doc, "%s", tt.b, 1)
			_, err := Parse([]byte(doc))
			if tt.want == nil {
				require.NoError(t, err, doc)
				return
			}
			requireErrors(t, err, tt.want)
		})
	}
}

// An explicit serial that shares its first 25 hex digits with another
// backstore's default serial is refused, and the message says which serial
// is the default.
func TestDesignatorCollisionWithDefaultSerial(t *testing.T) {
	def := DefaultSerial("d")
	mine := def[:len("01234567-0123-0123-0123-01234")] + "-mine"
	require.NotEqual(t, strings.ToLower(def), strings.ToLower(mine))
	doc := strings.Replace(minimal, "targets:", "  - {name: e, type: memory, size: 1MiB, serial: \""+mine+"\"}\ntargets:", 1)
	_, err := Parse([]byte(doc))
	requireErrors(t, err, []wantErr{{5, "backstores[1].serial",
		`of backstore "e" (serial "` + mine + `") is also that of backstore "d" at backstores[0] (default serial "` + def + `", derived from the name)`}})
	assert.Contains(t, err.Error(), naaString(naaDesignator(def)))
}

// A configuration built in code (no lines) is checked too, by Validate.
func TestValidateDesignatorCollision(t *testing.T) {
	cfg := Default("/srv")
	extra := cfg.Backstores[0]
	extra.Name, extra.Path, extra.Serial = "demo2", "/srv/demo2.img", cfg.Backstores[0].Serial+"-2"
	cfg.Backstores = append(cfg.Backstores, extra)
	err := cfg.Validate()
	requireErrors(t, err, []wantErr{{0, "backstores[1].serial", `is also that of backstore "demo" at backstores[0]`}})
}
