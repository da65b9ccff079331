package sbc

import (
	"encoding/binary"
	"errors"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// saGetLBAStatus is the service action of GET LBA STATUS under SERVICE
// ACTION IN (16), opcode 9Eh.
const saGetLBAStatus = 0x12

// Layout of the GET LBA STATUS parameter data (SBC-3 5.7.2).
const (
	lbaStatusHeaderLen     = 8
	lbaStatusDescriptorLen = 16
	// maxLBAStatusDescriptors bounds the descriptors one command returns,
	// whatever its ALLOCATION LENGTH, and so the store queries it makes.
	maxLBAStatusDescriptors = 1024
)

// PROVISIONING STATUS values of an LBA status descriptor.
const (
	provisioningMapped      = 0x0
	provisioningDeallocated = 0x1
)

func getLBAStatusCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "GET LBA STATUS", Opcode: 0x9E,
			ServiceAction: saGetLBAStatus, HasServiceAction: true,
			// Bytes 2-9: STARTING LOGICAL BLOCK ADDRESS; 10-13:
			// ALLOCATION LENGTH.
			Usage: []byte{0xFF, 0x1F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00},
			Direction: scsi.DirIn, Handler: getLBAStatus,
			NominalTimeout: nominalInstant, RecommendedTimeout: recommendedInstant,
		},
	}
}

// getLBAStatus serves GET LBA STATUS (SBC-3 5.7). Its LBA status
// descriptors cover consecutive runs of blocks from the STARTING LOGICAL
// BLOCK ADDRESS, the first starting there, each with a PROVISIONING STATUS
// of mapped or deallocated as the store reports them
// ([backstore.Allocated]: SEEK_DATA and SEEK_HOLE on a file); a store that
// does not track allocation is mapped throughout. It returns as many
// descriptors as the ALLOCATION LENGTH holds (at least one, cut like any
// parameter data, and at most maxLBAStatusDescriptors), stopping at the
// last block; the PARAMETER DATA LENGTH counts those. A starting LBA past
// the last block is LOGICAL BLOCK ADDRESS OUT OF RANGE.
func getLBAStatus(cmd *scsi.Command) error {
	g := geometryOf(cmd)
	lba := binary.BigEndian.Uint64(cmd.CDB[2:])
	allocLen := int(binary.BigEndian.Uint32(cmd.CDB[10:]))
	if lba >= g.blocks {
		return scsi.LBAOutOfRange().WithReason("STARTING LOGICAL BLOCK ADDRESS %d beyond the last LBA %d", lba, g.blocks-1)
	}
	want := max(1, min((allocLen-lbaStatusHeaderLen)/lbaStatusDescriptorLen, maxLBAStatusDescriptors))
	p := make([]byte, lbaStatusHeaderLen, lbaStatusHeaderLen+want*lbaStatusDescriptorLen)
	store := cmd.LU().Store
	bs := uint64(g.blockSize)
	for n := 0; n < want && lba < g.blocks; n++ {
		mapped, end, err := backstore.Allocated(store, g.offset(lba))
		switch {
		case errors.Is(err, backstore.ErrNotSupported):
			mapped, end = true, store.Size()
		case err != nil:
			return scsi.ReadError(err, lba)
		}
		// The run ends at a block boundary past lba (AllocationReporter);
		// its length must fit the 32-bit NUMBER OF LOGICAL BLOCKS.
		blocks := min(max(uint64(end)/bs, lba+1)-lba, 0xFFFFFFFF)
		var d [lbaStatusDescriptorLen]byte
		binary.BigEndian.PutUint64(d[0:], lba)
		binary.BigEndian.PutUint32(d[8:], uint32(blocks))
		d[12] = provisioningDeallocated
		if mapped {
			d[12] = provisioningMapped
		}
		p = append(p, d[:]...)
		lba += blocks
	}
	binary.BigEndian.PutUint32(p[0:], uint32(len(p)-4)) // PARAMETER DATA LENGTH
	cmd.SetDataIn(p, allocLen)
	return nil
}
