package stress

import (
	"bytes"
	"encoding/binary"
)

// BlockSize is the logical block size of every LU the driver uses.
const BlockSize = 512

func rw10(op byte, fua bool, lba uint64, n int) []byte {
	cdb := make([]byte, 10)
	cdb[0] = op
	if fua {
		cdb[1] = 0x08
	}
	binary.BigEndian.PutUint32(cdb[2:], uint32(lba))
	binary.BigEndian.PutUint16(cdb[7:], uint16(n))
	return cdb
}

func rw16(op byte, flags byte, lba uint64, n int) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = op, flags
	binary.BigEndian.PutUint64(cdb[2:], lba)
	binary.BigEndian.PutUint32(cdb[10:], uint32(n))
	return cdb
}

// cawCDB is COMPARE AND WRITE of one block.
func cawCDB(lba uint64) []byte {
	cdb := make([]byte, 16)
	cdb[0] = 0x89
	binary.BigEndian.PutUint64(cdb[2:], lba)
	cdb[13] = 1
	return cdb
}

type blockRange struct {
	lba uint64
	n   int
}

func totalBlocks(rs []blockRange) int {
	n := 0
	for _, r := range rs {
		n += r.n
	}
	return n
}

// sliceRanges returns the ranges holding n blocks from block off of rs.
func sliceRanges(rs []blockRange, off, n int) []blockRange {
	var out []blockRange
	for _, r := range rs {
		if n == 0 {
			break
		}
		if off >= r.n {
			off -= r.n
			continue
		}
		k := min(r.n-off, n)
		out = append(out, blockRange{r.lba + uint64(off), k})
		off, n = 0, n-k
	}
	return out
}

func unmapList(rs []blockRange) []byte {
	p := make([]byte, 8, 8+16*len(rs))
	binary.BigEndian.PutUint16(p, uint16(6+16*len(rs)))
	binary.BigEndian.PutUint16(p[2:], uint16(16*len(rs)))
	for _, r := range rs {
		d := make([]byte, 16)
		binary.BigEndian.PutUint64(d, r.lba)
		binary.BigEndian.PutUint32(d[8:], uint32(r.n))
		p = append(p, d...)
	}
	return p
}

func unmapCDB(n int) []byte {
	cdb := make([]byte, 10)
	cdb[0] = 0x42
	binary.BigEndian.PutUint16(cdb[7:], uint16(n))
	return cdb
}

func xcopyCDB(n int) []byte {
	cdb := make([]byte, 16)
	cdb[0] = 0x83
	binary.BigEndian.PutUint32(cdb[10:], uint32(n))
	return cdb
}

// xcopySegment is one block-to-block (02h) segment from CSCD 0 to CSCD 1.
type xcopySegment struct {
	src, dst uint64
	n        int
}

// xcopyList is an EXTENDED COPY (LID1) parameter list with two CSCD
// descriptors and type 02h segments, LIST ID USAGE 10b as ESXi sends it.
func xcopyList(listID byte, src, dst []byte, segs []xcopySegment) []byte {
	hdr := make([]byte, 16)
	hdr[0], hdr[1] = listID, 0x10
	binary.BigEndian.PutUint16(hdr[2:], 64)
	binary.BigEndian.PutUint32(hdr[8:], uint32(28*len(segs)))
	parts := [][]byte{hdr, src, dst}
	for _, s := range segs {
		seg := make([]byte, 28)
		seg[0] = 0x02
		binary.BigEndian.PutUint16(seg[2:], 0x18)
		binary.BigEndian.PutUint16(seg[6:], 1)
		binary.BigEndian.PutUint16(seg[10:], uint16(s.n))
		binary.BigEndian.PutUint64(seg[12:], s.src)
		binary.BigEndian.PutUint64(seg[20:], s.dst)
		parts = append(parts, seg)
	}
	return bytes.Join(parts, nil)
}

// naaCSCD returns the identification CSCD descriptor (E4h) of the NAA
// designator in a Device Identification VPD page, or nil.
func naaCSCD(vpd83 []byte) []byte {
	if len(vpd83) < 4 {
		return nil
	}
	for p := vpd83[4:]; len(p) >= 4 && 4+int(p[3]) <= len(p); p = p[4+int(p[3]):] {
		if p[1]&0x3F == 0x03 && 4+int(p[3]) <= 24 {
			c := make([]byte, 32)
			c[0] = 0xE4
			copy(c[4:], p[:4+int(p[3])])
			c[30] = BlockSize >> 8 // DISK BLOCK LENGTH (bytes 29-31)
			return c
		}
	}
	return nil
}

