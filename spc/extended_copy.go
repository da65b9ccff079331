package spc

import (
	"context"
	"encoding/binary"

	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// Operation codes and service actions of the third-party copy commands
// (SPC-4 6.3-6.5, 6.17-6.19).
const (
	opThirdPartyCopyOut = 0x83
	opThirdPartyCopyIn  = 0x84

	saExtendedCopyLID1      = 0x00
	saExtendedCopyLID4      = 0x01
	saCopyOperationAbort    = 0x1C
	saCopyStatusLID1        = 0x00
	saOperatingParameters   = 0x03
	saFailedSegmentDetails  = 0x04
	saCopyStatusLID4        = 0x05
	copyNominalTimeout      = 1
	copyRecommendedTimeout  = 600 // a copy of up to rod.MaxSegments segments of rod.MaxSegmentLength
	copyStatusUpdateDelayMS = 100 // ESTIMATED STATUS UPDATE DELAY while a copy runs
)

// copyCommands are the third-party copy commands served by copy manager
// m.
func copyCommands(m *rod.Manager) []scsi.CommandDesc {
	out := func(name string, sa byte, h scsi.Handler, recommended uint32) scsi.CommandDesc {
		return scsi.CommandDesc{
			Name: name, Opcode: opThirdPartyCopyOut, ServiceAction: uint16(sa), HasServiceAction: true,
			Usage:     []byte{0xFF, sa, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, control},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: h,
			NominalTimeout: copyNominalTimeout, RecommendedTimeout: recommended,
		}
	}
	in := func(name string, sa byte, h scsi.Handler, lid4 bool) scsi.CommandDesc {
		usage := []byte{0xFF, sa, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, control}
		if lid4 {
			usage[3], usage[4], usage[5] = 0xFF, 0xFF, 0xFF
		}
		if sa == saOperatingParameters {
			usage[2] = 0 // no list identifier
		}
		return scsi.CommandDesc{
			Name: name, Opcode: opThirdPartyCopyIn, ServiceAction: uint16(sa), HasServiceAction: true,
			Usage: usage, Direction: scsi.DirIn, Handler: h,
			NominalTimeout: nominalTimeout, RecommendedTimeout: recommendedTimeout,
		}
	}
	abort := out("COPY OPERATION ABORT", saCopyOperationAbort, copyOperationAbort(m), recommendedTimeout)
	abort.Usage = []byte{0xFF, saCopyOperationAbort, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, control}
	abort.Direction, abort.Flags = scsi.DirNone, 0
	return []scsi.CommandDesc{
		out("EXTENDED COPY (LID1)", saExtendedCopyLID1, extendedCopy(m, false), copyRecommendedTimeout),
		out("EXTENDED COPY (LID4)", saExtendedCopyLID4, extendedCopy(m, true), copyRecommendedTimeout),
		abort,
		in("RECEIVE COPY STATUS (LID1)", saCopyStatusLID1, copyStatusLID1(m), false),
		in("RECEIVE COPY OPERATING PARAMETERS", saOperatingParameters, operatingParameters, false),
		in("RECEIVE COPY FAILURE DETAILS (LID1)", saFailedSegmentDetails, failedSegmentDetails(m), false),
		in("RECEIVE COPY STATUS (LID4)", saCopyStatusLID4, copyStatusLID4(m), true),
	}
}

// extendedCopy is EXTENDED COPY (LID1) or (LID4) (SPC-4 6.4, 6.5). A
// PARAMETER LIST LENGTH of zero is not an error and copies nothing. With
// IMMED (LID4 only) the command is GOOD once the list is accepted and the
// copy goes on in the background, until it ends, COPY OPERATION ABORT,
// a reset or the loss of the nexus.
func extendedCopy(m *rod.Manager, lid4 bool) scsi.Handler {
	sa := byte(saExtendedCopyLID1)
	if lid4 {
		sa = saExtendedCopyLID4
	}
	return func(cmd *scsi.Command) error {
		n := binary.BigEndian.Uint32(cmd.CDB[10:])
		if n == 0 {
			return nil
		}
		if n > maxParameterList {
			return scsi.ParameterListLengthError().WithReason("parameter list of %d bytes, at most %d", n, maxParameterList)
		}
		data, err := cmd.TakeDataOut(int(n))
		if err != nil {
			return err
		}
		p, s := rod.ParseParams(data, lid4)
		if s != nil {
			return s
		}
		if s := m.CheckRODs(cmd.Nexus, p); s != nil {
			return s
		}
		return m.Execute(cmd, p.ListID, p.Usage, sa, p.Immed, func(ctx context.Context, l *rod.List, req rod.Request) *scsi.Sense {
			return m.Run(ctx, l, req, p)
		})
	}
}

// copyOperationAbort is COPY OPERATION ABORT (SPC-4 6.3): it stops the
// copy with the given list identifier from this I_T nexus; an unknown
// identifier is INVALID FIELD IN CDB.
func copyOperationAbort(m *rod.Manager) scsi.Handler {
	return func(cmd *scsi.Command) error {
		id := binary.BigEndian.Uint32(cmd.CDB[2:])
		if !m.Abort(cmd.Nexus, cmd.LU(), id) {
			return scsi.InvalidFieldInCDB(2, -1).WithReason("no copy with list identifier %d", id)
		}
		return nil
	}
}
