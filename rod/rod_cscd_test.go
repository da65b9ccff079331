package rod

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// xcopy runs the LID4 list p, sent to LU to, as the EXTENDED COPY
// handler does, the ROD token check before the list included.
func (r *odxRig) xcopy(to int, p *Params) (Progress, *scsi.Sense) {
	r.t.Helper()
	p.LID4 = true
	p = mustParse(r.t, p)
	if s := r.m.CheckRODs(r.nexus, p); s != nil {
		return Progress{}, s
	}
	listIDs++
	ctx, l, s := r.m.Begin(context.Background(), r.nexus, r.lus[to], listIDs, UsageHold, 0x01, false)
	require.Nil(r.t, s)
	s = r.m.Run(ctx, l, Request{Nexus: r.nexus, LU: r.lus[to], DSense: true}, p)
	status := scsi.StatusGood
	if s != nil {
		status = scsi.StatusCheckCondition
	}
	r.m.Finish(l, status, s)
	prog, ok := r.m.Status(r.nexus, r.lus[to], listIDs, true)
	require.True(r.t, ok)
	return prog, s
}

// lu is the identification CSCD descriptor of LU i of the rig.
func (r *odxRig) lu(i int) CSCD { return naaCSCD(odxSerial(i), 0) }

// odxSerial is the unit serial number of LU i of an odxRig: distinct in
// the 25 digits its NAA designator takes.
func odxSerial(i int) string { return fmt.Sprintf("%04x%028x", 0xabc0+i, 0) }

// users is how many commands hold the token raw names.
func (r *odxRig) users(raw [TokenLength]byte) int {
	tok, s := r.m.tok.verify(raw[:], r.m.now())
	require.Nil(r.t, s)
	defer r.m.tok.release(tok, false, false, r.m.now())
	return tok.users - 1
}

// TestXcopyFromTokenPointInTime: a ROD CSCD descriptor makes a ROD token
// an EXTENDED COPY source (SPC-4 6.4.5.9) whose blocks run from zero over
// the token's ranges in order, holding the data of the moment of POPULATE
// TOKEN; block to block, with byte offsets, across two ranges, and from
// the block device zero token.
func TestXcopyFromTokenPointInTime(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024, 1024)
	old := append(r.read(0, 100, 50), r.read(0, 300, 10)...)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(100, 50, 300, 10)})
	require.Nil(t, s)
	r.write(0, 90, bytes.Repeat([]byte{0xEE}, 300*512)) // over both ranges

	var zero [TokenLength]byte
	zero[0], zero[1], zero[2], zero[3] = 0xFF, 0xFF, 0x00, 0x01
	prog, s := r.xcopy(1, &Params{
		CSCDs: []CSCD{rodCSCD(tok, CSCDThisLU, false), r.lu(1), rodCSCD(zero, CSCDThisLU, false)},
		Segments: []Segment{
			b2b(0, 1, 60, 0, 500),                        // the whole ROD
			b2b(0, 1, 20, 40, 600),                       // across the two ranges
			b2bOffset(0, 1, 1000, 2, 100, 700, 12),       // byte offsets on both sides
			b2b(2, 1, 8, 1<<40, 800),                     // zeroes, from anywhere in the zero ROD
			b2b(0, CSCDThisLU, 10, 50, 900),              // to the receiving LU by FFFFh
			{Type: SegmentVerifyCSCD, Src: 0, Offset: 0}, // the ROD is there
		},
	})
	require.Nil(t, s, "%v", s)
	assert.Equal(t, uint32(6), prog.Segments)
	assert.Equal(t, old, r.read(1, 500, 60), "the whole ROD, as it was")
	assert.Equal(t, old[40*512:60*512], r.read(1, 600, 20), "the end of one range and the start of the next")
	got := r.read(1, 700, 3)
	assert.Equal(t, old[2*512+100:2*512+1100], got[12:1012], "bytes from an offset in the ROD")
	assert.Equal(t, make([]byte, 8*512), r.read(1, 800, 8), "the zero token reads as zeroes")
	assert.Equal(t, old[50*512:], r.read(1, 900, 10))
	assert.Zero(t, r.users(tok), "the copy let the token go")
}

