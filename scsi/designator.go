package scsi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// CodeSet is the CODE SET field of a designation descriptor (SPC-4, Device
// Identification VPD page).
type CodeSet byte

// Code sets.
const (
	CodeSetBinary CodeSet = 1
	CodeSetASCII  CodeSet = 2
	CodeSetUTF8   CodeSet = 3
)

// Association is the ASSOCIATION field of a designation descriptor: what
// the designator names (SPC-4, Device Identification VPD page).
type Association byte

// Associations.
const (
	AssocLU           Association = 0 // the addressed logical unit
	AssocTargetPort   Association = 1 // the target port that received the command
	AssocTargetDevice Association = 2 // the SCSI target device
)

// DesignatorType is the DESIGNATOR TYPE field of a designation descriptor
// (SPC-4, Device Identification VPD page).
type DesignatorType byte

// Designator types.
const (
	DesignatorVendorSpecific     DesignatorType = 0
	DesignatorT10VendorID        DesignatorType = 1
	DesignatorEUI64              DesignatorType = 2
	DesignatorNAA                DesignatorType = 3
	DesignatorRelativeTargetPort DesignatorType = 4
	DesignatorTargetPortGroup    DesignatorType = 5
	DesignatorLUGroup            DesignatorType = 6
	DesignatorMD5LUIdentifier    DesignatorType = 7
	DesignatorSCSIName           DesignatorType = 8
)

// ProtocolISCSI is the PROTOCOL IDENTIFIER of iSCSI (SPC-4), reported
// in designators whose PIV bit is set.
const ProtocolISCSI = 5

// OpenFabricsOUI is the IEEE company identifier in the NAA designator. It
// is the one Linux LIO uses by default, so a logical unit migrated from LIO
// keeps its NAA name.
const OpenFabricsOUI = 0x001405

// DefaultTargetPortGroup and DefaultLUGroup are the identifiers of the one
// target port group (holding every target port, always active/optimized)
// and the one logical unit group (holding every logical unit) odxtgt has.
// They are LIO's default_tg_pt_gp and default_lu_gp.
const (
	DefaultTargetPortGroup uint16 = 0
	DefaultLUGroup         uint16 = 0
)

// maxDesignatorLength is the largest DESIGNATOR LENGTH (a one-byte field).
// SCSI name strings must also be a multiple of four, so they stop at 252.
const (
	maxDesignatorLength = 255
	maxSCSINameLength   = 252
)

// Designator is one designation descriptor of the Device Identification
// VPD page (SPC-4). Value is the DESIGNATOR field.
type Designator struct {
	ProtocolID  byte // PROTOCOL IDENTIFIER, meaningful when PIV is set
	CodeSet     CodeSet
	PIV         bool
	Association Association
	Type        DesignatorType
	Value       []byte
}

// AppendTo appends the encoded descriptor (4-byte header and designator) to
// b. Value must be at most 255 bytes; the constructors in this package keep
// it so.
func (d Designator) AppendTo(b []byte) []byte {
	b1 := byte(d.Association&3)<<4 | byte(d.Type&0xF)
	if d.PIV {
		b1 |= 0x80
	}
	return append(append(b, d.ProtocolID<<4|byte(d.CodeSet&0xF), b1, 0, byte(len(d.Value))), d.Value...)
}

// ParseDesignator decodes the designation descriptor at the start of b and
// returns it with its encoded length. The Value aliases b.
func ParseDesignator(b []byte) (Designator, int, error) {
	if len(b) < 4 {
		return Designator{}, 0, fmt.Errorf("designation descriptor too short: %d bytes", len(b))
	}
	n := 4 + int(b[3])
	if len(b) < n {
		return Designator{}, 0, fmt.Errorf("designation descriptor of %d bytes overruns the %d bytes given", n, len(b))
	}
	return Designator{
		ProtocolID:  b[0] >> 4,
		CodeSet:     CodeSet(b[0] & 0xF),
		PIV:         b[1]&0x80 != 0,
		Association: Association(b[1]>>4) & 3,
		Type:        DesignatorType(b[1] & 0xF),
		Value:       b[4:n:n],
	}, n, nil
}

