package backstore

import "fmt"

// copyChunk bounds the buffer a Memory copy or clone passes data through.
const copyChunk = 1 << 20

// CloneRange implements [RangeCloner] for a source that is a Memory (or a
// [Fault] wrapping one), by copying; the alignment is BlockSize.
func (m *Memory) CloneRange(dstOff int64, src Store, srcOff, n int64, fua bool) error {
	return m.copyFrom(opName(opClone, fua), dstOff, src, srcOff, n, fua, int64(m.blockSize))
}

// CloneAlignment implements [RangeCloner]; it equals BlockSize.
func (m *Memory) CloneAlignment() int { return m.blockSize }

// CopyRange implements [RangeCopier] for a source that is a Memory (or a
// [Fault] wrapping one).
func (m *Memory) CopyRange(dstOff int64, src Store, srcOff, n int64, fua bool) error {
	return m.copyFrom(opName(opCopy, fua), dstOff, src, srcOff, n, fua, 0)
}

// copyFrom serves CopyRange and CloneRange a chunk at a time, so the copy
// takes neither store's lock for long and never both at once.
func (m *Memory) copyFrom(op string, dstOff int64, src Store, srcOff, n int64, fua bool, align int64) error {
	m.mu.RLock()
	err := m.check(op, dstOff, n)
	m.mu.RUnlock()
	if err != nil {
		return err
	}
	sm, err := offloadSource(m, op, memoryPath, dstOff, src, srcOff, n, align)
	if err != nil || n == 0 {
		return err
	}
	buf := make([]byte, min(n, copyChunk))
	for done := int64(0); done < n; {
		p := buf[:min(n-done, int64(len(buf)))]
		if err := sm.readChunk(p, srcOff+done); err != nil {
			return &OpError{Op: op, Path: memoryPath, Off: dstOff, Len: int(n), Err: fmt.Errorf("source: %w", err)}
		}
		m.mu.Lock()
		err := m.check(op, dstOff, n)
		if err == nil {
			m.modifyLocked(p, dstOff+done, int64(len(p)), fua, false)
		}
		m.mu.Unlock()
		if err != nil {
			return err
		}
		done += int64(len(p))
	}
	return nil
}

// readChunk reads len(p) bytes at off, a range already checked.
func (m *Memory) readChunk(p []byte, off int64) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	copy(p, m.data[off:])
	return nil
}

// WriteZeroes implements [ZeroWriter]; the blocks touched become
// allocated, as with a write.
func (m *Memory) WriteZeroes(off, n int64, fua bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(opName(opZero, fua), off, n); err != nil {
		return err
	}
	m.modifyLocked(nil, off, n, fua, false)
	return nil
}

// Unmap implements [Unmapper]: the range is zeroed and the blocks it
// covers whole are deallocated.
func (m *Memory) Unmap(off, n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(opUnmap, off, n); err != nil {
		return err
	}
	m.modifyLocked(nil, off, n, false, true)
	return nil
}

// Allocated implements [AllocationReporter] from the store's record of
// which blocks are allocated.
func (m *Memory) Allocated(off int64) (mapped bool, end int64, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.check(opAllocated, off, 1); err != nil {
		return false, 0, err
	}
	bs := int64(m.blockSize)
	lba := off / bs
	mapped = m.isMapped(lba)
	next := lba + 1
	for next*bs < m.size && m.isMapped(next) == mapped {
		next++
	}
	return mapped, next * bs, nil
}
