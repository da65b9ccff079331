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

// support says whether a store under test is expected to serve a
// capability.
type support int

const (
	// supportMaybe: it depends on the file system or device the test
	// runs on; both outcomes are checked for consistency.
	supportMaybe support = iota
	supportYes
	supportNo
)

// capOpts tells the capability suites what a store should do.
type capOpts struct {
	// copy: CopyRange works between two stores the factory makes.
	copy bool
	// clone: CloneRange works between two stores the factory makes.
	clone support
	// unmap: Unmap deallocates.
	unmap support
	// tracksAllocation: Allocated reports deallocated blocks; otherwise
	// it reports the whole store mapped.
	tracksAllocation bool
}

// runCapabilitySuite checks WriteZeroes, Unmap and Allocated on stores
// made by newStore.
func runCapabilitySuite(t *testing.T, blockSize int, newStore newStoreFunc, opts capOpts) {
	t.Run("WriteZeroes", func(t *testing.T) {
		testZeroRanges(t, newStore(t, suiteSize, blockSize), func(s Store, off, n int64, fua bool) error {
			return WriteZeroes(s, off, n, fua)
		})
	})
	t.Run("Unmap", func(t *testing.T) {
		s := newStore(t, suiteSize, blockSize)
		model := fillStore(t, s, 7)
		err := Unmap(s, int64(blockSize), int64(4*blockSize))
		if errors.Is(err, ErrNotSupported) {
			require.NotEqual(t, supportYes, opts.unmap, "Unmap: %v", err)
			assertStore(t, model, s, "an unsupported Unmap changed the store")
			if opts.unmap == supportMaybe {
				t.Skipf("the medium cannot deallocate: %v", err)
			}
			return
		}
		require.NoError(t, err)
		require.NotEqual(t, supportNo, opts.unmap, "Unmap worked")
		testZeroRanges(t, s, func(s Store, off, n int64, _ bool) error { return Unmap(s, off, n) })
	})
	t.Run("Allocated", func(t *testing.T) { testAllocated(t, newStore(t, suiteSize, blockSize), opts) })
	t.Run("Boundaries", func(t *testing.T) { testCapabilityBoundaries(t, newStore(t, suiteSize, blockSize)) })
	t.Run("RandomAgainstModel", func(t *testing.T) { testRandomCapabilityOps(t, newStore(t, suiteSize, blockSize), opts) })
	t.Run("ConcurrentZeroers", func(t *testing.T) { testConcurrentZeroers(t, newStore(t, suiteSize, blockSize)) })
	t.Run("Closed", func(t *testing.T) {
		s := newStore(t, suiteSize, blockSize)
		require.NoError(t, s.Close())
		bs := int64(blockSize)
		assert.ErrorIs(t, WriteZeroes(s, 0, bs, false), ErrClosed)
		assert.ErrorIs(t, WriteZeroes(s, 0, bs, true), ErrClosed)
		assert.ErrorIs(t, Unmap(s, 0, bs), ErrClosed)
		_, _, err := Allocated(s, 0)
		assert.ErrorIs(t, err, ErrClosed)
	})
}

// fillStore writes random data over all of s, syncs, and returns a copy.
func fillStore(t *testing.T, s Store, seed uint64) []byte {
	t.Helper()
	model := make([]byte, s.Size())
	fillRandom(rand.New(rand.NewPCG(seed, seed+1)), model)
	require.NoError(t, s.WriteAt(model, 0, false))
	require.NoError(t, s.Sync())
	return model
}

// assertStore checks s holds exactly want.
func assertStore(t *testing.T, want []byte, s Store, msg string) {
	t.Helper()
	got := make([]byte, s.Size())
	require.NoError(t, s.ReadAt(got, 0))
	require.True(t, bytes.Equal(want, got), msg)
}

// testZeroRanges fills s and zeroes ranges of every shape with zero,
// checking the result against a model each time.
func testZeroRanges(t *testing.T, s Store, zero func(s Store, off, n int64, fua bool) error) {
	bs := int64(s.BlockSize())
	size := s.Size()
	model := fillStore(t, s, 11)
	tests := []struct {
		name string
		off  int64
		n    int64
		fua  bool
	}{
		{"one block", 0, bs, false},
		{"one block FUA", 2 * bs, bs, true},
		{"many blocks", 8 * bs, 24 * bs, false},
		{"sub-block", 40*bs + 3, 10, false},
		{"straddles blocks", 48*bs - 7, 2*bs + 9, true},
		{"bigger than a bounce buffer", 64*bs + 1, bounceSize + 2*bs, false},
		{"last block", size - bs, bs, true},
		{"last byte", size - 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, zero(s, tt.off, tt.n, tt.fua))
			clear(model[tt.off : tt.off+tt.n])
			assertStore(t, model, s, "store differs from model")
		})
	}
	require.NoError(t, s.Sync())
	assertStore(t, model, s, "store differs from model after Sync")
}

