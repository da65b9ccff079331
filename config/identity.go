package config

import (
	"encoding/hex"

	"github.com/odxtgt/odxtgt/scsi"
)

// Validate refuses two backstores that initiators would take for one
// logical unit: the designators of the Device Identification VPD page are
// derived from the serial (and the product) exactly as scsi derives them,
// so config asks scsi rather than repeating the derivation. scsi imports
// no configuration, so there is no cycle.

// naaDesignator returns the NAA designator of a logical unit with the given
// serial (see scsi.NAADesignator). Serials whose first 25 hexadecimal
// digits agree (all of them when a serial has none, such as "vol_x")
// share a designator.
func naaDesignator(serial string) [16]byte { return scsi.NAADesignator(serial) }

// naaString formats an NAA designator the way Linux names it (the wwn of
// /dev/disk/by-id, sg_vpd): "naa." and 32 lowercase hex digits.
func naaString(d [16]byte) string {
	return "naa." + hex.EncodeToString(d[:])
}

// t10VendorPartMax is how many bytes of "<product>:<serial>" the T10
// vendor ID designator keeps.
const t10VendorPartMax = 255 - 8 - 1

// t10VendorPart returns the part of the T10 vendor ID designator that
// follows the T10 VENDOR IDENTIFICATION, which is the same for every
// logical unit: two backstores share the designator exactly when they
// share this part.
func t10VendorPart(product, serial string) string {
	full := scsi.T10VendorIDDesignator("", product, serial)
	return string(full[8 : len(full)-1])
}
