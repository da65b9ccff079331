package stress

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

var (
	flagCrashRounds   = flag.Int("crash.rounds", 3, "how many times TestCrashRecovery kills the target")
	flagCrashDuration = flag.Duration("crash.duration", 3*time.Second, "the longest TestCrashRecovery runs before each kill (at least a third of it)")
)

// crashConfig is two 8 MiB file LUNs for the driver, the first written
// through (write_cache false), the second with the write cache on, and a
// small file LUN for persistent reservations kept across restarts (APTPL).
func crashConfig(dir string) string {
	return `
backstores:
  - {name: f0, type: file, path: ` + filepath.Join(dir, "f0.img") + `, size: 8MiB, block_size: 512, write_cache: false}
  - {name: f1, type: file, path: ` + filepath.Join(dir, "f1.img") + `, size: 8MiB, block_size: 512, write_cache: true}
  - {name: pr, type: file, path: ` + filepath.Join(dir, "pr.img") + `, size: 1MiB, block_size: 512}
targets:
  - iqn: ` + stressTarget + `
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: f0}, {lun: 1, backstore: f1}, {lun: 2, backstore: pr}]
tokens:
  snapshot_space: 16MiB
`
}

const prLUN = 2

// TestCrashRecovery kills the target with SIGKILL at a random moment
// while sessions write (with and without FUA, on a LU with and without
// write cache, with SYNCHRONIZE CACHE), copy (EXTENDED COPY) and populate
// and use tokens, restarts it on the same files and checks, each round:
//   - every block holds what the model says: what was acknowledged, or,
//     for a command cut short, the old or the new content of each block
//     (see [Crash] for why a process kill loses nothing acknowledged);
//   - the snapshot files of the dead process's tokens are gone once the
//     new one listens;
//   - the persistent reservation state (APTPL) is the one of the last
//     acknowledged PERSISTENT RESERVE OUT, or of the one in flight: its
//     file is never torn.
func TestCrashRecovery(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rounds, per := *flagCrashRounds, *flagCrashDuration
	if testing.Short() {
		rounds = min(rounds, 1)
	}
	t.Logf("crash seed %d (rerun with -stress.seed=%d), %d rounds of at most %v", seed, seed, rounds, per)
	dir := t.TempDir()
	yaml := crashConfig(dir)
	srv, err := StartServer(odxtgtBin, dir, yaml)
	if err != nil {
		t.Fatal(err)
	}
	var srvMu sync.Mutex
	current := func() *Server {
		srvMu.Lock()
		defer srvMu.Unlock()
		return srv
	}
	t.Cleanup(func() { _ = current().Kill() })
	ctx := context.Background()

	pr := &prChurn{t: t, dir: dir}
	if err := pr.setup(ctx, srv.Addr); err != nil {
		t.Fatal(err)
	}
	pr.start(ctx)
	stats, err := Run(ctx, Config{
		Addr:       srv.Addr,
		Target:     stressTarget,
		Initiators: []string{"iqn.1991-05.com.microsoft:crash-a", "iqn.1998-01.com.vmware:crash-b"},
		LUNs:       []uint64{0, 1},
		Sessions:   4,
		Workers:    2,
		Seed:       seed,
		Duration:   per,
		// The lock rounds would need a CAW in flight at the kill to
		// count as won or lost; the region CAWs cover the same path.
		Exclude:   map[Op]bool{OpCompareAndWriteLock: true},
		LUNResets: true,
		Logf:      t.Logf,
		Crash: &Crash{
			Rounds: rounds,
			Kill: func() error {
				pr.down.Store(true)
				return current().Kill()
			},
			Restart: func(ctx context.Context) (string, error) {
				pr.wait()
				left, err := snapshotFiles(dir)
				if err != nil {
					return "", err
				}
				if left == 0 {
					return "", errors.New("no snapshot file was left by the killed target, which had a token live")
				}
				next, err := StartServer(odxtgtBin, dir, yaml)
				if err != nil {
					return "", err
				}
				srvMu.Lock()
				srv = next
				srvMu.Unlock()
				if n, err := snapshotFiles(dir); err != nil || n != 0 {
					return "", fmt.Errorf("%d snapshot files of the killed target are left after the restart (%v)", n, err)
				}
				t.Logf("restart: %d snapshot files of the killed target removed", left)
				if err := pr.check(ctx, next.Addr); err != nil {
					return "", err
				}
				pr.start(ctx)
				return next.Addr, nil
			},
		},
	})
	if stats != nil {
		t.Logf("stats: %v", stats)
	}
	pr.down.Store(true)
	pr.wait()
	if err == nil && pr.err != nil {
		err = pr.err
	}
	s := current()
	if err != nil {
		for i, w := range s.Warnings() {
			if i == 20 {
				break
			}
			t.Log(w)
		}
		t.Fatalf("%v (seed %d)", err, seed)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	for _, w := range s.Warnings() {
		if !expectedWarning(w) {
			t.Errorf("target log: %s", w)
		}
	}
}

// snapshotFiles counts the token snapshot files beside the file LUNs.
func snapshotFiles(dir string) (int, error) {
	names, err := filepath.Glob(filepath.Join(dir, ".odxtgt-snapshots", "*.odxtgt-snapshot"))
	return len(names), err
}

// prChurn keeps persistent reservations with APTPL on the PR LU: A holds
// a Write Exclusive reservation, B is registered, and C changes its key
// with REGISTER AND IGNORE EXISTING KEY in a loop until the kill. Each
// runs on a session with a fixed ISID, so that after a restart it is the
// same I_T nexus the state file names. Every session A opens also holds a
// long-lived token of the PR LU, so that the killed target always leaves
// a snapshot file.
type prChurn struct {
	t    *testing.T
	dir  string
	addr string      // the portal of the running target
	down atomic.Bool // set before the kill
	wg   sync.WaitGroup
	err  error
	// acked is C's key from its last acknowledged registration;
	// inflight the one it was sending when the target died.
	acked, inflight uint64
	next            uint64
	conns           []*initiator.Session
}

const (
	keyA = 0xA1A1
	keyB = 0xB1B1
)

var prInitiators = []string{"iqn.2025-01.io.odxtgt:crash-pr-a", "iqn.2025-01.io.odxtgt:crash-pr-b", "iqn.2025-01.io.odxtgt:crash-pr-c"}

func (p *prChurn) dial(ctx context.Context, addr string, i int) (*initiator.Session, error) {
	c, err := initiator.Dial(ctx, addr, initiator.Config{
		InitiatorName: prInitiators[i], TargetName: stressTarget,
		ISID: [6]byte{0x80, 0x00, 0x0c, 0x5a, 0x00, byte(i + 1)},
	})
	if err != nil {
		return nil, err
	}
	p.conns = append(p.conns, c)
	// The power-on unit attention.
	if _, err := c.Command(ctx, initiator.Request{LUN: prLUN, CDB: make([]byte, 6)}); err != nil {
		return nil, err
	}
	return c, nil
}

// prOut sends PERSISTENT RESERVE OUT with the APTPL bit set.
func prOut(ctx context.Context, c *initiator.Session, sa, typ byte, key, saKey uint64) error {
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p, key)
	binary.BigEndian.PutUint64(p[8:], saKey)
	p[20] = 0x01 // APTPL
	cdb := []byte{0x5F, sa, typ, 0, 0, 0, 0, 0, 24, 0}
	resp, err := c.Command(ctx, initiator.Request{LUN: prLUN, CDB: cdb, DataOut: p})
	if err != nil {
		return err
	}
	if resp.Status != scsi.StatusGood {
		return fmt.Errorf("PERSISTENT RESERVE OUT service action %#x: %s", sa, senseString(resp))
	}
	return nil
}

