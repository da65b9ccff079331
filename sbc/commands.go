package sbc

import (
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// Command timeouts in seconds, reported by REPORT SUPPORTED OPERATION CODES
// (SPC-4 6.35.4): the nominal time a command takes and the time after which
// an initiator should consider it lost.
const (
	// nominalInstant and recommendedInstant: commands answered from memory.
	nominalInstant, recommendedInstant = 1, 10
	// nominalIO and recommendedIO: one transfer of up to
	// scsi.MaxTransferBytes to or from the backstore.
	nominalIO, recommendedIO = 1, 30
	// nominalFlush and recommendedFlush: a flush of the whole store's
	// volatile cache.
	nominalFlush, recommendedFlush = 5, 120
)

// Options are what the handlers of this package need from the rest of
// the target.
type Options struct {
	// Copy is the copy manager; without one, POPULATE TOKEN and WRITE
	// USING TOKEN are not offered.
	Copy *rod.Manager
}

// Commands returns the block commands and the block device VPD pages, to
// be combined with the primary commands into a [scsi.Table]. Each call
// returns new slices.
func Commands(opts Options) scsi.CommandSet {
	set := scsi.CommandSet{Commands: commandDescs(), VPDPages: vpdPages()}
	if opts.Copy != nil {
		set.Commands = append(set.Commands, tokenCommands(opts.Copy)...)
	}
	return set
}

func commandDescs() []scsi.CommandDesc {
	var all []scsi.CommandDesc
	for _, set := range [][]scsi.CommandDesc{
		readCommands(),
		writeCommands(),
		verifyCommands(),
		capacityCommands(),
		syncCacheCommands(),
		prefetchCommands(),
		startStopCommands(),
		defectCommands(),
		compareAndWriteCommands(),
		writeSameCommands(),
		unmapCommands(),
		getLBAStatusCommands(),
		orWriteCommands(),
	} {
		all = append(all, set...)
	}
	return all
}
