package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// cmdReportLUNs is REPORT LUNS (SPC-4). It runs while a unit attention
// is pending and for LUNs without a logical unit.
var cmdReportLUNs = scsi.CommandDesc{
	Name:               "REPORT LUNS",
	Opcode:             0xA0,
	Usage:              []byte{0xFF, 0x00, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, control},
	Direction:          scsi.DirIn,
	Flags:              scsi.FlagIgnoresUA | scsi.FlagNoLU,
	NominalTimeout:     nominalTimeout,
	RecommendedTimeout: recommendedTimeout,
	Handler:            reportLUNs,
}

// SELECT REPORT values (SPC-4).
const (
	selectAllLUNs       = 0x00 // logical units with LU, peripheral or flat addressing
	selectWellKnownLUNs = 0x01 // well known logical units only
	selectAllLUNsAndWLU = 0x02 // all logical units
)

// reportLUNs returns the LUN inventory of the nexus. An allocation length
// below 16 is not an error: SPC-4 only says it should be at least 16 and
// that REPORT LUNS fails only when it cannot produce the report; the list
// is truncated like any other parameter data. odxtgt has no well known
// logical units, so SELECT REPORT 01h returns an empty list.
//
// The REPORTED LUNS DATA HAS CHANGED unit attention is cleared for this
// nexus on every logical unit it sees, since the initiator now has the new
// inventory (SPC-4, REPORT LUNS).
func reportLUNs(cmd *scsi.Command) error {
	cdb := cmd.CDB
	alloc := binary.BigEndian.Uint32(cdb[6:10])
	n := cmd.Nexus
	var luns []uint64
	switch sel := cdb[2]; sel {
	case selectAllLUNs, selectAllLUNsAndWLU:
		luns = n.LUNs()
	case selectWellKnownLUNs:
	default:
		return scsi.InvalidFieldInCDB(2, -1).WithReason("SELECT REPORT %02xh", sel)
	}
	b := make([]byte, 8, 8+8*len(luns))
	binary.BigEndian.PutUint32(b, uint32(8*len(luns))) // LUN LIST LENGTH
	for _, lun := range luns {
		l := scsi.EncodeLUN(lun)
		b = append(b, l[:]...)
	}
	cmd.SetDataIn(b, int(min(alloc, uint32(len(b)))))
	cmd.LU().ClearUA(n, scsi.ASCReportedLUNsDataChanged)
	for _, lun := range n.LUNs() {
		n.LU(lun).ClearUA(n, scsi.ASCReportedLUNsDataChanged)
	}
	return nil
}
