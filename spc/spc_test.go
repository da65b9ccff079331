package spc

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// newTestEnv returns a script environment with one logical unit at LUN 0
// whose power-on unit attentions have been collected on both nexuses.
func newTestEnv(t testing.TB) *testEnv {
	e := &testEnv{}
	e.addLU(t, map[string]string{}, nil)
	for _, n := range e.nexuses {
		e.submit(n, 0, []byte{0x03, 0, 0, 0, 18, 0}, nil)
	}
	return e
}

func (e *testEnv) do(t testing.TB, cdb []byte, dataOut []byte) *scsi.Command {
	t.Helper()
	return e.submit(e.nexuses["a"], 0, cdb, dataOut)
}

// wantGood fails unless cmd ended with GOOD.
func wantGood(t testing.TB, cmd *scsi.Command) {
	t.Helper()
	require.Equal(t, scsi.StatusGood, cmd.Status, "% x: %v", cmd.CDB, describe(cmd))
}

// wantSense fails unless cmd ended with CHECK CONDITION and sense s (key,
// code and sense key specific field).
func wantSense(t testing.TB, cmd *scsi.Command, want *scsi.Sense) {
	t.Helper()
	require.Equal(t, scsi.StatusCheckCondition, cmd.Status, "% x", cmd.CDB)
	got, err := scsi.ParseSense(cmd.Sense)
	require.NoError(t, err)
	assert.Equal(t, want.Error(), got.Error(), "% x", cmd.CDB)
}

// TestCommandDescriptors checks the table this package exports.
func TestCommandDescriptors(t *testing.T) {
	cmds := Commands(Options{}).Commands
	_, err := scsi.NewTable(Commands(Options{}))
	require.NoError(t, err)
	cdbLen := map[byte]int{0x00: 6, 0x03: 6, 0x12: 6, 0x15: 6, 0x16: 6, 0x17: 6, 0x1A: 6, 0x1E: 6, 0x55: 10, 0x56: 10, 0x57: 10, 0x5A: 10, 0x5E: 10, 0x5F: 10, 0xA0: 12, 0xA3: 12}
	for _, d := range cmds {
		t.Run(d.Name, func(t *testing.T) {
			assert.Equal(t, cdbLen[d.Opcode], d.CDBLength())
			assert.Equal(t, byte(0xFF), d.Usage[0])
			assert.Equal(t, byte(control), d.Usage[len(d.Usage)-1], "CONTROL byte")
			assert.NotZero(t, d.NominalTimeout)
			assert.GreaterOrEqual(t, d.RecommendedTimeout, d.NominalTimeout)
			if d.HasServiceAction {
				assert.Equal(t, byte(d.ServiceAction), d.Usage[1]&0x1F, "service action in the usage data")
			}
			// SPC-4 and SAM-5: these three run for an absent logical unit
			// and while a unit attention is pending; nothing else does.
			special := d.Opcode == 0x12 || d.Opcode == 0xA0 || d.Opcode == 0x03
			assert.Equal(t, special, d.Flags&scsi.FlagNoLU != 0, "FlagNoLU")
			assert.Equal(t, special, d.Flags&scsi.FlagIgnoresUA != 0, "FlagIgnoresUA")
			assert.Zero(t, d.Flags&scsi.FlagWritesMedium)
		})
	}
}

// TestReservedBitsRefused sets, one at a time, every CDB bit a command's
// usage mask leaves clear and expects INVALID FIELD IN CDB pointing at
// exactly that bit.
func TestReservedBitsRefused(t *testing.T) {
	e := newTestEnv(t)
	for _, d := range Commands(Options{}).Commands {
		for i := 1; i < d.CDBLength(); i++ {
			for bit := 7; bit >= 0; bit-- {
				m := byte(1) << bit
				if d.Usage[i]&m != 0 || (d.HasServiceAction && i == 1 && m&0x1F != 0) {
					continue
				}
				cdb := make([]byte, d.CDBLength())
				cdb[0] = d.Opcode
				if d.HasServiceAction {
					cdb[1] = byte(d.ServiceAction)
				}
				cdb[i] |= m
				wantSense(t, e.do(t, cdb, nil), scsi.InvalidFieldInCDB(i, bit))
			}
		}
	}
}

// TestVPDPages fetches every listed VPD page and checks its header, as
// libiscsi's Inquiry tests do.
func TestVPDPages(t *testing.T) {
	e := newTestEnv(t)
	cmd := e.do(t, []byte{0x12, 0x01, 0x00, 0x00, 0xFF, 0x00}, nil)
	wantGood(t, cmd)
	list := cmd.DataIn[4:]
	require.Equal(t, int(binary.BigEndian.Uint16(cmd.DataIn[2:])), len(list))
	assert.IsIncreasing(t, list)
	for _, code := range list {
		page := e.do(t, []byte{0x12, 0x01, code, 0xFF, 0xFF, 0x00}, nil)
		wantGood(t, page)
		assert.Equal(t, byte(0), page.DataIn[0], "peripheral of page %02x", code)
		assert.Equal(t, code, page.DataIn[1])
		assert.Equal(t, len(page.DataIn), int(binary.BigEndian.Uint16(page.DataIn[2:]))+4, "page %02x length", code)
	}
	// The SBC pages have the SBC-3 lengths libiscsi checks.
	for code, n := range map[byte]int{0xB0: 0x3C, 0xB1: 0x3C, 0xB2: 4} {
		page := e.do(t, []byte{0x12, 0x01, code, 0x00, 0xFF, 0x00}, nil)
		assert.Equal(t, n, int(page.DataIn[3]), "page %02x", code)
	}
}