func tokenCDB(sa byte, listID uint32, n int) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x83, sa
	binary.BigEndian.PutUint32(cdb[6:], listID)
	binary.BigEndian.PutUint32(cdb[10:], uint32(n))
	return cdb
}

func rrtiCDB(listID uint32, alloc int) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x84, 0x07
	binary.BigEndian.PutUint32(cdb[2:], listID)
	binary.BigEndian.PutUint32(cdb[10:], uint32(alloc))
	return cdb
}

func rangeDescs(rs []blockRange) []byte {
	var b []byte
	for _, r := range rs {
		d := make([]byte, 16)
		binary.BigEndian.PutUint64(d, r.lba)
		binary.BigEndian.PutUint32(d[8:], uint32(r.n))
		b = append(b, d...)
	}
	return b
}

// populateParams is a POPULATE TOKEN parameter list: RTV=0, the given
// inactivity timeout in seconds.
func populateParams(timeout uint32, rs []blockRange) []byte {
	p := make([]byte, 16)
	binary.BigEndian.PutUint32(p[4:], timeout)
	binary.BigEndian.PutUint16(p[14:], uint16(16*len(rs)))
	p = append(p, rangeDescs(rs)...)
	binary.BigEndian.PutUint16(p, uint16(len(p)-2))
	return p
}

// wutParams is a WRITE USING TOKEN parameter list.
func wutParams(token []byte, offsetIntoROD uint64, delTkn bool, rs []blockRange) []byte {
	p := make([]byte, 536)
	if delTkn {
		p[2] |= 0x02
	}
	binary.BigEndian.PutUint64(p[8:], offsetIntoROD)
	copy(p[16:], token)
	binary.BigEndian.PutUint16(p[534:], uint16(16*len(rs)))
	p = append(p, rangeDescs(rs)...)
	binary.BigEndian.PutUint16(p, uint16(len(p)-2))
	return p
}

// xcopyList4 is an EXTENDED COPY (LID4) parameter list (SPC-4 6.4.3.3,
// PARAMETER LIST FORMAT 01h) with the same descriptors as xcopyList. A
// list with immed set is held (LIST ID USAGE 00b) so that RECEIVE COPY
// STATUS can report how it ended; the others are discarded (10b).
func xcopyList4(listID uint32, immed bool, src, dst []byte, segs []xcopySegment) []byte {
	hdr := make([]byte, 48)
	hdr[0] = 0x01
	if immed {
		hdr[15] = 0x01
	} else {
		hdr[1] = 0x10
	}
	binary.BigEndian.PutUint32(hdr[20:], listID)
	binary.BigEndian.PutUint16(hdr[42:], 64)
	binary.BigEndian.PutUint16(hdr[44:], uint16(28*len(segs)))
	l1 := xcopyList(0, src, dst, segs)
	return append(hdr, l1[16:]...)
}

func xcopy4CDB(n int) []byte {
	cdb := xcopyCDB(n)
	cdb[1] = 0x01
	return cdb
}

// copyAbortCDB is COPY OPERATION ABORT (SPC-4 6.3) of a list.
func copyAbortCDB(listID uint32) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x83, 0x1C
	binary.BigEndian.PutUint32(cdb[2:], listID)
	return cdb
}

// copyStatus4CDB is RECEIVE COPY STATUS (LID4) (SPC-4 6.18.6).
func copyStatus4CDB(listID uint32, alloc int) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x84, 0x05
	binary.BigEndian.PutUint32(cdb[2:], listID)
	binary.BigEndian.PutUint32(cdb[10:], uint32(alloc))
	return cdb
}

// zeroToken is the block device zero ROD token (SBC-3 5.33.4): ROD TYPE
// FFFF0001h, the rest ignored.
func zeroToken() []byte {
	t := make([]byte, 512)
	binary.BigEndian.PutUint32(t, 0xFFFF0001)
	return t
}
