package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// This file emulates what the Windows disk class driver (classpnp) sends
// for an offloaded copy (ODX), through the real server and the Go
// initiator: the discovery of VPD 00h and 8Fh with a 255-byte allocation,
// POPULATE TOKEN with IMMED=0 and RTV=0 followed at once by RECEIVE ROD
// TOKEN INFORMATION on the same I_T nexus and list identifier, then WRITE
// USING TOKEN in pieces sized from OPTIMAL TRANSFER COUNT, each resumed
// from INFORMATION after a COPY TARGET DEVICE DATA UNDERRUN truncation. See
// /work/shared/notes/copy-offload-interop.md, section 5.

// Windows initiator names: the offload read and the offload write come
// from different hosts (SMB passes tokens between servers).
const (
	winHostA = "iqn.1991-05.com.microsoft:win-a"
	winHostB = "iqn.1991-05.com.microsoft:win-b"
)

// winScale shrinks the per-WRITE USING TOKEN size Windows uses (64 or
// 256 MiB) so that LUNs of a few MiB still take several commands.
const winScale = 256

// extent is a run of logical blocks: a file fragment on a LUN.
type extent struct {
	lba    uint64
	blocks uint32
}

func extentsBlocks(exts []extent) uint64 {
	var n uint64
	for _, e := range exts {
		n += uint64(e.blocks)
	}
	return n
}

// sliceExtents returns the extents holding the n logical blocks at file
// offset off of a file made of exts.
func sliceExtents(exts []extent, off, n uint64) []extent {
	var out []extent
	for _, e := range exts {
		if n == 0 {
			break
		}
		if off >= uint64(e.blocks) {
			off -= uint64(e.blocks)
			continue
		}
		k := min(uint64(e.blocks)-off, n)
		out = append(out, extent{e.lba + off, uint32(k)})
		off, n = 0, n-k
	}
	return out
}

// winRODLimits is what classpnp caches from the Block Device ROD Token
// Limits descriptor.
type winRODLimits struct {
	maxRanges              uint16
	maxTimeout, defTimeout uint32
	maxTokenBlocks         uint64
	optimalBlocks          uint64
}

// winHost is one Windows host: its list identifiers come from one
// host-wide counter, whatever the LUN or the session.
type winHost struct {
	t      *testing.T
	listID atomic.Uint32
	// truncations counts WRITE USING TOKEN commands that ended with
	// COPY TARGET DEVICE DATA UNDERRUN and were resumed.
	truncations int
}

func newWinHost(t *testing.T) *winHost {
	h := &winHost{t: t}
	h.listID.Store(0x100)
	return h
}

func (h *winHost) nextListID() uint32 { return h.listID.Add(1) - 1 }

func winCommand(t *testing.T, s *initiator.Session, req initiator.Request) *initiator.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := s.Command(ctx, req)
	require.NoError(t, err)
	return r
}

// winDial logs in as initiator to target and clears the power-on unit
// attention of the LUNs.
func winDial(t *testing.T, addr, initiatorName, target string, luns ...uint64) *initiator.Session {
	t.Helper()
	s, err := initiator.Dial(context.Background(), addr, initiator.Config{InitiatorName: initiatorName, TargetName: target})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	for _, lun := range luns {
		winCommand(t, s, initiator.Request{LUN: lun, CDB: make([]byte, 6)})
	}
	return s
}

