#!/bin/bash
# fio-throughput: fio (libaio, O_DIRECT) through the kernel initiator against
# odxtgt, LIO fileio and tgt, all three backed by files on the guest's tmpfs:
# 4 KiB random write at QD32, 1 MiB sequential write at QD8 and a 4 KiB
# random 70/30 read/write mix at QD32, BENCH_SECONDS (default 8) each, over
# BENCH_ROUNDS (default 3) rounds with the targets alternating. Prints the
# medians and the ratios odxtgt/LIO and odxtgt/tgt. A benchmark, not a
# test: it fails only when it cannot measure. Under TCG absolute numbers
# are low; track the ratios.
. "$(dirname "$0")/../lib.sh"
odx_require
command -v fio >/dev/null || fail "fio is not in the guest (conformance/linuxvm/common.sh GUEST_PACKAGES)"
command -v tgtd >/dev/null || fail "tgtd is not in the guest (package tgt in GUEST_PACKAGES)"

MIB=256
SECS=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
TGT_PORT=3262
TGT_IQN=iqn.2025-01.io.odxtgt:tgt-guest

odx_config "$WORK/odxtgt.yaml" bench "${MIB}M"
odx_start "$WORK/odxtgt.yaml"
lio_start bench "${MIB}M"

# tgt: one target, LUN 1 on a tmpfs file, open to every initiator.
tgt_img=$(lun_file tgt-bench "${MIB}M")
tgtd -f --iscsi portal=$ADDR:$TGT_PORT >"$OUT/tgtd.log" 2>&1 &
TGTD_PID=$!
wait_for 20 port_listening "$TGT_PORT" || fail "tgtd did not listen on $TGT_PORT (see $OUT/tgtd.log)"
tgtadm --lld iscsi --op new --mode target --tid 1 -T "$TGT_IQN" || fail "tgtadm: new target"
tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$tgt_img" || fail "tgtadm: new LUN"
tgtadm --lld iscsi --op bind --mode target --tid 1 -I ALL || fail "tgtadm: bind"
# stop_tgtd logs out of tgt and takes it down (tgtd does not stop on
# SIGTERM while it has targets).
stop_tgtd() {
	timeout 30 iscsiadm -m node -T "$TGT_IQN" -p "$ADDR:$TGT_PORT" --logout >/dev/null 2>&1 || true
	tgtadm --lld iscsi --op update --mode target --tid 1 -n state -v offline >/dev/null 2>&1 || true
	tgtadm --lld iscsi --op delete --mode target --tid 1 --force >/dev/null 2>&1 || true
	tgtadm --op delete --mode system >/dev/null 2>&1 || true
	kill -KILL "$TGTD_PID" 2>/dev/null || true
	wait "$TGTD_PID" 2>/dev/null || true
}
# lib_cleanup reads the script's exit status from $?: keep it for it.
trap 'rc=$?; stop_tgtd; (exit $rc); lib_cleanup' EXIT

declare -A DISK
DISK[odxtgt]=$(lun_disk "$(login_one "$ODX_IQN" "$ODX_PORT")" 0)
DISK[lio]=$(lun_disk "$(login_one "$LIO_IQN" "$LIO_PORT")" 0)
DISK[tgt]=$(lun_disk "$(login_one "$TGT_IQN" "$TGT_PORT")" 1)

# run_fio DISK ARGS...: prints the IOPS and MB/s (reads and writes summed)
# of one fio run.
run_fio() {
	local d=$1
	shift
	fio --name=bench --filename="$d" --direct=1 --ioengine=libaio --time_based --runtime="$SECS" \
		--ramp_time=1 --size="${MIB}M" --randrepeat=1 --group_reporting --output-format=json "$@" 2>>"$OUT/fio.err" |
		python3 -c 'import json, sys
j = json.load(sys.stdin)["jobs"][0]
print("%.0f %.1f" % (j["read"]["iops"] + j["write"]["iops"], (j["read"]["bw_bytes"] + j["write"]["bw_bytes"]) / 1e6))'
}

names=(randwrite seqwrite mix)
declare -A ARGS=(
	[randwrite]="--rw=randwrite --bs=4k --iodepth=32"
	[seqwrite]="--rw=write --bs=1m --iodepth=8"
	[mix]="--rw=randrw --rwmixread=70 --bs=4k --iodepth=32"
)
declare -A TITLE=(
	[randwrite]="4 KiB random write, QD32 (IOPS)"
	[seqwrite]="1 MiB sequential write, QD8 (MB/s)"
	[mix]="4 KiB random 70/30 read/write, QD32 (IOPS)"
)
declare -A R
for ((i = 1; i <= ROUNDS; i++)); do
	for w in "${names[@]}"; do
		for side in odxtgt lio tgt; do
			# shellcheck disable=SC2086 # ARGS holds several options
			r=$(run_fio "${DISK[$side]}" ${ARGS[$w]}) || fail "$side: fio $w failed (see $OUT/fio.err)"
			[ -n "$r" ] || fail "$side: fio $w printed nothing (see $OUT/fio.err)"
			v=$(cut -d' ' -f1 <<<"$r")
			[ "$w" = seqwrite ] && v=$(cut -d' ' -f2 <<<"$r")
			R[$w.$side]+="$v "
			log "round $i, $side, $w: $r (IOPS MB/s)"
		done
	done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk "BEGIN { printf \"%.2f\", ($2 > 0 ? $1 / $2 : 0) }"; }
{
	printf 'fio libaio O_DIRECT, kernel initiator, tmpfs-backed LUNs, %d s runs, median of %d rounds\n' "$SECS" "$ROUNDS"
	printf '%-44s %10s %10s %10s\n' "" odxtgt LIO tgt
	for w in "${names[@]}"; do
		o=$(median "${R[$w.odxtgt]}") l=$(median "${R[$w.lio]}") t=$(median "${R[$w.tgt]}")
		printf '%-44s %10s %10s %10s   odxtgt/LIO %s  odxtgt/tgt %s\n' "${TITLE[$w]}" "$o" "$l" "$t" "$(ratio "$o" "$l")" "$(ratio "$o" "$t")"
	done
} | tee "$OUT/bench.txt"
iscsi_logout "$ODX_IQN" "$ODX_PORT" >/dev/null
iscsi_logout "$LIO_IQN" "$LIO_PORT" >/dev/null
