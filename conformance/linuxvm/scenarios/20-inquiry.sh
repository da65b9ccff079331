#!/bin/bash
# 20-inquiry: identity and capability commands through the kernel initiator:
# sg_inq, sg_vpd for every page odxtgt lists, sg_readcap -l, sg_opcodes and
# sg_rtpg when TPGS is advertised. The same runs against a LIO fileio LUN of
# the same size; outputs go to $OUT/odxtgt and $OUT/lio, and the identity
# fields are printed side by side: they must have the same shape.
. "$(dirname "$0")/../lib.sh"
odx_require

SIZE=64M
odx_config "$WORK/odxtgt.yaml" disk0 "$SIZE"
odx_start "$WORK/odxtgt.yaml"
lio_start lio0 "$SIZE"
so=$(login_one "$ODX_IQN" "$ODX_PORT")
sl=$(login_one "$LIO_IQN" "$LIO_PORT")
declare -A SG
SG[odxtgt]=$(lun_sg "$so" 0)
SG[lio]=$(lun_sg "$sl" 0)
log "odxtgt LUN 0: ${SG[odxtgt]}, LIO LUN 0: ${SG[lio]}"

# vpd_pages SG prints the page codes listed by the Supported VPD Pages page.
vpd_pages() {
	local b
	mapfile -t b < <(sg_vpd -p 0 -r "$1" | od -An -tu1 -v | tr -s ' ' '\n' | grep -v '^$')
	[ ${#b[@]} -ge 4 ] || return 1
	local n=$((b[2] * 256 + b[3])) i
	for ((i = 4; i < 4 + n && i < ${#b[@]}; i++)); do
		printf '0x%02x\n' "${b[$i]}"
	done
}

# sg_run SIDE FILE CMD...: run a sg3_utils command, save its output; only
# odxtgt's results count (LIO's are reference output).
sg_run() {
	local side=$1 file=$2 rc=0
	shift 2
	"$@" >"$OUT/$side/$file" 2>&1 || rc=$?
	if [ "$side" = odxtgt ]; then
		check "odxtgt: $*" test $rc -eq 0
		[ $rc -eq 0 ] || sed 's/^/    /' "$OUT/$side/$file"
	elif [ $rc -ne 0 ]; then
		log "LIO: $* exited $rc"
	fi
}

for side in odxtgt lio; do
	sg=${SG[$side]}
	mkdir -p "$OUT/$side"
	sg_run "$side" inquiry.txt sg_inq "$sg"
	sg_run "$side" inquiry-hex.txt sg_inq -H "$sg"
	pages=$(vpd_pages "$sg") || pages=
	if [ "$side" = odxtgt ]; then
		check "odxtgt lists VPD pages" test -n "$pages"
	fi
	log "$side VPD pages: ${pages//$'\n'/ }"
	for p in $pages; do
		sg_run "$side" "vpd-$p.txt" sg_vpd -p "$p" "$sg"
	done
	sg_run "$side" readcap.txt sg_readcap -l "$sg"
	sg_run "$side" opcodes.txt sg_opcodes "$sg"
	if grep -qE 'TPGS=[1-3]' "$OUT/$side/inquiry.txt"; then
		sg_run "$side" rtpg.txt sg_rtpg -d "$sg"
	else
		log "$side does not advertise TPGS; sg_rtpg skipped"
	fi
	identity "$sg" >"$OUT/$side/identity.txt"
done

log "identity (odxtgt | LIO):"
paste "$OUT/odxtgt/identity.txt" "$OUT/lio/identity.txt" |
	awk -F'\t' '{printf "    %-16s %-44s | %s\n", $1, $2, $4}' | tee "$OUT/identity-side-by-side.txt"

field() { sed -n "s/^$2\t//p" "$OUT/$1/identity.txt"; }
check "vendor identification present" test -n "$(field odxtgt vendor)"
check "product identification present" test -n "$(field odxtgt product)"
check "peripheral device type 0 (disk), like LIO" test "$(field odxtgt peripheral)" = "$(field lio peripheral)"
check "LU NAA designator: NAA 6, 16 bytes, like LIO" test "$(field odxtgt naa)" = "NAA 6, 16 bytes" -a "$(field lio naa)" = "NAA 6, 16 bytes"
check "NAA 6 designator value well formed" eval '[[ "$(field odxtgt naa_value)" =~ ^0x6[0-9a-f]{31}$ ]]'
check "NAA designators differ between odxtgt and LIO LUNs" test "$(field odxtgt naa_value)" != "$(field lio naa_value)"
check "T10 vendor id designator present, like LIO" test -n "$(field odxtgt t10_vendor)" -a -n "$(field lio t10_vendor)"
check "T10 vendor id matches the INQUIRY vendor" test "$(field odxtgt t10_vendor)" = "$(field odxtgt vendor)"
check "capacity: 131072 blocks of 512 bytes" \
	grep -qE 'Number of logical blocks=131072' "$OUT/odxtgt/readcap.txt"
check "capacity same as LIO" test "$(grep -E 'Number of logical blocks|Logical block length' "$OUT/odxtgt/readcap.txt")" = \
	"$(grep -E 'Number of logical blocks|Logical block length' "$OUT/lio/readcap.txt")"
check "logout from odxtgt" iscsi_logout "$ODX_IQN" "$ODX_PORT"
iscsi_logout "$LIO_IQN" "$LIO_PORT" >/dev/null
finish
