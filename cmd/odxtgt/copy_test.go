package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// naaCSCD returns an identification CSCD descriptor (E4h) carrying the
// NAA designator a LUN reports in its Device Identification VPD page.
func naaCSCD(t *testing.T, s *initiator.Session, lun uint64) []byte {
	t.Helper()
	r := command(t, s, initiator.Request{LUN: lun, CDB: []byte{0x12, 0x01, 0x83, 0x10, 0x00, 0x00}, ReadLen: 4096})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	for p := r.DataIn[4:]; len(p) >= 4 && 4+int(p[3]) <= len(p); p = p[4+int(p[3]):] {
		if p[1]&0x3F == 0x03 {
			c := make([]byte, 32)
			c[0] = 0xE4
			copy(c[4:], p[:4+int(p[3])])
			c[30] = 0x02 // DISK BLOCK LENGTH 512
			return c
		}
	}
	t.Fatal("no NAA designator")
	return nil
}

// xcopyCDB builds EXTENDED COPY (LID1) for a list of n bytes.
func xcopyCDB(n int) []byte {
	cdb := make([]byte, 16)
	cdb[0] = 0x83
	binary.BigEndian.PutUint32(cdb[10:], uint32(n))
	return cdb
}

// b2bList is a LID1 parameter list copying blocks between CSCD 0 and 1.
func b2bList(listID byte, src, dst []byte, blocks uint16, srcLBA, dstLBA uint64) []byte {
	hdr := make([]byte, 16)
	hdr[0], hdr[1] = listID, 0x10 // LIST ID USAGE 10b, as ESXi sends
	binary.BigEndian.PutUint16(hdr[2:], 64)
	binary.BigEndian.PutUint32(hdr[8:], 28)
	seg := make([]byte, 28)
	seg[0] = 0x02
	binary.BigEndian.PutUint16(seg[2:], 0x18)
	binary.BigEndian.PutUint16(seg[6:], 1)
	binary.BigEndian.PutUint16(seg[10:], blocks)
	binary.BigEndian.PutUint64(seg[12:], srcLBA)
	binary.BigEndian.PutUint64(seg[20:], dstLBA)
	return bytes.Join([][]byte{hdr, src, dst, seg}, nil)
}

func dialAndClear(t *testing.T, addr, target string, luns ...uint64) *initiator.Session {
	t.Helper()
	s, err := initiator.Dial(context.Background(), addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:copy-test", TargetName: target})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	for _, lun := range luns {
		command(t, s, initiator.Request{LUN: lun, CDB: make([]byte, 6)})
	}
	return s
}

// TestServeExtendedCopy copies between two file LUNs of one target through
// the real server, and checks that a LUN of another target is reachable
// only with copy.cross_target.
func TestServeExtendedCopy(t *testing.T) {
	for _, cross := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "cross_target"}[cross], func(t *testing.T) {
			dir := t.TempDir()
			yaml := `
backstores:
  - {name: a, type: file, path: ` + filepath.Join(dir, "a.img") + `, size: 4MiB}
  - {name: b, type: file, path: ` + filepath.Join(dir, "b.img") + `, size: 4MiB}
  - {name: other, type: file, path: ` + filepath.Join(dir, "other.img") + `, size: 4MiB}
targets:
  - iqn: iqn.2025-01.io.odxtgt:one
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: a}, {lun: 1, backstore: b}]
  - iqn: iqn.2025-01.io.odxtgt:two
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: other}]
`
			if cross {
				yaml += "copy: {cross_target: true}\n"
			}
			st := startServe(t, &serveOptions{configPath: writeConfig(t, dir, yaml), logFormat: "text", logLevel: "info"})
			one := dialAndClear(t, st.addr, "iqn.2025-01.io.odxtgt:one", 0, 1)
			two := dialAndClear(t, st.addr, "iqn.2025-01.io.odxtgt:two", 0)

			payload := bytes.Repeat([]byte{0xA5, 0x5A, 1, 2}, 8*512/4)
			w := make([]byte, 10)
			w[0] = 0x2A
			binary.BigEndian.PutUint32(w[2:], 100)
			binary.BigEndian.PutUint16(w[7:], 8)
			require.Equal(t, scsi.StatusGood, command(t, one, initiator.Request{CDB: w, DataOut: payload}).Status)

			src, dst := naaCSCD(t, one, 0), naaCSCD(t, one, 1)
			list := b2bList(1, src, dst, 8, 100, 200)
			r := command(t, one, initiator.Request{LUN: 1, CDB: xcopyCDB(len(list)), DataOut: list})
			require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
			rd := make([]byte, 10)
			rd[0] = 0x28
			binary.BigEndian.PutUint32(rd[2:], 200)
			binary.BigEndian.PutUint16(rd[7:], 8)
			r = command(t, one, initiator.Request{LUN: 1, CDB: rd, ReadLen: len(payload)})
			require.Equal(t, scsi.StatusGood, r.Status)
			assert.Equal(t, payload, r.DataIn)

			// To the LUN of target two, from a session of target one.
			far := naaCSCD(t, two, 0)
			list = b2bList(2, src, far, 8, 100, 300)
			r = command(t, one, initiator.Request{CDB: xcopyCDB(len(list)), DataOut: list})
			other, err := os.ReadFile(filepath.Join(dir, "other.img"))
			require.NoError(t, err)
			if !cross {
				require.Equal(t, scsi.StatusCheckCondition, r.Status)
				assert.Equal(t, scsi.CopyAborted, r.Sense.Key)
				assert.Equal(t, scsi.ASCCopyTargetDeviceNotReachable, r.Sense.Code)
				assert.Equal(t, make([]byte, 8*512), other[300*512:308*512], "nothing written to the other target's LUN")
				return
			}
			require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
			require.NoError(t, st.stop())
			other, err = os.ReadFile(filepath.Join(dir, "other.img"))
			require.NoError(t, err)
			assert.Equal(t, payload, other[300*512:308*512])
		})
	}
}

