package scsi

import (
	"encoding/binary"
	"fmt"
)

// SenseKey is the SENSE KEY field of sense data (SPC-4 4.5.6).
type SenseKey byte

// Sense keys.
const (
	NoSense        SenseKey = 0x0
	RecoveredError SenseKey = 0x1
	NotReady       SenseKey = 0x2
	MediumError    SenseKey = 0x3
	HardwareError  SenseKey = 0x4
	IllegalRequest SenseKey = 0x5
	UnitAttention  SenseKey = 0x6
	DataProtect    SenseKey = 0x7
	BlankCheck     SenseKey = 0x8
	CopyAborted    SenseKey = 0xA
	AbortedCommand SenseKey = 0xB
	VolumeOverflow SenseKey = 0xD
	Miscompare     SenseKey = 0xE
)

var senseKeyNames = [16]string{
	"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
	"ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC",
	"COPY ABORTED", "ABORTED COMMAND", "RESERVED", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED",
}

func (k SenseKey) String() string { return senseKeyNames[k&0xF] }

// ASC is an ADDITIONAL SENSE CODE (high byte) and ADDITIONAL SENSE CODE
// QUALIFIER (low byte) pair (SPC-4 4.5.6, table 28).
type ASC uint16

// Additional sense codes used by odxtgt.
const (
	ASCNoAdditionalSense            ASC = 0x0000
	ASCLUNotReadyManualIntervention ASC = 0x0403
	ASCWriteError                   ASC = 0x0C00
	ASCUnrecoveredReadError         ASC = 0x1100
	ASCParameterListLengthError     ASC = 0x1A00
	ASCMiscompareDuringVerify       ASC = 0x1D00
	ASCInvalidCommandOperationCode  ASC = 0x2000
	ASCLBAOutOfRange                ASC = 0x2100
	ASCInvalidFieldInCDB            ASC = 0x2400
	ASCLUNotSupported               ASC = 0x2500
	ASCInvalidFieldInParameterList  ASC = 0x2600
	ASCParameterNotSupported        ASC = 0x2601
	ASCParameterValueInvalid        ASC = 0x2602
	ASCWriteProtected               ASC = 0x2700
	// ASCSpaceAllocationFailedWP: a thin-provisioned logical unit found
	// no space to allocate for a write (SBC-3 4.7.3.6).
	ASCSpaceAllocationFailedWP        ASC = 0x2707
	ASCPowerOnResetOrBusDeviceReset   ASC = 0x2900
	ASCPowerOnOccurred                ASC = 0x2901
	ASCBusDeviceResetFunctionOccurred ASC = 0x2903
	ASCITNexusLossOccurred            ASC = 0x2907
	ASCModeParametersChanged          ASC = 0x2A01
	ASCCommandsClearedByAnotherInit   ASC = 0x2F00
	ASCSavingParametersNotSupported   ASC = 0x3900
	ASCMediumNotPresent               ASC = 0x3A00
	ASCReportedLUNsDataChanged        ASC = 0x3F0E
	ASCInternalTargetFailure          ASC = 0x4400
	ASCInvalidFieldInCommandIU        ASC = 0x0E03
	ASCMediumRemovalPrevented         ASC = 0x5302
	ASCOperationInProgress            ASC = 0x0016
	// Copy manager conditions (SPC-4 6.4, 5.17.7).
	ASCThirdPartyDeviceFailure      ASC = 0x0D01
	ASCCopyTargetDeviceNotReachable ASC = 0x0D02
	ASCCopyTargetDeviceDataUnderrun ASC = 0x0D04
	ASCUnreachableCopyTarget        ASC = 0x0804
	ASCTooManyTargetDescriptors     ASC = 0x2606
	ASCUnsupportedTargetDescriptor  ASC = 0x2607
	ASCTooManySegmentDescriptors    ASC = 0x2608
	ASCUnsupportedSegmentDescriptor ASC = 0x2609
	ASCUnexpectedInexactSegment     ASC = 0x260A
)

// Reservation conditions (SPC-4 5.12, 6.16).
const (
	ASCReservationsPreempted             ASC = 0x2A03
	ASCReservationsReleased              ASC = 0x2A04
	ASCRegistrationsPreempted            ASC = 0x2A05
	ASCInvalidReleaseOfPR                ASC = 0x2604
	ASCInsufficientRegistrationResources ASC = 0x5504
)

