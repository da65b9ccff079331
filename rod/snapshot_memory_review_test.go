package rod

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReviewMemorySnapshotsBoundedBySnapshotSpace: tokens.snapshot_space
// is documented as the bound of what point-in-time snapshots preserve
// ("block backstores may keep it in memory"). A logical unit without a
// snapshot directory (memory backstores; block backstores without
// tokens.snapshot_dir) gets a backstore.Memory sink, and newSnapshot
// "clones" every whole granule of the token's ranges into it at once:
// for a memory source that is a full copy in RAM, marked preserved and
// never charged to the snapshot space. Each POPULATE TOKEN of up to
// MaxTokenBytes (16 GiB) thus pins that much memory, MaxTokens (1024)
// times over, whatever snapshot_space says: one initiator exhausts the
// process's memory and the target dies.
func TestReviewMemorySnapshotsBoundedBySnapshotSpace(t *testing.T) {
	const space = 1 << 20
	const lbs, blocks = 512, 16384 // an 8 MiB memory logical unit
	r := newRig(t, Config{Tokens: TokenConfig{SnapshotSpace: space}}, rvProtectedMem(blocks, lbs))
	defer r.m.Close()
	for i := range 8 {
		rvPopulate(t, r, r.nexus, 0, uint32(100+i), &PopulateParams{Ranges: []Range{{LBA: 0, Blocks: blocks, Offset: 16}}})
	}
	var held int64
	r.m.tok.mu.Lock()
	for _, tok := range r.m.tok.live {
		s := tok.snap
		s.mu.Lock()
		for _, c := range s.preserved {
			for _, w := range c {
				for ; w != 0; w &= w - 1 {
					held += s.granule
				}
			}
		}
		s.mu.Unlock()
	}
	r.m.tok.mu.Unlock()
	require.LessOrEqual(t, held, int64(space),
		"live snapshots hold %d MiB of preserved data in memory; snapshot space is %d MiB and reports %d bytes used",
		held>>20, space>>20, r.m.SnapshotSpaceUsed())
}
