package backstore

import (
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// CloneRange implements [RangeCloner] with the FICLONERANGE ioctl, from a
// source File on the same file system (or a [Fault] wrapping one). The
// ranges must be multiples of CloneAlignment, even a range ending at the end
// of the source. The kernel's refusals (EOPNOTSUPP on a file system without
// reflinks, EXDEV across file systems, EINVAL for a request it cannot
// serve) are reported as [ErrNotSupported], wrapping the errno. With fua,
// the destination is fdatasync'ed, which makes the clone durable.
func (s *File) CloneRange(dstOff int64, src Store, srcOff, n int64, fua bool) error {
	return s.offload(opName(opClone, fua), dstOff, src, srcOff, n, int64(s.cloneAlign), fua, (*fdio).cloneRange)
}

// CloneAlignment implements [RangeCloner]: the file system's block size,
// or BlockSize if that is larger. It is reported whether or not the file
// system can clone; CloneRange says which.
func (s *File) CloneAlignment() int { return s.cloneAlign }

// CopyRange implements [RangeCopier] with copy_file_range(2), from a source
// File (or a [Fault] wrapping one). The kernel copies within one file
// system, sharing extents where it can; between file systems it refuses
// with EXDEV, reported as [ErrNotSupported] like EOPNOTSUPP, ENOSYS and
// EINVAL. With fua, the destination is fdatasync'ed after the copy.
func (s *File) CopyRange(dstOff int64, src Store, srcOff, n int64, fua bool) error {
	return s.offload(opName(opCopy, fua), dstOff, src, srcOff, n, 0, fua, (*fdio).copyRange)
}

// offload moves n bytes from src at srcOff to dstOff with move, a kernel
// call that copies between two files without the data passing through
// user space, once the ranges are checked (see [offloadSource]; align is
// the alignment the call needs, 0 for none). The errnos a file system
// refuses such a call with (EOPNOTSUPP, ENOSYS, EXDEV, EINVAL) become
// [ErrNotSupported]; with fua, the destination is fdatasync'ed after.
func (s *File) offload(op string, dstOff int64, src Store, srcOff, n, align int64, fua bool,
	move func(dst *fdio, dstOff int64, src *fdio, srcOff, n int64) error) error {
	if err := s.checkWrite(op, dstOff, n); err != nil {
		return err
	}
	sf, err := offloadSource(s, op, s.fd.path, dstOff, src, srcOff, n, align)
	if err != nil || n == 0 {
		return err
	}
	err = move(&s.fd, dstOff, &sf.fd, srcOff, n)
	switch {
	case unsupported(err) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL):
		err = notSupported("%w", err)
	case err == nil && fua:
		err = s.fd.datasync()
	}
	return s.opError(op, dstOff, n, err)
}

// WriteZeroes implements [ZeroWriter]. It tries, in order, fallocate with
// FALLOC_FL_ZERO_RANGE (the range stays allocated), fallocate with
// FALLOC_FL_PUNCH_HOLE (the range is deallocated) and writing zeroes a
// bounce buffer at a time, remembering which fallocate modes the file
// system refused. With fua, the file is fdatasync'ed afterwards.
func (s *File) WriteZeroes(off, n int64, fua bool) error {
	op := opName(opZero, fua)
	if err := s.checkWrite(op, off, n); err != nil || n == 0 {
		return err
	}
	err := s.fallocate(unix.FALLOC_FL_ZERO_RANGE, &s.noZeroRange, off, n)
	if errors.Is(err, ErrNotSupported) {
		err = s.fallocate(unix.FALLOC_FL_PUNCH_HOLE, &s.noPunchHole, off, n)
	}
	if errors.Is(err, ErrNotSupported) {
		err = writeZeroes(func(p []byte, off int64) error { return s.fd.writeFull(p, off, false) }, off, n)
	}
	if err == nil && fua {
		err = s.fd.datasync()
	}
	return s.opError(op, off, n, err)
}

// Unmap implements [Unmapper] with fallocate(FALLOC_FL_PUNCH_HOLE): the
// file system frees the range's blocks and zeroes the bytes of partly
// covered ones. Where it cannot punch holes, Unmap fails with
// [ErrNotSupported].
func (s *File) Unmap(off, n int64) error {
	if err := s.checkWrite(opUnmap, off, n); err != nil || n == 0 {
		return err
	}
	return s.opError(opUnmap, off, n, s.fallocate(unix.FALLOC_FL_PUNCH_HOLE, &s.noPunchHole, off, n))
}

// fallocate runs fallocate with mode and FALLOC_FL_KEEP_SIZE over n bytes
// at off, unless no says the mode is unsupported. An unsupported mode
// fails with ErrNotSupported and sets no.
func (s *File) fallocate(mode uint32, no *atomic.Bool, off, n int64) error {
	if no.Load() {
		return ErrNotSupported
	}
	err := s.fd.fallocate(mode|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if unsupported(err) {
		no.Store(true)
		return notSupported("%w", err)
	}
	return err
}

// Allocated implements [AllocationReporter] with lseek SEEK_DATA and
// SEEK_HOLE. Ranges zeroed with FALLOC_FL_ZERO_RANGE may be reported as
// deallocated; file systems without SEEK_DATA report everything mapped.
func (s *File) Allocated(off int64) (mapped bool, end int64, err error) {
	if err := s.opError(opAllocated, off, 1, checkRange(off, 1, s.size)); err != nil {
		return false, 0, err
	}
	bs := int64(s.blockSize)
	start := off / bs * bs
	data, err := s.fd.seek(start, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO):
		// No data from start to the end of the file.
		data = s.size
	case err != nil:
		return false, 0, s.opError(opAllocated, off, 1, err)
	}
	if holeEnd := min(data, s.size) / bs * bs; holeEnd > start {
		return false, holeEnd, nil
	}
	hole, err := s.fd.seek(data, unix.SEEK_HOLE)
	switch {
	case errors.Is(err, unix.ENXIO):
		// The file shrank under us.
		hole = s.size
	case err != nil:
		return false, 0, s.opError(opAllocated, off, 1, err)
	}
	// Round a partly allocated last block up; always make progress, even
	// if the data was punched out between the two calls.
	end = max(min((hole+bs-1)/bs*bs, s.size), start+bs)
	return true, end, nil
}

// SameFilesystem reports whether a and b are both [File] stores (or
// [Wrapper]s around them) on the same file system, as told by the device
// number (st_dev) of their files: the precondition for
// [RangeCloner.CloneRange] and for copy_file_range to share extents.
func SameFilesystem(a, b Store) bool {
	fa, ok := Unwrap(a).(*File)
	if !ok {
		return false
	}
	fb, ok := Unwrap(b).(*File)
	return ok && fa.dev == fb.dev
}
