package config

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clearLines zeroes the source lines, which Marshal does not preserve.
func clearLines(c *Config) *Config {
	for i := range c.Backstores {
		c.Backstores[i].Line = 0
	}
	for i := range c.Targets {
		c.Targets[i].Line = 0
	}
	return c
}

func TestMarshalRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	require.NoError(t, err)
	cfg, err := Parse(data)
	require.NoError(t, err)

	out, err := cfg.Marshal()
	require.NoError(t, err)
	back, err := Parse(out)
	require.NoError(t, err, "Marshal output:\n%s", out)
	assert.Equal(t, clearLines(cfg), clearLines(back))

	again, err := back.Marshal()
	require.NoError(t, err)
	assert.Equal(t, string(out), string(again), "Marshal is stable")
}

func TestMarshalQuotesAmbiguousStrings(t *testing.T) {
	cfg := Default("/srv")
	b := &cfg.Backstores[0]
	b.Serial = "12345"
	b.Product = "true"
	cfg.Targets[0].Alias = "null"
	cfg.Targets[0].TPGs[0].Auth = &Auth{ChapUser: "0x10", ChapSecret: "123456789012"}
	out, err := cfg.Marshal()
	require.NoError(t, err)
	back, err := Parse(out)
	require.NoError(t, err, "Marshal output:\n%s", out)
	assert.Equal(t, cfg, clearLines(back))
}

func TestMarshalForms(t *testing.T) {
	cfg := Default("/srv")
	cfg.Targets[0].TPGs[0].Tag = 7
	out, err := cfg.Marshal()
	require.NoError(t, err)
	assert.Contains(t, string(out), "    tpgs:\n      - tag: 7\n", "a TPG other than tag 1 needs the long form")

	cfg = Default("/srv")
	out, err = cfg.Marshal()
	require.NoError(t, err)
	assert.NotContains(t, string(out), "tpgs")
	assert.NotContains(t, string(out), "serial", "default serial is left out")
}

func TestMarshalRefusesInvalid(t *testing.T) {
	cfg := Default("relative")
	_, err := cfg.Marshal()
	var errs Errors
	require.ErrorAs(t, err, &errs)
	assert.Equal(t, `backstores[0].path: must be an absolute path, not "relative/demo.img"`, errs.Error())
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string
	}{
		{"non-canonical portal", func(c *Config) { c.Targets[0].TPGs[0].Portals[0] = "127.0.0.1" },
			`targets[0].portals[0]: portal "127.0.0.1" is not in canonical form "127.0.0.1:3260"`},
		{"empty ACL LUN list", func(c *Config) {
			c.Targets[0].TPGs[0].ACLs = []ACL{{Initiator: "iqn.2001-04.com.example:h", LUNs: []uint64{}}}
		}, "targets[0].acls[0].luns: must not be empty (omit luns to grant every LUN)"},
		{"long form paths", func(c *Config) {
			c.Targets[0].TPGs = append(c.Targets[0].TPGs, TPG{Tag: 2, Portals: []string{"127.0.0.2:3260"}, LUNs: []LUN{{16384, "demo"}}})
		}, "targets[0].tpgs[1].luns[0].lun: must be between 0 and 16383"},
		{"no TPGs", func(c *Config) { c.Targets[0].TPGs = nil }, "targets[0].tpgs: at least one portal group is required"},
		{"tag 0", func(c *Config) { c.Targets[0].TPGs[0].Tag = 0 }, "targets[0].tpgs[0].tag: required (1..65535)"},
		{"empty serial", func(c *Config) { c.Backstores[0].Serial = "" }, "backstores[0].serial: required"},
		{"alias too long", func(c *Config) { c.Targets[0].Alias = strings.Repeat("a", 256) },
			"targets[0].alias: longer than 255 bytes"},
		{"chap name invalid UTF-8", func(c *Config) {
			c.Targets[0].TPGs[0].Auth = &Auth{ChapUser: "\xff", ChapSecret: "123456789012"}
		}, "targets[0].auth.chap_user: not valid UTF-8"},
		{"IPv6 wildcard overlaps IPv4", func(c *Config) {
			c.Targets[0].TPGs = append(c.Targets[0].TPGs, TPG{Tag: 2, Portals: []string{"[::]:3260"}})
		}, "targets[0].tpgs[1].portals[0]: portal [::]:3260 overlaps 127.0.0.1:3260 of another portal group (targets[0].tpgs[0]); a portal belongs to one portal group of a target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default("/srv")
			tt.modify(cfg)
			err := cfg.Validate()
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestValidateAcceptsSharedBackstoresAndPortals(t *testing.T) {
	cfg := Default("/srv")
	second := cfg.Targets[0]
	second.IQN = "iqn.2025-01.io.odxtgt:second"
	second.TPGs = []TPG{{Tag: 1, Portals: []string{"127.0.0.1:3260"}, LUNs: []LUN{{3, "demo"}}}}
	cfg.Targets = append(cfg.Targets, second)
	require.NoError(t, cfg.Validate(), "a backstore and a portal may serve several targets")
}

func TestValidateKeepsParsedLines(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	require.NoError(t, err)
	cfg.Backstores[0].BlockSize = 1024
	cfg.Targets[0].TPGs[0].LUNs[0].Backstore = "gone"
	err = cfg.Validate()
	require.Error(t, err)
	assert.Equal(t, "line 2: backstores[0].block_size: must be 512 or 4096, not 1024\n"+
		`line 6: targets[0].luns[0].backstore: unknown backstore "gone"`, err.Error())
}