// discover does what ClasspGetInquiryVpdSupportInfo and
// ClasspGetBlockDeviceTokenLimitsInfo do, and checks what they require:
// VPD 00h strictly ascending and listing 8Fh; 8Fh read with an allocation
// length of 255 whose first descriptor is 0000h of length 0020h. It also
// checks that the Control mode page reports QERR=0, which classpnp would
// otherwise MODE SELECT.
func (h *winHost) discover(s *initiator.Session, lun uint64) winRODLimits {
	t := h.t
	t.Helper()
	r := winCommand(t, s, initiator.Request{LUN: lun, CDB: []byte{0x12, 0x01, 0x00, 0x00, 0xFF, 0x00}, ReadLen: 255})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	p := r.DataIn
	require.GreaterOrEqual(t, len(p), 4)
	require.Equal(t, byte(0x00), p[1], "VPD 00h page code")
	n := int(binary.BigEndian.Uint16(p[2:]))
	require.LessOrEqual(t, 4+n, len(p))
	pages := p[4 : 4+n]
	for i := 1; i < len(pages); i++ {
		require.Less(t, pages[i-1], pages[i], "VPD 00h must be strictly ascending or Windows disables ODX: % x", pages)
	}
	require.Contains(t, pages, byte(0x8F), "VPD 00h lists the Third-party Copy page")

	r = winCommand(t, s, initiator.Request{LUN: lun, CDB: []byte{0x12, 0x01, 0x8F, 0x00, 0xFF, 0x00}, ReadLen: 255})
	require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	p = r.DataIn
	require.GreaterOrEqual(t, len(p), 4+0x24)
	require.Equal(t, byte(0x8F), p[1])
	require.GreaterOrEqual(t, binary.BigEndian.Uint16(p[2:]), uint16(0x24), "PAGE LENGTH")
	d := p[4:]
	require.Equal(t, uint16(0x0000), binary.BigEndian.Uint16(d[0:]), "first descriptor: Block Device ROD Token Limits")
	require.Equal(t, uint16(0x0020), binary.BigEndian.Uint16(d[2:]), "its DESCRIPTOR LENGTH")
	lim := winRODLimits{
		maxRanges:      binary.BigEndian.Uint16(d[10:]),
		maxTimeout:     binary.BigEndian.Uint32(d[12:]),
		defTimeout:     binary.BigEndian.Uint32(d[16:]),
		maxTokenBlocks: binary.BigEndian.Uint64(d[20:]),
		optimalBlocks:  binary.BigEndian.Uint64(d[28:]),
	}
	assert.GreaterOrEqual(t, lim.maxRanges, uint16(64), "Windows sends up to 64 ranges")
	assert.LessOrEqual(t, lim.defTimeout, lim.maxTimeout)

	r = winCommand(t, s, initiator.Request{LUN: lun, CDB: []byte{0x5A, 0x00, 0x0A, 0, 0, 0, 0, 0x00, 0xFF, 0x00}, ReadLen: 255})
	require.Equal(t, scsi.StatusGood, r.Status, "MODE SENSE (10) Control page: %v", r.Sense)
	bdl := int(binary.BigEndian.Uint16(r.DataIn[6:]))
	page := r.DataIn[8+bdl:]
	require.Equal(t, byte(0x0A), page[0]&0x3F)
	assert.Equal(t, byte(0), page[3]&0x06, "QERR")
	return lim
}

// wutPieceBlocks is the most one WRITE USING TOKEN asks for: 64 MiB when
// OPTIMAL TRANSFER COUNT is zero, the optimal transfer count when it is
// below 256 MiB, else 256 MiB (classp.h), divided by winScale.
func wutPieceBlocks(lim winRODLimits, bs uint64) uint64 {
	bytes := uint64(64 << 20)
	switch {
	case lim.optimalBlocks == 0:
	case lim.optimalBlocks*bs < 256<<20:
		bytes = lim.optimalBlocks * bs
	default:
		bytes = 256 << 20
	}
	return max(bytes/winScale/bs, 1)
}

func winRangeList(exts []extent) []byte {
	var b []byte
	for _, e := range exts {
		d := make([]byte, 16)
		binary.BigEndian.PutUint64(d, e.lba)
		binary.BigEndian.PutUint32(d[8:], e.blocks)
		b = append(b, d...)
	}
	return b
}

func winTokenCDB(sa byte, listID uint32, n int) []byte {
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x83, sa
	binary.BigEndian.PutUint32(cdb[6:], listID)
	binary.BigEndian.PutUint32(cdb[10:], uint32(n))
	return cdb
}

// populateParams is a POPULATE TOKEN parameter list as Windows builds it:
// IMMED=0, RTV=0 (the copy manager picks the ROD type), the given
// inactivity timeout (0: the default).
func populateParams(timeout uint32, exts []extent) []byte {
	p := make([]byte, 16)
	binary.BigEndian.PutUint32(p[4:], timeout)
	binary.BigEndian.PutUint16(p[14:], uint16(16*len(exts)))
	p = append(p, winRangeList(exts)...)
	binary.BigEndian.PutUint16(p, uint16(len(p)-2))
	return p
}

// wutParams is a WRITE USING TOKEN parameter list.
func wutParams(token []byte, offsetIntoROD uint64, delTkn bool, exts []extent) []byte {
	p := make([]byte, 536)
	if delTkn {
		p[2] |= 0x02
	}
	binary.BigEndian.PutUint64(p[8:], offsetIntoROD)
	copy(p[16:], token)
	binary.BigEndian.PutUint16(p[534:], uint16(16*len(exts)))
	p = append(p, winRangeList(exts)...)
	binary.BigEndian.PutUint16(p, uint16(len(p)-2))
	return p
}

