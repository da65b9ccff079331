// Package initiator is a small iSCSI initiator (RFC 7143) for odxtgt's tests
// and tools. It logs in (with optional one-way or mutual CHAP), negotiates
// operational keys, and runs many SCSI commands concurrently on one
// connection: a reader goroutine demultiplexes target PDUs by Initiator Task
// Tag, commands wait while the CmdSN window is closed, write data goes as
// immediate data, unsolicited Data-Out and answers to R2Ts, and read data is
// reassembled from Data-In PDUs by buffer offset.
//
// The initiator is deliberately strict: target behaviour that breaks a rule
// of RFC 7143 (a DataSN gap, an R2T outside the command's buffer, a residual
// count that does not match the data sent, a StatSN out of sequence) is
// reported as a *ProtocolError, either from the command it concerns or in
// Session.Violations, so conformance tests can assert the target never
// breaks them.
//
// For negative tests, SendRaw writes hand-built PDUs and Watch delivers the
// target PDUs that answer them.
package initiator
