package iscsi

import (
	"encoding/binary"
)

// BHSLength is the size of the Basic Header Segment (RFC 7143 11.2.1).
const BHSLength = 48

// ReservedTag is the all-ones Initiator/Target Transfer Tag value
// (RFC 7143 11.2.1.8): "no task" / "no transfer".
const ReservedTag = 0xFFFFFFFF

// PDU is one iSCSI Protocol Data Unit: the raw Basic Header Segment plus
// any Additional Header Segments and the data segment (without padding or
// digests). Accessors name the BHS fields common to all PDUs and the
// opcode-specific fields by their RFC 7143 names; a field's meaning depends
// on the opcode, so each accessor says which PDUs carry it.
type PDU struct {
	BHS  [BHSLength]byte
	AHS  []byte // additional header segments, a multiple of 4 bytes
	Data []byte // data segment
}

// Opcode returns the opcode (byte 0 bits 5-0).
func (p *PDU) Opcode() Opcode { return Opcode(p.BHS[0] & 0x3F) }

// SetOpcode sets the opcode, clearing the I bit.
func (p *PDU) SetOpcode(op Opcode) { p.BHS[0] = byte(op) & 0x3F }

// Immediate reports the I bit (byte 0 bit 6): immediate delivery.
func (p *PDU) Immediate() bool { return p.BHS[0]&0x40 != 0 }

// SetImmediate sets or clears the I bit.
func (p *PDU) SetImmediate(v bool) { setBit(&p.BHS[0], 0x40, v) }

// Final reports the F bit (byte 1 bit 7).
func (p *PDU) Final() bool { return p.BHS[1]&0x80 != 0 }

// SetFinal sets or clears the F bit.
func (p *PDU) SetFinal(v bool) { setBit(&p.BHS[1], 0x80, v) }

// Flags returns byte 1, the F bit and the opcode-specific flags.
func (p *PDU) Flags() byte { return p.BHS[1] }

// TotalAHSLength returns the TotalAHSLength field in bytes.
func (p *PDU) TotalAHSLength() int { return int(p.BHS[4]) * 4 }

// DataSegmentLength returns the DataSegmentLength field (bytes 5-7).
func (p *PDU) DataSegmentLength() int {
	return int(p.BHS[5])<<16 | int(p.BHS[6])<<8 | int(p.BHS[7])
}

func (p *PDU) setLengths() {
	p.BHS[4] = byte(len(p.AHS) / 4)
	n := len(p.Data)
	p.BHS[5], p.BHS[6], p.BHS[7] = byte(n>>16), byte(n>>8), byte(n)
}

// LUN returns bytes 8-15 (the LUN, or opcode-specific fields such as the
// login ISID/TSIH).
func (p *PDU) LUN() [8]byte { return [8]byte(p.BHS[8:16]) }

// SetLUN sets bytes 8-15.
func (p *PDU) SetLUN(l [8]byte) { copy(p.BHS[8:16], l[:]) }

// ITT returns the Initiator Task Tag (bytes 16-19).
func (p *PDU) ITT() uint32 { return p.Uint32(16) }

// SetITT sets the Initiator Task Tag.
func (p *PDU) SetITT(v uint32) { p.PutUint32(16, v) }

// Uint32 reads the big-endian 32-bit BHS field at byte offset off.
func (p *PDU) Uint32(off int) uint32 { return binary.BigEndian.Uint32(p.BHS[off:]) }

// PutUint32 writes the big-endian 32-bit BHS field at byte offset off.
func (p *PDU) PutUint32(off int, v uint32) { binary.BigEndian.PutUint32(p.BHS[off:], v) }

// Uint16 reads the big-endian 16-bit BHS field at byte offset off.
func (p *PDU) Uint16(off int) uint16 { return binary.BigEndian.Uint16(p.BHS[off:]) }

// PutUint16 writes the big-endian 16-bit BHS field at byte offset off.
func (p *PDU) PutUint16(off int, v uint16) { binary.BigEndian.PutUint16(p.BHS[off:], v) }

// Field offsets shared by many PDUs (RFC 7143 11.2 and the per-opcode
// sections). Bytes 20-47 are opcode-specific; these are the common shapes.
const (
	// Initiator PDUs.
	OffTTT       = 20 // Target Transfer Tag (Data-Out, NOP-Out, Text, R2T, NOP-In)
	OffEDTL      = 20 // Expected Data Transfer Length (SCSI Command)
	OffCmdSN     = 24 // CmdSN (initiator PDUs carrying commands)
	OffExpStatSN = 28 // ExpStatSN (initiator PDUs)
	OffCDB       = 32 // CDB, 16 bytes (SCSI Command)

	// Target PDUs.
	OffStatSN   = 24 // StatSN (target PDUs)
	OffExpCmdSN = 28 // ExpCmdSN (target PDUs)
	OffMaxCmdSN = 32 // MaxCmdSN (target PDUs)

	// Data PDUs and R2T.
	OffDataSN       = 36 // DataSN (Data-In, Data-Out), R2TSN (R2T)
	OffBufferOffset = 40 // Buffer Offset (Data-In, Data-Out, R2T)
	OffDesiredDTL   = 44 // Desired Data Transfer Length (R2T)
	OffResidual     = 44 // Residual Count (SCSI Response, Data-In)
)

func setBit(b *byte, mask byte, v bool) {
	if v {
		*b |= mask
	} else {
		*b &^= mask
	}
}

// padLen returns the padding that brings n to a multiple of 4.
func padLen(n int) int { return (4 - n%4) % 4 }
