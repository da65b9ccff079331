package scsi

// resvKind says how a persistent reservation held by another I_T nexus
// affects a command.
type resvKind uint8

const (
	// resvRead: allowed through the write exclusive types, conflicts
	// with the exclusive access types ("Allowed" / "Conflict" in the
	// tables). The default for a command the table does not name that
	// does not write the medium.
	resvRead resvKind = iota
	// resvAllowed: never conflicts.
	resvAllowed
	// resvWrite: conflicts with every type. The default for a command
	// that writes the medium (FlagWritesMedium).
	resvWrite
	// resvPersistent: PERSISTENT RESERVE IN and OUT, which their
	// handlers check against the persistent reservation themselves.
	resvPersistent
	// resvReserve: RESERVE and RELEASE, whose handlers apply SPC-4 5.12.3.
	resvReserve
)

// resvClass is a command's place in the reservation tables.
type resvClass struct {
	kind resvKind
	// spc2Allowed: the command is served to other I_T nexuses while an
	// SPC-2 RESERVE reservation exists (SPC-2 5.5.1: INQUIRY, REPORT
	// LUNS, REQUEST SENSE; RELEASE is resvReserve).
	spc2Allowed bool
}

// resvRule gives the class of a command; fn, when set, decides from the
// CDB.
type resvRule struct {
	class resvClass
	fn    func(cdb []byte) resvKind
}

var (
	allowed    = resvRule{class: resvClass{kind: resvAllowed}}
	readLike   = resvRule{class: resvClass{kind: resvRead}}
	writeLike  = resvRule{class: resvClass{kind: resvWrite}}
	spc2Exempt = resvRule{class: resvClass{kind: resvAllowed, spc2Allowed: true}}
)

// resvKey selects a rule: an operation code, with the service action for
// the opcodes that have one (saNone otherwise).
type resvKey struct {
	op byte
	sa uint16
}

const saNone = 0xFFFF

// resvOpcodesWithSA are the operation codes whose rules depend on the
// service action; a service action missing below gets the default.
var resvOpcodesWithSA = map[byte]bool{0x83: true, 0x84: true, 0x9E: true, 0x9F: true, 0xA3: true, 0xA4: true, 0xAB: true}

