package config

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), got)
}

func TestImportLIOGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/saveconfig.json")
	require.NoError(t, err)
	cfg, warnings, err := ImportLIO(data)
	require.NoError(t, err)

	out, err := cfg.Marshal()
	require.NoError(t, err)
	golden(t, "saveconfig.golden.yaml", string(out))
	golden(t, "saveconfig.warnings.golden", strings.Join(warnings, "\n")+"\n")

	back, err := Parse(out)
	require.NoError(t, err)
	assert.Equal(t, cfg, clearLines(back))
}

// lioBase is a small saveconfig.json that the tests below modify.
const lioBase = `{
  "storage_objects": [
    {"plugin": "fileio", "name": "d0", "dev": "/srv/d0.img", "size": 1048576, "wwn": "11111111-2222-4333-8444-555555555555",
     "write_back": true, "attributes": {"block_size": 512, "emulate_model_alias": 0}}
  ],
  "targets": [
    {"fabric": "iscsi", "wwn": "iqn.2003-01.org.linux-iscsi.h.x8664:sn.1",
     "tpgs": [{"tag": 1, "enable": true,
       "attributes": {"authentication": 1, "generate_node_acls": 0, "demo_mode_write_protect": 1},
       "parameters": {"TargetAlias": "LIO Target"},
       "portals": [{"ip_address": "0.0.0.0", "port": 3260}],
       "luns": [{"index": 0, "storage_object": "/backstores/fileio/d0"}],
       "node_acls": [{"node_wwn": "iqn.1994-05.com.redhat:h1", "chap_userid": "h1", "chap_password": "h1-secret-long",
                      "mapped_luns": [{"index": 0, "tpg_lun": 0}]}]}]}
  ]
}`

func TestImportLIOBase(t *testing.T) {
	cfg, warnings, err := ImportLIO([]byte(lioBase))
	require.NoError(t, err)
	assert.Empty(t, warnings)
	assert.Equal(t, &Config{
		Backstores: []Backstore{{
			Name: "d0", Type: TypeFile, Path: "/srv/d0.img", Size: 1 << 20, BlockSize: 512,
			Serial: "11111111-2222-4333-8444-555555555555", Product: "FILEIO", WriteCache: true,
		}},
		Targets: []Target{{
			IQN: "iqn.2003-01.org.linux-iscsi.h.x8664:sn.1", Alias: "LIO Target",
			TPGs: []TPG{{
				Tag: 1, Portals: []string{"0.0.0.0:3260"}, LUNs: []LUN{{0, "d0"}},
				ACLs: []ACL{{Initiator: "iqn.1994-05.com.redhat:h1", LUNs: []uint64{0},
					Auth: &Auth{ChapUser: "h1", ChapSecret: "h1-secret-long"}}},
			}},
		}},
	}, cfg)
}

