#!/bin/bash
# 90-vaai: the block commands VMware's VAAI and Linux's discard use, through
# the kernel initiator with sg3_utils: COMPARE AND WRITE (match and
# miscompare), WRITE SAME (10) and (16) with a pattern, with UNMAP and with
# NDOB, UNMAP, GET LBA STATUS; then mkfs.ext4 (which discards the whole
# LUN), files written and deleted, fstrim, and fsck clean afterwards. The
# LUN file lives on tmpfs, so deallocation shows as the file's allocated
# size shrinking. The same commands then run against a LIO fileio LUN (with
# emulate_tpu and emulate_tpws set) in the same guest; LIO's results are
# only logged, for comparison.
. "$(dirname "$0")/../lib.sh"
odx_require

SIZE_MIB=256
BS=512

# allocated FILE prints the bytes FILE takes on its file system.
allocated() { echo $(($(stat -c '%b * %B' "$1"))); }

# read_blocks DEV LBA N FILE reads N blocks at LBA with O_DIRECT into FILE,
# in 1 MiB reads (block-sized ones are slow under TCG).
read_blocks() {
	dd if="$1" of="$4" bs=1M skip=$(($2 * BS)) count=$(($3 * BS)) iflag=direct,skip_bytes,count_bytes status=none
}

# zeroes LBA N DEV: the blocks read as zeroes.
zeroes() {
	read_blocks "$3" "$1" "$2" "$WORK/got"
	cmp -s "$WORK/got" <(head -c $(($2 * BS)) /dev/zero)
}

# same_blocks DEV LBA N FILE: the blocks hold FILE.
same_blocks() {
	read_blocks "$1" "$2" "$3" "$WORK/got"
	cmp -s "$WORK/got" "$4"
}

# repeat FILE N OUT writes FILE N times to OUT.
repeat() {
	local i
	: >"$3"
	for ((i = 0; i < $2; i++)); do cat "$1"; done >>"$3"
}

# lba_status SG LBA prints the provisioning status GET LBA STATUS gives the
# first descriptor at LBA (0 mapped, 1 deallocated), from sg_get_lba_status
# --brief (after its header lines, "LBA BLOCKS STATUS ..." per descriptor).
lba_status() {
	sg_get_lba_status --brief --lba="$2" "$1" 2>>"$OUT/$LABEL-lba-status.txt" | tee -a "$OUT/$LABEL-lba-status.txt" |
		awk '/^0x/ { print $3; exit }'
}

# expect DESC CMD...: a check against odxtgt; against LIO only logged.
expect() {
	if [ "$LABEL" = odxtgt ]; then
		check "$@"
	elif "${@:2}"; then
		log "LIO: ok: $1"
	else
		log "LIO: differs: $1 (reference only)"
	fi
}

