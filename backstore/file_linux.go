package backstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// FileOptions tune [OpenFile].
type FileOptions struct {
	// ReadOnly opens the file read-only; WriteAt fails with ErrReadOnly and
	// a missing file is an error rather than created.
	ReadOnly bool
	// PhysicalBlockSize is the physical block size to report: 0 for the
	// logical block size, or a power of two that is a multiple of it, at
	// most [MaxPhysicalBlockSize].
	PhysicalBlockSize int
}

// File is a [Store] backed by a regular file. Reads and writes go straight
// between the caller's buffer and the file with pread and pwrite; FUA writes
// use pwritev2 with RWF_DSYNC. An exclusive flock held while the store is
// open keeps two servers from serving the same file.
//
// File implements every optional capability: [File.CloneRange] with
// FICLONERANGE, [File.CopyRange] with copy_file_range, [File.WriteZeroes]
// and [File.Unmap] with fallocate, [File.Allocated] with SEEK_DATA and
// SEEK_HOLE. Copies and clones take data from another File only.
type File struct {
	osStore
	// dev is the device number of the file system holding the file.
	dev uint64
	// cloneAlign is the alignment FICLONERANGE demands: the file system's
	// block size, rounded up to a multiple of the store's block size.
	cloneAlign int
	// noZeroRange and noPunchHole are set once fallocate reports
	// FALLOC_FL_ZERO_RANGE or FALLOC_FL_PUNCH_HOLE unsupported here.
	noZeroRange, noPunchHole atomic.Bool
	// physBlockSize is what PhysicalBlockSize reports.
	physBlockSize int
}

// OpenFile opens the regular file at path as a store with the given logical
// block size (512 or 4096).
//
// If the file does not exist it is created, sparse, with the given size. If
// it exists its size must equal size, unless size is 0, which means "use the
// file's size". Either way the size must be a positive multiple of
// blockSize.
func OpenFile(path string, size int64, blockSize int, opts FileOptions) (*File, error) {
	if err := validateBlockSize(blockSize); err != nil {
		return nil, err
	}
	pbs := opts.PhysicalBlockSize
	if pbs == 0 {
		pbs = blockSize
	}
	if err := ValidatePhysicalBlockSize(pbs, blockSize); err != nil {
		return nil, fmt.Errorf("backstore: file %s: %w", path, err)
	}
	if size != 0 {
		if err := ValidateGeometry(size, blockSize); err != nil {
			return nil, fmt.Errorf("backstore: file %s: %w", path, err)
		}
	}
	f, created, err := openOrCreate(path, size, opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	s := &File{osStore: osStore{fd: fdio{f: f, path: path}, blockSize: blockSize, readOnly: opts.ReadOnly}, physBlockSize: pbs}
	if err := s.setup(size, created); err != nil {
		_ = f.Close()
		if created {
			_ = os.Remove(path)
		}
		return nil, err
	}
	return s, nil
}

// openOrCreate opens path, creating it if it is missing and may be created.
func openOrCreate(path string, size int64, readOnly bool) (f *os.File, created bool, err error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	for {
		f, err = os.OpenFile(path, flag, 0)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		switch {
		case readOnly:
			return nil, false, fmt.Errorf("backstore: file %s does not exist and the store is read-only: %w", path, err)
		case size == 0:
			return nil, false, fmt.Errorf("backstore: file %s does not exist and no size was given to create it: %w", path, err)
		}
		f, err = os.OpenFile(path, flag|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			// Either created, or failed for a reason worth reporting. If
			// someone else created it in between, open theirs.
			created = err == nil
			break
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("backstore: open file: %w", err)
	}
	return f, created, nil
}

// setup locks the file, sizes a new file and checks an existing one.
func (s *File) setup(size int64, created bool) error {
	path := s.fd.path
	if err := s.fd.lock(); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("backstore: file %s: %w (is another odxtgt serving it?)", path, ErrLocked)
		}
		return fmt.Errorf("backstore: lock file %s: %w", path, err)
	}
	st, err := s.fd.f.Stat()
	if err != nil {
		return fmt.Errorf("backstore: stat: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("backstore: %s is not a regular file (mode %v); serve devices with a block store", path, st.Mode().Type())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.dev = sys.Dev
	}
	var fsst unix.Statfs_t
	if err := s.fd.control(func(fd int) error { return unix.Fstatfs(fd, &fsst) }); err != nil {
		return fmt.Errorf("backstore: statfs %s: %w", path, err)
	}
	s.cloneAlign = lcm(s.blockSize, int(fsst.Bsize))
	if created {
		// Sparse: ftruncate allocates nothing. Make the new file and its
		// directory entry durable so a crash cannot lose the whole store.
		if err := s.fd.f.Truncate(size); err != nil {
			return fmt.Errorf("backstore: size new file: %w", err)
		}
		if err := s.fd.f.Sync(); err != nil {
			return fmt.Errorf("backstore: sync new file: %w", err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return err
		}
		s.size = size
		return nil
	}
	switch {
	case size == 0:
		if err := ValidateGeometry(st.Size(), s.blockSize); err != nil {
			return fmt.Errorf("backstore: file %s: %w", path, err)
		}
		s.size = st.Size()
	case st.Size() != size:
		return fmt.Errorf("backstore: file %s is %d bytes but the configured size is %d bytes", path, st.Size(), size)
	default:
		s.size = size
	}
	return nil
}

// lcm returns the least common multiple of a and b, or a if b is not
// positive.
func lcm(a, b int) int {
	if b <= 0 {
		return a
	}
	x, y := a, b
	for y != 0 {
		x, y = y, x%y
	}
	return a / x * b
}

// syncDir makes directory entries in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backstore: open directory to sync it: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backstore: sync directory: %w", err)
	}
	return nil
}

// ReadAt implements [Store].
func (s *File) ReadAt(p []byte, off int64) error {
	if err := s.checkRead(off, int64(len(p))); err != nil || len(p) == 0 {
		return err
	}
	return s.opError(opRead, off, int64(len(p)), s.fd.readFull(p, off))
}

// WriteAt implements [Store].
func (s *File) WriteAt(p []byte, off int64, fua bool) error {
	op := opName(opWrite, fua)
	if err := s.checkWrite(op, off, int64(len(p))); err != nil || len(p) == 0 {
		return err
	}
	return s.opError(op, off, int64(len(p)), s.fd.writeFull(p, off, fua))
}

// PhysicalBlockSize implements [PhysicalBlockSizer]: the size given in
// [FileOptions], by default BlockSize.
func (s *File) PhysicalBlockSize() int { return s.physBlockSize }
