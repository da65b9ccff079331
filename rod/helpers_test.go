package rod

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// encodeParams is a test-only encoder of EXTENDED COPY parameter lists:
// the canonical layout of p (header, CSCD descriptors, segment
// descriptors, no inline data), written independently of ParseParams
// from the SPC-4 tables (6.4.3 for LID1, 6.5.3 for LID4, 6.4.5.6 for
// identification CSCD descriptors, 6.4.6.5, 6.4.6.6 and 6.4.6.10 for the
// segments). Offsets in p are ignored.
func encodeParams(p *Params) []byte {
	var cscds, segs, inline []byte
	for _, c := range p.CSCDs {
		if c.ROD != nil {
			cscds = append(cscds, encodeRODCSCD(c, len(inline))...)
			inline = append(inline, c.ROD.Token[:]...)
			continue
		}
		cscds = append(cscds, encodeCSCD(c)...)
	}
	for _, s := range p.Segments {
		segs = append(segs, encodeSegment(s)...)
	}
	flags := byte(p.Usage&3)<<3 | p.Priority&7
	var h []byte
	if p.LID4 {
		h = make([]byte, lid4HeaderLen)
		h[0] = 0x01
		h[1] = flags
		if p.Immed {
			h[15] = 0x01
		}
		binary.BigEndian.PutUint32(h[20:], p.ListID)
		binary.BigEndian.PutUint16(h[42:], uint16(len(cscds)))
		binary.BigEndian.PutUint16(h[44:], uint16(len(segs)))
		binary.BigEndian.PutUint16(h[46:], uint16(len(inline)))
	} else {
		h = make([]byte, lid1HeaderLen)
		h[0] = byte(p.ListID)
		h[1] = flags
		binary.BigEndian.PutUint16(h[2:], uint16(len(cscds)))
		binary.BigEndian.PutUint32(h[8:], uint32(len(segs)))
		binary.BigEndian.PutUint32(h[12:], uint32(len(inline)))
	}
	return append(append(append(h, cscds...), segs...), inline...)
}

// encodeRODCSCD encodes a ROD CSCD descriptor whose token is at byte at of
// the inline data.
func encodeRODCSCD(c CSCD, at int) []byte {
	d := make([]byte, cscdLen)
	d[0] = CSCDROD
	binary.BigEndian.PutUint16(d[rodCSCDProducer:], c.ROD.Producer)
	if c.ROD.DelTkn {
		d[rodCSCDFlags] = 0x01
	}
	binary.BigEndian.PutUint32(d[rodCSCDOffset+2:], uint32(at))
	d[28] = padBit(c.PAD)
	d[29], d[30], d[31] = byte(c.BlockLength>>16), byte(c.BlockLength>>8), byte(c.BlockLength)
	return d
}

// rodCSCD is a ROD CSCD descriptor for tok.
func rodCSCD(tok [TokenLength]byte, producer uint16, delTkn bool) CSCD {
	return CSCD{ROD: &RODCSCD{Producer: producer, DelTkn: delTkn, Token: tok}}
}

func encodeCSCD(c CSCD) []byte {
	d := make([]byte, cscdLen)
	d[0] = CSCDIdentification
	d[1] = c.LUIDType<<6 | c.DeviceType&0x1F
	if c.NUL {
		d[1] |= 0x20
	}
	d[4] = byte(c.Designator.CodeSet & 0x0F)
	d[5] = byte(c.Designator.Association&3)<<4 | byte(c.Designator.Type&0x0F)
	d[7] = byte(len(c.Designator.Value))
	copy(d[8:28], c.Designator.Value)
	if c.DeviceType == 0 {
		d[28] = padBit(c.PAD)
		d[29], d[30], d[31] = byte(c.BlockLength>>16), byte(c.BlockLength>>8), byte(c.BlockLength)
	}
	return d
}

// padBit is byte 28 of the block device type specific parameters with
// the PAD bit (bit 2) as pad says (SPC-4 6.4.5.3).
func padBit(pad bool) byte {
	if pad {
		return 0x04
	}
	return 0
}

