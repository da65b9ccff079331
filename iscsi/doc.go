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
// stop, drain) queue. odxtgt negotiates MaxConnections=1 and
// ErrorRecoveryLevel=0, so a session lives and dies with its one
// connection; a new login with the same initiator name and ISID reinstates
// the session, aborting the old one's tasks first.
//
// What a peer can make the target hold is bounded per peer (each limit is
// a Config field):
//
//   - connections: MaxConnections in all, MaxConnectionsPerIP from one
//     source address; LoginTimeout from accept to full feature phase;
//   - answers: once SendQueueLimit bytes wait for the socket, or the
//     running commands may still produce DataInLimit bytes of data-in,
//     the reader stops reading from that initiator (backpressure), and a
//     socket write without progress for SendTimeout drops the connection;
//   - data-out: a write reserves its buffer from DataOutBudget, within
//     its session's and its initiator's fair share, only for the data it
//     may send unsolicited until its CmdSN turn comes, then for its EDTL;
//     a write without Data-Out for DataOutTimeout ends with CHECK
//     CONDITION and gives its reservation back;
//   - requests held for their CmdSN keep at most 1 MiB of data, task
//     management functions in progress are capped, text is bounded by
//     the negotiation buffer.
//
// A panic on any of a connection's goroutines is recovered, logged, and
// ends that connection only.
//
// The transport never interprets a CDB: it builds a scsi.Command, submits it
// to the logical unit the session's scsi.Nexus maps the LUN to, and sends
// the Data-In, status and sense the command produced.
package iscsi
