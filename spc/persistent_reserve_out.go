package spc

import (
	"bytes"
	"encoding/binary"
	"regexp"
	"strings"

	"github.com/odxtgt/odxtgt/scsi"
)

// opPersistentReserveOut is PERSISTENT RESERVE OUT (SPC-4 6.16).
const opPersistentReserveOut = 0x5F

// PERSISTENT RESERVE OUT parameter list sizes (SPC-4 6.16.3, 6.16.4).
const (
	proutBasicLen = 24 // without SPEC_I_PT
	proutSpecLen  = 28 // with SPEC_I_PT: TRANSPORTID PARAMETER DATA LENGTH
	proutMoveLen  = 24 // REGISTER AND MOVE before its TransportID
	// maxPROUTList bounds the parameter list: every TransportID a
	// logical unit could register, each as long as an iSCSI one gets.
	maxPROUTList = proutSpecLen + scsi.MaxRegistrations*maxTransportIDLen
)

// iSCSI TransportIDs (SPC-4 7.6.4.6).
const (
	protocolISCSI        = 0x5
	transportIDDevice    = 0x0 // FORMAT CODE 00b: iSCSI name
	transportIDPort      = 0x1 // FORMAT CODE 01b: iSCSI name, ",i,0x", ISID
	minTransportIDLen    = 24
	maxISCSINameLen      = 223
	maxTransportIDLen    = 4 + ((maxISCSINameLen + 5 + 12 + 1 + 3) &^ 3)
	transportIDSeparator = ",i,0x"
)

// proutCommands are the PERSISTENT RESERVE OUT service actions. The CDB
// holds the service action, SCOPE and TYPE (byte 2) and PARAMETER LIST
// LENGTH (bytes 5-8). SCOPE and TYPE are examined by the service actions
// that use them and ignored by the others (SPC-4 6.16.2, table "PERSISTENT
// RESERVE OUT service actions and valid parameters"), so the mask lets
// every bit of byte 2 through.
func proutCommands() []scsi.CommandDesc {
	var ds []scsi.CommandDesc
	for sa := scsi.PROUTRegister; sa <= scsi.PROUTRegisterAndMove; sa++ {
		ds = append(ds, scsi.CommandDesc{
			Name: "PERSISTENT RESERVE OUT (" + sa.String() + ")", Opcode: opPersistentReserveOut,
			ServiceAction: uint16(sa), HasServiceAction: true,
			Usage:          []byte{0xFF, byte(sa), 0xFF, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, control},
			Direction:      scsi.DirOut,
			NominalTimeout: nominalTimeout, RecommendedTimeout: recommendedTimeout,
			Handler: persistentReserveOut,
		})
	}
	return ds
}

// persistentReserveOut checks the CDB and parameter list and hands the
// service action to the logical unit.
func persistentReserveOut(cmd *scsi.Command) error {
	sa := scsi.PROUTAction(cmd.CDB[1] & 0x1F)
	req := &scsi.PROUTRequest{Action: sa, Type: scsi.ReservationType(cmd.CDB[2] & 0x0F)}
	switch sa {
	case scsi.PROUTReserve, scsi.PROUTRelease, scsi.PROUTPreempt, scsi.PROUTPreemptAndAbort:
		// SPC-4 6.16.2: these need LU_SCOPE and one of the types
		// REPORT CAPABILITIES reports.
		if scope := cmd.CDB[2] >> 4; scope != 0 {
			return scsi.InvalidFieldInCDB(2, 7).WithReason("SCOPE %xh: only LU_SCOPE", scope)
		}
		if !req.Type.Valid() {
			return scsi.InvalidFieldInCDB(2, 3).WithReason("TYPE %xh", byte(req.Type))
		}
	}
	n := binary.BigEndian.Uint32(cmd.CDB[5:])
	if n > maxPROUTList {
		return scsi.ParameterListLengthError().WithReason("parameter list of %d bytes, at most %d", n, maxPROUTList)
	}
	data, err := cmd.TakeDataOut(int(n))
	if err != nil {
		return err
	}
	if s := parsePROUT(req, data); s != nil {
		return s
	}
	return cmd.LU().PersistentReserveOut(cmd, req)
}

