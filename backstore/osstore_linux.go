package backstore

// osStore is what File and Block share: an open descriptor with a fixed
// size and logical block size, and the checks and wrappers every call makes.
type osStore struct {
	fd        fdio
	size      int64
	blockSize int
	readOnly  bool
}

// checkRead refuses a read outside the store.
func (s *osStore) checkRead(off, n int64) error {
	return s.opError(opRead, off, n, checkRange(off, n, s.size))
}

// checkWrite refuses a write to a read-only store or outside the store.
func (s *osStore) checkWrite(op string, off, n int64) error {
	if s.readOnly {
		return s.opError(op, off, n, ErrReadOnly)
	}
	return s.opError(op, off, n, checkRange(off, n, s.size))
}

// Sync implements [Store] with fdatasync, which for a block device also
// flushes the device's volatile write cache.
func (s *osStore) Sync() error {
	return s.opError(opSync, 0, 0, s.fd.datasync())
}

// Size implements [Store].
func (s *osStore) Size() int64 { return s.size }

// BlockSize implements [Store].
func (s *osStore) BlockSize() int { return s.blockSize }

// ReadOnly reports whether the store was opened read-only.
func (s *osStore) ReadOnly() bool { return s.readOnly }

// Path returns the file's or device's path.
func (s *osStore) Path() string { return s.fd.path }

// Close implements [Store]; it also releases the file's lock or the
// device's exclusive claim.
func (s *osStore) Close() error {
	return s.opError(opClose, 0, 0, s.fd.close())
}

// opError wraps a non-nil err in an *OpError.
func (s *osStore) opError(op string, off, n int64, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Path: s.fd.path, Off: off, Len: int(n), Err: err}
}
