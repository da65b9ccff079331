package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// cmdReportTargetPortGroups is REPORT TARGET PORT GROUPS (SPC-4), which the
// TPGS field of the standard INQUIRY data obliges odxtgt to serve. It
// examines PARAMETER DATA FORMAT and ALLOCATION LENGTH.
var cmdReportTargetPortGroups = scsi.CommandDesc{
	Name:               "REPORT TARGET PORT GROUPS",
	Opcode:             opMaintenanceIn,
	ServiceAction:      saReportTargetPortGroups,
	HasServiceAction:   true,
	Usage:              []byte{0xFF, 0xE0 | saReportTargetPortGroups, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, control},
	Direction:          scsi.DirIn,
	NominalTimeout:     nominalTimeout,
	RecommendedTimeout: recommendedTimeout,
	Handler:            reportTargetPortGroups,
}

// PARAMETER DATA FORMAT values.
const (
	tpgFormatLength   = 0 // length-only header
	tpgFormatExtended = 1 // extended header
)

// Target port group descriptor fields.
const (
	aasActiveOptimized = 0x0 // ASYMMETRIC ACCESS STATE
	aoSupported        = 0x01
	tpgStatusNone      = 0x00 // STATUS CODE: no status available
)

// reportTargetPortGroups describes odxtgt's single target port group
// ([scsi.DefaultTargetPortGroup]): always active/optimized, the only state
// it supports, never transitioning (implicit transition time zero). The
// group lists the target port the command came through, whose relative
// port identifier the Device Identification page reports too.
func reportTargetPortGroups(cmd *scsi.Command) error {
	alloc := binary.BigEndian.Uint32(cmd.CDB[6:10])
	hdr := 4
	switch format := cmd.CDB[1] >> 5; format {
	case tpgFormatLength:
	case tpgFormatExtended:
		hdr = 8
	default:
		return scsi.InvalidFieldInCDB(1, 7).WithReason("parameter data format %d", format)
	}
	b := make([]byte, hdr, hdr+12)
	if hdr == 8 {
		b[4] = tpgFormatExtended << 4 // FORMAT TYPE; IMPLICIT TRANSITION TIME 0
	}
	var d [12]byte
	d[0] = aasActiveOptimized // PREF clear
	d[1] = aoSupported
	binary.BigEndian.PutUint16(d[2:], scsi.DefaultTargetPortGroup)
	d[5] = tpgStatusNone
	d[7] = 1 // TARGET PORT COUNT
	binary.BigEndian.PutUint16(d[10:], cmd.Nexus.RelativePortID)
	b = append(b, d[:]...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4)) // RETURN DATA LENGTH
	cmd.SetDataIn(b, int(min(alloc, uint32(len(b)))))
	return nil
}
