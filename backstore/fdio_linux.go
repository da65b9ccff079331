package backstore

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// fdio is the positioned I/O that File and Block share. Its methods return
// the bare cause (a syscall.Errno, io.ErrUnexpectedEOF, ErrClosed); the
// stores wrap it in an *OpError.
//
// All system calls go through os.File or its RawConn, which hold a reference
// on the descriptor for the length of the call, so a racing Close can never
// make a call land on a reused descriptor number.
type fdio struct {
	f    *os.File
	path string

	closed atomic.Bool
	// noDSync is set once pwritev2(RWF_DSYNC) turns out to be unsupported;
	// FUA writes then use pwrite followed by fdatasync.
	noDSync atomic.Bool
}

// readFull reads exactly len(p) bytes at off.
func (d *fdio) readFull(p []byte, off int64) error {
	if d.closed.Load() {
		return ErrClosed
	}
	n, err := d.f.ReadAt(p, off)
	switch {
	case n == len(p):
		return nil
	case err == io.EOF:
		// The medium ended early: it shrank under us.
		return io.ErrUnexpectedEOF
	}
	return bareError(err)
}

// writeFull writes all of p at off; with fua the data is durable on return.
func (d *fdio) writeFull(p []byte, off int64, fua bool) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if fua && !d.noDSync.Load() {
		err := d.pwriteDSync(p, off)
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.ENOSYS) {
			return err
		}
		// The kernel or file system does not support RWF_DSYNC, which it
		// reports before writing anything; fall back for good.
		d.noDSync.Store(true)
	}
	if _, err := d.f.WriteAt(p, off); err != nil {
		return bareError(err)
	}
	if fua {
		return d.datasync()
	}
	return nil
}

// pwriteDSync writes p at off with pwritev2(RWF_DSYNC), which makes this
// write (and only this write) durable before returning.
func (d *fdio) pwriteDSync(p []byte, off int64) error {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return bareError(err)
	}
	var werr error
	err = rc.Control(func(fd uintptr) {
		iov := [][]byte{nil}
		for len(p) > 0 {
			iov[0] = p
			n, err := unix.Pwritev2(int(fd), iov, off, unix.RWF_DSYNC)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				werr = err
				return
			case n == 0:
				werr = io.ErrShortWrite
				return
			}
			p = p[n:]
			off += int64(n)
		}
	})
	if err != nil {
		return bareError(err)
	}
	return werr
}

// datasync flushes written data (and the metadata needed to read it back)
// to the medium with fdatasync.
func (d *fdio) datasync() error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.control(func(fd int) error { return unix.Fdatasync(fd) })
}

// control runs fn on the descriptor, retrying on EINTR.
func (d *fdio) control(fn func(fd int) error) error {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return bareError(err)
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			if ferr = fn(int(fd)); ferr != unix.EINTR {
				return
			}
		}
	})
	if err != nil {
		return bareError(err)
	}
	return ferr
}

// control2 runs fn on the descriptors of d and src, retrying on EINTR like
// control.
func (d *fdio) control2(src *fdio, fn func(fd, srcFD int) error) error {
	if d.closed.Load() || src.closed.Load() {
		return ErrClosed
	}
	return d.control(func(fd int) error {
		return src.control(func(srcFD int) error { return fn(fd, srcFD) })
	})
}

// cloneRange shares n bytes at srcOff of src into dstOff of d with the
// FICLONERANGE ioctl.
func (d *fdio) cloneRange(dstOff int64, src *fdio, srcOff, n int64) error {
	return d.control2(src, func(fd, srcFD int) error {
		return unix.IoctlFileCloneRange(fd, &unix.FileCloneRange{
			Src_fd:      int64(srcFD),
			Src_offset:  uint64(srcOff),
			Src_length:  uint64(n),
			Dest_offset: uint64(dstOff),
		})
	})
}

// maxCopyChunk bounds the length asked of one copy_file_range call, which
// the kernel caps near 2 GiB anyway.
const maxCopyChunk = 1 << 30

// copyRange copies n bytes at srcOff of src to dstOff of d with
// copy_file_range, looping over short copies.
func (d *fdio) copyRange(dstOff int64, src *fdio, srcOff, n int64) error {
	return d.control2(src, func(fd, srcFD int) error {
		for n > 0 {
			c, err := unix.CopyFileRange(srcFD, &srcOff, fd, &dstOff, int(min(n, maxCopyChunk)), 0)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				return err
			case c == 0:
				// The source ended early: it shrank under us.
				return io.ErrUnexpectedEOF
			}
			n -= int64(c)
		}
		return nil
	})
}

// fallocate runs fallocate(2) with mode over n bytes at off.
func (d *fdio) fallocate(mode uint32, off, n int64) error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.control(func(fd int) error { return unix.Fallocate(fd, mode, off, n) })
}

// seek runs lseek(2) with whence (SEEK_DATA or SEEK_HOLE) from off. It
// moves the file offset, which no other call uses: reads and writes are
// positioned.
func (d *fdio) seek(off int64, whence int) (int64, error) {
	if d.closed.Load() {
		return 0, ErrClosed
	}
	var pos int64
	err := d.control(func(fd int) error {
		var err error
		pos, err = unix.Seek(fd, off, whence)
		return err
	})
	return pos, err
}

// writeZeroes writes zeroes over n bytes at off with write, a bounce buffer
// at a time, for media that cannot zero a range themselves.
func writeZeroes(write func(p []byte, off int64) error, off, n int64) error {
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	zero := *bp
	clear(zero)
	for n > 0 {
		p := zero[:min(n, int64(len(zero)))]
		if err := write(p, off); err != nil {
			return err
		}
		off += int64(len(p))
		n -= int64(len(p))
	}
	return nil
}

// unsupported reports whether err says the kernel or file system lacks an
// operation altogether, as opposed to failing this request.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTTY)
}

// lock takes an exclusive, non-blocking flock on the file.
func (d *fdio) lock() error {
	return d.control(func(fd int) error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
}

// close closes the descriptor, which also drops any flock.
func (d *fdio) close() error {
	if d.closed.Swap(true) {
		return ErrClosed
	}
	return bareError(d.f.Close())
}

// bareError strips the *fs.PathError that os.File adds, since *OpError
// already names the path.
func bareError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
