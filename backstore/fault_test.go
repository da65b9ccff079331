package backstore

import (
	"bytes"
	"errors"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFaultPassesThrough(t *testing.T) {
	runStoreSuite(t, 512, func(t *testing.T, size int64, blockSize int) Store {
		return NewFault(newMemoryStore(t, size, blockSize))
	})
}

func TestFaultFailAt(t *testing.T) {
	m := NewMemory(64*512, 512)
	f := NewFault(m)
	p := []byte("data")
	require.NoError(t, f.WriteAt(p, 0, false))
	require.NoError(t, f.ReadAt(make([]byte, 4), 0))

	// Index 1 counts from the FailAt call: the second write after it fails.
	f.FailAt(OpWrite, 1, syscall.EIO)
	require.NoError(t, f.WriteAt(p, 512, false))
	err := f.WriteAt([]byte("lost"), 1024, true)
	require.ErrorIs(t, err, syscall.EIO)
	assert.Equal(t, syscall.EIO, err, "the injected error is returned unchanged")
	require.NoError(t, f.WriteAt(p, 1536, false), "FailAt fires once")
	require.NoError(t, f.ReadAt(make([]byte, 4), 0), "reads are counted separately")

	got := make([]byte, 4)
	require.NoError(t, m.ReadAt(got, 1024))
	assert.Equal(t, make([]byte, 4), got, "a failed write must not reach the store")

	f.FailAt(OpSync, 0, syscall.ENOSPC)
	f.FailAt(OpRead, 0, syscall.EIO)
	assert.ErrorIs(t, f.Sync(), syscall.ENOSPC)
	assert.NoError(t, f.Sync())
	assert.ErrorIs(t, f.ReadAt(got, 0), syscall.EIO)
	assert.NoError(t, f.ReadAt(got, 0))

	assert.Equal(t, 4, f.Count(OpWrite))
	assert.Equal(t, 4, f.Count(OpRead))
	assert.Equal(t, 2, f.Count(OpSync))
}

func TestFaultFailRange(t *testing.T) {
	f := NewFault(NewMemory(64*512, 512))
	f.FailRange(OpRead, 10*512, 512, syscall.EIO)
	tests := []struct {
		name    string
		off     int64
		n       int
		wantErr bool
	}{
		{"before", 9 * 512, 512, false},
		{"after", 11 * 512, 512, false},
		{"exact", 10 * 512, 512, true},
		{"overlaps the start", 9*512 + 511, 2, true},
		{"overlaps the end", 11*512 - 1, 1, true},
		{"covers it", 0, 64 * 512, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			for range 2 { // sticky: fails every time
				err := f.ReadAt(p, tt.off)
				if tt.wantErr {
					assert.ErrorIs(t, err, syscall.EIO)
				} else {
					assert.NoError(t, err)
				}
			}
			assert.NoError(t, f.WriteAt(p, tt.off, false), "only reads fail")
		})
	}
	f.Reset()
	assert.NoError(t, f.ReadAt(make([]byte, 512), 10*512))
}

func TestFaultInject(t *testing.T) {
	f := NewFault(NewMemory(64*512, 512))
	errFUA := errors.New("fua refused")
	var seen []Op
	f.Inject(func(op Op) error {
		seen = append(seen, op)
		if op.Kind == OpWrite && op.FUA {
			return errFUA
		}
		return nil
	})
	f.Inject(func(op Op) error {
		if op.Kind == OpWrite {
			return syscall.EROFS
		}
		return nil
	})
	assert.ErrorIs(t, f.WriteAt(make([]byte, 512), 512, true), errFUA, "the first rule wins")
	assert.ErrorIs(t, f.WriteAt(make([]byte, 512), 1024, false), syscall.EROFS)
	assert.NoError(t, f.ReadAt(make([]byte, 7), 3))
	assert.NoError(t, f.Sync())
	assert.Equal(t, []Op{
		{Kind: OpWrite, Index: 0, Off: 512, Len: 512, FUA: true},
		{Kind: OpWrite, Index: 1, Off: 1024, Len: 512},
		{Kind: OpRead, Index: 0, Off: 3, Len: 7},
		{Kind: OpSync, Index: 0},
	}, seen)
}

