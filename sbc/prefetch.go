package sbc

import "github.com/odxtgt/odxtgt/scsi"

// prefetchByte1 is the usage of byte 1 of PRE-FETCH: IMMED (bit 1).
const prefetchByte1 = 0x02

func prefetchCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "PRE-FETCH (10)", Opcode: 0x34,
			Usage: []byte{0xFF, prefetchByte1, 0xFF, 0xFF, 0xFF, 0xFF, groupNumber,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirNone, Handler: prefetch(layout10),
			NominalTimeout: nominalInstant, RecommendedTimeout: recommendedInstant,
		},
		{
			Name: "PRE-FETCH (16)", Opcode: 0x90,
			Usage: []byte{0xFF, prefetchByte1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
				0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirNone, Handler: prefetch(layout16),
			NominalTimeout: nominalInstant, RecommendedTimeout: recommendedInstant,
		},
	}
}

// prefetch returns the handler of PRE-FETCH with the given layout.
//
// SBC-3 PRE-FETCH (10): CONDITION MET means every requested block now sits
// in the cache (or, with IMMED set, that the cache has room for all of
// them); GOOD means the cache cannot hold them all. odxtgt has no cache of
// its own to load blocks into, only the host's page cache, which it does
// not control, so after checking the range (PREFETCH LENGTH zero meaning
// through the last block) it answers GOOD. libiscsi's PRE-FETCH tests
// expect GOOD as well.
func prefetch(l layout) scsi.Handler { return rangeChecked(l, nil) }
