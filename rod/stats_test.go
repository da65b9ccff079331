package rod

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestStatsCountCopies runs a good and a failed EXTENDED COPY and checks
// that Stats counts both, with the good one's bytes under the paths the
// copy log reports.
func TestStatsCountCopies(t *testing.T) {
	r := newRig(t, Config{}, memDisk(64, 512), memDisk(64, 512))
	assert.Equal(t, Stats{SnapshotSpaceLimit: DefaultSnapshotSpace}, r.m.Stats(), "nothing yet")

	_, s := r.run(r.list(1, b2b(0, 1, 16, 0, 0)))
	require.Nil(t, s, "%v", s)
	clone, copyRange, buffered := r.logs.lastPaths(t)
	_, s = r.run(r.list(2, b2b(0, 1, 16, 60, 0))) // past the end of the source
	require.NotNil(t, s)

	st := r.m.Stats()
	assert.Equal(t, 0, st.Running)
	assert.Equal(t, uint64(1), st.Finished[KindExtendedCopy][ResultGood])
	assert.Equal(t, uint64(1), st.Finished[KindExtendedCopy][ResultFailed])
	assert.Equal(t, [NumCopyPaths]uint64{clone, copyRange, buffered}, st.Bytes)
	assert.Equal(t, uint64(16*512), clone+copyRange+buffered)
	assert.Zero(t, st.Tokens)
	assert.Zero(t, st.SnapshotSpaceUsed)
}

func TestStatsRunningAndKinds(t *testing.T) {
	r := newRig(t, Config{}, memDisk(64, 512))
	_, l, s := r.m.Begin(t.Context(), r.nexus, r.disks[0].lu, 1, UsageNone, 0x11, false)
	require.Nil(t, s)
	assert.Equal(t, 1, r.m.Stats().Running)
	r.m.Finish(l, scsi.StatusTaskAborted, nil)
	st := r.m.Stats()
	assert.Equal(t, 0, st.Running)
	assert.Equal(t, uint64(1), st.Finished[KindWriteUsingToken][ResultAborted])
	assert.Equal(t, "write_using_token", KindWriteUsingToken.String())
	assert.Equal(t, "copy_file_range", PathCopyFileRange.String())
	assert.Equal(t, KindPopulateToken, kindOf(0x10))
	assert.Equal(t, KindExtendedCopy, kindOf(0x01))
}

func TestProtectedSnapshotBytes(t *testing.T) {
	p, _ := protectedMemory(t, 64)
	assert.Zero(t, p.SnapshotBytes(), "no snapshot")
	sp := &space{limit: 1 << 20}
	sink := plainStore{backstore.NewMemory(p.Size(), 512)}
	s := newSnapshot(p, sink, "", []byteRange{{off: 0, n: 16 * 512}}, false, sp, func() {})
	require.NoError(t, p.WriteAt(make([]byte, 512), 0, false))
	assert.Equal(t, int64(4096), p.SnapshotBytes(), "one granule preserved")
	assert.Equal(t, sp.Used(), p.SnapshotBytes())
	s.close()
	assert.Zero(t, p.SnapshotBytes())
}
