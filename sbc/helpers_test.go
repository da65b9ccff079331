package sbc_test

import (
	"encoding/binary"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/sbc"
	"github.com/odxtgt/odxtgt/scsi"
	"github.com/odxtgt/odxtgt/spc"
)

// Operation codes used by the tests, spelled out independently of the
// package under test.
const (
	opRead6            = 0x08
	opWrite6           = 0x0A
	opStartStopUnit    = 0x1B
	opReadCapacity10   = 0x25
	opRead10           = 0x28
	opWrite10          = 0x2A
	opWriteAndVerify10 = 0x2E
	opVerify10         = 0x2F
	opPrefetch10       = 0x34
	opSyncCache10      = 0x35
	opRead16           = 0x88
	opWrite16          = 0x8A
	opWriteAndVerify16 = 0x8E
	opVerify16         = 0x8F
	opPrefetch16       = 0x90
	opSyncCache16      = 0x91
	opServiceActionIn  = 0x9E
	opRead12           = 0xA8
	opWrite12          = 0xAA
	opWriteAndVerify12 = 0xAE
	opVerify12         = 0xAF
)

// bench is one logical unit served by the sbc command table, reached
// through scsi.Submit from one I_T nexus.
type bench struct {
	lu    *scsi.LU
	nexus *scsi.Nexus
	store backstore.Store
}

type benchConfig struct {
	writeCache bool
	readOnly   bool
	// spc adds the primary commands (INQUIRY for the VPD pages, REPORT
	// SUPPORTED OPERATION CODES) to the table.
	spc bool
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newBench serves store and consumes the power-on unit attention, so the
// next command runs.
func newBench(tb testing.TB, store backstore.Store, cfg benchConfig) *bench {
	tb.Helper()
	sets := []scsi.CommandSet{sbc.Commands(sbc.Options{})}
	if cfg.spc {
		sets = append(sets, spc.Commands(spc.Options{}))
	}
	table, err := scsi.NewTable(sets...)
	require.NoError(tb, err)
	log := quietLogger()
	lu := scsi.NewLU(scsi.LUConfig{
		Identity:   scsi.Identity{Name: "sbc-test"},
		Store:      store,
		ReadOnly:   cfg.readOnly,
		WriteCache: cfg.writeCache,
		Table:      table,
		Logger:     log,
	})
	nexus := scsi.NewNexus(scsi.Nexus{
		InitiatorPort: "iqn.2025-01.test:init,i,0x1",
		TargetPort:    "iqn.2025-01.test:tgt,t,0x1",
	}, map[uint64]*scsi.LU{0: lu}, scsi.NewAbsentLU(table, log))
	b := &bench{lu: lu, nexus: nexus, store: store}
	c := b.run(readCapacity10CDB(0, false), nil)
	require.Equal(tb, scsi.StatusCheckCondition, c.Status)
	s, err := scsi.ParseSense(c.Sense)
	require.NoError(tb, err)
	require.Equal(tb, scsi.ASCPowerOnResetOrBusDeviceReset, s.Code)
	return b
}

// newMemoryBench serves a fresh memory store of the given geometry.
func newMemoryBench(tb testing.TB, blocks int64, blockSize int, cfg benchConfig) (*bench, *backstore.Memory) {
	m := backstore.NewMemory(blocks*int64(blockSize), blockSize)
	return newBench(tb, m, cfg), m
}

// run submits one command and waits for it.
func (b *bench) run(cdb, dataOut []byte) *scsi.Command {
	c := &scsi.Command{
		CDB:        cdb,
		Nexus:      b.nexus,
		Attr:       scsi.TaskSimple,
		DataOut:    dataOut,
		ExpectedIn: scsi.MaxTransferBytes,
	}
	done := make(chan struct{})
	scsi.Submit(c, func(*scsi.Command) { close(done) })
	<-done
	return c
}

// setMode changes the LU's mode state as MODE SELECT would.
func (b *bench) setMode(m scsi.ModeState) {
	b.lu.UpdateMode(b.nexus, func(s *scsi.ModeState) { *s = m })
}

// contents reads the whole store.
func contents(tb testing.TB, s backstore.Store) []byte {
	tb.Helper()
	p := make([]byte, s.Size())
	require.NoError(tb, s.ReadAt(p, 0))
	return p
}

// requireBytes is require.Equal for byte slices that treats nil and empty
// as equal.
func requireBytes(tb testing.TB, want, got []byte, msgAndArgs ...any) {
	tb.Helper()
	if len(want) == 0 && len(got) == 0 {
		return
	}
	require.Equal(tb, want, got, msgAndArgs...)
}

func requireGood(tb testing.TB, c *scsi.Command) {
	tb.Helper()
	if c.Status != scsi.StatusGood {
		s, err := scsi.ParseSense(c.Sense)
		require.NoError(tb, err)
		require.FailNow(tb, "command failed", "CDB % x: %s %v", c.CDB, c.Status, s)
	}
}

// requireSense checks CHECK CONDITION with the given key and code and
// returns the decoded sense data.
func requireSense(tb testing.TB, c *scsi.Command, key scsi.SenseKey, code scsi.ASC) *scsi.Sense {
	tb.Helper()
	require.Equal(tb, scsi.StatusCheckCondition, c.Status, "CDB % x", c.CDB)
	s, err := scsi.ParseSense(c.Sense)
	require.NoError(tb, err)
	require.Equal(tb, key, s.Key, "sense key: %v", s)
	require.Equal(tb, code, s.Code, "additional sense code: %v", s)
	require.Empty(tb, c.DataIn, "no data-in with CHECK CONDITION")
	return s
}

// requireFieldPointer checks an INVALID FIELD IN CDB field pointer; bit -1
// means no bit pointer.
func requireFieldPointer(tb testing.TB, s *scsi.Sense, byteOff, bit int) {
	tb.Helper()
	sks := s.SenseKeySpecific
	require.True(tb, s.HasSKS(), "SKSV set")
	require.NotZero(tb, sks[0]&0x40, "C/D: field in the CDB")
	require.Equal(tb, byteOff, int(binary.BigEndian.Uint16(sks[1:])), "field pointer")
	if bit < 0 {
		require.Zero(tb, sks[0]&0x08, "BPV clear")
	} else {
		require.NotZero(tb, sks[0]&0x08, "BPV set")
		require.Equal(tb, bit, int(sks[0]&0x07), "bit pointer")
	}
}

// CDB builders. flags is byte 1 (DPO, FUA, BYTCHK...).

func rw6CDB(op byte, lba uint32, blocks byte) []byte {
	c := make([]byte, 6)
	binary.BigEndian.PutUint32(c[0:], lba&0x1FFFFF)
	c[0] = op
	c[4] = blocks
	return c
}

func cdb10(op, flags byte, lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

func cdb12(op, flags byte, lba uint32, blocks uint32) []byte {
	c := make([]byte, 12)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint32(c[6:], blocks)
	return c
}

func cdb16(op, flags byte, lba uint64, blocks uint32) []byte {
	c := make([]byte, 16)
	c[0], c[1] = op, flags
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], blocks)
	return c
}

