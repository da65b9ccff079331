package sbc_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

var modelSeed = flag.Uint64("sbc.seed", 0, "seed of TestReferenceModel (0 picks one)")

// TestReferenceModel runs one random sequence of READ, WRITE, VERIFY, WRITE
// AND VERIFY, SYNCHRONIZE CACHE, PRE-FETCH, COMPARE AND WRITE, WRITE SAME
// (with and without UNMAP and NDOB), UNMAP and ORWRITE commands, in every CDB size
// and with out-of-range LBAs and wrong data-out lengths mixed in, against
// an LU on the memory store and an LU on a file store. Both must answer
// every command identically, and as a plain byte-slice model of the medium
// predicts; at the end both stores must hold the model's bytes.
func TestReferenceModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -sbc.seed=%d)", seed, seed)
	for _, cfg := range []struct {
		blockSize int
		blocks    int64
		wce       bool
	}{
		{512, 1024, true},
		{4096, 256, false},
	} {
		t.Run(fmt.Sprintf("bs%d", cfg.blockSize), func(t *testing.T) {
			size := cfg.blocks * int64(cfg.blockSize)
			mem := backstore.NewMemory(size, cfg.blockSize)
			file, err := backstore.OpenFile(filepath.Join(t.TempDir(), "lu.img"), size, cfg.blockSize, backstore.FileOptions{})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, file.Close()) })
			onMem := newBench(t, mem, benchConfig{writeCache: cfg.wce})
			onFile := newBench(t, file, benchConfig{writeCache: cfg.wce})

			g := &opGenerator{
				rng:    rand.New(rand.NewPCG(seed, uint64(cfg.blockSize))),
				bs:     cfg.blockSize,
				blocks: uint64(cfg.blocks),
				medium: make([]byte, size),
			}
			outcomes := map[string]int{}
			for i := range 400 {
				o := g.next()
				a := onMem.run(o.cdb, o.dataOut)
				b := onFile.run(o.cdb, o.dataOut)
				where := fmt.Sprintf("op %d (%s), CDB % x", i, o.what, o.cdb)
				require.Equal(t, a.Status, b.Status, where)
				require.Equal(t, a.Sense, b.Sense, where)
				require.Equal(t, a.DataIn, b.DataIn, where)
				require.Equal(t, a.DataOutLength, b.DataOutLength, where)
				g.check(t, where, o, a)
				outcome := a.Status.String()
				if s, err := scsi.ParseSense(a.Sense); err == nil {
					outcome = s.Code.String()
				}
				outcomes[outcome]++
			}
			t.Logf("outcomes: %v", outcomes)
			require.Equal(t, g.medium, contents(t, mem), "memory store against the model")
			require.Equal(t, g.medium, contents(t, file), "file store against the model")
		})
	}
}

type opKind int

const (
	kindRead opKind = iota
	kindWrite
	kindVerify
	kindWriteAndVerify
	kindSync
	kindPrefetch
	kindCompareAndWrite
	kindWriteSame
	kindUnmap
	kindOrWrite
)

// op is one generated command and what the model expects of it.
type op struct {
	what    string
	kind    opKind
	cdb     []byte
	dataOut []byte
	lba, n  uint64 // the extent in blocks
	bytchk  byte
	// dataOutOK: the command accepts the data-out the transport carried;
	// payload is what it uses and effN the blocks it then acts on (fewer
	// than n when whole blocks are missing, see TakeDataOutBlocks).
	dataOutOK bool
	payload   []byte
	effN      uint64
	// refusal, if set, is the ILLEGAL REQUEST code the command must end
	// with once its range is found good; fieldFirst says the refusal comes
	// before the range check (a CDB field).
	refusal    scsi.ASC
	fieldFirst bool
	ranges     [][2]uint64 // UNMAP: the descriptors
}

// opGenerator makes random commands and keeps the model of the medium.
type opGenerator struct {
	rng    *rand.Rand
	bs     int
	blocks uint64
	medium []byte
}

func (g *opGenerator) extent(maxBlocks uint64) (lba, n uint64) {
	switch g.rng.IntN(10) {
	case 0: // near or past the end
		lba = g.blocks - uint64(g.rng.IntN(4)) + uint64(g.rng.IntN(4))
	default:
		lba = g.rng.Uint64N(g.blocks)
	}
	n = g.rng.Uint64N(min(maxBlocks, 40) + 1)
	return lba, n
}

