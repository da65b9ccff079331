#!/bin/bash
# 70-xcopy: EXTENDED COPY through the kernel initiator with sg3_utils and
# ddpt. odxtgt serves two 1 GiB LUNs: sg_xcopy copies 1 GiB of random data
# from one to the other (verified with cmp after dropping caches), then
# runs the list_id/id_usage variants, a copy within one LUN and a cross
# LUN copy back; sg_copy_results reads every service action; ddpt --xcopy
# copies one command's worth of blocks (Debian's ddpt 0.97 repeats its
# first XCOPY when a copy needs several); and sg_raw sends the parameter
# list VMware ESXi sends (LID1, two E4h NAA CSCDs, one 02h segment of
# 4 MiB, LIST ID USAGE 10b). The same sg_xcopy commands then run against
# two LIO fileio LUNs in the same guest.
. "$(dirname "$0")/../lib.sh"
odx_require

BIG_MIB=${XCOPY_MIB:-1024}
SMALL=64M
cfg=$WORK/odxtgt.yaml
{
	echo "backstores:"
	echo "  - {name: src, type: file, path: $(lun_file src ${BIG_MIB}M), size: ${BIG_MIB}MiB}"
	echo "  - {name: dst, type: file, path: $(lun_file dst ${BIG_MIB}M), size: ${BIG_MIB}MiB}"
	echo "targets:"
	echo "  - iqn: $ODX_IQN"
	echo "    portals: [\"$ADDR:$ODX_PORT\"]"
	echo "    luns: [{lun: 0, backstore: src}, {lun: 1, backstore: dst}]"
} >"$cfg"
odx_start "$cfg"
s=$(login_one "$ODX_IQN" "$ODX_PORT")
sg0=$(lun_sg "$s" 0)
sg1=$(lun_sg "$s" 1)
d0=$(lun_disk "$s" 0)
d1=$(lun_disk "$s" 1)
log "odxtgt LUN 0 $d0 ($sg0), LUN 1 $d1 ($sg1)"
blocks=$((BIG_MIB * 2048))

# range_sum DEV LBA BLOCKS: SHA-256 of 512-byte blocks read with O_DIRECT.
range_sum() {
	dd if="$1" bs=1M skip=$(($2 * 512)) count=$(($3 * 512)) iflag=direct,skip_bytes,count_bytes status=none |
		sha256sum | cut -d' ' -f1
}

check "fill LUN 0 with ${BIG_MIB} MiB of random data" \
	dd if=/dev/urandom of="$d0" bs=1M count="$BIG_MIB" oflag=direct status=none
t0=$(date +%s.%N)
check "sg_xcopy ${BIG_MIB} MiB LUN 0 -> LUN 1" run_logged sg_xcopy-big.txt \
	sg_xcopy if="$sg0" of="$sg1" bs=512 count="$blocks"
t1=$(date +%s.%N)
log "sg_xcopy of ${BIG_MIB} MiB took $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s"
drop_caches
check "cmp: LUN 1 holds LUN 0's data" cmp "$d0" "$d1"

# Variants: explicit list identifiers and usages, bpt, skip and seek.
check "sg_xcopy list_id=5 id_usage=hold" run_logged sg_xcopy-hold.txt \
	sg_xcopy if="$sg0" of="$sg1" bs=512 count=4096 skip=100 seek=200000 list_id=5 id_usage=hold
check "sg_copy_results --failed of list 5: no failure" run_logged rcr--failed.txt \
	sg_copy_results --failed --list_id=5 "$sg1"
check "sg_copy_results --status of list 5 (held)" run_logged rcr--status.txt \
	sg_copy_results --status --list_id=5 "$sg1"
check "copy status reports completion" grep -qi 'completed' "$OUT/rcr--status.txt"
check "reading the final status released list 5" \
	eval '! sg_copy_results --status --list_id=5 "$sg1" >"$OUT/rcr-released.txt" 2>&1'
check "sg_copy_results --params" run_logged rcr--params.txt sg_copy_results --params "$sg1"
check "operating parameters: 64 CSCDs" grep -qiE 'descriptor count: *64' "$OUT/rcr--params.txt"
# RECEIVE COPY DATA (LID1), service action 01h, returns held data, which the
# copy manager never holds (HELD DATA LIMIT 0): it is refused as not
# implemented, and the target goes on.
check "sg_copy_results --receive (RECEIVE COPY DATA) is refused" \
	eval '! sg_copy_results --receive --list_id=5 "$sg1" >"$OUT/rcr--receive.txt" 2>&1'
check "... as an illegal request" grep -qi 'illegal request\|invalid' "$OUT/rcr--receive.txt"
check "sg_xcopy id_usage=discard" run_logged sg_xcopy-discard.txt \
	sg_xcopy if="$sg0" of="$sg1" bs=512 count=4096 list_id=7 id_usage=discard
check "sg_xcopy id_usage=disable (list id 0)" run_logged sg_xcopy-disable.txt \
	sg_xcopy if="$sg0" of="$sg1" bs=512 count=4096 id_usage=disable
