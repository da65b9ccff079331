package sbc

import (
	"context"
	"encoding/binary"

	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// POPULATE TOKEN and WRITE USING TOKEN (SBC-3 5.9, 5.38) are service
// actions of the third-party copy OUT operation code.
const (
	opThirdPartyCopyOut = 0x83
	saPopulateToken     = 0x10
	saWriteUsingToken   = 0x11
	// DATA LENGTH (two bytes) bounds the parameter lists. Up to it, the
	// parser decides: more than rod.MaxRangeDescriptors ranges is TOO
	// MANY SEGMENT DESCRIPTORS (SBC-3 5.9.2, 5.38.2), not a length error.
	maxPopulateList = 2 + 0xFFFF
	maxWUTList      = 2 + 0xFFFF
	// tokenRecommendedTimeout covers a WRITE USING TOKEN of up to the
	// write budget, and the internal I/O it waits for.
	tokenRecommendedTimeout = 30
)

func tokenCommands(m *rod.Manager) []scsi.CommandDesc {
	desc := func(name string, sa byte, h scsi.Handler, flags scsi.CommandFlags) scsi.CommandDesc {
		return scsi.CommandDesc{
			Name: name, Opcode: opThirdPartyCopyOut, ServiceAction: uint16(sa), HasServiceAction: true,
			Usage:     []byte{0xFF, sa, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, groupNumber, 0x00},
			Direction: scsi.DirOut, Flags: flags, Handler: h,
			NominalTimeout: nominalIO, RecommendedTimeout: tokenRecommendedTimeout,
		}
	}
	return []scsi.CommandDesc{
		desc("POPULATE TOKEN", saPopulateToken, populateToken(m), 0),
		desc("WRITE USING TOKEN", saWriteUsingToken, writeUsingToken(m), scsi.FlagWritesMedium),
	}
}

// tokenCDB returns the LIST IDENTIFIER and PARAMETER LIST LENGTH of
// POPULATE TOKEN and WRITE USING TOKEN.
func tokenCDB(cdb []byte) (id uint32, n uint32) {
	return binary.BigEndian.Uint32(cdb[6:]), binary.BigEndian.Uint32(cdb[10:])
}

// populateToken is POPULATE TOKEN (SBC-3 5.9). A PARAMETER LIST LENGTH of
// zero makes no token and is not an error.
func populateToken(m *rod.Manager) scsi.Handler {
	return func(cmd *scsi.Command) error {
		id, n := tokenCDB(cmd.CDB)
		if n == 0 {
			return nil
		}
		if n > maxPopulateList {
			return scsi.ParameterListLengthError().WithReason("parameter list of %d bytes, at most %d", n, maxPopulateList)
		}
		data, err := cmd.TakeDataOut(int(n))
		if err != nil {
			return err
		}
		p, s := rod.ParsePopulate(data)
		if s != nil {
			return s
		}
		if s := m.CheckPopulate(cmd.LU(), p); s != nil {
			return s
		}
		return m.Execute(cmd, id, rod.UsageHold, saPopulateToken, p.Immed, func(ctx context.Context, l *rod.List, req rod.Request) *scsi.Sense {
			return m.Populate(ctx, l, req, p)
		})
	}
}

// writeUsingToken is WRITE USING TOKEN (SBC-3 5.38). A PARAMETER LIST
// LENGTH of zero writes nothing and is not an error.
func writeUsingToken(m *rod.Manager) scsi.Handler {
	return func(cmd *scsi.Command) error {
		id, n := tokenCDB(cmd.CDB)
		if n == 0 {
			return nil
		}
		if n > maxWUTList {
			return scsi.ParameterListLengthError().WithReason("parameter list of %d bytes, at most %d", n, maxWUTList)
		}
		data, err := cmd.TakeDataOut(int(n))
		if err != nil {
			return err
		}
		p, s := rod.ParseWriteUsingToken(data)
		if s != nil {
			return s
		}
		if s := m.CheckWriteUsingToken(cmd.Nexus, cmd.LU(), p); s != nil {
			return s
		}
		return m.Execute(cmd, id, rod.UsageHold, saWriteUsingToken, p.Immed, func(ctx context.Context, l *rod.List, req rod.Request) *scsi.Sense {
			return m.WriteUsingToken(ctx, l, req, p)
		})
	}
}
