#!/bin/bash
# 25-sense: bad CDBs sent with sg_raw through the kernel initiator get the
# CHECK CONDITION the standards name (sense key and additional sense code).
# The same CDBs go to a LIO LUN of the same size; both answers are printed
# side by side. Only odxtgt's are checked, against the standard.
. "$(dirname "$0")/../lib.sh"
odx_require

odx_config "$WORK/odxtgt.yaml" disk0 64M
odx_start "$WORK/odxtgt.yaml"
lio_start lio0 64M
declare -A SG
SG[odxtgt]=$(lun_sg "$(login_one "$ODX_IQN" "$ODX_PORT")" 0)
SG[lio]=$(lun_sg "$(login_one "$LIO_IQN" "$LIO_PORT")" 0)
head -c 1024 /dev/zero >"$WORK/zero"

# sense SG OPTS CDB prints "status | sense key | additional sense" of
# sg_raw OPTS SG CDB, with the sense key specific field after a ";".
sense() {
	local sg=$1 opts=$2 cdb=$3 out sks
	# shellcheck disable=SC2086 # opts and cdb hold several words
	out=$(sg_raw $opts "$sg" $cdb 2>&1) || true
	sks=$(sed -n 's/^ *Sense Key Specific: *//p' <<<"$out" | head -n 1 | sed 's/ *$//')
	printf '%s | %s | %s%s\n' \
		"$(sed -n 's/^ *SCSI Status: *//p' <<<"$out" | head -n 1 | sed 's/ *$//')" \
		"$(grep -o 'Sense key: [A-Za-z ]*' <<<"$out" | head -n 1 | sed 's/Sense key: //;s/ *$//')" \
		"$(sed -n 's/^ *Additional sense: *//p' <<<"$out" | head -n 1 | sed 's/ *$//')" \
		"${sks:+; $sks}"
}

# Capacity is 131072 blocks of 512 bytes: LBA 0x20000 is the first past
# the end. Each case: name; expected status, sense key and additional
# sense; sg_raw options; CDB.
ILL="Check Condition | Illegal Request"
cases=(
	"READ(10) at the capacity;$ILL | Logical block address out of range;-r 512;28 00 00 02 00 00 00 00 01 00"
	"READ(10) crossing the end;$ILL | Logical block address out of range;-r 1024;28 00 00 01 ff ff 00 00 02 00"
	"READ(16) at the capacity;$ILL | Logical block address out of range;-r 512;88 00 00 00 00 00 00 02 00 00 00 00 00 01 00 00"
	"WRITE(10) at the capacity;$ILL | Logical block address out of range;-s 512 -i $WORK/zero;2a 00 00 02 00 00 00 00 01 00"
	"unsupported operation code 0xff;$ILL | Invalid command operation code;;ff 00 00 00 00 00"
	"INQUIRY page code without EVPD;$ILL | Invalid field in cdb;-r 255;12 00 83 00 ff 00"
	"INQUIRY unsupported VPD page 0xc7;$ILL | Invalid field in cdb;-r 255;12 01 c7 00 ff 00"
	"MODE SENSE(6) unsupported page 0x3e;$ILL | Invalid field in cdb;-r 255;1a 00 3e 00 ff 00"
)
for c in "${cases[@]}"; do
	IFS=';' read -r name want opts cdb <<<"$c"
	got_odx=$(sense "${SG[odxtgt]}" "$opts" "$cdb")
	got_lio=$(sense "${SG[lio]}" "$opts" "$cdb")
	printf '%s [%s]\n  odxtgt: %s\n  LIO:    %s\n' "$name" "$cdb" "$got_odx" "$got_lio" | tee -a "$OUT/sense.txt"
	check "$name: $want" test "${got_odx%%;*}" = "$want"
done
check "logout from odxtgt" iscsi_logout "$ODX_IQN" "$ODX_PORT"
iscsi_logout "$LIO_IQN" "$LIO_PORT" >/dev/null
finish
