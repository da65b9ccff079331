package stress

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/sbc"
	"github.com/odxtgt/odxtgt/scsi"
	"github.com/odxtgt/odxtgt/spc"
)

var flagFaultDuration = flag.Duration("fault.duration", 6*time.Second, "how long TestBackstoreFaults runs")

// inProcess is a target built in the test process: its portal, its
// logical units by LUN and its copy manager.
type inProcess struct {
	addr   string
	lus    map[uint64]*scsi.LU
	copies *rod.Manager
}

// startInProcess serves stores (LUN → store) from a target built in this
// process the way odxtgt serve builds one (point-in-time protection,
// copy manager, SPC and SBC command sets), so that a store can be a
// backstore.Fault, which the binary has no knob for, and a test can
// reach the logical units and the copy manager behind the portal.
func startInProcess(t *testing.T, stores map[uint64]backstore.Store) *inProcess {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	copies := rod.NewManager(rod.Config{Logger: log, Tokens: rod.TokenConfig{SnapshotSpace: 16 << 20}})
	table, err := scsi.NewTable(spc.Commands(spc.Options{Copy: copies}), sbc.Commands(sbc.Options{Copy: copies}))
	if err != nil {
		t.Fatal(err)
	}
	tpg := &iscsi.TPG{Tag: 1, RelativePortID: 1, Portals: []string{"127.0.0.1:0"}, LUNs: map[uint64]*scsi.LU{}}
	for lun, st := range stores {
		tpg.LUNs[lun] = scsi.NewLU(scsi.LUConfig{
			Identity: scsi.Identity{Name: fmt.Sprintf("lu%d", lun), Vendor: spc.DefaultVendor, Product: "stress-fault",
				Revision: spc.DefaultRevision, Serial: fmt.Sprintf("stressfault%d", lun)},
			Store: rod.Protect(st), WriteCache: true, Table: table, Logger: log, Events: copies,
			Ports: []scsi.TargetPortID{{Name: scsi.TargetPortName(stressTarget, 1), RelativeID: 1}},
		})
	}
	srv, err := iscsi.NewServer(iscsi.Config{Absent: scsi.NewAbsentLU(table, log), Logger: log,
		Targets: []*iscsi.Target{{Name: stressTarget, TPGs: []*iscsi.TPG{tpg}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-served
		copies.Close()
	})
	return &inProcess{addr: srv.Addrs()[0].String(), lus: tpg.LUNs, copies: copies}
}

// TestBackstoreFaults runs the mix against an in-process target whose
// second LU fails every write, zeroing, unmap, copy and clone touching a
// few runs of blocks, half with EIO (as a bad sector would) and half with
// ENOSPC (a full file system): each command writing one of them must end
// with MEDIUM ERROR (naming a failed block), DATA PROTECT, SPACE
// ALLOCATION FAILED WRITE PROTECT, or COPY ABORTED, leave those blocks as they were and every other block
// it covers old or new; every block no failed command covered must be as
// the model says.
func TestBackstoreFaults(t *testing.T) {
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	d := *flagFaultDuration
	if testing.Short() {
		d = min(d, 2*time.Second)
	}
	t.Logf("fault seed %d (rerun with -stress.seed=%d), %v", seed, seed, d)
	const size = 8 << 20
	fault := backstore.NewFault(backstore.NewMemory(size, BlockSize))
	addr := startInProcess(t, map[uint64]backstore.Store{0: backstore.NewMemory(size, BlockSize), 1: fault}).addr
	const sessions, workers = 4, 2
	stats, err := Run(context.Background(), Config{
		Addr: addr, Target: stressTarget, Initiators: []string{"iqn.2025-01.io.odxtgt:fault-a", "iqn.2025-01.io.odxtgt:fault-b"},
		LUNs: []uint64{0, 1}, Sessions: sessions, Workers: workers, Seed: seed, Duration: d, Logf: t.Logf,
		Faults: func(base, region uint64) []FaultRange {
			var bad []FaultRange
			// Runs of 8 blocks in every other worker's region, failing
			// with EIO and ENOSPC in turn.
			for w := uint64(1); w < sessions*workers; w += 2 {
				b := FaultRange{LUN: 1, LBA: base + w*region + region/3, N: 8}
				bad = append(bad, b)
				errno := syscall.EIO
				if w%4 == 3 {
					errno = syscall.ENOSPC
				}
				for _, k := range []backstore.OpKind{backstore.OpWrite, backstore.OpZero, backstore.OpUnmap, backstore.OpCopy, backstore.OpClone} {
					fault.FailRange(k, int64(b.LBA)*BlockSize, int64(b.N)*BlockSize, errno)
				}
			}
			return bad
		},
	})
	if stats != nil {
		t.Logf("stats: %v", stats)
	}
	if err != nil {
		t.Fatalf("%v (seed %d)", err, seed)
	}
	if stats.Faulted == 0 {
		t.Fatalf("no command hit a failing block (seed %d)", seed)
	}
}