// NAADesignator returns the NAA IEEE Registered Extended designator
// (NAA 6h, SPC-4) of the logical unit with the given unit serial
// number, exactly as Linux LIO derives it: NAA 6h, the IEEE company
// identifier [OpenFabricsOUI], then the first 25 hexadecimal digits of the
// serial (other characters skipped, the serial ending at a NUL byte) as the
// 36-bit VENDOR SPECIFIC IDENTIFIER and the 64-bit VENDOR SPECIFIC
// IDENTIFIER EXTENSION, padded with zero digits.
//
// For example serial "c9d3e6f0-1a2b-4c5d-8e9f-0123456789ab" gives
// 60 01 40 5c 9d 3e 6f 01 a2 b4 c5 d8 e9 f0 12 34.
func NAADesignator(serial string) [16]byte {
	var d [16]byte
	// NAA (4 bits), then the 24-bit company identifier straddling the
	// nibbles that follow.
	d[0] = 0x6<<4 | OpenFabricsOUI>>20&0xF
	d[1] = OpenFabricsOUI >> 12 & 0xFF
	d[2] = OpenFabricsOUI >> 4 & 0xFF
	d[3] = OpenFabricsOUI & 0xF << 4
	nibble := 7 // the low nibble of byte 3 is the first vendor-specific one
	for i := 0; i < len(serial) && serial[i] != 0 && nibble < 2*len(d); i++ {
		v, ok := hexDigit(serial[i])
		if !ok {
			continue
		}
		if nibble%2 == 0 {
			d[nibble/2] = v << 4
		} else {
			d[nibble/2] |= v
		}
		nibble++
	}
	return d
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// ASCIIField returns s as a left-aligned ASCII field of n bytes (SPC-4
// ASCII data fields): truncated to n bytes, padded with spaces, and with
// every byte outside 20h-7Eh replaced by a space so it stays printable.
func ASCIIField(s string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
		if i < len(s) && s[i] >= 0x20 && s[i] <= 0x7E {
			b[i] = s[i]
		}
	}
	return b
}

// asciiText returns s with every byte outside 20h-7Eh replaced by a space.
func asciiText(s string) []byte { return ASCIIField(s, len(s)) }

// T10VendorIDDesignator returns the T10 vendor ID based designator value
// (SPC-4) LIO reports: the T10 VENDOR IDENTIFICATION as an 8-byte
// ASCII field, then "<product>:<serial>" (nothing when there is no serial)
// and a NUL byte. An over-long vendor specific part is cut so the
// designator fits its one-byte length.
func T10VendorIDDesignator(vendor, product, serial string) []byte {
	b := ASCIIField(vendor, 8)
	if serial != "" {
		b = append(b, asciiText(product+":"+serial)...)
	}
	if len(b) > maxDesignatorLength-1 {
		b = b[:maxDesignatorLength-1]
	}
	return append(b, 0)
}

// SCSINameString returns the SCSI NAME STRING designator value for name
// (SPC-4): UTF-8, NUL-terminated and NUL-padded to a multiple of
// four bytes, at most 252 bytes (a longer name is cut, keeping the NUL).
func SCSINameString(name string) []byte {
	n := min((len(name)+1+3)&^3, maxSCSINameLength)
	b := make([]byte, n)
	copy(b[:n-1], name)
	return b
}

// TargetPortName is the SCSI target port name of an iSCSI target port as
// LIO reports it in the SCSI name string designator: the target name, ",t,0x"
// and the target portal group tag as four hexadecimal digits (RFC 7143
// 10.1 allows any number of digits).
func TargetPortName(targetName string, tpgt uint16) string {
	return fmt.Sprintf("%s,t,0x%04x", targetName, tpgt)
}

