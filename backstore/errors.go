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
)

// Operation names used in [OpError.Op].
const (
	opRead     = "read"
	opWrite    = "write"
	opWriteFUA = "write+fua"
	opSync     = "sync"
	opClose    = "close"
)

// OpError records a failed store operation and its cause.
type OpError struct {
	// Op is the operation: "read", "write", "write+fua", "sync" or "close".
	Op string
	// Path names the store: a file or device path, or "memory".
	Path string
	// Off and Len give the byte range of a read or write; both are zero for
	// sync and close.
	Off int64
	Len int
	// Err is the cause: a syscall.Errno, io.ErrUnexpectedEOF, or one of this
	// package's sentinel errors.
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

func writeOp(fua bool) string {
	if fua {
		return opWriteFUA
	}
	return opWrite
}
