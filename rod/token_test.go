package rod

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// odxRig is a copy manager with protected memory logical units on one
// nexus, for the token commands.
type odxRig struct {
	t     *testing.T
	m     *Manager
	lus   []*scsi.LU
	nexus *scsi.Nexus
	clock atomic.Int64 // what m.now returns, in Unix nanoseconds
}

func (r *odxRig) advance(d time.Duration) { r.clock.Add(int64(d)) }

func newODXRig(t *testing.T, tc TokenConfig, blocks ...int64) *odxRig {
	r := &odxRig{t: t}
	r.clock.Store(time.Unix(1e9, 0).UnixNano())
	r.m = NewManager(Config{Logger: quietLogger(), Tokens: tc})
	r.m.now = func() time.Time { return time.Unix(0, r.clock.Load()) }
	table, err := scsi.NewTable(hostCommands())
	require.NoError(t, err)
	lus := map[uint64]*scsi.LU{}
	for i, n := range blocks {
		mem := backstore.NewMemory(n*512, 512)
		require.NoError(t, mem.WriteAt(pattern(int(n*512), byte(i+1)), 0, false))
		lu := scsi.NewLU(scsi.LUConfig{
			Identity: scsi.Identity{Name: fmt.Sprintf("lu%d", i), Vendor: "ODXTGT", Product: "odx", Serial: odxSerial(i)},
			Store:    Protect(mem), Table: table, Logger: quietLogger(), Events: r.m,
		})
		r.lus = append(r.lus, lu)
		lus[uint64(i)] = lu
	}
	r.nexus = scsi.NewNexus(scsi.Nexus{InitiatorName: "iqn.2025-01.test:a", InitiatorPort: "iqn.2025-01.test:a,i,0x1",
		TargetName: "iqn.2025-01.test:t", TargetPort: "iqn.2025-01.test:t,t,0x1"}, lus, scsi.NewAbsentLU(table, quietLogger()))
	return r
}

func (r *odxRig) read(lu int, lba, blocks uint64) []byte {
	p := make([]byte, blocks*512)
	require.NoError(r.t, r.lus[lu].Store.ReadAt(p, int64(lba*512)))
	return p
}

func (r *odxRig) write(lu int, lba uint64, p []byte) {
	unlock, err := r.lus[lu].LockExtent(context.Background(), lba, uint64(len(p)/512), scsi.ExtentExclusive)
	require.NoError(r.t, err)
	defer unlock()
	require.NoError(r.t, r.lus[lu].Store.WriteAt(p, int64(lba*512), false))
}

// populate makes a token of ranges of LU lu and returns it.
func (r *odxRig) populate(lu int, p *PopulateParams) ([TokenLength]byte, *scsi.Sense) {
	return r.populateAs(r.nexus, lu, p)
}

var listIDs uint32

func (r *odxRig) populateAs(n *scsi.Nexus, lu int, p *PopulateParams) ([TokenLength]byte, *scsi.Sense) {
	listIDs++
	ctx, l, s := r.m.Begin(context.Background(), n, r.lus[lu], listIDs, UsageHold, 0x10, false)
	require.Nil(r.t, s)
	s = r.m.Populate(ctx, l, Request{Nexus: n, LU: r.lus[lu]}, p)
	r.m.Finish(l, scsi.StatusGood, s)
	prog, ok := r.m.Status(n, r.lus[lu], listIDs, true)
	require.True(r.t, ok)
	if s != nil || prog.Token == nil {
		return [TokenLength]byte{}, s
	}
	return *prog.Token, nil
}

// wut writes a token to LU lu and returns the blocks written.
func (r *odxRig) wut(n *scsi.Nexus, lu int, p *WUTParams) (uint64, *scsi.Sense) {
	listIDs++
	ctx, l, s := r.m.Begin(context.Background(), n, r.lus[lu], listIDs, UsageHold, 0x11, false)
	require.Nil(r.t, s)
	s = r.m.WriteUsingToken(ctx, l, Request{Nexus: n, LU: r.lus[lu]}, p)
	r.m.Finish(l, scsi.StatusGood, s)
	prog, _ := r.m.Status(n, r.lus[lu], listIDs, true)
	return prog.Blocks, s
}

