package scsi

import (
	"context"
	"sync"
)

// ExtentMode says how a range of logical blocks is held.
type ExtentMode uint8

// Extent modes.
const (
	// ExtentShared is for readers that need the range not to change
	// under them (a copy's source, a verify against a concurrent writer);
	// shared holders do not exclude each other.
	ExtentShared ExtentMode = iota
	// ExtentExclusive is for every writer of the medium: host writes,
	// WRITE AND VERIFY, COMPARE AND WRITE, copies and point-in-time
	// preservation. Nothing else overlapping runs meanwhile.
	ExtentExclusive
)

// extentLock orders access to ranges of logical blocks. Holders queue in
// arrival order: a request waits only for earlier requests whose ranges
// overlap its own and conflict with its mode, so disjoint ranges never
// wait for each other and no writer starves behind a stream of readers.
type extentLock struct {
	mu    sync.Mutex
	queue []*extentHold // granted and waiting, oldest first
}

type extentHold struct {
	lba, end uint64 // [lba, end)
	mode     ExtentMode
	done     chan struct{} // closed on release
}

func (h *extentHold) conflicts(o *extentHold) bool {
	return h.lba < o.end && o.lba < h.end && (h.mode == ExtentExclusive || o.mode == ExtentExclusive)
}

// LockExtent waits until blocks [lba, lba+blocks) of the logical unit may
// be held in mode and returns the function that releases them. It gives up
// with ctx's error when ctx ends first (the task was aborted). An empty
// range holds nothing. Callers range-check first; a range running past
// 2^64 is held to the end of the address space.
func (lu *LU) LockExtent(ctx context.Context, lba, blocks uint64, mode ExtentMode) (unlock func(), err error) {
	return lu.lockExtents(ctx, []extentRange{{lba, blocks, mode}})
}

// extentRange is one range asked of lockExtents.
type extentRange struct {
	lba, blocks uint64
	mode        ExtentMode
}

// lockExtents holds several ranges of the logical unit for one owner. They
// join the queue together, so they never wait for each other, only for
// what was queued before them.
func (lu *LU) lockExtents(ctx context.Context, ranges []extentRange) (unlock func(), err error) {
	holds := make([]*extentHold, 0, len(ranges))
	for _, r := range ranges {
		if r.blocks == 0 {
			continue
		}
		end := r.lba + r.blocks
		if end < r.lba {
			end = ^uint64(0)
		}
		holds = append(holds, &extentHold{lba: r.lba, end: end, mode: r.mode, done: make(chan struct{})})
	}
	l := &lu.extents
	l.mu.Lock()
	var waits []chan struct{}
	for _, o := range l.queue {
		for _, h := range holds {
			if h.conflicts(o) {
				waits = append(waits, o.done)
				break
			}
		}
	}
	l.queue = append(l.queue, holds...)
	l.mu.Unlock()
	release := func() {
		for _, h := range holds {
			l.release(h)
		}
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		}
	}
	var once sync.Once
	return func() { once.Do(release) }, nil
}

// release removes h from the queue and wakes those waiting for it.
func (l *extentLock) release(h *extentHold) {
	l.mu.Lock()
	for i, o := range l.queue {
		if o == h {
			l.queue = append(l.queue[:i], l.queue[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	close(h.done)
}