var ascNames = map[ASC]string{
	ASCNoAdditionalSense:              "NO ADDITIONAL SENSE INFORMATION",
	ASCLUNotReadyManualIntervention:   "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED",
	ASCWriteError:                     "WRITE ERROR",
	ASCUnrecoveredReadError:           "UNRECOVERED READ ERROR",
	ASCParameterListLengthError:       "PARAMETER LIST LENGTH ERROR",
	ASCMiscompareDuringVerify:         "MISCOMPARE DURING VERIFY OPERATION",
	ASCInvalidCommandOperationCode:    "INVALID COMMAND OPERATION CODE",
	ASCLBAOutOfRange:                  "LOGICAL BLOCK ADDRESS OUT OF RANGE",
	ASCInvalidFieldInCDB:              "INVALID FIELD IN CDB",
	ASCLUNotSupported:                 "LOGICAL UNIT NOT SUPPORTED",
	ASCInvalidFieldInParameterList:    "INVALID FIELD IN PARAMETER LIST",
	ASCParameterNotSupported:          "PARAMETER NOT SUPPORTED",
	ASCParameterValueInvalid:          "PARAMETER VALUE INVALID",
	ASCWriteProtected:                 "WRITE PROTECTED",
	ASCSpaceAllocationFailedWP:        "SPACE ALLOCATION FAILED WRITE PROTECT",
	ASCPowerOnResetOrBusDeviceReset:   "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
	ASCPowerOnOccurred:                "POWER ON OCCURRED",
	ASCBusDeviceResetFunctionOccurred: "BUS DEVICE RESET FUNCTION OCCURRED",
	ASCITNexusLossOccurred:            "I_T NEXUS LOSS OCCURRED",
	ASCModeParametersChanged:          "MODE PARAMETERS CHANGED",
	ASCCommandsClearedByAnotherInit:   "COMMANDS CLEARED BY ANOTHER INITIATOR",
	ASCSavingParametersNotSupported:   "SAVING PARAMETERS NOT SUPPORTED",
	ASCMediumNotPresent:               "MEDIUM NOT PRESENT",
	ASCReportedLUNsDataChanged:        "REPORTED LUNS DATA HAS CHANGED",
	ASCInternalTargetFailure:          "INTERNAL TARGET FAILURE",
	ASCInvalidFieldInCommandIU:        "INVALID FIELD IN COMMAND INFORMATION UNIT",
	ASCMediumRemovalPrevented:         "MEDIUM REMOVAL PREVENTED",
	ASCOperationInProgress:            "OPERATION IN PROGRESS",
	ASCThirdPartyDeviceFailure:        "THIRD PARTY DEVICE FAILURE",
	ASCCopyTargetDeviceNotReachable:   "COPY TARGET DEVICE NOT REACHABLE",
	ASCCopyTargetDeviceDataUnderrun:   "COPY TARGET DEVICE DATA UNDERRUN",
	ASCUnreachableCopyTarget:          "UNREACHABLE COPY TARGET",
	ASCTooManyTargetDescriptors:       "TOO MANY TARGET DESCRIPTORS",
	ASCUnsupportedTargetDescriptor:    "UNSUPPORTED TARGET DESCRIPTOR TYPE CODE",
	ASCTooManySegmentDescriptors:      "TOO MANY SEGMENT DESCRIPTORS",
	ASCUnsupportedSegmentDescriptor:   "UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE",
	ASCUnexpectedInexactSegment:       "UNEXPECTED INEXACT SEGMENT",
	// Reservation conditions.
	ASCReservationsPreempted:             "RESERVATIONS PREEMPTED",
	ASCReservationsReleased:              "RESERVATIONS RELEASED",
	ASCRegistrationsPreempted:            "REGISTRATIONS PREEMPTED",
	ASCInvalidReleaseOfPR:                "INVALID RELEASE OF PERSISTENT RESERVATION",
	ASCInsufficientRegistrationResources: "INSUFFICIENT REGISTRATION RESOURCES",
}

func (a ASC) String() string {
	if n, ok := ascNames[a]; ok {
		return n
	}
	return fmt.Sprintf("ASC/ASCQ %02Xh/%02Xh", byte(a>>8), byte(a))
}