func prIn(ctx context.Context, c *initiator.Session, sa byte) ([]byte, error) {
	resp, err := c.Command(ctx, initiator.Request{LUN: prLUN, CDB: []byte{0x5E, sa, 0, 0, 0, 0, 0, 0x04, 0x00, 0}, ReadLen: 1024})
	if err != nil {
		return nil, err
	}
	if resp.Status != scsi.StatusGood || len(resp.DataIn) < 8 {
		return nil, fmt.Errorf("PERSISTENT RESERVE IN service action %#x: %s", sa, senseString(resp))
	}
	return resp.DataIn, nil
}

// setup registers A, B and C with APTPL and makes A reserve the LU.
func (p *prChurn) setup(ctx context.Context, addr string) error {
	p.addr = addr
	defer p.closeAll()
	var cs [3]*initiator.Session
	for i := range cs {
		c, err := p.dial(ctx, addr, i)
		if err != nil {
			return err
		}
		cs[i] = c
	}
	p.next = 0xC0000
	for _, step := range []error{
		prOut(ctx, cs[0], 0x00, 0, 0, keyA),
		prOut(ctx, cs[0], 0x01, 0x01, keyA, 0), // RESERVE, Write Exclusive
		prOut(ctx, cs[1], 0x00, 0, 0, keyB),
		prOut(ctx, cs[2], 0x00, 0, 0, p.next),
	} {
		if step != nil {
			return step
		}
	}
	p.acked, p.inflight = p.next, p.next
	return nil
}

