package backstore

// CopyRange implements [RangeCopier] by forwarding to the wrapped store.
func (f *Fault) CopyRange(dstOff int64, src Store, srcOff, n int64, fua bool) error {
	c, ok := f.s.(RangeCopier)
	if !ok {
		return lacks(f.s, "copy")
	}
	if err := f.check(Op{Kind: OpCopy, Off: dstOff, Len: int(n), FUA: fua}); err != nil {
		return err
	}
	return c.CopyRange(dstOff, src, srcOff, n, fua)
}

// CloneRange implements [RangeCloner] by forwarding to the wrapped store.
func (f *Fault) CloneRange(dstOff int64, src Store, srcOff, n int64, fua bool) error {
	c, ok := f.s.(RangeCloner)
	if !ok {
		return lacks(f.s, "clone")
	}
	if err := f.check(Op{Kind: OpClone, Off: dstOff, Len: int(n), FUA: fua}); err != nil {
		return err
	}
	return c.CloneRange(dstOff, src, srcOff, n, fua)
}

// CloneAlignment implements [RangeCloner] for the wrapped store: its
// alignment, or 0 if it cannot clone.
func (f *Fault) CloneAlignment() int {
	if c, ok := f.s.(RangeCloner); ok {
		return c.CloneAlignment()
	}
	return 0
}

// WriteZeroes implements [ZeroWriter] by forwarding to the wrapped store.
func (f *Fault) WriteZeroes(off, n int64, fua bool) error {
	z, ok := f.s.(ZeroWriter)
	if !ok {
		return lacks(f.s, "write zeroes")
	}
	if err := f.check(Op{Kind: OpZero, Off: off, Len: int(n), FUA: fua}); err != nil {
		return err
	}
	return z.WriteZeroes(off, n, fua)
}

// Unmap implements [Unmapper] by forwarding to the wrapped store.
func (f *Fault) Unmap(off, n int64) error {
	u, ok := f.s.(Unmapper)
	if !ok {
		return lacks(f.s, "unmap")
	}
	if err := f.check(Op{Kind: OpUnmap, Off: off, Len: int(n)}); err != nil {
		return err
	}
	return u.Unmap(off, n)
}

// Allocated implements [AllocationReporter] by forwarding to the wrapped
// store.
func (f *Fault) Allocated(off int64) (mapped bool, end int64, err error) {
	a, ok := f.s.(AllocationReporter)
	if !ok {
		return false, 0, lacks(f.s, "report allocation")
	}
	if err := f.check(Op{Kind: OpAllocated, Off: off, Len: 1}); err != nil {
		return false, 0, err
	}
	return a.Allocated(off)
}