func ranges(rs ...uint64) []Range {
	var out []Range
	for i := 0; i < len(rs); i += 2 {
		out = append(out, Range{LBA: rs[i], Blocks: uint32(rs[i+1]), Offset: 16 + 16*len(out)})
	}
	return out
}

func wantSense(t *testing.T, s *scsi.Sense, key scsi.SenseKey, code scsi.ASC) {
	t.Helper()
	require.NotNil(t, s, "want %s %s", key, code)
	assert.Equal(t, key, s.Key, "%v", s)
	assert.Equal(t, code, s.Code, "%v", s)
}

// TestTokenPointInTime is PIT-1: WRITE USING TOKEN copies the data as it
// was when POPULATE TOKEN completed, whatever was written to the source
// since, for every ROD type that promises it; change vulnerable tokens are
// revoked instead, access upon reference ones see the new data.
func TestTokenPointInTime(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rodType uint32
		want    string // old, new or revoked
	}{
		{"default", 0, "old"},
		{"point in time", RODTypePointInTime, "old"},
		{"any point in time", RODTypePointInTimeAny, "old"},
		{"change vulnerable", RODTypePointInTimeChange, "revoked"},
		{"access upon reference", RODTypeAccessUponReference, "new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newODXRig(t, TokenConfig{}, 1024, 1024)
			old := append(r.read(0, 100, 50), r.read(0, 300, 10)...)
			tok, s := r.populate(0, &PopulateParams{RTV: tc.rodType != 0, RODType: tc.rodType, Ranges: ranges(100, 50, 300, 10)})
			require.Nil(t, s)
			fresh := bytes.Repeat([]byte{0xEE}, 60*512)
			r.write(0, 90, fresh[:40*512])  // overlaps the first range's start
			r.write(0, 305, fresh[:20*512]) // and the second range's end
			n, s := r.wut(r.nexus, 1, &WUTParams{Token: tok, Ranges: ranges(500, 60)})
			switch tc.want {
			case "revoked":
				wantSense(t, s, scsi.IllegalRequest, ascTokenRevoked)
				return
			case "new":
				require.Nil(t, s)
				want := append(r.read(0, 100, 50), r.read(0, 300, 10)...)
				assert.Equal(t, want, r.read(1, 500, 60))
				return
			}
			require.Nil(t, s)
			assert.Equal(t, uint64(60), n)
			assert.Equal(t, old, r.read(1, 500, 60))
		})
	}
}

// TestTokenOntoItsSource writes a token over its own source ranges
// (shifted): the result is the data of the moment of POPULATE TOKEN.
func TestTokenOntoItsSource(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 4096)
	old := r.read(0, 0, 2048)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 2048)})
	require.Nil(t, s)
	_, s = r.wut(r.nexus, 0, &WUTParams{Token: tok, Ranges: ranges(1000, 2048)})
	require.Nil(t, s)
	assert.Equal(t, old, r.read(0, 1000, 2048))
}

