package backstore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newStoreFunc opens a fresh, zero-filled store of the given geometry; the
// test's cleanup disposes of it.
type newStoreFunc func(t *testing.T, size int64, blockSize int) Store

// suiteSize is the store size the conformance suite uses: big enough for
// requests that cross the O_DIRECT bounce buffer size.
const suiteSize = 1 << 20

// runStoreSuite checks the behaviour every Store must share.
func runStoreSuite(t *testing.T, blockSize int, newStore newStoreFunc) {
	t.Run("Geometry", func(t *testing.T) {
		s := newStore(t, suiteSize, blockSize)
		assert.Equal(t, int64(suiteSize), s.Size())
		assert.Equal(t, blockSize, s.BlockSize())
		pbs := PhysicalBlockSize(s)
		assert.GreaterOrEqual(t, pbs, blockSize)
		assert.Zero(t, pbs%blockSize)
	})
	t.Run("ReadsZeroWhenNew", func(t *testing.T) {
		s := newStore(t, suiteSize, blockSize)
		p := bytes.Repeat([]byte{0xff}, 3*blockSize+7)
		require.NoError(t, s.ReadAt(p, int64(blockSize)-3))
		assert.Equal(t, make([]byte, len(p)), p)
	})
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, blockSize, newStore(t, suiteSize, blockSize)) })
	t.Run("EmptyRequests", func(t *testing.T) {
		s := newStore(t, suiteSize, blockSize)
		for _, off := range []int64{0, 4096, suiteSize} {
			assert.NoError(t, s.ReadAt(nil, off))
			assert.NoError(t, s.WriteAt([]byte{}, off, false))
			assert.NoError(t, s.WriteAt(nil, off, true))
		}
	})
	t.Run("OutOfRange", func(t *testing.T) { testOutOfRange(t, newStore(t, suiteSize, blockSize)) })
	t.Run("RandomAgainstModel", func(t *testing.T) { testRandomOps(t, newStore(t, suiteSize, blockSize)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, newStore(t, suiteSize, blockSize)) })
	t.Run("Closed", func(t *testing.T) {
		s := newStore(t, suiteSize, blockSize)
		require.NoError(t, s.Close())
		p := make([]byte, blockSize)
		assert.ErrorIs(t, s.ReadAt(p, 0), ErrClosed)
		assert.ErrorIs(t, s.WriteAt(p, 0, false), ErrClosed)
		assert.ErrorIs(t, s.WriteAt(p, 0, true), ErrClosed)
		assert.ErrorIs(t, s.Sync(), ErrClosed)
		assert.ErrorIs(t, s.Close(), ErrClosed)
	})
}

func testRoundTrip(t *testing.T, bs int, s Store) {
	model := make([]byte, s.Size())
	tests := []struct {
		name   string
		off    int64
		n      int
		memOff int // offset of the data inside a larger buffer: tests misaligned memory
		fua    bool
	}{
		{"one block", 0, bs, 0, false},
		{"one block FUA", int64(bs), bs, 0, true},
		{"many blocks", int64(4 * bs), 16 * bs, 0, false},
		{"many blocks FUA", int64(24 * bs), 16 * bs, 0, true},
		{"misaligned memory", int64(48 * bs), 4 * bs, 1, false},
		{"misaligned memory FUA", int64(56 * bs), 4 * bs, 3, true},
		{"sub-block", int64(64*bs) + 17, 100, 0, false},
		{"sub-block FUA", int64(65*bs) + 1, bs - 2, 0, true},
		{"straddles blocks", int64(70*bs) - 5, bs + 10, 5, false},
		{"straddles blocks FUA", int64(80*bs) - 1, 3*bs + 2, 0, true},
		{"bigger than a bounce buffer", 3, bounceSize + 3*bs + 5, 7, false},
		{"bigger than a bounce buffer FUA", suiteSize - bounceSize - 2*int64(bs) - 9, bounceSize + 2*bs + 9, 0, true},
		{"last byte", suiteSize - 1, 1, 0, true},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, tt.memOff+tt.n)
			fillRandom(rng, buf)
			p := buf[tt.memOff:]
			require.NoError(t, s.WriteAt(p, tt.off, tt.fua))
			copy(model[tt.off:], p)

			got := make([]byte, tt.memOff+tt.n)
			require.NoError(t, s.ReadAt(got[tt.memOff:], tt.off))
			require.True(t, bytes.Equal(p, got[tt.memOff:]), "read back differs")
		})
	}
	require.NoError(t, s.Sync())
	got := make([]byte, s.Size())
	require.NoError(t, s.ReadAt(got, 0))
	require.True(t, bytes.Equal(model, got), "store differs from model")
}

