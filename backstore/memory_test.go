package backstore

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newMemoryStore(t *testing.T, size int64, blockSize int) Store {
	m := NewMemory(size, blockSize)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestMemory(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		t.Run(strconv.Itoa(bs), func(t *testing.T) { runStoreSuite(t, bs, newMemoryStore) })
	}
}

func TestValidateGeometry(t *testing.T) {
	tests := []struct {
		name      string
		size      int64
		blockSize int
		wantErr   string
	}{
		{"512", 1 << 20, 512, ""},
		{"4096", 4096, 4096, ""},
		{"block size 520", 520 * 8, 520, "block size 520 is not supported"},
		{"block size 1024", 1 << 20, 1024, "block size 1024 is not supported"},
		{"block size 0", 1 << 20, 0, "block size 0 is not supported"},
		{"size 0", 0, 512, "size 0 bytes must be positive"},
		{"negative size", -4096, 512, "must be positive"},
		{"size not a multiple", 4096 + 512, 4096, "size 4608 bytes is not a multiple of the block size 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateGeometry(tt.size, tt.blockSize)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.NotPanics(t, func() { NewMemory(tt.size, tt.blockSize) })
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			assert.PanicsWithError(t, err.Error(), func() { NewMemory(tt.size, tt.blockSize) })
		})
	}
}

// memStep is one step of a crash scenario.
type memStep struct {
	op   string // "write", "fua", "zero", "zero-fua", "unmap", "sync" or "crash"
	off  int64
	n    int
	fill byte
}

func TestMemoryCrash(t *testing.T) {
	const bs = 512
	tests := []struct {
		name  string
		steps []memStep
		// want lists (offset, length, byte) runs expected after the last
		// step; every other byte must be zero.
		want []memStep
	}{
		{
			name:  "unsynced write is lost",
			steps: []memStep{{"write", 0, bs, 1}, {"crash", 0, 0, 0}},
		},
		{
			name:  "synced write survives",
			steps: []memStep{{"write", 0, bs, 1}, {"sync", 0, 0, 0}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 0, bs, 1}},
		},
		{
			name:  "FUA write survives",
			steps: []memStep{{"fua", bs, 2 * bs, 2}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", bs, 2 * bs, 2}},
		},
		{
			name:  "FUA write leaves other unsynced writes volatile",
			steps: []memStep{{"write", 0, bs, 1}, {"fua", 4 * bs, bs, 2}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 4 * bs, bs, 2}},
		},
		{
			name:  "FUA over an unsynced write of the same block",
			steps: []memStep{{"write", 0, bs, 1}, {"fua", 0, bs, 2}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 0, bs, 2}},
		},
		{
			name:  "partial FUA over an unsynced block keeps only the FUA bytes",
			steps: []memStep{{"write", 0, bs, 1}, {"fua", 10, 20, 2}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 10, 20, 2}},
		},
		{
			name: "unsynced overwrite of synced data reverts to the synced data",
			steps: []memStep{
				{"write", 0, 2 * bs, 1}, {"sync", 0, 0, 0},
				{"write", 100, bs, 2}, {"write", 200, 10, 3}, {"crash", 0, 0, 0},
			},
			want: []memStep{{"", 0, 2 * bs, 1}},
		},
		{
			name:  "unsynced overwrite of FUA data reverts to the FUA data",
			steps: []memStep{{"fua", 0, bs, 1}, {"write", 0, bs, 2}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 0, bs, 1}},
		},
		{
			name:  "sub-block writes straddling blocks",
			steps: []memStep{{"fua", bs - 3, 6, 1}, {"write", bs - 1, bs, 2}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", bs - 3, 6, 1}},
		},
		{
			name: "state after a crash is durable",
			steps: []memStep{
				{"write", 0, bs, 1}, {"sync", 0, 0, 0}, {"write", 0, bs, 2}, {"crash", 0, 0, 0},
				{"write", bs, bs, 3}, {"crash", 0, 0, 0},
			},
			want: []memStep{{"", 0, bs, 1}},
		},
		{
			name:  "data is readable before the crash",
			steps: []memStep{{"write", 0, bs, 1}, {"fua", bs, bs, 2}},
			want:  []memStep{{"", 0, bs, 1}, {"", bs, bs, 2}},
		},
		{
			name:  "unsynced zeroes are undone",
			steps: []memStep{{"fua", 0, 4 * bs, 1}, {"zero", bs, 2 * bs, 0}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 0, 4 * bs, 1}},
		},
		{
			name:  "FUA zeroes survive",
			steps: []memStep{{"fua", 0, 4 * bs, 1}, {"zero-fua", bs + 7, bs, 0}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 0, bs + 7, 1}, {"", 2*bs + 7, 2*bs - 7, 1}},
		},
		{
			name:  "FUA zeroes over an unsynced write keep only the zeroes",
			steps: []memStep{{"write", 0, 2 * bs, 1}, {"zero-fua", 10, 20, 0}, {"crash", 0, 0, 0}},
		},
		{
			name:  "unsynced unmap is undone",
			steps: []memStep{{"write", 0, 4 * bs, 1}, {"sync", 0, 0, 0}, {"unmap", 0, 4 * bs, 0}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 0, 4 * bs, 1}},
		},
		{
			name:  "synced unmap stays",
			steps: []memStep{{"fua", 0, 4 * bs, 1}, {"unmap", bs - 1, 2*bs + 2, 0}, {"sync", 0, 0, 0}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 0, bs - 1, 1}, {"", 3*bs + 1, bs - 1, 1}},
		},
		{
			name:  "FUA write into an unsynced unmap keeps the rest of the block's durable data",
			steps: []memStep{{"fua", 0, bs, 1}, {"unmap", 0, bs, 0}, {"fua", 10, 5, 2}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 0, 10, 1}, {"", 10, 5, 2}, {"", 15, bs - 15, 1}},
		},
		{
			name:  "FUA write into an unsynced write to a new block",
			steps: []memStep{{"write", 0, bs, 1}, {"fua", 10, 5, 2}, {"crash", 0, 0, 0}},
			want:  []memStep{{"", 10, 5, 2}},
		},
		{
			name:  "unmap reads as zeroes before the crash",
			steps: []memStep{{"fua", 0, 4 * bs, 1}, {"unmap", bs, bs, 0}},
			want:  []memStep{{"", 0, bs, 1}, {"", 2 * bs, 2 * bs, 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemory(16*bs, bs)
			for _, st := range tt.steps {
				switch st.op {
				case "write", "fua":
					require.NoError(t, m.WriteAt(bytes.Repeat([]byte{st.fill}, st.n), st.off, st.op == "fua"))
				case "zero", "zero-fua":
					require.NoError(t, m.WriteZeroes(st.off, int64(st.n), st.op == "zero-fua"))
				case "unmap":
					require.NoError(t, m.Unmap(st.off, int64(st.n)))
				case "sync":
					require.NoError(t, m.Sync())
				case "crash":
					m.Crash()
				}
			}
			want := make([]byte, m.Size())
			for _, w := range tt.want {
				copy(want[w.off:], bytes.Repeat([]byte{w.fill}, w.n))
			}
			got := make([]byte, m.Size())
			require.NoError(t, m.ReadAt(got, 0))
			assert.Equal(t, want, got)
		})
	}
}