// rangeDesc is a block device range descriptor.
func rangeDesc(lba uint64, blocks uint32) []byte {
	d := make([]byte, 16)
	binary.BigEndian.PutUint64(d, lba)
	binary.BigEndian.PutUint32(d[8:], blocks)
	return d
}

func tokenCmdCDB(sa byte, listID uint32, n int) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x83, sa
	binary.BigEndian.PutUint32(cdb[6:], listID)
	binary.BigEndian.PutUint32(cdb[10:], uint32(n))
	return cdb
}

func rrtiCDB(listID uint32) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x84, 0x07
	binary.BigEndian.PutUint32(cdb[2:], listID)
	binary.BigEndian.PutUint32(cdb[10:], 4096)
	return cdb
}

func rw10(op byte, lba uint32, blocks uint16) []byte {
	cdb := make([]byte, 10)
	cdb[0] = op
	binary.BigEndian.PutUint32(cdb[2:], lba)
	binary.BigEndian.PutUint16(cdb[7:], blocks)
	return cdb
}

// odxServe serves a file LUN 0 and a memory LUN 1 of the given size and
// returns the server and a session that wrote "old data" to blocks
// 1000-1063 of LUN 0, with the unit attentions taken.
func odxServe(t *testing.T, size string) (*servedTarget, *initiator.Session, []byte) {
	t.Helper()
	dir := t.TempDir()
	yaml := `
backstores:
  - {name: a, type: file, path: ` + filepath.Join(dir, "a.img") + `, size: ` + size + `}
  - {name: b, type: memory, size: ` + size + `}
targets:
  - iqn: iqn.2025-01.io.odxtgt:odx
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: a}, {lun: 1, backstore: b}]
`
	st := startServe(t, &serveOptions{configPath: writeConfig(t, dir, yaml), logFormat: "text", logLevel: "info"})
	s := dialAndClear(t, st.addr, "iqn.2025-01.io.odxtgt:odx", 0, 1)
	old := bytes.Repeat([]byte("old data"), 64*512/8)
	require.Equal(t, scsi.StatusGood, command(t, s, initiator.Request{CDB: rw10(0x2A, 1000, 64), DataOut: old}).Status)
	return st, s, old
}

// populateOld makes a token of blocks 1000-1063 of LUN 0 as list id and
// returns the RECEIVE ROD TOKEN INFORMATION data.
func populateOld(t *testing.T, s *initiator.Session, id uint32) []byte {
	t.Helper()
	pt := make([]byte, 16)
	binary.BigEndian.PutUint16(pt[14:], 16)
	pt = append(pt, rangeDesc(1000, 64)...)
	binary.BigEndian.PutUint16(pt, uint16(len(pt)-2))
	r := command(t, s, initiator.Request{CDB: tokenCmdCDB(0x10, id, len(pt)), DataOut: pt})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	r = command(t, s, initiator.Request{CDB: rrtiCDB(id), ReadLen: 4096})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	return r.DataIn
}

