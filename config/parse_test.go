package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseExample(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	require.NoError(t, err)
	cfg, err := Parse(data)
	require.NoError(t, err)

	require.Len(t, cfg.Backstores, 3)
	assert.Equal(t, Backstore{
		Name: "disk0", Type: TypeFile, Path: "/var/lib/odxtgt/disk0.img", Size: 10 << 30,
		BlockSize: 512, PhysicalBlockSize: 4096, Serial: DefaultSerial("disk0"), Product: "disk0", WriteCache: true, Line: 3,
	}, cfg.Backstores[0])
	assert.Equal(t, Backstore{
		Name: "fast", Type: TypeBlock, Path: "/dev/nvme0n1", BlockSize: 4096,
		Serial: "6f1c2a9e-0d5b-4c1e-9a77-3e2b8f40c001", Product: "NVMe pool", Direct: true, Line: 8,
	}, cfg.Backstores[1])
	assert.Equal(t, Backstore{
		Name: "scratch", Type: TypeMemory, Size: 256 << 20, BlockSize: 512,
		Serial: DefaultSerial("scratch"), Product: "scratch", ReadOnly: true, WriteCache: true, Line: 16,
	}, cfg.Backstores[2])

	require.Len(t, cfg.Targets, 2)
	t1 := cfg.Targets[0]
	assert.Equal(t, "iqn.2025-01.io.odxtgt:t1", t1.IQN)
	assert.Equal(t, "Test target", t1.Alias)
	assert.Equal(t, 22, t1.Line)
	assert.Equal(t, []TPG{{
		Tag:     1,
		Portals: []string{"127.0.0.1:3260", "[::1]:3260", "192.0.2.10:3260"},
		LUNs:    []LUN{{0, "disk0"}, {1, "scratch"}},
		Auth:    &Auth{ChapUser: "tuser", ChapSecret: "target secret 1"},
		ACLs: []ACL{
			{Initiator: "iqn.1994-05.com.redhat:abc", LUNs: []uint64{0}},
			{Initiator: "iqn.1991-05.com.microsoft:winhost", Auth: &Auth{
				ChapUser: "win", ChapSecret: "windows secret", MutualUser: "tgt", MutualSecret: "mutual secret 1",
			}},
		},
	}}, t1.TPGs)

	t2 := cfg.Targets[1]
	assert.Equal(t, "eui.0123456789abcdef", t2.IQN)
	assert.Equal(t, []TPG{
		{Tag: 1, Portals: []string{"0.0.0.0:3260"}, LUNs: []LUN{{0, "fast"}}},
		{Tag: 2, Portals: []string{"[::]:3261"}, LUNs: []LUN{{5, "disk0"}}},
	}, t2.TPGs)
}

// minimal is a valid configuration that the error tests below break.
const minimal = `backstores:
  - name: d
    type: memory
    size: 1MiB
targets:
  - iqn: iqn.2025-01.io.odxtgt:t
    portals: [127.0.0.1]
    luns: [{lun: 0, backstore: d}]
`

func TestParseMinimal(t *testing.T) {
	cfg, err := Parse([]byte(minimal))
	require.NoError(t, err)
	assert.Equal(t, []TPG{{Tag: 1, Portals: []string{"127.0.0.1:3260"}, LUNs: []LUN{{0, "d"}}}}, cfg.Targets[0].TPGs)
}

// wantErr is one expected FieldError: exact line and path, and a fragment
// of the message.
type wantErr struct {
	line int
	path string
	msg  string
}