// rrti is RECEIVE ROD TOKEN INFORMATION for listID.
func rrti(t *testing.T, s *initiator.Session, lun uint64, listID uint32) *initiator.Response {
	t.Helper()
	cdb := make([]byte, 16)
	cdb[0], cdb[1] = 0x84, 0x07
	binary.BigEndian.PutUint32(cdb[2:], listID)
	binary.BigEndian.PutUint32(cdb[10:], 1024)
	return winCommand(t, s, initiator.Request{LUN: lun, CDB: cdb, ReadLen: 1024})
}

// offloadRead is FSCTL_OFFLOAD_READ for one token: POPULATE TOKEN, then
// RRTI with the same list identifier on the same nexus, checked as
// classpnp checks it. It returns the token and the blocks it represents.
func (h *winHost) offloadRead(s *initiator.Session, lun uint64, exts []extent) ([]byte, uint64) {
	t := h.t
	t.Helper()
	id := h.nextListID()
	p := populateParams(0, exts)
	r := winCommand(t, s, initiator.Request{LUN: lun, CDB: winTokenCDB(0x10, id, len(p)), DataOut: p})
	require.Equal(t, scsi.StatusGood, r.Status, "POPULATE TOKEN list %#x: %v", id, r.Sense)
	r = rrti(t, s, lun, id)
	require.Equal(t, scsi.StatusGood, r.Status, "RRTI list %#x: %v", id, r.Sense)
	info := r.DataIn
	require.GreaterOrEqual(t, len(info), 32)
	assert.Equal(t, byte(0x10), info[4]&0x1F, "RESPONSE TO SERVICE ACTION")
	assert.Equal(t, byte(0x01), info[5]&0x7F, "COPY OPERATION STATUS")
	assert.Equal(t, byte(0xF1), info[15], "TRANSFER COUNT UNITS")
	count := binary.BigEndian.Uint64(info[16:])
	require.NotZero(t, count, "a transfer count of 0 means no token")
	require.LessOrEqual(t, count, extentsBlocks(exts), "more than asked is taken as 0")
	assert.Equal(t, uint16(0), binary.BigEndian.Uint16(info[24:]), "SEGMENTS PROCESSED")
	off := 32 + int(info[13])
	require.GreaterOrEqual(t, len(info), off+4+514)
	require.Equal(t, uint32(514), binary.BigEndian.Uint32(info[off:]), "ROD TOKEN DESCRIPTORS LENGTH")
	return bytes.Clone(info[off+6 : off+6+512]), count
}

// wutResult is the outcome of one WRITE USING TOKEN as classpnp sees it.
type wutResult struct {
	written   uint64
	truncated bool        // COPY TARGET DEVICE DATA UNDERRUN: partial success
	sense     *scsi.Sense // any other failure
}

// offloadWrite sends one WRITE USING TOKEN and interprets it as
// ClassInterpretSenseInfo does: GOOD is all written; COPY ABORTED or
// ABORTED COMMAND with 0Dh/04h is partial success with the blocks written
// in INFORMATION (no RRTI); anything else is a failure.
func (h *winHost) offloadWrite(s *initiator.Session, lun uint64, token []byte, offsetIntoROD uint64, delTkn bool, exts []extent) wutResult {
	t := h.t
	t.Helper()
	p := wutParams(token, offsetIntoROD, delTkn, exts)
	r := winCommand(t, s, initiator.Request{LUN: lun, CDB: winTokenCDB(0x11, h.nextListID(), len(p)), DataOut: p})
	if r.Status == scsi.StatusGood {
		return wutResult{written: extentsBlocks(exts)}
	}
	require.Equal(t, scsi.StatusCheckCondition, r.Status)
	require.NotNil(t, r.Sense, "% x", r.SenseRaw)
	if (r.Sense.Key == scsi.CopyAborted || r.Sense.Key == scsi.AbortedCommand) && r.Sense.Code == scsi.ASCCopyTargetDeviceDataUnderrun {
		require.True(t, r.Sense.HasInformation, "a truncation reports the blocks written in INFORMATION")
		require.Less(t, r.Sense.Information, extentsBlocks(exts))
		return wutResult{written: r.Sense.Information, truncated: true}
	}
	return wutResult{sense: r.Sense}
}

