package backstore

import (
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
	assert.Equal(t, "read", OpRead.String())
	assert.Equal(t, "write", OpWrite.String())
	assert.Equal(t, "sync", OpSync.String())
	assert.Equal(t, "OpKind(9)", OpKind(9).String())
}