func TestFaultForwardsGeometry(t *testing.T) {
	m := NewMemory(8*4096, 4096)
	f := NewFault(m)
	assert.Equal(t, int64(8*4096), f.Size())
	assert.Equal(t, 4096, f.BlockSize())
	assert.Equal(t, 4096, f.PhysicalBlockSize())
	require.NoError(t, f.Close())
	assert.ErrorIs(t, m.ReadAt(make([]byte, 1), 0), ErrClosed, "Close closes the wrapped store")
}

func TestOpKindString(t *testing.T) {
	for kind, want := range map[OpKind]string{
		OpRead: "read", OpWrite: "write", OpSync: "sync", OpCopy: "copy", OpClone: "clone",
		OpZero: "zero", OpUnmap: "unmap", OpAllocated: "allocated", OpKind(99): "OpKind(99)",
	} {
		assert.Equal(t, want, kind.String())
	}
}

func TestFaultForwardsCapabilities(t *testing.T) {
	newFault := func(t *testing.T, size int64, blockSize int) Store {
		return NewFault(newMemoryStore(t, size, blockSize))
	}
	runCapabilitySuite(t, 512, newFault, memoryCapabilities)
	runOffloadSuite(t, 512, newFault, memoryCapabilities)
}

// TestFaultWithoutCapabilities checks a Fault over a store without the
// optional capabilities refuses them without counting operations.
func TestFaultWithoutCapabilities(t *testing.T) {
	m := NewMemory(64*512, 512)
	f := NewFault(geometryOnly{m})
	f.Inject(func(Op) error { return syscall.EIO })
	assert.Zero(t, f.CloneAlignment())
	_, _, allocErr := f.Allocated(0)
	for _, err := range []error{
		f.CopyRange(0, m, 512, 512, false),
		f.CloneRange(0, m, 512, 512, false),
		f.WriteZeroes(0, 512, false),
		f.Unmap(0, 512),
		allocErr,
	} {
		require.ErrorIs(t, err, ErrNotSupported)
		assert.ErrorContains(t, err, "backstore.geometryOnly cannot")
	}
	for _, kind := range []OpKind{OpCopy, OpClone, OpZero, OpUnmap, OpAllocated} {
		assert.Zero(t, f.Count(kind), kind)
	}
}

// TestCapabilityHelpers checks the helpers refuse stores without the
// capability.
func TestCapabilityHelpers(t *testing.T) {
	m := NewMemory(64*512, 512)
	s := geometryOnly{m}
	_, _, allocErr := Allocated(s, 0)
	for _, err := range []error{
		CopyRange(s, 0, m, 512, 512, false),
		CloneRange(s, 0, m, 512, 512, false),
		WriteZeroes(s, 0, 512, false),
		Unmap(s, 0, 512),
		allocErr,
	} {
		require.ErrorIs(t, err, ErrNotSupported)
	}
	assert.EqualError(t, CloneRange(s, 0, m, 0, 512, false), "backstore: backstore.geometryOnly cannot clone: not supported by the store")
}