// copyFile copies a file of src extents on (ss, slun) to the dst extents
// on (ds, dlun) as Windows does: offload reads of at most the maximum
// token transfer size, each written in pieces, resuming after
// truncations from the blocks written. Before the first write, between
// the offload read and the offload write, it calls between.
func (h *winHost) copyFile(ss *initiator.Session, slun uint64, src []extent, ds *initiator.Session, dlun uint64, dst []extent, lim winRODLimits, bs uint64, between func()) {
	t := h.t
	t.Helper()
	total := extentsBlocks(src)
	require.Equal(t, total, extentsBlocks(dst))
	piece := wutPieceBlocks(lim, bs)
	for done := uint64(0); done < total; {
		n := total - done
		if lim.maxTokenBlocks != 0 {
			n = min(n, lim.maxTokenBlocks)
		}
		token, got := h.offloadRead(ss, slun, sliceExtents(src, done, n))
		if between != nil {
			between()
			between = nil
		}
		for off := uint64(0); off < got; {
			k := min(piece, got-off)
			res := h.offloadWrite(ds, dlun, token, off, false, sliceExtents(dst, done+off, k))
			require.Nil(t, res.sense, "WRITE USING TOKEN at ROD offset %d: %v", off, res.sense)
			if res.truncated {
				h.truncations++
			}
			off += res.written
		}
		done += got
	}
}

func winReadBlocks(t *testing.T, s *initiator.Session, lun, lba, n, bs uint64) []byte {
	t.Helper()
	var out []byte
	for n > 0 {
		k := min(n, 2048)
		cdb := make([]byte, 16)
		cdb[0] = 0x88
		binary.BigEndian.PutUint64(cdb[2:], lba)
		binary.BigEndian.PutUint32(cdb[10:], uint32(k))
		r := winCommand(t, s, initiator.Request{LUN: lun, CDB: cdb, ReadLen: int(k * bs)})
		require.Equal(t, scsi.StatusGood, r.Status, "READ (16): %v", r.Sense)
		out = append(out, r.DataIn...)
		lba, n = lba+k, n-k
	}
	return out
}

func winWriteBlocks(t *testing.T, s *initiator.Session, lun, lba uint64, data []byte, bs uint64) {
	t.Helper()
	for len(data) > 0 {
		k := min(uint64(len(data))/bs, 2048)
		cdb := make([]byte, 16)
		cdb[0] = 0x8A
		binary.BigEndian.PutUint64(cdb[2:], lba)
		binary.BigEndian.PutUint32(cdb[10:], uint32(k))
		r := winCommand(t, s, initiator.Request{LUN: lun, CDB: cdb, DataOut: data[:k*bs]})
		require.Equal(t, scsi.StatusGood, r.Status, "WRITE (16): %v", r.Sense)
		lba, data = lba+k, data[k*bs:]
	}
}