// parsePROUT decodes the parameter list of PERSISTENT RESERVE OUT into
// req, whose Action is set (SPC-4 6.16.3, 6.16.4). Obsolete fields are
// ignored, reserved bits refused.
func parsePROUT(req *scsi.PROUTRequest, p []byte) *scsi.Sense {
	if len(p) < proutBasicLen {
		return scsi.ParameterListLengthError().WithReason("parameter list of %d bytes, at least %d", len(p), proutBasicLen)
	}
	req.Key = binary.BigEndian.Uint64(p[0:])
	req.ServiceActionKey = binary.BigEndian.Uint64(p[8:])
	if req.Action == scsi.PROUTRegisterAndMove {
		return parseRegisterAndMove(req, p)
	}
	flags := p[20]
	if bad := flags &^ 0x0D; bad != 0 {
		return scsi.InvalidFieldInParameterList(20, highBit(bad)).WithReason("reserved bits %02xh", bad)
	}
	if p[21] != 0 {
		return scsi.InvalidFieldInParameterList(21, highBit(p[21])).WithReason("reserved byte")
	}
	req.SpecIPT, req.AllTargetPorts, req.APTPL = flags&0x08 != 0, flags&0x04 != 0, flags&0x01 != 0
	if !req.SpecIPT {
		if len(p) != proutBasicLen {
			// SPC-4 6.16.3: without SPEC_I_PT the list is 24 bytes.
			return scsi.ParameterListLengthError().WithReason("parameter list of %d bytes without SPEC_I_PT", len(p))
		}
		return nil
	}
	if req.Action != scsi.PROUTRegister {
		// SPC-4 6.16.3: SPEC_I_PT is valid for REGISTER only.
		return scsi.InvalidFieldInParameterList(20, 3).WithReason("SPEC_I_PT with %s", req.Action)
	}
	if len(p) < proutSpecLen {
		return scsi.ParameterListLengthError().WithReason("parameter list of %d bytes with SPEC_I_PT", len(p))
	}
	tpdl := binary.BigEndian.Uint32(p[24:])
	if uint64(tpdl)+proutSpecLen != uint64(len(p)) {
		return scsi.ParameterListLengthError().WithReason("TRANSPORTID PARAMETER DATA LENGTH %d in a list of %d bytes", tpdl, len(p))
	}
	for off := proutSpecLen; off < len(p); {
		t, n, s := parseTransportID(p[off:], off)
		if s != nil {
			return s
		}
		if len(req.TransportIDs) == scsi.MaxRegistrations {
			return scsi.NewSense(scsi.IllegalRequest, scsi.ASCInsufficientRegistrationResources).
				WithReason("more than %d TransportIDs", scsi.MaxRegistrations)
		}
		req.TransportIDs = append(req.TransportIDs, t)
		off += n
	}
	return nil
}

// parseRegisterAndMove decodes the REGISTER AND MOVE parameter list
// (SPC-4 6.16.4): UNREG and APTPL in byte 17, the RELATIVE TARGET PORT
// IDENTIFIER, and one TransportID after the TRANSPORTID PARAMETER DATA
// LENGTH.
func parseRegisterAndMove(req *scsi.PROUTRequest, p []byte) *scsi.Sense {
	if p[16] != 0 {
		return scsi.InvalidFieldInParameterList(16, highBit(p[16])).WithReason("reserved byte")
	}
	if bad := p[17] &^ 0x03; bad != 0 {
		return scsi.InvalidFieldInParameterList(17, highBit(bad)).WithReason("reserved bits %02xh", bad)
	}
	req.Unregister, req.APTPL = p[17]&0x02 != 0, p[17]&0x01 != 0
	req.RelativePortID = binary.BigEndian.Uint16(p[18:])
	tpdl := binary.BigEndian.Uint32(p[20:])
	if uint64(tpdl)+proutMoveLen != uint64(len(p)) {
		return scsi.ParameterListLengthError().WithReason("TRANSPORTID PARAMETER DATA LENGTH %d in a list of %d bytes", tpdl, len(p))
	}
	if tpdl == 0 {
		return scsi.InvalidFieldInParameterList(20, -1).WithReason("REGISTER AND MOVE without a TransportID")
	}
	t, _, s := parseTransportID(p[proutMoveLen:], proutMoveLen)
	if s != nil {
		return s
	}
	req.TransportIDs = []scsi.TransportID{t}
	return nil
}