func encodeSegment(s Segment) []byte {
	switch s.Type {
	case SegmentBlockToBlock:
		d := make([]byte, 28)
		d[0] = s.Type
		if s.DC {
			d[1] |= 0x02
		}
		if s.CAT {
			d[1] |= 0x01
		}
		binary.BigEndian.PutUint16(d[2:], 0x18)
		binary.BigEndian.PutUint16(d[4:], s.Src)
		binary.BigEndian.PutUint16(d[6:], s.Dst)
		binary.BigEndian.PutUint16(d[10:], uint16(s.Blocks))
		binary.BigEndian.PutUint64(d[12:], s.SrcLBA)
		binary.BigEndian.PutUint64(d[20:], s.DstLBA)
		return d
	case SegmentBlockToBlockOffset:
		d := make([]byte, 32)
		d[0] = s.Type
		if s.CAT {
			d[1] |= 0x01
		}
		binary.BigEndian.PutUint16(d[2:], 0x1C)
		binary.BigEndian.PutUint16(d[4:], s.Src)
		binary.BigEndian.PutUint16(d[6:], s.Dst)
		binary.BigEndian.PutUint32(d[8:], s.Bytes)
		binary.BigEndian.PutUint64(d[12:], s.SrcLBA)
		binary.BigEndian.PutUint64(d[20:], s.DstLBA)
		binary.BigEndian.PutUint16(d[28:], s.SrcByteOffset)
		binary.BigEndian.PutUint16(d[30:], s.DstByteOffset)
		return d
	case SegmentVerifyCSCD:
		d := make([]byte, 12)
		d[0] = s.Type
		binary.BigEndian.PutUint16(d[2:], 0x08)
		binary.BigEndian.PutUint16(d[4:], s.Src)
		if s.TUR {
			d[8] = 0x01
		}
		return d
	}
	panic(fmt.Sprintf("encodeSegment: type %02xh", s.Type))
}

// b2b is a block to block segment (02h).
func b2b(src, dst uint16, blocks uint32, srcLBA, dstLBA uint64) Segment {
	return Segment{Type: SegmentBlockToBlock, Src: src, Dst: dst, Blocks: blocks, SrcLBA: srcLBA, DstLBA: dstLBA}
}

// b2bOffset is a block to block segment with byte offsets (0Ah).
func b2bOffset(src, dst uint16, n uint32, srcLBA uint64, srcOff uint16, dstLBA uint64, dstOff uint16) Segment {
	return Segment{Type: SegmentBlockToBlockOffset, Src: src, Dst: dst, Bytes: n,
		SrcLBA: srcLBA, DstLBA: dstLBA, SrcByteOffset: srcOff, DstByteOffset: dstOff}
}

// naaCSCD is the identification CSCD descriptor naming a logical unit by
// the NAA designator of its serial.
func naaCSCD(serial string, blockLength uint32) CSCD {
	naa := scsi.NAADesignator(serial)
	return CSCD{
		Designator:  scsi.Designator{CodeSet: scsi.CodeSetBinary, Association: scsi.AssocLU, Type: scsi.DesignatorNAA, Value: naa[:]},
		BlockLength: blockLength,
	}
}

