package sbc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/scsi"
)

// extent is the range of logical blocks a CDB addresses.
type extent struct {
	LBA    uint64
	Blocks uint64
	// LengthAt is the CDB byte holding the most significant byte of the
	// length field, for field pointers.
	LengthAt int
}

// layout says where a CDB keeps its LOGICAL BLOCK ADDRESS and its length
// field (TRANSFER LENGTH, VERIFICATION LENGTH, NUMBER OF LOGICAL BLOCKS or
// PREFETCH LENGTH, by command). The 10-, 12- and 16-byte block commands of
// SBC-3 share three layouts; the 6-byte READ and WRITE have their own.
type layout struct {
	lbaAt, lbaSize int // bytes
	lenAt, lenSize int // bytes
	// short is the 6-byte form: a 21-bit LBA in bytes 1-3 and a one-byte
	// length in which zero means 256 blocks (SBC-3 READ (6), WRITE (6)).
	short bool
}

var (
	layout6  = layout{lbaAt: 1, lbaSize: 3, lenAt: 4, lenSize: 1, short: true}
	layout10 = layout{lbaAt: 2, lbaSize: 4, lenAt: 7, lenSize: 2}
	layout12 = layout{lbaAt: 2, lbaSize: 4, lenAt: 6, lenSize: 4}
	layout16 = layout{lbaAt: 2, lbaSize: 8, lenAt: 10, lenSize: 4}
)

// decode returns the extent the CDB addresses. The dispatcher has already
// checked that the CDB is at least as long as the command's usage mask.
func (l layout) decode(cdb []byte) extent {
	e := extent{LengthAt: l.lenAt}
	switch l.lbaSize {
	case 3:
		// The 21-bit LBA of the 6-byte CDB: bits 4-0 of byte 1 and bytes
		// 2-3, read as the low bits of bytes 0-3.
		e.LBA = uint64(binary.BigEndian.Uint32(cdb) & 0x001FFFFF)
	case 4:
		e.LBA = uint64(binary.BigEndian.Uint32(cdb[l.lbaAt:]))
	case 8:
		e.LBA = binary.BigEndian.Uint64(cdb[l.lbaAt:])
	}
	switch l.lenSize {
	case 1:
		e.Blocks = uint64(cdb[l.lenAt])
	case 2:
		e.Blocks = uint64(binary.BigEndian.Uint16(cdb[l.lenAt:]))
	case 4:
		e.Blocks = uint64(binary.BigEndian.Uint32(cdb[l.lenAt:]))
	}
	if l.short && e.Blocks == 0 {
		e.Blocks = 256
	}
	return e
}

// geometry is the capacity of a logical unit.
type geometry struct {
	blockSize int
	blocks    uint64 // number of logical blocks
}

func geometryOf(cmd *scsi.Command) geometry {
	lu := cmd.LU()
	return geometry{blockSize: lu.Store.BlockSize(), blocks: lu.Blocks()}
}

// offset is the byte offset of lba. Callers have range-checked lba, so the
// product fits the store's int64 size.
func (g geometry) offset(lba uint64) int64 { return int64(lba * uint64(g.blockSize)) }

// bytes is the length in bytes of n blocks; n is limited by
// maxTransferBlocks or the capacity, so the product fits an int.
func (g geometry) bytes(n uint64) int { return int(n * uint64(g.blockSize)) }

// maxTransferBlocks is the MAXIMUM TRANSFER LENGTH reported in the Block
// Limits VPD page for this block size.
func (g geometry) maxTransferBlocks() uint64 {
	return scsi.MaxTransferBytes / uint64(g.blockSize)
}

// checkTransferLength refuses a transfer longer than the MAXIMUM TRANSFER
// LENGTH: SBC-3 6.5.3 requires ILLEGAL REQUEST, INVALID FIELD IN CDB; the
// field pointer names the length field.
func (g geometry) checkTransferLength(e extent) *scsi.Sense {
	if e.Blocks > g.maxTransferBlocks() {
		return scsi.InvalidFieldInCDB(e.LengthAt, -1).
			WithReason("transfer length %d blocks exceeds the maximum of %d", e.Blocks, g.maxTransferBlocks())
	}
	return nil
}

// checkRange refuses an extent that reaches past the last logical block
// (see scsi.CheckRange).
func (g geometry) checkRange(e extent) *scsi.Sense { return scsi.CheckRange(e.LBA, e.Blocks, g.blocks) }

// checkTransfer applies both checks of a command that moves data, in the
// order of SBC-3: CDB fields first, then the range.
func (g geometry) checkTransfer(e extent) *scsi.Sense {
	if s := g.checkTransferLength(e); s != nil {
		return s
	}
	return g.checkRange(e)
}

// rangeChecked returns the handler of a command that moves no data: it
// checks the CDB's range (a length of zero meaning through the last block)
// and then runs act, if any.
func rangeChecked(l layout, act scsi.Handler) scsi.Handler {
	return func(cmd *scsi.Command) error {
		if s := geometryOf(cmd).checkRange(l.decode(cmd.CDB)); s != nil {
			return s
		}
		if act == nil {
			return nil
		}
		return act(cmd)
	}
}