check "sg_xcopy bpt=128 (many commands)" run_logged sg_xcopy-bpt.txt \
	sg_xcopy if="$sg0" of="$sg1" bs=512 count=8192 skip=300000 seek=300000 bpt=128
check "held copy: destination range right" \
	test "$(range_sum "$d1" 200000 4096)" = "$(range_sum "$d0" 100 4096)"
check "many commands: destination range right" \
	test "$(range_sum "$d1" 300000 8192)" = "$(range_sum "$d0" 300000 8192)"
check "sg_xcopy within LUN 0" run_logged sg_xcopy-same.txt \
	sg_xcopy if="$sg0" of="$sg0" bs=512 count=2048 skip=0 seek=$((blocks - 2048))
check "same LUN: destination range right" \
	test "$(range_sum "$d0" $((blocks - 2048)) 2048)" = "$(range_sum "$d0" 0 2048)"
check "sg_xcopy sent to the source (iflag=xcopy)" run_logged sg_xcopy-src.txt \
	sg_xcopy if="$sg1" of="$sg0" bs=512 count=2048 skip=1000 seek=500000 iflag=xcopy
check "cross LUN back: destination range right" \
	test "$(range_sum "$d0" 500000 2048)" = "$(range_sum "$d1" 1000 2048)"


check "ddpt --xcopy, one command's worth" run_logged ddpt-xcopy.txt \
	ddpt if="$sg0" of="$sg1" bs=512 bpt=2048 count=2048 skip=600000 seek=700000 --xcopy
check "ddpt copy: destination range right" \
	test "$(range_sum "$d1" 700000 2048)" = "$(range_sum "$d0" 600000 2048)"

# The parameter list ESXi sends, built byte by byte.
naa_of() { identity "$1" | sed -n 's/^naa_value\t0x//p'; }
n0=$(naa_of "$sg0")
n1=$(naa_of "$sg1")
check "both LUNs have NAA designators" test ${#n0} -eq 32 -a ${#n1} -eq 32
cscd() { printf 'e4000000010300%s%s0000000000000200' 10 "$1"; }
# hex2bin turns hexadecimal digits on standard input into bytes.
hex2bin() { printf '%b' "$(sed 's/../\\x&/g')"; }
{
	printf '01100040''00000000''0000001c''00000000' # list 1, usage 10b, 64 bytes of CSCDs, 28 of segments
	cscd "$n0"
	cscd "$n1"
	# 02h, 4 MiB = 8192 blocks, LBA 800000 -> LBA 900000.
	printf '02000018''0000''0001''0000''2000''%016x''%016x' 800000 900000
} | hex2bin >"$WORK/esxi.bin"
check "ESXi-shaped parameter list is 108 bytes" test "$(stat -c %s "$WORK/esxi.bin")" -eq 108
check "sg_raw EXTENDED COPY (LID1) as ESXi sends it" run_logged esxi.txt \
	sg_raw -s 108 -i "$WORK/esxi.bin" "$sg1" 83 00 00 00 00 00 00 00 00 00 00 00 00 6c 00 00
check "ESXi copy: destination range right" \
	test "$(range_sum "$d1" 900000 8192)" = "$(range_sum "$d0" 800000 8192)"
check "odxtgt logged the copies" grep -q 'msg="copy finished"' "$ODX_LOG"
check "no errors in the odxtgt log" test "$(odx_errors | wc -l)" -eq 0
check "logout from odxtgt" iscsi_logout "$ODX_IQN" "$ODX_PORT"
odx_stop >/dev/null
rm -f "$WORK"/src.img "$WORK"/dst.img

# The same sg_xcopy commands against LIO (reference: only logged).
lio_start lio0 "$SMALL"
targetcli_batch <<-EOF
	/backstores/fileio create name=lio1 file_or_dev=$(lun_file lio-lio1 "$SMALL") size=$SMALL write_back=false
	/iscsi/$LIO_IQN/tpg1/luns create /backstores/fileio/lio1
EOF
sl=$(login_one "$LIO_IQN" "$LIO_PORT")
lg0=$(lun_sg "$sl" 0)
lg1=$(lun_sg "$sl" 1)
for args in "count=65535" "count=4096 list_id=5 id_usage=hold" "count=4096 id_usage=disable" "count=8192 bpt=128"; do
	# shellcheck disable=SC2086 # args holds several words
	if sg_xcopy if="$lg0" of="$lg1" bs=512 $args >>"$OUT/lio-sg_xcopy.txt" 2>&1; then
		log "LIO: sg_xcopy $args: ok"
	else
		log "LIO: sg_xcopy $args: failed (reference only)"
	fi
done
sg_copy_results --params "$lg1" >"$OUT/lio-rcr-params.txt" 2>&1 || log "LIO: sg_copy_results --params failed"
iscsi_logout "$LIO_IQN" "$LIO_PORT" >/dev/null
finish
