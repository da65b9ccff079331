// Package scsi holds the vocabulary shared by every SCSI command set in
// odxtgt: status codes, sense data, task attributes, the command table, the
// I_T nexus and the logical unit with its task set and unit attentions.
//
// A transport (package iscsi) builds a [Command] from a received CDB and its
// data-out buffer and submits it with [Submit]. The command reaches the
// logical unit addressed by the [Nexus], waits in the LU's task set until the
// SAM-5 ordering rules let it run, and then runs the handler that the command
// table ([Table]) names for its operation code and service action. The
// handler fills the command's data-in buffer or returns an error; a [*Sense]
// error becomes CHECK CONDITION with sense data in the format the LU's
// D_SENSE bit selects, any other error becomes HARDWARE ERROR.
//
// Command sets (packages spc and sbc) contribute [CommandDesc] tables; the
// dispatcher checks every CDB against the descriptor's usage mask, so a
// reserved or unsupported bit set by an initiator is answered with ILLEGAL
// REQUEST, INVALID FIELD IN CDB and a field pointer, before a handler runs.
// REPORT SUPPORTED OPERATION CODES is generated from the same table.
package scsi
