package config

import (
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// survives a Marshal/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/example.yaml", "testdata/saveconfig.golden.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte("targets:\n  - iqn: eui.0123456789abcdef\n    tpgs: [{tag: 2, portals: ['[::]'], acls: [{initiator: naa.0123456789abcdef}]}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("backstores: [{name: a, size: 10GiB, block_size: 4096}]\n---\n"))
	f.Add([]byte(minimal + "tokens: {write_budget: 0.25, max_tokens: 8, default_timeout: 5}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		out, err := cfg.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed configuration: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of Marshal output: %v\n%s", err, out)
		}
		again, err := back.Marshal()
		if err != nil || string(again) != string(out) {
			t.Fatalf("Marshal not stable (%v):\n%s\n---\n%s", err, out, again)
		}
	})
}

// FuzzImportLIO checks that ImportLIO never panics and that what it
// returns can be written and read back.
func FuzzImportLIO(f *testing.F) {
	data, err := os.ReadFile("testdata/saveconfig.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(lioBase))
	f.Add([]byte(`{"storage_objects": [{"plugin": "ramdisk", "name": "r", "size": 4096}], "targets": [{"fabric": "iscsi",
		"wwn": "naa.5001405abcdef012", "tpgs": [{"tag": 3, "attributes": {"generate_node_acls": "1"},
		"portals": [{"ip_address": "::", "port": 3260}], "luns": [{"index": 0, "storage_object": "/backstores/rd_mcp/r"}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, err := ImportLIO(data)
		if err != nil {
			return
		}
		out, err := cfg.Marshal()
		if err != nil {
			t.Fatalf("Marshal of an imported configuration: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("Parse of imported configuration: %v\n%s", err, out)
		}
	})
}
