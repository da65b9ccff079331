package spc

import (
	"encoding/binary"
	"slices"

	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// vpdThirdPartyCopy is the Third-party Copy VPD page (SPC-4 7.8.17).
const vpdThirdPartyCopy = 0x8F

// Third-party copy descriptor types (SPC-4 table 589).
const (
	tpcSupportedCommands    = 0x0001
	tpcParameterData        = 0x0004
	tpcSupportedDescriptors = 0x0008
	tpcSupportedCSCDIDs     = 0x000C
	tpcGeneralCopyOps       = 0x8001
)

// thirdPartyCopyPage builds page 8Fh from the command table and the copy
// manager's limits: the Block Device ROD Token Limits descriptor first,
// as Windows requires, then the descriptors of EXTENDED COPY, which report
// the same limits as RECEIVE COPY OPERATING PARAMETERS, then those of ROD
// tokens.
func thirdPartyCopyPage(m *rod.Manager, cmd *scsi.Command) ([]byte, error) {
	lu := cmd.LU()
	b := scsi.NewVPD(lu, vpdThirdPartyCopy, 0)
	b = appendTPCDescriptor(b, tpcBlockDeviceRODLimits, blockDeviceRODLimits(m, lu))
	b = appendTPCDescriptor(b, tpcSupportedCommands, supportedCopyCommands(lu.Table))

	pd := make([]byte, 0x1C)
	binary.BigEndian.PutUint16(pd[4:], rod.MaxCSCDs)
	binary.BigEndian.PutUint16(pd[6:], rod.MaxSegments)
	binary.BigEndian.PutUint32(pd[8:], rod.MaxDescriptorListLength)
	binary.BigEndian.PutUint32(pd[12:], rod.MaxInlineDataLength)
	b = appendTPCDescriptor(b, tpcParameterData, pd)

	sd := append([]byte{byte(len(rod.ImplementedDescriptors))}, rod.ImplementedDescriptors...)
	b = appendTPCDescriptor(b, tpcSupportedDescriptors, sd)

	ids := binary.BigEndian.AppendUint16(nil, uint16(2*len(rod.SupportedCSCDIDs)))
	for _, id := range rod.SupportedCSCDIDs {
		ids = binary.BigEndian.AppendUint16(ids, id)
	}
	b = appendTPCDescriptor(b, tpcSupportedCSCDIDs, ids)
	b = appendTPCDescriptor(b, tpcRODTokenFeatures, rodTokenFeatures(m))
	b = appendTPCDescriptor(b, tpcSupportedRODTypes, supportedRODTypes())

	gco := make([]byte, 0x20)
	binary.BigEndian.PutUint32(gco[0:], rod.MaxConcurrentCopies) // TOTAL CONCURRENT COPIES
	binary.BigEndian.PutUint32(gco[4:], rod.MaxConcurrentCopies) // MAXIMUM IDENTIFIED CONCURRENT COPIES
	binary.BigEndian.PutUint32(gco[8:], rod.MaxSegmentLength)
	b = appendTPCDescriptor(b, tpcGeneralCopyOps, gco)

	binary.BigEndian.PutUint16(b[2:], uint16(len(b)-4))
	return b, nil
}

// appendTPCDescriptor appends a third-party copy descriptor: its type, its
// length and the body padded to a multiple of four bytes.
func appendTPCDescriptor(b []byte, typ uint16, body []byte) []byte {
	n := (len(body) + 3) &^ 3
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, body...)
	return append(b, make([]byte, n-len(body))...)
}

// supportedCopyCommands is the body of the Supported Commands descriptor:
// each third-party copy operation code with the service actions the
// table has for it.
func supportedCopyCommands(t *scsi.Table) []byte {
	list := []byte{0}
	for _, op := range []byte{opThirdPartyCopyOut, opThirdPartyCopyIn} {
		var sas []byte
		for _, d := range t.All() {
			if d.Opcode == op && d.HasServiceAction {
				sas = append(sas, byte(d.ServiceAction))
			}
		}
		if len(sas) == 0 {
			continue
		}
		slices.Sort(sas)
		list = append(append(list, op, byte(len(sas))), sas...)
	}
	list[0] = byte(len(list) - 1)
	return list
}
