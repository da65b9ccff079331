// Package spc implements the SPC-4 commands every odxtgt logical unit
// serves, whatever its device type: INQUIRY with its vital product data
// pages, REPORT LUNS, REQUEST SENSE, TEST UNIT READY, MODE SENSE and MODE
// SELECT (6 and 10) with the mode pages odxtgt supports, PREVENT ALLOW
// MEDIUM REMOVAL, and the MAINTENANCE IN reports: REPORT TARGET PORT
// GROUPS, REPORT SUPPORTED OPERATION CODES (generated from the logical
// unit's command table) and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS.
// PERSISTENT RESERVE IN and OUT and the SPC-2 RESERVE and RELEASE (6) and
// (10) decode their CDBs and parameter lists here; the reservation state
// and the conflict checks are scsi's (scsi.LU.PersistentReserveOut).
//
// [Commands] returns their descriptors for a [scsi.Table]. Each usage mask
// holds exactly the CDB bits a handler examines, so the dispatcher answers
// a reserved or unsupported bit with ILLEGAL REQUEST, INVALID FIELD IN CDB
// and a field pointer before the handler runs; handlers check only the
// field values a mask cannot express.
//
// # Identity
//
// A host that moves from a Linux LIO target to odxtgt must see the same
// device, so the identity data follows LIO's target_core_spc.c in shape:
// the standard INQUIRY data (vendor [DefaultVendor], revision
// [DefaultRevision], SPC-4, version descriptors SAM-5, iSCSI, SPC-4 and
// SBC-3), the unit serial number page, and the Device Identification page
// with the designators of [scsi.LU.Designators] in LIO's order and
// encoding, whose NAA name is derived from the unit serial number as LIO
// derives it. Where LIO claims something odxtgt does not implement, odxtgt
// reports what it does:
//
//   - TPGS is 01b (implicit ALUA only): there is one target port group,
//     always active/optimized, reported by REPORT TARGET PORT GROUPS; SET
//     TARGET PORT GROUPS is not implemented, so explicit ALUA (LIO's 11b)
//     is not claimed. SCCS is zero: there is no SCC-2 storage array
//     controller behind the logical unit.
//   - 3PC is zero until the copy manager exists.
//   - The absent logical unit answers INQUIRY with peripheral qualifier
//     011b and device type 1Fh (SPC-4, logical units not supported), where
//     LIO answers 001b.
//   - The MODE SENSE block descriptor reports the number of logical blocks
//     (SBC-3, mode parameter block descriptors), where LIO reports the last
//     LBA.
//
// # Mode parameters
//
// MODE SENSE returns the read-write error recovery (01h), caching (08h),
// control (0Ah) and informational exceptions control (1Ch) pages, with
// LIO's values. WCE (caching), D_SENSE and SWP (control) are changeable;
// MODE SELECT changes them for every I_T nexus and the others get MODE
// PARAMETERS CHANGED. Parameters cannot be saved: MODE SENSE with PC 11b
// gets SAVING PARAMETERS NOT SUPPORTED and MODE SELECT with SP set INVALID
// FIELD IN CDB (SPC-4, MODE SELECT and MODE SENSE).
package spc
