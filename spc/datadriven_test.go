package spc

import (
	"bufio"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/sbc"
	"github.com/odxtgt/odxtgt/scsi"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output in testdata files")

// TestDataDriven runs the scripts in testdata. Each case is a directive
// line, optional input lines, a "----" line and the expected output up to
// a blank line; lines starting with # between cases are comments. With
// -rewrite the expected output is replaced by the actual output.
//
// Directives:
//
//	lu [lun=N] [blocks=N] [bs=N] [serial=S] [product=S] [wce] [readonly] [add]
//	    builds a logical unit (memory backstore) at LUN N with the spc
//	    command table plus a test WRITE (10) that writes the medium. Without
//	    add it starts a new environment: two I_T nexuses, "a" and "b", to
//	    the same target port. Output: none.
//	cdb [nexus=a|b] [lun=N] <hex bytes>
//	    runs a command through scsi.Submit; the input lines are the
//	    data-out buffer in hex. Output: status, then sense (decoded and raw)
//	    or data-in (hex dump).
//	mode [lun=N]
//	    prints the logical unit's mode state.
//	ua [lun=N] <ASC/ASCQ hex>
//	    establishes a unit attention for every nexus that has used the LU.
func TestDataDriven(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) { runScript(t, path) })
	}
}

// testCase is one directive with its input and expected output; text is
// the comment and blank lines that precede it.
type testCase struct {
	line      int
	text      []string
	directive string
	input     []string
	want      []string
}

func parseScript(t testing.TB, path string) (cases []testCase, trailer []string) {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	lineNo := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		lineNo++
		return sc.Text(), true
	}
	var pending []string
	for {
		l, ok := next()
		if !ok {
			break
		}
		if l == "" || strings.HasPrefix(l, "#") {
			pending = append(pending, l)
			continue
		}
		c := testCase{line: lineNo, text: pending, directive: l}
		pending = nil
		for {
			l, ok = next()
			require.True(t, ok, "%s:%d: case without ----", path, c.line)
			if l == "----" {
				break
			}
			c.input = append(c.input, l)
		}
		for {
			l, ok = next()
			if !ok || l == "" {
				break
			}
			c.want = append(c.want, l)
		}
		cases = append(cases, c)
	}
	require.NoError(t, sc.Err())
	return cases, pending
}

func runScript(t *testing.T, path string) {
	cases, trailer := parseScript(t, path)
	env := &testEnv{}
	var out strings.Builder
	failed := false
	for _, c := range cases {
		got := env.run(t, c)
		for _, l := range c.text {
			out.WriteString(l + "\n")
		}
		out.WriteString(c.directive + "\n")
		for _, l := range c.input {
			out.WriteString(l + "\n")
		}
		out.WriteString("----\n")
		for _, l := range got {
			out.WriteString(l + "\n")
		}
		out.WriteString("\n")
		if !*rewrite && strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			failed = true
			t.Errorf("%s:%d: %s\nwant:\n%s\ngot:\n%s", path, c.line, c.directive,
				strings.Join(c.want, "\n"), strings.Join(got, "\n"))
		}
	}
	for _, l := range trailer {
		if l != "" {
			out.WriteString(l + "\n")
		}
	}
	if *rewrite && !failed {
		require.NoError(t, os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644))
	}
}

// testEnv is the target a script talks to.
type testEnv struct {
	table   *scsi.Table
	lus     map[uint64]*scsi.LU
	absent  *scsi.LU
	nexuses map[string]*scsi.Nexus
}

const (
	testTarget = "iqn.2024-01.org.odxtgt:t1"
	testTPGT   = 1
)

// testWrite is a stand-in for the sbc WRITE (10): it only lets scripts
// see that software write protection refuses medium writes.
var testWrite = scsi.CommandDesc{
	Name: "WRITE (10)", Opcode: 0x2A,
	Usage:     []byte{0xFF, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0xFF, 0xFF, control},
	Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium,
	NominalTimeout: 1, RecommendedTimeout: 30,
	Handler: func(*scsi.Command) error { return nil },
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTable returns the spc command table plus testWrite and the block
// device VPD pages of sbc, so the pages are those of a whole disk.
func newTable(t testing.TB) *scsi.Table {
	table, err := scsi.NewTable(Commands(Options{}), scsi.CommandSet{Commands: []scsi.CommandDesc{testWrite}, VPDPages: sbc.Commands(sbc.Options{}).VPDPages})
	require.NoError(t, err)
	return table
}

// args splits a directive's words into key=value options and the rest
// (hex bytes or flags).
func args(words []string) (map[string]string, []string) {
	opts := map[string]string{}
	var rest []string
	for _, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok {
			opts[k] = v
		} else {
			rest = append(rest, w)
		}
	}
	return opts, rest
}

func intArg(t testing.TB, opts map[string]string, key string, def int64) int64 {
	v, ok := opts[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 0, 64)
	require.NoError(t, err, "%s=%s", key, v)
	return n
}

