package iscsi

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Vectors computed independently (Python hashlib) as
// H(0x2a || "very-secret-12" || 00112233445566778899aabbccddeeff).
func TestCHAPResponseVectors(t *testing.T) {
	challenge, _ := hex.DecodeString("00112233445566778899aabbccddeeff")
	secret := []byte("very-secret-12")
	tests := []struct {
		alg  CHAPAlgorithm
		name string
		want string
	}{
		{CHAPMD5, "MD5", "59f3b3d77d95044499de17d5efbd40f8"},
		{CHAPSHA1, "SHA-1", "182e9da75f5dfcb5c9fe285fd6ad7d9cea52fdb1"},
		{CHAPSHA256, "SHA-256", "b8ba2dc8202f17533aed42181afb4599cee6e196e31a30d6caf7a60d28a29799"},
		{CHAPSHA3256, "SHA3-256", "76ae5e28a559ea735ff05fafc155e2433cdd57bd38d196d50b9cbd658ed26ea8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CHAPResponse(tt.alg, 0x2a, secret, challenge)
			require.NoError(t, err)
			assert.Equal(t, tt.want, hex.EncodeToString(got))
			assert.Equal(t, tt.alg.DigestLength(), len(got))
			assert.Equal(t, tt.name, tt.alg.String())
			assert.True(t, tt.alg.Supported())
			assert.True(t, VerifyCHAPResponse(tt.alg, 0x2a, secret, challenge, got))
			assert.False(t, VerifyCHAPResponse(tt.alg, 0x2b, secret, challenge, got))
			assert.False(t, VerifyCHAPResponse(tt.alg, 0x2a, []byte("other"), challenge, got))
			assert.False(t, VerifyCHAPResponse(tt.alg, 0x2a, secret, challenge, got[:len(got)-1]))
		})
	}
	// MD5 of the single byte 00h (empty secret and challenge).
	got, err := CHAPResponse(CHAPMD5, 0, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, "93b885adfe0da089cdf634904fd59f71", hex.EncodeToString(got))
}

func TestCHAPUnsupported(t *testing.T) {
	for _, a := range []CHAPAlgorithm{0, 4, 9, 255} {
		assert.False(t, a.Supported())
		assert.Zero(t, a.DigestLength())
		_, err := CHAPResponse(a, 1, []byte("s"), []byte("c"))
		assert.ErrorIs(t, err, ErrCHAPUnsupportedAlgorithm)
		_, _, err = NewCHAPChallenge(a)
		assert.ErrorIs(t, err, ErrCHAPUnsupportedAlgorithm)
		assert.False(t, VerifyCHAPResponse(a, 1, []byte("s"), []byte("c"), nil))
	}
	assert.Equal(t, "CHAP_A(9)", CHAPAlgorithm(9).String())
}

func TestNewCHAPChallenge(t *testing.T) {
	for _, a := range DefaultCHAPAlgorithms {
		_, c1, err := NewCHAPChallenge(a)
		require.NoError(t, err)
		_, c2, err := NewCHAPChallenge(a)
		require.NoError(t, err)
		assert.Len(t, c1, max(a.DigestLength(), MinCHAPChallengeLength))
		assert.NotEqual(t, c1, c2)
	}
}

func TestSelectCHAPAlgorithm(t *testing.T) {
	tests := []struct {
		offered   string
		supported []CHAPAlgorithm
		want      CHAPAlgorithm
		ok        bool
	}{
		{"5", DefaultCHAPAlgorithms, CHAPMD5, true},
		{"7,5", DefaultCHAPAlgorithms, CHAPSHA256, true},
		{"5,7", DefaultCHAPAlgorithms, CHAPMD5, true},
		{"0x7,5", DefaultCHAPAlgorithms, CHAPSHA256, true},
		{"99,x,,6", DefaultCHAPAlgorithms, CHAPSHA1, true},
		{"5,6", []CHAPAlgorithm{CHAPSHA256}, 0, false},
		{"300,4", DefaultCHAPAlgorithms, 0, false},
		{"", DefaultCHAPAlgorithms, 0, false},
		{"9", []CHAPAlgorithm{9}, 0, false},
	}
	for _, tt := range tests {
		got, ok := SelectCHAPAlgorithm(tt.offered, tt.supported)
		assert.Equal(t, tt.ok, ok, tt.offered)
		assert.Equal(t, tt.want, got, tt.offered)
	}
	assert.Equal(t, "8,7,6,5", FormatCHAPAlgorithms(DefaultCHAPAlgorithms))
}

func TestParseCHAPValues(t *testing.T) {
	a, err := ParseCHAPAlgorithm("7")
	require.NoError(t, err)
	assert.Equal(t, CHAPSHA256, a)
	_, err = ParseCHAPAlgorithm("4")
	assert.ErrorIs(t, err, ErrCHAPUnsupportedAlgorithm)
	for _, bad := range []string{"", "5,7", "256", "Reject"} {
		_, err = ParseCHAPAlgorithm(bad)
		assert.ErrorIs(t, err, ErrCHAPValue, bad)
	}

	id, err := ParseCHAPIdentifier("255")
	require.NoError(t, err)
	assert.Equal(t, byte(255), id)
	id, err = ParseCHAPIdentifier("0x0a")
	require.NoError(t, err)
	assert.Equal(t, byte(10), id)
	for _, bad := range []string{"", "256", "-1", "a"} {
		_, err = ParseCHAPIdentifier(bad)
		assert.ErrorIs(t, err, ErrCHAPValue, bad)
	}

	b, err := ParseCHAPBinary("0x0102")
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2}, b)
	_, err = ParseCHAPBinary("0x" + hex.EncodeToString(make([]byte, MaxLargeBinaryLength)))
	require.NoError(t, err)
	_, err = ParseCHAPBinary("0x" + hex.EncodeToString(make([]byte, MaxLargeBinaryLength+1)))
	assert.ErrorIs(t, err, ErrCHAPValue)
	_, err = ParseCHAPBinary("1234")
	assert.ErrorIs(t, err, ErrCHAPValue)
	assert.ErrorIs(t, err, ErrTextInvalidBinary)
}