// reservationRules is the reservation conflict table for every command
// SPC-4 and SBC-3 define that odxtgt implements or may: SPC-4 5.12.1,
// table "SPC commands that are allowed in the presence of various
// reservations", and SBC-3 4.16 (table "SBC-3 commands that are allowed
// in the presence of various reservations"). The classes are those for
// an I_T nexus that holds no reservation: the holder is allowed
// everything, and so is every registered I_T nexus under a registrants
// only or all registrants type; an I_T nexus not registered is treated
// under those types as any other I_T nexus under WRITE EXCLUSIVE or
// EXCLUSIVE ACCESS.
//
// Where SPC-4 lets a device server choose (its footnote on the commands
// that SPC-3 devices may refuse through WRITE EXCLUSIVE), odxtgt allows
// TEST UNIT READY through both types and MODE SENSE, READ ATTRIBUTE, READ
// BUFFER, RECEIVE COPY RESULTS, RECEIVE DIAGNOSTIC RESULTS, REPORT
// SUPPORTED OPERATION CODES, REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
// and READ DEFECT DATA through write exclusive: REPORT CAPABILITIES says
// so with ALLOW COMMANDS 011b.
//
// EXTENDED COPY is "Policy" in SPC-4: odxtgt lets it through on the
// logical unit that receives it and checks each copy source and
// destination when the copy reads or writes it, as a READ or a WRITE
// from the same I_T nexus would be checked (RunInternal). POPULATE TOKEN
// reads the logical unit it is sent to and WRITE USING TOKEN writes it,
// so they are classed as a read and a write here as well.
var reservationRules = map[resvKey]resvRule{
	// SPC-4.
	{0x00, saNone}: allowed,    // TEST UNIT READY
	{0x03, saNone}: spc2Exempt, // REQUEST SENSE
	{0x12, saNone}: spc2Exempt, // INQUIRY
	{0xA0, saNone}: spc2Exempt, // REPORT LUNS
	{0x15, saNone}: writeLike,  // MODE SELECT (6)
	{0x55, saNone}: writeLike,  // MODE SELECT (10)
	{0x1A, saNone}: readLike,   // MODE SENSE (6)
	{0x5A, saNone}: readLike,   // MODE SENSE (10)
	{0x1C, saNone}: readLike,   // RECEIVE DIAGNOSTIC RESULTS
	{0x1D, saNone}: writeLike,  // SEND DIAGNOSTIC
	{0x1E, saNone}: {fn: preventAllowKind},
	{0x3B, saNone}: writeLike,                                // WRITE BUFFER
	{0x3C, saNone}: readLike,                                 // READ BUFFER
	{0x4C, saNone}: writeLike,                                // LOG SELECT
	{0x4D, saNone}: allowed,                                  // LOG SENSE
	{0x86, saNone}: allowed,                                  // ACCESS CONTROL IN
	{0x87, saNone}: allowed,                                  // ACCESS CONTROL OUT
	{0x8C, saNone}: readLike,                                 // READ ATTRIBUTE
	{0x8D, saNone}: writeLike,                                // WRITE ATTRIBUTE
	{0xA2, saNone}: readLike,                                 // SECURITY PROTOCOL IN
	{0xB5, saNone}: writeLike,                                // SECURITY PROTOCOL OUT
	{0xAB, 0x01}:   allowed,                                  // READ MEDIA SERIAL NUMBER
	{0x5E, saNone}: {class: resvClass{kind: resvPersistent}}, // PERSISTENT RESERVE IN
	{0x5F, saNone}: {class: resvClass{kind: resvPersistent}}, // PERSISTENT RESERVE OUT
	{0x16, saNone}: {class: resvClass{kind: resvReserve}},    // RESERVE (6)
	{0x56, saNone}: {class: resvClass{kind: resvReserve}},    // RESERVE (10)
	{0x17, saNone}: {class: resvClass{kind: resvReserve}},    // RELEASE (6)
	{0x57, saNone}: {class: resvClass{kind: resvReserve}},    // RELEASE (10)
	// MAINTENANCE IN.
	{0xA3, 0x05}: allowed,  // REPORT IDENTIFYING INFORMATION
	{0xA3, 0x0A}: allowed,  // REPORT TARGET PORT GROUPS
	{0xA3, 0x0B}: allowed,  // REPORT ALIASES
	{0xA3, 0x0C}: readLike, // REPORT SUPPORTED OPERATION CODES
	{0xA3, 0x0D}: readLike, // REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
	{0xA3, 0x0E}: allowed,  // REPORT PRIORITY
	{0xA3, 0x0F}: allowed,  // REPORT TIMESTAMP
	{0xA3, 0x10}: readLike, // MANAGEMENT PROTOCOL IN
	// MAINTENANCE OUT: SET IDENTIFYING INFORMATION, SET TARGET PORT
	// GROUPS, CHANGE ALIASES, SET PRIORITY, SET TIMESTAMP, MANAGEMENT
	// PROTOCOL OUT all conflict.
	{0xA4, 0x06}: writeLike,
	{0xA4, 0x0A}: writeLike,
	{0xA4, 0x0B}: writeLike,
	{0xA4, 0x0E}: writeLike,
	{0xA4, 0x0F}: writeLike,
	{0xA4, 0x10}: writeLike,
	// Third-party copy (SPC-4 6.3-6.5, 6.17-6.19; SBC-3 5.x).
	{0x83, 0x00}: allowed,   // EXTENDED COPY (LID1): checked per access
	{0x83, 0x01}: allowed,   // EXTENDED COPY (LID4): checked per access
	{0x83, 0x10}: readLike,  // POPULATE TOKEN
	{0x83, 0x11}: writeLike, // WRITE USING TOKEN
	{0x83, 0x1C}: allowed,   // COPY OPERATION ABORT: only this nexus's copies
	{0x84, 0x00}: readLike,  // RECEIVE COPY STATUS (LID1)
	{0x84, 0x01}: readLike,  // RECEIVE COPY DATA (LID1)
	{0x84, 0x03}: readLike,  // RECEIVE COPY OPERATING PARAMETERS
	{0x84, 0x04}: readLike,  // RECEIVE COPY FAILURE DETAILS (LID1)
	{0x84, 0x05}: readLike,  // RECEIVE COPY STATUS (LID4)
	{0x84, 0x06}: readLike,  // RECEIVE COPY DATA (LID4)
	{0x84, 0x07}: readLike,  // RECEIVE ROD TOKEN INFORMATION
	{0x84, 0x08}: readLike,  // REPORT ALL ROD TOKENS

	// SBC-3.
	{0x04, saNone}: writeLike, // FORMAT UNIT
	{0x07, saNone}: writeLike, // REASSIGN BLOCKS
	{0x08, saNone}: readLike,  // READ (6)
	{0x28, saNone}: readLike,  // READ (10)
	{0xA8, saNone}: readLike,  // READ (12)
	{0x88, saNone}: readLike,  // READ (16)
	{0x3E, saNone}: readLike,  // READ LONG (10)
	{0x0A, saNone}: writeLike, // WRITE (6)
	{0x2A, saNone}: writeLike, // WRITE (10)
	{0xAA, saNone}: writeLike, // WRITE (12)
	{0x8A, saNone}: writeLike, // WRITE (16)
	{0x2E, saNone}: writeLike, // WRITE AND VERIFY (10)
	{0xAE, saNone}: writeLike, // WRITE AND VERIFY (12)
	{0x8E, saNone}: writeLike, // WRITE AND VERIFY (16)
	{0x2F, saNone}: readLike,  // VERIFY (10)
	{0xAF, saNone}: readLike,  // VERIFY (12)
	{0x8F, saNone}: readLike,  // VERIFY (16)
	{0x3F, saNone}: writeLike, // WRITE LONG (10)
	{0x41, saNone}: writeLike, // WRITE SAME (10)
	{0x93, saNone}: writeLike, // WRITE SAME (16)
	{0x42, saNone}: writeLike, // UNMAP
	{0x48, saNone}: writeLike, // SANITIZE
	{0x89, saNone}: writeLike, // COMPARE AND WRITE
	{0x8B, saNone}: writeLike, // ORWRITE (16)
	{0x9C, saNone}: writeLike, // WRITE ATOMIC (16)
	{0x25, saNone}: allowed,   // READ CAPACITY (10)
	{0x34, saNone}: readLike,  // PRE-FETCH (10)
	{0x90, saNone}: readLike,  // PRE-FETCH (16)
	{0x35, saNone}: writeLike, // SYNCHRONIZE CACHE (10)
	{0x91, saNone}: writeLike, // SYNCHRONIZE CACHE (16)
	{0x37, saNone}: readLike,  // READ DEFECT DATA (10)
	{0xB7, saNone}: readLike,  // READ DEFECT DATA (12)
	{0x1B, saNone}: {fn: startStopKind},
	{0x9E, 0x10}:   allowed,   // READ CAPACITY (16)
	{0x9E, 0x11}:   readLike,  // READ LONG (16)
	{0x9E, 0x12}:   readLike,  // GET LBA STATUS
	{0x9E, 0x13}:   readLike,  // REPORT REFERRALS
	{0x9F, 0x11}:   writeLike, // WRITE LONG (16)
}

