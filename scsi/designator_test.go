package scsi

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

// TestNAADesignator checks the NAA 6h designator against values worked out
// by hand from LIO's rule: 6h, the OUI 00-14-05 over the next six nibbles,
// then the serial's hexadecimal digits, 25 of them at most.
func TestNAADesignator(t *testing.T) {
	tests := []struct {
		serial string
		want   string
	}{
		// The digits of the UUID are c9d3e6f0 1a2b 4c5d 8e9f 0123456789ab;
		// the first 25 (c9d3e6f01a2b4c5d8e9f01234) follow "6001405".
		{"c9d3e6f0-1a2b-4c5d-8e9f-0123456789ab", "60 01 40 5c 9d 3e 6f 01 a2 b4 c5 d8 e9 f0 12 34"},
		// Upper-case digits count too.
		{"C9D3E6F0-1A2B-4C5D-8E9F-0123456789AB", "60 01 40 5c 9d 3e 6f 01 a2 b4 c5 d8 e9 f0 12 34"},
		// A short serial leaves zero digits; an odd count fills a high nibble.
		{"abc", "60 01 40 5a bc 00 00 00 00 00 00 00 00 00 00 00"},
		{"ab", "60 01 40 5a b0 00 00 00 00 00 00 00 00 00 00 00"},
		// Characters that are not hexadecimal digits are skipped.
		{"xyz-0042", "60 01 40 50 04 20 00 00 00 00 00 00 00 00 00 00"},
		{"serial-0042", "60 01 40 5e a0 04 20 00 00 00 00 00 00 00 00 00"}, // e, a are digits
		{"", "60 01 40 50 00 00 00 00 00 00 00 00 00 00 00 00"},
		// The serial ends at a NUL byte, as LIO's C string does.
		{"12\x0034", "60 01 40 51 20 00 00 00 00 00 00 00 00 00 00 00"},
	}
	for _, tt := range tests {
		got := NAADesignator(tt.serial)
		assert.Equal(t, unhex(t, tt.want), got[:], "serial %q", tt.serial)
	}
}

func TestT10VendorIDDesignator(t *testing.T) {
	assert.Equal(t, []byte("LIO-ORG disk0:abc\x00"), T10VendorIDDesignator("LIO-ORG", "disk0", "abc"))
	// No serial: the vendor field and the NUL only, as LIO does.
	assert.Equal(t, []byte("LIO-ORG \x00"), T10VendorIDDesignator("LIO-ORG", "disk0", ""))
	// An over-long serial is cut to fit the one-byte DESIGNATOR LENGTH.
	long := T10VendorIDDesignator("LIO-ORG", "product-sixteen!", strings.Repeat("s", 254))
	assert.Len(t, long, 255)
	assert.Equal(t, byte(0), long[254])
	// Control characters do not reach the ASCII field.
	assert.Equal(t, []byte("V  X    p:s \x00"), T10VendorIDDesignator("V\x01\xffX", "p", "s\n"))
}

func TestSCSINameString(t *testing.T) {
	tests := []struct {
		name string
		want int
	}{{"", 4}, {"a", 4}, {"abc", 4}, {"abcd", 8}, {"abcdefg", 8}, {strings.Repeat("n", 251), 252}, {strings.Repeat("n", 300), 252}}
	for _, tt := range tests {
		b := SCSINameString(tt.name)
		require.Len(t, b, tt.want, "name of %d bytes", len(tt.name))
		assert.Equal(t, byte(0), b[len(b)-1], "NUL-terminated")
		assert.True(t, strings.HasPrefix(tt.name, strings.TrimRight(string(b), "\x00")))
	}
	assert.Equal(t, "iqn.x,t,0x0001", TargetPortName("iqn.x", 1))
	assert.Equal(t, "iqn.x,t,0xbeef", TargetPortName("iqn.x", 0xBEEF))
}

func TestASCIIField(t *testing.T) {
	assert.Equal(t, []byte("LIO-ORG "), ASCIIField("LIO-ORG", 8))
	assert.Equal(t, []byte("0123"), ASCIIField("0123456", 4))
	assert.Equal(t, []byte("a b "), ASCIIField("a\x7fb", 4))
}

