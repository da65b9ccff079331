package scsi

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSenseEncodeFixed(t *testing.T) {
	s := InvalidFieldInCDB(2, 5).WithInformation(0x1234)
	got := hex.EncodeToString(s.Encode(false))
	// 70h|VALID, key 5, INFORMATION 1234h, additional length 10, ASC 24h,
	// SKSV|C/D|BPV|bit 5, field pointer 2.
	assert.Equal(t, "f0000500001234"+"0a"+"00000000"+"2400"+"00"+"cd0002", got)
}

func TestSenseEncodeFixedLargeInformationClearsValid(t *testing.T) {
	b := LBAOutOfRange().WithInformation(1 << 40).Encode(false)
	assert.Equal(t, byte(0x70), b[0])
	assert.Equal(t, []byte{0, 0, 0, 0}, b[3:7])
}

func TestSenseEncodeDescriptor(t *testing.T) {
	s := InvalidFieldInParameterList(17, -1).WithInformation(1 << 40)
	got := hex.EncodeToString(s.Encode(true))
	want := "72052600000000" + "14" +
		"000a8000" + "0000010000000000" + // information descriptor
		"02060000" + "800011" + "00" // sense key specific descriptor
	assert.Equal(t, want, got)
}

func TestSenseRoundTrip(t *testing.T) {
	for _, desc := range []bool{false, true} {
		in := NewSense(MediumError, ASCUnrecoveredReadError).WithInformation(77)
		in.CommandSpecific, in.HasCommandSpecific = 9, true
		out, err := ParseSense(in.Encode(desc))
		require.NoError(t, err)
		assert.Equal(t, in.Key, out.Key)
		assert.Equal(t, in.Code, out.Code)
		assert.Equal(t, uint64(77), out.Information)
		assert.True(t, out.HasInformation)
		assert.Equal(t, uint64(9), out.CommandSpecific)
	}
}

func TestParseSenseBad(t *testing.T) {
	for _, b := range [][]byte{nil, {0x70}, {0x71, 0, 0, 0, 0, 0, 0, 0, 0}, {0x10, 0, 0, 0, 0, 0, 0, 0}, {0x72, 0, 0, 0, 0, 0, 0, 4, 0, 9, 0, 0}} {
		_, err := ParseSense(b)
		assert.Error(t, err, "% x", b)
	}
}

func FuzzParseSense(f *testing.F) {
	f.Add(InvalidFieldInCDB(1, 1).Encode(false))
	f.Add(InvalidFieldInCDB(1, 1).WithInformation(5).Encode(true))
	fwd := NewSense(CopyAborted, ASCThirdPartyDeviceFailure).WithCommandSpecific(2)
	fwd.Forwarded = &ForwardedSense{Source: ForwardedFromDestination, Status: StatusCheckCondition, Sense: LBAOutOfRange().Encode(false)}
	f.Add(fwd.Encode(false))
	f.Add(fwd.Encode(true))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseSense(b)
	})
}

func TestSenseError(t *testing.T) {
	assert.Equal(t, "ILLEGAL REQUEST: INVALID FIELD IN CDB (CDB byte 1 bit 4)", InvalidFieldInCDB(1, 4).Error())
	assert.Equal(t, "ASC/ASCQ 99h/01h", ASC(0x9901).String())
}

func TestForwardedSenseAndSegmentPointer(t *testing.T) {
	inner := NewSense(MediumError, ASCUnrecoveredReadError).WithInformation(7).Encode(false)
	s := NewSense(CopyAborted, ASCThirdPartyDeviceFailure).WithCommandSpecific(3).SegmentPointer(true, 16+32)
	s.Forwarded = &ForwardedSense{Source: ForwardedFromSource, Status: StatusCheckCondition, Sense: inner}
	got, err := ParseSense(s.Encode(true))
	require.NoError(t, err)
	assert.Equal(t, uint64(3), got.CommandSpecific)
	assert.Equal(t, [3]byte{0xA0, 0x00, 48}, got.SenseKeySpecific)
	require.NotNil(t, got.Forwarded)
	assert.Equal(t, byte(ForwardedFromSource), got.Forwarded.Source)
	assert.Equal(t, StatusCheckCondition, got.Forwarded.Status)
	assert.Equal(t, inner, got.Forwarded.Sense)

	// Fixed format carries it after the standard fields.
	fixed, err := ParseSense(s.Encode(false))
	require.NoError(t, err)
	assert.Equal(t, s.Forwarded, fixed.Forwarded)
	assert.Equal(t, uint64(3), fixed.CommandSpecific)

	// Over-long forwarded sense is cut to 64 bytes with FSDT set.
	s.Forwarded.Sense = make([]byte, 100)
	enc := s.Encode(true)
	assert.LessOrEqual(t, len(enc), 252)
	got, err = ParseSense(enc)
	require.NoError(t, err)
	assert.Len(t, got.Forwarded.Sense, 64)
}

// copyAbortedWithForwarded is the sense data of a copy whose segment 5
// failed on side source with the device's fixed format MEDIUM ERROR.
func copyAbortedWithForwarded(source byte) (*Sense, []byte) {
	dev := NewSense(MediumError, ASCUnrecoveredReadError).WithInformation(0x1234).Encode(false)
	s := NewSense(CopyAborted, ASCThirdPartyDeviceFailure).WithCommandSpecific(5).SegmentPointer(false, 48)
	s.Forwarded = &ForwardedSense{Source: source, Status: StatusCheckCondition, Sense: dev}
	return s, dev
}