// Designators returns the designation descriptors of the Device
// Identification VPD page for a command received on nexus n, in the order
// and encoding Linux LIO uses:
//
//  1. NAA IEEE Registered Extended (LU, binary), when the unit has a serial;
//  2. T10 vendor ID (LU, ASCII);
//  3. relative target port identifier (target port, binary, PIV, iSCSI);
//  4. target port group (target port, binary, PIV, iSCSI);
//  5. logical unit group (LU, binary);
//  6. SCSI name string of the target port (target port, UTF-8, PIV, iSCSI);
//  7. SCSI name string of the target device (target device, UTF-8, PIV,
//     iSCSI).
//
// With n nil only the logical unit's own designators (1, 2 and 5) are
// returned; the copy manager matches CSCD descriptors against those.
func (lu *LU) Designators(n *Nexus) []Designator {
	id := lu.Identity
	var ds []Designator
	if id.Serial != "" {
		naa := NAADesignator(id.Serial)
		ds = append(ds, Designator{CodeSet: CodeSetBinary, Association: AssocLU, Type: DesignatorNAA, Value: naa[:]})
	}
	ds = append(ds, Designator{
		CodeSet: CodeSetASCII, Association: AssocLU, Type: DesignatorT10VendorID,
		Value: T10VendorIDDesignator(id.Vendor, id.Product, id.Serial),
	})
	group := func(v uint16) []byte {
		b := make([]byte, 4)
		binary.BigEndian.PutUint16(b[2:], v)
		return b
	}
	if n != nil {
		ds = append(ds,
			Designator{
				ProtocolID: ProtocolISCSI, CodeSet: CodeSetBinary, PIV: true, Association: AssocTargetPort,
				Type: DesignatorRelativeTargetPort, Value: group(n.RelativePortID),
			},
			Designator{
				ProtocolID: ProtocolISCSI, CodeSet: CodeSetBinary, PIV: true, Association: AssocTargetPort,
				Type: DesignatorTargetPortGroup, Value: group(DefaultTargetPortGroup),
			})
	}
	ds = append(ds, Designator{CodeSet: CodeSetBinary, Association: AssocLU, Type: DesignatorLUGroup, Value: group(DefaultLUGroup)})
	if n != nil {
		ds = append(ds,
			Designator{
				ProtocolID: ProtocolISCSI, CodeSet: CodeSetUTF8, PIV: true, Association: AssocTargetPort,
				Type: DesignatorSCSIName, Value: SCSINameString(TargetPortName(n.TargetName, n.TPGT)),
			},
			Designator{
				ProtocolID: ProtocolISCSI, CodeSet: CodeSetUTF8, PIV: true, Association: AssocTargetDevice,
				Type: DesignatorSCSIName, Value: SCSINameString(n.TargetName),
			})
	}
	return ds
}

// Errors of FindByDesignator.
var (
	ErrNoDesignatorMatch = errors.New("no logical unit has that designator")
	ErrAmbiguousMatch    = errors.New("more than one logical unit has that designator")
)

// FindByDesignator returns the one logical unit among lus that reports d
// as one of its own (logical unit associated) designators in the Device
// Identification VPD page: same code set, designator type and designator.
// A designator that several logical units share (the logical unit group,
// or a T10 vendor ID without a serial) names none of them: the copy
// manager must never guess which device a host meant, so that is
// ErrAmbiguousMatch.
func FindByDesignator(d Designator, lus []*LU) (*LU, error) {
	if d.Association != AssocLU {
		return nil, ErrNoDesignatorMatch
	}
	var found *LU
	for _, lu := range lus {
		if !lu.Present() || lu == found {
			continue
		}
		for _, own := range lu.Designators(nil) {
			if own.CodeSet == d.CodeSet && own.Type == d.Type && bytes.Equal(own.Value, d.Value) {
				if found != nil {
					return nil, ErrAmbiguousMatch
				}
				found = lu
				break
			}
		}
	}
	if found == nil {
		return nil, ErrNoDesignatorMatch
	}
	return found, nil
}