func TestImportLIOVariants(t *testing.T) {
	tests := []struct {
		name     string
		repl     []string // old, new pairs
		check    func(t *testing.T, c *Config)
		warnings []string
	}{
		{"old plugin name", []string{`"plugin": "fileio", "name": "d0"`, `"plugin": "iblock", "name": "d0"`,
			`/backstores/fileio/d0`, `/backstores/block/d0`},
			func(t *testing.T, c *Config) {
				assert.Equal(t, TypeBlock, c.Backstores[0].Type)
				assert.True(t, c.Backstores[0].Direct)
				assert.Zero(t, c.Backstores[0].Size)
				assert.Equal(t, "IBLOCK", c.Backstores[0].Product)
			}, nil},
		{"unknown storage object", []string{`/backstores/fileio/d0`, `/backstores/fileio/d1`},
			nil, []string{
				"targets[0].tpgs[0].luns[0]: LUN 0 maps unknown storage object /backstores/fileio/d1; skipped",
				"targets[0].tpgs[0].node_acls[0].mapped_luns[0]: maps TPG LUN 0, which is not imported; skipped",
				"targets[0].tpgs[0].node_acls[0] (iqn.1994-05.com.redhat:h1): maps no LUN; skipped (an odxtgt ACL without luns would grant every LUN)",
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): generate_node_acls=0 and no usable node ACL: no initiator could log in; skipped",
				"targets[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1): no usable portal group; skipped",
			}},
		{"ACL without CHAP", []string{`"chap_userid": "h1", "chap_password": "h1-secret-long",`, ``},
			nil, []string{
				"targets[0].tpgs[0].node_acls[0] (iqn.1994-05.com.redhat:h1): authentication=1 without CHAP credentials: LIO refuses this initiator; skipped",
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): generate_node_acls=0 and no usable node ACL: no initiator could log in; skipped",
				"targets[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1): no usable portal group; skipped",
			}},
		{"demo mode CHAP without credentials", []string{`"generate_node_acls": 0`, `"generate_node_acls": 1`, `"node_acls": [`, `"x": [`},
			nil, []string{
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): authentication=1 in demo mode without TPG CHAP credentials: LIO refuses every login; skipped",
				"targets[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1): no usable portal group; skipped",
			}},
		{"no portals", []string{`"portals": [{"ip_address": "0.0.0.0", "port": 3260}]`, `"portals": []`},
			nil, []string{
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): no portals; skipped",
				"targets[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1): no usable portal group; skipped",
			}},
		{"demo mode", []string{`"authentication": 1, "generate_node_acls": 0`, `"authentication": 0, "generate_node_acls": 1`},
			func(t *testing.T, c *Config) {
				assert.Nil(t, c.Targets[0].TPGs[0].ACLs)
				assert.Nil(t, c.Targets[0].TPGs[0].Auth)
			}, []string{
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): authentication=0: CHAP credentials ignored (odxtgt has no optional CHAP)",
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): generate_node_acls=1: node_acls not imported; any initiator may log in and sees every LUN",
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): demo_mode_write_protect=1: LIO gave initiators read-only access, odxtgt gives read-write (set readonly on the backstores to keep them read-only)",
			}},
		{"demo mode with CHAP", []string{`"authentication": 1, "generate_node_acls": 0, "demo_mode_write_protect": 1}`,
			`"authentication": 1, "generate_node_acls": 1, "demo_mode_write_protect": 0}, "chap_userid": "all", "chap_password": "shared-secret-1"`},
			func(t *testing.T, c *Config) {
				assert.Equal(t, &Auth{ChapUser: "all", ChapSecret: "shared-secret-1"}, c.Targets[0].TPGs[0].Auth)
			}, []string{
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): generate_node_acls=1: node_acls not imported; any initiator may log in and sees every LUN",
			}},
		{"rd_mcp and renamed duplicate", []string{`"storage_objects": [`,
			`"storage_objects": [{"plugin": "rd_mcp", "name": "d0", "size": 4096, "wwn": "abc", "attributes": {"emulate_write_cache": 1}},`},
			func(t *testing.T, c *Config) {
				assert.Equal(t, Backstore{Name: "d0", Type: TypeMemory, Size: 4096, BlockSize: 512, Serial: "abc",
					Product: "RAMDISK-MCP", WriteCache: true}, c.Backstores[0])
				assert.Equal(t, "d0-2", c.Backstores[1].Name)
				assert.Equal(t, "d0-2", c.Targets[0].TPGs[0].LUNs[0].Backstore)
			}, []string{`storage_objects[1] (fileio/d0): renamed to backstore "d0-2"`}},
		{"IPv6 portal", []string{`"ip_address": "0.0.0.0", "port": 3260`, `"ip_address": "[2001:db8::5]", "port": 3260, "offload": true`},
			func(t *testing.T, c *Config) {
				assert.Equal(t, []string{"[2001:db8::5]:3260"}, c.Targets[0].TPGs[0].Portals)
			}, []string{"targets[0].tpgs[0].portals[0]: offload is not supported; [2001:db8::5]:3260 imported as a plain portal"}},
		{"numeric flags", []string{`"write_back": true`, `"write_back": 0`, `"tag": 1, "enable": true`, `"tag": 1, "enable": "1"`},
			func(t *testing.T, c *Config) {
				assert.False(t, c.Backstores[0].WriteCache)
				assert.Len(t, c.Targets, 1)
			}, nil},
		{"disabled TPG", []string{`"enable": true`, `"enable": 0`},
			nil, []string{
				"targets[0].tpgs[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1 tpg 1): disabled; skipped",
				"targets[0] (iqn.2003-01.org.linux-iscsi.h.x8664:sn.1): no usable portal group; skipped",
			}},
		{"no wwn", []string{`"wwn": "11111111-2222-4333-8444-555555555555",`, ``},
			func(t *testing.T, c *Config) {
				assert.Equal(t, DefaultSerial("d0"), c.Backstores[0].Serial)
			}, []string{"storage_objects[0] (fileio/d0): no wwn; serial " + DefaultSerial("d0") + " derived from the name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := lioBase
			for i := 0; i < len(tt.repl); i += 2 {
				require.Contains(t, doc, tt.repl[i])
				doc = strings.Replace(doc, tt.repl[i], tt.repl[i+1], 1)
			}
			cfg, warnings, err := ImportLIO([]byte(doc))
			assert.Equal(t, tt.warnings, warnings)
			if tt.check == nil {
				// Everything was skipped: nothing is left to serve.
				require.Error(t, err)
				assert.Equal(t, "imported configuration: targets: at least one target is required", err.Error())
				return
			}
			require.NoError(t, err)
			tt.check(t, cfg)
		})
	}
}