// TestServeODXPointInTime populates a token, overwrites the source from
// another session, and writes the token from a third initiator: the
// destination gets the data as it was when the token was made.
func TestServeODXPointInTime(t *testing.T) {
	st, s, old := odxServe(t, "8MiB")
	info := populateOld(t, s, 0x101)
	require.GreaterOrEqual(t, len(info), 32+4+514)
	assert.Equal(t, byte(0x10), info[4], "RESPONSE TO SERVICE ACTION")
	assert.Equal(t, byte(0x01), info[5], "COPY OPERATION STATUS")
	assert.Equal(t, byte(0xF1), info[15], "TRANSFER COUNT UNITS")
	assert.Equal(t, uint64(64), binary.BigEndian.Uint64(info[16:]))
	off := 32 + int(info[13])
	require.Equal(t, uint32(514), binary.BigEndian.Uint32(info[off:]))
	token := info[off+6 : off+6+512]

	// The source changes after the token was made.
	other := dialAndClear(t, st.addr, "iqn.2025-01.io.odxtgt:odx", 0)
	fresh := bytes.Repeat([]byte("NEW!"), 64*512/4)
	require.Equal(t, scsi.StatusGood, command(t, other, initiator.Request{CDB: rw10(0x2A, 1000, 64), DataOut: fresh}).Status)

	wut := wutParams(token, 0, false, []extent{{200, 64}})
	third, err := initiator.Dial(context.Background(), st.addr, initiator.Config{InitiatorName: "iqn.2025-01.io.odxtgt:another-host", TargetName: "iqn.2025-01.io.odxtgt:odx"})
	require.NoError(t, err)
	defer third.Close()
	command(t, third, initiator.Request{LUN: 1, CDB: make([]byte, 6)})
	r := command(t, third, initiator.Request{LUN: 1, CDB: tokenCmdCDB(0x11, 7, len(wut)), DataOut: wut})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	r = command(t, third, initiator.Request{LUN: 1, CDB: rw10(0x28, 200, 64), ReadLen: len(old)})
	require.Equal(t, scsi.StatusGood, r.Status)
	assert.Equal(t, old, r.DataIn, "WRITE USING TOKEN wrote the data as it was at POPULATE TOKEN")

	// A token with one bit changed is refused as corrupt.
	wut[16+200] ^= 1
	r = command(t, third, initiator.Request{LUN: 1, CDB: tokenCmdCDB(0x11, 8, len(wut)), DataOut: wut})
	require.Equal(t, scsi.StatusCheckCondition, r.Status)
	assert.Equal(t, scsi.ASC(0x2305), r.Sense.Code)
}

// TestReviewWriteSameUnmapToEndKeepsToken: WRITE SAME (16) with UNMAP, a
// block that is not zeroes and NUMBER OF LOGICAL BLOCKS zero deallocates
// from the LBA through the last block, across the range a live ROD token
// represents; the token still writes the data as it was at POPULATE
// TOKEN, and the source reads as zeroes.
func TestReviewWriteSameUnmapToEndKeepsToken(t *testing.T) {
	_, s, old := odxServe(t, "1MiB")
	info := populateOld(t, s, 0x201)
	off := 32 + int(info[13])
	require.GreaterOrEqual(t, len(info), off+6+512)
	token := info[off+6 : off+6+512]

	// WRITE SAME (16), UNMAP, from LBA 990 through the last block (2047).
	ws := make([]byte, 16)
	ws[0], ws[1] = 0x93, 0x08
	binary.BigEndian.PutUint64(ws[2:], 990)
	r := command(t, s, initiator.Request{CDB: ws, DataOut: bytes.Repeat([]byte{0x5A}, 512)})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	r = command(t, s, initiator.Request{CDB: rw10(0x28, 2047, 1), ReadLen: 512})
	require.Equal(t, scsi.StatusGood, r.Status)
	assert.Equal(t, make([]byte, 512), r.DataIn, "the last block was deallocated and reads as zeroes")

	wut := wutParams(token, 0, false, []extent{{200, 64}})
	r = command(t, s, initiator.Request{LUN: 1, CDB: tokenCmdCDB(0x11, 9, len(wut)), DataOut: wut})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	r = command(t, s, initiator.Request{LUN: 1, CDB: rw10(0x28, 200, 64), ReadLen: len(old)})
	require.Equal(t, scsi.StatusGood, r.Status)
	assert.Equal(t, old, r.DataIn, "WRITE USING TOKEN wrote the data as it was at POPULATE TOKEN")
}
