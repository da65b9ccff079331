package main

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// COPY OPERATION STATUS values a poll sees (SPC-4 6.18.6).
const (
	copyCompleted          = 0x01
	copyRunningForeground  = 0x11
	copyRunningBackground  = 0x12
	transferCountUnitBytes = 0x00
	transferCountUnitLBAs  = 0xF1
)

// receiveCopyStatusLID4 is RECEIVE COPY STATUS (LID4) for listID.
func receiveCopyStatusLID4(t *testing.T, s *initiator.Session, lun uint64, listID uint32) *initiator.Response {
	t.Helper()
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x84, 0x05
	binary.BigEndian.PutUint32(cdb[2:], listID)
	binary.BigEndian.PutUint32(cdb[10:], 1024)
	return winCommand(t, s, initiator.Request{LUN: lun, CDB: cdb, ReadLen: 1024})
}

// pollCopy sends status until its COPY OPERATION STATUS is no longer
// "running" (11h or 12h), sleeping the ESTIMATED STATUS UPDATE DELAY
// between polls as a host would, and returns the last parameter data and
// how many polls saw the operation still running. It gives up after 30 s.
func pollCopy(t *testing.T, what string, status func() *initiator.Response) (last []byte, running int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := status()
		require.Equal(t, scsi.StatusGood, r.Status, "%s: %v", what, r.Sense)
		p := r.DataIn
		require.GreaterOrEqual(t, len(p), 32, "%s", what)
		switch p[5] & 0x7F {
		case copyRunningForeground, copyRunningBackground:
			running++
			require.True(t, time.Now().Before(deadline), "%s: still running after 30 s", what)
			delay := time.Duration(binary.BigEndian.Uint32(p[8:])) * time.Millisecond
			time.Sleep(min(max(delay, time.Millisecond), time.Second))
		default:
			return p, running
		}
	}
}

// immed sets IMMED (byte 2, bit 0) of a POPULATE TOKEN or WRITE USING
// TOKEN parameter list.
func immed(p []byte) []byte {
	p[2] |= 0x01
	return p
}

