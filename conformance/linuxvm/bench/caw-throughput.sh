#!/bin/bash
# caw-throughput: one-block COMPARE AND WRITE round trips (VMware's ATS
# heartbeat and lock pattern) against odxtgt and against LIO fileio in the
# same guest, both on tmpfs files with the write cache off, driven by the
# project's Go initiator (conformance/bench/vaai, built by run.sh into
# /odxin/bin/odxtgt-vaai) over the guest's loopback: QD1 and QD32 with a
# block per worker, and QD32 all on one block (wins/s). Prints the medians
# of BENCH_ROUNDS rounds (default 3) of BENCH_CAW_SECONDS (default 5) and
# the ratio odxtgt/LIO. A benchmark, not a test: it fails only when it
# cannot measure.
. "$(dirname "$0")/../lib.sh"
odx_require
tool=/odxin/bin/odxtgt-vaai
[ -x "$tool" ] || fail "$tool missing (run.sh builds it from ./conformance/bench/vaai)"

SECS=${BENCH_CAW_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
{
	echo "backstores:"
	echo "  - {name: a, type: file, path: $(lun_file a 64M), size: 64MiB, write_cache: false}"
	echo "targets:"
	echo "  - iqn: $ODX_IQN"
	echo "    portals: [\"$ADDR:$ODX_PORT\"]"
	echo "    luns: [{lun: 0, backstore: a}]"
} >"$WORK/odxtgt.yaml"
odx_start "$WORK/odxtgt.yaml"
lio_start a 64M

# rate SIDE MODE QD: the first number the tool prints (rounds/s or wins/s).
rate() {
	local addr=$ADDR:$ODX_PORT iqn=$ODX_IQN out
	if [ "$1" = lio ]; then addr=$ADDR:$LIO_PORT iqn=$LIO_IQN; fi
	out=$(timeout -s KILL $((SECS + 60)) "$tool" -addr "$addr" -target "$iqn" -lun 0 -mode "$2" -qd "$3" -seconds "$SECS" 2>&1) || {
		echo "$1 $2 QD$3: $out" >>"$OUT/caw-errors.txt"
		return 1
	}
	awk '{ print $1; exit }' <<<"$out"
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A R
workloads=("caw 1" "caw 32" "caw-contended 32")
for ((i = 1; i <= ROUNDS; i++)); do
	for w in "${workloads[@]}"; do
		for side in odxtgt lio; do
			# shellcheck disable=SC2086 # w is "MODE QD"
			x=$(rate "$side" $w) || fail "$side: $w failed (see $OUT/caw-errors.txt)"
			R["$side $w"]+="$x "
			log "round $i, $side, $w: $x/s"
		done
	done
done
{
	printf 'COMPARE AND WRITE of 1 block, Go initiator in the guest, one session, tmpfs-backed LUNs, write cache off, median of %d rounds of %d s\n' "$ROUNDS" "$SECS"
	printf '%-38s %12s %12s\n' "" "odxtgt" "LIO"
	for w in "${workloads[@]}"; do
		o=$(median "${R[odxtgt $w]}") l=$(median "${R[lio $w]}")
		set -- $w
		name="QD$2, a block per worker (rounds/s)"
		[ "$1" = caw-contended ] && name="QD$2, one block (wins/s)"
		printf '%-38s %12s %12s   ratio odxtgt/LIO %s\n' "$name" "$o" "$l" "$(awk "BEGIN { printf \"%.2f\", $o / $l }")"
	done
} | tee "$OUT/bench.txt"