// TestModePages checks each mode page against its changeable mask: the
// sizes agree, the header holds the code and length, and apply reads
// exactly the changeable bits.
func TestModePages(t *testing.T) {
	states := []scsi.ModeState{{}, {DSense: true}, {WCE: true}, {SWP: true}, {DSense: true, WCE: true, SWP: true}}
	for _, p := range modePages {
		t.Run(fmt.Sprintf("%02x", p.code), func(t *testing.T) {
			require.Len(t, p.changeable, 2+int(p.changeable[1]))
			assert.Equal(t, p.code, p.changeable[0])
			for _, m := range states {
				v := p.values(m)
				require.Equal(t, p.changeable[:2], v[:2])
				require.Len(t, v, len(p.changeable))
				// Applying a page's own values to any other state yields a
				// state that shows the same page.
				for _, other := range states {
					got := other
					p.apply(v, &got)
					assert.Equal(t, v, p.values(got))
				}
			}
		})
	}
}

// TestModeSenseSelectRoundTrip echoes every page MODE SENSE returns back
// with MODE SELECT (libiscsi's pattern: MODE SENSE, clear PS, flip a bit,
// MODE SELECT), in both CDB sizes.
func TestModeSenseSelectRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	for _, p := range modePages {
		sense := e.do(t, []byte{0x1A, 0x08, p.code, 0x00, 0xFF, 0x00}, nil)
		wantGood(t, sense)
		list := append([]byte{0, 0, 0, 0}, sense.DataIn[4:]...)
		wantGood(t, e.do(t, []byte{0x15, 0x10, 0, 0, byte(len(list)), 0}, list))

		sense10 := e.do(t, []byte{0x5A, 0x00, p.code, 0x00, 0, 0, 0, 0, 0xFF, 0x00}, nil)
		wantGood(t, sense10)
		list10 := append([]byte{0, 0, 0, 0, 0, 0, 0, 8}, sense10.DataIn[8:]...)
		wantGood(t, e.do(t, []byte{0x55, 0x10, 0, 0, 0, 0, 0, 0, byte(len(list10)), 0}, list10))
	}
	assert.Equal(t, scsi.ModeState{}, e.lus[0].Mode())
}

// TestConcurrentModeSelect: MODE SELECTs of different pages from two
// nexuses at once both take effect (the mode state is updated atomically,
// not read, modified and written back).
func TestConcurrentModeSelect(t *testing.T) {
	caching := func(wce bool) []byte {
		l := append([]byte{0, 0, 0, 0}, modePages[1].values(scsi.ModeState{WCE: wce})...)
		return l
	}
	control := func(swp bool) []byte {
		return append([]byte{0, 0, 0, 0}, modePages[2].values(scsi.ModeState{SWP: swp})...)
	}
	for range 20 {
		e := newTestEnv(t)
		// A MODE SELECT that finds the other one's MODE PARAMETERS
		// CHANGED pending reports it and is retried, as an initiator does.
		selectPage := func(nexus string, l []byte) {
			for {
				cmd := e.submit(e.nexuses[nexus], 0, []byte{0x15, 0x10, 0, 0, byte(len(l)), 0}, l)
				if cmd.Status == scsi.StatusGood {
					return
				}
				s, err := scsi.ParseSense(cmd.Sense)
				if err != nil || s.Key != scsi.UnitAttention {
					t.Errorf("MODE SELECT: %v %v", s, err)
					return
				}
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() { selectPage("a", caching(true)) })
		wg.Go(func() { selectPage("b", control(true)) })
		wg.Wait()
		require.Equal(t, scsi.ModeState{WCE: true, SWP: true}, e.lus[0].Mode())
	}
}

// TestStandardInquiryIdentity checks the ASCII fields against odd
// identities: long values are cut, control characters blanked.
func TestStandardInquiryIdentity(t *testing.T) {
	lu := scsi.NewLU(scsi.LUConfig{
		Identity: scsi.Identity{Vendor: "VENDORTOOLONG", Product: "a product name too long", Revision: "1\x002345", Serial: "s"},
		Store:    newStore(1<<20, 512),
		Table:    newTable(t),
	})
	b := standardInquiry(lu)
	assert.Equal(t, "VENDORTO", string(b[8:16]))
	assert.Equal(t, "a product name t", string(b[16:32]))
	assert.Equal(t, "1 23", string(b[32:36]))
}
