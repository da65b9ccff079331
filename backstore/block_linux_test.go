package backstore

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/internal/scratchfs"
)

// newLoopDevice attaches a sparse backing file of size bytes to a free loop
// device with the given logical sector size and returns the device and the
// backing file's paths. The device is detached when the test ends. The test
// is skipped where loop devices cannot be made.
func newLoopDevice(t *testing.T, size int64, sectorSize int) (dev, img string) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "loop.img")
	dev, whyNot := scratchfs.Loop(t, img, size, sectorSize)
	if dev == "" {
		t.Skip(whyNot)
	}
	return dev, img
}

// openLoopStore opens a fresh loop device as a Block store, closed when the
// test ends.
func openLoopStore(t *testing.T, size int64, sectorSize int, opts BlockOptions) (*Block, string) {
	t.Helper()
	dev, img := newLoopDevice(t, size, sectorSize)
	s, err := OpenBlock(dev, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s, img
}

func TestBlock(t *testing.T) {
	tests := []struct {
		name       string
		sectorSize int
		opts       BlockOptions
		blockSize  int
	}{
		{"512", 512, BlockOptions{}, 512},
		{"512 direct", 512, BlockOptions{Direct: true}, 512},
		{"4096", 4096, BlockOptions{}, 4096},
		{"4096 direct", 4096, BlockOptions{Direct: true}, 4096},
		{"4096 on a 512 device, direct", 512, BlockOptions{Direct: true, BlockSize: 4096}, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runStoreSuite(t, tt.blockSize, func(t *testing.T, size int64, blockSize int) Store {
				s, _ := openLoopStore(t, size, tt.sectorSize, tt.opts)
				return s
			})
		})
	}
}

func TestBlockGeometry(t *testing.T) {
	const size = 64 << 20
	tests := []struct {
		name       string
		devSize    int64
		sectorSize int
		blockSize  int
		wantSize   int64
		wantBS     int
		wantPBS    int
		wantErr    string
	}{
		{"device's own 512", size, 512, 0, size, 512, 512, ""},
		{"device's own 4096", size, 4096, 0, size, 4096, 4096, ""},
		{"4096 on 512 rounds the size down", size + 3*512, 512, 4096, size, 4096, 4096, ""},
		{"512 on 4096", size, 4096, 512, 0, 0, 0, "block size 512 is not a multiple of the device's logical block size 4096"},
		{"unsupported 1024", size, 512, 1024, 0, 0, 0, "block size 1024 is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev, _ := newLoopDevice(t, tt.devSize, tt.sectorSize)
			s, err := OpenBlock(dev, BlockOptions{BlockSize: tt.blockSize})
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.ErrorContains(t, err, dev)
				return
			}
			require.NoError(t, err)
			defer s.Close()
			assert.Equal(t, tt.wantSize, s.Size())
			assert.Equal(t, tt.wantBS, s.BlockSize())
			assert.Equal(t, tt.wantPBS, s.PhysicalBlockSize())
			assert.Equal(t, dev, s.Path())
		})
	}
}

func TestBlockExclusive(t *testing.T) {
	dev, _ := newLoopDevice(t, 1<<20, 512)
	s, err := OpenBlock(dev, BlockOptions{})
	require.NoError(t, err)

	for _, opts := range []BlockOptions{{}, {ReadOnly: true}, {Direct: true}} {
		_, err := OpenBlock(dev, opts)
		require.ErrorIs(t, err, syscall.EBUSY, "%+v", opts)
		assert.ErrorContains(t, err, dev+" is in use")
	}
	require.NoError(t, s.Close())

	s, err = OpenBlock(dev, BlockOptions{ReadOnly: true})
	require.NoError(t, err, "closing ends the exclusive claim")
	require.NoError(t, s.Close())
}

func TestBlockOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file.img")
	require.NoError(t, os.WriteFile(file, make([]byte, 4096), 0o600))
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"regular file", file, file + " is not a block device"},
		{"character device", "/dev/null", "/dev/null is not a block device"},
		{"missing", filepath.Join(dir, "missing"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenBlock(tt.path, BlockOptions{ReadOnly: true})
			require.ErrorContains(t, err, tt.wantErr)
			assert.Nil(t, s)
		})
	}
}

func TestBlockReadOnly(t *testing.T) {
	for _, direct := range []bool{false, true} {
		t.Run("direct "+strconv.FormatBool(direct), func(t *testing.T) {
			s, _ := openLoopStore(t, 1<<20, 512, BlockOptions{ReadOnly: true, Direct: direct})
			assert.True(t, s.ReadOnly())
			require.NoError(t, s.ReadAt(make([]byte, 100), 7))
			assert.ErrorIs(t, s.WriteAt(make([]byte, 512), 0, false), ErrReadOnly)
			assert.ErrorIs(t, s.WriteAt(make([]byte, 512), 0, true), ErrReadOnly)
		})
	}
}

// TestBlockReachesMedium checks that data written through the device, in
// every mode and alignment, lands at the right place in the backing file.
func TestBlockReachesMedium(t *testing.T) {
	tests := []struct {
		name       string
		sectorSize int
		opts       BlockOptions
	}{
		{"buffered", 512, BlockOptions{}},
		{"direct 512", 512, BlockOptions{Direct: true}},
		{"direct 4096", 4096, BlockOptions{Direct: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, img := openLoopStore(t, 1<<20, tt.sectorSize, tt.opts)
			writes := []struct {
				off    int64
				n      int
				memOff int
				fua    bool
			}{
				{0, 4096, 0, true},
				{8192 + 5, 700, 1, false},
				{16384, 8192, 3, true},
				{65536 - 3, bounceSize + 10, 0, false},
			}
			want := make([]byte, s.Size())
			for i, w := range writes {
				buf := make([]byte, w.memOff+w.n)
				p := buf[w.memOff:]
				for j := range p {
					p[j] = byte(i*37 + j)
				}
				require.NoError(t, s.WriteAt(p, w.off, w.fua))
				copy(want[w.off:], p)
			}
			require.NoError(t, s.Sync())
			require.NoError(t, s.Close())

			got, err := os.ReadFile(img)
			require.NoError(t, err)
			require.True(t, bytes.Equal(want, got), "backing file differs from what was written")
		})
	}
}
