package spc

import (
	"encoding/binary"

	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// maxParameterList is the longest EXTENDED COPY parameter list the copy
// manager takes: the LID4 header and the descriptor lists.
const maxParameterList = 48 + rod.MaxDescriptorListLength + rod.InlineDataLimit

// COPY MANAGER STATUS of RECEIVE COPY STATUS (LID1) (SPC-4 6.18.2).
const (
	lid1InProgress     = 0x00
	lid1Completed      = 0x01
	lid1CompletedError = 0x02
)

// COPY OPERATION STATUS of RECEIVE COPY STATUS (LID4) (SPC-4 6.18.6).
const (
	lid4Completed           = 0x01
	lid4CompletedError      = 0x02
	lid4RunningForeground   = 0x11
	lid4RunningBackground   = 0x12
	lid4Terminated          = 0x60
	transferCountBytes      = 0x00 // then KiB, MiB, GiB: each unit 1024 of the one before
	transferCountGibibytes  = 0x03
	lid4StatusHeaderLength  = 32
	failureDetailsHeaderLen = 60
)

// copyResultsCDB returns the list identifier and allocation length of a
// RECEIVE COPY RESULTS CDB: one byte of list identifier in the LID1
// service actions, four in the LID4 ones (SPC-4 6.18).
func copyResultsCDB(cdb []byte, lid4 bool) (id uint32, alloc int) {
	id = uint32(cdb[2])
	if lid4 {
		id = binary.BigEndian.Uint32(cdb[2:])
	}
	return id, int(binary.BigEndian.Uint32(cdb[10:]))
}

// noSuchList is the answer for a list identifier this I_T nexus has no
// list for: INVALID FIELD IN CDB at the LIST IDENTIFIER (SPC-4 6.18).
func noSuchList(id uint32) *scsi.Sense {
	return scsi.InvalidFieldInCDB(2, -1).WithReason("no copy with list identifier %d", id)
}

// copyStatusLID1 is RECEIVE COPY STATUS (LID1) (SPC-4 6.18.2). Reading
// the status of a completed list releases it.
func copyStatusLID1(m *rod.Manager) scsi.Handler {
	return func(cmd *scsi.Command) error {
		id, alloc := copyResultsCDB(cmd.CDB, false)
		p, ok := m.Status(cmd.Nexus, cmd.LU(), id, true)
		if !ok {
			return noSuchList(id)
		}
		b := make([]byte, 12)
		binary.BigEndian.PutUint32(b, 8)
		switch {
		case !p.Done:
			b[4] = lid1InProgress
		case p.Status == scsi.StatusGood:
			b[4] = lid1Completed
		default:
			b[4] = lid1CompletedError
		}
		binary.BigEndian.PutUint16(b[5:], uint16(min(p.Segments, 0xFFFF)))
		units, count := transferCount32(p.Bytes)
		b[7] = units
		binary.BigEndian.PutUint32(b[8:], count)
		cmd.SetDataIn(b, alloc)
		return nil
	}
}

// transferCount32 expresses a byte count in the smallest unit of the
// TRANSFER COUNT UNITS field that fits four bytes.
func transferCount32(n uint64) (units byte, count uint32) {
	for units = transferCountBytes; units < transferCountGibibytes && n > 0xFFFFFFFF; units++ {
		n >>= 10
	}
	return units, uint32(min(n, 0xFFFFFFFF))
}

// failedSegmentDetails is RECEIVE COPY FAILURE DETAILS (LID1) (SPC-4
// 6.18.5): the status and sense data (if any) of a held list that
// failed. A list still running, or one that completed without error, has
// no details: AVAILABLE DATA is zero. Reading the details of a failed
// list releases it.
func failedSegmentDetails(m *rod.Manager) scsi.Handler {
	return func(cmd *scsi.Command) error {
		id, alloc := copyResultsCDB(cmd.CDB, false)
		p, ok := m.Status(cmd.Nexus, cmd.LU(), id, false)
		if !ok {
			return noSuchList(id)
		}
		if !p.Done || p.Status == scsi.StatusGood {
			cmd.SetDataIn(make([]byte, 4), alloc)
			return nil
		}
		m.Status(cmd.Nexus, cmd.LU(), id, true)
		var sense []byte // none for RESERVATION CONFLICT or TASK ABORTED
		if p.Sense != nil {
			sense = p.Sense.Encode(cmd.LU().Mode().DSense)
		}
		b := make([]byte, failureDetailsHeaderLen, failureDetailsHeaderLen+len(sense))
		binary.BigEndian.PutUint32(b, uint32(failureDetailsHeaderLen-4+len(sense)))
		b[56] = byte(p.Status)
		binary.BigEndian.PutUint16(b[58:], uint16(len(sense)))
		cmd.SetDataIn(append(b, sense...), alloc)
		return nil
	}
}

// copyStatusLID4 is RECEIVE COPY STATUS (LID4) (SPC-4 6.18.6). Reading
// the status of a completed list releases it.
func copyStatusLID4(m *rod.Manager) scsi.Handler {
	return func(cmd *scsi.Command) error {
		id, alloc := copyResultsCDB(cmd.CDB, true)
		p, ok := m.Status(cmd.Nexus, cmd.LU(), id, true)
		if !ok {
			return noSuchList(id)
		}
		cmd.SetDataIn(lid4Status(p, cmd.LU().Mode().DSense), alloc)
		return nil
	}
}

// lid4Status encodes the RECEIVE COPY STATUS (LID4) parameter data of a
// list, the transfer count in bytes.
func lid4Status(p rod.Progress, dsense bool) []byte {
	var sense []byte
	if p.Done && p.Sense != nil {
		sense = p.Sense.Encode(dsense)
	}
	b := make([]byte, lid4StatusHeaderLength, lid4StatusHeaderLength+len(sense))
	binary.BigEndian.PutUint32(b, uint32(lid4StatusHeaderLength-4+len(sense)))
	b[4] = p.ServiceAction
	switch {
	case !p.Done && p.Background:
		b[5] = lid4RunningBackground
		binary.BigEndian.PutUint32(b[8:], copyStatusUpdateDelayMS)
	case !p.Done:
		b[5] = lid4RunningForeground
		binary.BigEndian.PutUint32(b[8:], copyStatusUpdateDelayMS)
	case p.Aborted:
		b[5] = lid4Terminated
	case p.Status == scsi.StatusGood:
		b[5] = lid4Completed
	default:
		b[5] = lid4CompletedError
	}
	b[12] = byte(p.Status) // EXTENDED COPY COMPLETION STATUS
	b[13] = byte(len(sense))
	b[14] = byte(len(sense))
	b[15] = transferCountBytes
	binary.BigEndian.PutUint64(b[16:], p.Bytes)
	binary.BigEndian.PutUint16(b[24:], uint16(min(p.Segments, 0xFFFF)))
	return append(b, sense...)
}

// operatingParameters is RECEIVE COPY OPERATING PARAMETERS (SPC-4
// 6.18.4): the limits the parser enforces, the same the Third-party Copy
// VPD page reports. Held data is not supported (HELD DATA LIMIT zero),
// which tells sg_xcopy to use LIST ID USAGE 10b.
func operatingParameters(cmd *scsi.Command) error {
	_, alloc := copyResultsCDB(cmd.CDB, false)
	codes := rod.ImplementedDescriptors
	b := make([]byte, 44+len(codes))
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	b[4] = 0x01 // SNLID: parameter lists with LIST ID USAGE 11b are supported
	binary.BigEndian.PutUint16(b[8:], rod.MaxCSCDs)
	binary.BigEndian.PutUint16(b[10:], rod.MaxSegments)
	binary.BigEndian.PutUint32(b[12:], rod.MaxDescriptorListLength)
	binary.BigEndian.PutUint32(b[16:], rod.MaxSegmentLength)
	binary.BigEndian.PutUint32(b[20:], rod.MaxInlineDataLength)
	binary.BigEndian.PutUint16(b[34:], rod.MaxConcurrentCopies) // TOTAL CONCURRENT COPIES
	b[36] = rod.MaxConcurrentCopies                             // MAXIMUM CONCURRENT COPIES
	b[43] = byte(len(codes))
	copy(b[44:], codes)
	cmd.SetDataIn(b, alloc)
	return nil
}