// mustParse encodes p and parses it back, so offsets are those of a real
// parameter list.
func mustParse(tb testing.TB, p *Params) *Params {
	tb.Helper()
	q, s := ParseParams(encodeParams(p), p.LID4)
	require.Nil(tb, s, "parse: %v", s)
	return q
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serials hands out distinct unit serial numbers, so every logical unit
// of the tests has its own NAA designator.
var serials atomic.Uint64

// disk is one logical unit of a rig and a byte-exact model of what its
// medium must hold.
type disk struct {
	lu     *scsi.LU
	store  backstore.Store
	serial string
	model  []byte
}

// rig is a copy manager and logical units reached from one I_T nexus.
type rig struct {
	t     testing.TB
	m     *Manager
	logs  *logBuffer
	table *scsi.Table
	disks []*disk
	nexus *scsi.Nexus
}

// diskSpec describes one logical unit of a rig.
type diskSpec struct {
	store    backstore.Store
	readOnly bool
	// serial overrides the generated unit serial number; "-" means none.
	serial string
}

// newRig builds logical units on the stores, each filled with a distinct
// pattern (which its model copies), served with sbc's commands and m as
// their events, all mapped to one nexus.
func newRig(tb testing.TB, cfg Config, specs ...diskSpec) *rig {
	tb.Helper()
	logs := &logBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	r := &rig{t: tb, m: NewManager(cfg), logs: logs}
	table, err := scsi.NewTable(hostCommands())
	require.NoError(tb, err)
	r.table = table
	lus := map[uint64]*scsi.LU{}
	for i, sp := range specs {
		serial := sp.serial
		switch serial {
		case "":
			serial = fmt.Sprintf("%016x", serials.Add(1)) // NAA takes the first 25 digits
		case "-":
			serial = ""
		}
		d := &disk{store: sp.store, serial: serial, model: pattern(int(sp.store.Size()), byte(i*37+1))}
		require.NoError(tb, sp.store.WriteAt(d.model, 0, false))
		d.lu = scsi.NewLU(scsi.LUConfig{
			Identity: scsi.Identity{Name: fmt.Sprintf("disk%d", i), Vendor: "ODXTGT", Product: "rod-test", Serial: serial},
			Store:    sp.store, ReadOnly: sp.readOnly, Table: table, Logger: quietLogger(), Events: r.m,
		})
		r.disks = append(r.disks, d)
		lus[uint64(i)] = d.lu
	}
	r.nexus = r.newNexus("iqn.2025-01.test:init,i,0x1", lus)
	return r
}

func (r *rig) newNexus(port string, lus map[uint64]*scsi.LU) *scsi.Nexus {
	return scsi.NewNexus(scsi.Nexus{InitiatorPort: port, TargetPort: "iqn.2025-01.test:tgt,t,0x1", TargetName: "iqn.2025-01.test:tgt"},
		lus, scsi.NewAbsentLU(r.table, quietLogger()))
}

// memDisk is a diskSpec for a fresh memory store.
func memDisk(blocks int64, bs int) diskSpec {
	return diskSpec{store: backstore.NewMemory(blocks*int64(bs), bs)}
}

// cscd is the CSCD descriptor naming disk i.
func (r *rig) cscd(i int) CSCD { return naaCSCD(r.disks[i].serial, 0) }

// list is a LID1 parameter list, held (LIST ID USAGE 00b), naming the
// rig's disks in order as CSCDs 0, 1, ...
func (r *rig) list(id uint32, segs ...Segment) *Params {
	p := &Params{ListID: id, Segments: segs}
	for i := range r.disks {
		p.CSCDs = append(p.CSCDs, r.cscd(i))
	}
	return p
}

// run sends list p to disk 0 and runs it to the end, as the EXTENDED COPY
// handler does, with the models updated by the caller.
func (r *rig) run(p *Params) (*List, *scsi.Sense) {
	return r.runOn(context.Background(), 0, p, false)
}

func (r *rig) runOn(ctx context.Context, to int, p *Params, dsense bool) (*List, *scsi.Sense) {
	r.t.Helper()
	p = mustParse(r.t, p)
	lu := r.disks[to].lu
	cctx, l, s := r.m.Begin(ctx, r.nexus, lu, p.ListID, p.Usage, 0, false)
	require.Nil(r.t, s, "begin: %v", s)
	s = r.m.Run(cctx, l, Request{Nexus: r.nexus, LU: lu, DSense: dsense}, p)
	status := scsi.StatusGood
	switch {
	case s == nil:
	case s.Key == scsi.AbortedCommand && cctx.Err() != nil:
		status = scsi.StatusTaskAborted
	default:
		status = scsi.StatusCheckCondition
	}
	r.m.Finish(l, status, s)
	return l, s
}

// copyModel applies a copy of n bytes to the models, as memmove does.
func (r *rig) copyModel(src int, srcOff int64, dst int, dstOff int64, n int64) {
	tmp := append([]byte(nil), r.disks[src].model[srcOff:srcOff+n]...)
	copy(r.disks[dst].model[dstOff:], tmp)
}

// verify compares every store with its model.
func (r *rig) verify() {
	r.t.Helper()
	for i, d := range r.disks {
		got := make([]byte, d.store.Size())
		require.NoError(r.t, d.store.ReadAt(got, 0))
		if !bytes.Equal(d.model, got) {
			at := 0
			for at < len(got) && got[at] == d.model[at] {
				at++
			}
			require.FailNow(r.t, "medium differs from the model", "disk %d: first difference at byte %d (block %d)", i, at, at/d.store.BlockSize())
		}
	}
}

// submit runs one command through the task set of lun, as a transport
// would.
func (r *rig) submit(n *scsi.Nexus, lun uint64, cdb, dataOut []byte) *scsi.Command {
	c := &scsi.Command{CDB: cdb, LUN: lun, Nexus: n, Attr: scsi.TaskSimple, DataOut: dataOut, ExpectedIn: scsi.MaxTransferBytes}
	done := make(chan struct{})
	scsi.Submit(c, func(*scsi.Command) { close(done) })
	<-done
	return c
}

// clearUA consumes the power-on unit attention of every disk for n.
func (r *rig) clearUA(n *scsi.Nexus) {
	for i := range r.disks {
		r.submit(n, uint64(i), []byte{0x00, 0, 0, 0, 0, 0}, nil)
	}
}

// pattern returns n bytes that differ from block to block and from seed
// to seed.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	return p
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// copies returns the "copy finished" and "copy failed" records logged so
// far.
func (b *logBuffer) copies(tb testing.TB) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(b.buf.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		require.NoError(tb, json.Unmarshal(line, &rec))
		if msg := rec["msg"]; msg == "copy finished" || msg == "copy failed" {
			out = append(out, rec)
		}
	}
	return out
}