// requireErrors checks that err lists exactly the wanted problems, in order.
func requireErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	var errs Errors
	require.ErrorAs(t, err, &errs)
	got := make([]string, len(errs))
	for i, e := range errs {
		got[i] = e.Error()
	}
	require.Len(t, errs, len(want), "errors:\n%s", strings.Join(got, "\n"))
	for i, w := range want {
		assert.Equal(t, w.line, errs[i].Line, "error %d: %s", i, got[i])
		assert.Equal(t, w.path, errs[i].Path, "error %d: %s", i, got[i])
		assert.Contains(t, errs[i].Msg, w.msg, "error %d: %s", i, got[i])
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []wantErr
	}{
		{"empty", "", []wantErr{{0, "", "configuration is empty"}}},
		{"comments only", "# nothing\n", []wantErr{{0, "", "configuration is empty"}}},
		{"not a mapping", "- a\n", []wantErr{{1, "", "must be a mapping, got a list"}}},
		{"syntax", "targets: [\n", []wantErr{{1, "", "YAML syntax: did not find expected node content"}}},
		{"two documents", minimal + "---\ntargets: []\n", []wantErr{{9, "", "only one YAML document"}}},
		{"no targets", "backstores: []\n", []wantErr{{1, "targets", "at least one target is required"}}},
		{"unknown top-level key", minimal + "backstore: []\n",
			[]wantErr{{9, "backstore", `unknown key (did you mean "backstores"?)`}}},
		{"unknown key without suggestion", strings.Replace(minimal, "    size: 1MiB\n", "    size: 1MiB\n    colour: red\n", 1),
			[]wantErr{{5, "backstores[0].colour", "unknown key (expected one of: name, type, path"}}},
		{"duplicate key", strings.Replace(minimal, "    size: 1MiB\n", "    size: 1MiB\n    size: 2MiB\n", 1),
			[]wantErr{{5, "backstores[0].size", "duplicate key (first given at line 4)"}}},
		{"alias", "x: &a {}\n" + minimal, []wantErr{{1, "x", "unknown key"}}},
		{"alias use", strings.Replace(minimal, "  - iqn: iqn.2025-01.io.odxtgt:t\n", "  - iqn: &n iqn.2025-01.io.odxtgt:t\n    alias: *n\n", 1),
			[]wantErr{{7, "targets[0].alias", "YAML aliases are not supported"}}},
		{"wrong type string", strings.Replace(minimal, "name: d", "name: 12", 1) + "",
			[]wantErr{{2, "backstores[0].name", "must be a string, got an integer (quote the value)"}, {8, "targets[0].luns[0].backstore", `unknown backstore "d"`}}},
		{"wrong type bool", strings.Replace(minimal, "    size: 1MiB\n", "    size: 1MiB\n    readonly: yes\n", 1),
			[]wantErr{{5, "backstores[0].readonly", "must be true or false, got a string"}}},
		{"wrong type list", strings.Replace(minimal, "portals: [127.0.0.1]", "portals: 127.0.0.1", 1),
			[]wantErr{{7, "targets[0].portals", "must be a list, got a string"}}},
		{"null value", strings.Replace(minimal, "type: memory", "type:", 1),
			[]wantErr{{3, "backstores[0].type", "must be a string, got null"}}},
		{"backstore not a mapping", strings.Replace(minimal, "targets:", "  - just-a-name\ntargets:", 1),
			[]wantErr{{5, "backstores[1]", "must be a mapping, got a string"}}},

		{"missing name", strings.Replace(minimal, "  - name: d\n    type", "  - type", 1),
			[]wantErr{{2, "backstores[0].name", "required"}, {7, "targets[0].luns[0].backstore", `unknown backstore "d"`}}},
		{"bad name", strings.Replace(minimal, "name: d", "name: d/1", 1),
			[]wantErr{{2, "backstores[0].name", `character '/' not allowed`}, {8, "targets[0].luns[0].backstore", `unknown backstore "d"`}}},
		{"duplicate name", strings.Replace(minimal, "targets:", "  - {name: d, type: memory, size: 1MiB, serial: x}\ntargets:", 1),
			[]wantErr{{5, "backstores[1].name", `duplicate backstore name "d" (already used by backstores[0])`}}},
		{"missing type", strings.Replace(minimal, "    type: memory\n", "", 1),
			[]wantErr{{2, "backstores[0].type", "required (file, block or memory)"}}},
		{"unknown type", strings.Replace(minimal, "type: memory", "type: tape", 1),
			[]wantErr{{3, "backstores[0].type", `unknown type "tape"`}}},
		{"memory with path", strings.Replace(minimal, "type: memory", "type: memory\n    path: /x", 1),
			[]wantErr{{4, "backstores[0].path", "not allowed for type memory"}}},
		{"memory without size", strings.Replace(minimal, "    size: 1MiB\n", "", 1),
			[]wantErr{{2, "backstores[0].size", "required for type memory"}}},
		{"file without path", strings.Replace(minimal, "type: memory", "type: file", 1),
			[]wantErr{{2, "backstores[0].path", "required for types file and block"}}},
		{"relative path", strings.Replace(minimal, "type: memory\n    size: 1MiB", "type: file\n    path: disk.img", 1),
			[]wantErr{{4, "backstores[0].path", `must be an absolute path, not "disk.img"`}}},
		{"shared path", strings.Replace(minimal, "type: memory\n    size: 1MiB", "type: block\n    path: /dev/sdb\n  - {name: e, type: file, path: /dev//sdb}", 1),
			[]wantErr{{5, "backstores[1].path", `"/dev//sdb" is already used by backstores[0]`}}},
		{"block with size", strings.Replace(minimal, "type: memory", "type: block\n    path: /dev/sdb", 1),
			[]wantErr{{5, "backstores[0].size", "not allowed for type block"}}},
		{"direct on memory", strings.Replace(minimal, "    size: 1MiB\n", "    size: 1MiB\n    direct: true\n", 1),
			[]wantErr{{5, "backstores[0].direct", "only valid for type block"}}},
		{"physical block size on memory", strings.Replace(minimal, "    size: 1MiB\n", "    size: 1MiB\n    physical_block_size: 4096\n", 1),
			[]wantErr{{5, "backstores[0].physical_block_size", "only valid for type file"}}},
		{"physical block size not a power of two", strings.Replace(minimal, "type: memory\n    size: 1MiB", "type: file\n    path: /d.img\n    physical_block_size: 3072", 1),
			[]wantErr{{5, "backstores[0].physical_block_size", "must be a power of two from block_size 512 to 65536, not 3072"}}},
		{"physical block size below block size", strings.Replace(minimal, "type: memory\n    size: 1MiB", "type: file\n    path: /d.img\n    block_size: 4096\n    physical_block_size: 512", 1),
			[]wantErr{{6, "backstores[0].physical_block_size", "must be a power of two from block_size 4096 to 65536, not 512"}}},
		{"physical block size too large", strings.Replace(minimal, "type: memory\n    size: 1MiB", "type: file\n    path: /d.img\n    physical_block_size: 131072", 1),
			[]wantErr{{5, "backstores[0].physical_block_size", "must be from 512 to 65536, not 131072"}}},
		{"physical block size negative", strings.Replace(minimal, "type: memory\n    size: 1MiB", "type: file\n    path: /d.img\n    physical_block_size: -4096", 1),
			[]wantErr{{5, "backstores[0].physical_block_size", "must be from 512 to 65536, not -4096"}}},
		{"size unit", strings.Replace(minimal, "size: 1MiB", "size: 1mb", 1),
			[]wantErr{{4, "backstores[0].size", `unknown unit "mb"`}}},
		{"size zero", strings.Replace(minimal, "size: 1MiB", "size: 0", 1),
			[]wantErr{{4, "backstores[0].size", "must be greater than 0"}}},
		{"size negative", strings.Replace(minimal, "size: 1MiB", "size: -512", 1),
			[]wantErr{{4, "backstores[0].size", "must be greater than 0"}}},
		{"size float", strings.Replace(minimal, "size: 1MiB", "size: 1.5", 1),
			[]wantErr{{4, "backstores[0].size", `must be a byte count or a size such as "10GiB", got a number`}}},
		{"size not multiple", strings.Replace(minimal, "size: 1MiB", "size: 1000", 1),
			[]wantErr{{4, "backstores[0].size", "1000 bytes is not a multiple of block_size 512"}}},
		{"size not multiple of 4096", strings.Replace(minimal, "size: 1MiB", "size: 1536\n    block_size: 4096", 1),
			[]wantErr{{4, "backstores[0].size", "1536 bytes is not a multiple of block_size 4096"}}},
		{"block size", strings.Replace(minimal, "size: 1MiB", "size: 1MiB\n    block_size: 1024", 1),
			[]wantErr{{5, "backstores[0].block_size", "must be 512 or 4096, not 1024"}}},
		{"serial", strings.Replace(minimal, "size: 1MiB", "size: 1MiB\n    serial: \" abc\"", 1),
			[]wantErr{{5, "backstores[0].serial", "must not start or end with a space"}}},
		{"serial non-ASCII", strings.Replace(minimal, "size: 1MiB", "size: 1MiB\n    serial: \"séria\"", 1),
			[]wantErr{{5, "backstores[0].serial", "printable ASCII only"}}},
		{"duplicate serial", strings.Replace(minimal, "targets:", "  - {name: e, type: memory, size: 1MiB, serial: \""+DefaultSerial("d")+"\"}\ntargets:", 1),
			[]wantErr{{5, "backstores[1].serial", "already used by backstores[0]"}}},
		{"product too long", strings.Replace(minimal, "size: 1MiB", "size: 1MiB\n    product: 12345678901234567", 1),
			[]wantErr{{5, "backstores[0].product", "must be a string, got an integer"}}},
		{"product too long string", strings.Replace(minimal, "size: 1MiB", "size: 1MiB\n    product: abcdefghijklmnopq", 1),
			[]wantErr{{5, "backstores[0].product", "longer than 16 characters"}}},

		{"missing iqn", strings.Replace(minimal, "  - iqn: iqn.2025-01.io.odxtgt:t\n    portals", "  - portals", 1),
			[]wantErr{{6, "targets[0].iqn", "required"}}},
		{"uppercase iqn", strings.Replace(minimal, "odxtgt:t", "odxtgt:T", 1),
			[]wantErr{{6, "targets[0].iqn", `must be lowercase (iSCSI names are case-folded, RFC 3722): "iqn.2025-01.io.odxtgt:t"`}}},
		{"bad iqn date", strings.Replace(minimal, "iqn.2025-01", "iqn.2025-13", 1),
			[]wantErr{{6, "targets[0].iqn", "month 13 out of range"}}},
		{"duplicate iqn", minimal + "  - {iqn: iqn.2025-01.io.odxtgt:t, portals: [127.0.0.2]}\n",
			[]wantErr{{9, "targets[1].iqn", `duplicate target "iqn.2025-01.io.odxtgt:t" (already defined by targets[0])`}}},
		{"empty alias", strings.Replace(minimal, "    portals:", "    alias: \"\"\n    portals:", 1),
			[]wantErr{{7, "targets[0].alias", "must not be empty (omit alias for none)"}}},
		{"alias with NUL", strings.Replace(minimal, "    portals:", "    alias: \"a\\0b\"\n    portals:", 1),
			[]wantErr{{7, "targets[0].alias", "must not contain NUL"}}},
		{"no portals", strings.Replace(minimal, "    portals: [127.0.0.1]\n", "", 1),
			[]wantErr{{6, "targets[0].portals", "at least one portal is required"}}},
		{"hostname portal", strings.Replace(minimal, "[127.0.0.1]", "[localhost:3260]", 1),
			[]wantErr{{7, "targets[0].portals[0]", `invalid portal "localhost:3260"`}}},
		{"port out of range", strings.Replace(minimal, "[127.0.0.1]", "[\"127.0.0.1:65536\"]", 1),
			[]wantErr{{7, "targets[0].portals[0]", "want an IP address and optional port"}}},
		{"unbracketed IPv6 with port", strings.Replace(minimal, "[127.0.0.1]", "[\"::1:3260:x\"]", 1),
			[]wantErr{{7, "targets[0].portals[0]", "want an IP address and optional port"}}},
		{"duplicate portal", strings.Replace(minimal, "[127.0.0.1]", "[127.0.0.1, \"127.0.0.1:3260\"]", 1),
			[]wantErr{{7, "targets[0].portals[1]", "duplicate portal 127.0.0.1:3260 (already listed at targets[0].portals[0])"}}},
		{"lun out of range", strings.Replace(minimal, "lun: 0", "lun: 16384", 1),
			[]wantErr{{8, "targets[0].luns[0].lun", "must be between 0 and 16383"}}},
		{"lun negative", strings.Replace(minimal, "lun: 0", "lun: -1", 1),
			[]wantErr{{8, "targets[0].luns[0].lun", "must be between 0 and 16383"}}},
		{"lun missing", strings.Replace(minimal, "lun: 0, ", "", 1),
			[]wantErr{{8, "targets[0].luns[0].lun", "required"}}},
		{"duplicate lun", strings.Replace(minimal, "[{lun: 0, backstore: d}]", "[{lun: 0, backstore: d}, {lun: 0, backstore: d}]", 1),
			[]wantErr{{8, "targets[0].luns[1].lun", "duplicate LUN 0 (already at targets[0].luns[0])"}}},
		{"unknown backstore", strings.Replace(minimal, "backstore: d}", "backstore: e}", 1),
			[]wantErr{{8, "targets[0].luns[0].backstore", `unknown backstore "e"`}}},
		{"mixed forms", minimal + "    tpgs: [{tag: 2, portals: [127.0.0.1]}]\n",
			[]wantErr{{7, "targets[0].portals", "cannot be combined with tpgs"}, {8, "targets[0].luns", "cannot be combined with tpgs"}}},
		{"tpg tag", strings.Replace(minimal, "    portals: [127.0.0.1]\n    luns: [{lun: 0, backstore: d}]\n",
			"    tpgs:\n      - {tag: 0, portals: [127.0.0.1]}\n      - {portals: [127.0.0.2]}\n      - {tag: 70000, portals: [127.0.0.3]}\n", 1),
			[]wantErr{{8, "targets[0].tpgs[0].tag", "must be between 1 and 65535"}, {9, "targets[0].tpgs[1].tag", "required (1..65535)"}, {10, "targets[0].tpgs[2].tag", "must be between 1 and 65535"}}},
		{"duplicate tpg tag", strings.Replace(minimal, "    portals: [127.0.0.1]\n    luns: [{lun: 0, backstore: d}]\n",
			"    tpgs:\n      - {tag: 1, portals: [127.0.0.1]}\n      - {tag: 1, portals: [127.0.0.2]}\n", 1),
			[]wantErr{{9, "targets[0].tpgs[1].tag", "duplicate tag 1 (already used by targets[0].tpgs[0])"}}},
		{"empty tpgs", strings.Replace(minimal, "    portals: [127.0.0.1]\n    luns: [{lun: 0, backstore: d}]\n", "    tpgs: []\n", 1),
			[]wantErr{{7, "targets[0].tpgs", "at least one portal group is required"}}},
		{"portal in two tpgs", strings.Replace(minimal, "    portals: [127.0.0.1]\n    luns: [{lun: 0, backstore: d}]\n",
			"    tpgs:\n      - {tag: 1, portals: [127.0.0.1]}\n      - {tag: 2, portals: [127.0.0.1]}\n", 1),
			[]wantErr{{9, "targets[0].tpgs[1].portals[0]", "duplicate portal 127.0.0.1:3260 (already listed at targets[0].tpgs[0].portals[0])"}}},
		{"wildcard overlaps", strings.Replace(minimal, "    portals: [127.0.0.1]\n    luns: [{lun: 0, backstore: d}]\n",
			"    tpgs:\n      - {tag: 1, portals: [0.0.0.0]}\n      - {tag: 2, portals: [127.0.0.1, \"127.0.0.1:3261\"]}\n", 1),
			[]wantErr{{9, "targets[0].tpgs[1].portals[0]", "overlaps 0.0.0.0:3260 of another portal group (targets[0].tpgs[0])"}}},

		{"auth missing fields", minimal + "    auth: {}\n",
			[]wantErr{{9, "targets[0].auth.chap_user", "required"}, {9, "targets[0].auth.chap_secret", "required"}}},
		{"short secret", minimal + "    auth: {chap_user: u, chap_secret: short}\n",
			[]wantErr{{9, "targets[0].auth.chap_secret", "must be at least 12 bytes, got 5"}}},
		{"long secret", minimal + "    auth: {chap_user: u, chap_secret: " + strings.Repeat("s", 256) + "}\n",
			[]wantErr{{9, "targets[0].auth.chap_secret", "must be at most 255 bytes, got 256"}}},
		{"mutual without user", minimal + "    auth: {chap_user: u, chap_secret: 123456789012x, mutual_secret: abcdefghijklm}\n",
			[]wantErr{{9, "targets[0].auth.mutual_user", "required"}}},
		{"mutual same secret", minimal + "    auth: {chap_user: u, chap_secret: 123456789012x, mutual_user: m, mutual_secret: 123456789012x}\n",
			[]wantErr{{9, "targets[0].auth.mutual_secret", "must differ from chap_secret"}}},
		{"secret reused across directions", minimal + "    auth: {chap_user: u, chap_secret: 123456789012x}\n" +
			"    acls:\n      - initiator: iqn.2001-04.com.example:host\n        auth: {chap_user: v, chap_secret: abcdefghijklm, mutual_user: m, mutual_secret: 123456789012x}\n",
			[]wantErr{{12, "targets[0].acls[0].auth.mutual_secret", "same secret as targets[0].auth.chap_secret"}}},
		{"empty acls", minimal + "    acls: []\n",
			[]wantErr{{9, "targets[0].acls", "must not be empty (omit acls to let any initiator log in)"}}},
		{"acl errors", minimal + "    acls:\n      - initiator: iqn.2001-04.com.example\n        luns: []\n" +
			"      - {initiator: iqn.2001-04.com.example, luns: [0, 0, 3, x]}\n      - {luns: [0]}\n      - {initiator: host1}\n",
			[]wantErr{
				{11, "targets[0].acls[0].luns", "must not be empty (omit luns to grant every LUN)"},
				{12, "targets[0].acls[1].initiator", `duplicate initiator "iqn.2001-04.com.example" (already at targets[0].acls[0])`},
				{12, "targets[0].acls[1].luns[1]", "duplicate LUN 0"},
				{12, "targets[0].acls[1].luns[2]", "LUN 3 is not in the luns of this portal group"},
				{12, "targets[0].acls[1].luns[3]", "must be an integer, got a string"},
				{13, "targets[0].acls[2].initiator", "required"},
				{14, "targets[0].acls[3].initiator", "must start with iqn., eui. or naa."},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml))
			assert.Nil(t, cfg)
			requireErrors(t, err, tt.want)
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	const yaml = `backstores:
  - name: "bad name"
    type: tape
    size: 10Gb
    colour: red
  - {name: x, type: file, path: rel, direct: true, size: 1000}
targets:
  - iqn: IQN.2025-01.com.x
    portals:
      - 127.0.0.1
      - localhost
    luns:
      - {lun: 0, backstore: nope}
      - {lun: 0, backstore: x}
    auth: {chap_user: a, chap_secret: b}
`
	_, err := Parse([]byte(yaml))
	requireErrors(t, err, []wantErr{
		{2, "backstores[0].name", "character ' ' not allowed"},
		{3, "backstores[0].type", `unknown type "tape"`},
		{4, "backstores[0].size", `unknown unit "Gb"`},
		{5, "backstores[0].colour", "unknown key"},
		{6, "backstores[1].path", `must be an absolute path, not "rel"`},
		{6, "backstores[1].direct", "only valid for type block"},
		{6, "backstores[1].size", "1000 bytes is not a multiple of block_size 512"},
		{8, "targets[0].iqn", "must be lowercase"},
		{11, "targets[0].portals[1]", `invalid portal "localhost"`},
		{13, "targets[0].luns[0].backstore", `unknown backstore "nope"`},
		{14, "targets[0].luns[1].lun", "duplicate LUN 0 (already at targets[0].luns[0])"},
		{15, "targets[0].auth.chap_secret", "must be at least 12 bytes, got 1"},
	})
	assert.Equal(t, `line 2: backstores[0].name: character ' ' not allowed (use A-Z, a-z, 0-9, '_', '.', '-')`,
		strings.SplitN(err.Error(), "\n", 2)[0])
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte(minimal), 0o600))
	cfg, err := Load(good)
	require.NoError(t, err)
	assert.Equal(t, "d", cfg.Backstores[0].Name)

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(minimal, "size: 1MiB", "size: 1mb", 1)), 0o600))
	_, err = Load(bad)
	var errs Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1)
	assert.Equal(t, bad+`: line 4: backstores[0].size: invalid size "1mb": unknown unit "mb" `+
		`(use B, KiB, MiB, GiB, TiB, K, M, G, T, KB, MB, GB or TB)`, errs[0].Error())

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`backstores:
  - {name: a-very-long-backstore-name, type: file, path: /srv/a.img}
targets:
  - iqn: naa.60014051234567890123456789abcdef
    portals: ["[2001:db8::1]"]
`))
	require.NoError(t, err)
	b := cfg.Backstores[0]
	assert.Equal(t, int64(0), b.Size, "file size comes from the existing file")
	assert.Equal(t, 512, b.BlockSize)
	assert.True(t, b.WriteCache)
	assert.Equal(t, "a-very-long-back", b.Product)
	assert.Equal(t, DefaultSerial("a-very-long-backstore-name"), b.Serial)
	assert.Equal(t, []TPG{{Tag: 1, Portals: []string{"[2001:db8::1]:3260"}}}, cfg.Targets[0].TPGs)
}