// TestXcopyFromTokenDelTkn: DEL_TKN deletes the token once the copy
// completed (SPC-4 table 145), not when it failed.
func TestXcopyFromTokenDelTkn(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024, 1024)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 16)})
	require.Nil(t, s)
	_, s = r.xcopy(1, &Params{CSCDs: []CSCD{rodCSCD(tok, CSCDThisLU, true), r.lu(1)}, Segments: []Segment{b2b(0, 1, 32, 0, 0)}})
	wantSense(t, s, scsi.CopyAborted, scsi.ASCNoAdditionalSense)
	_, s = r.xcopy(1, &Params{CSCDs: []CSCD{rodCSCD(tok, CSCDThisLU, true), r.lu(1)}, Segments: []Segment{b2b(0, 1, 16, 0, 0)}})
	require.Nil(t, s, "the failed copy left the token")
	_, s = r.wut(r.nexus, 1, &WUTParams{Token: tok, Ranges: ranges(0, 16)})
	wantSense(t, s, scsi.IllegalRequest, ascTokenDeleted)
}

// TestXcopyFromTokenToItsSource writes a token's data back over its own
// source: a restore, which the buffered path does (the source store is
// the destination). A ROD producer of F800h (the token's own copy
// manager) is taken; F800h in a segment names nothing (SPC-4 table 148,
// note c).
func TestXcopyFromTokenToItsSource(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024, 1024)
	old := r.read(0, 0, 64)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 64)})
	require.Nil(t, s)
	r.write(0, 0, make([]byte, 64*512))
	_, s = r.xcopy(1, &Params{CSCDs: []CSCD{rodCSCD(tok, CSCDTokenLU, false), r.lu(0)}, Segments: []Segment{b2b(0, 1, 64, 0, 32)}})
	require.Nil(t, s, "%v", s)
	assert.Equal(t, old, r.read(0, 32, 64))

	_, s = r.xcopy(1, &Params{CSCDs: []CSCD{rodCSCD(tok, CSCDTokenLU, false)}, Segments: []Segment{b2b(0, CSCDTokenLU, 1, 0, 0)}})
	wantSense(t, s, scsi.CopyAborted, scsi.ASCCopyTargetDeviceNotReachable)
}

func TestXcopyFromTokenErrors(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024, 1024)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 64)})
	require.Nil(t, s)
	before := r.read(1, 0, 1024)
	list := func(c CSCD, segs ...Segment) *Params {
		return &Params{CSCDs: []CSCD{c, r.lu(1)}, Segments: segs}
	}

	forged := tok
	forged[200] ^= 1
	_, s = r.xcopy(1, list(rodCSCD(forged, CSCDThisLU, false), b2b(0, 1, 1, 0, 0)))
	wantSense(t, s, scsi.IllegalRequest, ascTokenCorrupt)

	short := tok
	short[7] = 0
	_, s = r.xcopy(1, list(rodCSCD(short, CSCDThisLU, false), b2b(0, 1, 1, 0, 0)))
	wantSense(t, s, scsi.IllegalRequest, ascTokenInvalidLength)

	// The ROD is read only.
	_, s = r.xcopy(1, list(rodCSCD(tok, CSCDThisLU, false), b2b(1, 0, 1, 0, 0)))
	requireSense(t, s, scsi.CopyAborted, scsi.ASCInvalidFieldInParameterList, segPtr(true, 6))

	// Past the end of the 64 blocks the token represents: nothing copied.
	_, s = r.xcopy(1, list(rodCSCD(tok, CSCDThisLU, false), b2b(0, 1, 10, 60, 0)))
	wantSense(t, s, scsi.CopyAborted, scsi.ASCNoAdditionalSense)
	require.NotNil(t, s.Forwarded)
	fwd, err := scsi.ParseSense(s.Forwarded.Sense)
	require.NoError(t, err)
	assert.Equal(t, scsi.ASCLBAOutOfRange, fwd.Code)

	// DISK BLOCK LENGTH must be the token's, or zero.
	c := rodCSCD(tok, CSCDThisLU, false)
	c.BlockLength = 4096
	_, s = r.xcopy(1, list(c, b2b(0, 1, 1, 0, 0)))
	requireSense(t, s, scsi.CopyAborted, scsi.ASCInvalidFieldInParameterList, segPtr(false, 48+29))

	assert.Equal(t, before, r.read(1, 0, 1024), "no failed copy wrote anything")
	assert.Zero(t, r.users(tok), "every refused copy let the token go")

	// A change-vulnerable token revoked by a write to its source.
	vuln, s := r.populate(0, &PopulateParams{RTV: true, RODType: RODTypePointInTimeChange, Ranges: ranges(100, 8)})
	require.Nil(t, s)
	r.write(0, 100, make([]byte, 512))
	_, s = r.xcopy(1, list(rodCSCD(vuln, CSCDThisLU, false), b2b(0, 1, 8, 0, 0)))
	wantSense(t, s, scsi.IllegalRequest, ascTokenRevoked)
}