# suite SG DISK FILE runs every check on one LUN whose backing file is FILE.
suite() {
	local sg=$1 disk=$2 file=$3 before rc
	log "$LABEL: $disk ($sg), backed by $file"

	# What the LUN reports.
	sg_readcap -l "$sg" >"$OUT/$LABEL-readcap.txt" 2>&1 || true
	sg_vpd -p bl "$sg" >"$OUT/$LABEL-vpd-bl.txt" 2>&1 || true
	sg_vpd -p lbpv "$sg" >"$OUT/$LABEL-vpd-lbpv.txt" 2>&1 || true
	sg_opcodes "$sg" >"$OUT/$LABEL-opcodes.txt" 2>&1 || true
	expect "READ CAPACITY (16): LBPME and LBPRZ set" \
		grep -qE 'lbpme=1, lbprz=1' "$OUT/$LABEL-readcap.txt"
	expect "Block Limits: a maximum COMPARE AND WRITE length" \
		grep -qiE 'compare and write length: *[1-9]' "$OUT/$LABEL-vpd-bl.txt"
	expect "Block Limits: a maximum unmap LBA count" \
		grep -qiE 'maximum unmap LBA count: *[1-9]' "$OUT/$LABEL-vpd-bl.txt"
	expect "Block Limits: a maximum write same length" \
		grep -qiE 'maximum write same length: *0x[1-9a-f]|maximum write same length: *[1-9]' "$OUT/$LABEL-vpd-bl.txt"
	expect "Logical Block Provisioning: LBPU, LBPWS, LBPWS10" \
		eval "grep -qE 'LBPU\): 1' '$OUT/$LABEL-vpd-lbpv.txt' && grep -qE 'LBPWS\): 1' '$OUT/$LABEL-vpd-lbpv.txt' && grep -qE 'LBPWS10\): 1' '$OUT/$LABEL-vpd-lbpv.txt'"
	local mode
	mode=$(cat /sys/block/"${disk##*/}"/device/scsi_disk/*/provisioning_mode 2>/dev/null || echo unknown)
	log "$LABEL: Linux provisioning_mode $mode, discard_max_bytes $(cat /sys/block/"${disk##*/}"/queue/discard_max_bytes)"
	expect "Linux discards with UNMAP" test "$mode" = unmap

	# COMPARE AND WRITE: compare block A, write block B.
	head -c $BS /dev/urandom >"$WORK/a"
	head -c $BS /dev/urandom >"$WORK/b"
	cat "$WORK/a" "$WORK/b" >"$WORK/caw"
	dd if="$WORK/a" of="$disk" bs=$BS seek=1000 oflag=direct conv=notrunc status=none
	expect "sg_compare_and_write: match" run_logged "$LABEL-caw-match.txt" \
		sg_compare_and_write --in="$WORK/caw" --lba=1000 --num=1 "$sg"
	expect "COMPARE AND WRITE wrote the block" same_blocks "$disk" 1000 1 "$WORK/b"
	rc=0
	sg_compare_and_write --in="$WORK/caw" --lba=1000 --num=1 "$sg" >"$OUT/$LABEL-caw-miscompare.txt" 2>&1 || rc=$?
	expect "sg_compare_and_write: miscompare (exit status 14)" test "$rc" -eq 14
	expect "a miscompare writes nothing" same_blocks "$disk" 1000 1 "$WORK/b"
	head -c $((8 * BS)) /dev/urandom >"$WORK/a8"
	head -c $((8 * BS)) /dev/urandom >"$WORK/b8"
	cat "$WORK/a8" "$WORK/b8" >"$WORK/caw8"
	dd if="$WORK/a8" of="$disk" bs=$BS seek=1100 oflag=direct conv=notrunc status=none
	expect "sg_compare_and_write of 8 blocks" run_logged "$LABEL-caw-8.txt" \
		sg_compare_and_write --in="$WORK/caw8" --lba=1100 --num=8 "$sg"
	expect "COMPARE AND WRITE of 8 blocks wrote them" same_blocks "$disk" 1100 8 "$WORK/b8"

	# WRITE SAME with a pattern.
	head -c $BS /dev/urandom >"$WORK/p"
	repeat "$WORK/p" 64 "$WORK/p64"
	expect "sg_write_same --10 of 64 blocks" run_logged "$LABEL-ws10.txt" \
		sg_write_same --10 --in="$WORK/p" --lba=2000 --num=64 "$sg"
	expect "WRITE SAME (10): every block holds the pattern" same_blocks "$disk" 2000 64 "$WORK/p64"
	repeat "$WORK/p64" 64 "$WORK/p4096"
	expect "sg_write_same --16 of 4096 blocks" run_logged "$LABEL-ws16.txt" \
		sg_write_same --16 --in="$WORK/p" --lba=4000 --num=4096 "$sg"
	expect "WRITE SAME (16): every block holds the pattern" same_blocks "$disk" 4000 4096 "$WORK/p4096"

	# WRITE SAME (16) with UNMAP: 8 MiB at 8 MiB, first filled.
	random_file "$WORK/r8" 8
	write_direct "$WORK/r8" "$disk" 8
	before=$(allocated "$file")
	expect "sg_write_same --16 --unmap of 8 MiB" run_logged "$LABEL-ws16-unmap.txt" \
		sg_write_same --16 --unmap --lba=16384 --num=16384 "$sg"
	expect "WRITE SAME with UNMAP: the blocks read as zeroes" zeroes 16384 16384 "$disk"
	log "$LABEL: backing file allocation $before -> $(allocated "$file") bytes"
	expect "WRITE SAME with UNMAP freed the space" test "$(allocated "$file")" -le $((before - 7 * 1048576))
	expect "GET LBA STATUS: deallocated" test "$(lba_status "$sg" 16384)" = 1
	expect "GET LBA STATUS: the blocks of the WRITE SAME (16) above are mapped" test "$(lba_status "$sg" 4000)" = 0

	# WRITE SAME (10) with UNMAP and WRITE SAME (16) with NDOB.
	write_direct "$WORK/r8" "$disk" 8
	expect "sg_write_same --10 --unmap of 1 MiB" run_logged "$LABEL-ws10-unmap.txt" \
		sg_write_same --10 --unmap --lba=16384 --num=2048 "$sg"
	expect "WRITE SAME (10) with UNMAP: zeroes" zeroes 16384 2048 "$disk"
	expect "sg_write_same --16 --ndob of 1 MiB" run_logged "$LABEL-ws16-ndob.txt" \
		sg_write_same --16 --ndob --lba=18432 --num=2048 "$sg"
	expect "WRITE SAME (16) with NDOB: zeroes" zeroes 18432 2048 "$disk"
	expect "the blocks after are untouched" same_blocks "$disk" 20480 2048 <(tail -c +$((2 * 1048576 + 1)) "$WORK/r8" | head -c 1048576)

	# UNMAP of two ranges of the 8 MiB at 20 MiB: its first 2 MiB and its
	# last 4 MiB.
	write_direct "$WORK/r8" "$disk" 20
	before=$(allocated "$file")
	expect "sg_unmap of two ranges (6 MiB)" run_logged "$LABEL-unmap.txt" \
		sg_unmap --force --lba=40960,49152 --num=4096,8192 "$sg"
	expect "UNMAP: the blocks read as zeroes" eval "zeroes 40960 4096 '$disk' && zeroes 49152 8192 '$disk'"
	expect "UNMAP: the blocks between keep their data" \
		same_blocks "$disk" 45056 4096 <(tail -c +$((2 * 1048576 + 1)) "$WORK/r8" | head -c $((2 * 1048576)))
	log "$LABEL: backing file allocation $before -> $(allocated "$file") bytes"
	expect "UNMAP freed the space" test "$(allocated "$file")" -le $((before - 5 * 1048576))
	expect "GET LBA STATUS after UNMAP: deallocated" test "$(lba_status "$sg" 40960)" = 1
	expect "GET LBA STATUS: written blocks are mapped" test "$(lba_status "$sg" 45056)" = 0

	# A file system: mkfs discards, fstrim gives deleted files back.
	local mnt=/mnt/$SCENARIO-$LABEL
	mkdir -p "$mnt"
	expect "mkfs.ext4 (discarding the LUN)" run_logged "$LABEL-mkfs.txt" mkfs.ext4 -F "$disk"
	log "$LABEL: allocation after mkfs: $(allocated "$file") bytes"
	mount -o nodiscard "$disk" "$mnt" || fail "$LABEL: mount $disk failed"
	random_file "$mnt/keep" 16
	random_file "$mnt/gone" 96
	sync
	before=$(allocated "$file")
	rm "$mnt/gone"
	sync
	expect "fstrim" run_logged "$LABEL-fstrim.txt" fstrim -v "$mnt"
	log "$LABEL: allocation after deleting 96 MiB and fstrim: $before -> $(allocated "$file") bytes"
	expect "fstrim freed the deleted file's space" test "$(allocated "$file")" -le $((before - 80 * 1048576))
	local keep
	keep=$(sum_file "$mnt/keep")
	umount "$mnt"
	drop_caches
	expect "fsck -n clean after fstrim" run_logged "$LABEL-fsck.txt" e2fsck -fn "$disk"
	mount -o ro "$disk" "$mnt" || fail "$LABEL: second mount failed"
	expect "the kept file is intact" test "$(sum_file "$mnt/keep")" = "$keep"
	umount "$mnt"
}