// Sense is sense data describing why a command ended in CHECK CONDITION. It
// is an error: handlers return it and the dispatcher encodes it in fixed or
// descriptor format (SPC-4 4.5.2) according to the logical unit's D_SENSE.
type Sense struct {
	Key  SenseKey
	Code ASC

	// Information is the INFORMATION field, valid when HasInformation is set
	// (for example the first LBA in error, SBC-3 4.15).
	Information    uint64
	HasInformation bool

	// CommandSpecific is the COMMAND-SPECIFIC INFORMATION field, reported
	// when HasCommandSpecific is set.
	CommandSpecific    uint64
	HasCommandSpecific bool

	// SenseKeySpecific is the 3-byte SENSE KEY SPECIFIC field including its
	// SKSV bit (byte 0 bit 7); zero means absent. See FieldPointer.
	SenseKeySpecific [3]byte

	// Forwarded, if set, is the status and sense data a copy manager
	// received from one of its copy source or destination devices. In
	// descriptor format it is a forwarded sense data descriptor (SPC-4
	// 4.5.2.9); in fixed format it follows the standard fields, located by
	// a byte of COMMAND-SPECIFIC INFORMATION (SPC-4 5.17.7.4 d and e).
	Forwarded *ForwardedSense

	// Reason is a log-only explanation; it never goes on the wire.
	Reason string
}

// ForwardedSense is the content of a forwarded sense data descriptor.
type ForwardedSense struct {
	Source byte // SENSE DATA SOURCE: ForwardedFromSource or ForwardedFromDestination
	Status Status
	Sense  []byte // the forwarded sense data, fixed or descriptor format
}

// Sense data sources of a forwarded sense data descriptor (SPC-4 table
// 39): the copy source and the copy destination of the failed segment.
const (
	ForwardedFromSource      = 0x1
	ForwardedFromDestination = 0x2
)

// NewSense returns sense data with the given key and code.
func NewSense(key SenseKey, code ASC) *Sense { return &Sense{Key: key, Code: code} }

func (s *Sense) Error() string {
	msg := fmt.Sprintf("%s: %s", s.Key, s.Code)
	if s.HasSKS() && s.Key == IllegalRequest {
		where := "parameter list"
		if s.SenseKeySpecific[0]&0x40 != 0 {
			where = "CDB"
		}
		msg += fmt.Sprintf(" (%s byte %d", where, binary.BigEndian.Uint16(s.SenseKeySpecific[1:]))
		if s.SenseKeySpecific[0]&0x08 != 0 {
			msg += fmt.Sprintf(" bit %d", s.SenseKeySpecific[0]&7)
		}
		msg += ")"
	}
	if s.Reason != "" {
		msg += ": " + s.Reason
	}
	return msg
}

// HasSKS reports whether the SENSE KEY SPECIFIC field is valid (SKSV set).
func (s *Sense) HasSKS() bool { return s.SenseKeySpecific[0]&0x80 != 0 }

// WithInformation sets the INFORMATION field and returns s.
func (s *Sense) WithInformation(info uint64) *Sense {
	s.Information, s.HasInformation = info, true
	return s
}

// WithReason sets the log-only reason and returns s.
func (s *Sense) WithReason(format string, args ...any) *Sense {
	s.Reason = fmt.Sprintf(format, args...)
	return s
}

// FieldPointer sets the sense-key specific field pointer (SPC-4 4.5.2.4.2):
// inCDB selects C/D, byteOff is the byte, bit the bit (-1 for none, which
// leaves BPV clear).
func (s *Sense) FieldPointer(inCDB bool, byteOff int, bit int) *Sense {
	b0 := byte(0x80)
	if inCDB {
		b0 |= 0x40
	}
	if bit >= 0 && bit <= 7 {
		b0 |= 0x08 | byte(bit)
	}
	s.SenseKeySpecific[0] = b0
	binary.BigEndian.PutUint16(s.SenseKeySpecific[1:], uint16(byteOff))
	return s
}

// WithCommandSpecific sets the COMMAND-SPECIFIC INFORMATION field and
// returns s.
func (s *Sense) WithCommandSpecific(v uint64) *Sense {
	s.CommandSpecific, s.HasCommandSpecific = v, true
	return s
}

// SegmentPointer sets the sense-key specific segment pointer of COPY
// ABORTED (SPC-4 4.5.2.4.6): byteOff is the offset in the parameter list
// of the segment descriptor (inSegment set) or of the field that failed.
func (s *Sense) SegmentPointer(inSegment bool, byteOff int) *Sense {
	b0 := byte(0x80)
	if inSegment {
		b0 |= 0x20
	}
	s.SenseKeySpecific[0] = b0
	binary.BigEndian.PutUint16(s.SenseKeySpecific[1:], uint16(byteOff))
	return s
}

// InvalidFieldInCDB reports ILLEGAL REQUEST, INVALID FIELD IN CDB pointing
// at the given CDB byte and bit (bit -1: the whole byte).
func InvalidFieldInCDB(byteOff, bit int) *Sense {
	return NewSense(IllegalRequest, ASCInvalidFieldInCDB).FieldPointer(true, byteOff, bit)
}

