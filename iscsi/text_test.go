package iscsi

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTextValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want TextKeys
	}{
		{"empty", "", nil},
		{"one", "HeaderDigest=None\x00", TextKeys{{"HeaderDigest", "None"}}},
		{"order kept", "b=1\x00a=2\x00c=\x00", TextKeys{{"b", "1"}, {"a", "2"}, {"c", ""}}},
		{"value with =", "X-a.b=x=y\x00", TextKeys{{"X-a.b", "x=y"}}},
		{"padding NULs skipped", "A=1\x00\x00\x00B=2\x00\x00", TextKeys{{"A", "1"}, {"B", "2"}}},
		{"utf8 alias", "TargetAlias=dísk\x00", TextKeys{{"TargetAlias", "dísk"}}},
		{"extension key", "X#NodeArchitecture=odxtgt\x00", TextKeys{{"X#NodeArchitecture", "odxtgt"}}},
		{"63-byte key", strings.Repeat("k", 63) + "=v\x00", TextKeys{{strings.Repeat("k", 63), "v"}}},
		{"255-byte value", "A=" + strings.Repeat("v", 255) + "\x00", TextKeys{{"A", strings.Repeat("v", 255)}}},
		{"list of 255-byte members", "A=" + strings.Repeat("v", 255) + "," + strings.Repeat("w", 255) + "\x00",
			TextKeys{{"A", strings.Repeat("v", 255) + "," + strings.Repeat("w", 255)}}},
		{"large CHAP_C", "CHAP_C=0x" + strings.Repeat("ab", 1024) + "\x00", TextKeys{{"CHAP_C", "0x" + strings.Repeat("ab", 1024)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseText([]byte(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseTextErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error
		key  string
		off  int
	}{
		{"missing equals", "A=1\x00HeaderDigest\x00", ErrTextMissingEquals, "HeaderDigest", 4},
		{"empty key", "=1\x00", ErrTextEmptyKey, "", 0},
		{"key too long", strings.Repeat("k", 64) + "=v\x00", ErrTextKeyTooLong, `"` + strings.Repeat("k", 63) + `"`, 0},
		{"bad key char", "A B=1\x00", ErrTextInvalidKey, `"A B"`, 0},
		{"value too long", "A=1\x00B=" + strings.Repeat("v", 256) + "\x00", ErrTextValueTooLong, "B", 4},
		{"list member too long", "B=x," + strings.Repeat("v", 256) + "\x00", ErrTextValueTooLong, "B", 0},
		{"CHAP_R too long", "CHAP_R=0x" + strings.Repeat("ab", 1025) + "\x00", ErrTextValueTooLong, "CHAP_R", 0},
		{"bad utf8", "TargetAlias=\xff\xfe\x00", ErrTextInvalidUTF8, "TargetAlias", 0},
		{"duplicate", "A=1\x00B=2\x00A=1\x00", ErrTextDuplicateKey, "A", 8},
		{"unterminated", "A=1\x00B=2", ErrTextUnterminated, "B", 4},
		{"unterminated no equals", "A=1\x00B", ErrTextUnterminated, "", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseText([]byte(tt.in))
			require.Error(t, err)
			assert.Nil(t, got)
			assert.ErrorIs(t, err, tt.err)
			var te *TextError
			require.True(t, errors.As(err, &te))
			assert.Equal(t, tt.key, te.Key)
			assert.Equal(t, tt.off, te.Offset)
			assert.NotEmpty(t, te.Error())
		})
	}
}

func TestParseTextRepeatable(t *testing.T) {
	in := "TargetName=iqn.a\x00TargetAddress=1.2.3.4:3260,1\x00TargetName=iqn.b\x00TargetAddress=[::1]:3260,2\x00"
	_, err := ParseText([]byte(in))
	require.ErrorIs(t, err, ErrTextDuplicateKey)
	got, err := ParseTextRepeatable([]byte(in))
	require.NoError(t, err)
	assert.Equal(t, []string{"iqn.a", "iqn.b"}, got.GetAll("TargetName"))
	assert.Equal(t, []byte(in), got.Encode())
}

func TestTextKeysAccessors(t *testing.T) {
	var k TextKeys
	k.Set("A", "1")
	k.Add("B", "2")
	k.Add("A", "3")
	k.Set("A", "4")
	v, ok := k.Get("A")
	assert.True(t, ok)
	assert.Equal(t, "4", v)
	assert.True(t, k.Has("B"))
	assert.False(t, k.Has("C"))
	assert.Equal(t, []string{"4", "3"}, k.GetAll("A"))
	assert.Equal(t, map[string]string{"A": "4", "B": "2"}, k.Map())
	assert.Equal(t, []byte("A=4\x00B=2\x00A=3\x00"), k.Encode())
	assert.Equal(t, []byte("x=y\x00A=4\x00B=2\x00A=3\x00"), k.AppendTo([]byte("x=y\x00")))
	k.Del("A")
	assert.Equal(t, TextKeys{{"B", "2"}}, k)
	_, ok = k.Get("A")
	assert.False(t, ok)
}

func TestCheckKeyValue(t *testing.T) {
	require.NoError(t, CheckKeyValue("MaxBurstLength", "262144"))
	assert.ErrorIs(t, CheckKeyValue("A", "a\x00b"), ErrTextValueNUL)
	assert.ErrorIs(t, CheckKeyValue("", "x"), ErrTextEmptyKey)
	assert.ErrorIs(t, CheckKeyValue("A=B", "x"), ErrTextInvalidKey)
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"8192", 8192, true},
		{"0x2000", 8192, true},
		{"0XfF", 255, true},
		{"18446744073709551615", 1<<64 - 1, true},
		{"0xffffffffffffffff", 1<<64 - 1, true},
		{"18446744073709551616", 0, false},
		{"0x10000000000000000", 0, false},
		{"", 0, false},
		{"0x", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1_000", 0, false},
		{" 1", 0, false},
		{"12a", 0, false},
		{"0b1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseNumber(tt.in)
			if !tt.ok {
				assert.ErrorIs(t, err, ErrTextInvalidNumber)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, "65536", FormatNumber(65536))
}

func TestParseBoolean(t *testing.T) {
	v, err := ParseBoolean("Yes")
	require.NoError(t, err)
	assert.True(t, v)
	v, err = ParseBoolean("No")
	require.NoError(t, err)
	assert.False(t, v)
	for _, bad := range []string{"yes", "NO", "", "true", "1"} {
		_, err = ParseBoolean(bad)
		assert.ErrorIs(t, err, ErrTextInvalidBoolean, bad)
	}
	assert.Equal(t, "Yes", FormatBoolean(true))
	assert.Equal(t, "No", FormatBoolean(false))
}

func TestDecodeBinary(t *testing.T) {
	want := []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	tests := []struct {
		in   string
		want []byte
	}{
		{"0x00112233445566778899aabbccddeeff", want},
		{"0X00112233445566778899AABBCCDDEEFF", want},
		{"0bABEiM0RVZneImaq7zN3u/w==", want},
		{"0BABEiM0RVZneImaq7zN3u/w", want},
		{"0xabc", []byte{0x0a, 0xbc}},
		{"0x0", []byte{0}},
	}
	for _, tt := range tests {
		got, err := DecodeBinary(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
	for _, bad := range []string{"", "0x", "0b", "1234", "0xzz", "0b!!!!", "0bAB=C", "0q12", "x0ab", "0bAB===", "0B\r", "0bAA\nAA"} {
		_, err := DecodeBinary(bad)
		assert.ErrorIs(t, err, ErrTextInvalidBinary, bad)
	}
	assert.Equal(t, "0x00112233445566778899aabbccddeeff", EncodeHex(want))
	assert.Equal(t, "0bABEiM0RVZneImaq7zN3u/w==", EncodeBase64(want))
}

func TestParseListAndRange(t *testing.T) {
	l, err := ParseList("CRC32C,None")
	require.NoError(t, err)
	assert.Equal(t, []string{"CRC32C", "None"}, l)
	assert.Equal(t, "CRC32C,None", FormatList(l))
	for _, bad := range []string{"", ",a", "a,", "a,,b"} {
		_, err = ParseList(bad)
		assert.ErrorIs(t, err, ErrTextEmptyListMember, bad)
	}

	lo, hi, err := ParseRange("1~0x10")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), lo)
	assert.Equal(t, uint64(16), hi)
	assert.Equal(t, "5~5", FormatRange(5, 5))
	for _, bad := range []string{"", "1", "2~1", "a~2", "1~b", "1~2~3"} {
		_, _, err = ParseRange(bad)
		assert.ErrorIs(t, err, ErrTextInvalidRange, bad)
	}
}

func TestTextBufferAndSplit(t *testing.T) {
	keys := TextKeys{{"InitiatorName", "iqn.2024-01.org.example:host"}, {"SessionType", "Normal"}, {"MaxRecvDataSegmentLength", "262144"}}
	data := keys.Encode()
	for _, limit := range []int{1, 3, 7, 16, len(data), 0} {
		segs := SplitText(data, limit)
		buf := NewTextBuffer(MinTextNegotiationLength)
		for i, s := range segs {
			if limit > 0 {
				assert.LessOrEqual(t, len(s), limit)
			}
			if i < len(segs)-1 {
				assert.NotEmpty(t, s)
			}
			require.NoError(t, buf.Append(s))
		}
		assert.Equal(t, len(data), buf.Len())
		got, err := ParseText(buf.Bytes())
		require.NoError(t, err)
		assert.Equal(t, keys, got)
		buf.Reset()
		assert.Zero(t, buf.Len())
	}
	assert.Equal(t, [][]byte{nil}, SplitText(nil, 10))

	buf := NewTextBuffer(7)
	require.NoError(t, buf.Append([]byte("A=1\x00B=2")))
	err := buf.Append([]byte("\x00"))
	require.ErrorIs(t, err, ErrTextBufferOverflow)
	assert.Equal(t, []byte("A=1\x00B=2"), buf.Bytes())
}

func FuzzParseText(f *testing.F) {
	f.Add([]byte("HeaderDigest=CRC32C,None\x00DataDigest=None\x00"))
	f.Add([]byte("A=1\x00A=2\x00"))
	f.Add([]byte("CHAP_C=0x0011\x00CHAP_I=7\x00"))
	f.Add([]byte("\x00\x00=\x00x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func([]byte) (TextKeys, error){ParseText, ParseTextRepeatable} {
			keys, err := parse(data)
			if err != nil {
				var te *TextError
				require.True(t, errors.As(err, &te))
				continue
			}
			for _, kv := range keys {
				require.NoError(t, CheckKeyValue(kv.Key, kv.Value))
			}
			again, err := parse(keys.Encode())
			require.NoError(t, err)
			require.Equal(t, keys, again)
			// The encoding differs from the input only by skipped NULs.
			require.Equal(t, bytes.Count(keys.Encode(), []byte{0}), len(keys))
		}
	})
}

func FuzzDecodeBinary(f *testing.F) {
	f.Add("0x00ff")
	f.Add("0bAAE=")
	f.Add("0xabc")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeBinary(s)
		if err != nil {
			return
		}
		again, err := DecodeBinary(EncodeHex(b))
		require.NoError(t, err)
		require.Equal(t, b, again)
		again, err = DecodeBinary(EncodeBase64(b))
		require.NoError(t, err)
		require.Equal(t, b, again)
	})
}