func TestTokenErrors(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024, 1024)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 64)})
	require.Nil(t, s)
	try := func(raw [TokenLength]byte, p WUTParams) *scsi.Sense {
		p.Token = raw
		if p.Ranges == nil {
			p.Ranges = ranges(0, 8)
		}
		_, s := r.wut(r.nexus, 1, &p)
		return s
	}
	bad := tok
	bad[300] ^= 0x40
	wantSense(t, try(bad, WUTParams{}), scsi.IllegalRequest, ascTokenCorrupt)
	bad = tok
	binary.BigEndian.PutUint16(bad[6:], 0x100)
	wantSense(t, try(bad, WUTParams{}), scsi.IllegalRequest, ascTokenInvalidLength)
	bad = tok
	binary.BigEndian.PutUint32(bad[:], 0x00800002)
	wantSense(t, try(bad, WUTParams{}), scsi.IllegalRequest, ascTokenUnsupportedType)
	wantSense(t, try([TokenLength]byte{}, WUTParams{}), scsi.IllegalRequest, ascTokenInvalidLength)

	// Asking for more than the token holds.
	n, s := r.wut(r.nexus, 1, &WUTParams{Token: tok, Ranges: ranges(0, 40, 100, 40)})
	wantSense(t, s, scsi.IllegalRequest, scsi.ASCCopyTargetDeviceDataUnderrun)
	assert.Equal(t, uint64(64), n)
	assert.Equal(t, uint64(64), s.Information, "INFORMATION counts the blocks written")
	wantSense(t, try(tok, WUTParams{OffsetIntoROD: 65}), scsi.IllegalRequest, scsi.ASCCopyTargetDeviceDataUnderrun)
	require.Nil(t, try(tok, WUTParams{OffsetIntoROD: 60, Ranges: ranges(0, 4)}))
	// Destination ranges past the end, or overlapping.
	wantSense(t, try(tok, WUTParams{Ranges: ranges(1020, 8)}), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
	wantSense(t, try(tok, WUTParams{Ranges: ranges(0, 8, 4, 8)}), scsi.IllegalRequest, scsi.ASCInvalidFieldInParameterList)

	// Deleted, then expired, then unknown once the tombstones forget.
	require.Nil(t, try(tok, WUTParams{DelTkn: true}))
	wantSense(t, try(tok, WUTParams{}), scsi.IllegalRequest, ascTokenDeleted)
	tok2, s := r.populate(0, &PopulateParams{Timeout: 5, Ranges: ranges(0, 64)})
	require.Nil(t, s)
	r.advance(6 * time.Second)
	wantSense(t, try(tok2, WUTParams{}), scsi.IllegalRequest, ascTokenExpired)
	r.m.tok.mu.Lock()
	for i := range maxTombstones {
		r.m.tok.gone[uint64(1<<62+i)] = tokenDeleted
		r.m.tok.goneFIFO = append(r.m.tok.goneFIFO, uint64(1<<62+i))
	}
	r.m.tok.goneFIFO = r.m.tok.goneFIFO[2:]
	delete(r.m.tok.gone, binary.BigEndian.Uint64(tok[tokOffID:]))
	r.m.tok.mu.Unlock()
	wantSense(t, try(tok, WUTParams{}), scsi.IllegalRequest, ascTokenUnknown)
}