// TestDesignators checks the whole designator list against LIO's
// spc_emulate_evpd_83 layout, byte for byte.
func TestDesignators(t *testing.T) {
	lu := NewLU(LUConfig{
		Identity: Identity{Name: "d", Vendor: "LIO-ORG", Product: "disk0", Revision: "4.0", Serial: "c9d3e6f0-1a2b-4c5d-8e9f-0123456789ab"},
		Store:    backstore.NewMemory(1<<20, 512),
	})
	n := NewNexus(Nexus{TargetName: "iqn.2024-01.org.odxtgt:t1", TPGT: 1, RelativePortID: 1}, map[uint64]*LU{0: lu}, nil)

	var got []byte
	for _, d := range lu.Designators(n) {
		got = d.AppendTo(got)
	}
	want := strings.Join([]string{
		// NAA, LU, binary
		"01 03 00 10  60 01 40 5c 9d 3e 6f 01 a2 b4 c5 d8 e9 f0 12 34",
		// T10 vendor ID, LU, ASCII, 51 bytes
		"02 01 00 33" + hex.EncodeToString([]byte("LIO-ORG disk0:c9d3e6f0-1a2b-4c5d-8e9f-0123456789ab\x00")),
		// relative target port 1: iSCSI, PIV, target port
		"51 94 00 04  00 00 00 01",
		// target port group 0
		"51 95 00 04  00 00 00 00",
		// logical unit group 0: LU, binary, no PIV
		"01 06 00 04  00 00 00 00",
		// SCSI name string of the target port, UTF-8, 36 bytes
		"53 98 00 24" + hex.EncodeToString([]byte("iqn.2024-01.org.odxtgt:t1,t,0x0001\x00\x00")),
		// SCSI name string of the target device, 28 bytes
		"53 a8 00 1c" + hex.EncodeToString([]byte("iqn.2024-01.org.odxtgt:t1\x00\x00\x00")),
	}, "")
	assert.Equal(t, hex.EncodeToString(unhex(t, want)), hex.EncodeToString(got))

	// Without a nexus only the logical unit's own designators remain.
	var types []DesignatorType
	for _, d := range lu.Designators(nil) {
		assert.Equal(t, AssocLU, d.Association)
		types = append(types, d.Type)
	}
	assert.Equal(t, []DesignatorType{DesignatorNAA, DesignatorT10VendorID, DesignatorLUGroup}, types)

	// Without a serial there is no NAA designator (LIO needs the serial).
	bare := NewLU(LUConfig{Identity: Identity{Vendor: "LIO-ORG"}})
	assert.Equal(t, DesignatorT10VendorID, bare.Designators(nil)[0].Type)
}

func TestParseDesignator(t *testing.T) {
	d := Designator{ProtocolID: ProtocolISCSI, CodeSet: CodeSetUTF8, PIV: true, Association: AssocTargetDevice,
		Type: DesignatorSCSIName, Value: SCSINameString("iqn.x")}
	enc := d.AppendTo(nil)
	got, n, err := ParseDesignator(append(enc, 0xEE))
	require.NoError(t, err)
	assert.Equal(t, len(enc), n)
	assert.Equal(t, d, got)

	_, _, err = ParseDesignator([]byte{1, 3, 0})
	assert.ErrorContains(t, err, "too short")
	_, _, err = ParseDesignator([]byte{1, 3, 0, 16, 0x60})
	assert.ErrorContains(t, err, "overruns")
}

// FuzzParseDesignator: parsing never panics, and what parses re-encodes to
// the same bytes.
func FuzzParseDesignator(f *testing.F) {
	f.Add([]byte{0x01, 0x03, 0x00, 0x10, 0x60, 0x01, 0x40, 0x5c, 0x9d, 0x3e, 0x6f, 0x01, 0xa2, 0xb4, 0xc5, 0xd8, 0xe9, 0xf0, 0x12, 0x34})
	f.Add([]byte{0x51, 0x94, 0x00, 0x04, 0, 0, 0, 1})
	f.Add([]byte{0x53, 0xa8, 0x00, 0x04, 'i', 'q', 'n', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, n, err := ParseDesignator(b)
		if err != nil {
			return
		}
		enc := d.AppendTo(nil)
		// Byte 1 bit 6 and byte 2 are reserved and not kept; everything
		// else round-trips.
		want := append([]byte{}, b[:n]...)
		want[1] &^= 0x40
		want[2] = 0
		if string(enc) != string(want) {
			t.Fatalf("round trip: % x became % x", b[:n], enc)
		}
	})
}
