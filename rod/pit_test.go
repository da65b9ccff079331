package rod

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// protectedMemory returns a protected memory store of blocks of 512 bytes
// filled with a pattern.
func protectedMemory(t *testing.T, blocks int64) (*Protected, []byte) {
	t.Helper()
	m := backstore.NewMemory(blocks*512, 512)
	data := pattern(int(blocks*512), 7)
	require.NoError(t, m.WriteAt(data, 0, false))
	return Protect(m), data
}

// plainStore hides every optional capability of the store it holds.
type plainStore struct{ backstore.Store }

func TestSnapshotCopyOnWrite(t *testing.T) {
	p, old := protectedMemory(t, 256)
	sp := &space{limit: 1 << 20}
	var revoked atomic.Int32
	// A sink that cannot clone leaves everything to copy-on-write.
	sink := plainStore{backstore.NewMemory(p.Size(), 512)}
	s := newSnapshot(p, sink, "", []byteRange{{off: 64 * 512, n: 32 * 512}, {off: 0, n: 8 * 512}}, false, sp, func() { revoked.Add(1) })

	// Every way of writing preserves first.
	require.NoError(t, p.WriteAt(bytes.Repeat([]byte{1}, 4096), 64*512, false))
	require.NoError(t, p.WriteZeroes(70*512, 4096, false))
	require.NoError(t, backstore.CopyRange(p, 80*512, p, 200*512, 4096, false))
	require.NoError(t, p.Unmap(0, 8*512))
	// Outside the ranges nothing is preserved.
	require.NoError(t, p.WriteAt(bytes.Repeat([]byte{2}, 4096), 150*512, false))

	got := make([]byte, 32*512)
	require.NoError(t, s.read(got, 64*512))
	assert.Equal(t, old[64*512:96*512], got, "the snapshot keeps the data of the moment it was taken")
	got = make([]byte, 8*512)
	require.NoError(t, s.read(got, 0))
	assert.Equal(t, old[:8*512], got)
	assert.Equal(t, int64(4*4096), sp.Used(), "three granules of the first range written, one of the second")
	assert.Zero(t, revoked.Load())

	// A second write to a preserved granule costs nothing more.
	require.NoError(t, p.WriteAt(bytes.Repeat([]byte{3}, 512), 65*512, false))
	assert.Equal(t, int64(4*4096), sp.Used())

	s.close()
	assert.Zero(t, sp.Used(), "closing gives the space back")
	assert.Empty(t, *p.snaps.Load(), "and stops copy-on-write")
	require.NoError(t, p.WriteAt(make([]byte, 512), 66*512, false))
}

func TestSnapshotSpaceExhaustedRevokes(t *testing.T) {
	p, _ := protectedMemory(t, 256)
	sp := &space{limit: 4096}
	var revoked atomic.Int32
	s := newSnapshot(p, plainStore{backstore.NewMemory(p.Size(), 512)}, "", []byteRange{{0, 128 * 512}}, false, sp, func() { revoked.Add(1) })
	require.NoError(t, p.WriteAt(make([]byte, 512), 0, false))
	assert.Zero(t, revoked.Load(), "the first granule fits")
	// The next one does not: the token is revoked, the write goes on.
	fresh := bytes.Repeat([]byte{9}, 512)
	require.NoError(t, p.WriteAt(fresh, 16*512, false))
	assert.Equal(t, int32(1), revoked.Load())
	got := make([]byte, 512)
	require.NoError(t, p.ReadAt(got, 16*512))
	assert.Equal(t, fresh, got, "the host write succeeded")
	_, err := s.pieces(0, 512)
	assert.ErrorIs(t, err, errSnapshotRevoked, "never wrong data")
	require.NoError(t, p.WriteAt(fresh, 32*512, false))
	assert.Equal(t, int32(1), revoked.Load(), "revoked once")
	s.close()
	assert.Zero(t, sp.Used())
}

func TestSnapshotSinkErrorRevokes(t *testing.T) {
	p, _ := protectedMemory(t, 64)
	sink := backstore.NewFault(backstore.NewMemory(p.Size(), 512))
	sink.FailAt(backstore.OpWrite, 0, assert.AnError)
	var revoked atomic.Int32
	s := newSnapshot(p, plainStore{sink}, "", []byteRange{{0, 64 * 512}}, false, &space{limit: 1 << 20}, func() { revoked.Add(1) })
	require.NoError(t, p.WriteAt(make([]byte, 512), 0, false))
	assert.Equal(t, int32(1), revoked.Load())
	s.close()
}

func TestSnapshotChangeVulnerable(t *testing.T) {
	p, _ := protectedMemory(t, 64)
	var revoked atomic.Int32
	sp := &space{limit: 1 << 20}
	s := newSnapshot(p, backstore.NewMemory(p.Size(), 512), "", []byteRange{{8 * 512, 8 * 512}}, true, sp, func() { revoked.Add(1) })
	require.NoError(t, p.WriteAt(make([]byte, 512), 32*512, false))
	assert.Zero(t, revoked.Load(), "a write elsewhere leaves it alone")
	require.NoError(t, p.WriteAt(make([]byte, 512), 9*512, false))
	assert.Equal(t, int32(1), revoked.Load(), "a write to its ranges revokes it")
	assert.Zero(t, sp.Used(), "and preserves nothing")
	s.close()
}

func TestSnapshotClone(t *testing.T) {
	p, old := protectedMemory(t, 64)
	sp := &space{limit: 1 << 20}
	// A memory sink clones from a memory store: the snapshot is complete
	// at once and copy-on-write has nothing left to do.
	s := newSnapshot(p, backstore.NewMemory(p.Size(), 512), "", []byteRange{{0, 16 * 512}, {40 * 512, 3 * 512}}, false, sp, func() { t.Error("revoked") })
	require.NoError(t, p.WriteAt(bytes.Repeat([]byte{5}, 16*512), 0, false))
	assert.Zero(t, sp.Used())
	// The second range does not cover its last granule whole; that part
	// is left to copy-on-write.
	require.NoError(t, p.WriteAt(bytes.Repeat([]byte{6}, 3*512), 40*512, false))
	got := make([]byte, 16*512)
	require.NoError(t, s.read(got, 0))
	assert.Equal(t, old[:16*512], got)
	got = make([]byte, 3*512)
	require.NoError(t, s.read(got, 40*512))
	assert.Equal(t, old[40*512:43*512], got)
	s.close()
}

func TestGranuleSet(t *testing.T) {
	g := granuleSet{}
	for _, i := range []int64{0, 63, 64, granuleChunk - 1, granuleChunk, 1 << 40} {
		assert.False(t, g.has(i))
		g.add(i)
		assert.True(t, g.has(i))
	}
	assert.False(t, g.has(1))
	assert.Len(t, g, 3)
}