func readCapacity10CDB(lba uint32, pmi bool) []byte {
	c := make([]byte, 10)
	c[0] = opReadCapacity10
	binary.BigEndian.PutUint32(c[2:], lba)
	if pmi {
		c[8] = 1
	}
	return c
}

func readCapacity16CDB(lba uint64, allocLen uint32, pmi bool) []byte {
	c := make([]byte, 16)
	c[0], c[1] = opServiceActionIn, 0x10
	binary.BigEndian.PutUint64(c[2:], lba)
	binary.BigEndian.PutUint32(c[10:], allocLen)
	if pmi {
		c[14] = 1
	}
	return c
}

// variant is one of the four CDB sizes of READ or WRITE.
type variant struct {
	name      string
	maxBlocks uint64 // largest length the CDB can express
	build     func(flags byte, lba uint64, blocks uint32) []byte
}

func readVariants() []variant  { return rwVariants(opRead6, opRead10, opRead12, opRead16) }
func writeVariants() []variant { return rwVariants(opWrite6, opWrite10, opWrite12, opWrite16) }

func rwVariants(op6, op10, op12, op16 byte) []variant {
	return []variant{
		{"6", 256, func(_ byte, lba uint64, n uint32) []byte { return rw6CDB(op6, uint32(lba), byte(n)) }},
		{"10", 0xFFFF, func(f byte, lba uint64, n uint32) []byte { return cdb10(op10, f, uint32(lba), uint16(n)) }},
		{"12", 0xFFFFFFFF, func(f byte, lba uint64, n uint32) []byte { return cdb12(op12, f, uint32(lba), n) }},
		{"16", 0xFFFFFFFF, func(f byte, lba uint64, n uint32) []byte { return cdb16(op16, f, lba, n) }},
	}
}

// pattern returns n bytes that differ from block to block and from seed to
// seed.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i/7) ^ seed ^ byte(i>>9)
	}
	return p
}
