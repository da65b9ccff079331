package config

import "encoding/hex"

// The logical unit designators below are derived here the way scsi derives
// them for the Device Identification VPD page (scsi.NAADesignator,
// scsi.T10VendorIDDesignator), so that Validate can refuse two backstores
// that initiators would take for one logical unit. config imports nothing
// else from odxtgt, so the derivation is repeated rather than shared;
// identity_test.go holds it equal to scsi's.

// lioOUI is the IEEE company identifier of the NAA designator (Linux LIO's,
// scsi.OpenFabricsOUI).
const lioOUI = 0x001405

// t10VendorPartMax is how many bytes of "<product>:<serial>" the T10
// vendor ID designator keeps: its one-byte DESIGNATOR LENGTH allows 255
// bytes, less the 8-byte T10 VENDOR IDENTIFICATION and the final NUL.
const t10VendorPartMax = 255 - 8 - 1

// naaDesignator returns the NAA IEEE Registered Extended designator (NAA
// 6h, SPC-4) of a logical unit with the given serial: NAA 6h, lioOUI, then
// the first 25 hexadecimal digits of the serial (other characters skipped,
// the serial ending at a NUL byte), padded with zero digits. Serials whose
// first 25 hex digits agree (all of them when a serial has none, such as
// "vol_x") share a designator.
func naaDesignator(serial string) [16]byte {
	var d [16]byte
	d[0] = 0x6<<4 | lioOUI>>20&0xF
	d[1] = lioOUI >> 12 & 0xFF
	d[2] = lioOUI >> 4 & 0xFF
	d[3] = lioOUI & 0xF << 4
	nibble := 7
	for i := 0; i < len(serial) && serial[i] != 0 && nibble < 2*len(d); i++ {
		v, ok := hexValue(serial[i])
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

// naaString formats an NAA designator the way Linux names it (the wwn of
// /dev/disk/by-id, sg_vpd): "naa." and 32 lowercase hex digits.
func naaString(d [16]byte) string {
	return "naa." + hex.EncodeToString(d[:])
}

func hexValue(c byte) (byte, bool) {
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

// t10VendorPart returns the part of the T10 vendor ID designator that
// follows the T10 VENDOR IDENTIFICATION: "<product>:<serial>", cut to
// t10VendorPartMax bytes. The vendor identification is the same for every
// logical unit, so two backstores share the designator exactly when they
// share this part. product and serial must be printable ASCII (Validate
// checks them first); scsi would blank other bytes.
func t10VendorPart(product, serial string) string {
	s := product + ":" + serial
	if len(s) > t10VendorPartMax {
		s = s[:t10VendorPartMax]
	}
	return s
}
