#!/bin/bash
# 85-dm-faults: a failing disk under a block backstore. LUN 0 is a
# device-mapper device over a loop device over a tmpfs file, served as an
# odxtgt "type: block" backstore (direct: true, so every read and write
# reaches the device, and write_cache: false); LUN 1 is a file LUN, the
# other end of the copies. The table starts as dm-linear, then, with
# dmsetup suspend/load/resume while the initiator stays logged in, becomes:
#
#   - linear with a dm-error hole of BADN blocks at LBA BAD: a READ there
#     gets CHECK CONDITION, MEDIUM ERROR, UNRECOVERED READ ERROR and a WRITE
#     MEDIUM ERROR, WRITE ERROR, both with INFORMATION = the command's LBA
#     (what scsi.ReadError and scsi.WriteError make of EIO); the kernel's
#     dd through /dev/sdX gets EIO; an EXTENDED COPY whose source (or
#     destination) crosses the hole gets COPY ABORTED, THIRD PARTY DEVICE
#     FAILURE with the segment pointer at the failing device's CSCD
#     descriptor, odxtgt's log names the failing side, and no block outside
#     the copy's destination range changes; blocks outside the hole read
#     and write as before and a copy between good ranges still works;
#   - dm-flakey over the same blocks, always down, with error_writes
#     (reads pass, writes get MEDIUM ERROR, WRITE ERROR) and then with
#     drop_writes (the device answers GOOD and keeps the old data: odxtgt
#     reports what the device says and serves nothing from memory);
#   - linear again: everything reads and writes, the failed copy succeeds.
#
# The tmpfs file under the loop device is the ground truth: it is compared
# with a model of what each LUN must hold. Throughout, the session stays
# LOGGED_IN, odxtgt keeps running and logs no error or panic. A missing
# dmsetup, losetup or device-mapper module fails the scenario saying what
# to add to common.sh.
. "$(dirname "$0")/../lib.sh"
odx_require
# The check condition lines (with the backstore's error) are debug ones.
ODX_ARGS="$ODX_ARGS --log-level=debug"
command -v dmsetup >/dev/null || fail "dmsetup is not in the guest: add the Debian package dmsetup to GUEST_PACKAGES in conformance/linuxvm/common.sh"
command -v losetup >/dev/null || fail "losetup is not in the guest: add util-linux to GUEST_PACKAGES in conformance/linuxvm/common.sh"
modprobe dm_mod 2>"$OUT/modprobe.txt" || fail "modprobe dm_mod failed ($(cat "$OUT/modprobe.txt")): add dm_mod to GUEST_MODULES in conformance/linuxvm/common.sh"
modprobe dm_flakey 2>"$OUT/modprobe.txt" || fail "modprobe dm_flakey failed ($(cat "$OUT/modprobe.txt")): add dm_flakey to GUEST_MODULES in conformance/linuxvm/common.sh"
dmsetup targets >"$OUT/dm-targets.txt"
for t in linear error flakey; do
	grep -q "^$t " "$OUT/dm-targets.txt" || fail "device-mapper target $t missing (dmsetup targets: $(paste -sd ' ' "$OUT/dm-targets.txt"))"
done
# No udev runs in the guest: libdevmapper makes the /dev/mapper nodes.
export DM_DISABLE_UDEV=1

MIB=64
BS=512
BLOCKS=$((MIB * 2048))
BAD=65536 # the failing blocks: BADN from LBA BAD (512 KiB at 32 MiB)
BADN=1024
DM=odxdm0
base=$(lun_file dm-base "${MIB}M")
loop=$(losetup --find --show "$base") || fail "losetup $base failed"
log "loop device $loop over $base"

