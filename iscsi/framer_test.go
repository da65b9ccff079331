package iscsi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCRC32CVector checks the digest byte order against RFC 3720 B.4: 32
// bytes of zeroes give the digest bytes aa 36 91 8a on the wire.
func TestCRC32CVector(t *testing.T) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], crc32.Checksum(make([]byte, 32), castagnoli))
	assert.Equal(t, "aa36918a", hex.EncodeToString(b[:]))
}

func newLoopFramer(digests bool) (*Framer, *bytes.Buffer) {
	var buf bytes.Buffer
	f := NewFramer(&buf, &buf)
	f.HeaderDigest, f.DataDigest = digests, digests
	return f, &buf
}

func TestFramerRoundTrip(t *testing.T) {
	for _, digests := range []bool{false, true} {
		f, buf := newLoopFramer(digests)
		p := &PDU{Data: []byte("hello")}
		p.SetOpcode(OpNOPOut)
		p.SetImmediate(true)
		p.SetFinal(true)
		p.SetITT(0x01020304)
		p.AHS = []byte{0, 1, 2, 3}
		require.NoError(t, f.WritePDU(p))
		wantLen := BHSLength + 4 + 8
		if digests {
			wantLen += 8
		}
		assert.Equal(t, wantLen, buf.Len())
		q, err := f.ReadPDU()
		require.NoError(t, err)
		assert.Equal(t, p.BHS, q.BHS)
		assert.Equal(t, []byte("hello"), q.Data)
		assert.Equal(t, []byte{0, 1, 2, 3}, q.AHS)
		assert.True(t, q.Immediate())
		assert.Equal(t, OpNOPOut, q.Opcode())
		assert.Equal(t, 5, q.DataSegmentLength())
		assert.Equal(t, 4, q.TotalAHSLength())
		_, err = f.ReadPDU()
		assert.Equal(t, io.EOF, err)
	}
}

func TestFramerDigestErrors(t *testing.T) {
	f, buf := newLoopFramer(true)
	p := &PDU{Data: []byte("payload!")}
	p.SetOpcode(OpDataOut)
	require.NoError(t, f.WritePDU(p))
	require.NoError(t, f.WritePDU(p))
	raw := buf.Bytes()
	raw[len(raw)-1] ^= 1 // second PDU: data digest
	raw[3] ^= 1          // first PDU: header digest
	_, err := f.ReadPDU()
	assert.ErrorIs(t, err, ErrHeaderDigest)

	f2, buf2 := newLoopFramer(true)
	require.NoError(t, f2.WritePDU(p))
	require.NoError(t, f2.WritePDU(p))
	raw = buf2.Bytes()
	raw[BHSLength+4+2] ^= 1 // first PDU's data
	_, err = f2.ReadPDU()
	var dd *DataDigestError
	require.ErrorAs(t, err, &dd)
	q, err := f2.ReadPDU()
	require.NoError(t, err, "the stream stays in step after a data digest error")
	assert.Equal(t, []byte("payload!"), q.Data)
}

func TestFramerTooLong(t *testing.T) {
	var buf bytes.Buffer
	w := NewFramer(&buf, &buf)
	p := &PDU{Data: make([]byte, 9000)}
	p.SetOpcode(OpDataOut)
	require.NoError(t, w.WritePDU(p))
	small := &PDU{}
	small.SetOpcode(OpNOPOut)
	require.NoError(t, w.WritePDU(small))
	f := NewFramer(&buf, io.Discard)
	_, err := f.ReadPDU()
	var tl *DataSegmentTooLongError
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, 9000, tl.Length)
	q, err := f.ReadPDU()
	require.NoError(t, err)
	assert.Equal(t, OpNOPOut, q.Opcode())
}

func TestFramerTruncated(t *testing.T) {
	var buf bytes.Buffer
	w := NewFramer(&buf, &buf)
	p := &PDU{Data: make([]byte, 100)}
	require.NoError(t, w.WritePDU(p))
	r := NewFramer(bytes.NewReader(buf.Bytes()[:BHSLength+10]), io.Discard)
	_, err := r.ReadPDU()
	assert.True(t, errors.Is(err, io.ErrUnexpectedEOF))
}

func TestFramerRejectsBadAHS(t *testing.T) {
	f, _ := newLoopFramer(false)
	assert.Error(t, f.WritePDU(&PDU{AHS: []byte{1, 2, 3}}))
}

func FuzzReadPDU(f *testing.F) {
	var seed bytes.Buffer
	w := NewFramer(&seed, &seed)
	p := &PDU{Data: []byte("InitiatorName=iqn.x\x00")}
	p.SetOpcode(OpLoginReq)
	_ = w.WritePDU(p)
	f.Add(seed.Bytes(), false)
	f.Add(seed.Bytes(), true)
	f.Fuzz(func(t *testing.T, b []byte, digests bool) {
		r := NewFramer(bytes.NewReader(b), io.Discard)
		r.HeaderDigest, r.DataDigest = digests, digests
		for range 8 {
			if _, err := r.ReadPDU(); err != nil {
				var dd *DataDigestError
				var tl *DataSegmentTooLongError
				if !errors.As(err, &dd) && !errors.As(err, &tl) {
					return
				}
			}
		}
	})
}

// A batch puts on the wire exactly what WritePDU writes for each PDU in
// turn, whether data segments are copied or referenced, with and without
// digests, and the batch is reusable.
func TestPDUBatchMatchesWritePDU(t *testing.T) {
	sizes := []int{0, 3, 48, inlineDataMax, inlineDataMax + 1, 5000, 0, 1}
	for _, digests := range []bool{false, true} {
		f, _ := newLoopFramer(digests)
		var b pduBatch
		for round := range 2 {
			var want, got bytes.Buffer
			ref := NewFramer(&want, &want)
			ref.HeaderDigest, ref.DataDigest = digests, digests
			for i, n := range sizes {
				var bhs [BHSLength]byte
				bhs[0] = byte(OpDataIn)
				binary.BigEndian.PutUint32(bhs[16:], uint32(i+round))
				data := pattern(n, byte(i))
				require.NoError(t, ref.WritePDU(&PDU{BHS: bhs, Data: data}))
				f.appendPDU(&b, &bhs, data)
			}
			require.NoError(t, f.writeBatch(&b, &got, func() {}))
			assert.Equal(t, want.Bytes(), got.Bytes(), "digests=%v round %d", digests, round)
			assert.Empty(t, b.vec)
			assert.Empty(t, b.buf)
		}
	}
}