func (g *opGenerator) randomData(n int) []byte {
	p := make([]byte, n)
	switch g.rng.IntN(3) {
	case 0:
		for i := range p {
			p[i] = byte(g.rng.Uint32())
		}
	case 1:
		for i := range p {
			p[i] = byte(g.rng.IntN(3)) // long runs of equal bytes
		}
	}
	return p
}

// dataOut returns want bytes, or sometimes another length, and whether the
// length is right.
func (g *opGenerator) dataOut(want int) ([]byte, bool) {
	n := want
	if g.rng.IntN(20) == 0 {
		n = max(0, want+g.bs*(g.rng.IntN(3)-1)+g.rng.IntN(2))
	}
	return g.randomData(n), n == want
}

// settle works out what the command makes of o.dataOut when the CDB calls
// for want bytes: more is cut to want; less is refused, unless wholeBlocks
// and it is a whole number of blocks, which are then all the command acts
// on.
func (g *opGenerator) settle(o *op, want int, wholeBlocks bool) {
	o.effN = o.n
	switch c := len(o.dataOut); {
	case c >= want:
		o.dataOutOK, o.payload = true, o.dataOut[:want]
	case wholeBlocks && c%g.bs == 0:
		o.dataOutOK, o.payload, o.effN = true, o.dataOut, uint64(c/g.bs)
	default:
		o.dataOutOK = false
	}
}

func (g *opGenerator) modelRange(lba, n uint64) []byte {
	return g.medium[lba*uint64(g.bs) : (lba+n)*uint64(g.bs)]
}

func (g *opGenerator) inRange(lba, n uint64) bool { return lba <= g.blocks && n <= g.blocks-lba }

func (g *opGenerator) next() op {
	size := []int{6, 10, 12, 16}[g.rng.IntN(4)]
	var flags byte
	if g.rng.IntN(4) == 0 {
		flags |= fua
	}
	if g.rng.IntN(4) == 0 {
		flags |= 0x10 // DPO
	}
	build := func(ops [4]byte, flags byte, lba, n uint64) []byte {
		switch size {
		case 6:
			return rw6CDB(ops[0], uint32(lba), byte(n))
		case 10:
			return cdb10(ops[1], flags, uint32(lba), uint16(n))
		case 12:
			return cdb12(ops[2], flags, uint32(lba), uint32(n))
		}
		return cdb16(ops[3], flags, lba, uint32(n))
	}
	switch k := g.rng.IntN(26); {
	case k >= 20:
		return g.nextThin(k - 20)
	case k < 7:
		o := op{kind: kindRead, what: fmt.Sprintf("READ (%d)", size)}
		o.lba, o.n = g.extent(0xFFFF)
		if size == 6 && o.n == 0 {
			o.n = 256
		}
		o.cdb = build([4]byte{opRead6, opRead10, opRead12, opRead16}, flags, o.lba, o.n)
		o.dataOutOK = true
		return o
	case k < 14:
		o := op{kind: kindWrite, what: fmt.Sprintf("WRITE (%d)", size)}
		o.lba, o.n = g.extent(0xFFFF)
		if size == 6 && o.n == 0 {
			o.n = 256
		}
		o.cdb = build([4]byte{opWrite6, opWrite10, opWrite12, opWrite16}, flags, o.lba, o.n)
		o.dataOut, _ = g.dataOut(int(o.n) * g.bs)
		g.settle(&o, int(o.n)*g.bs, true)
		return o
	case k < 17:
		if size == 6 {
			size = 10
		}
		o := op{kind: kindVerify, bytchk: []byte{0, 1, 3}[g.rng.IntN(3)]}
		o.what = fmt.Sprintf("VERIFY (%d) BYTCHK %02b", size, o.bytchk)
		o.lba, o.n = g.extent(0xFFFF)
		o.cdb = build([4]byte{0, opVerify10, opVerify12, opVerify16}, flags&0x10|o.bytchk<<1, o.lba, o.n)
		o.dataOutOK = true
		switch {
		case o.bytchk == 1 && g.inRange(o.lba, o.n):
			o.dataOut = bytes.Clone(g.modelRange(o.lba, o.n))
			if len(o.dataOut) > 0 && g.rng.IntN(2) == 0 {
				o.dataOut[g.rng.IntN(len(o.dataOut))] ^= 1 << g.rng.IntN(8)
			}
		case o.bytchk == 1:
			o.dataOut, _ = g.dataOut(int(o.n) * g.bs)
		case o.bytchk == 3 && o.lba < g.blocks && g.rng.IntN(2) == 0:
			o.dataOut = bytes.Clone(g.modelRange(o.lba, 1))
		case o.bytchk == 3:
			o.dataOut, _ = g.dataOut(g.bs)
		}
		switch o.bytchk {
		case 1:
			g.settle(&o, int(o.n)*g.bs, true)
		case 3:
			g.settle(&o, g.bs, false)
		default:
			g.settle(&o, 0, false)
		}
		return o
	case k < 18:
		if size == 6 {
			size = 16
		}
		o := op{kind: kindWriteAndVerify, bytchk: byte(g.rng.IntN(2))}
		o.what = fmt.Sprintf("WRITE AND VERIFY (%d) BYTCHK %02b", size, o.bytchk)
		o.lba, o.n = g.extent(0xFFFF)
		o.cdb = build([4]byte{0, opWriteAndVerify10, opWriteAndVerify12, opWriteAndVerify16}, flags&0x10|o.bytchk<<1, o.lba, o.n)
		o.dataOut, _ = g.dataOut(int(o.n) * g.bs)
		g.settle(&o, int(o.n)*g.bs, true)
		return o
	case k < 19:
		o := op{kind: kindSync, what: "SYNCHRONIZE CACHE", dataOutOK: true}
		o.lba, o.n = g.extent(0xFFFF)
		if size <= 10 {
			o.cdb = cdb10(opSyncCache10, 0x02*byte(g.rng.IntN(2)), uint32(o.lba), uint16(o.n))
		} else {
			o.cdb = cdb16(opSyncCache16, 0, o.lba, uint32(o.n))
		}
		return o
	default:
		o := op{kind: kindPrefetch, what: "PRE-FETCH", dataOutOK: true}
		o.lba, o.n = g.extent(0xFFFF)
		if size <= 10 {
			o.cdb = cdb10(opPrefetch10, 0, uint32(o.lba), uint16(o.n))
		} else {
			o.cdb = cdb16(opPrefetch16, 0x02, o.lba, uint32(o.n))
		}
		return o
	}
}

