package scsi

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// Bounds of the waits for another goroutine to reach a state; the tests
// assert states, never durations.
const (
	waitFor = 10 * time.Second
	tick    = time.Millisecond
)

// lockAsync asks for a range and reports on the returned channel once it
// is held.
func lockAsync(ctx context.Context, lu *LU, lba, n uint64, mode ExtentMode) (<-chan func(), <-chan error) {
	got, failed := make(chan func(), 1), make(chan error, 1)
	go func() {
		unlock, err := lu.LockExtent(ctx, lba, n, mode)
		if err != nil {
			failed <- err
			return
		}
		got <- unlock
	}()
	return got, failed
}

func held(ch <-chan func()) (func(), bool) {
	select {
	case u := <-ch:
		return u, true
	default:
		return nil, false
	}
}

func TestExtentLock(t *testing.T) {
	lu := NewLU(LUConfig{Identity: Identity{Name: "x"}, Store: backstore.NewMemory(1<<20, 512)})
	ctx := context.Background()

	w1, err := lu.LockExtent(ctx, 10, 10, ExtentExclusive)
	require.NoError(t, err)
	// Disjoint ranges, adjacent ones included, do not wait.
	w2, err := lu.LockExtent(ctx, 20, 5, ExtentExclusive)
	require.NoError(t, err)
	r0, err := lu.LockExtent(ctx, 0, 10, ExtentShared)
	require.NoError(t, err)
	// An empty range holds nothing.
	none, err := lu.LockExtent(ctx, 12, 0, ExtentExclusive)
	require.NoError(t, err)
	none()

	// An overlapping reader waits for the writer; a later writer waits
	// for both, in arrival order, even where it overlaps only the reader.
	rCh, _ := lockAsync(ctx, lu, 15, 10, ExtentShared)
	assert.Eventually(t, func() bool { return queued(lu) == 4 }, waitFor, tick)
	wCh, _ := lockAsync(ctx, lu, 24, 1, ExtentExclusive)
	assert.Eventually(t, func() bool { return queued(lu) == 5 }, waitFor, tick)
	_, ok := held(rCh)
	assert.False(t, ok, "reader overlapping a writer got the range")
	w1()
	w1() // unlocking twice is harmless
	_, ok = held(rCh)
	assert.False(t, ok, "reader got the range while a second writer still held part of it")
	w2()
	var r1 func()
	require.Eventually(t, func() bool { r1, ok = held(rCh); return ok }, waitFor, tick)
	_, ok = held(wCh)
	assert.False(t, ok, "writer got a range a reader holds")
	r1()
	var w3 func()
	require.Eventually(t, func() bool { w3, ok = held(wCh); return ok }, waitFor, tick)
	w3()
	r0()
	assert.Equal(t, 0, queued(lu))
}

func TestExtentLockSharedHoldersCoexist(t *testing.T) {
	lu := NewLU(LUConfig{Identity: Identity{Name: "x"}, Store: backstore.NewMemory(1<<20, 512)})
	a, err := lu.LockExtent(context.Background(), 0, 100, ExtentShared)
	require.NoError(t, err)
	b, err := lu.LockExtent(context.Background(), 50, 100, ExtentShared)
	require.NoError(t, err)
	a()
	b()
}

func TestExtentLockCancelled(t *testing.T) {
	lu := NewLU(LUConfig{Identity: Identity{Name: "x"}, Store: backstore.NewMemory(1<<20, 512)})
	w, err := lu.LockExtent(context.Background(), 0, 8, ExtentExclusive)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	_, failed := lockAsync(ctx, lu, 4, 8, ExtentExclusive)
	// A third request waits behind the cancelled one; once that gives up,
	// only the holder keeps it waiting.
	later, _ := lockAsync(context.Background(), lu, 10, 4, ExtentExclusive)
	assert.Eventually(t, func() bool { return queued(lu) == 3 }, waitFor, tick)
	cancel()
	assert.ErrorIs(t, <-failed, context.Canceled)
	u := <-later // overlapped only the cancelled request
	u()
	w()
	assert.Equal(t, 0, queued(lu))

	// A range running past 2^64 is held to the end of the address space.
	top, err := lu.LockExtent(context.Background(), ^uint64(0)-1, 10, ExtentExclusive)
	require.NoError(t, err)
	top()
}

func queued(lu *LU) int {
	lu.extents.mu.Lock()
	defer lu.extents.mu.Unlock()
	return len(lu.extents.queue)
}