func (e *testEnv) run(t *testing.T, c testCase) []string {
	words := strings.Fields(c.directive)
	opts, rest := args(words[1:])
	switch words[0] {
	case "lu":
		e.addLU(t, opts, rest)
		return nil
	case "cdb":
		cdb := unhex(t, strings.Join(rest, " "))
		dataOut := unhex(t, strings.Join(c.input, " "))
		nexus := e.nexuses[cmpOr(opts["nexus"], "a")]
		require.NotNil(t, nexus, "%s: unknown nexus", c.directive)
		return describe(e.submit(nexus, uint64(intArg(t, opts, "lun", 0)), cdb, dataOut))
	case "mode":
		m := e.lus[uint64(intArg(t, opts, "lun", 0))].Mode()
		return []string{fmt.Sprintf("D_SENSE=%v WCE=%v SWP=%v", m.DSense, m.WCE, m.SWP)}
	case "ua":
		code, err := strconv.ParseUint(strings.Join(rest, ""), 16, 16)
		require.NoError(t, err)
		e.lus[uint64(intArg(t, opts, "lun", 0))].EstablishUA(scsi.ASC(code), "")
		return nil
	}
	t.Fatalf("line %d: unknown directive %q", c.line, words[0])
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (e *testEnv) addLU(t testing.TB, opts map[string]string, flags []string) {
	if !slices.Contains(flags, "add") || e.table == nil {
		e.table = newTable(t)
		e.lus = map[uint64]*scsi.LU{}
		e.absent = scsi.NewAbsentLU(e.table, discardLogger())
	}
	bs := intArg(t, opts, "bs", 512)
	serial, ok := opts["serial"]
	if !ok {
		serial = "c9d3e6f0-1a2b-4c5d-8e9f-0123456789ab"
	}
	wce := slices.Contains(flags, "wce")
	ro := slices.Contains(flags, "readonly")
	e.lus[uint64(intArg(t, opts, "lun", 0))] = scsi.NewLU(scsi.LUConfig{
		Identity: scsi.Identity{
			Name: "test", Vendor: DefaultVendor, Product: cmpOr(opts["product"], "disk0"),
			Revision: DefaultRevision, Serial: serial,
		},
		Store:      newStore(intArg(t, opts, "blocks", 2048)*bs, int(bs)),
		ReadOnly:   ro,
		WriteCache: wce,
		Table:      e.table,
		Logger:     discardLogger(),
	})
	e.nexuses = map[string]*scsi.Nexus{}
	for i, name := range []string{"a", "b"} {
		e.nexuses[name] = scsi.NewNexus(scsi.Nexus{
			InitiatorName:  "iqn.2024-01.org.example:" + name,
			InitiatorPort:  fmt.Sprintf("iqn.2024-01.org.example:%s,i,0x%012x", name, i+1),
			TargetName:     testTarget,
			TargetPort:     scsi.TargetPortName(testTarget, testTPGT),
			TPGT:           testTPGT,
			RelativePortID: 1,
		}, e.lus, e.absent)
	}
}

// newStore returns a memory store, or for capacities too large to hold in
// memory a store that only has a geometry: spc commands never touch the
// medium.
func newStore(size int64, bs int) backstore.Store {
	if size <= 64<<20 {
		return backstore.NewMemory(size, bs)
	}
	return geometryStore{size: size, bs: bs}
}

type geometryStore struct {
	size int64
	bs   int
}

var errNoMedium = errors.New("geometry-only store has no data")

func (s geometryStore) ReadAt([]byte, int64) error        { return errNoMedium }
func (s geometryStore) WriteAt([]byte, int64, bool) error { return errNoMedium }
func (s geometryStore) Sync() error                       { return nil }
func (s geometryStore) Size() int64                       { return s.size }
func (s geometryStore) BlockSize() int                    { return s.bs }
func (s geometryStore) Close() error                      { return nil }

// submit runs one command to completion.
func (e *testEnv) submit(n *scsi.Nexus, lun uint64, cdb, dataOut []byte) *scsi.Command {
	cmd := &scsi.Command{CDB: cdb, LUN: lun, Tag: 1, Attr: scsi.TaskSimple, Nexus: n, DataOut: dataOut, ExpectedIn: 1 << 16}
	done := make(chan struct{})
	scsi.Submit(cmd, func(*scsi.Command) { close(done) })
	<-done
	return cmd
}

// describe prints a finished command for a script.
func describe(cmd *scsi.Command) []string {
	out := []string{"status " + cmd.Status.String()}
	if cmd.Status == scsi.StatusCheckCondition {
		s, err := scsi.ParseSense(cmd.Sense)
		if err != nil {
			return append(out, "sense undecodable: "+err.Error())
		}
		s.Reason = ""
		return append(out, "sense "+s.Error(), "sense-data "+hex.EncodeToString(cmd.Sense))
	}
	if len(cmd.DataIn) > 0 {
		out = append(out, fmt.Sprintf("data %d bytes", len(cmd.DataIn)))
		out = append(out, strings.Split(strings.TrimRight(hex.Dump(cmd.DataIn), "\n"), "\n")...)
	}
	return out
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	require.NoError(t, err, "hex %q", s)
	return b
}
