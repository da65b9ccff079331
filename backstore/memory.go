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
type Memory struct {
	size      int64
	blockSize int

	mu     sync.RWMutex
	data   []byte
	closed bool
	// durable maps the index of each block changed since the last Sync by a
	// write without FUA to that block's durable content.
	durable map[int64][]byte
}

// NewMemory returns a zero-filled memory store of size bytes with the given
// logical block size. It panics if [ValidateGeometry] rejects the geometry.
func NewMemory(size int64, blockSize int) *Memory {
	if err := ValidateGeometry(size, blockSize); err != nil {
		panic(err)
	}
	return &Memory{
		size:      size,
		blockSize: blockSize,
		data:      make([]byte, size),
		durable:   make(map[int64][]byte),
	}
}

// ReadAt implements [Store].
func (m *Memory) ReadAt(p []byte, off int64) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.check(opRead, off, len(p)); err != nil {
		return err
	}
	copy(p, m.data[off:])
	return nil
}

// WriteAt implements [Store].
func (m *Memory) WriteAt(p []byte, off int64, fua bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(writeOp(fua), off, len(p)); err != nil {
		return err
	}
	if len(p) == 0 {
		return nil
	}
	bs := int64(m.blockSize)
	end := off + int64(len(p))
	for lba := off / bs; lba*bs < end; lba++ {
		saved, dirty := m.durable[lba]
		switch {
		case !fua && !dirty:
			// First volatile change to this block since the last Sync:
			// remember what is durable now.
			m.durable[lba] = append([]byte(nil), m.data[lba*bs:(lba+1)*bs]...)
		case fua && dirty:
			// The bytes this write covers become durable; the rest of the
			// block keeps its remembered durable content.
			lo, hi := max(off, lba*bs), min(end, (lba+1)*bs)
			copy(saved[lo-lba*bs:hi-lba*bs], p[lo-off:hi-off])
		}
	}
	copy(m.data[off:], p)
	return nil
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

// Crash simulates a power loss followed by a restart: every block written
// without FUA since the last Sync returns to its durable content, and the
// store continues with that content as durable. Data written with FUA, or
// written before the last Sync, is kept.
func (m *Memory) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := int64(m.blockSize)
	for lba, saved := range m.durable {
		copy(m.data[lba*bs:], saved)
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
	m.durable = nil
	return nil
}

// check validates a request; the caller holds m.mu.
func (m *Memory) check(op string, off int64, n int) error {
	if m.closed {
		return &OpError{Op: op, Path: memoryPath, Off: off, Len: n, Err: ErrClosed}
	}
	if err := checkRange(off, n, m.size); err != nil {
		return &OpError{Op: op, Path: memoryPath, Off: off, Len: n, Err: err}
	}
	return nil
}
