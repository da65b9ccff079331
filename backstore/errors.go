package backstore

import (
	"errors"
	"fmt"
	"os"
)

var (
	// ErrOutOfRange is returned (wrapped in an [*OpError]) when a request
	// reaches outside the store. Callers check ranges first; this is a
	// backstop against writing outside the command's range.
	ErrOutOfRange = errors.New("offset/length outside the store")
	// ErrReadOnly is returned (wrapped in an [*OpError]) by WriteAt on a
	// store opened read-only.
	ErrReadOnly = errors.New("store is read-only")
	// ErrLocked is returned by [OpenFile] when another process (or another
	// open store in this one) already serves the file.
	ErrLocked = errors.New("file is locked by another user")
	// ErrClosed is returned (wrapped in an [*OpError]) by calls made after
	// Close. It is os.ErrClosed, so errors.Is works the same for every store.
	ErrClosed = os.ErrClosed
	// ErrNotSupported is returned (wrapped, with the reason) by an optional
	// capability that the store, its medium or this particular request
	// cannot serve: a clone between two file systems, a clone of misaligned
	// ranges, a copy between two kinds of store, an unmap on a medium that
	// cannot deallocate. Nothing has been changed; the caller falls back to
	// plain reads and writes.
	ErrNotSupported = errors.New("not supported by the store")
)

// Operation names used in [OpError.Op].
const (
	opRead      = "read"
	opWrite     = "write"
	opSync      = "sync"
	opClose     = "close"
	opCopy      = "copy"
	opClone     = "clone"
	opZero      = "zero"
	opUnmap     = "unmap"
	opAllocated = "allocated"
)

// OpError records a failed store operation and its cause.
type OpError struct {
	// Op is the operation: "read", "write", "sync", "close", "copy",
	// "clone", "zero", "unmap" or "allocated"; "+fua" is appended to a
	// write, copy, clone or zero made with fua=true.
	Op string
	// Path names the store: a file or device path, or "memory".
	Path string
	// Off and Len give the byte range of the operation (for a copy or
	// clone, the destination range); both are zero for sync and close. For
	// allocated, the range is the one byte whose extent was asked for.
	Off int64
	Len int
	// Err is the cause: a syscall.Errno, io.ErrUnexpectedEOF, or one of this
	// package's sentinel errors (possibly wrapped with a reason).
	Err error
}

// Error implements error.
func (e *OpError) Error() string {
	if e.Op == opSync || e.Op == opClose {
		return fmt.Sprintf("backstore: %s %s: %v", e.Op, e.Path, e.Err)
	}
	return fmt.Sprintf("backstore: %s %s at offset %d, length %d: %v", e.Op, e.Path, e.Off, e.Len, e.Err)
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// opName returns the name of op for [OpError.Op], marked when made with
// fua=true.
func opName(op string, fua bool) string {
	if fua {
		return op + "+fua"
	}
	return op
}

// notSupported returns an error matching [ErrNotSupported] that gives the
// reason.
func notSupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotSupported}, args...)...)
}
