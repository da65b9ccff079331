package backstore

import "fmt"

// Store is a fixed-size, byte-addressed storage medium. See the package
// documentation for the concurrency and durability contract.
type Store interface {
	// ReadAt reads exactly len(p) bytes starting at byte offset off into p.
	// Anything less than a full read is an error.
	ReadAt(p []byte, off int64) error
	// WriteAt writes all of p at byte offset off. With fua set, the data is
	// durable on the medium when WriteAt returns.
	WriteAt(p []byte, off int64, fua bool) error
	// Sync makes every write acknowledged before the call durable.
	Sync() error
	// Size returns the size of the store in bytes, a multiple of BlockSize.
	Size() int64
	// BlockSize returns the logical block size in bytes.
	BlockSize() int
	// Close releases the store. It must not be called while other calls on
	// the store are still running.
	Close() error
}

// PhysicalBlockSizer is implemented by stores that know the physical block
// size of their medium. All stores in this package implement it.
type PhysicalBlockSizer interface {
	// PhysicalBlockSize returns the physical block size in bytes: a multiple
	// of the logical block size, and at least the logical block size.
	PhysicalBlockSize() int
}

// PhysicalBlockSize returns s's physical block size if s implements
// [PhysicalBlockSizer] and reports a usable value, and s.BlockSize()
// otherwise.
func PhysicalBlockSize(s Store) int {
	lbs := s.BlockSize()
	if p, ok := s.(PhysicalBlockSizer); ok {
		if pbs := p.PhysicalBlockSize(); pbs >= lbs && pbs%lbs == 0 {
			return pbs
		}
	}
	return lbs
}

// Supported logical block sizes.
const (
	BlockSize512  = 512
	BlockSize4096 = 4096
)

// ValidateGeometry reports whether size and blockSize describe a store this
// package can serve: blockSize must be 512 or 4096 and size a positive
// multiple of blockSize. [NewMemory] panics on a geometry this rejects, so
// callers taking sizes from configuration check them here first.
func ValidateGeometry(size int64, blockSize int) error {
	if err := validateBlockSize(blockSize); err != nil {
		return err
	}
	if size <= 0 {
		return fmt.Errorf("backstore: size %d bytes must be positive", size)
	}
	if size%int64(blockSize) != 0 {
		return fmt.Errorf("backstore: size %d bytes is not a multiple of the block size %d", size, blockSize)
	}
	return nil
}

// MaxPhysicalBlockSize is the largest physical block size a store may be
// configured to report.
const MaxPhysicalBlockSize = 64 << 10

// ValidatePhysicalBlockSize checks a configured physical block size
// against the logical one: a power of two, a multiple of blockSize, at
// most [MaxPhysicalBlockSize]. READ CAPACITY (16) reports the ratio as a
// power of two (SBC-3 5.16.2, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT).
func ValidatePhysicalBlockSize(pbs, blockSize int) error {
	if pbs < blockSize || pbs%blockSize != 0 || pbs&(pbs-1) != 0 || pbs > MaxPhysicalBlockSize {
		return fmt.Errorf("physical block size %d is not a power of two from the block size %d to %d", pbs, blockSize, MaxPhysicalBlockSize)
	}
	return nil
}

func validateBlockSize(blockSize int) error {
	if blockSize != BlockSize512 && blockSize != BlockSize4096 {
		return fmt.Errorf("backstore: block size %d is not supported (want %d or %d)",
			blockSize, BlockSize512, BlockSize4096)
	}
	return nil
}

// checkRange returns ErrOutOfRange unless [off, off+n) lies within a store
// of the given size.
func checkRange(off, n, size int64) error {
	if off < 0 || off > size || n < 0 || n > size-off {
		return fmt.Errorf("%w (store size %d bytes)", ErrOutOfRange, size)
	}
	return nil
}
