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

	// Fixed format has no room for it; the rest still encodes.
	fixed, err := ParseSense(s.Encode(false))
	require.NoError(t, err)
	assert.Nil(t, fixed.Forwarded)
	assert.Equal(t, uint64(3), fixed.CommandSpecific)

	// Over-long forwarded sense is cut to 64 bytes with FSDT set.
	s.Forwarded.Sense = make([]byte, 100)
	enc := s.Encode(true)
	assert.LessOrEqual(t, len(enc), 252)
	got, err = ParseSense(enc)
	require.NoError(t, err)
	assert.Len(t, got.Forwarded.Sense, 64)
}