// nextThin makes one of the commands that write other than as WRITE does.
func (g *opGenerator) nextThin(k int) op {
	switch k {
	case 0:
		o := op{kind: kindCompareAndWrite, what: "COMPARE AND WRITE"}
		o.lba, _ = g.extent(0)
		o.n = g.rng.Uint64N(5)
		o.cdb = compareAndWriteCDB(byte(g.rng.IntN(2))*fua, o.lba, byte(o.n))
		n := int(o.n) * g.bs
		if g.inRange(o.lba, o.n) {
			o.dataOut = append(bytes.Clone(g.modelRange(o.lba, o.n)), g.randomData(n)...)
			if n > 0 && g.rng.IntN(3) == 0 {
				o.dataOut[g.rng.IntN(n)] ^= 1 << g.rng.IntN(8)
			}
		} else {
			o.dataOut = g.randomData(2 * n)
		}
		switch g.rng.IntN(12) {
		case 0:
			o.dataOut = o.dataOut[:max(0, len(o.dataOut)-g.bs)]
		case 1:
			o.dataOut = append(o.dataOut, make([]byte, g.bs)...)
		}
		o.dataOutOK, o.payload = true, o.dataOut
		switch {
		case len(o.dataOut) < 2*n:
			o.refusal = scsi.ASCInvalidFieldInCommandIU
		case len(o.dataOut) > 2*n:
			o.refusal = scsi.ASCInvalidFieldInCDB
		}
		return o
	case 1, 2:
		o := op{kind: kindWriteSame}
		o.lba, o.n = g.extent(0xFFFF)
		var flags byte
		if g.rng.IntN(2) == 0 {
			flags |= wsUnmapBit
		}
		if k == 1 {
			o.what = "WRITE SAME (10)"
			o.cdb = cdb10(opWriteSame10, flags, uint32(o.lba), uint16(o.n))
		} else {
			if g.rng.IntN(3) == 0 {
				flags |= wsNDOBBit
			}
			o.what = "WRITE SAME (16)"
			o.cdb = writeSame16CDB(flags, o.lba, uint32(o.n))
		}
		want := g.bs
		if flags&wsNDOBBit != 0 {
			want = 0
		}
		if g.rng.IntN(2) == 0 {
			o.dataOut = make([]byte, want)
		} else {
			o.dataOut = g.randomData(want)
		}
		if g.rng.IntN(15) == 0 {
			o.dataOut = g.randomData(max(0, want+g.bs*(g.rng.IntN(3)-1)))
		}
		o.dataOutOK, o.payload = true, o.dataOut
		if len(o.dataOut) != want {
			o.refusal = scsi.ASCInvalidFieldInCommandIU
		}
		if o.n == 0 { // WSNZ clear: through the last block
			switch {
			case o.lba >= g.blocks:
				o.refusal, o.fieldFirst = scsi.ASCLBAOutOfRange, true
			case g.blocks-o.lba > 0xFFFF: // MAXIMUM WRITE SAME LENGTH
				o.refusal, o.fieldFirst = scsi.ASCInvalidFieldInCDB, true
			default:
				o.n = g.blocks - o.lba
			}
		}
		return o
	case 3:
		o := op{kind: kindUnmap, what: "UNMAP", dataOutOK: true}
		var flat []uint64
		for range g.rng.IntN(4) {
			lba, n := g.extent(0xFFFF)
			flat = append(flat, lba, n)
			o.ranges = append(o.ranges, [2]uint64{lba, n})
			if !g.inRange(lba, n) {
				o.lba, o.n = lba, n // the model's range check then fails
			}
		}
		o.cdb, o.dataOut = unmapCDB(flat...)
		return o
	default:
		o := op{kind: kindOrWrite, what: "ORWRITE (16)"}
		o.lba, o.n = g.extent(0xFFFF)
		o.cdb = cdb16(opOrWrite16, byte(g.rng.IntN(2))*fua, o.lba, uint32(o.n))
		o.dataOut, _ = g.dataOut(int(o.n) * g.bs)
		g.settle(&o, int(o.n)*g.bs, true)
		return o
	}
}

