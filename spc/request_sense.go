package spc

import "github.com/odxtgt/odxtgt/scsi"

// cmdRequestSense is REQUEST SENSE (SPC-4). It runs while a unit
// attention is pending (it is how an initiator collects one) and for LUNs
// without a logical unit.
var cmdRequestSense = scsi.CommandDesc{
	Name:               "REQUEST SENSE",
	Opcode:             0x03,
	Usage:              []byte{0xFF, 0x01, 0x00, 0x00, 0xFF, control},
	Direction:          scsi.DirIn,
	Flags:              scsi.FlagIgnoresUA | scsi.FlagNoLU,
	NominalTimeout:     nominalTimeout,
	RecommendedTimeout: recommendedTimeout,
	Handler:            requestSense,
}

// requestSense returns, with GOOD status, the sense data of the oldest
// pending unit attention for the nexus (which it clears), or NO SENSE. For
// a LUN without a logical unit it returns ILLEGAL REQUEST, LOGICAL UNIT NOT
// SUPPORTED (SPC-4, REQUEST SENSE). The DESC bit chooses descriptor or fixed format.
func requestSense(cmd *scsi.Command) error {
	desc := cmd.CDB[1]&0x01 != 0
	alloc := int(cmd.CDB[4])
	lu := cmd.LU()
	var s *scsi.Sense
	if !lu.Present() {
		s = scsi.NewSense(scsi.IllegalRequest, scsi.ASCLUNotSupported)
	} else if s = lu.TakeUA(cmd.Nexus); s == nil {
		s = scsi.NewSense(scsi.NoSense, scsi.ASCNoAdditionalSense)
	}
	cmd.SetDataIn(s.Encode(desc), alloc)
	return nil
}