// lastPaths returns the bytes each data path moved in the last copy.
func (b *logBuffer) lastPaths(tb testing.TB) (clone, copyRange, buffered uint64) {
	recs := b.copies(tb)
	require.NotEmpty(tb, recs)
	rec := recs[len(recs)-1]
	num := func(k string) uint64 { return uint64(rec[k].(float64)) }
	return num("clone_bytes"), num("copy_file_range_bytes"), num("buffered_bytes")
}

// requireSense checks the sense key, additional sense code and, when sks
// is not nil, the sense key specific bytes.
func requireSense(tb testing.TB, s *scsi.Sense, key scsi.SenseKey, code scsi.ASC, sks []byte) {
	tb.Helper()
	require.NotNil(tb, s, "want %v %v", key, code)
	require.Equal(tb, key, s.Key, "sense key: %v", s)
	require.Equal(tb, code, s.Code, "additional sense code: %v", s)
	if sks != nil {
		require.Equal(tb, sks, s.SenseKeySpecific[:], "sense key specific: %v", s)
	}
}

// segPtr is the segment pointer sense key specific field (SPC-4
// 4.5.2.4.6): SKSV, SD, and the field pointer.
func segPtr(inSegment bool, off int) []byte {
	b0 := byte(0x80)
	if inSegment {
		b0 |= 0x20
	}
	return []byte{b0, byte(off >> 8), byte(off)}
}

// fieldPtr is the field pointer sense key specific field of INVALID FIELD
// IN PARAMETER LIST (SPC-4 4.5.2.4.2): C/D clear.
func fieldPtr(off, bit int) []byte {
	b0 := byte(0x80)
	if bit >= 0 {
		b0 |= 0x08 | byte(bit)
	}
	return []byte{b0, byte(off >> 8), byte(off)}
}

// noSKS is an absent sense key specific field.
var noSKS = []byte{0, 0, 0}

// settleGoroutines waits for the goroutine count to fall back to at most
// base, failing after a while: nothing a test started may linger.
func settleGoroutines(tb testing.TB, base int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			require.FailNow(tb, "goroutines leaked", "%d > %d\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hostCommands is the command set the rig's host I/O uses: TEST UNIT
// READY, and READ (10) and WRITE (10) that hold their blocks in the extent
// lock as sbc's do. (rod cannot use sbc itself: sbc imports rod.)
func hostCommands() scsi.CommandSet {
	rw := func(write bool) scsi.Handler {
		return func(cmd *scsi.Command) error {
			lu := cmd.LU()
			bs := uint64(lu.Store.BlockSize())
			lba := uint64(binary.BigEndian.Uint32(cmd.CDB[2:]))
			n := uint64(binary.BigEndian.Uint16(cmd.CDB[7:]))
			if s := scsi.CheckRange(lba, n, lu.Blocks()); s != nil {
				return s
			}
			if !write {
				return lu.Store.ReadAt(cmd.AllocDataIn(int(n*bs)), int64(lba*bs))
			}
			p, err := cmd.TakeDataOut(int(n * bs))
			if err != nil {
				return err
			}
			unlock, err := lu.LockExtent(cmd.Context(), lba, n, scsi.ExtentExclusive)
			if err != nil {
				return scsi.TaskAborted()
			}
			defer unlock()
			return lu.Store.WriteAt(p, int64(lba*bs), false)
		}
	}
	ok := func(*scsi.Command) error { return nil }
	return scsi.CommandSet{Commands: []scsi.CommandDesc{
		{Name: "TEST UNIT READY", Opcode: 0x00, Usage: []byte{0xFF, 0, 0, 0, 0, 0}, Handler: ok},
		{Name: "READ (10)", Opcode: 0x28, Usage: []byte{0xFF, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, 0}, Handler: rw(false)},
		{Name: "WRITE (10)", Opcode: 0x2A, Usage: []byte{0xFF, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0xFF, 0xFF, 0}, Flags: scsi.FlagWritesMedium, Handler: rw(true)},
	}}
}

// padded returns c with its PAD bit set.
func padded(c CSCD) CSCD {
	c.PAD = true
	return c
}
