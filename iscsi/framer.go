package iscsi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
)

// castagnoli is the CRC32C polynomial table used for header and data
// digests (RFC 7143 13.1).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DigestLength is the size of a CRC32C digest on the wire.
const DigestLength = 4

// MaxDataSegmentLength is the largest value the 24-bit DataSegmentLength
// field can carry, and the largest MaxRecvDataSegmentLength (RFC 7143
// 13.12).
const MaxDataSegmentLength = 1<<24 - 1

// ErrHeaderDigest reports a header digest mismatch. The PDU boundaries can
// no longer be trusted, so the connection must be closed (RFC 7143 7.8).
var ErrHeaderDigest = errors.New("iscsi: header digest error")

// DataDigestError reports a data digest mismatch on an otherwise well-formed
// PDU; the PDU is discarded and answered with Reject reason Data (payload)
// Digest Error (RFC 7143 7.8, 11.17.1).
type DataDigestError struct{ PDU *PDU }

func (e *DataDigestError) Error() string {
	return fmt.Sprintf("iscsi: data digest error on %s", e.PDU.Opcode())
}

// DataSegmentTooLongError reports a PDU whose DataSegmentLength exceeds the
// negotiated MaxRecvDataSegmentLength. The data segment was read and
// discarded, so the stream stays in step; the PDU is answered with Reject
// reason Protocol Error.
type DataSegmentTooLongError struct {
	PDU    *PDU
	Length int
	Limit  int
}

func (e *DataSegmentTooLongError) Error() string {
	return fmt.Sprintf("iscsi: %s data segment of %d bytes exceeds MaxRecvDataSegmentLength %d",
		e.PDU.Opcode(), e.Length, e.Limit)
}

// Framer reads and writes PDUs on one connection. Reads and writes may run
// concurrently with each other (one reader goroutine, one writer
// goroutine), but not with themselves. Digest settings and limits change
// only at the end of login, when neither direction is busy.
type Framer struct {
	r *bufio.Reader
	w io.Writer

	// HeaderDigest and DataDigest enable CRC32C digests (RFC 7143 13.1).
	HeaderDigest, DataDigest bool
	// MaxRecvDataSegmentLength is the largest data segment ReadPDU accepts;
	// what this side declared during login (RFC 7143 13.12).
	MaxRecvDataSegmentLength int
	// AllowIllegalWrites makes WritePDU send the BHS exactly as given,
	// without filling in the length fields, so tests can send malformed
	// PDUs.
	AllowIllegalWrites bool

	hdr  [BHSLength + 255*4 + DigestLength]byte // reused header read buffer
	data []byte                                 // reused data segment buffer
	out  [BHSLength + 255*4 + DigestLength]byte // reused header write buffer
	tail [3 + DigestLength]byte                 // padding and data digest
	vec  [3][]byte                              // reused vector for writev
	bufs net.Buffers                            // f.vec as WriteTo consumes it
}

// NewFramer returns a framer reading from r and writing to w, with the
// login-phase default MaxRecvDataSegmentLength of 8192 bytes (RFC 7143
// 13.12) and no digests.
func NewFramer(r io.Reader, w io.Writer) *Framer {
	return &Framer{r: bufio.NewReaderSize(r, 64<<10), w: w, MaxRecvDataSegmentLength: 8192}
}

// ReadPDU reads the next PDU. Its Data (and AHS) are valid only until the
// next ReadPDU: copy what must be kept. Errors of type *DataDigestError and
// *DataSegmentTooLongError leave the stream in step; every other error
// means the connection is unusable.
func (f *Framer) ReadPDU() (*PDU, error) {
	p := &PDU{}
	switch err := f.ReadPDUInto(p); err.(type) {
	case nil, *DataDigestError, *DataSegmentTooLongError:
		return p, err
	default:
		return nil, err
	}
}

