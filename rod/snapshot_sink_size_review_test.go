package rod

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// rvBigStore stands for a large block device: a store of any size that
// reads zeroes and takes writes without keeping them, with none of the
// optional capabilities (a backstore.Block has no clone or copy either).
type rvBigStore struct{ size int64 }

func (s rvBigStore) ReadAt(p []byte, off int64) error  { clear(p); return nil }
func (s rvBigStore) WriteAt([]byte, int64, bool) error { return nil }
func (s rvBigStore) Sync() error                       { return nil }
func (s rvBigStore) Size() int64                       { return s.size }
func (s rvBigStore) BlockSize() int                    { return 512 }
func (s rvBigStore) Close() error                      { return nil }

const rvChildEnv = "ODXTGT_REVIEW_CHILD"

// TestReviewPopulateOnLargeLUWithoutSnapshotDir: for a logical unit with
// no snapshot directory (a block backstore without tokens.snapshot_dir,
// which build.go allows and documents as keeping snapshots in memory),
// Manager.snapshot makes the sink backstore.NewMemory(size of the whole
// logical unit) for every token, however few blocks it represents: a
// make([]byte, size). For a logical unit larger than RAM plus swap the Go
// runtime cannot map it and dies with "fatal error: runtime: out of
// memory", which no recover catches: one POPULATE TOKEN of one block on a
// 1 TiB LUN kills the target. (On smaller devices each token still
// reserves the device's size of address space, 1024 times.)
//
// The populate runs in a child process so that the crash is reported as
// this test's failure.
func TestReviewPopulateOnLargeLUWithoutSnapshotDir(t *testing.T) {
	if os.Getenv(rvChildEnv) == t.Name() {
		m := NewManager(Config{Logger: quietLogger()})
		table, err := scsi.NewTable(hostCommands())
		require.NoError(t, err)
		lu := scsi.NewLU(scsi.LUConfig{
			Identity: scsi.Identity{Name: "big", Vendor: "ODXTGT", Product: "rod-test", Serial: "0123456789abcdef"},
			Store:    Protect(rvBigStore{size: 1 << 40}), Table: table, Logger: quietLogger(), Events: m,
		})
		n := scsi.NewNexus(scsi.Nexus{InitiatorPort: "i,i,0x1", TargetPort: "t,t,0x1"}, map[uint64]*scsi.LU{0: lu}, nil)
		ctx, l, s := m.Begin(context.Background(), n, lu, 1, UsageHold, 0x10, false)
		require.Nil(t, s)
		fmt.Println("POPULATE TOKEN of 1 block of a 1 TiB logical unit")
		s = m.Populate(ctx, l, Request{Nexus: n, LU: lu}, &PopulateParams{Ranges: []Range{{LBA: 0, Blocks: 1, Offset: 16}}})
		m.Finish(l, scsi.StatusGood, s)
		fmt.Println("POPULATE TOKEN returned:", s)
		m.Close()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), rvChildEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	var why []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "fatal error") || strings.Contains(line, "github.com/odxtgt/odxtgt/") && !strings.HasPrefix(line, "\t") {
			why = append(why, line)
		}
	}
	require.NoError(t, err, "the target process died on POPULATE TOKEN of one block of a 1 TiB logical unit:\n%s", strings.Join(why, "\n"))
	require.Contains(t, string(out), "POPULATE TOKEN returned")
}
