package backstore

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// WriteZeroes implements [ZeroWriter] with the BLKZEROOUT ioctl, which
// asks the device to write zeroes without deallocating (the kernel passes
// BLKDEV_ZERO_NOUNMAP) and writes zero pages itself where the device
// cannot. Bytes of partly covered device blocks are written as zeroes, as
// is everything if the kernel lacks the ioctl. With fua, the device is
// fdatasync'ed afterwards.
func (s *Block) WriteZeroes(off, n int64, fua bool) error {
	op := opName(opZero, fua)
	if err := s.checkWrite(op, off, n); err != nil || n == 0 {
		return err
	}
	err := s.zero(off, n, func(lo, hi int64) error {
		if !s.noZeroOut.Load() {
			err := s.zeroOut(lo, hi-lo)
			if !unsupported(err) {
				return err
			}
			s.noZeroOut.Store(true)
		}
		return s.writeZeroes(lo, hi-lo)
	})
	if err == nil && fua {
		err = s.fd.datasync()
	}
	return s.opError(op, off, n, err)
}

// Unmap implements [Unmapper] with fallocate(FALLOC_FL_PUNCH_HOLE) on the
// device, which the kernel turns into a WRITE ZEROES request that lets the
// device deallocate (no BLKDEV_ZERO_NOUNMAP) and never falls back to
// writing: deallocated blocks are then guaranteed to read as zeroes. A
// device without WRITE ZEROES refuses with EOPNOTSUPP, reported as
// [ErrNotSupported]. BLKDISCARD is not used: discarded blocks need not read
// as zeroes, and Linux no longer says whether they do.
func (s *Block) Unmap(off, n int64) error {
	if err := s.checkWrite(opUnmap, off, n); err != nil || n == 0 {
		return err
	}
	err := s.zero(off, n, func(lo, hi int64) error {
		err := s.fd.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, lo, hi-lo)
		if unsupported(err) {
			return notSupported("%w", err)
		}
		return err
	})
	return s.opError(opUnmap, off, n, err)
}

// zero zeroes the n bytes at off, a checked, non-empty range: the device
// blocks it covers whole, [lo, hi), with whole, first, and then the bytes
// of partly covered device blocks with writes. If whole fails nothing is
// written.
func (s *Block) zero(off, n int64, whole func(lo, hi int64) error) error {
	a := int64(s.devBlockSize)
	end := off + n
	lo, hi := (off+a-1)/a*a, end/a*a
	if lo >= hi {
		return s.writeZeroes(off, n)
	}
	if err := whole(lo, hi); err != nil {
		return err
	}
	if err := s.writeZeroes(off, lo-off); err != nil {
		return err
	}
	return s.writeZeroes(hi, end-hi)
}

// zeroOut runs the BLKZEROOUT ioctl over n bytes at off, both multiples of
// the device's logical block size.
func (s *Block) zeroOut(off, n int64) error {
	if s.fd.closed.Load() {
		return ErrClosed
	}
	r := [2]uint64{uint64(off), uint64(n)}
	return s.fd.control(func(fd int) error {
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r))); errno != 0 {
			return errno
		}
		return nil
	})
}

// writeZeroes writes zeroes over n bytes at off through the store's write
// path, which handles O_DIRECT alignment.
func (s *Block) writeZeroes(off, n int64) error {
	return writeZeroes(func(p []byte, off int64) error { return s.write(p, off, false) }, off, n)
}

// Allocated implements [AllocationReporter]: a block device does not say
// which blocks it has deallocated, so the whole device is reported mapped.
func (s *Block) Allocated(off int64) (mapped bool, end int64, err error) {
	if err := s.opError(opAllocated, off, 1, checkRange(off, 1, s.size)); err != nil {
		return false, 0, err
	}
	if s.fd.closed.Load() {
		return false, 0, s.opError(opAllocated, off, 1, ErrClosed)
	}
	return true, s.size, nil
}