func TestDefaultSerial(t *testing.T) {
	s := DefaultSerial("disk0")
	assert.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, s)
	assert.Equal(t, s, DefaultSerial("disk0"), "stable")
	assert.NotEqual(t, s, DefaultSerial("disk1"))
	// Pinned: changing the derivation would change the identity of every
	// logical unit that relies on it.
	assert.Equal(t, "3be68065-14b3-8359-a81c-6af795dbdcc8", s)
}

func TestDefault(t *testing.T) {
	cfg := Default("/var/lib/odxtgt")
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "/var/lib/odxtgt/demo.img", cfg.Backstores[0].Path)
	assert.Equal(t, int64(1<<30), cfg.Backstores[0].Size)
	assert.Equal(t, DemoIQN, cfg.Targets[0].IQN)
	assert.Equal(t, []TPG{{Tag: 1, Portals: []string{"127.0.0.1:3260"}, LUNs: []LUN{{0, "demo"}}}}, cfg.Targets[0].TPGs)

	out, err := cfg.Marshal()
	require.NoError(t, err)
	back, err := Parse(out)
	require.NoError(t, err)
	assert.Equal(t, cfg, clearLines(back))
}

func TestParseOddYAML(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []wantErr
	}{
		{"complex key", minimal + "? [a]\n: b\n", []wantErr{{9, "", "keys must be plain strings, got a list"}}},
		{"merge key", "base: &b {type: memory}\n" + minimal, []wantErr{{1, "base", "unknown key"}}},
		{"explicit bad bool", strings.Replace(minimal, "size: 1MiB", "size: 1MiB\n    readonly: !!bool maybe", 1),
			[]wantErr{{5, "backstores[0].readonly", "must be true or false"}}},
		{"explicit bad int", strings.Replace(minimal, "lun: 0", "lun: !!int zero", 1),
			[]wantErr{{8, "targets[0].luns[0].lun", "integer out of range"}}},
		{"huge int", strings.Replace(minimal, "lun: 0", "lun: 99999999999999999999", 1),
			[]wantErr{{8, "targets[0].luns[0].lun", "must be an integer, got a number"}}},
		{"explicit string", strings.Replace(minimal, "size: 1MiB", "size: 1MiB\n    serial: !!str 12345", 1), nil},
		{"timestamp", strings.Replace(minimal, "size: 1MiB", "size: 1MiB\n    serial: 2025-01-02", 1),
			[]wantErr{{5, "backstores[0].serial", "must be a string, got a timestamp (quote the value)"}}},
		{"custom tag", strings.Replace(minimal, "name: d", "name: !secret d", 1),
			[]wantErr{{2, "backstores[0].name", "must be a string, got a value tagged !secret"}, {8, "targets[0].luns[0].backstore", `unknown backstore "d"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			requireErrors(t, err, tt.want)
		})
	}
}

func TestParseCopy(t *testing.T) {
	src := "targets:\n  - iqn: iqn.2025-01.io.odxtgt:t\n    portals: [\"127.0.0.1:3260\"]\ncopy:\n  cross_target: true\n"
	cfg, err := Parse([]byte(src))
	require.NoError(t, err)
	assert.True(t, cfg.Copy.CrossTarget)
	out, err := cfg.Marshal()
	require.NoError(t, err)
	again, err := Parse(out)
	require.NoError(t, err)
	assert.True(t, again.Copy.CrossTarget)

	_, err = Parse([]byte(src + "  bogus: 1\n"))
	assert.ErrorContains(t, err, "line 6")
	_, err = Parse([]byte(strings.Replace(src, "true", "maybe", 1)))
	assert.ErrorContains(t, err, "copy.cross_target")
}

func TestParseLimits(t *testing.T) {
	src := "targets:\n  - iqn: iqn.2025-01.io.odxtgt:t\n    portals: [\"127.0.0.1:3260\"]\nlimits:\n  max_connections: 10\n  login_timeout: 5\n  data_out_budget: 64MiB\n"
	cfg, err := Parse([]byte(src))
	require.NoError(t, err)
	assert.Equal(t, Limits{MaxConnections: 10, LoginTimeout: 5, DataOutBudget: 64 << 20}, cfg.Limits)
	out, err := cfg.Marshal()
	require.NoError(t, err)
	again, err := Parse(out)
	require.NoError(t, err)
	assert.Equal(t, cfg.Limits, again.Limits)
	for _, bad := range []string{"  max_connections: 0\n", "  data_out_budget: 1MiB\n", "  login_timeout: 99999\n", "  bogus: 1\n"} {
		_, err := Parse([]byte(strings.SplitAfter(src, "limits:\n")[0] + bad))
		assert.Error(t, err, bad)
	}
}

func TestParseTokens(t *testing.T) {
	src := "targets:\n  - iqn: iqn.2025-01.io.odxtgt:t\n    portals: [\"127.0.0.1:3260\"]\ntokens:\n  scope: initiator\n  snapshot_dir: /var/tmp/snap\n  snapshot_space: 2GiB\n  default_timeout: 30\n  max_timeout: 120\n  key_file: /etc/odxtgt/token.key\n"
	cfg, err := Parse([]byte(src))
	require.NoError(t, err)
	assert.Equal(t, Tokens{Scope: ScopeInitiator, SnapshotDir: "/var/tmp/snap", SnapshotSpace: 2 << 30, DefaultTimeout: 30, MaxTimeout: 120,
		KeyFile: "/etc/odxtgt/token.key"}, cfg.Tokens)
	out, err := cfg.Marshal()
	require.NoError(t, err)
	again, err := Parse(out)
	require.NoError(t, err)
	assert.Equal(t, cfg.Tokens, again.Tokens)
	head := strings.SplitAfter(src, "tokens:\n")[0]
	for _, bad := range []string{"  scope: everyone\n", "  snapshot_dir: relative\n", "  key_file: token.key\n", "  default_timeout: 0\n", "  default_timeout: 100\n  max_timeout: 50\n"} {
		_, err := Parse([]byte(head + bad))
		assert.Error(t, err, bad)
	}
}

// TestParseTokenBudgets: tokens.write_budget is seconds, whole or not,
// more than 0 and at most 3.5 (Windows gives a command 4 s);
// tokens.max_tokens is 1..16384. Both survive Marshal.
func TestParseTokenBudgets(t *testing.T) {
	head := "targets:\n  - iqn: iqn.2025-01.io.odxtgt:t\n    portals: [\"127.0.0.1:3260\"]\ntokens:\n"
	for _, good := range []struct {
		yaml   string
		budget time.Duration
		tokens int64
	}{
		{"  write_budget: 2\n  max_tokens: 1\n", 2 * time.Second, 1},
		{"  write_budget: 0.5\n", 500 * time.Millisecond, 0},
		{"  write_budget: 3.5\n  max_tokens: 16384\n", 3500 * time.Millisecond, 16384},
		{"  write_budget: 0.000000001\n", time.Nanosecond, 0},
		{"  write_budget: 1.25\n  max_tokens: 4096\n", 1250 * time.Millisecond, 4096},
	} {
		cfg, err := Parse([]byte(head + good.yaml))
		require.NoError(t, err, good.yaml)
		assert.Equal(t, Tokens{Scope: ScopeAny, WriteBudget: good.budget, MaxTokens: good.tokens}, cfg.Tokens, good.yaml)
		out, err := cfg.Marshal()
		require.NoError(t, err)
		again, err := Parse(out)
		require.NoError(t, err, "%s", out)
		assert.Equal(t, cfg.Tokens, again.Tokens, "%s", out)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"  write_budget: 4\n", "line 5: tokens.write_budget: must be more than 0 and at most 3.5 seconds (Windows aborts a command after 4 s), not 4"},
		{"  write_budget: 3.6\n", "line 5: tokens.write_budget: must be more than 0 and at most 3.5 seconds"},
		{"  scope: any\n  write_budget: 0\n", "line 6: tokens.write_budget: must be more than 0"},
		{"  write_budget: -1\n", "line 5: tokens.write_budget: must be more than 0"},
		{"  write_budget: 0.0000000001\n", "line 5: tokens.write_budget: must be more than 0"},
		{"  write_budget: .inf\n", "line 5: tokens.write_budget: must be a number of seconds such as 2 or 0.5, not .inf"},
		{"  write_budget: 2s\n", "line 5: tokens.write_budget: must be a number of seconds such as 2 or 0.5, got a string"},
		{"  write_budget: [2]\n", "line 5: tokens.write_budget: must be a number of seconds such as 2 or 0.5, got a list"},
		{"  max_tokens: 0\n", "line 5: tokens.max_tokens: must be 1 to 16384, not 0"},
		{"  scope: any\n  max_tokens: 16385\n", "line 6: tokens.max_tokens: must be 1 to 16384, not 16385"},
		{"  max_tokens: 1.5\n", "line 5: tokens.max_tokens: must be an integer"},
	} {
		_, err := Parse([]byte(head + bad.yaml))
		require.Error(t, err, bad.yaml)
		assert.Contains(t, err.Error(), bad.want, bad.yaml)
	}
}