func testOutOfRange(t *testing.T, s Store) {
	size := s.Size()
	last := make([]byte, s.BlockSize())
	fillRandom(rand.New(rand.NewPCG(3, 4)), last)
	require.NoError(t, s.WriteAt(last, size-int64(len(last)), false))
	tests := []struct {
		name string
		off  int64
		n    int
	}{
		{"negative offset", -1, 1},
		{"negative offset, empty", -512, 0},
		{"starts past the end", size + 1, 0},
		{"starts at the end", size, 1},
		{"ends past the end", size - 1, 2},
		{"much longer than the store", 0, int(size) + 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			for _, err := range []error{s.ReadAt(p, tt.off), s.WriteAt(p, tt.off, false), s.WriteAt(p, tt.off, true)} {
				require.ErrorIs(t, err, ErrOutOfRange)
				var oe *OpError
				require.ErrorAs(t, err, &oe)
				assert.Equal(t, tt.off, oe.Off)
				assert.Equal(t, tt.n, oe.Len)
			}
		})
	}
	got := make([]byte, len(last))
	require.NoError(t, s.ReadAt(got, size-int64(len(got))))
	assert.Equal(t, last, got, "a rejected write changed the store")
}

// testRandomOps applies random reads, writes and syncs to s and to a plain
// byte slice, and checks they agree.
func testRandomOps(t *testing.T, s Store) {
	rng := rand.New(rand.NewPCG(5, 6))
	size := s.Size()
	model := make([]byte, size)
	for range 200 {
		off := rng.Int64N(size)
		n := rng.IntN(int(min(size-off, 3*bounceSize/2)) + 1)
		if rng.IntN(4) == 0 {
			n = min(n, 2*s.BlockSize())
		}
		memOff := rng.IntN(2) * (1 + rng.IntN(511))
		buf := make([]byte, memOff+n)
		p := buf[memOff:]
		switch rng.IntN(5) {
		case 0, 1:
			fillRandom(rng, p)
			require.NoError(t, s.WriteAt(p, off, rng.IntN(2) == 0))
			copy(model[off:], p)
		case 2:
			require.NoError(t, s.Sync())
		default:
			require.NoError(t, s.ReadAt(p, off))
			require.True(t, bytes.Equal(model[off:off+int64(n)], p), "read at %d, length %d differs from model", off, n)
		}
	}
	got := make([]byte, size)
	require.NoError(t, s.ReadAt(got, 0))
	require.True(t, bytes.Equal(model, got), "store differs from model")
}

// testConcurrentWriters runs writers on disjoint regions that share blocks
// with their neighbours, plus readers and syncs, and checks no write
// disturbed another region.
func testConcurrentWriters(t *testing.T, s Store) {
	const (
		writers = 6
		region  = 1000 // not a multiple of any block size
		rounds  = 40
	)
	final := make([][]byte, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Go(func() {
			off := int64(w*region + 100)
			p := make([]byte, region)
			got := make([]byte, region)
			for r := range rounds {
				for i := range p {
					p[i] = byte(w*31 + r*7 + i)
				}
				if err := s.WriteAt(p, off, r%3 == 0); err != nil {
					errs <- err
					return
				}
				if err := s.ReadAt(got, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(p, got) {
					errs <- errors.New("a writer's region changed under it")
					return
				}
			}
			final[w] = p
		})
	}
	wg.Go(func() {
		for range rounds / 4 {
			if err := s.Sync(); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for w := range writers {
		got := make([]byte, region)
		require.NoError(t, s.ReadAt(got, int64(w*region+100)))
		assert.Equal(t, final[w], got, "writer %d", w)
	}
	edge := make([]byte, 100)
	require.NoError(t, s.ReadAt(edge, 0))
	assert.Equal(t, make([]byte, 100), edge, "bytes before the first region changed")
}

func fillRandom(rng *rand.Rand, p []byte) {
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
}

// geometryOnly hides everything but the Store methods of the store it wraps.
type geometryOnly struct{ Store }

// badPhysical reports a physical block size that is not a multiple of the
// logical one.
type badPhysical struct{ Store }

func (badPhysical) PhysicalBlockSize() int { return 1000 }

func TestPhysicalBlockSize(t *testing.T) {
	m := NewMemory(1<<20, 4096)
	tests := []struct {
		name string
		s    Store
		want int
	}{
		{"implements PhysicalBlockSizer", m, 4096},
		{"does not implement it", geometryOnly{m}, 4096},
		{"reports an unusable value", badPhysical{m}, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, PhysicalBlockSize(tt.s))
		})
	}
}
