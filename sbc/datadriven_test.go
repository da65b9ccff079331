package sbc_test

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of the testdata files")

// TestDataDriven runs the scripts in testdata/. Each script is a series of
// cases: optional '#' comment lines, a command line, "----", the expected
// output, and a blank line. -rewrite replaces the expected output with what
// the commands produce.
//
// Commands:
//
//	lu blocks=N bs=B [wce] [readonly] [plain] [spc]
//	                                     a fresh LU on a memory store; plain
//	                                     hides its optional capabilities,
//	                                     spc adds the primary commands
//	cdb <hex bytes> [out=PART[+PART...]]  submit a CDB with data-out made of
//	                                     parts N×BB (N bytes BB) and h:HEX
//	                                     (the bytes in hex, '_' ignored)
//	fill lba=L blocks=N byte=BB          write the store directly (FUA)
//	store lba=L blocks=N                 show the store's bytes
//	mode [wce] [dsense] [swp]            replace the mode state
//	fail read|write|sync|zero|unmap|allocated [lba=L blocks=N]
//	     [err=eio|enospc|notsup]
//	heal                                 remove injected failures
//	crash                                power loss: keep durable data only
//
// Output of cdb: the status; for CHECK CONDITION the decoded sense data;
// the data-out length the CDB called for when not zero; the data-in in hex
// (run-length encoded past 32 bytes, "5a*512").
func TestDataDriven(t *testing.T) {
	paths, err := filepath.Glob("testdata/*")
	require.NoError(t, err)
	scripts := 0
	for _, path := range paths {
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			continue
		}
		scripts++
		t.Run(filepath.Base(path), func(t *testing.T) { runScript(t, path) })
	}
	if scripts == 0 {
		t.Fatal("no scripts in testdata/: nothing was tested")
	}
}

type scriptCase struct {
	line     int
	prelude  []string // comments and blank lines before the command
	command  string
	expected string
}

func parseScript(t *testing.T, path string) []*scriptCase {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var cases []*scriptCase
	cur := &scriptCase{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if cur.command == "" {
			if line == "" || strings.HasPrefix(line, "#") {
				cur.prelude = append(cur.prelude, line)
				continue
			}
			cur.command, cur.line = line, n
			require.True(t, sc.Scan(), "%s:%d: missing ----", path, n)
			n++
			require.Equal(t, "----", sc.Text(), "%s:%d: want ---- after the command", path, n)
			var out []string
			for sc.Scan() {
				n++
				if sc.Text() == "" {
					break
				}
				out = append(out, sc.Text())
			}
			cur.expected = strings.Join(out, "\n")
			cases = append(cases, cur)
			cur = &scriptCase{}
		}
	}
	require.NoError(t, sc.Err())
	require.Empty(t, cur.command)
	return cases
}

func runScript(t *testing.T, path string) {
	cases := parseScript(t, path)
	r := &scriptRunner{t: t}
	var rewritten strings.Builder
	for _, c := range cases {
		got := r.do(fmt.Sprintf("%s:%d", path, c.line), c.command)
		if *rewrite {
			for _, l := range c.prelude {
				rewritten.WriteString(l + "\n")
			}
			rewritten.WriteString(c.command + "\n----\n")
			if got != "" {
				rewritten.WriteString(got + "\n")
			}
			rewritten.WriteString("\n")
			continue
		}
		require.Equal(t, c.expected, got, "%s:%d: %s", path, c.line, c.command)
	}
	if *rewrite {
		require.NoError(t, os.WriteFile(path, []byte(strings.TrimRight(rewritten.String(), "\n")+"\n"), 0o644))
	}
}

// plainStore hides every optional capability of the store it holds: a
// store that can neither zero, deallocate nor report allocation.
type plainStore struct{ backstore.Store }

type scriptRunner struct {
	t     *testing.T
	bench *bench
	mem   *backstore.Memory
	fault *backstore.Fault
}

// args splits "key=value" and bare flags.
func args(fields []string) (kv map[string]string, bare []string) {
	kv = map[string]string{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		} else {
			bare = append(bare, f)
		}
	}
	return kv, bare
}

func (r *scriptRunner) num(where string, kv map[string]string, key string, def int64) int64 {
	v, ok := kv[key]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 0, 64)
	require.NoError(r.t, err, "%s: %s=%q", where, key, v)
	return n
}

