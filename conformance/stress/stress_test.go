package stress

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/internal/scratchfs"
)

var (
	flagDuration = flag.Duration("stress.duration", 25*time.Second, "how long TestStressShort issues operations")
	flagSeed     = flag.Uint64("stress.seed", 0, "seed of the operation mix (0: from the clock; the test logs it)")
	flagSessions = flag.Int("stress.sessions", envInt("STRESS_SESSIONS", 16), "number of sessions (or $STRESS_SESSIONS)")
	flagWorkers  = flag.Int("stress.workers", envInt("STRESS_WORKERS", 2), "workers (commands outstanding) per session, at most 4 (or $STRESS_WORKERS)")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// odxtgtBin is the odxtgt binary TestMain builds.
var odxtgtBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "odxtgt-stress-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	odxtgtBin, err = BuildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const stressTarget = "iqn.2025-01.io.odxtgt:stress"

// stressConfig is three 8 MiB LUNs of 512-byte blocks: a file in dir, a
// memory LU and a second file in dir. snapshot_space is small so that
// point-in-time tokens get revoked now and then.
func stressConfig(dir string) string {
	return stressConfigWith(dir, "{name: m1, type: memory, size: 8MiB, block_size: 512}")
}

// stressConfigWith is stressConfig with lu1, a backstore named m1, as
// LUN 1.
func stressConfigWith(dir, lu1 string) string {
	return `
backstores:
  - {name: f0, type: file, path: ` + filepath.Join(dir, "f0.img") + `, size: 8MiB, block_size: 512}
  - ` + lu1 + `
  - {name: f2, type: file, path: ` + filepath.Join(dir, "f2.img") + `, size: 8MiB, block_size: 512}
targets:
  - iqn: ` + stressTarget + `
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: f0}, {lun: 1, backstore: m1}, {lun: 2, backstore: f2}]
tokens:
  snapshot_space: 16MiB
`
}

// TestStressShort runs the model-based stress mix against the real binary
// for -stress.duration (default 25 s; a shorter time with -short).
func TestStressShort(t *testing.T) {
	d := *flagDuration
	if testing.Short() {
		d = min(d, 5*time.Second)
	}
	dir := t.TempDir()
	runStress(t, dir, stressConfig(dir), d)
}

// TestStressOnXFSAndBlock runs the mix with its two file LUNs on an XFS
// file system with reflinks, where copies and point-in-time snapshots
// clone, and its second LU a block backstore on a loop device (as root
// with xfsprogs and losetup; skipped, saying what is missing, otherwise),
// for a fifth of -stress.duration.
func TestStressOnXFSAndBlock(t *testing.T) {
	mnt, whyNot := scratchfs.Mount(t, scratchfs.XFSReflink)
	if mnt == "" {
		t.Skip(whyNot)
	}
	dev, whyNot := scratchfs.Loop(t, filepath.Join(mnt, "block.img"), 8<<20, 512)
	if dev == "" {
		t.Skip(whyNot)
	}
	yaml := stressConfigWith(mnt, "{name: m1, type: block, path: "+dev+"}")
	d := *flagDuration / 5
	if testing.Short() {
		d = min(d, 3*time.Second)
	}
	runStress(t, t.TempDir(), yaml, d)
}

// runStress serves yaml (data in dir) from the real binary, runs the mix
// for d against LUNs 0, 1 and 2, and checks the target's log and open
// files afterwards.
func runStress(t *testing.T, dir, yaml string, d time.Duration) {
	t.Helper()
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("stress seed %d (rerun with -stress.seed=%d), %d sessions of %d workers, %v", seed, seed, *flagSessions, *flagWorkers, d)
	srv, err := StartServer(odxtgtBin, dir, yaml)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = srv.Stop()
		}
	})
	fds0, err := srv.OpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	threads0, rss0, err := srv.Usage()
	if err != nil {
		t.Fatal(err)
	}
	stats, err := Run(context.Background(), Config{
		Addr:       srv.Addr,
		Target:     stressTarget,
		Initiators: []string{"iqn.1991-05.com.microsoft:stress-a", "iqn.1998-01.com.vmware:stress-b", "iqn.2004-10.com.ubuntu:stress-c"},
		LUNs:       []uint64{0, 1, 2},
		Sessions:   *flagSessions,
		Workers:    *flagWorkers,
		Seed:       seed,
		Duration:   d,
		LUNResets:  true,
		Logf:       t.Logf,
	})
	if stats != nil {
		t.Logf("stats: %v", stats)
	}
	if err != nil {
		ws := srv.Warnings()
		for i, w := range ws {
			if i == 20 {
				t.Logf("… %d more warnings", len(ws)-i)
				break
			}
			t.Log(w)
		}
		t.Fatalf("%v (seed %d)", err, seed)
	}
	checkLeaks(t, srv, fds0, threads0, rss0)
	stopped = true
	if err := srv.Stop(); err != nil {
		t.Fatalf("%v\n%s", err, srv.Log())
	}
	// Revoked tokens are expected (snapshot_space is small), and so are
	// sessions the connection drops reinstate; anything else the target
	// warns about is a finding.
	revoked := 0
	for _, w := range srv.Warnings() {
		switch {
		case strings.Contains(w, `"msg":"ROD token revoked"`):
			revoked++
		case !expectedWarning(w):
			t.Errorf("target log: %s", w)
		}
	}
	t.Logf("the target revoked %d tokens", revoked)
}

// expectedWarning reports whether a WARN line of the target is one the
// stress mix provokes on purpose.
func expectedWarning(w string) bool {
	return strings.Contains(w, `"msg":"ROD token revoked"`) ||
		strings.Contains(w, `"reason":"session reinstated by a new login with the same ISID"`)
}

// fdSlack is how many more file descriptors than before the run the
// target may hold once every session has ended and its tokens expired.
const fdSlack = 4

// checkLeaks waits, once every session of the run has been closed, for
// the target to hold no more file descriptors than before it (plus
// fdSlack): a connection, snapshot file or copy that leaks one shows
// here. Tokens (and their snapshot files) end at their inactivity
// timeout, or when the reaper next runs. Threads and resident memory are
// only logged: Go keeps the threads and heap a load made it grow.
func checkLeaks(t *testing.T, srv *Server, fds0, threads0 int, rss0 int64) {
	t.Helper()
	deadline := time.Now().Add(tokenTimeout*time.Second + 5*time.Second)
	var fds int
	for {
		var err error
		if fds, err = srv.OpenFiles(); err != nil {
			t.Fatal(err)
		}
		if fds <= fds0+fdSlack || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	threads, rss, err := srv.Usage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("target after the run: %d open files (%d before), %d threads (%d), %d MiB resident (%d)",
		fds, fds0, threads, threads0, rss>>20, rss0>>20)
	if fds > fds0+fdSlack {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", srv.PID()))
		var targets []string
		for _, e := range ents {
			l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", srv.PID(), e.Name()))
			targets = append(targets, l)
		}
		t.Errorf("the target holds %d open files after the run, %d before: %v", fds, fds0, targets)
	}
}