func TestPopulateErrors(t *testing.T) {
	r := newODXRig(t, TokenConfig{MaxTimeout: 100 * time.Second}, 1024)
	_, s := r.populate(0, &PopulateParams{Ranges: ranges(1000, 30)})
	wantSense(t, s, scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
	_, s = r.populate(0, &PopulateParams{Ranges: ranges(0, 30, 20, 30)})
	wantSense(t, s, scsi.IllegalRequest, scsi.ASCInvalidFieldInParameterList)
	assert.Equal(t, [3]byte{0x80, 0, 32}, s.SenseKeySpecific, "field pointer at the overlapping range")
	_, s = r.populate(0, &PopulateParams{Timeout: 101, Ranges: ranges(0, 8)})
	wantSense(t, s, scsi.IllegalRequest, scsi.ASCInvalidFieldInParameterList)
	assert.Equal(t, [3]byte{0x80, 0, 4}, s.SenseKeySpecific)
	for _, bad := range []uint32{RODTypeBlockZero, 0x00800002, 0x12345678} {
		_, s = r.populate(0, &PopulateParams{RTV: true, RODType: bad, Ranges: ranges(0, 8)})
		wantSense(t, s, scsi.IllegalRequest, scsi.ASCInvalidFieldInParameterList)
		assert.Equal(t, [3]byte{0x80, 0, 8}, s.SenseKeySpecific)
	}
	r.m.tcfg.MaxTokens = 1
	_, s = r.populate(0, &PopulateParams{Ranges: ranges(0, 8)})
	require.Nil(t, s)
	_, s = r.populate(0, &PopulateParams{Ranges: ranges(0, 8)})
	wantSense(t, s, scsi.IllegalRequest, ascInsufficientResources)
}

func TestTokenScope(t *testing.T) {
	for _, tc := range []struct {
		scope  Scope
		target string
		init   string
		ok     bool
	}{
		{ScopeAny, "iqn.2025-01.test:other", "iqn.2025-01.test:b", true},
		{ScopeTarget, "iqn.2025-01.test:t", "iqn.2025-01.test:b", true},
		{ScopeTarget, "iqn.2025-01.test:other", "iqn.2025-01.test:a", false},
		{ScopeInitiator, "iqn.2025-01.test:other", "iqn.2025-01.test:a", true},
		{ScopeInitiator, "iqn.2025-01.test:t", "iqn.2025-01.test:b", false},
	} {
		r := newODXRig(t, TokenConfig{Scope: tc.scope}, 1024, 1024)
		tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 8)})
		require.Nil(t, s)
		other := scsi.NewNexus(scsi.Nexus{InitiatorName: tc.init, InitiatorPort: tc.init + ",i,0x2", TargetName: tc.target,
			TargetPort: tc.target + ",t,0x1"}, map[uint64]*scsi.LU{1: r.lus[1]}, nil)
		_, s = r.wut(other, 1, &WUTParams{Token: tok, Ranges: ranges(0, 8)})
		if tc.ok {
			assert.Nil(t, s, "%+v", tc)
		} else {
			wantSense(t, s, scsi.IllegalRequest, ascTokenRemoteUsage)
		}
	}
}

func TestZeroToken(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024)
	var zero [TokenLength]byte
	binary.BigEndian.PutUint32(zero[:], RODTypeBlockZero)
	before := r.read(0, 0, 1024)
	n, s := r.wut(r.nexus, 0, &WUTParams{Token: zero, Ranges: ranges(10, 20, 500, 100)})
	require.Nil(t, s)
	assert.Equal(t, uint64(120), n)
	after := r.read(0, 0, 1024)
	assert.Equal(t, make([]byte, 20*512), after[10*512:30*512])
	assert.Equal(t, make([]byte, 100*512), after[500*512:600*512])
	assert.Equal(t, before[:10*512], after[:10*512], "nothing outside the ranges changes")
	assert.Equal(t, before[30*512:500*512], after[30*512:500*512])
	assert.Equal(t, before[600*512:], after[600*512:])
}

// TestWriteUsingTokenBudget stops a WRITE USING TOKEN that runs out of
// time at a block boundary with COPY ABORTED, COPY TARGET DEVICE DATA
// UNDERRUN and the blocks written, and the host goes on from there.
func TestWriteUsingTokenBudget(t *testing.T) {
	r := newODXRig(t, TokenConfig{WriteBudget: time.Nanosecond}, 40960, 40960)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 40960)})
	require.Nil(t, s)
	var done uint64
	for rounds := 0; done < 40960; rounds++ {
		require.Less(t, rounds, 100)
		n, s := r.wut(r.nexus, 1, &WUTParams{Token: tok, OffsetIntoROD: done, Ranges: ranges(done, 40960-done)})
		done += n
		if s == nil {
			break
		}
		wantSense(t, s, scsi.CopyAborted, scsi.ASCCopyTargetDeviceDataUnderrun)
		assert.Equal(t, n, s.Information)
		assert.NotZero(t, n)
	}
	assert.Equal(t, uint64(40960), done)
	assert.Equal(t, r.read(0, 0, 40960), r.read(1, 0, 40960))
}