// preventAllowKind: PREVENT ALLOW MEDIUM REMOVAL with PREVENT zero is
// allowed, preventing removal conflicts (SPC-4 5.12.1).
func preventAllowKind(cdb []byte) resvKind {
	if len(cdb) > 4 && cdb[4]&0x03 == 0 {
		return resvAllowed
	}
	return resvWrite
}

// startStopKind: START STOP UNIT with START set and POWER CONDITION zero
// is allowed, anything else conflicts (SBC-3 4.16).
func startStopKind(cdb []byte) resvKind {
	if len(cdb) > 4 && cdb[4]&0x01 != 0 && cdb[4]>>4 == 0 {
		return resvAllowed
	}
	return resvWrite
}

// reservationClass returns the class of the command with CDB cdb and
// descriptor d: the rule for its operation code and service action, else
// a write for a medium writer and a read for anything else.
func reservationClass(cdb []byte, d *CommandDesc) resvClass {
	k := resvKey{op: cdb[0], sa: saNone}
	if resvOpcodesWithSA[k.op] {
		if sa, ok := ServiceActionOf(cdb); ok {
			k.sa = sa
		}
	}
	if r, ok := reservationRules[k]; ok {
		if r.fn != nil {
			return resvClass{kind: r.fn(cdb)}
		}
		return r.class
	}
	if d != nil && d.Flags&FlagWritesMedium != 0 {
		return resvClass{kind: resvWrite}
	}
	return resvClass{kind: resvRead}
}
