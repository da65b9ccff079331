package backstore

import "sync"

// memoryPath is the name memory stores use in errors.
const memoryPath = "memory"

// Memory is an in-memory [Store]: the reference model other stores are
// tested against. It is safe for concurrent use.
//
// Memory also models durability. It remembers the durable content of every
// block changed by a write made without FUA since the last Sync, and
// [Memory.Crash] puts that content back, leaving exactly what a power loss
// would be guaranteed to leave. The cost is one extra copy of each block
// written without FUA since the last Sync.
//
// Memory models thin provisioning too: like a sparse file, a new store has
// no block allocated; a write allocates the blocks it touches and
// [Memory.Unmap] deallocates the blocks it covers whole, as
// [Memory.Allocated] reports. Every capability in this package is
// implemented, copies and clones taking data from another Memory only.
type Memory struct {
	size      int64
	blockSize int

	mu     sync.RWMutex
	data   []byte
	closed bool
	// mapped has bit lba%64 of word lba/64 set for each allocated block.
	mapped []uint64
	// durable maps the index of each block changed since the last Sync
	// without FUA to that block's durable content, or to nil if the block
	// was deallocated when it was first changed.
	durable map[int64][]byte
}

// NewMemory returns a zero-filled memory store of size bytes with the given
// logical block size. It panics if [ValidateGeometry] rejects the geometry.
func NewMemory(size int64, blockSize int) *Memory {
	if err := ValidateGeometry(size, blockSize); err != nil {
		panic(err)
	}
	blocks := size / int64(blockSize)
	return &Memory{
		size:      size,
		blockSize: blockSize,
		data:      make([]byte, size),
		mapped:    make([]uint64, (blocks+63)/64),
		durable:   make(map[int64][]byte),
	}
}

// ReadAt implements [Store].
func (m *Memory) ReadAt(p []byte, off int64) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.check(opRead, off, int64(len(p))); err != nil {
		return err
	}
	copy(p, m.data[off:])
	return nil
}

// WriteAt implements [Store].
func (m *Memory) WriteAt(p []byte, off int64, fua bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(opName(opWrite, fua), off, int64(len(p))); err != nil {
		return err
	}
	m.modifyLocked(p, off, int64(len(p)), fua, false)
	return nil
}

// modifyLocked sets the n bytes at off to p, or to zeroes if p is nil, and
// keeps the durability and allocation models: with fua the new bytes are
// durable, otherwise each block's durable state is saved before its first
// volatile change. Touched blocks become allocated, except with unmap,
// which deallocates the blocks it covers whole and leaves the allocation
// of the others alone. The caller holds m.mu and has checked the range.
func (m *Memory) modifyLocked(p []byte, off, n int64, fua, unmap bool) {
	if n == 0 {
		return
	}
	bs := int64(m.blockSize)
	end := off + n
	for lba := off / bs; lba*bs < end; lba++ {
		lo, hi := max(off, lba*bs), min(end, (lba+1)*bs)
		saved, dirty := m.durable[lba]
		switch {
		case !fua && !dirty:
			// First volatile change to this block since the last Sync:
			// remember what is durable now.
			if m.isMapped(lba) {
				saved = append([]byte(nil), m.data[lba*bs:(lba+1)*bs]...)
			}
			m.durable[lba] = saved
		case fua && dirty:
			// The bytes this change covers become durable; the rest of
			// the block keeps its remembered durable content.
			if saved == nil {
				saved = make([]byte, bs)
				m.durable[lba] = saved
			}
			if p == nil {
				clear(saved[lo-lba*bs : hi-lba*bs])
			} else {
				copy(saved[lo-lba*bs:hi-lba*bs], p[lo-off:hi-off])
			}
		}
		switch {
		case !unmap:
			m.setMapped(lba, true)
		case lo == lba*bs && hi == (lba+1)*bs:
			m.setMapped(lba, false)
		}
	}
	if p == nil {
		clear(m.data[off:end])
	} else {
		copy(m.data[off:], p)
	}
}

// isMapped reports whether block lba is allocated; the caller holds m.mu.
func (m *Memory) isMapped(lba int64) bool {
	return m.mapped[lba/64]&(1<<(lba%64)) != 0
}

// setMapped marks block lba allocated or not; the caller holds m.mu.
func (m *Memory) setMapped(lba int64, mapped bool) {
	if mapped {
		m.mapped[lba/64] |= 1 << (lba % 64)
	} else {
		m.mapped[lba/64] &^= 1 << (lba % 64)
	}
}

// Sync implements [Store]: everything written so far becomes durable.
func (m *Memory) Sync() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return &OpError{Op: opSync, Path: memoryPath, Err: ErrClosed}
	}
	clear(m.durable)
	return nil
}

// Crash simulates a power loss followed by a restart: every block changed
// without FUA since the last Sync (written, zeroed, unmapped, copied or
// cloned) returns to its durable content and allocation, and the store
// continues with that content as durable. Data written with FUA, or
// written before the last Sync, is kept.
func (m *Memory) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := int64(m.blockSize)
	for lba, saved := range m.durable {
		if saved == nil {
			clear(m.data[lba*bs : (lba+1)*bs])
		} else {
			copy(m.data[lba*bs:], saved)
		}
		m.setMapped(lba, saved != nil)
	}
	clear(m.durable)
}

// Size implements [Store].
func (m *Memory) Size() int64 { return m.size }

// BlockSize implements [Store].
func (m *Memory) BlockSize() int { return m.blockSize }

// PhysicalBlockSize implements [PhysicalBlockSizer]; it equals BlockSize.
func (m *Memory) PhysicalBlockSize() int { return m.blockSize }

// Close implements [Store] and releases the memory.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return &OpError{Op: opClose, Path: memoryPath, Err: ErrClosed}
	}
	m.closed = true
	m.data = nil
	m.mapped = nil
	m.durable = nil
	return nil
}

// check validates a request; the caller holds m.mu.
func (m *Memory) check(op string, off, n int64) error {
	if m.closed {
		return &OpError{Op: op, Path: memoryPath, Off: off, Len: int(n), Err: ErrClosed}
	}
	if err := checkRange(off, n, m.size); err != nil {
		return &OpError{Op: op, Path: memoryPath, Off: off, Len: int(n), Err: err}
	}
	return nil
}