# table KIND prints the dm table: linear over the whole loop device, with
# blocks [BAD, BAD+BADN) mapped by KIND (linear, error, error_writes or
# drop_writes; the last two are dm-flakey, down all the time).
table() {
	local mid
	case $1 in
	linear) mid="linear $loop $BAD" ;;
	error) mid="error" ;;
	error_writes | drop_writes) mid="flakey $loop $BAD 0 3600 1 $1" ;;
	*) fail "table: unknown kind $1" ;;
	esac
	printf '0 %d linear %s 0\n%d %d %s\n%d %d linear %s %d\n' \
		"$BAD" "$loop" "$BAD" "$BADN" "$mid" $((BAD + BADN)) $((BLOCKS - BAD - BADN)) "$loop" $((BAD + BADN))
}
# switch_table KIND swaps the live table (suspend, load, resume).
switch_table() {
	table "$1" >"$WORK/table"
	{ dmsetup suspend "$DM" && dmsetup load "$DM" "$WORK/table" && dmsetup resume "$DM"; } >>"$OUT/dmsetup.txt" 2>&1 ||
		fail "dmsetup could not switch $DM to the $1 table (see $OUT/dmsetup.txt)"
	dmsetup table "$DM" >"$WORK/live"
	cat "$WORK/live" >>"$OUT/dmsetup.txt"
	[ "$(awk 'NR == 2 { print $3 }' "$WORK/live")" = "$(awk 'NR == 2 { print $3 }' "$WORK/table")" ] ||
		fail "$DM does not have the $1 table: $(paste -sd ';' "$WORK/live")"
	log "table of $DM: $1 at LBA $BAD+$BADN"
}
# The EXIT trap removes the device-mapper and loop devices once odxtgt,
# which holds the first, has stopped, and then runs lib.sh's cleanup.
# errexit holds in the trap too: nothing in it may fail before lib_cleanup.
dm_cleanup() {
	dmsetup remove --retry "$DM" >/dev/null 2>&1 || true
	losetup -d "$loop" 2>/dev/null || true
}
trap 'rc=$?; iscsi_reset; odx_stop >/dev/null 2>&1 || true; dm_cleanup; (exit $rc); lib_cleanup' EXIT
table linear >"$WORK/table"
dmsetup create "$DM" "$WORK/table" >>"$OUT/dmsetup.txt" 2>&1 || fail "dmsetup create $DM failed (see $OUT/dmsetup.txt)"
dmsetup mknodes "$DM" >>"$OUT/dmsetup.txt" 2>&1 || true
[ -b "/dev/mapper/$DM" ] || fail "/dev/mapper/$DM missing after dmsetup create"

cfg=$WORK/odxtgt.yaml
{
	echo "backstores:"
	echo "  - {name: dm0, type: block, path: /dev/mapper/$DM, direct: true, write_cache: false}"
	echo "  - {name: f1, type: file, path: $(lun_file f1 "${MIB}M"), size: ${MIB}MiB, write_cache: false}"
	echo "targets:"
	echo "  - iqn: $ODX_IQN"
	echo "    portals: [\"$ADDR:$ODX_PORT\"]"
	echo "    luns: [{lun: 0, backstore: dm0}, {lun: 1, backstore: f1}]"
} >"$cfg"
odx_start "$cfg"
s=$(login_one "$ODX_IQN" "$ODX_PORT")
sg0=$(lun_sg "$s" 0)
sg1=$(lun_sg "$s" 1)
d0=$(lun_disk "$s" 0)
d1=$(lun_disk "$s" 1)
log "LUN 0 (dm) $d0 ($sg0), LUN 1 (file) $d1 ($sg1)"
check "LUN 0 has $BLOCKS blocks" test "$(blockdev --getsz "$d0")" -eq "$BLOCKS"

# ---------------------------------------------------------------- helpers