// TestForwardedSenseFixedFormatBytes checks the fixed format layout of
// SPC-4 5.17.7.4 d) and e) byte by byte: COMMAND-SPECIFIC INFORMATION
// byte 0 (copy source) or 1 (copy destination) is the offset of the
// device's status byte, bytes 2-3 the segment number, and the status byte
// and the device's sense data, unchanged, are the additional sense bytes.
func TestForwardedSenseFixedFormatBytes(t *testing.T) {
	for _, source := range []byte{ForwardedFromSource, ForwardedFromDestination} {
		s, dev := copyAbortedWithForwarded(source)
		b := s.Encode(false)
		require.Len(t, b, 18+1+18)
		assert.Equal(t, byte(0x70), b[0], "RESPONSE CODE, VALID clear")
		assert.Equal(t, byte(CopyAborted), b[2])
		assert.Equal(t, []byte{0, 0, 0, 0}, b[3:7], "INFORMATION")
		assert.Equal(t, byte(len(b)-8), b[7], "ADDITIONAL SENSE LENGTH")
		offsets := []byte{0, 0}
		offsets[source-1] = 18
		assert.Equal(t, offsets, b[8:10], "source and destination sense data offsets")
		assert.Equal(t, []byte{0, 5}, b[10:12], "segment number")
		assert.Equal(t, []byte{0x0D, 0x01}, b[12:14], "THIRD PARTY DEVICE FAILURE")
		assert.Equal(t, byte(0), b[14], "FIELD REPLACEABLE UNIT CODE")
		assert.Equal(t, []byte{0x80, 0, 48}, b[15:18], "segment pointer")
		assert.Equal(t, byte(StatusCheckCondition), b[18], "the device's status")
		assert.Equal(t, dev, b[19:], "the device's sense data, unchanged")

		got, err := ParseSense(b)
		require.NoError(t, err)
		assert.Equal(t, s.Forwarded, got.Forwarded)
		assert.Equal(t, uint64(5), got.CommandSpecific, "the offsets are not part of the segment number")
		assert.Equal(t, s.SenseKeySpecific, got.SenseKeySpecific)
	}
}

// TestForwardedSenseDescriptorFormatBytes checks that descriptor format
// is unchanged: command-specific information, sense key specific and
// forwarded sense data descriptors (SPC-4 4.5.2.3, 4.5.2.4, 4.5.2.9).
func TestForwardedSenseDescriptorFormatBytes(t *testing.T) {
	s, dev := copyAbortedWithForwarded(ForwardedFromDestination)
	b := s.Encode(true)
	want := []byte{0x72, byte(CopyAborted), 0x0D, 0x01, 0, 0, 0, byte(12 + 8 + 4 + len(dev)),
		0x01, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, // command-specific information
		0x02, 0x06, 0, 0, 0x80, 0, 48, 0, // sense key specific
		0x0C, byte(2 + len(dev)), ForwardedFromDestination, byte(StatusCheckCondition)}
	assert.Equal(t, append(want, dev...), b)
	assert.Equal(t, byte(0), b[8+4], "no offsets in descriptor format")
}

// TestForwardedSenseFixedFormatStatusOnly: RESERVATION CONFLICT has no
// sense data, so the area is the status byte alone.
func TestForwardedSenseFixedFormatStatusOnly(t *testing.T) {
	s := NewSense(CopyAborted, ASCThirdPartyDeviceFailure).WithCommandSpecific(1)
	s.Forwarded = &ForwardedSense{Source: ForwardedFromDestination, Status: StatusReservationConflict}
	b := s.Encode(false)
	require.Len(t, b, 19)
	assert.Equal(t, byte(11), b[7])
	assert.Equal(t, []byte{0, 18, 0, 1}, b[8:12])
	assert.Equal(t, byte(StatusReservationConflict), b[18])
	got, err := ParseSense(b)
	require.NoError(t, err)
	assert.Equal(t, s.Forwarded, got.Forwarded)
}

// TestForwardedSenseFixedFormatLimit: sense data is at most 252 bytes,
// and fixed format may not cut the device's sense data, so sense data
// that does not fit is left out with a zero offset.
func TestForwardedSenseFixedFormatLimit(t *testing.T) {
	s := NewSense(CopyAborted, ASCThirdPartyDeviceFailure).WithCommandSpecific(1)
	dev := make([]byte, 252-18-1)
	dev[0], dev[7] = 0x70, byte(len(dev)-8)
	s.Forwarded = &ForwardedSense{Source: ForwardedFromSource, Status: StatusCheckCondition, Sense: dev}
	b := s.Encode(false)
	require.Len(t, b, 252, "fits exactly")
	assert.Equal(t, byte(244), b[7])
	assert.Equal(t, byte(18), b[8])
	got, err := ParseSense(b)
	require.NoError(t, err)
	assert.Equal(t, dev, got.Forwarded.Sense)

	s.Forwarded.Sense = append(dev, 0)
	b = s.Encode(false)
	require.Len(t, b, 18, "one byte too many: not returned")
	assert.Equal(t, byte(10), b[7])
	assert.Equal(t, []byte{0, 0, 0, 1}, b[8:12])
	got, err = ParseSense(b)
	require.NoError(t, err)
	assert.Nil(t, got.Forwarded)
}

// TestParseSenseFixedCommandSpecificNotCopy: outside COPY ABORTED the
// COMMAND-SPECIFIC INFORMATION bytes are not offsets.
func TestParseSenseFixedCommandSpecificNotCopy(t *testing.T) {
	b := NewSense(MediumError, ASCUnrecoveredReadError).WithCommandSpecific(0x12000000).Encode(false)
	b = append(b, 0x02, 0x70)
	b[7] += 2
	got, err := ParseSense(b)
	require.NoError(t, err)
	assert.Nil(t, got.Forwarded)
	assert.Equal(t, uint64(0x12000000), got.CommandSpecific)
}
