package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// cmdReportSupportedTMFs is REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
// (SPC-4). It examines REPD and ALLOCATION LENGTH.
var cmdReportSupportedTMFs = scsi.CommandDesc{
	Name:               "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS",
	Opcode:             opMaintenanceIn,
	ServiceAction:      saReportSupportedTMFs,
	HasServiceAction:   true,
	Usage:              []byte{0xFF, saReportSupportedTMFs, 0x80, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, control},
	Direction:          scsi.DirIn,
	NominalTimeout:     nominalTimeout,
	RecommendedTimeout: recommendedTimeout,
	Handler:            reportSupportedTMFs,
}

// Byte 0 of the parameter data has one bit per task management function;
// these are the ones odxtgt supports. The others are CACAS (20h, CLEAR ACA)
// and WAKES (01h, WAKEUP).
const (
	tmfATS  = 0x80 // ABORT TASK
	tmfATSS = 0x40 // ABORT TASK SET
	tmfCTSS = 0x10 // CLEAR TASK SET
	tmfLURS = 0x08 // LOGICAL UNIT RESET
	tmfQTS  = 0x04 // QUERY TASK
	tmfTRS  = 0x02 // TARGET RESET
)

// supportedTMFs are the task management functions odxtgt's iSCSI
// transport performs (RFC 7143, Task Management Function Request): ABORT TASK, ABORT TASK SET, CLEAR
// TASK SET, LOGICAL UNIT RESET, TARGET WARM RESET and QUERY TASK. CLEAR
// ACA (no ACA), QUERY TASK SET, QUERY ASYNCHRONOUS EVENT and I_T NEXUS
// RESET (byte 1) are not.
const supportedTMFs = tmfATS | tmfATSS | tmfCTSS | tmfLURS | tmfQTS | tmfTRS

// reportSupportedTMFs returns the basic 4-byte parameter data, or with
// REPD set the 16-byte extended data whose TMFTMOV bit is zero: no task
// management function timeouts are reported.
func reportSupportedTMFs(cmd *scsi.Command) error {
	alloc := binary.BigEndian.Uint32(cmd.CDB[6:10])
	n := 4
	if cmd.CDB[2]&0x80 != 0 { // REPD
		n = 16
	}
	b := make([]byte, n)
	b[0] = supportedTMFs
	b[3] = byte(n - 4) // ADDITIONAL DATA LENGTH
	cmd.SetDataIn(b, int(min(alloc, uint32(n))))
	return nil
}