// TestTokensExpireWithoutCommands checks the reaper frees the snapshot of
// an unused token even when no command comes.
func TestTokensExpireWithoutCommands(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024)
	_, s := r.populate(0, &PopulateParams{Timeout: 1, Ranges: ranges(0, 64)})
	require.Nil(t, s)
	assert.Equal(t, 1, r.m.tok.count())
	r.advance(time.Hour)
	require.Eventually(t, func() bool { return r.m.tok.count() == 0 }, 10*time.Second, 10*time.Millisecond)
	r.m.tok.mu.Lock()
	assert.False(t, r.m.tok.reaping, "the reaper stops with the last token")
	r.m.tok.mu.Unlock()
}

// TestManagerClose aborts a background copy, waits for it and ends the
// tokens, freeing their snapshots.
func TestManagerClose(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024)
	_, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 64)})
	require.Nil(t, s)
	ctx, l, s := r.m.Begin(context.Background(), r.nexus, r.lus[0], 99, UsageHold, 0x01, true)
	require.Nil(t, s)
	go func() {
		<-ctx.Done()
		r.m.Finish(l, scsi.StatusTaskAborted, nil)
	}()
	r.m.Close()
	assert.Zero(t, r.m.Running())
	assert.Zero(t, r.m.tok.count())
	assert.Empty(t, *r.lus[0].Store.(*Protected).snaps.Load())
}

// TestTokenLayout checks the generic ROD token layout (SPC-4 table 112):
// the creator logical unit as an identification CSCD descriptor, the bytes
// represented, 32 reserved bytes, the device type specific data at byte 96,
// the target device descriptor (SCSI name string, association 10b) at 128,
// and unpredictable bytes after it.
func TestTokenLayout(t *testing.T) {
	r := newODXRig(t, TokenConfig{DeviceData: func(*scsi.LU) []byte { return bytes.Repeat([]byte{0xD7}, 24) }}, 1024)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 100)})
	require.Nil(t, s)
	other, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 100)})
	require.Nil(t, s)
	assert.Equal(t, RODTypePointInTime, binary.BigEndian.Uint32(tok[0:]))
	assert.Equal(t, uint16(0x01F8), binary.BigEndian.Uint16(tok[6:]))
	assert.Equal(t, byte(CSCDIdentification), tok[16])
	assert.Equal(t, byte(scsi.DesignatorNAA), tok[21]&0x0F, "the creator's NAA designator")
	assert.Equal(t, uint64(0), binary.BigEndian.Uint64(tok[48:]))
	assert.Equal(t, uint64(100*512), binary.BigEndian.Uint64(tok[56:]), "NUMBER OF BYTES REPRESENTED")
	assert.Equal(t, make([]byte, 32), tok[64:96], "reserved")
	assert.Equal(t, bytes.Repeat([]byte{0xD7}, 24), tok[96:120], "device type specific data")
	assert.Equal(t, byte(0x80|0x20|0x08), tok[129], "PIV, association 10b, SCSI name string")
	name := "iqn.2025-01.test:t"
	assert.Equal(t, name, string(tok[132:132+len(name)]))
	assert.NotEqual(t, tok[tokOffNonce:tokOffMAC], other[tokOffNonce:tokOffMAC], "extended ROD token data is random")
}

// TestTokenSurvivesLUReset: a logical unit reset ends copies and list
// state, not ROD tokens (SPC-4 5.17.6.7).
func TestTokenSurvivesLUReset(t *testing.T) {
	r := newODXRig(t, TokenConfig{}, 1024, 1024)
	old := r.read(0, 0, 16)
	tok, s := r.populate(0, &PopulateParams{Ranges: ranges(0, 16)})
	require.Nil(t, s)
	r.lus[0].Reset(scsi.ASCBusDeviceResetFunctionOccurred)
	r.lus[1].Reset(scsi.ASCBusDeviceResetFunctionOccurred)
	_, s = r.wut(r.nexus, 1, &WUTParams{Token: tok, Ranges: ranges(0, 16)})
	require.Nil(t, s, "%v", s)
	assert.Equal(t, old, r.read(1, 0, 16))
}
