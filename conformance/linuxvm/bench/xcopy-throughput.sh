#!/bin/bash
# xcopy-throughput: sg_xcopy of BENCH_XCOPY_MIB (default 256) MiB between
# two LUNs of odxtgt and between two LIO fileio LUNs in the same guest,
# all backed by files on the guest's tmpfs. Prints MiB/s for each (median
# of BENCH_ROUNDS rounds, default 3) and the ratio odxtgt/LIO. A
# benchmark, not a test: it fails only when it cannot measure.
. "$(dirname "$0")/../lib.sh"
odx_require

MIB=${BENCH_XCOPY_MIB:-256}
blocks=$((MIB * 2048))
{
	echo "backstores:"
	echo "  - {name: a, type: file, path: $(lun_file a "${MIB}M"), size: ${MIB}MiB}"
	echo "  - {name: b, type: file, path: $(lun_file b "${MIB}M"), size: ${MIB}MiB}"
	echo "targets:"
	echo "  - iqn: $ODX_IQN"
	echo "    portals: [\"$ADDR:$ODX_PORT\"]"
	echo "    luns: [{lun: 0, backstore: a}, {lun: 1, backstore: b}]"
} >"$WORK/odxtgt.yaml"
odx_start "$WORK/odxtgt.yaml"
lio_start a "${MIB}M"
targetcli_batch <<-EOF2
	/backstores/fileio create name=b file_or_dev=$(lun_file lio-b "${MIB}M") size=${MIB}M write_back=false
	/iscsi/$LIO_IQN/tpg1/luns create /backstores/fileio/b
EOF2
declare -A SRC DST
so=$(login_one "$ODX_IQN" "$ODX_PORT")
sl=$(login_one "$LIO_IQN" "$LIO_PORT")
SRC[odxtgt]=$(lun_sg "$so" 0) DST[odxtgt]=$(lun_sg "$so" 1)
SRC[lio]=$(lun_sg "$sl" 0) DST[lio]=$(lun_sg "$sl" 1)
for side in odxtgt lio; do
	dd if=/dev/urandom of="$(lun_disk "$([ $side = odxtgt ] && echo "$so" || echo "$sl")" 0)" bs=1M count="$MIB" \
		oflag=direct status=none || fail "$side: filling the source failed"
done

rate() {
	local t0 t1
	t0=$(date +%s.%N)
	sg_xcopy if="${SRC[$1]}" of="${DST[$1]}" bs=512 count="$blocks" >>"$OUT/sg_xcopy-$1.txt" 2>&1 || return 1
	t1=$(date +%s.%N)
	awk "BEGIN { printf \"%.1f\", $MIB / ($t1 - $t0) }"
}
ROUNDS=${BENCH_ROUNDS:-3}
declare -A X
for ((i = 1; i <= ROUNDS; i++)); do
	for side in odxtgt lio; do
		x=$(rate "$side") || fail "$side: sg_xcopy failed (see $OUT/sg_xcopy-$side.txt)"
		X[$side]+="$x "
		log "round $i, $side: sg_xcopy $x MiB/s"
	done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
xo=$(median "${X[odxtgt]}") xl=$(median "${X[lio]}")
{
	printf 'sg_xcopy %d MiB between two LUNs, kernel initiator, tmpfs-backed LUNs, median of %d rounds (MiB/s)\n' "$MIB" "$ROUNDS"
	printf '%-8s %12s %12s\n' "" "odxtgt" "LIO"
	printf '%-8s %12s %12s   ratio odxtgt/LIO %s\n' xcopy "$xo" "$xl" "$(awk "BEGIN { printf \"%.2f\", $xo / $xl }")"
} | tee "$OUT/bench.txt"
iscsi_logout "$ODX_IQN" "$ODX_PORT" >/dev/null
iscsi_logout "$LIO_IQN" "$LIO_PORT" >/dev/null