func readExtents(t *testing.T, s *initiator.Session, lun uint64, exts []extent, bs uint64) []byte {
	t.Helper()
	var out []byte
	for _, e := range exts {
		out = append(out, winReadBlocks(t, s, lun, e.lba, uint64(e.blocks), bs)...)
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// requireTokenError checks for ILLEGAL REQUEST, INVALID TOKEN OPERATION:
// classpnp maps ASC 23h, any ASCQ, to STATUS_INVALID_TOKEN and stops
// using the token. want, when non-zero, is the exact ASC/ASCQ.
func requireTokenError(t *testing.T, res wutResult, want scsi.ASC) {
	t.Helper()
	require.NotNil(t, res.sense, "WRITE USING TOKEN succeeded (%d blocks)", res.written)
	assert.Equal(t, scsi.IllegalRequest, res.sense.Key)
	assert.Equal(t, scsi.ASC(0x2300), res.sense.Code&0xFF00, "INVALID TOKEN OPERATION, got %v", res.sense)
	if want != 0 {
		assert.Equal(t, want, res.sense.Code, "%v", res.sense)
	}
}

// Source and destination files: several non-contiguous fragments, laid
// out differently on each side, so token ranges and destination ranges
// end at different blocks.
func winSourceFile() []extent {
	var exts []extent
	for i := range 40 {
		exts = append(exts, extent{uint64(i*820 + i%3*7), uint32(250 + 13*i)})
	}
	return exts
}

func winDestinationFile(lba0 uint64) []extent {
	var exts []extent
	for i := range 20 {
		exts = append(exts, extent{lba0 + uint64(i*1500+5), 1007})
	}
	return exts
}

// TestServeODXWindowsSequence runs Windows' offloaded copies against a
// target with two file LUNs and a second target with one: within the
// target from another host, across targets, point in time, the zero
// token, invalid and deleted tokens, and a LUN reset after POPULATE TOKEN.
func TestServeODXWindowsSequence(t *testing.T) {
	const bs = 512
	dir := t.TempDir()
	yaml := `
backstores:
  - {name: src, type: file, path: ` + filepath.Join(dir, "src.img") + `, size: 16MiB}
  - {name: dst, type: file, path: ` + filepath.Join(dir, "dst.img") + `, size: 16MiB}
  - {name: far, type: file, path: ` + filepath.Join(dir, "far.img") + `, size: 16MiB}
targets:
  - iqn: iqn.2025-01.io.odxtgt:win1
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: src}, {lun: 1, backstore: dst}]
  - iqn: iqn.2025-01.io.odxtgt:win2
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: far}]
`
	st := startServe(t, &serveOptions{configPath: writeConfig(t, dir, yaml), logFormat: "text", logLevel: "info"})
	a := winDial(t, st.addr, winHostA, "iqn.2025-01.io.odxtgt:win1", 0, 1)
	b := winDial(t, st.addr, winHostB, "iqn.2025-01.io.odxtgt:win1", 0, 1)
	bFar := winDial(t, st.addr, winHostB, "iqn.2025-01.io.odxtgt:win2", 0)
	h := newWinHost(t)
	lim := h.discover(a, 0)
	assert.Equal(t, lim, h.discover(b, 1))
	assert.Equal(t, lim, h.discover(bFar, 0))
	require.Greater(t, wutPieceBlocks(lim, bs), uint64(1))

	whole := randomBytes(16 << 20)
	winWriteBlocks(t, a, 0, 0, whole, bs)
	src := winSourceFile()
	require.LessOrEqual(t, len(src), 64)
	dst := winDestinationFile(0)
	want := readExtents(t, a, 0, src, bs)

	t.Run("copy from another host, point in time", func(t *testing.T) {
		h.t = t
		h.copyFile(a, 0, src, b, 1, dst, lim, bs, func() {
			// Between the offload read and the offload write the
			// source changes, in several fragments.
			for _, e := range src[3:9] {
				winWriteBlocks(t, a, 0, e.lba, randomBytes(int(e.blocks)*bs), bs)
			}
		})
		assert.True(t, bytes.Equal(want, readExtents(t, b, 1, dst, bs)), "the destination holds the source as it was at POPULATE TOKEN")
		assert.False(t, bytes.Equal(want, readExtents(t, a, 0, src, bs)), "the source did change")
		want = readExtents(t, a, 0, src, bs)
	})

	t.Run("cross target", func(t *testing.T) {
		h.t = t
		far := winDestinationFile(1000)
		h.copyFile(a, 0, src, bFar, 0, far, lim, bs, nil)
		assert.True(t, bytes.Equal(want, readExtents(t, bFar, 0, far, bs)))
	})

	t.Run("zero token", func(t *testing.T) {
		h.t = t
		zero := make([]byte, 512)
		binary.BigEndian.PutUint32(zero, 0xFFFF0001)
		binary.BigEndian.PutUint16(zero[6:], 0x01F8)
		part := dst[2:5]
		kept := readExtents(t, b, 1, dst[:2], bs)
		zeroes := make([]byte, extentsBlocks(part)*bs)
		require.False(t, bytes.Equal(zeroes, readExtents(t, b, 1, part, bs)))
		res := h.offloadWrite(b, 1, zero, 0, false, part)
		require.Nil(t, res.sense, "%v", res.sense)
		assert.True(t, bytes.Equal(zeroes, readExtents(t, b, 1, part, bs)), "the zero token zeroed the ranges")
		assert.True(t, bytes.Equal(kept, readExtents(t, b, 1, dst[:2], bs)), "only the ranges given were zeroed")
	})

	t.Run("invalid tokens", func(t *testing.T) {
		h.t = t
		token, _ := h.offloadRead(a, 0, src[:4])
		bad := bytes.Clone(token)
		bad[300] ^= 0x40
		requireTokenError(t, h.offloadWrite(b, 1, bad, 0, false, dst[:1]), 0)
		forged := randomBytes(512)
		copy(forged, []byte{0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0xF8})
		requireTokenError(t, h.offloadWrite(b, 1, forged, 0, false, dst[:1]), 0)
		requireTokenError(t, h.offloadWrite(b, 1, randomBytes(512), 0, false, dst[:1]), 0)
		// The genuine token still works.
		res := h.offloadWrite(b, 1, token, 0, false, dst[:1])
		require.Nil(t, res.sense, "%v", res.sense)
	})

	t.Run("deleted token", func(t *testing.T) {
		h.t = t
		token, n := h.offloadRead(a, 0, src[:2])
		res := h.offloadWrite(b, 1, token, 0, true, sliceExtents(dst, 0, n))
		require.Nil(t, res.sense, "%v", res.sense)
		requireTokenError(t, h.offloadWrite(b, 1, token, 0, false, dst[:1]), 0x2309)
	})

	t.Run("RRTI on another nexus", func(t *testing.T) {
		h.t = t
		id := h.nextListID()
		p := populateParams(0, src[:1])
		r := winCommand(t, a, initiator.Request{CDB: winTokenCDB(0x10, id, len(p)), DataOut: p})
		require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
		r = rrti(t, b, 0, id)
		require.Equal(t, scsi.StatusCheckCondition, r.Status, "mismatched I_T nexus and list identifier")
		assert.Equal(t, scsi.ASCInvalidFieldInCDB, r.Sense.Code)
		r = rrti(t, a, 0, id)
		require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
	})

	t.Run("too many ranges", func(t *testing.T) {
		h.t = t
		var many []extent
		for i := range 65 {
			many = append(many, extent{uint64(i * 10), 1})
		}
		p := populateParams(0, many)
		r := winCommand(t, a, initiator.Request{CDB: winTokenCDB(0x10, h.nextListID(), len(p)), DataOut: p})
		require.Equal(t, scsi.StatusCheckCondition, r.Status)
		assert.Equal(t, scsi.ASCTooManySegmentDescriptors, r.Sense.Code, "%v", r.Sense)
		token, n := h.offloadRead(a, 0, many[:64])
		assert.Equal(t, uint64(64), n)
		res := h.offloadWrite(b, 1, token, 0, false, many[:64])
		require.Nil(t, res.sense, "64 destination ranges: %v", res.sense)
	})

	t.Run("REPORT ALL ROD TOKENS", func(t *testing.T) {
		h.t = t
		// A fresh nexus, so that its tokens are only those made here.
		c := winDial(t, st.addr, winHostA, "iqn.2025-01.io.odxtgt:win1", 0)
		t1, _ := h.offloadRead(c, 0, src[:1])
		t2, _ := h.offloadRead(c, 0, src[1:2])
		cdb := make([]byte, 16)
		cdb[0], cdb[1] = 0x84, 0x08
		binary.BigEndian.PutUint32(cdb[10:], 4096)
		r := winCommand(t, c, initiator.Request{CDB: cdb, ReadLen: 4096})
		require.Equal(t, scsi.StatusGood, r.Status, "%v", r.Sense)
		// ROD management tokens are the first 96 bytes of each token
		// (SPC-4 6.20.2), as FreeBSD CTL sends and ddptctl --all_toks
		// reads them.
		require.Len(t, r.DataIn, 8+2*96)
		assert.Equal(t, uint32(4+2*96), binary.BigEndian.Uint32(r.DataIn))
		assert.Equal(t, t1[:96], r.DataIn[8:8+96])
		assert.Equal(t, t2[:96], r.DataIn[8+96:])
	})

	t.Run("LUN reset after POPULATE TOKEN", func(t *testing.T) {
		h.t = t
		token, n := h.offloadRead(a, 0, src[:3])
		before := readExtents(t, a, 0, src[:3], bs)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := a.TaskMgmt(ctx, initiator.TMFLogicalUnitReset, 0, 0)
		require.NoError(t, err)
		require.Equal(t, initiator.TMFFunctionComplete, resp)
		r := winCommand(t, a, initiator.Request{CDB: make([]byte, 6)})
		require.Equal(t, scsi.StatusCheckCondition, r.Status, "the reset's unit attention")
		res := h.offloadWrite(b, 1, token, 0, false, sliceExtents(dst, 0, n))
		if res.sense != nil {
			requireTokenError(t, res, 0x2308)
			return
		}
		// SPC-4 lets the copy manager keep tokens over a logical unit
		// reset; odxtgt does (rod.Manager.Reset forgets lists, not
		// tokens), and the data must still be the point-in-time data.
		t.Logf("the token survived a LUN RESET of its source (not cancelled with 23h/08h)")
		assert.True(t, bytes.Equal(before, readExtents(t, b, 1, sliceExtents(dst, 0, n), bs)))
	})
}

// startTokensServer serves a target with two 16 MiB memory LUNs and the
// YAML tokens section given, a flow mapping.
func startTokensServer(t *testing.T, tokens string) string {
	t.Helper()
	dir := t.TempDir()
	yaml := `
backstores:
  - {name: bsrc, type: memory, size: 16MiB}
  - {name: bdst, type: memory, size: 16MiB}
targets:
  - iqn: iqn.2025-01.io.odxtgt:budget
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: bsrc}, {lun: 1, backstore: bdst}]
tokens: ` + tokens + `
`
	return startServe(t, &serveOptions{configPath: writeConfig(t, dir, yaml), logFormat: "text", logLevel: "info"}).addr
}

// TestServeODXWindowsTruncation gives each WRITE USING TOKEN a budget of
// a nanosecond (tokens.write_budget: 0.000000001), so that every one
// stops after its first chunk with COPY ABORTED, COPY TARGET DEVICE DATA
// UNDERRUN and the blocks written in INFORMATION, and checks that resuming
// from there, as Windows does, copies everything.
func TestServeODXWindowsTruncation(t *testing.T) {
	const bs = 512
	addr := startTokensServer(t, "{write_budget: 0.000000001}")
	a := winDial(t, addr, winHostA, "iqn.2025-01.io.odxtgt:budget", 0, 1)
	b := winDial(t, addr, winHostB, "iqn.2025-01.io.odxtgt:budget", 0, 1)
	h := newWinHost(t)
	lim := h.discover(a, 0)
	winWriteBlocks(t, a, 0, 0, randomBytes(16<<20), bs)
	src, dst := winSourceFile(), winDestinationFile(0)
	want := readExtents(t, a, 0, src, bs)

	h.copyFile(a, 0, src, b, 1, dst, lim, bs, nil)
	assert.Greater(t, h.truncations, 0, "the write budget truncated WRITE USING TOKEN")
	t.Logf("%d WRITE USING TOKEN truncations resumed", h.truncations)
	assert.True(t, bytes.Equal(want, readExtents(t, b, 1, dst, bs)))

	// A truncated command with DEL_TKN keeps the token, so the host can
	// go on with it.
	token, n := h.offloadRead(a, 0, src[:3])
	res := h.offloadWrite(b, 1, token, 0, true, sliceExtents(dst, 0, n))
	require.True(t, res.truncated, "%+v", res)
	res = h.offloadWrite(b, 1, token, res.written, false, sliceExtents(dst, res.written, n-res.written))
	require.Nil(t, res.sense, "%v", res.sense)
}

// TestServeMaxTokens: with tokens.max_tokens 2, a third POPULATE TOKEN
// while two tokens live ends with INSUFFICIENT RESOURCES; once one is
// deleted (DEL_TKN), a new one can be made.
func TestServeMaxTokens(t *testing.T) {
	addr := startTokensServer(t, "{max_tokens: 2}")
	a := winDial(t, addr, winHostA, "iqn.2025-01.io.odxtgt:budget", 0, 1)
	h := newWinHost(t)
	src := winSourceFile()
	first, n := h.offloadRead(a, 0, src[:1])
	h.offloadRead(a, 0, src[1:2])
	p := populateParams(0, src[2:3])
	r := winCommand(t, a, initiator.Request{LUN: 0, CDB: winTokenCDB(0x10, h.nextListID(), len(p)), DataOut: p})
	require.Equal(t, scsi.StatusCheckCondition, r.Status)
	assert.Equal(t, scsi.IllegalRequest, r.Sense.Key)
	assert.Equal(t, scsi.ASC(0x5503), r.Sense.Code, "INSUFFICIENT RESOURCES: %v", r.Sense)
	res := h.offloadWrite(a, 1, first, 0, true, sliceExtents(winDestinationFile(0), 0, n))
	require.Nil(t, res.sense, "%v", res.sense)
	h.offloadRead(a, 0, src[2:3])
}
