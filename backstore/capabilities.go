package backstore

import "fmt"

// RangeCloner is implemented by stores that can make a range share the
// data of another store's range without copying it (a reflink), so later
// writes to either side leave the other unchanged. [File] implements it on
// file systems with reflinks (XFS with reflink=1, Btrfs); [Memory] copies.
type RangeCloner interface {
	// CloneRange makes the n bytes at dstOff read like the n bytes at
	// srcOff of src did when the call was made. dstOff, srcOff and n must
	// be multiples of CloneAlignment. It fails with [ErrNotSupported],
	// changing nothing, when src is not a store it can clone from (another
	// file system, another kind of store), when the ranges are misaligned,
	// or when src is the receiver and the ranges overlap. With fua set the
	// destination range is durable when CloneRange returns; otherwise it is
	// durable after the next Sync, like a write without FUA.
	CloneRange(dstOff int64, src Store, srcOff, n int64, fua bool) error
	// CloneAlignment returns the alignment in bytes of every offset and
	// length CloneRange accepts: a multiple of BlockSize, or 0 if the store
	// cannot clone at all.
	CloneAlignment() int
}

// RangeCopier is implemented by stores that can copy a range from another
// store inside the kernel or the medium, without the data passing through
// the caller. [File] implements it with copy_file_range(2); [Memory]
// copies.
type RangeCopier interface {
	// CopyRange copies the n bytes at srcOff of src to dstOff. Offsets and
	// length need no alignment. It fails with [ErrNotSupported], changing
	// nothing, when src is not a store it can copy from, or when src is the
	// receiver and the ranges overlap. Any other error may leave part of the
	// destination range copied. Durability is that of WriteAt with the same
	// fua.
	CopyRange(dstOff int64, src Store, srcOff, n int64, fua bool) error
}

// ZeroWriter is implemented by stores that can zero a range without being
// sent zeroes: WRITE SAME of a zero block. Every store in this package
// implements it.
type ZeroWriter interface {
	// WriteZeroes makes the n bytes at off read as zeroes. The range may or
	// may not stay allocated; see [Unmapper] to deallocate it. Durability is
	// that of WriteAt with the same fua.
	WriteZeroes(off, n int64, fua bool) error
}

// Unmapper is implemented by stores that can deallocate a range (UNMAP, or
// WRITE SAME with the UNMAP bit), giving its space back to the medium.
type Unmapper interface {
	// Unmap deallocates the n bytes at off. After it returns without error
	// the range reads as zeroes on every store (the SBC LBPRZ=1 promise);
	// bytes of a partly covered block are zeroed and the block stays
	// allocated. It fails with [ErrNotSupported], changing nothing, where
	// the medium cannot deallocate with that promise; the caller then
	// zeroes with [ZeroWriter]. Durability is that of a write without FUA:
	// until the next Sync a crash may bring the old data back.
	Unmap(off, n int64) error
}

// AllocationReporter is implemented by stores that can tell allocated
// ranges from deallocated ones (GET LBA STATUS).
type AllocationReporter interface {
	// Allocated reports whether the block holding byte off is mapped
	// (allocated) and returns end, the offset where the run of blocks in
	// the same state ends: a multiple of BlockSize greater than off, at
	// most Size. A block partly allocated on the medium counts as mapped.
	// Deallocated blocks read as zeroes; mapped blocks may read as zeroes
	// too. Stores that do not track allocation report the whole store as
	// mapped. off must lie in [0, Size). The answer may be stale as soon as
	// it is returned if writes run concurrently.
	Allocated(off int64) (mapped bool, end int64, err error)
}

// CloneRange clones n bytes at srcOff of src to dstOff of dst with
// [RangeCloner.CloneRange], or returns an error matching [ErrNotSupported]
// if dst is not a RangeCloner.
func CloneRange(dst Store, dstOff int64, src Store, srcOff, n int64, fua bool) error {
	c, ok := dst.(RangeCloner)
	if !ok {
		return lacks(dst, "clone")
	}
	return c.CloneRange(dstOff, src, srcOff, n, fua)
}

