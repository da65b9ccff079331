package iscsi

import (
	"math/bits"
	"sync"
)

// buffer is a pooled data buffer: data-out collected for a command, or the
// data-in a command produced. Buffers come in power-of-two size classes so
// a pool always hands out one large enough.
type buffer struct {
	b     []byte
	class int // index into bufferPools; -1 for buffers too large to pool
}

const (
	minBufferShift = 9  // 512 bytes
	maxBufferShift = 23 // 8 MiB, scsi.MaxTransferBytes
)

var bufferPools [maxBufferShift - minBufferShift + 1]sync.Pool

func init() {
	for i := range bufferPools {
		size := 1 << (minBufferShift + i)
		class := i
		bufferPools[i].New = func() any { return &buffer{b: make([]byte, size), class: class} }
	}
}

// getBuffer returns a buffer of at least n bytes; its b is sliced to n.
// The content is not cleared.
func getBuffer(n int) *buffer {
	shift := minBufferShift
	if n > 1<<minBufferShift {
		shift = bits.Len(uint(n - 1))
	}
	if shift > maxBufferShift {
		return &buffer{b: make([]byte, n), class: -1}
	}
	buf := bufferPools[shift-minBufferShift].Get().(*buffer)
	buf.b = buf.b[:n]
	return buf
}

// release returns the buffer to its pool; it must not be used afterwards.
func (b *buffer) release() {
	if b == nil || b.class < 0 {
		return
	}
	b.b = b.b[:cap(b.b)]
	bufferPools[b.class].Put(b)
}

// budget bounds bytes held by many goroutines at once: each reservation
// either fits under the limit or is refused at once, never waited for, so
// a connection's reader is never blocked by another connection's data.
type budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
}

// reserve takes n bytes if they fit and reports whether it did.
func (b *budget) reserve(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return false
	}
	b.used += n
	return true
}

// release returns n reserved bytes.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}