func TestImportLIOErrors(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     []wantErr
	}{
		{"syntax", `"tag": 1,`, `"tag": 1,,`, []wantErr{{8, "", "invalid JSON: invalid character ','"}}},
		{"type", `"size": 1048576`, `"size": "1M"`, []wantErr{{3, "storage_objects.size", "must be int64, got JSON string"}}},
		{"short secret", `"h1-secret-long"`, `"short"`, []wantErr{
			{0, "targets[0].tpgs[0].node_acls[0].chap_password", "must be at least 12 bytes, got 5"}}},
		{"partial CHAP", `"chap_password": "h1-secret-long",`, `"chap_mutual_userid": "t",`, []wantErr{
			{0, "targets[0].tpgs[0].node_acls[0].chap_password", "required"},
			{0, "targets[0].tpgs[0].node_acls[0].chap_mutual_password", "required"}}},
		{"block size", `"block_size": 512`, `"block_size": 2048`, []wantErr{
			{0, "storage_objects[0].attributes.block_size", "block size 2048 is not supported"}}},
		{"bad attribute", `"authentication": 1`, `"authentication": "yes"`, []wantErr{
			{0, "targets[0].tpgs[0].attributes.authentication", `not an integer: "yes"`}}},
		{"initiator name", `iqn.1994-05.com.redhat:h1`, `iqn.1994-05.com.redhat:H1`, []wantErr{
			{0, "targets[0].tpgs[0].node_acls[0].node_wwn", "must be lowercase"}}},
		{"target name", `iqn.2003-01.org.linux-iscsi.h.x8664:sn.1`, `target1`, []wantErr{
			{0, "targets[0].wwn", "must start with iqn., eui. or naa."}}},
		{"portal", `"port": 3260`, `"port": 0`, []wantErr{{0, "targets[0].tpgs[0].portals[0].port", "must be between 1 and 65535, not 0"}}},
		{"portal address", `"0.0.0.0"`, `"storage1"`, []wantErr{{0, "targets[0].tpgs[0].portals[0].ip_address", `"storage1" is not an IP address`}}},
		{"lun reference", `/backstores/fileio/d0`, `fileio/d0`, []wantErr{
			{0, "targets[0].tpgs[0].luns[0].storage_object", `malformed reference "fileio/d0"`}}},
		{"size", `"size": 1048576`, `"size": 100`, []wantErr{
			{0, "storage_objects[0].size", "100 bytes is less than one 512-byte block"}}},
		{"missing dev", `"dev": "/srv/d0.img",`, ``, []wantErr{{0, "storage_objects[0].dev", "missing"}}},
		{"flag", `"enable": true`, `"enable": "yes"`, []wantErr{{0, "", `invalid JSON: not a boolean: "yes"`}}},
		{"tag", `"tag": 1,`, `"tag": 0,`, []wantErr{{0, "targets[0].tpgs[0].tag", "must be between 1 and 65535, not 0"}}},
		{"secret reuse", `"chap_password": "h1-secret-long",`,
			`"chap_password": "h1-secret-long", "chap_mutual_userid": "t", "chap_mutual_password": "h1-secret-long",`,
			[]wantErr{{0, "targets[0].tpgs[0].node_acls[0].chap_mutual_password", "must differ from chap_secret"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(lioBase, tt.old, tt.new, 1)
			require.NotEqual(t, lioBase, doc)
			cfg, _, err := ImportLIO([]byte(doc))
			assert.Nil(t, cfg)
			requireErrors(t, err, tt.want)
		})
	}
}