// FuzzMemoryCrash checks Memory's durability and allocation models against
// a byte-by-byte model that keeps, for every byte, its current and its
// durable value, and for every block whether it is allocated now and
// durably.
func FuzzMemoryCrash(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 10, 3, 2, 0, 0, 0, 3, 0, 0, 0})
	f.Add([]byte{0, 0, 2, 0, 200, 1, 1, 2, 1, 255, 3, 0, 0, 0, 0, 0, 1, 0, 10})
	f.Add([]byte{1, 0, 0, 8, 0, 6, 1, 255, 4, 2, 5, 0, 10, 0, 20, 3, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 4, 0, 2, 0, 0, 0, 0, 6, 0, 0, 4, 0, 4, 0, 100, 0, 50, 3, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		const bs, size = 512, 8 * 512
		m := NewMemory(size, bs)
		cur, durable := make([]byte, size), make([]byte, size)
		var curMapped, durMapped [size / bs]bool
		for i := 0; len(prog) >= 5 && i < 64; i++ {
			op := prog[0] % 7
			off := int64(binary.BigEndian.Uint16(prog[1:])) % size
			n := int64(binary.BigEndian.Uint16(prog[3:])) % (size - off + 1)
			prog = prog[5:]
			p := bytes.Repeat([]byte{byte(i + 1)}, int(n))
			// first and last are the blocks the range touches, whole the
			// blocks it covers whole.
			first, last := off/bs, (off+n-1)/bs
			wholeFirst, wholeLast := (off+bs-1)/bs, (off+n)/bs-1
			switch op {
			case 0, 1, 4, 5:
				fua := op == 1 || op == 5
				if op >= 4 {
					require.NoError(t, m.WriteZeroes(off, n, fua))
					clear(p)
				} else {
					require.NoError(t, m.WriteAt(p, off, fua))
				}
				copy(cur[off:], p)
				for b := first; n > 0 && b <= last; b++ {
					curMapped[b] = true
					if fua {
						durMapped[b] = true
					}
				}
				if fua {
					copy(durable[off:], p)
				}
			case 6:
				require.NoError(t, m.Unmap(off, n))
				clear(cur[off : off+n])
				for b := wholeFirst; b <= wholeLast; b++ {
					curMapped[b] = false
				}
			case 2:
				require.NoError(t, m.Sync())
				copy(durable, cur)
				durMapped = curMapped
			case 3:
				m.Crash()
				copy(cur, durable)
				curMapped = durMapped
			}
			got := make([]byte, size)
			require.NoError(t, m.ReadAt(got, 0))
			require.Equal(t, cur, got, "step %d", i)
			for b := range curMapped {
				mapped, _, err := m.Allocated(int64(b) * bs)
				require.NoError(t, err)
				require.Equal(t, curMapped[b], mapped, "step %d: block %d", i, b)
			}
		}
	})
}