// CopyRange copies n bytes at srcOff of src to dstOff of dst with
// [RangeCopier.CopyRange], or returns an error matching [ErrNotSupported]
// if dst is not a RangeCopier.
func CopyRange(dst Store, dstOff int64, src Store, srcOff, n int64, fua bool) error {
	c, ok := dst.(RangeCopier)
	if !ok {
		return lacks(dst, "copy")
	}
	return c.CopyRange(dstOff, src, srcOff, n, fua)
}

// WriteZeroes zeroes n bytes at off of s with [ZeroWriter.WriteZeroes], or
// returns an error matching [ErrNotSupported] if s is not a ZeroWriter.
func WriteZeroes(s Store, off, n int64, fua bool) error {
	z, ok := s.(ZeroWriter)
	if !ok {
		return lacks(s, "write zeroes")
	}
	return z.WriteZeroes(off, n, fua)
}

// Unmap deallocates n bytes at off of s with [Unmapper.Unmap], or returns
// an error matching [ErrNotSupported] if s is not an Unmapper.
func Unmap(s Store, off, n int64) error {
	u, ok := s.(Unmapper)
	if !ok {
		return lacks(s, "unmap")
	}
	return u.Unmap(off, n)
}

// Allocated reports the allocation state at off of s with
// [AllocationReporter.Allocated], or returns an error matching
// [ErrNotSupported] if s is not an AllocationReporter.
func Allocated(s Store, off int64) (mapped bool, end int64, err error) {
	a, ok := s.(AllocationReporter)
	if !ok {
		return false, 0, lacks(s, "report allocation")
	}
	return a.Allocated(off)
}

// lacks returns the error for a store without a capability.
func lacks(s Store, what string) error {
	return fmt.Errorf("backstore: %T cannot %s: %w", s, what, ErrNotSupported)
}

// offloadSource checks a copy or clone of n bytes from srcOff of src to
// dstOff of dst, a store of type T named path, and returns the T behind
// src. It looks through any [Fault] wrapping src: the request must be one
// dst can serve from the store inside, and then each Fault, outermost
// first, sees it as a read of the source range and may fail it. Ranges must
// be aligned to align, if positive. Its own errors are *OpErrors for op;
// errors a Fault injects are returned unchanged. For n == 0 it checks the
// ranges only and returns the zero T.
func offloadSource[T interface {
	comparable
	Store
}](dst T, op, path string, dstOff int64, src Store, srcOff, n, align int64) (T, error) {
	var none T
	fail := func(err error) (T, error) {
		return none, &OpError{Op: op, Path: path, Off: dstOff, Len: int(n), Err: err}
	}
	if err := checkRange(srcOff, n, src.Size()); err != nil {
		return fail(fmt.Errorf("source range at offset %d: %w", srcOff, err))
	}
	if align > 0 && (dstOff%align != 0 || srcOff%align != 0 || n%align != 0) {
		return fail(notSupported("source offset %d, destination offset %d and length %d are not all multiples of %d bytes", srcOff, dstOff, n, align))
	}
	if n == 0 {
		return none, nil
	}
	t, ok := Unwrap(src).(T)
	if !ok {
		return fail(notSupported("cannot take data from a %T", Unwrap(src)))
	}
	if t == dst && srcOff < dstOff+n && dstOff < srcOff+n {
		return fail(notSupported("source range at offset %d overlaps the destination", srcOff))
	}
	for w, ok := src.(Wrapper); ok; w, ok = w.Unwrap().(Wrapper) {
		if f, isFault := w.(*Fault); isFault {
			if err := f.check(Op{Kind: OpRead, Off: srcOff, Len: int(n)}); err != nil {
				return none, err
			}
		}
	}
	return t, nil
}

// Wrapper is implemented by stores that wrap another store and pass its
// data through unchanged: [Fault], and wrappers of other packages that
// watch the writes (point-in-time protection). Fast paths look through
// wrappers to the store that holds the data.
type Wrapper interface {
	Store
	// Unwrap returns the wrapped store.
	Unwrap() Store
}

// Unwrap returns the store inside every [Wrapper] around s.
func Unwrap(s Store) Store {
	for {
		w, ok := s.(Wrapper)
		if !ok {
			return s
		}
		s = w.Unwrap()
	}
}
