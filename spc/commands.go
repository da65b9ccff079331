package spc

import (
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// control is the usage mask of the CONTROL byte: odxtgt supports neither
// NACA (SAM-5 5.2) nor the obsolete LINK bit and has no vendor specific
// control bits, so every bit set there is refused.
const control = 0x00

// Timeouts reported by REPORT SUPPORTED OPERATION CODES in its command
// timeouts descriptors (SPC-4), in seconds. Every command of this package completes in memory.
const (
	nominalTimeout     = 1
	recommendedTimeout = 30
)

// Options are what the handlers of this package need from the rest of
// the target.
type Options struct {
	// Copy is the copy manager; without one, the third-party copy
	// commands and the Third-party Copy VPD page are not offered.
	Copy *rod.Manager
}

// Commands returns the commands and VPD pages this package implements,
// for [scsi.NewTable]. Each call returns new slices.
func Commands(opts Options) scsi.CommandSet {
	set := scsi.CommandSet{Commands: commandDescs(), VPDPages: vpdPages()}
	if opts.Copy != nil {
		set.Commands = append(set.Commands, copyCommands(opts.Copy)...)
		set.Commands = append(set.Commands, tokenInfoCommands(opts.Copy)...)
		m := opts.Copy
		set.VPDPages = append(set.VPDPages, scsi.VPDPage{Code: vpdThirdPartyCopy, Name: "Third-party Copy",
			Build: func(cmd *scsi.Command) ([]byte, error) { return thirdPartyCopyPage(m, cmd) }})
	}
	return set
}

func commandDescs() []scsi.CommandDesc {
	ds := []scsi.CommandDesc{
		cmdTestUnitReady,
		cmdRequestSense,
		cmdInquiry,
		cmdModeSelect6,
		cmdModeSense6,
		cmdPreventAllowMediumRemoval,
		cmdModeSelect10,
		cmdModeSense10,
		cmdReportLUNs,
		cmdReportTargetPortGroups,
		cmdReportSupportedOpcodes,
		cmdReportSupportedTMFs,
	}
	ds = append(ds, persistentReserveInCommands()...)
	ds = append(ds, proutCommands()...)
	return append(ds, reserveReleaseCommands()...)
}
