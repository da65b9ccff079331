// Package iscsi is odxtgt's iSCSI transport (RFC 7143): the PDU codec,
// login and key negotiation, CHAP, discovery, sessions and connections, R2T
// and Data-In sequencing, task management, NOP and logout.
//
// Every PDU starts with a 48-byte Basic Header Segment:
//
//	byte  0    |.|I| Opcode    |  I: immediate delivery
//	byte  1    |F| opcode-specific flags
//	bytes 2-3  opcode-specific
//	byte  4    TotalAHSLength (4-byte words)
//	bytes 5-7  DataSegmentLength
//	bytes 8-15 LUN or opcode-specific
//	bytes 16-19 Initiator Task Tag
//	bytes 20-47 opcode-specific
//
// followed by Additional Header Segments, an optional CRC32C header digest,
// the data segment padded to 4 bytes and an optional CRC32C data digest.
//
// A [Server] listens on the portals of every target portal group. Each
// connection logs in synchronously (security, then operational
// negotiation; [LoginError] statuses for failures). In full feature phase
// its protocol state (CmdSN window, StatSN, tasks, R2Ts, text exchanges,
// task management, NOP timers) sits behind one mutex: a reader goroutine
// decodes and processes PDUs, each command's goroutine turns its
// completion into the response and writes it when the socket is free
// (together with whatever else is queued, in one vectored write), a
// writer goroutine sends what the reader and the control loop (timers,
// stop, drain) queue. The send queue is bounded: once SendQueueLimit bytes
// wait for the socket the reader stops reading from that initiator, and a
// write that makes no progress for SendTimeout drops the connection. A
// panic on any of these goroutines is recovered and ends its connection
// only. odxtgt negotiates MaxConnections=1 and
// ErrorRecoveryLevel=0, so a session lives and dies with its one
// connection; a new login with the same initiator name and ISID reinstates
// the session, aborting the old one's tasks first.
//
// The transport never interprets a CDB: it builds a scsi.Command, submits it
// to the logical unit the session's scsi.Nexus maps the LUN to, and sends
// the Data-In, status and sense the command produced.
package iscsi
