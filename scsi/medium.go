package scsi

import (
	"errors"
	"syscall"

	"github.com/odxtgt/odxtgt/backstore"
)

// Blocks returns the capacity of the logical unit in logical blocks; 0 for
// the absent logical unit.
func (lu *LU) Blocks() uint64 {
	if lu.Store == nil {
		return 0
	}
	return uint64(lu.Store.Size()) / uint64(lu.Store.BlockSize())
}

// CheckRange refuses a range of blocks that reaches past the last logical
// block of a medium of capacity blocks: the LBA plus the number of blocks
// must not exceed the capacity (SBC-3 4.5). The sum is computed without
// overflow, so an LBA near 2^64 cannot wrap around to a valid one.
func CheckRange(lba, blocks, capacity uint64) *Sense {
	if lba > capacity || blocks > capacity-lba {
		return LBAOutOfRange().
			WithReason("LBA %d + %d blocks exceeds the capacity of %d blocks", lba, blocks, capacity)
	}
	return nil
}

// noSpace reports whether err says the medium ran out of space: ENOSPC, or
// EDQUOT for a store on a file system with quotas.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// ReadError turns a failed backstore read of the transfer starting at lba
// into MEDIUM ERROR, UNRECOVERED READ ERROR with the INFORMATION field set
// to that LBA (SBC-3 4.18: the first LBA in error that the device server
// knows of).
func ReadError(err error, lba uint64) *Sense {
	return NewSense(MediumError, ASCUnrecoveredReadError).
		WithInformation(lba).WithReason("%v", err)
}

// WriteError turns a failed backstore write of the transfer starting at
// lba into sense data: DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT
// when the medium is full; DATA PROTECT, WRITE PROTECTED when the store
// itself is read-only; otherwise MEDIUM ERROR, WRITE ERROR with the
// INFORMATION field set to lba.
func WriteError(err error, lba uint64) *Sense {
	switch {
	case noSpace(err):
		return NewSense(DataProtect, ASCSpaceAllocationFailedWP).WithReason("%v", err)
	case errors.Is(err, backstore.ErrReadOnly):
		return WriteProtected().WithReason("%v", err)
	}
	return NewSense(MediumError, ASCWriteError).
		WithInformation(lba).WithReason("%v", err)
}

// SyncError turns a failed cache flush into sense data. The blocks that
// could not reach the medium are unknown, so MEDIUM ERROR, WRITE ERROR
// carries no INFORMATION.
func SyncError(err error) *Sense {
	if noSpace(err) {
		return NewSense(DataProtect, ASCSpaceAllocationFailedWP).WithReason("%v", err)
	}
	return NewSense(MediumError, ASCWriteError).WithReason("%v", err)
}

// TaskAborted is what a handler returns when it notices that its task was
// aborted. The transport sends no status for an aborted task, so the sense
// data only ends the handler without the dispatcher logging a failure.
func TaskAborted() *Sense {
	return NewSense(AbortedCommand, ASCNoAdditionalSense).WithReason("task aborted")
}