# be VALUE BYTES prints VALUE as BYTES big-endian bytes in hex, spaced
# (sg_raw's CDB arguments).
be() {
	local i out=()
	for ((i = $2 - 1; i >= 0; i--)); do out+=("$(printf '%02x' $((($1 >> (8 * i)) & 255)))"); done
	echo "${out[*]}"
}
# blocks_of FILE LBA N prints N blocks of FILE from LBA (to stdout).
blocks_of() { dd if="$1" bs=1M skip=$(($2 * BS)) count=$(($3 * BS)) iflag=skip_bytes,count_bytes status=none; }
# lun_sum DEV LBA N: SHA-256 of N blocks of the LUN from LBA, read with O_DIRECT.
lun_sum() {
	dd if="$1" bs=1M skip=$(($2 * BS)) count=$(($3 * BS)) iflag=direct,skip_bytes,count_bytes status=none |
		sha256sum | cut -d' ' -f1
}
file_sum() { blocks_of "$1" "$2" "$3" | sha256sum | cut -d' ' -f1; }
# same DEV MODEL LBA N: those blocks of the LUN read as the model has them.
same() { test "$(lun_sum "$1" "$3" "$4")" = "$(file_sum "$2" "$3" "$4")"; }
# same_outside DEV MODEL LBA N: every block of the LUN outside [LBA,
# LBA+N) reads as the model has it.
same_outside() {
	local total
	total=$(($(blockdev --getsz "$1") * 512 / BS))
	same "$1" "$2" 0 "$3" && same "$1" "$2" $(($3 + $4)) $((total - $3 - $4))
}
# base_same LBA N: the tmpfs file under LUN 0 holds the model's blocks.
base_same() { test "$(file_sum "$base" "$1" "$2")" = "$(file_sum "$WORK/model0" "$1" "$2")"; }
# put DEV MODEL LBA N: N fresh random blocks written at LBA with O_DIRECT
# and recorded in the model; fails when the write fails.
put() {
	head -c $(($4 * BS)) /dev/urandom >"$WORK/put"
	dd if="$WORK/put" of="$1" bs=1M seek=$(($3 * BS)) oflag=direct,seek_bytes conv=notrunc,fsync status=none || return 1
	dd if="$WORK/put" of="$2" bs=1M seek=$(($3 * BS)) oflag=seek_bytes conv=notrunc status=none
}
# raw NAME SG OPTIONS CDB...: sg_raw OPTIONS (one word, split) SG CDB, its
# report kept in $OUT/NAME.txt and shown; returns 0.
raw() {
	local name=$1 sg=$2 opts=$3
	shift 3
	# shellcheck disable=SC2086 # OPTIONS holds several words
	sg_raw -t 60 $opts "$sg" "$@" >"$OUT/$name.txt" 2>&1 || true
	sed 's/^/    /' "$OUT/$name.txt"
}
# sense NAME prints "status | sense key | additional sense" of a report.
sense() {
	local f=$OUT/$1.txt
	printf '%s | %s | %s\n' \
		"$(sed -n 's/^ *SCSI Status: *//p' "$f" | head -n 1 | sed 's/ *$//')" \
		"$(grep -o 'Sense key: [A-Za-z ]*' "$f" | head -n 1 | sed 's/Sense key: //;s/ *$//')" \
		"$(sed -n 's/^ *Additional sense: *//p' "$f" | head -n 1 | sed 's/ *$//')"
}
# info NAME prints the INFORMATION field sg_raw decoded, in decimal.
info() { grep -oE 'Info fld=0x[0-9a-fA-F]+' "$OUT/$1.txt" | head -n 1 | sed 's/.*=//' | xargs -r printf '%d\n'; }
# read16 NAME SG LBA N [OUTFILE] / write16 NAME SG LBA N FILE: READ (16) and
# WRITE (16) through sg_raw.
read16() {
	# shellcheck disable=SC2046 # one argument per CDB byte
	raw "$1" "$2" "-r $(($4 * BS))${5:+ -o $5}" 88 00 $(be "$3" 8) $(be "$4" 4) 00 00
}
write16() {
	# shellcheck disable=SC2046
	raw "$1" "$2" "-s $(($4 * BS)) -i $5" 8a 00 $(be "$3" 8) $(be "$4" 4) 00 00
}
# hex2bin turns hexadecimal digits on standard input into bytes.
hex2bin() { printf '%b' "$(sed 's/../\\x&/g')"; }
naa_of() { identity "$1" | sed -n 's/^naa_value\t0x//p'; }
n0=$(naa_of "$sg0")
n1=$(naa_of "$sg1")
[ ${#n0} -eq 32 ] && [ ${#n1} -eq 32 ] || fail "no NAA designators for the EXTENDED COPY descriptors ($n0, $n1)"
# xcopy_list FILE SRC DST N SRC_LBA DST_LBA writes an EXTENDED COPY (LID1)
# parameter list (SPC-4 6.4.3): two E4h identification CSCDs, LUN 0 (index
# 0) and LUN 1 (index 1), and one block-to-block segment (02h) of N blocks
# from CSCD SRC at SRC_LBA to CSCD DST at DST_LBA, LIST ID USAGE 11b (no
# list identifier kept).
xcopy_list() {
	cscd() { printf 'e4000000010300%s%s0000000000000200' 10 "$1"; }
	{
		printf '00180040''00000000''0000001c''00000000'
		cscd "$n0"
		cscd "$n1"
		printf '02000018''%04x''%04x''0000''%04x''%016x''%016x' "$2" "$3" "$4" "$5" "$6"
	} | hex2bin >"$1"
}
# xcopy NAME SG SRC DST N SRC_LBA DST_LBA sends that EXTENDED COPY to SG.
xcopy() {
	local name=$1 sg=$2
	shift 2
	xcopy_list "$WORK/xcopy.bin" "$@"
	raw "$name" "$sg" "-s 108 -i $WORK/xcopy.bin" 83 00 00 00 00 00 00 00 00 00 00 00 00 6c 00 00
}
good() { grep -q 'SCSI Status: Good' "$OUT/$1.txt"; }
# alive: odxtgt runs and the session is logged in.
alive() { kill -0 "$ODX_PID" 2>/dev/null && test "$(session_state "$s")" = LOGGED_IN; }
# log_has PATTERN: odxtgt's log has a line matching PATTERN (grep -E).
log_has() { grep -qE "$1" "$ODX_LOG"; }

MEDIUM_READ="Check Condition | Medium Error | Unrecovered read error"
MEDIUM_WRITE="Check Condition | Medium Error | Write error"
COPY_FAIL="Check Condition | Copy Aborted | Third party device failure"

# ---------------------------------------------------------------- linear

random_file "$WORK/model0" "$MIB"
random_file "$WORK/model1" "$MIB"
check "linear: fill LUN 0 with $MIB MiB" write_direct "$WORK/model0" "$d0"
check "fill LUN 1 with $MIB MiB" write_direct "$WORK/model1" "$d1"
check "linear: LUN 0 reads back whole" same "$d0" "$WORK/model0" 0 "$BLOCKS"
check "linear: the file under the loop device holds it" base_same 0 "$BLOCKS"

# ---------------------------------------------------------------- dm-error

switch_table error
check "error: blocks before the hole read right" same "$d0" "$WORK/model0" 0 "$BAD"
check "error: blocks after the hole read right" same "$d0" "$WORK/model0" $((BAD + BADN)) $((BLOCKS - BAD - BADN))
check "error: write 1 MiB before the hole" put "$d0" "$WORK/model0" 2048 2048
check "error: write 1 MiB after the hole" put "$d0" "$WORK/model0" 98304 2048
check "error: both read back" eval 'same "$d0" "$WORK/model0" 2048 2048 && same "$d0" "$WORK/model0" 98304 2048'

read16 err-read "$sg0" $((BAD + 16)) 8
check "error: READ (16) of 8 blocks in the hole: $MEDIUM_READ" test "$(sense err-read)" = "$MEDIUM_READ"
check "error: its INFORMATION is the command's LBA $((BAD + 16))" test "$(info err-read)" = $((BAD + 16))
read16 err-read-cross "$sg0" $((BAD - 8)) 16
check "error: READ (16) crossing into the hole: $MEDIUM_READ" test "$(sense err-read-cross)" = "$MEDIUM_READ"
check "error: its INFORMATION is the command's LBA $((BAD - 8))" test "$(info err-read-cross)" = $((BAD - 8))
head -c $((8 * BS)) /dev/urandom >"$WORK/w8"
write16 err-write "$sg0" $((BAD + 32)) 8 "$WORK/w8"
check "error: WRITE (16) of 8 blocks in the hole: $MEDIUM_WRITE" test "$(sense err-write)" = "$MEDIUM_WRITE"
check "error: its INFORMATION is the command's LBA $((BAD + 32))" test "$(info err-write)" = $((BAD + 32))
check "error: the hole's blocks under the device are unchanged" base_same "$BAD" "$BADN"
check "error: dd through the kernel's disk gets EIO reading the hole" \
	eval '! dd if="$d0" of=/dev/null bs=4096 skip=$((BAD * BS / 4096)) count=1 iflag=direct status=none 2>"$OUT/dd-read.txt"'
check "error: dd through the kernel's disk gets EIO writing the hole" \
	eval '! dd if=/dev/zero of="$d0" bs=4096 seek=$((BAD * BS / 4096)) count=1 oflag=direct conv=notrunc status=none 2>"$OUT/dd-write.txt"'
dmesg >"$OUT/dmesg-error.txt"
check "error: the kernel logged the MEDIUM ERROR sense" grep -qiE 'Medium Error|Unrecovered read error' "$OUT/dmesg-error.txt"
check "error: odxtgt logged the reads as MEDIUM ERROR, UNRECOVERED READ ERROR from the device's EIO" \
	log_has 'check condition.*MEDIUM ERROR: UNRECOVERED READ ERROR.*input/output error'
check "error: odxtgt logged the writes as MEDIUM ERROR, WRITE ERROR from the device's EIO" \
	log_has 'check condition.*MEDIUM ERROR: WRITE ERROR.*input/output error'
check "error: odxtgt and the session are alive" alive

# EXTENDED COPY, LUN 0 -> LUN 1, 16384 blocks whose source crosses the hole:
# the first 4 MiB buffer is good, the second holds the hole.
XS=$((BAD - 10240)) XN=16384 XD=16384
xcopy xcopy-src "$sg1" 0 1 "$XN" "$XS" "$XD"
check "error: EXTENDED COPY with the hole in its source: $COPY_FAIL" test "$(sense xcopy-src)" = "$COPY_FAIL"
check "error: its segment pointer names byte 16, CSCD 0 (LUN 0, the failing source)" \
	grep -q 'Segment pointer: Relative to start of parameter list, byte 16' "$OUT/xcopy-src.txt"
check "error: odxtgt logged the copy failing on the source's MEDIUM ERROR" \
	log_has 'copy failed.*segment 0, source: MEDIUM ERROR: UNRECOVERED READ ERROR'
check "error: LUN 1 outside the copy's destination range is unchanged" same_outside "$d1" "$WORK/model1" "$XD" "$XN"
if same "$d1" "$WORK/model1" "$XD" "$XN"; then
	log "error: the failed copy wrote nothing to its destination"
else
	log "error: the failed copy wrote part of its destination range (the buffers before the failing one; only that range may change)"
fi
# The model no longer knows LUN 1's destination range: take it from LUN 1.
dd if="$d1" of="$WORK/model1" bs=1M skip=$((XD * BS)) seek=$((XD * BS)) count=$((XN * BS)) \
	iflag=direct,skip_bytes,count_bytes oflag=seek_bytes conv=notrunc status=none
sg_xcopy if="$sg0" of="$sg1" bs=512 skip=$((BAD - 512)) seek=40000 count=2048 >"$OUT/sg_xcopy-hole.txt" 2>&1 && rc=0 || rc=$?
sed 's/^/    /' "$OUT/sg_xcopy-hole.txt"
check "error: sg_xcopy across the hole fails (exit $rc)" test "$rc" -ne 0
check "error: sg_xcopy reports COPY ABORTED" grep -qi 'copy aborted' "$OUT/sg_xcopy-hole.txt"
check "error: LUN 1 outside sg_xcopy's destination range is unchanged" same_outside "$d1" "$WORK/model1" 40000 2048
dd if="$d1" of="$WORK/model1" bs=1M skip=$((40000 * BS)) seek=$((40000 * BS)) count=$((2048 * BS)) \
	iflag=direct,skip_bytes,count_bytes oflag=seek_bytes conv=notrunc status=none

# LUN 1 -> LUN 0, with the hole in the destination.
YS=0 YN=4096 YD=$((BAD - 2048))
xcopy xcopy-dst "$sg0" 1 0 "$YN" "$YS" "$YD"
check "error: EXTENDED COPY with the hole in its destination: $COPY_FAIL" test "$(sense xcopy-dst)" = "$COPY_FAIL"
check "error: its segment pointer names byte 16, CSCD 0 (LUN 0, the failing destination)" \
	grep -q 'Segment pointer: Relative to start of parameter list, byte 16' "$OUT/xcopy-dst.txt"
check "error: odxtgt logged the copy failing on the destination's MEDIUM ERROR" \
	log_has 'copy failed.*segment 0, destination: MEDIUM ERROR: WRITE ERROR'
check "error: LUN 0 before the copy's destination reads as before" same "$d0" "$WORK/model0" 0 "$YD"
check "error: LUN 0 after the copy's destination reads as before" \
	same "$d0" "$WORK/model0" $((YD + YN)) $((BLOCKS - YD - YN))
check "error: nothing outside the destination changed under the device" \
	eval 'base_same 0 "$YD" && base_same $((YD + YN)) $((BLOCKS - YD - YN))'
check "error: the hole's blocks under the device are unchanged" base_same "$BAD" "$BADN"

# A copy between good ranges still works.
xcopy xcopy-good "$sg1" 0 1 4096 0 60000
check "error: EXTENDED COPY between good ranges is GOOD" good xcopy-good
check "error: its destination holds the source" test "$(lun_sum "$d1" 60000 4096)" = "$(lun_sum "$d0" 0 4096)"
blocks_of "$WORK/model0" 0 4096 | dd of="$WORK/model1" bs=1M seek=$((60000 * BS)) oflag=seek_bytes conv=notrunc status=none
check "error: odxtgt and the session are alive" alive

# ---------------------------------------------------------------- dm-flakey

switch_table error_writes
read16 fl-read "$sg0" "$BAD" 8 "$WORK/fl-read.bin"
check "flakey error_writes: READ (16) in the range is GOOD" good fl-read
check "flakey error_writes: it returns the blocks under the device" \
	cmp -s "$WORK/fl-read.bin" <(blocks_of "$base" "$BAD" 8)
write16 fl-write "$sg0" $((BAD + 8)) 8 "$WORK/w8"
check "flakey error_writes: WRITE (16) in the range: $MEDIUM_WRITE" test "$(sense fl-write)" = "$MEDIUM_WRITE"
check "flakey error_writes: its INFORMATION is the command's LBA $((BAD + 8))" test "$(info fl-write)" = $((BAD + 8))
check "flakey error_writes: the blocks under the device are unchanged" base_same "$BAD" "$BADN"
check "flakey error_writes: blocks outside the range still read right" \
	eval 'same "$d0" "$WORK/model0" 0 "$YD" && same "$d0" "$WORK/model0" $((YD + YN)) 8192'

switch_table drop_writes
write16 fl-drop "$sg0" $((BAD + 16)) 8 "$WORK/w8"
check "flakey drop_writes: WRITE (16) is GOOD (the device claims success)" good fl-drop
read16 fl-drop-read "$sg0" $((BAD + 16)) 8 "$WORK/fl-drop.bin"
check "flakey drop_writes: the read after it is GOOD" good fl-drop-read
check "flakey drop_writes: it returns the old blocks, not the dropped write (nothing served from memory)" \
	cmp -s "$WORK/fl-drop.bin" <(blocks_of "$WORK/model0" $((BAD + 16)) 8)
check "flakey: odxtgt and the session are alive" alive

# ---------------------------------------------------------------- linear again

switch_table linear
check "linear again: rewrite the failed copy's destination and the hole" put "$d0" "$WORK/model0" "$YD" "$YN"
check "linear again: LUN 0 reads back whole" same "$d0" "$WORK/model0" 0 "$BLOCKS"
check "linear again: the file under the loop device holds it" base_same 0 "$BLOCKS"
read16 lin-read "$sg0" "$BAD" 8
check "linear again: READ (16) of the former hole is GOOD" good lin-read
xcopy xcopy-again "$sg1" 0 1 "$XN" "$XS" "$XD"
check "linear again: the EXTENDED COPY that failed is GOOD" good xcopy-again
check "linear again: its destination holds the source" test "$(lun_sum "$d1" "$XD" "$XN")" = "$(lun_sum "$d0" "$XS" "$XN")"
blocks_of "$WORK/model0" "$XS" "$XN" | dd of="$WORK/model1" bs=1M seek=$((XD * BS)) oflag=seek_bytes conv=notrunc status=none
check "linear again: LUN 1 holds its model" same "$d1" "$WORK/model1" 0 "$BLOCKS"
check "linear again: odxtgt and the session are alive" alive

check "no errors or panics in the odxtgt log" test "$(odx_errors | wc -l)" -eq 0
check "logout" iscsi_logout "$ODX_IQN" "$ODX_PORT"
check "odxtgt exits 0 on SIGTERM" odx_stop
finish