// TestXcopyFromTokenScope: the token scope applies to ROD CSCD
// descriptors as to WRITE USING TOKEN.
func TestXcopyFromTokenScope(t *testing.T) {
	r := newODXRig(t, TokenConfig{Scope: ScopeInitiator}, 1024, 1024)
	other := scsi.NewNexus(scsi.Nexus{InitiatorName: "iqn.2025-01.test:b", InitiatorPort: "iqn.2025-01.test:b,i,0x1",
		TargetName: "iqn.2025-01.test:t", TargetPort: "iqn.2025-01.test:t,t,0x1"},
		map[uint64]*scsi.LU{0: r.lus[0], 1: r.lus[1]}, scsi.NewAbsentLU(r.lus[0].Table, quietLogger()))
	tok, s := r.populateAs(other, 0, &PopulateParams{Ranges: ranges(0, 8)})
	require.Nil(t, s)
	_, s = r.xcopy(1, &Params{CSCDs: []CSCD{rodCSCD(tok, CSCDThisLU, false), r.lu(1)}, Segments: []Segment{b2b(0, 1, 8, 0, 0)}})
	wantSense(t, s, scsi.IllegalRequest, ascTokenRemoteUsage)
}

// TestXcopyFromTokenFileStores: between file stores, a token's data goes
// by the kernel (clone or copy_file_range), piece by piece from the
// snapshot file and the live source, and is the data of the moment of
// POPULATE TOKEN.
func TestXcopyFromTokenFileStores(t *testing.T) {
	fs := openFiles(t, 2, 8*mib, 4096)
	dir := t.TempDir()
	r := newRig(t, Config{Tokens: TokenConfig{SnapshotDir: func(*scsi.LU) string { return dir }}},
		diskSpec{store: Protect(fs[0])}, diskSpec{store: Protect(fs[1])})
	lu := r.disks[0].lu
	ctx, l, s := r.m.Begin(context.Background(), r.nexus, lu, 1, UsageHold, 0x10, false)
	require.Nil(t, s)
	s = r.m.Populate(ctx, l, Request{Nexus: r.nexus, LU: lu}, &PopulateParams{Ranges: ranges(0, 512, 1024, 512)})
	r.m.Finish(l, scsi.StatusGood, s)
	require.Nil(t, s)
	prog, ok := r.m.Status(r.nexus, lu, 1, true)
	require.True(t, ok)
	old := append(append([]byte(nil), r.disks[0].model[:512*4096]...), r.disks[0].model[1024*4096:1536*4096]...)

	// Overwrite part of the first range (through the protected store,
	// under the extent lock, as a host WRITE would).
	unlock, err := lu.LockExtent(context.Background(), 100, 50, scsi.ExtentExclusive)
	require.NoError(t, err)
	require.NoError(t, lu.Store.WriteAt(bytes.Repeat([]byte{0xEE}, 50*4096), 100*4096, false))
	unlock()

	p := r.list(2, b2b(2, 1, 1024, 0, 10))
	p.LID4 = true
	p.CSCDs = append(p.CSCDs, rodCSCD(*prog.Token, CSCDThisLU, false))
	_, s = r.run(p)
	require.Nil(t, s, "%v", s)
	got := make([]byte, 1024*4096)
	require.NoError(t, r.disks[1].store.ReadAt(got, 10*4096))
	require.True(t, bytes.Equal(old, got), "the ROD's data, as it was")
	clone, copyRange, buffered := r.logs.lastPaths(t)
	assert.Equal(t, uint64(1024*4096), clone+copyRange, "offloaded to the kernel (clone %d, copy_file_range %d, buffered %d)", clone, copyRange, buffered)
}