// TestFaultFailsCapabilities makes each capability fail and checks the
// failed operation never reaches the store.
func TestFaultFailsCapabilities(t *testing.T) {
	const bs = 512
	m := NewMemory(64*bs, bs)
	f := NewFault(m)
	src := NewMemory(64*bs, bs)
	data := bytes.Repeat([]byte{9}, 16*bs)
	require.NoError(t, src.WriteAt(data, 0, false))
	require.NoError(t, f.WriteAt(data, 32*bs, false))

	// A copy split into four chunks fails in the middle with EIO.
	f.FailAt(OpCopy, 2, syscall.EIO)
	var err error
	chunks := 0
	for ; chunks < 4 && err == nil; chunks++ {
		err = f.CopyRange(int64(chunks*4*bs), src, int64(chunks*4*bs), 4*bs, false)
	}
	require.ErrorIs(t, err, syscall.EIO)
	assert.Equal(t, syscall.EIO, err, "the injected error is returned unchanged")
	assert.Equal(t, 3, chunks)
	want := make([]byte, 64*bs)
	copy(want, data[:8*bs])
	copy(want[32*bs:], data)
	assertStore(t, want, m, "the failed chunk and the ones after it reached the store")

	f.FailAt(OpClone, 0, syscall.EIO)
	require.ErrorIs(t, f.CloneRange(8*bs, src, 8*bs, 4*bs, true), syscall.EIO)
	require.NoError(t, f.CloneRange(8*bs, src, 8*bs, 4*bs, true), "FailAt fires once")
	copy(want[8*bs:], data[8*bs:12*bs])

	f.FailRange(OpZero, 40*bs, bs, syscall.EIO)
	require.ErrorIs(t, f.WriteZeroes(39*bs, 2*bs, false), syscall.EIO)
	require.NoError(t, f.WriteZeroes(32*bs, bs, true), "outside the bad range")
	clear(want[32*bs : 33*bs])

	f.FailRange(OpUnmap, 44*bs, 1, syscall.ENOSPC)
	require.ErrorIs(t, f.Unmap(40*bs, 8*bs), syscall.ENOSPC)
	require.NoError(t, f.Unmap(34*bs, bs))
	clear(want[34*bs : 35*bs])

	f.FailRange(OpAllocated, 50*bs, bs, syscall.EIO)
	_, _, err = f.Allocated(50*bs + 10)
	require.ErrorIs(t, err, syscall.EIO)
	mapped, end, err := f.Allocated(49 * bs)
	require.NoError(t, err)
	assert.False(t, mapped)
	assert.Equal(t, int64(64*bs), end)

	assertStore(t, want, m, "a failed operation reached the store")
	for kind, n := range map[OpKind]int{OpCopy: 3, OpClone: 2, OpZero: 2, OpUnmap: 2, OpAllocated: 2, OpRead: 0, OpWrite: 1} {
		assert.Equal(t, n, f.Count(kind), kind)
	}
}

// TestFaultCopySource checks a Fault that is the source of a copy or clone
// sees it as a read of the source range.
func TestFaultCopySource(t *testing.T) {
	const bs = 512
	src := NewFault(NewMemory(64*bs, bs))
	dst := NewMemory(64*bs, bs)
	data := bytes.Repeat([]byte{3}, 64*bs)
	require.NoError(t, src.WriteAt(data, 0, false))

	var seen []Op
	src.Inject(func(op Op) error {
		seen = append(seen, op)
		return nil
	})
	src.FailRange(OpRead, 10*bs, bs, syscall.EIO)
	for _, do := range []offloadFunc{CopyRange, CloneRange} {
		err := do(dst, 0, src, 8*bs, 4*bs, false)
		assert.Equal(t, syscall.EIO, err, "a bad source sector fails the copy, unchanged")
		require.NoError(t, do(dst, 0, src, 0, 8*bs, true))
	}
	assertStore(t, append(data[:8*bs:8*bs], make([]byte, 56*bs)...), dst, "only the good copies reached the store")
	assert.Equal(t, []Op{
		{Kind: OpRead, Index: 0, Off: 8 * bs, Len: 4 * bs},
		{Kind: OpRead, Index: 1, Off: 0, Len: 8 * bs},
		{Kind: OpRead, Index: 2, Off: 8 * bs, Len: 4 * bs},
		{Kind: OpRead, Index: 3, Off: 0, Len: 8 * bs},
	}, seen, "the source sees each copy and clone as a read")

	// A copy within one Fault counts once as a copy and once as a read.
	src.Reset()
	reads := src.Count(OpRead)
	require.NoError(t, src.CopyRange(32*bs, src, 0, 8*bs, false))
	assert.Equal(t, 1, src.Count(OpCopy))
	assert.Equal(t, reads+1, src.Count(OpRead))

	// Unsupported requests are refused before any Fault sees them.
	src.Inject(func(Op) error { return syscall.EIO })
	require.ErrorIs(t, dst.CloneRange(0, src, 1, bs, false), ErrNotSupported)
	require.ErrorIs(t, dst.CopyRange(0, src, 0, bs, false), syscall.EIO)
	assert.Equal(t, reads+2, src.Count(OpRead))
}
