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
