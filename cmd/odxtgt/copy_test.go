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