// testAllocated checks Allocated's extents on a fresh store, after a write
// and after an Unmap, with ranges aligned to 16 KiB so that any file
// system block size up to that gives the same answers.
func testAllocated(t *testing.T, s Store, opts capOpts) {
	const k = 16 << 10
	size := s.Size()
	bs := int64(s.BlockSize())
	tracked := func(extents ...extent) []extent {
		if !opts.tracksAllocation {
			return []extent{{0, size, true}}
		}
		return extents
	}
	assert.Equal(t, tracked(extent{0, size, false}), extents(t, s), "a new store")

	require.NoError(t, s.WriteAt(bytes.Repeat([]byte{1}, 4*k), 8*k, false))
	assert.Equal(t, tracked(extent{0, 8 * k, false}, extent{8 * k, 12 * k, true}, extent{12 * k, size, false}), extents(t, s), "after a write")
	mapped, end, err := Allocated(s, 9*k+bs+5)
	require.NoError(t, err)
	assert.True(t, mapped, "an offset inside a block")
	if opts.tracksAllocation {
		assert.Equal(t, int64(12*k), end)
	} else {
		assert.Equal(t, size, end)
	}

	err = Unmap(s, 9*k, 2*k)
	if errors.Is(err, ErrNotSupported) {
		return
	}
	require.NoError(t, err)
	assert.Equal(t, tracked(
		extent{0, 8 * k, false}, extent{8 * k, 9 * k, true}, extent{9 * k, 11 * k, false},
		extent{11 * k, 12 * k, true}, extent{12 * k, size, false},
	), extents(t, s), "after an Unmap")
	got := make([]byte, 2*k)
	require.NoError(t, s.ReadAt(got, 9*k))
	assert.Equal(t, make([]byte, 2*k), got, "unmapped blocks read as zeroes")
}

// extent is one run of blocks in the same allocation state.
type extent struct {
	off, end int64
	mapped   bool
}

// extents walks Allocated over all of s, checking each answer is well
// formed, and returns the runs it reported, merging neighbours in the same
// state.
func extents(t *testing.T, s Store) []extent {
	t.Helper()
	var all []extent
	for off := int64(0); off < s.Size(); {
		mapped, end, err := Allocated(s, off)
		require.NoError(t, err)
		require.Greater(t, end, off)
		require.LessOrEqual(t, end, s.Size())
		require.Zero(t, end%int64(s.BlockSize()), "extent end %d is not on a block boundary", end)
		if n := len(all); n > 0 && all[n-1].mapped == mapped {
			all[n-1].end = end
		} else {
			all = append(all, extent{off, end, mapped})
		}
		off = end
	}
	return all
}

// testCapabilityBoundaries checks empty and out-of-range requests.
func testCapabilityBoundaries(t *testing.T, s Store) {
	size := s.Size()
	bs := int64(s.BlockSize())
	model := fillStore(t, s, 13)
	for _, off := range []int64{0, 4096, size} {
		assert.NoError(t, WriteZeroes(s, off, 0, false))
		assert.NoError(t, WriteZeroes(s, off, 0, true))
		assert.NoError(t, Unmap(s, off, 0))
	}
	tests := []struct {
		name string
		off  int64
		n    int64
	}{
		{"negative offset", -1, 1},
		{"negative offset, empty", -bs, 0},
		{"negative length", 0, -1},
		{"starts past the end", size + 1, 0},
		{"starts at the end", size, 1},
		{"ends past the end", size - 1, 2},
		{"much longer than the store", 0, size + bs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, err := range []error{WriteZeroes(s, tt.off, tt.n, false), WriteZeroes(s, tt.off, tt.n, true), Unmap(s, tt.off, tt.n)} {
				require.ErrorIs(t, err, ErrOutOfRange)
				var oe *OpError
				require.ErrorAs(t, err, &oe)
				assert.Equal(t, tt.off, oe.Off)
				assert.Equal(t, int(tt.n), oe.Len)
			}
		})
	}
	for _, off := range []int64{-1, size, size + bs} {
		_, _, err := Allocated(s, off)
		require.ErrorIs(t, err, ErrOutOfRange, "Allocated(%d)", off)
		var oe *OpError
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, OpError{Op: "allocated", Path: oe.Path, Off: off, Len: 1, Err: oe.Err}, *oe)
	}
	assertStore(t, model, s, "a rejected request changed the store")
}

