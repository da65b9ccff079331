package rod

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

// TestCopyRandomAgainstModel runs random lists of valid 02h and 0Ah
// segments between and within three logical units (512- and 4096-byte
// blocks; one whose stores refuse offloads, so it is always buffered),
// small and spanning several buffers, overlapping or not, and compares
// every medium with a memmove model after each list.
func TestCopyRandomAgainstModel(t *testing.T) {
	const size = 12 * mib
	iterations := 60
	if testing.Short() {
		iterations = 10
	}
	// ROD_RANDOM_SEED picks another sequence of lists.
	seed, _ := strconv.ParseUint(os.Getenv("ROD_RANDOM_SEED"), 10, 64)
	buffered := backstore.NewFault(backstore.NewMemory(size, 512))
	noOffload(buffered)
	r := newRig(t, Config{BufferBytes: 8 * mib}, memDisk(size/512, 512), memDisk(size/4096, 4096), diskSpec{store: buffered})
	bs := []int64{512, 4096, 512}
	rng := rand.New(rand.NewPCG(1, seed))
	length := func(max int64) int64 {
		switch rng.IntN(4) {
		case 0:
			return rng.Int64N(min(max, 4096)) + 1
		case 1:
			return rng.Int64N(min(max, 64<<10)) + 1
		default:
			return rng.Int64N(max) + 1
		}
	}
	for it := range iterations {
		var segs []Segment
		type move struct {
			src, dst       int
			srcOff, dstOff int64
			n              int64
		}
		var moves []move
		for range 1 + rng.IntN(3) {
			src, dst := rng.IntN(3), rng.IntN(3)
			if rng.IntN(3) == 0 {
				dst = src
			}
			if rng.IntN(2) == 0 {
				// 02h: whole blocks on both sides.
				unit := max(bs[src], bs[dst])
				blocks := length(min(size/unit, 0xFFFF*512/unit)) // at most 0xFFFF blocks of the smaller size
				n := blocks * unit
				srcLBA := rng.Int64N((size-n)/bs[src] + 1)
				dstLBA := rng.Int64N((size-n)/bs[dst] + 1)
				if src == dst && rng.IntN(2) == 0 {
					// Overlap by a little.
					shift := rng.Int64N(n/bs[dst]+1) * bs[dst]
					if srcLBA*bs[src]+shift+n <= size {
						dstLBA = (srcLBA*bs[src] + shift) / bs[dst]
					}
				}
				s := b2b(uint16(src), uint16(dst), uint32(n/bs[src]), uint64(srcLBA), uint64(dstLBA))
				if bs[dst] > bs[src] && rng.IntN(2) == 0 {
					s.DC, s.Blocks = true, uint32(n/bs[dst])
				}
				segs = append(segs, s)
				moves = append(moves, move{src, dst, srcLBA * bs[src], dstLBA * bs[dst], n})
				continue
			}
			// 0Ah: bytes from offsets inside blocks.
			n := length(size - 8192)
			srcStart := rng.Int64N(size - n + 1)
			dstStart := rng.Int64N(size - n + 1)
			if src == dst && rng.IntN(2) == 0 {
				dstStart = min(size-n, max(0, srcStart+rng.Int64N(2*n+1)-n))
			}
			segs = append(segs, b2bOffset(uint16(src), uint16(dst), uint32(n),
				uint64(srcStart/bs[src]), uint16(srcStart%bs[src]), uint64(dstStart/bs[dst]), uint16(dstStart%bs[dst])))
			moves = append(moves, move{src, dst, srcStart, dstStart, n})
		}
		to := rng.IntN(3)
		t.Run(fmt.Sprint(it), func(t *testing.T) {
			r.t = t
			_, s := r.runOn(t.Context(), to, r.list(uint32(it), segs...), false)
			require.Nil(t, s, "segments %+v: %v", segs, s)
			var total uint64
			for _, m := range moves {
				r.copyModel(m.src, m.srcOff, m.dst, m.dstOff, m.n)
				total += uint64(m.n)
			}
			r.verify()
			requireProgress(t, r, to, uint32(it), uint32(len(segs)), total)
			require.Len(t, r.m.buffers, cap(r.m.buffers))
		})
	}
}