func (p *prChurn) closeAll() {
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// start opens A's session with its long-lived token and runs C's churn
// until the kill.
func (p *prChurn) start(ctx context.Context) {
	p.down.Store(false)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.churn(ctx); err != nil && !p.down.Load() && p.err == nil {
			p.err = err
		}
	}()
}

func (p *prChurn) churn(ctx context.Context) error {
	a, err := p.dial(ctx, p.addr, 0)
	if err != nil {
		return err
	}
	pp := populateParams(600, []blockRange{{lba: 0, n: 64}})
	resp, err := a.Command(ctx, initiator.Request{LUN: prLUN, CDB: tokenCDB(0x10, 1, len(pp)), DataOut: pp})
	if err != nil {
		return err
	}
	if resp.Status != scsi.StatusGood {
		return fmt.Errorf("POPULATE TOKEN of the PR LU: %s", senseString(resp))
	}
	c, err := p.dial(ctx, p.addr, 2)
	if err != nil {
		return err
	}
	for !p.down.Load() {
		p.next++
		p.inflight = p.next
		if err := prOut(ctx, c, 0x06, 0, 0, p.next); err != nil {
			return err
		}
		p.acked = p.next
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// wait waits for the churn to stop after the kill.
func (p *prChurn) wait() {
	p.wg.Wait()
	p.closeAll()
}

// check reads the registrations and the reservation from the restarted
// target: A, B and C's acknowledged or in-flight key, A holding Write
// Exclusive; the state file must be valid JSON and no temporary file of
// a torn update may be left beside it.
func (p *prChurn) check(ctx context.Context, addr string) error {
	p.addr = addr
	defer p.closeAll()
	c, err := p.dial(ctx, addr, 1)
	if err != nil {
		return err
	}
	keys, err := prIn(ctx, c, 0x00)
	if err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(keys[4:]))
	var got []uint64
	for i := 8; i+8 <= min(len(keys), 8+n); i += 8 {
		got = append(got, binary.BigEndian.Uint64(keys[i:]))
	}
	slices.Sort(got)
	okAcked := slices.Equal(got, []uint64{keyA, keyB, p.acked})
	okInflight := slices.Equal(got, []uint64{keyA, keyB, p.inflight})
	if !okAcked && !okInflight {
		return fmt.Errorf("after the restart the PR LU has keys %x, want %x and C's %x (acknowledged) or %x (in flight)", got, []uint64{keyA, keyB}, p.acked, p.inflight)
	}
	if okInflight {
		p.acked = p.inflight
	}
	res, err := prIn(ctx, c, 0x01)
	if err != nil {
		return err
	}
	if binary.BigEndian.Uint32(res[4:]) != 16 || len(res) < 24 || binary.BigEndian.Uint64(res[8:]) != keyA || res[21]&0x0F != 0x01 {
		return fmt.Errorf("after the restart the PR LU's reservation is % x, want key %x holding Write Exclusive", res, keyA)
	}
	state := filepath.Join(p.dir, ".odxtgt-pr", "pr.json")
	data, err := os.ReadFile(state)
	if err != nil {
		return err
	}
	if !json.Valid(data) {
		return fmt.Errorf("the APTPL state file %s is not valid JSON", state)
	}
	if tmps, _ := filepath.Glob(filepath.Join(p.dir, ".odxtgt-pr", ".*.tmp*")); len(tmps) > 0 {
		return fmt.Errorf("after the restart temporary state files of a torn update are left: %v", tmps)
	}
	p.t.Logf("restart: PR keys %x (C's acknowledged %x, in flight %x)", got, p.acked, p.inflight)
	return nil
}
