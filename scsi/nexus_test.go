package scsi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLUNCodec(t *testing.T) {
	for _, tc := range []struct {
		lun  uint64
		want [8]byte
	}{
		{0, [8]byte{}},
		{5, [8]byte{0, 5}},
		{255, [8]byte{0, 0xFF}},
		{256, [8]byte{0x41, 0x00}},
		{MaxLUN, [8]byte{0x7F, 0xFF}},
	} {
		assert.Equal(t, tc.want, EncodeLUN(tc.lun))
		got, err := DecodeLUN(tc.want)
		require.NoError(t, err)
		assert.Equal(t, tc.lun, got)
	}
	for _, bad := range [][8]byte{
		{0, 1, 0, 1},       // second level
		{0x01, 0x02},       // bus 1
		{0x80, 0x01},       // logical unit addressing
		{0xC0, 0x01},       // extended addressing
		{0, 0, 0, 0, 0, 1}, // trailing bytes
	} {
		_, err := DecodeLUN(bad)
		assert.Error(t, err, "% x", bad)
	}
}
