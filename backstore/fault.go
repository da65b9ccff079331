package backstore

import (
	"fmt"
	"sync"
)

// OpKind names the kind of a store operation seen by [Fault].
type OpKind int

// Operation kinds.
const (
	OpRead OpKind = iota + 1
	OpWrite
	OpSync
	// OpCopy is a [RangeCopier.CopyRange] into the wrapped store.
	OpCopy
	// OpClone is a [RangeCloner.CloneRange] into the wrapped store.
	OpClone
	// OpZero is a [ZeroWriter.WriteZeroes].
	OpZero
	// OpUnmap is an [Unmapper.Unmap].
	OpUnmap
	// OpAllocated is an [AllocationReporter.Allocated] query.
	OpAllocated
)

// String implements fmt.Stringer.
func (k OpKind) String() string {
	switch k {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpSync:
		return "sync"
	case OpCopy:
		return "copy"
	case OpClone:
		return "clone"
	case OpZero:
		return "zero"
	case OpUnmap:
		return "unmap"
	case OpAllocated:
		return "allocated"
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Op describes one operation about to reach the store wrapped by a [Fault].
type Op struct {
	Kind OpKind
	// Index counts operations of this Kind seen by the Fault, from 0.
	Index int
	// Off and Len give the byte range of the operation in the wrapped
	// store: for a copy or clone the destination range, for an allocated
	// query the one byte asked about; zero for sync.
	Off int64
	Len int
	// FUA reports a write, copy, clone or zero made with fua=true.
	FUA bool
}

// overlaps reports whether op touches any byte of [off, off+n).
func (op Op) overlaps(off, n int64) bool {
	return op.Off < off+n && off < op.Off+int64(op.Len)
}

// Fault wraps a [Store] and fails chosen operations, so callers can test
// their error paths (for example syscall.EIO, which maps to MEDIUM ERROR).
// A failed operation never reaches the wrapped store, and its error is
// returned unchanged. Fault is safe for concurrent use.
//
// Fault has every optional capability of this package and forwards each to
// the wrapped store; where that store lacks one, the method fails with an
// error matching [ErrNotSupported] without counting an operation, and
// CloneAlignment returns 0. A Fault given as the source of a copy or clone
// is looked through: the destination store serves the request from the
// store inside, and the source Fault sees it as an OpRead of the source
// range, so a bad sector made with [Fault.FailRange] fails offloaded copies
// as it fails plain reads.
type Fault struct {
	s Store

	mu     sync.Mutex
	counts map[OpKind]int
	rules  []faultRule
}

type faultRule struct {
	fn      func(Op) error
	oneShot bool
}

// NewFault returns a Fault wrapping s that fails nothing until told to.
func NewFault(s Store) *Fault {
	return &Fault{s: s, counts: make(map[OpKind]int)}
}

// FailAt makes one operation fail with err: the index-th operation of the
// given kind issued after this call, counting from 0 (so index 0 is the next
// one). Operations are counted in the order they reach the Fault.
func (f *Fault) FailAt(kind OpKind, index int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	target := f.counts[kind] + index
	f.rules = append(f.rules, faultRule{
		oneShot: true,
		fn: func(op Op) error {
			if op.Kind == kind && op.Index == target {
				return err
			}
			return nil
		},
	})
}

// FailRange makes every operation of the given kind that touches any byte of
// [off, off+n) fail with err until [Fault.Reset], like a bad sector.
func (f *Fault) FailRange(kind OpKind, off, n int64, err error) {
	f.Inject(func(op Op) error {
		if op.Kind == kind && op.overlaps(off, n) {
			return err
		}
		return nil
	})
}

// Inject adds a rule consulted for every operation until [Fault.Reset]: if
// fn returns an error the operation fails with it. Rules are consulted in the
// order they were added and the first error wins. fn runs with the Fault's
// lock held and must not call the Fault.
func (f *Fault) Inject(fn func(Op) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, faultRule{fn: fn})
}

// Reset removes every rule. Operation counts keep running.
func (f *Fault) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Count returns how many operations of the given kind have reached the
// Fault, failed or not.
func (f *Fault) Count(kind OpKind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[kind]
}

// check counts op and returns the error the rules choose for it, if any.
func (f *Fault) check(op Op) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	op.Index = f.counts[op.Kind]
	f.counts[op.Kind]++
	for i, r := range f.rules {
		if err := r.fn(op); err != nil {
			if r.oneShot {
				f.rules = append(f.rules[:i:i], f.rules[i+1:]...)
			}
			return err
		}
	}
	return nil
}

// ReadAt implements [Store].
func (f *Fault) ReadAt(p []byte, off int64) error {
	if err := f.check(Op{Kind: OpRead, Off: off, Len: len(p)}); err != nil {
		return err
	}
	return f.s.ReadAt(p, off)
}

// WriteAt implements [Store].
func (f *Fault) WriteAt(p []byte, off int64, fua bool) error {
	if err := f.check(Op{Kind: OpWrite, Off: off, Len: len(p), FUA: fua}); err != nil {
		return err
	}
	return f.s.WriteAt(p, off, fua)
}

// Sync implements [Store].
func (f *Fault) Sync() error {
	if err := f.check(Op{Kind: OpSync}); err != nil {
		return err
	}
	return f.s.Sync()
}

// Size implements [Store].
func (f *Fault) Size() int64 { return f.s.Size() }

// BlockSize implements [Store].
func (f *Fault) BlockSize() int { return f.s.BlockSize() }

// PhysicalBlockSize implements [PhysicalBlockSizer] for the wrapped store.
func (f *Fault) PhysicalBlockSize() int { return PhysicalBlockSize(f.s) }

// Close implements [Store] by closing the wrapped store.
func (f *Fault) Close() error { return f.s.Close() }

// Unwrap returns the wrapped store (see [Wrapper]).
func (f *Fault) Unwrap() Store { return f.s }
