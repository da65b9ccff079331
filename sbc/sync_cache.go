package sbc

import "github.com/odxtgt/odxtgt/scsi"

// Usage of byte 1 of SYNCHRONIZE CACHE: SYNC_NV (bit 2) and IMMED (bit 1).
// SYNC_NV=1 allows stopping at a non-volatile cache; odxtgt has none, so it
// always flushes to the medium, which satisfies both settings.
const syncCacheByte1 = 0x06

func syncCacheCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "SYNCHRONIZE CACHE (10)", Opcode: 0x35,
			Usage: []byte{0xFF, syncCacheByte1, 0xFF, 0xFF, 0xFF, 0xFF, groupNumber,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirNone, Handler: synchronizeCache(layout10),
			NominalTimeout: nominalFlush, RecommendedTimeout: recommendedFlush,
		},
		{
			Name: "SYNCHRONIZE CACHE (16)", Opcode: 0x91,
			Usage: []byte{0xFF, syncCacheByte1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirNone, Handler: synchronizeCache(layout16),
			NominalTimeout: nominalFlush, RecommendedTimeout: recommendedFlush,
		},
	}
}

// synchronizeCache returns the handler of SYNCHRONIZE CACHE with the given
// layout. The range (LBA plus NUMBER OF LOGICAL BLOCKS, zero meaning
// through the last block) is checked like any other (SBC-3 SYNCHRONIZE
// CACHE (10)); the store can only flush everything, which covers any range.
//
// With IMMED set SBC-3 lets the device server return status once the CDB
// is validated. odxtgt still answers after the flush: the initiator cannot
// tell the difference except in latency, and a flush that fails is reported
// on this command instead of being lost (odxtgt keeps no deferred errors).
func synchronizeCache(l layout) scsi.Handler {
	return rangeChecked(l, func(cmd *scsi.Command) error {
		if err := cmd.LU().Store.Sync(); err != nil {
			return scsi.SyncError(err)
		}
		return nil
	})
}
