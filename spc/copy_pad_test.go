package spc_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestXcopyPadCat sends EXTENDED COPY lists between a LU of 512-byte
// blocks and one of 4096-byte blocks whose segments leave data short of
// a whole destination block (SPC-4 5.17.7.2, table 116): without PAD or
// CAT that is UNEXPECTED INEXACT SEGMENT in fixed format sense data; with
// PAD in the destination's CSCD descriptor (byte 28 bit 2) the block is
// padded with zeroes; with CAT the data goes first into the next
// segment's destination.
func TestXcopyPadCat(t *testing.T) {
	e := newXCEnv(t, xcMem(64), backstore.NewMemory(16*4096, 4096))
	big := func(pad bool) []byte {
		d := e.cscd(1)
		d[30] = 0 // DISK BLOCK LENGTH zero: the LU's own
		if pad {
			d[28] = 0x04
		}
		return d
	}
	cscds := [][]byte{e.cscd(0), big(false), big(true)}
	before := e.contents(1)

	c := e.xcopy(0, false, lid1List(1, 0, cscds, [][]byte{seg02(0, 1, 1, 3, 2)}))
	e.sense(c, scsi.CopyAborted, scsi.ASCUnexpectedInexactSegment)
	require.Equal(t, []byte{0, 0, 0, 0}, c.Sense[8:12], "segment 0, nothing forwarded")
	require.Equal(t, before, e.contents(1), "nothing written")

	e.good(e.xcopy(0, false, lid1List(2, 0, cscds, [][]byte{seg02(0, 2, 1, 3, 2)})))
	got := e.contents(1)
	src := e.contents(0)
	require.Equal(t, src[3*512:4*512], got[2*4096:2*4096+512])
	require.Equal(t, make([]byte, 4096-512), got[2*4096+512:3*4096], "padded with zeroes")
	require.True(t, bytes.Equal(before[:2*4096], got[:2*4096]) && bytes.Equal(before[3*4096:], got[3*4096:]), "nothing else written")

	cat := seg02(0, 1, 1, 5, 9)
	cat[1] |= 0x01
	e.good(e.xcopy(0, false, lid1List(3, 0, cscds, [][]byte{cat, seg02(0, 1, 7, 20, 4)})))
	after := e.contents(1)
	require.Equal(t, src[5*512:6*512], after[4*4096:4*4096+512], "the data CAT kept, first")
	require.Equal(t, src[20*512:27*512], after[4*4096+512:5*4096])
	require.Equal(t, got[9*4096:10*4096], after[9*4096:10*4096], "the first segment's destination untouched")
}