// InvalidFieldInParameterList reports ILLEGAL REQUEST, INVALID FIELD IN
// PARAMETER LIST pointing at the given parameter list byte and bit.
func InvalidFieldInParameterList(byteOff, bit int) *Sense {
	return NewSense(IllegalRequest, ASCInvalidFieldInParameterList).FieldPointer(false, byteOff, bit)
}

// ParameterListLengthError reports ILLEGAL REQUEST, PARAMETER LIST LENGTH
// ERROR.
func ParameterListLengthError() *Sense {
	return NewSense(IllegalRequest, ASCParameterListLengthError)
}

// InvalidOpcode reports ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE.
func InvalidOpcode() *Sense {
	return NewSense(IllegalRequest, ASCInvalidCommandOperationCode).FieldPointer(true, 0, -1)
}

// LBAOutOfRange reports ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.
func LBAOutOfRange() *Sense { return NewSense(IllegalRequest, ASCLBAOutOfRange) }

// WriteProtected reports DATA PROTECT, WRITE PROTECTED.
func WriteProtected() *Sense { return NewSense(DataProtect, ASCWriteProtected) }

// InternalTargetFailure reports HARDWARE ERROR, INTERNAL TARGET FAILURE.
func InternalTargetFailure() *Sense { return NewSense(HardwareError, ASCInternalTargetFailure) }

// Fixed and descriptor sense data sizes produced by Encode.
const (
	fixedSenseLen = 18
	maxSenseLen   = 8 + 12 + 12 + 8
	// maxForwardedSense is the most forwarded sense data a descriptor
	// carries; longer data is cut and FSDT set (SPC-4 4.5.2.9).
	maxForwardedSense = 64
	// maxSenseData is the most sense data there can be: ADDITIONAL SENSE
	// LENGTH is at most 244 in either format (SPC-4 4.5.1).
	maxSenseData = 252
)

// Encode returns the sense data in descriptor format (response code 72h)
// when descriptor is set, otherwise in fixed format (70h) (SPC-4 4.5).
func (s *Sense) Encode(descriptor bool) []byte {
	if descriptor {
		return s.encodeDescriptor()
	}
	return s.encodeFixed()
}

func (s *Sense) encodeFixed() []byte {
	b := make([]byte, fixedSenseLen)
	b[0] = 0x70
	b[2] = byte(s.Key)
	// INFORMATION is four bytes in fixed format; a larger value cannot be
	// represented, so VALID stays clear (SPC-4 4.5.3).
	if s.HasInformation && s.Information <= 0xFFFFFFFF {
		b[0] |= 0x80
		binary.BigEndian.PutUint32(b[3:], uint32(s.Information))
	}
	b[7] = fixedSenseLen - 8
	if s.HasCommandSpecific {
		binary.BigEndian.PutUint32(b[8:], uint32(s.CommandSpecific))
	}
	b[12] = byte(s.Code >> 8)
	b[13] = byte(s.Code)
	copy(b[15:18], s.SenseKeySpecific[:])
	if f := s.Forwarded; f != nil && (f.Source == ForwardedFromSource || f.Source == ForwardedFromDestination) &&
		fixedSenseLen+1+len(f.Sense) <= maxSenseData {
		// SPC-4 5.17.7.4 d) and e): the first byte of COMMAND-SPECIFIC
		// INFORMATION (copy source) or its second (copy destination)
		// holds the offset, from byte 0 of the sense data, of the
		// device's status byte, which its sense data follows unchanged.
		// Fixed format allows no truncation, so sense data that would not
		// fit is not returned and the offset stays zero ("none"); the
		// segment number keeps the third and fourth bytes.
		b[8+f.Source-ForwardedFromSource] = byte(len(b))
		b = append(b, byte(f.Status))
		b = append(b, f.Sense...)
		b[7] = byte(len(b) - 8)
	}
	return b
}

func (s *Sense) encodeDescriptor() []byte {
	b := make([]byte, 8, maxSenseLen)
	b[0] = 0x72
	b[1] = byte(s.Key)
	b[2] = byte(s.Code >> 8)
	b[3] = byte(s.Code)
	if s.HasInformation {
		// Information descriptor (SPC-4 4.5.2.2).
		d := [12]byte{0x00, 0x0A, 0x80}
		binary.BigEndian.PutUint64(d[4:], s.Information)
		b = append(b, d[:]...)
	}
	if s.HasCommandSpecific {
		// Command-specific information descriptor (SPC-4 4.5.2.3).
		d := [12]byte{0x01, 0x0A}
		binary.BigEndian.PutUint64(d[4:], s.CommandSpecific)
		b = append(b, d[:]...)
	}
	if s.HasSKS() {
		// Sense key specific descriptor (SPC-4 4.5.2.4).
		d := [8]byte{0x02, 0x06}
		copy(d[4:7], s.SenseKeySpecific[:])
		b = append(b, d[:]...)
	}
	if f := s.Forwarded; f != nil {
		// Forwarded sense data descriptor (SPC-4 4.5.2.9).
		fwd := f.Sense
		src := f.Source & 0x0F
		if len(fwd) > maxForwardedSense {
			fwd, src = fwd[:maxForwardedSense], src|0x80 // FSDT: truncated
		}
		b = append(b, 0x0C, byte(2+len(fwd)), src, byte(f.Status))
		b = append(b, fwd...)
	}
	b[7] = byte(len(b) - 8)
	return b
}

