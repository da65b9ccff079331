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
// The transport never interprets a CDB: it builds a scsi.Command, submits it
// to the logical unit the session's scsi.Nexus maps the LUN to, and sends
// the Data-In, status and sense the command produced.
package iscsi