// testRandomCapabilityOps applies random writes, zeroes, unmaps, copies
// within the store and syncs to s and to a byte slice, and checks they
// agree.
func testRandomCapabilityOps(t *testing.T, s Store, opts capOpts) {
	rng := rand.New(rand.NewPCG(7, 8))
	size := s.Size()
	model := make([]byte, size)
	for i := range 150 {
		off := rng.Int64N(size)
		n := rng.Int64N(min(size-off, 3*bounceSize/2) + 1)
		if rng.IntN(3) == 0 {
			n = min(n, 2*int64(s.BlockSize()))
		}
		fua := rng.IntN(2) == 0
		switch rng.IntN(6) {
		case 0:
			p := make([]byte, n)
			fillRandom(rng, p)
			require.NoError(t, s.WriteAt(p, off, fua))
			copy(model[off:], p)
		case 1:
			require.NoError(t, WriteZeroes(s, off, n, fua), "step %d", i)
			clear(model[off : off+n])
		case 2:
			err := Unmap(s, off, n)
			if errors.Is(err, ErrNotSupported) {
				require.NotEqual(t, supportYes, opts.unmap, "step %d", i)
				break
			}
			require.NoError(t, err, "step %d", i)
			clear(model[off : off+n])
		case 3:
			srcOff := rng.Int64N(size - n + 1)
			err := CopyRange(s, off, s, srcOff, n, fua)
			overlap := srcOff < off+n && off < srcOff+n
			if !opts.copy || overlap {
				require.ErrorIs(t, err, ErrNotSupported, "step %d", i)
				break
			}
			require.NoError(t, err, "step %d", i)
			copy(model[off:off+n], model[srcOff:srcOff+n])
		case 4:
			require.NoError(t, s.Sync())
		default:
			p := make([]byte, n)
			require.NoError(t, s.ReadAt(p, off))
			require.True(t, bytes.Equal(model[off:off+n], p), "step %d: read at %d, length %d differs from model", i, off, n)
		}
	}
	assertStore(t, model, s, "store differs from model")
}