var memoryCapabilities = capOpts{copy: true, clone: supportYes, unmap: supportYes, tracksAllocation: true}

func TestMemoryCapabilities(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		t.Run(strconv.Itoa(bs), func(t *testing.T) {
			runCapabilitySuite(t, bs, newMemoryStore, memoryCapabilities)
			runOffloadSuite(t, bs, newMemoryStore, memoryCapabilities)
		})
	}
}

// TestMemoryOffloadDurability checks copies and clones are durable like
// writes: with FUA at once, otherwise after Sync.
func TestMemoryOffloadDurability(t *testing.T) {
	const bs = 512
	for _, tt := range []struct {
		name string
		do   offloadFunc
	}{{"copy", CopyRange}, {"clone", CloneRange}} {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := NewMemory(16*bs, bs), NewMemory(16*bs, bs)
			data := bytes.Repeat([]byte{7}, 4*bs)
			require.NoError(t, src.WriteAt(data, 0, true))
			require.NoError(t, tt.do(dst, 0, src, 0, 2*bs, false))
			require.NoError(t, tt.do(dst, 4*bs, src, 2*bs, 2*bs, true))
			dst.Crash()
			want := make([]byte, 16*bs)
			copy(want[4*bs:], data[:2*bs])
			assertStore(t, want, dst, "only the FUA copy survives the crash")

			require.NoError(t, tt.do(dst, 0, src, 0, 2*bs, false))
			require.NoError(t, dst.Sync())
			dst.Crash()
			copy(want, data[:2*bs])
			assertStore(t, want, dst, "a synced copy survives the crash")
		})
	}
}

// TestMemoryAllocatedAfterCrash checks a crash puts back allocation with
// the data.
func TestMemoryAllocatedAfterCrash(t *testing.T) {
	const bs = 4096
	m := NewMemory(8*bs, bs)
	require.NoError(t, m.WriteAt(make([]byte, bs), 0, false))
	m.Crash()
	assert.Equal(t, []extent{{0, 8 * bs, false}}, extents(t, m), "an unsynced write to a new store is undone")

	require.NoError(t, m.WriteAt(bytes.Repeat([]byte{1}, 2*bs), 2*bs, false))
	require.NoError(t, m.Sync())
	require.NoError(t, m.Unmap(2*bs, 2*bs))
	assert.Equal(t, []extent{{0, 8 * bs, false}}, extents(t, m))
	m.Crash()
	assert.Equal(t, []extent{{0, 2 * bs, false}, {2 * bs, 4 * bs, true}, {4 * bs, 8 * bs, false}}, extents(t, m), "an unsynced unmap is undone")
}

// TestMemoryCopyFromOtherStores checks Memory takes data only from another
// Memory, looking through Faults.
func TestMemoryCopyFromOtherStores(t *testing.T) {
	m := NewMemory(8*512, 512)
	src := NewMemory(8*512, 512)
	require.NoError(t, src.WriteAt([]byte("hello"), 0, false))
	for _, do := range []offloadFunc{CopyRange, CloneRange} {
		require.ErrorIs(t, do(m, 0, geometryOnly{src}, 0, 512, false), ErrNotSupported)
		require.NoError(t, do(m, 512, NewFault(NewFault(src)), 0, 512, false))
	}
	got := make([]byte, 5)
	require.NoError(t, m.ReadAt(got, 512))
	assert.Equal(t, "hello", string(got))

	require.NoError(t, src.Close())
	err := m.CopyRange(0, src, 0, 512, false)
	require.ErrorIs(t, err, ErrClosed)
	assert.EqualError(t, err, "backstore: copy memory at offset 0, length 512: source: file already closed")
	err = m.CloneRange(0, src, 1, 512, true)
	require.ErrorIs(t, err, ErrNotSupported)
	assert.EqualError(t, err, "backstore: clone+fua memory at offset 0, length 512: not supported by the store: source offset 1, destination offset 0 and length 512 are not all multiples of 512 bytes")
}
