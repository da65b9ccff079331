package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// opPersistentReserveIn is PERSISTENT RESERVE IN (SPC-4 6.15).
const opPersistentReserveIn = 0x5E

// PERSISTENT RESERVE IN service actions.
const (
	saReadKeys            = 0x00
	saReadReservation     = 0x01
	saReportCapabilities  = 0x02
	saReadFullStatus      = 0x03
	reportCapabilitiesLen = 8
)

// persistentReserveInCommands are the four PERSISTENT RESERVE IN service
// actions; any other is INVALID FIELD IN CDB through the table. The CDB
// holds the service action and ALLOCATION LENGTH (bytes 7-8) only.
func persistentReserveInCommands() []scsi.CommandDesc {
	in := func(name string, sa byte, build func(*scsi.Command) []byte) scsi.CommandDesc {
		return scsi.CommandDesc{
			Name: "PERSISTENT RESERVE IN (" + name + ")", Opcode: opPersistentReserveIn,
			ServiceAction: uint16(sa), HasServiceAction: true,
			Usage:          []byte{0xFF, sa, 0, 0, 0, 0, 0, 0xFF, 0xFF, control},
			Direction:      scsi.DirIn,
			NominalTimeout: nominalTimeout, RecommendedTimeout: recommendedTimeout,
			Handler: func(cmd *scsi.Command) error {
				cmd.SetDataIn(build(cmd), int(binary.BigEndian.Uint16(cmd.CDB[7:])))
				return nil
			},
		}
	}
	return []scsi.CommandDesc{
		in("READ KEYS", saReadKeys, readKeys),
		in("READ RESERVATION", saReadReservation, readReservation),
		in("REPORT CAPABILITIES", saReportCapabilities, reportCapabilities),
		in("READ FULL STATUS", saReadFullStatus, readFullStatus),
	}
}

// prHeader returns the PRGENERATION and ADDITIONAL LENGTH header with
// room for n more bytes. ADDITIONAL LENGTH counts everything the device
// server has, whatever the allocation length lets through (SPC-4 6.15.2).
func prHeader(gen uint32, n int) []byte {
	b := make([]byte, 8, 8+n)
	binary.BigEndian.PutUint32(b, gen)
	binary.BigEndian.PutUint32(b[4:], uint32(n))
	return b
}

// readKeys is READ KEYS (SPC-4 6.15.2): the reservation key of every
// registered I_T nexus, in registration order.
func readKeys(cmd *scsi.Command) []byte {
	st := cmd.LU().Reservations()
	b := prHeader(st.Generation, 8*len(st.Registrations))
	for _, r := range st.Registrations {
		b = binary.BigEndian.AppendUint64(b, r.Key)
	}
	return b
}

// readReservation is READ RESERVATION (SPC-4 6.15.3): nothing after the
// header without a persistent reservation; else the holder's key (zero
// for an all registrants type, SPC-4 5.12.9), SCOPE (LU_SCOPE) and TYPE.
func readReservation(cmd *scsi.Command) []byte {
	st := cmd.LU().Reservations()
	if st.Type == 0 {
		return prHeader(st.Generation, 0)
	}
	b := prHeader(st.Generation, 16)[:8+16]
	if !st.Type.AllRegistrants() {
		for i, r := range st.Registrations {
			if st.Holds(i) {
				binary.BigEndian.PutUint64(b[8:], r.Key)
			}
		}
	}
	b[8+13] = byte(st.Type) // SCOPE 0h (LU_SCOPE) | TYPE
	return b
}

// REPORT CAPABILITIES bits (SPC-4 6.15.4).
const (
	capCRH   = 0x10 // compatible reservation handling (SPC-4 5.12.3)
	capSIPC  = 0x08 // SPEC_I_PT supported
	capATPC  = 0x04 // ALL_TG_PT supported
	capPTPLC = 0x01 // APTPL supported
	capTMV   = 0x80 // the type mask is valid
	capPTPLA = 0x01 // APTPL in effect
	// allowCommands011 is ALLOW COMMANDS 011b: TEST UNIT READY passes
	// write exclusive and exclusive access reservations, and the
	// commands SPC-4 lists (MODE SENSE, READ ATTRIBUTE, READ BUFFER,
	// RECEIVE COPY RESULTS, RECEIVE DIAGNOSTIC RESULTS, REPORT SUPPORTED
	// OPERATION CODES, REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS, READ
	// DEFECT DATA) pass write exclusive ones (scsi's conflict table).
	allowCommands011 = 0x3 << 4
	// typeMask has WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC and WR_EX in byte
	// 4 and EX_AC_AR in byte 5: every type.
	typeMask  = 0x80 | 0x40 | 0x20 | 0x08 | 0x02
	typeMask2 = 0x01
)

// reportCapabilities is REPORT CAPABILITIES (SPC-4 6.15.4). PTPL_C is
// set where the logical unit has a state file.
func reportCapabilities(cmd *scsi.Command) []byte {
	st := cmd.LU().Reservations()
	b := make([]byte, reportCapabilitiesLen)
	binary.BigEndian.PutUint16(b, reportCapabilitiesLen)
	b[2] = capCRH | capSIPC | capATPC
	b[3] = capTMV | allowCommands011
	if st.Persistable {
		b[2] |= capPTPLC
	}
	if st.APTPL {
		b[3] |= capPTPLA
	}
	b[4], b[5] = typeMask, typeMask2
	return b
}

// readFullStatus is READ FULL STATUS (SPC-4 6.15.5): a full status
// descriptor per registration, with R_HOLDER, SCOPE and TYPE for the
// holders, ALL_TG_PT, the relative target port identifier and the
// initiator's TransportID.
func readFullStatus(cmd *scsi.Command) []byte {
	st := cmd.LU().Reservations()
	var descs []byte
	for i, r := range st.Registrations {
		var d [24]byte
		binary.BigEndian.PutUint64(d[0:], r.Key)
		if r.AllTargetPorts {
			d[12] |= 0x02
		}
		if st.Holds(i) {
			d[12] |= 0x01
			d[13] = byte(st.Type)
		}
		// With ALL_TG_PT the identifier is not defined by SPC-4; odxtgt
		// reports the port this registration is for.
		binary.BigEndian.PutUint16(d[18:], r.RelativePortID)
		tid := appendTransportID(nil, r.Initiator)
		binary.BigEndian.PutUint32(d[20:], uint32(len(tid)))
		descs = append(append(descs, d[:]...), tid...)
	}
	return append(prHeader(st.Generation, len(descs)), descs...)
}
