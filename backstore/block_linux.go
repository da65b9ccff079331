package backstore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BlockOptions tune [OpenBlock].
type BlockOptions struct {
	// ReadOnly opens the device read-only; WriteAt fails with ErrReadOnly.
	ReadOnly bool
	// Direct opens the device with O_DIRECT, bypassing the page cache.
	// Callers' buffers and offsets need no particular alignment: misaligned
	// requests go through an aligned bounce buffer.
	Direct bool
	// BlockSize is the logical block size to serve: 0 for the device's own,
	// otherwise 512 or 4096 and a multiple of the device's logical block
	// size.
	BlockSize int
}

// Block is a [Store] backed by a raw block device. The device is opened
// with O_EXCL, so a mounted device, or one another process holds
// exclusively, is refused; the claim also keeps a second server away.
//
// Block implements [ZeroWriter] with BLKZEROOUT, [Unmapper] with fallocate
// on the device, and [AllocationReporter] (everything mapped). It cannot
// clone or copy: copy_file_range and FICLONERANGE serve regular files
// only.
type Block struct {
	osStore
	physBlockSize int
	// devBlockSize is the device's logical block size: the unit O_DIRECT
	// requests must be aligned to.
	devBlockSize int
	direct       bool
	// rmw orders O_DIRECT writes: a write that does not cover whole device
	// blocks reads, patches and rewrites its edge blocks, so it takes rmw
	// exclusively; all other writes take it shared.
	rmw sync.RWMutex
	// noZeroOut is set once the kernel reports BLKZEROOUT unsupported.
	noZeroOut atomic.Bool
}

// OpenBlock opens the block device at path as a store. Its size and block
// sizes come from the device (BLKGETSIZE64, BLKSSZGET, BLKPBSZGET). When
// opts.BlockSize is larger than the device's logical block size, the store's
// size is the device size rounded down to whole blocks.
func OpenBlock(path string, opts BlockOptions) (*Block, error) {
	flag := os.O_RDWR | os.O_EXCL
	if opts.ReadOnly {
		flag = os.O_RDONLY | os.O_EXCL
	}
	if opts.Direct {
		flag |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("backstore: block device %s is in use (mounted, or held exclusively by another process): %w", path, err)
		}
		return nil, fmt.Errorf("backstore: open block device: %w", err)
	}
	s := &Block{osStore: osStore{fd: fdio{f: f, path: path}, readOnly: opts.ReadOnly}, direct: opts.Direct}
	if err := s.setup(opts.BlockSize); err != nil {
		_ = f.Close()
		return nil, err
	}
	return s, nil
}

// setup reads the device geometry and settles the store's.
func (s *Block) setup(blockSize int) error {
	path := s.fd.path
	st, err := s.fd.f.Stat()
	if err != nil {
		return fmt.Errorf("backstore: stat: %w", err)
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return fmt.Errorf("backstore: %s is not a block device (mode %v); serve regular files with a file store", path, st.Mode().Type())
	}
	var devSize uint64
	var lbs, pbs int
	err = s.fd.control(func(fd int) error {
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&devSize))); errno != 0 {
			return fmt.Errorf("BLKGETSIZE64: %w", errno)
		}
		v, err := unix.IoctlGetInt(fd, unix.BLKSSZGET)
		if err != nil {
			return fmt.Errorf("BLKSSZGET: %w", err)
		}
		lbs = v
		p, err := unix.IoctlGetUint32(fd, unix.BLKPBSZGET)
		if err != nil {
			return fmt.Errorf("BLKPBSZGET: %w", err)
		}
		pbs = int(p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("backstore: block device %s geometry: %w", path, err)
	}
	if lbs <= 0 || lbs&(lbs-1) != 0 {
		return fmt.Errorf("backstore: block device %s reports logical block size %d", path, lbs)
	}
	if blockSize == 0 {
		if err := validateBlockSize(lbs); err != nil {
			return fmt.Errorf("backstore: block device %s: logical block size: %w", path, err)
		}
		blockSize = lbs
	}
	if err := validateBlockSize(blockSize); err != nil {
		return fmt.Errorf("backstore: block device %s: %w", path, err)
	}
	if blockSize%lbs != 0 {
		return fmt.Errorf("backstore: block device %s: block size %d is not a multiple of the device's logical block size %d", path, blockSize, lbs)
	}
	size := int64(devSize) / int64(blockSize) * int64(blockSize)
	if size <= 0 {
		return fmt.Errorf("backstore: block device %s is %d bytes, smaller than one %d-byte block", path, devSize, blockSize)
	}
	if pbs < blockSize || pbs%blockSize != 0 {
		pbs = blockSize
	}
	s.size, s.blockSize, s.physBlockSize, s.devBlockSize = size, blockSize, pbs, lbs
	return nil
}

// ReadAt implements [Store].
func (s *Block) ReadAt(p []byte, off int64) error {
	if err := s.checkRead(off, int64(len(p))); err != nil || len(p) == 0 {
		return err
	}
	var err error
	if s.direct && !s.aligned(p, off) {
		err = s.bounceRead(p, off)
	} else {
		err = s.fd.readFull(p, off)
	}
	return s.opError(opRead, off, int64(len(p)), err)
}

// WriteAt implements [Store].
func (s *Block) WriteAt(p []byte, off int64, fua bool) error {
	op := opName(opWrite, fua)
	if err := s.checkWrite(op, off, int64(len(p))); err != nil || len(p) == 0 {
		return err
	}
	return s.opError(op, off, int64(len(p)), s.write(p, off, fua))
}

// write writes all of p at off, a checked, non-empty range, and returns the
// bare error.
func (s *Block) write(p []byte, off int64, fua bool) error {
	if !s.direct {
		return s.fd.writeFull(p, off, fua)
	}
	a := int64(s.devBlockSize)
	if off%a != 0 || (off+int64(len(p)))%a != 0 {
		s.rmw.Lock()
		defer s.rmw.Unlock()
	} else {
		s.rmw.RLock()
		defer s.rmw.RUnlock()
	}
	if s.aligned(p, off) {
		return s.fd.writeFull(p, off, fua)
	}
	return s.bounceWrite(p, off, fua)
}

// PhysicalBlockSize implements [PhysicalBlockSizer]: the device's physical
// block size, or BlockSize if that is not a multiple of BlockSize.
func (s *Block) PhysicalBlockSize() int { return s.physBlockSize }