func (r *scriptRunner) do(where, command string) string {
	t := r.t
	fields := strings.Fields(command)
	kv, bare := args(fields[1:])
	has := func(flag string) bool {
		for _, b := range bare {
			if b == flag {
				return true
			}
		}
		return false
	}
	if fields[0] != "lu" {
		require.NotNil(t, r.bench, "%s: no lu yet", where)
	}
	switch fields[0] {
	case "lu":
		bs := int(r.num(where, kv, "bs", 512))
		r.mem = backstore.NewMemory(r.num(where, kv, "blocks", 64)*int64(bs), bs)
		r.fault = backstore.NewFault(r.mem)
		var store backstore.Store = r.fault
		if has("plain") {
			store = plainStore{r.fault}
		}
		r.bench = newBench(t, store, benchConfig{writeCache: has("wce"), readOnly: has("readonly"), spc: has("spc")})
		return ""
	case "cdb":
		return r.cdb(where, bare, kv["out"])
	case "fill":
		bs := r.mem.BlockSize()
		b, err := hex.DecodeString(kv["byte"])
		require.NoError(t, err, where)
		require.Len(t, b, 1, where)
		p := make([]byte, int(r.num(where, kv, "blocks", 1))*bs)
		for i := range p {
			p[i] = b[0]
		}
		require.NoError(t, r.mem.WriteAt(p, r.num(where, kv, "lba", 0)*int64(bs), true), where)
		return ""
	case "store":
		bs := int64(r.mem.BlockSize())
		p := make([]byte, r.num(where, kv, "blocks", 1)*bs)
		require.NoError(t, r.mem.ReadAt(p, r.num(where, kv, "lba", 0)*bs), where)
		return runLength(p)
	case "mode":
		r.bench.setMode(scsi.ModeState{WCE: has("wce"), DSense: has("dsense"), SWP: has("swp")})
		return ""
	case "fail":
		require.NotEmpty(t, bare, where)
		kinds := map[string]backstore.OpKind{
			"read": backstore.OpRead, "write": backstore.OpWrite, "sync": backstore.OpSync,
			"zero": backstore.OpZero, "unmap": backstore.OpUnmap, "allocated": backstore.OpAllocated,
		}
		kind, ok := kinds[bare[0]]
		require.True(t, ok, "%s: unknown operation %q", where, bare[0])
		errs := map[string]error{"": syscall.EIO, "eio": syscall.EIO, "enospc": syscall.ENOSPC, "notsup": backstore.ErrNotSupported}
		err, ok := errs[kv["err"]]
		require.True(t, ok, "%s: unknown error %q", where, kv["err"])
		if kind == backstore.OpSync {
			r.fault.Inject(func(op backstore.Op) error {
				if op.Kind == backstore.OpSync {
					return err
				}
				return nil
			})
			return ""
		}
		bs := int64(r.mem.BlockSize())
		r.fault.FailRange(kind, r.num(where, kv, "lba", 0)*bs, r.num(where, kv, "blocks", 1)*bs, err)
		return ""
	case "heal":
		r.fault.Reset()
		return ""
	case "crash":
		r.mem.Crash()
		return ""
	}
	require.FailNow(t, "unknown command", "%s: %s", where, command)
	return ""
}

func (r *scriptRunner) cdb(where string, hexBytes []string, out string) string {
	t := r.t
	cdb, err := hex.DecodeString(strings.Join(hexBytes, ""))
	require.NoError(t, err, where)
	var dataOut []byte
	if out != "" {
		for _, part := range strings.Split(out, "+") {
			if h, ok := strings.CutPrefix(part, "h:"); ok {
				v, err := hex.DecodeString(strings.ReplaceAll(h, "_", ""))
				require.NoError(t, err, where)
				dataOut = append(dataOut, v...)
				continue
			}
			n, b, ok := strings.Cut(part, "x")
			require.True(t, ok, "%s: out=N×BB", where)
			count, err := strconv.Atoi(n)
			require.NoError(t, err, where)
			v, err := hex.DecodeString(b)
			require.NoError(t, err, where)
			require.Len(t, v, 1, where)
			for range count {
				dataOut = append(dataOut, v[0])
			}
		}
	}
	c := r.bench.run(cdb, dataOut)
	var lines []string
	lines = append(lines, c.Status.String())
	if c.Status == scsi.StatusCheckCondition {
		s, err := scsi.ParseSense(c.Sense)
		require.NoError(t, err, where)
		lines = append(lines, "sense: "+describeSense(s))
	}
	if c.DataOutLength != 0 {
		lines = append(lines, fmt.Sprintf("data-out: %d bytes", c.DataOutLength))
	}
	if len(c.DataIn) != 0 {
		lines = append(lines, fmt.Sprintf("data-in: %d bytes: %s", len(c.DataIn), runLength(c.DataIn)))
	}
	return strings.Join(lines, "\n")
}

// describeSense renders sense data with the standard's names.
func describeSense(s *scsi.Sense) string {
	msg := fmt.Sprintf("%s, %s", s.Key, s.Code)
	if s.HasInformation {
		msg += fmt.Sprintf(", information %d", s.Information)
	}
	if s.HasSKS() && s.Key == scsi.IllegalRequest {
		where := "parameter list"
		if s.SenseKeySpecific[0]&0x40 != 0 {
			where = "CDB"
		}
		msg += fmt.Sprintf(", field %s byte %d", where, binary.BigEndian.Uint16(s.SenseKeySpecific[1:]))
		if s.SenseKeySpecific[0]&0x08 != 0 {
			msg += fmt.Sprintf(" bit %d", s.SenseKeySpecific[0]&0x07)
		}
	}
	return msg
}

// runLength shows up to 32 bytes in hex and longer data as runs ("5a*512").
func runLength(p []byte) string {
	if len(p) <= 32 {
		return fmt.Sprintf("% x", p)
	}
	var parts []string
	for i := 0; i < len(p); {
		j := i + 1
		for j < len(p) && p[j] == p[i] {
			j++
		}
		if j-i == 1 {
			parts = append(parts, fmt.Sprintf("%02x", p[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%02x*%d", p[i], j-i))
		}
		i = j
	}
	return strings.Join(parts, " ")
}
