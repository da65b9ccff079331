package backstore

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newFileStore(t *testing.T, size int64, blockSize int) Store {
	s, err := OpenFile(filepath.Join(t.TempDir(), "lun.img"), size, blockSize, FileOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestFile(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		t.Run(strconv.Itoa(bs), func(t *testing.T) { runStoreSuite(t, bs, newFileStore) })
	}
}

func TestFileCreatesSparse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.img")
	s, err := OpenFile(path, 64<<20, 4096, FileOptions{})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, path, s.Path())
	assert.False(t, s.ReadOnly())
	assert.Equal(t, 4096, s.PhysicalBlockSize())

	_, err = OpenFile(filepath.Join(t.TempDir(), "odd.img"), 1<<20, 512, FileOptions{PhysicalBlockSize: 1536})
	assert.ErrorContains(t, err, "physical block size 1536")
	p, err := OpenFile(filepath.Join(t.TempDir(), "phys.img"), 1<<20, 512, FileOptions{PhysicalBlockSize: 4096})
	require.NoError(t, err)
	assert.Equal(t, 4096, p.PhysicalBlockSize())
	require.NoError(t, p.Close())

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, int64(64<<20), fi.Size())
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	st, ok := fi.Sys().(*syscall.Stat_t)
	require.True(t, ok)
	assert.Less(t, st.Blocks*512, int64(1<<20), "a new file must be sparse")
}

func TestFileReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lun.img")
	s, err := OpenFile(path, 1<<20, 512, FileOptions{})
	require.NoError(t, err)
	require.NoError(t, s.WriteAt([]byte("persist me"), 4096, true))
	require.NoError(t, s.Close())

	for _, size := range []int64{1 << 20, 0} {
		s, err := OpenFile(path, size, 512, FileOptions{})
		require.NoError(t, err, "size %d", size)
		assert.Equal(t, int64(1<<20), s.Size())
		got := make([]byte, 10)
		require.NoError(t, s.ReadAt(got, 4096))
		assert.Equal(t, "persist me", string(got))
		require.NoError(t, s.Close())
	}
}

func TestFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.img")
	require.NoError(t, os.WriteFile(existing, make([]byte, 8192), 0o600))
	odd := filepath.Join(dir, "odd.img")
	require.NoError(t, os.WriteFile(odd, make([]byte, 4096+512), 0o600))
	missing := filepath.Join(dir, "missing.img")

	tests := []struct {
		name      string
		path      string
		size      int64
		blockSize int
		opts      FileOptions
		wantErr   []string
	}{
		{"size mismatch names both sizes", existing, 16384, 512, FileOptions{}, []string{existing, "8192 bytes", "16384 bytes"}},
		{"size mismatch read-only", existing, 4096, 512, FileOptions{ReadOnly: true}, []string{"8192 bytes", "4096 bytes"}},
		{"block size 1024", existing, 8192, 1024, FileOptions{}, []string{"block size 1024 is not supported"}},
		{"block size 0", existing, 8192, 0, FileOptions{}, []string{"block size 0 is not supported"}},
		{"size not a multiple", missing, 4096 + 512, 4096, FileOptions{}, []string{"4608", "not a multiple of the block size 4096"}},
		{"negative size", missing, -512, 512, FileOptions{}, []string{"must be positive"}},
		{"existing size not a multiple", odd, 0, 4096, FileOptions{}, []string{odd, "not a multiple"}},
		{"missing without size", missing, 0, 512, FileOptions{}, []string{missing, "no size was given"}},
		{"missing read-only", missing, 4096, 512, FileOptions{ReadOnly: true}, []string{missing, "read-only"}},
		{"directory", dir, 4096, 512, FileOptions{ReadOnly: true}, []string{"not a regular file"}},
		{"character device", "/dev/null", 0, 512, FileOptions{}, []string{"/dev/null is not a regular file"}},
		{"missing directory", filepath.Join(dir, "no", "such.img"), 4096, 512, FileOptions{}, []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenFile(tt.path, tt.size, tt.blockSize, tt.opts)
			require.Error(t, err)
			assert.Nil(t, s)
			for _, want := range tt.wantErr {
				assert.ErrorContains(t, err, want)
			}
		})
	}
	_, err := os.Stat(missing)
	assert.ErrorIs(t, err, os.ErrNotExist, "failed opens must not leave files behind")
	_, err = os.Stat("/dev/null")
	assert.NoError(t, err)
}

func TestFileLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lun.img")
	s, err := OpenFile(path, 1<<20, 512, FileOptions{})
	require.NoError(t, err)

	for _, ro := range []bool{false, true} {
		_, err = OpenFile(path, 0, 512, FileOptions{ReadOnly: ro})
		require.ErrorIs(t, err, ErrLocked, "read-only %v", ro)
		assert.ErrorContains(t, err, path)
	}
	require.NoError(t, s.Close())

	s, err = OpenFile(path, 0, 512, FileOptions{ReadOnly: true})
	require.NoError(t, err, "closing releases the lock")
	require.NoError(t, s.Close())
}

func TestFileReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lun.img")
	require.NoError(t, os.WriteFile(path, []byte("0123456789abcdef"+string(make([]byte, 512-16))), 0o600))
	s, err := OpenFile(path, 512, 512, FileOptions{ReadOnly: true})
	require.NoError(t, err)
	defer s.Close()
	assert.True(t, s.ReadOnly())

	got := make([]byte, 6)
	require.NoError(t, s.ReadAt(got, 10))
	assert.Equal(t, "abcdef", string(got))
	for _, fua := range []bool{false, true} {
		err := s.WriteAt([]byte("x"), 0, fua)
		require.ErrorIs(t, err, ErrReadOnly)
		var oe *OpError
		require.ErrorAs(t, err, &oe)
		assert.Equal(t, opName(opWrite, fua), oe.Op)
	}
	assert.NoError(t, s.Sync())
}

func TestFileShrunkUnderUs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lun.img")
	s, err := OpenFile(path, 8192, 512, FileOptions{})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, os.Truncate(path, 4096))

	err = s.ReadAt(make([]byte, 1024), 3584)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.EqualError(t, err, "backstore: read "+path+" at offset 3584, length 1024: unexpected EOF")
}

// TestFileFUAFallback forces the pwrite+fdatasync path used when the kernel
// or file system lacks RWF_DSYNC.
func TestFileFUAFallback(t *testing.T) {
	s := newFileStore(t, 1<<20, 512).(*File)
	s.fd.noDSync.Store(true)
	testRoundTrip(t, 512, s)
}

// TestFileErrnoReachable checks an OS error surfaces as an *OpError that
// still unwraps to its syscall.Errno. pread and pwrite on a pipe fail with
// ESPIPE, which stands in for a real device error.
func TestFileErrnoReachable(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer w.Close()
	s := &File{osStore: osStore{fd: fdio{f: r, path: "pipe"}, size: 4096, blockSize: 512}}
	defer s.Close()

	// fallocate refuses the read end of a pipe with EBADF before it finds
	// the pipe cannot seek.
	tests := []struct {
		name  string
		op    string
		call  func() error
		errno syscall.Errno
	}{
		{"read", "read", func() error { return s.ReadAt(make([]byte, 512), 512) }, syscall.ESPIPE},
		{"write", "write", func() error { return s.WriteAt(make([]byte, 512), 512, false) }, syscall.ESPIPE},
		{"FUA write", "write+fua", func() error { return s.WriteAt(make([]byte, 512), 512, true) }, syscall.ESPIPE},
		{"zero", "zero", func() error { return s.WriteZeroes(512, 512, false) }, syscall.EBADF},
		{"unmap", "unmap", func() error { return s.Unmap(512, 512) }, syscall.EBADF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var errno syscall.Errno
			require.ErrorAs(t, err, &errno)
			assert.Equal(t, tt.errno, errno)
			var oe *OpError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, OpError{Op: tt.op, Path: "pipe", Off: 512, Len: 512, Err: tt.errno}, *oe)
			assert.Equal(t, "backstore: "+tt.op+" pipe at offset 512, length 512: "+tt.errno.Error(), err.Error())
		})
	}
	// fdatasync on a pipe fails with EINVAL.
	assert.EqualError(t, s.Sync(), "backstore: sync pipe: invalid argument")
	assert.ErrorIs(t, s.Sync(), syscall.EINVAL)

	_, _, err = s.Allocated(512)
	assert.Equal(t, &OpError{Op: "allocated", Path: "pipe", Off: 512, Len: 1, Err: syscall.ESPIPE}, err)

	// copy_file_range and FICLONERANGE refuse what is not a regular file
	// with EINVAL: not supported, so the caller falls back.
	for _, do := range []offloadFunc{CopyRange, CloneRange} {
		err := do(s, 0, s, 1024, 512, false)
		require.ErrorIs(t, err, ErrNotSupported)
		assert.ErrorIs(t, err, syscall.EINVAL)
	}
}

func BenchmarkFileReadAt4K(b *testing.B) {
	s, err := OpenFile(filepath.Join(b.TempDir(), "bench.img"), 64<<20, 4096, FileOptions{})
	require.NoError(b, err)
	defer s.Close()
	p := make([]byte, 4096)
	require.NoError(b, s.WriteAt(p, 0, false))
	blocks := s.Size() / 4096
	b.SetBytes(4096)
	i := int64(0)
	for b.Loop() {
		if err := s.ReadAt(p, (i%blocks)*4096); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
