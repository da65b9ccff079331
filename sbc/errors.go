package sbc

import (
	"errors"
	"syscall"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// noSpace reports whether err says the medium ran out of space: ENOSPC, or
// EDQUOT for a store on a file system with quotas.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// readError turns a failed backstore read of the transfer starting at lba
// into MEDIUM ERROR, UNRECOVERED READ ERROR with the INFORMATION field set
// to that LBA (SBC-3 error reporting: the first LBA in error that the
// device server knows of).
func readError(err error, lba uint64) *scsi.Sense {
	return scsi.NewSense(scsi.MediumError, scsi.ASCUnrecoveredReadError).
		WithInformation(lba).WithReason("%v", err)
}

// writeError turns a failed backstore write of the transfer starting at lba
// into sense data: DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT when
// the medium is full; DATA PROTECT, WRITE PROTECTED when the store itself
// is read-only; otherwise MEDIUM ERROR, WRITE ERROR with the INFORMATION
// field set to lba.
func writeError(err error, lba uint64) *scsi.Sense {
	switch {
	case noSpace(err):
		return scsi.NewSense(scsi.DataProtect, scsi.ASCSpaceAllocationFailedWP).WithReason("%v", err)
	case errors.Is(err, backstore.ErrReadOnly):
		return scsi.WriteProtected().WithReason("%v", err)
	}
	return scsi.NewSense(scsi.MediumError, scsi.ASCWriteError).
		WithInformation(lba).WithReason("%v", err)
}

// syncError turns a failed cache flush into sense data. The blocks that
// could not reach the medium are unknown, so MEDIUM ERROR, WRITE ERROR
// carries no INFORMATION.
func syncError(err error) *scsi.Sense {
	if noSpace(err) {
		return scsi.NewSense(scsi.DataProtect, scsi.ASCSpaceAllocationFailedWP).WithReason("%v", err)
	}
	return scsi.NewSense(scsi.MediumError, scsi.ASCWriteError).WithReason("%v", err)
}

// aborted is what a handler returns when it notices that its task was
// aborted. The transport sends no status for an aborted task, so the sense
// data only ends the handler without the dispatcher logging a failure.
func aborted() *scsi.Sense {
	return scsi.NewSense(scsi.AbortedCommand, scsi.ASCNoAdditionalSense).WithReason("task aborted")
}