// fixedForwarded finds the status byte and sense data a copy manager
// forwarded in fixed format COPY ABORTED sense data b (SPC-4 5.17.7.4):
// the copy source's if COMMAND-SPECIFIC INFORMATION locates one, else the
// copy destination's, else nil. The forwarded sense data ends where its
// own ADDITIONAL SENSE LENGTH says, at the other side's status byte, or at
// the end of b.
func fixedForwarded(b []byte) *ForwardedSense {
	if len(b) <= fixedSenseLen {
		return nil
	}
	for i, source := range []byte{ForwardedFromSource, ForwardedFromDestination} {
		at := int(b[8+i])
		if at < fixedSenseLen || at >= len(b) {
			continue
		}
		end := len(b)
		if other := int(b[9-i]); other > at && other < end {
			end = other
		}
		fwd := b[at+1 : end]
		if len(fwd) >= 8 {
			fwd = fwd[:min(8+int(fwd[7]), len(fwd))]
		}
		return &ForwardedSense{Source: source, Status: Status(b[at]), Sense: append([]byte(nil), fwd...)}
	}
	return nil
}

// ParseSense decodes fixed or descriptor sense data (as an initiator sees
// it). It returns an error naming the problem for data it cannot decode.
// In fixed format COPY ABORTED sense data the first two bytes of
// COMMAND-SPECIFIC INFORMATION locate forwarded status and sense data
// (SPC-4 5.17.7.4); they then go to Forwarded, and CommandSpecific keeps
// the segment number of the other two.
func ParseSense(b []byte) (*Sense, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("sense data too short: %d bytes", len(b))
	}
	s := &Sense{}
	switch b[0] & 0x7F {
	case 0x70, 0x71:
		if len(b) < 14 {
			return nil, fmt.Errorf("fixed sense data too short: %d bytes", len(b))
		}
		s.Key = SenseKey(b[2] & 0xF)
		s.Code = ASC(b[12])<<8 | ASC(b[13])
		if b[0]&0x80 != 0 {
			s.Information, s.HasInformation = uint64(binary.BigEndian.Uint32(b[3:])), true
		}
		v := binary.BigEndian.Uint32(b[8:])
		if s.Key == CopyAborted {
			if s.Forwarded = fixedForwarded(b[:min(8+int(b[7]), len(b))]); s.Forwarded != nil {
				v &= 0xFFFF // the segment number, below the offsets
			}
		}
		if v != 0 {
			s.CommandSpecific, s.HasCommandSpecific = uint64(v), true
		}
		if len(b) >= 18 {
			copy(s.SenseKeySpecific[:], b[15:18])
		}
	case 0x72, 0x73:
		s.Key = SenseKey(b[1] & 0xF)
		s.Code = ASC(b[2])<<8 | ASC(b[3])
		end := min(8+int(b[7]), len(b))
		for p := 8; p+2 <= end; {
			typ, n := b[p], int(b[p+1])
			if p+2+n > end {
				return nil, fmt.Errorf("sense descriptor %02xh at byte %d overruns the sense data", typ, p)
			}
			d := b[p : p+2+n]
			switch {
			case typ == 0x00 && n >= 10:
				s.Information, s.HasInformation = binary.BigEndian.Uint64(d[4:]), d[2]&0x80 != 0
			case typ == 0x01 && n >= 10:
				s.CommandSpecific, s.HasCommandSpecific = binary.BigEndian.Uint64(d[4:]), true
			case typ == 0x02 && n >= 6:
				copy(s.SenseKeySpecific[:], d[4:7])
			case typ == 0x0C && n >= 2:
				s.Forwarded = &ForwardedSense{Source: d[2] & 0x0F, Status: Status(d[3]), Sense: append([]byte(nil), d[4:]...)}
			}
			p += 2 + n
		}
	default:
		return nil, fmt.Errorf("unknown sense data response code %02xh", b[0]&0x7F)
	}
	return s, nil
}