LABEL=odxtgt
cfg=$WORK/odxtgt.yaml
odx_config "$cfg" disk0 ${SIZE_MIB}M
odx_start "$cfg"
s=$(login_one "$ODX_IQN" "$ODX_PORT")
suite "$(lun_sg "$s" 0)" "$(lun_disk "$s" 0)" "$WORK/disk0.img"
check "no errors in the odxtgt log" test "$(odx_errors | wc -l)" -eq 0
check "logout from odxtgt" iscsi_logout "$ODX_IQN" "$ODX_PORT"
check "odxtgt exits 0 on SIGTERM" odx_stop

# The same against LIO (reference: only logged).
LABEL=lio
lio_start lio0 ${SIZE_MIB}M
for a in emulate_tpu emulate_tpws; do
	f=$(ls -d /sys/kernel/config/target/core/fileio_*/lio0/attrib/$a 2>/dev/null | head -n1)
	[ -n "$f" ] && echo 1 >"$f" 2>>"$OUT/targetcli.log" || log "LIO: could not set $a"
done
sl=$(login_one "$LIO_IQN" "$LIO_PORT")
suite "$(lun_sg "$sl" 0)" "$(lun_disk "$sl" 0)" "$WORK/lio-lio0.img"
iscsi_logout "$LIO_IQN" "$LIO_PORT" >/dev/null || true
finish