// TestServeODXImmedPolling drives POPULATE TOKEN and WRITE USING TOKEN
// with IMMED set, as ddpt's iflag=immed and oflag=immed do: GOOD at once,
// then RECEIVE ROD TOKEN INFORMATION or RECEIVE COPY STATUS (LID4) on the
// same I_T nexus and list identifier until the operation completes; and a
// WRITE USING TOKEN with IMMED set and a bad token refused at once.
func TestServeODXImmedPolling(t *testing.T) {
	const bs = 512
	const size = 32 << 20
	dir := t.TempDir()
	yaml := `
backstores:
  - {name: isrc, type: file, path: ` + filepath.Join(dir, "src.img") + `, size: 32MiB}
  - {name: idst, type: file, path: ` + filepath.Join(dir, "dst.img") + `, size: 32MiB}
targets:
  - iqn: iqn.2025-01.io.odxtgt:immed
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: isrc}, {lun: 1, backstore: idst}]
`
	st := startServe(t, &serveOptions{configPath: writeConfig(t, dir, yaml), logFormat: "text", logLevel: "info"})
	a := winDial(t, st.addr, winHostA, "iqn.2025-01.io.odxtgt:immed", 0, 1)
	h := newWinHost(t)
	winWriteBlocks(t, a, 0, 0, randomBytes(size), bs)
	// Half the source, in two ranges: 16 MiB represented by one token.
	src := []extent{{lba: 0, blocks: 8192}, {lba: 40000, blocks: 24576}}
	n := extentsBlocks(src)
	want := readExtents(t, a, 0, src, bs)

	var token []byte
	t.Run("POPULATE TOKEN", func(t *testing.T) {
		id := h.nextListID()
		p := immed(populateParams(0, src))
		r := winCommand(t, a, initiator.Request{LUN: 0, CDB: winTokenCDB(0x10, id, len(p)), DataOut: p})
		require.Equal(t, scsi.StatusGood, r.Status, "POPULATE TOKEN with IMMED: %v", r.Sense)
		info, running := pollCopy(t, "RRTI after POPULATE TOKEN", func() *initiator.Response { return rrti(t, a, 0, id) })
		t.Logf("%d polls saw the POPULATE TOKEN running", running)
		assert.Equal(t, byte(0x10), info[4]&0x1F, "RESPONSE TO SERVICE ACTION")
		require.Equal(t, byte(copyCompleted), info[5]&0x7F, "COPY OPERATION STATUS")
		assert.Equal(t, byte(transferCountUnitLBAs), info[15], "TRANSFER COUNT UNITS")
		assert.Equal(t, n, binary.BigEndian.Uint64(info[16:]), "TRANSFER COUNT: every block asked for")
		off := 32 + int(info[13])
		require.GreaterOrEqual(t, len(info), off+4+514)
		require.Equal(t, uint32(514), binary.BigEndian.Uint32(info[off:]), "ROD TOKEN DESCRIPTORS LENGTH")
		token = bytes.Clone(info[off+6 : off+6+512])
	})
	require.NotNil(t, token, "POPULATE TOKEN with IMMED made no token")

	t.Run("WRITE USING TOKEN polled with RRTI", func(t *testing.T) {
		dst := []extent{{lba: 0, blocks: uint32(n)}}
		id := h.nextListID()
		p := immed(wutParams(token, 0, false, dst))
		r := winCommand(t, a, initiator.Request{LUN: 1, CDB: winTokenCDB(0x11, id, len(p)), DataOut: p})
		require.Equal(t, scsi.StatusGood, r.Status, "WRITE USING TOKEN with IMMED: %v", r.Sense)
		info, running := pollCopy(t, "RRTI after WRITE USING TOKEN", func() *initiator.Response { return rrti(t, a, 1, id) })
		t.Logf("%d polls saw the WRITE USING TOKEN running", running)
		assert.Equal(t, byte(0x11), info[4]&0x1F, "RESPONSE TO SERVICE ACTION")
		require.Equal(t, byte(copyCompleted), info[5]&0x7F, "COPY OPERATION STATUS: %x", info)
		assert.Equal(t, byte(transferCountUnitLBAs), info[15], "TRANSFER COUNT UNITS")
		assert.Equal(t, n, binary.BigEndian.Uint64(info[16:]), "TRANSFER COUNT: the blocks written")
		assert.True(t, bytes.Equal(want, readExtents(t, a, 1, dst, bs)), "the destination holds the token's data")
	})

	t.Run("WRITE USING TOKEN polled with RECEIVE COPY STATUS", func(t *testing.T) {
		dst := []extent{{lba: n, blocks: uint32(n / 2)}, {lba: 100, blocks: uint32(n / 2)}}
		id := h.nextListID()
		p := immed(wutParams(token, 0, false, dst))
		r := winCommand(t, a, initiator.Request{LUN: 1, CDB: winTokenCDB(0x11, id, len(p)), DataOut: p})
		require.Equal(t, scsi.StatusGood, r.Status, "WRITE USING TOKEN with IMMED: %v", r.Sense)
		status, running := pollCopy(t, "RECEIVE COPY STATUS (LID4)", func() *initiator.Response { return receiveCopyStatusLID4(t, a, 1, id) })
		t.Logf("%d polls saw the WRITE USING TOKEN running", running)
		assert.Equal(t, byte(0x11), status[4]&0x1F, "RESPONSE TO SERVICE ACTION")
		require.Equal(t, byte(copyCompleted), status[5]&0x7F, "COPY OPERATION STATUS: %x", status)
		assert.Equal(t, byte(scsi.StatusGood), status[12], "COMPLETION STATUS")
		assert.Equal(t, byte(transferCountUnitBytes), status[15], "TRANSFER COUNT UNITS")
		assert.Equal(t, n*bs, binary.BigEndian.Uint64(status[16:]), "TRANSFER COUNT: the bytes written")
		assert.True(t, bytes.Equal(want, readExtents(t, a, 1, dst, bs)), "the destination holds the token's data")
		// Reading a completed list's status released it.
		r = receiveCopyStatusLID4(t, a, 1, id)
		require.Equal(t, scsi.StatusCheckCondition, r.Status)
		assert.Equal(t, scsi.ASCInvalidFieldInCDB, r.Sense.Code, "%v", r.Sense)
	})

	t.Run("WRITE USING TOKEN with a bad token", func(t *testing.T) {
		flipped := bytes.Clone(token)
		flipped[300] ^= 0x01
		forged := randomBytes(512)
		copy(forged, []byte{0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0xF8})
		before := readExtents(t, a, 1, []extent{{lba: 0, blocks: 64}}, bs)
		for name, bad := range map[string][]byte{"altered": flipped, "forged": forged} {
			id := h.nextListID()
			p := immed(wutParams(bad, 0, false, []extent{{lba: 0, blocks: 64}}))
			r := winCommand(t, a, initiator.Request{LUN: 1, CDB: winTokenCDB(0x11, id, len(p)), DataOut: p})
			require.Equal(t, scsi.StatusCheckCondition, r.Status, "%s token with IMMED: refused at once, not GOOD", name)
			require.NotNil(t, r.Sense, "% x", r.SenseRaw)
			assert.Equal(t, scsi.IllegalRequest, r.Sense.Key, "%s: %v", name, r.Sense)
			assert.Equal(t, scsi.ASC(0x2300), r.Sense.Code&0xFF00, "%s: INVALID TOKEN OPERATION, got %v", name, r.Sense)
			// Refused before a list was made: there is nothing to poll.
			r = rrti(t, a, 1, id)
			require.Equal(t, scsi.StatusCheckCondition, r.Status, "%s: RRTI of a refused list", name)
			assert.Equal(t, scsi.ASCInvalidFieldInCDB, r.Sense.Code, "%s: %v", name, r.Sense)
		}
		assert.True(t, bytes.Equal(before, readExtents(t, a, 1, []extent{{lba: 0, blocks: 64}}, bs)), "nothing was written")
	})
}
