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
	op   string // "write", "fua", "sync" or "crash"
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemory(16*bs, bs)
			for _, st := range tt.steps {
				switch st.op {
				case "write", "fua":
					require.NoError(t, m.WriteAt(bytes.Repeat([]byte{st.fill}, st.n), st.off, st.op == "fua"))
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

// FuzzMemoryCrash checks Memory's durability model against a byte-by-byte
// model that keeps, for every byte, its current and its durable value.
func FuzzMemoryCrash(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 10, 3, 2, 0, 0, 0, 3, 0, 0, 0})
	f.Add([]byte{0, 0, 2, 0, 200, 1, 1, 2, 1, 255, 3, 0, 0, 0, 0, 0, 1, 0, 10})
	f.Fuzz(func(t *testing.T, prog []byte) {
		const bs, size = 512, 8 * 512
		m := NewMemory(size, bs)
		cur, durable := make([]byte, size), make([]byte, size)
		for i := 0; len(prog) >= 5 && i < 64; i++ {
			op := prog[0] % 4
			off := int64(binary.BigEndian.Uint16(prog[1:])) % size
			n := int(binary.BigEndian.Uint16(prog[3:])) % int(size-off+1)
			prog = prog[5:]
			p := bytes.Repeat([]byte{byte(i + 1)}, n)
			switch op {
			case 0, 1:
				fua := op == 1
				require.NoError(t, m.WriteAt(p, off, fua))
				copy(cur[off:], p)
				if fua {
					copy(durable[off:], p)
				}
			case 2:
				require.NoError(t, m.Sync())
				copy(durable, cur)
			case 3:
				m.Crash()
				copy(cur, durable)
			}
			got := make([]byte, size)
			require.NoError(t, m.ReadAt(got, 0))
			require.Equal(t, cur, got, "step %d", i)
		}
	})
}
