package spc

import "github.com/odxtgt/odxtgt/scsi"

// cmdTestUnitReady is TEST UNIT READY (SPC-4). A logical unit is
// always ready: its backstore is open for as long as it exists. The absent
// logical unit is answered by the dispatcher (LOGICAL UNIT NOT SUPPORTED).
var cmdTestUnitReady = scsi.CommandDesc{
	Name:               "TEST UNIT READY",
	Opcode:             0x00,
	Usage:              []byte{0xFF, 0x00, 0x00, 0x00, 0x00, control},
	Direction:          scsi.DirNone,
	NominalTimeout:     nominalTimeout,
	RecommendedTimeout: recommendedTimeout,
	Handler:            func(*scsi.Command) error { return nil },
}