// ReadPDUInto is ReadPDU into a PDU the caller owns and reuses, so a
// connection's reader allocates nothing per PDU. p's AHS and Data are valid
// only until the next read.
func (f *Framer) ReadPDUInto(p *PDU) error {
	p.AHS, p.Data = nil, nil
	if _, err := io.ReadFull(f.r, p.BHS[:]); err != nil {
		return err
	}
	ahsLen := p.TotalAHSLength()
	hlen := ahsLen
	if f.HeaderDigest {
		hlen += DigestLength
	}
	rest := f.hdr[:hlen]
	if _, err := io.ReadFull(f.r, rest); err != nil {
		return unexpectedEOF(err)
	}
	if ahsLen > 0 {
		p.AHS = rest[:ahsLen]
	}
	if f.HeaderDigest {
		crc := crc32.Update(crc32.Checksum(p.BHS[:], castagnoli), castagnoli, p.AHS)
		if binary.LittleEndian.Uint32(rest[ahsLen:]) != crc {
			return ErrHeaderDigest
		}
	}
	n := p.DataSegmentLength()
	if n == 0 {
		return nil
	}
	dlen := n + padLen(n)
	if f.DataDigest {
		dlen += DigestLength
	}
	if n > f.MaxRecvDataSegmentLength {
		if _, err := f.r.Discard(dlen); err != nil {
			return unexpectedEOF(err)
		}
		return &DataSegmentTooLongError{PDU: p, Length: n, Limit: f.MaxRecvDataSegmentLength}
	}
	if cap(f.data) < dlen {
		f.data = make([]byte, dlen)
	}
	buf := f.data[:dlen]
	if _, err := io.ReadFull(f.r, buf); err != nil {
		return unexpectedEOF(err)
	}
	p.Data = buf[:n]
	if f.DataDigest {
		// The digest covers the data and its padding (RFC 7143 11.2.4).
		crc := crc32.Checksum(buf[:n+padLen(n)], castagnoli)
		if binary.LittleEndian.Uint32(buf[dlen-DigestLength:]) != crc {
			return &DataDigestError{PDU: p}
		}
	}
	return nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WritePDU writes one PDU with a single vectored write: header, AHS, header
// digest, data, padding and data digest. Unless AllowIllegalWrites is set,
// TotalAHSLength and DataSegmentLength are filled in from p.AHS and p.Data.
func (f *Framer) WritePDU(p *PDU) error {
	if !f.AllowIllegalWrites {
		if len(p.AHS)%4 != 0 || len(p.AHS) > 255*4 {
			return fmt.Errorf("iscsi: AHS of %d bytes is not a multiple of 4 up to 1020", len(p.AHS))
		}
		if len(p.Data) > MaxDataSegmentLength {
			return fmt.Errorf("iscsi: data segment of %d bytes is too long", len(p.Data))
		}
		p.setLengths()
	}
	h := f.out[:0]
	h = append(h, p.BHS[:]...)
	h = append(h, p.AHS...)
	if f.HeaderDigest {
		h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
	}
	if len(p.Data) == 0 {
		_, err := f.w.Write(h)
		return err
	}
	pad := padLen(len(p.Data))
	t := f.tail[:pad]
	clear(t)
	if f.DataDigest {
		crc := crc32.Update(crc32.Checksum(p.Data, castagnoli), castagnoli, t)
		t = binary.LittleEndian.AppendUint32(t, crc)
	}
	f.vec[0], f.vec[1], f.vec[2] = h, p.Data, t
	// f.bufs lives in the framer so WriteTo's pointer receiver does not
	// allocate per PDU.
	f.bufs = f.vec[:2]
	if len(t) > 0 {
		f.bufs = f.vec[:3]
	}
	_, err := f.bufs.WriteTo(f.w)
	f.vec, f.bufs = [3][]byte{}, nil
	return err
}

// zeroPad is the padding after a data segment; never written.
var zeroPad [3]byte

// inlineDataMax is the largest data segment a pduBatch copies next to its
// header; larger ones are sent from where they lie.
const inlineDataMax = 1024

// pduBatch assembles several PDUs for one vectored write: headers,
// digests, padding and small data segments are copied into buf, large
// data segments are referenced in place, so a flush of many responses is
// one writev and data-in is never copied in user space. It is reused from
// batch to batch.
type pduBatch struct {
	buf   []byte
	vec   net.Buffers
	start int // first byte of buf not yet referenced by vec
}

// appendPDU adds a PDU without AHS, given its BHS (whose length fields it
// fills in) and data segment, with the framer's digests. The data must
// stay untouched until the batch is written.
func (f *Framer) appendPDU(b *pduBatch, bhs *[BHSLength]byte, data []byte) {
	n := len(data)
	bhs[4] = 0
	bhs[5], bhs[6], bhs[7] = byte(n>>16), byte(n>>8), byte(n)
	b.buf = append(b.buf, bhs[:]...)
	if f.HeaderDigest {
		b.buf = binary.LittleEndian.AppendUint32(b.buf, crc32.Checksum(bhs[:], castagnoli))
	}
	if n == 0 {
		return
	}
	if n <= inlineDataMax {
		b.buf = append(b.buf, data...)
	} else {
		b.vec = append(b.vec, b.buf[b.start:])
		b.vec = append(b.vec, data)
		b.start = len(b.buf)
	}
	pad := zeroPad[:padLen(n)]
	b.buf = append(b.buf, pad...)
	if f.DataDigest {
		crc := crc32.Update(crc32.Checksum(data, castagnoli), castagnoli, pad)
		b.buf = binary.LittleEndian.AppendUint32(b.buf, crc)
	}
}

// writeChunk is about the most a batch hands the socket in one write, so
// a write deadline set before each measures progress, not the size of
// the batch.
const writeChunk = 1 << 20

// writeBatch writes the batch to w and empties it, in writes of about
// writeChunk bytes; ready is called before each.
func (f *Framer) writeBatch(b *pduBatch, w io.Writer, ready func()) error {
	if b.start < len(b.buf) {
		b.vec = append(b.vec, b.buf[b.start:])
	}
	// WriteTo consumes the vector; keep its backing array for the next
	// batch.
	vec := b.vec
	var err error
	for rest := vec; len(rest) > 0 && err == nil; {
		n, size := 1, len(rest[0])
		for n < len(rest) && size+len(rest[n]) <= writeChunk {
			size += len(rest[n])
			n++
		}
		chunk := rest[:n:n]
		rest = rest[n:]
		ready()
		_, err = chunk.WriteTo(w)
	}
	clear(vec)
	b.vec, b.buf, b.start = vec[:0], b.buf[:0], 0
	return err
}