// check compares a command's outcome with the model's prediction and
// applies a successful write to the model.
func (g *opGenerator) check(t *testing.T, where string, o op, c *scsi.Command) {
	t.Helper()
	switch {
	case o.refusal != 0 && o.fieldFirst:
		requireSense(t, c, scsi.IllegalRequest, o.refusal)
		return
	case !g.inRange(o.lba, o.n):
		requireSense(t, c, scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
		return
	case !o.dataOutOK:
		requireSense(t, c, scsi.IllegalRequest, scsi.ASCInvalidFieldInCommandIU)
		return
	case o.refusal != 0:
		requireSense(t, c, scsi.IllegalRequest, o.refusal)
		return
	}
	switch o.kind {
	case kindCompareAndWrite:
		n := int(o.n) * g.bs
		if first := firstDiff(g.modelRange(o.lba, o.n), o.payload[:n]); first >= 0 {
			s := requireSense(t, c, scsi.Miscompare, scsi.ASCMiscompareDuringVerify)
			require.Equal(t, uint64(first), s.Information, where)
			return
		}
		requireGood(t, c)
		copy(g.modelRange(o.lba, o.n), o.payload[n:])
		return
	case kindWriteSame:
		requireGood(t, c)
		block := make([]byte, g.bs)
		if o.cdb[1]&wsUnmapBit == 0 { // UNMAP deallocates: zeroes
			copy(block, o.payload)
		}
		for i := range o.n {
			copy(g.modelRange(o.lba+i, 1), block)
		}
		return
	case kindUnmap:
		requireGood(t, c)
		for _, r := range o.ranges {
			clear(g.modelRange(r[0], r[1]))
		}
		return
	case kindOrWrite:
		requireGood(t, c)
		m := g.modelRange(o.lba, o.effN)
		for i := range m {
			m[i] |= o.payload[i]
		}
		return
	case kindRead:
		requireGood(t, c)
		requireBytes(t, g.modelRange(o.lba, o.n), c.DataIn, where)
	case kindWrite, kindWriteAndVerify:
		requireGood(t, c)
		copy(g.modelRange(o.lba, o.effN), o.payload)
	case kindVerify:
		var expected []byte
		n := o.n
		switch o.bytchk {
		case 1:
			expected, n = o.payload, o.effN
		case 3:
			expected = bytes.Repeat(o.payload, int(o.n))
		}
		if first := firstDiff(g.modelRange(o.lba, n), expected); expected != nil && first >= 0 {
			s := requireSense(t, c, scsi.Miscompare, scsi.ASCMiscompareDuringVerify)
			require.Equal(t, uint64(first), s.Information, where)
			return
		}
		requireGood(t, c)
	default:
		requireGood(t, c)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