// testConcurrentZeroers runs goroutines that write, zero and unmap their
// own regions, which share blocks with their neighbours, and checks no
// region was disturbed by another.
func testConcurrentZeroers(t *testing.T, s Store) {
	const (
		workers = 6
		region  = 3000 // not a multiple of any block size
		rounds  = 20
	)
	final := make([][]byte, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			off := int64(w*region + 100)
			want := make([]byte, region)
			got := make([]byte, region)
			for r := range rounds {
				var err error
				switch r % 3 {
				case 0:
					for i := range want {
						want[i] = byte(w*31 + r*7 + i)
					}
					err = s.WriteAt(want, off, r%2 == 0)
				case 1:
					err = WriteZeroes(s, off+region/4, region/2, r%2 == 0)
					clear(want[region/4 : region/4+region/2])
				case 2:
					err = Unmap(s, off+region/3, region/3)
					if errors.Is(err, ErrNotSupported) {
						err = nil
						break
					}
					clear(want[region/3 : 2*region/3])
				}
				if err == nil {
					err = s.ReadAt(got, off)
				}
				if err == nil && !bytes.Equal(want, got) {
					err = errors.New("a worker's region changed under it")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			final[w] = want
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for w := range workers {
		got := make([]byte, region)
		require.NoError(t, s.ReadAt(got, int64(w*region+100)))
		assert.Equal(t, final[w], got, "worker %d", w)
	}
}

// runOffloadSuite checks CopyRange and CloneRange between stores made by
// newStore, and within one.
func runOffloadSuite(t *testing.T, blockSize int, newStore newStoreFunc, opts capOpts) {
	t.Run("CopyRange", func(t *testing.T) {
		src, dst := newStore(t, suiteSize, blockSize), newStore(t, suiteSize, blockSize)
		if !opts.copy {
			srcModel, dstModel := fillStore(t, src, 1), fillStore(t, dst, 2)
			require.ErrorIs(t, CopyRange(dst, 0, src, 0, int64(blockSize), false), ErrNotSupported)
			assertStore(t, dstModel, dst, "an unsupported copy changed the destination")
			assertStore(t, srcModel, src, "an unsupported copy changed the source")
			return
		}
		testCopyRanges(t, dst, src, 0, CopyRange)
	})
	t.Run("CopyRangeWithinStore", func(t *testing.T) {
		s := newStore(t, suiteSize, blockSize)
		if !opts.copy {
			require.ErrorIs(t, CopyRange(s, 0, s, int64(blockSize), int64(blockSize), false), ErrNotSupported)
			return
		}
		testWithinStore(t, s, 0, CopyRange)
	})
	t.Run("CopyRangeErrors", func(t *testing.T) {
		dst := newStore(t, suiteSize, blockSize)
		_, has := dst.(RangeCopier)
		testOffloadErrors(t, dst, newStore(t, suiteSize, blockSize), has, 0, CopyRange)
	})
	t.Run("CloneRange", func(t *testing.T) {
		src, dst := newStore(t, suiteSize, blockSize), newStore(t, suiteSize, blockSize)
		align := int64(cloneAlignment(dst))
		if opts.clone == supportYes {
			require.Positive(t, align)
			require.Zero(t, align%int64(blockSize), "the clone alignment %d is not a multiple of the block size", align)
		}
		srcModel, dstModel := fillStore(t, src, 3), fillStore(t, dst, 4)
		err := CloneRange(dst, 0, src, 0, max(align, int64(blockSize)), false)
		if errors.Is(err, ErrNotSupported) {
			require.NotEqual(t, supportYes, opts.clone, "CloneRange: %v", err)
			assertStore(t, dstModel, dst, "an unsupported clone changed the destination")
			assertStore(t, srcModel, src, "an unsupported clone changed the source")
			if opts.clone == supportMaybe {
				t.Skipf("the store cannot clone: %v", err)
			}
			return
		}
		require.NoError(t, err)
		require.NotEqual(t, supportNo, opts.clone, "CloneRange worked")
		testCopyRanges(t, dst, src, align, CloneRange)
	})
	t.Run("CloneRangeWithinStore", func(t *testing.T) {
		s := newStore(t, suiteSize, blockSize)
		a := max(int64(cloneAlignment(s)), int64(blockSize))
		err := CloneRange(s, 0, s, a, a, false)
		if errors.Is(err, ErrNotSupported) {
			require.NotEqual(t, supportYes, opts.clone, "CloneRange: %v", err)
			if opts.clone == supportMaybe {
				t.Skipf("the store cannot clone: %v", err)
			}
			return
		}
		require.NoError(t, err)
		require.NotEqual(t, supportNo, opts.clone, "CloneRange worked")
		testWithinStore(t, s, a, CloneRange)
	})
	t.Run("CloneRangeErrors", func(t *testing.T) {
		dst := newStore(t, suiteSize, blockSize)
		_, has := dst.(RangeCloner)
		testOffloadErrors(t, dst, newStore(t, suiteSize, blockSize), has, int64(cloneAlignment(dst)), CloneRange)
	})
}

// offloadFunc is CopyRange or CloneRange.
type offloadFunc func(dst Store, dstOff int64, src Store, srcOff, n int64, fua bool) error

// cloneAlignment returns s's clone alignment, or 0 if it cannot clone.
func cloneAlignment(s Store) int {
	if c, ok := s.(RangeCloner); ok {
		return c.CloneAlignment()
	}
	return 0
}

// testCopyRanges fills src and dst and copies ranges of every shape from
// src to dst with do, checking both stores against models each time.
// Ranges are multiples of align for clones; align is 0 for copies, which
// also get unaligned ranges.
func testCopyRanges(t *testing.T, dst, src Store, align int64, do offloadFunc) {
	bs := int64(dst.BlockSize())
	size := dst.Size()
	a := max(align, bs)
	srcModel, dstModel := fillStore(t, src, 21), fillStore(t, dst, 22)
	type copyCase struct {
		name           string
		dstOff, srcOff int64
		n              int64
		fua            bool
	}
	tests := []copyCase{
		{"same offset", 16 * a, 16 * a, 16 * a, false},
		{"other offset FUA", 64 * a, 8 * a, 32 * a, true},
		{"to the start", 0, 100 * a, 8 * a, false},
		{"to the end", size - 4*a, 4 * a, 4 * a, true},
		{"whole store", 0, 0, size, false},
	}
	if align == 0 {
		tests = append(tests,
			copyCase{"unaligned", 3*bs + 5, 7*bs + 1, 5*bs - 3, false},
			copyCase{"sub-block", 16*bs + 9, 20*bs + 100, 17, true},
			copyCase{"bigger than a bounce buffer", 1, 300 << 10, bounceSize + 3*bs, false},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, do(dst, tt.dstOff, src, tt.srcOff, tt.n, tt.fua))
			copy(dstModel[tt.dstOff:], srcModel[tt.srcOff:tt.srcOff+tt.n])
			assertStore(t, dstModel, dst, "destination differs from model")
			assertStore(t, srcModel, src, "the source changed")
		})
	}
	require.NoError(t, dst.Sync())
	assertStore(t, dstModel, dst, "destination differs from model after Sync")

	// The copy is independent of its source from now on, in both directions.
	p := bytes.Repeat([]byte{0xa5}, int(bs))
	require.NoError(t, src.WriteAt(p, 0, false))
	require.NoError(t, dst.WriteAt(p, bs, false))
	copy(srcModel, p)
	copy(dstModel[bs:], p)
	assertStore(t, srcModel, src, "after a write to the source")
	assertStore(t, dstModel, dst, "after a write to the destination")
}

// testWithinStore copies or clones between non-overlapping ranges of one
// store, and checks overlapping ranges are refused. align is the clone
// alignment, or 0 for copies.
func testWithinStore(t *testing.T, s Store, align int64, do offloadFunc) {
	a := max(align, int64(s.BlockSize()))
	model := fillStore(t, s, 31)
	type rng struct{ dstOff, srcOff, n int64 }
	tests := []rng{
		{16 * a, 0, 8 * a},
		{0, 24 * a, 16 * a},
		{40 * a, 32 * a, 8 * a},
	}
	if align == 0 {
		tests = append(tests, rng{100*a + 3, 120*a - 1, 3*a + 7})
	}
	for _, tt := range tests {
		require.NoError(t, do(s, tt.dstOff, s, tt.srcOff, tt.n, false), "%+v", tt)
		copy(model[tt.dstOff:tt.dstOff+tt.n], model[tt.srcOff:tt.srcOff+tt.n])
		assertStore(t, model, s, "store differs from model")
	}
	for _, tt := range []rng{{0, 0, a}, {a, 2 * a, 2 * a}, {2 * a, a, 2 * a}} {
		require.ErrorIs(t, do(s, tt.dstOff, s, tt.srcOff, tt.n, false), ErrNotSupported, "overlapping %+v", tt)
	}
	assertStore(t, model, s, "a refused request changed the store")
}

// testOffloadErrors checks empty, out-of-range and unsupported copy or
// clone requests; has says whether dst has the capability at all, and
// align is its clone alignment when do clones.
func testOffloadErrors(t *testing.T, dst, src Store, has bool, align int64, do offloadFunc) {
	size := dst.Size()
	bs := int64(dst.BlockSize())
	srcModel, dstModel := fillStore(t, src, 41), fillStore(t, dst, 42)
	if has {
		for _, off := range []int64{0, size} {
			assert.NoError(t, do(dst, off, src, off, 0, false))
			assert.NoError(t, do(dst, off, src, 0, 0, true))
		}
	}
	tests := []struct {
		name           string
		dstOff, srcOff int64
		n              int64
	}{
		{"negative destination offset", -bs, 0, bs},
		{"negative source offset", 0, -bs, bs},
		{"negative length", 0, 0, -bs},
		{"destination past the end", size - bs, 0, 2 * bs},
		{"source past the end", 0, size - bs, 2 * bs},
		{"destination starts past the end", size + bs, 0, 0},
		{"source starts past the end", 0, size + bs, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := do(dst, tt.dstOff, src, tt.srcOff, tt.n, false)
			if !has {
				require.ErrorIs(t, err, ErrNotSupported)
				return
			}
			require.ErrorIs(t, err, ErrOutOfRange)
			var oe *OpError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, tt.dstOff, oe.Off, "the error names the destination range")
			assert.Equal(t, int(tt.n), oe.Len)
		})
	}
	t.Run("source of another kind", func(t *testing.T) {
		other := geometryOnly{NewMemory(size, int(bs))}
		require.ErrorIs(t, do(dst, 0, other, 0, bs, false), ErrNotSupported)
	})
	if a := align; a > 0 {
		t.Run("misaligned", func(t *testing.T) {
			for _, r := range [][3]int64{{a / 2, 0, a}, {0, a / 2, a}, {0, 0, a / 2}, {1, 0, a}} {
				require.ErrorIs(t, do(dst, r[0], src, r[1], r[2], false), ErrNotSupported, "%v", r)
			}
		})
	}
	assertStore(t, dstModel, dst, "a refused request changed the destination")
	assertStore(t, srcModel, src, "a refused request changed the source")
}
