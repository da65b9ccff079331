package spc

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/odxtgt/odxtgt/scsi"
)

// opMaintenanceIn is the operation code of the MAINTENANCE IN reports,
// which select their report with a service action.
const opMaintenanceIn = 0xA3

// MAINTENANCE IN service actions served here.
const (
	saReportTargetPortGroups = 0x0A
	saReportSupportedOpcodes = 0x0C
	saReportSupportedTMFs    = 0x0D
)

// cmdReportSupportedOpcodes is REPORT SUPPORTED OPERATION CODES (SPC-4). It examines RCTD, REPORTING OPTIONS, REQUESTED OPERATION CODE,
// REQUESTED SERVICE ACTION and ALLOCATION LENGTH.
var cmdReportSupportedOpcodes = scsi.CommandDesc{
	Name:               "REPORT SUPPORTED OPERATION CODES",
	Opcode:             opMaintenanceIn,
	ServiceAction:      saReportSupportedOpcodes,
	HasServiceAction:   true,
	Usage:              []byte{0xFF, saReportSupportedOpcodes, 0x87, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, control},
	Direction:          scsi.DirIn,
	NominalTimeout:     nominalTimeout,
	RecommendedTimeout: recommendedTimeout,
	Handler:            reportSupportedOpcodes,
}

// REPORTING OPTIONS values.
const (
	reportAll           = 0 // all commands, all_commands format
	reportOpcode        = 1 // one operation code without service actions
	reportOpcodeSA      = 2 // one operation code and service action
	reportOpcodeMaybeSA = 3 // one operation code, with service action if it has them
)

// one_command SUPPORT values.
const (
	supportNone     = 1 // the command is not supported
	supportStandard = 3 // supported, in conformance with a SCSI standard
)

// timeoutsDescriptorLen is the length of a command timeouts descriptor
// (SPC-4); its DESCRIPTOR LENGTH field holds 0Ah.
const timeoutsDescriptorLen = 12

// reportSupportedOpcodes describes the logical unit's command table, so
// the report always matches what the dispatcher accepts.
func reportSupportedOpcodes(cmd *scsi.Command) error {
	cdb := cmd.CDB
	rctd := cdb[2]&0x80 != 0
	op := cdb[3]
	sa := binary.BigEndian.Uint16(cdb[4:6])
	alloc := binary.BigEndian.Uint32(cdb[6:10])
	t := cmd.LU().Table

	var data []byte
	switch opts := cdb[2] & 0x07; opts {
	case reportAll:
		data = allCommands(t, rctd)
	case reportOpcode:
		// The operation code must be one without service actions.
		if t.HasServiceActions(op) {
			return scsi.InvalidFieldInCDB(3, -1).WithReason("opcode %02xh has service actions", op)
		}
		data = oneCommand(t.Find(op, 0), rctd)
	case reportOpcodeSA:
		// The operation code must be one with service actions.
		if !t.HasServiceActions(op) {
			return scsi.InvalidFieldInCDB(3, -1).WithReason("opcode %02xh has no service actions", op)
		}
		data = oneCommand(t.Find(op, sa), rctd)
	case reportOpcodeMaybeSA:
		// The service action is used if the operation code has them; one
		// without is reported only for REQUESTED SERVICE ACTION zero.
		var d *scsi.CommandDesc
		if t.HasServiceActions(op) || sa == 0 {
			d = t.Find(op, sa)
		}
		data = oneCommand(d, rctd)
	default:
		return scsi.InvalidFieldInCDB(2, 2).WithReason("reporting options %d", opts)
	}
	cmd.SetDataIn(data, int(min(alloc, uint32(len(data)))))
	return nil
}

// allCommands returns the all_commands parameter data: a COMMAND DATA
// LENGTH, then a command descriptor per command in operation code and
// service action order.
func allCommands(t *scsi.Table, rctd bool) []byte {
	ds := slices.Clone(t.All())
	slices.SortFunc(ds, func(a, b *scsi.CommandDesc) int {
		return cmp.Or(cmp.Compare(a.Opcode, b.Opcode), cmp.Compare(a.ServiceAction, b.ServiceAction))
	})
	b := make([]byte, 4)
	for _, d := range ds {
		var e [8]byte
		e[0] = d.Opcode
		if d.HasServiceAction {
			binary.BigEndian.PutUint16(e[2:], d.ServiceAction)
			e[5] |= 0x01 // SERVACTV
		}
		if rctd {
			e[5] |= 0x02 // CTDP
		}
		binary.BigEndian.PutUint16(e[6:], uint16(d.CDBLength()))
		b = append(b, e[:]...)
		if rctd {
			b = appendTimeouts(b, d)
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// oneCommand returns the one_command parameter data for d, which is nil
// for an unsupported command: SUPPORT 001b and no CDB usage data.
func oneCommand(d *scsi.CommandDesc, rctd bool) []byte {
	if d == nil {
		return []byte{0, supportNone, 0, 0}
	}
	b := []byte{0, supportStandard, 0, 0}
	if rctd {
		b[1] |= 0x80 // CTDP
	}
	binary.BigEndian.PutUint16(b[2:], uint16(d.CDBLength()))
	b = append(b, cdbUsageData(d)...)
	if rctd {
		b = appendTimeouts(b, d)
	}
	return b
}

// cdbUsageData is the CDB USAGE DATA of d: the usage mask with the
// operation code in byte 0 and the service action code in the SERVICE
// ACTION field, as SPC-4 asks, whatever those bytes of the mask
// hold.
func cdbUsageData(d *scsi.CommandDesc) []byte {
	u := slices.Clone(d.Usage)
	u[0] = d.Opcode
	if d.HasServiceAction {
		if d.Opcode == 0x7F { // variable-length CDB: bytes 8-9
			binary.BigEndian.PutUint16(u[8:], d.ServiceAction)
		} else {
			u[1] = u[1]&^0x1F | byte(d.ServiceAction&0x1F)
		}
	}
	return u
}

// appendTimeouts appends the command timeouts descriptor of d.
func appendTimeouts(b []byte, d *scsi.CommandDesc) []byte {
	var e [timeoutsDescriptorLen]byte
	binary.BigEndian.PutUint16(e[0:], timeoutsDescriptorLen-2)
	binary.BigEndian.PutUint32(e[4:], d.NominalTimeout)
	binary.BigEndian.PutUint32(e[8:], d.RecommendedTimeout)
	return append(b, e[:]...)
}