// iscsiNameChars are what an iSCSI name in normalized form holds (RFC
// 7143 4.2.7.2: lowercase ASCII letters, digits, '-', '.', ':').
var iscsiNameChars = regexp.MustCompile(`^[a-z0-9.:-]+$`)

var isidChars = regexp.MustCompile(`^[0-9a-f]{12}$`)

// parseTransportID decodes one iSCSI TransportID at the start of b, which
// starts at byte off of the parameter list, and returns its length.
// Names compare in lowercase, as logins do.
func parseTransportID(b []byte, off int) (scsi.TransportID, int, *scsi.Sense) {
	var t scsi.TransportID
	if len(b) < 4 {
		return t, 0, scsi.InvalidFieldInParameterList(off, -1).WithReason("TransportID of %d bytes", len(b))
	}
	if proto := b[0] & 0x0F; proto != protocolISCSI {
		return t, 0, scsi.InvalidFieldInParameterList(off, 3).WithReason("TransportID for protocol %xh, only iSCSI (5h)", proto)
	}
	if b[0]&0x30 != 0 {
		return t, 0, scsi.InvalidFieldInParameterList(off, 5).WithReason("TransportID reserved bits")
	}
	format := b[0] >> 6
	if format != transportIDDevice && format != transportIDPort {
		return t, 0, scsi.InvalidFieldInParameterList(off, 7).WithReason("TransportID FORMAT CODE %d", format)
	}
	addl := int(binary.BigEndian.Uint16(b[2:]))
	// SPC-4 7.6.4.6: ADDITIONAL LENGTH at least 20, a multiple of four.
	if addl < minTransportIDLen-4 || addl%4 != 0 || 4+addl > len(b) {
		return t, 0, scsi.InvalidFieldInParameterList(off+2, -1).WithReason("TransportID ADDITIONAL LENGTH %d with %d bytes left", addl, len(b)-4)
	}
	field := b[4 : 4+addl]
	end := bytes.IndexByte(field, 0)
	if end < 0 {
		return t, 0, scsi.InvalidFieldInParameterList(off+4, -1).WithReason("TransportID name without a null terminator")
	}
	text := strings.ToLower(string(field[:end]))
	if format == transportIDPort {
		name, isid, ok := strings.Cut(text, transportIDSeparator)
		if !ok || !isidChars.MatchString(isid) {
			return t, 0, scsi.InvalidFieldInParameterList(off+4, -1).WithReason("TransportID %q is not <name>,i,0x<ISID>", text)
		}
		text, t.ISID = name, isid
	}
	if len(text) > maxISCSINameLen || !iscsiNameChars.MatchString(text) {
		return t, 0, scsi.InvalidFieldInParameterList(off+4, -1).WithReason("TransportID name %q", text)
	}
	t.Name = text
	return t, 4 + addl, nil
}

// appendTransportID appends the iSCSI TransportID of t: format 01b for an
// initiator port, 00b for a device; the name null-terminated and padded to
// a multiple of four, at least 24 bytes in all (SPC-4 7.6.4.6).
func appendTransportID(b []byte, t scsi.TransportID) []byte {
	text := t.Name
	format := byte(transportIDDevice)
	if t.ISID != "" {
		text += transportIDSeparator + t.ISID
		format = transportIDPort
	}
	n := max((len(text)+1+3)&^3, minTransportIDLen-4)
	b = append(b, format<<6|protocolISCSI, 0, byte(n>>8), byte(n))
	b = append(b, text...)
	return append(b, make([]byte, n-len(text))...)
}

// highBit returns the highest bit set in v.
func highBit(v byte) int {
	bit := 7
	for v&(1<<bit) == 0 {
		bit--
	}
	return bit
}
