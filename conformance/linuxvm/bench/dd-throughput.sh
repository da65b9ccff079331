#!/bin/bash
# dd-throughput: 1 MiB O_DIRECT sequential write then read of BENCH_MIB
# (default 512) MiB through the kernel initiator, against odxtgt and against
# LIO fileio, both backed by files on the guest's tmpfs. Prints MiB/s for
# each (median of BENCH_ROUNDS rounds) and the ratio odxtgt/LIO. A benchmark, not a test: it fails only when
# it cannot measure. Under TCG absolute numbers are low; track the ratio.
. "$(dirname "$0")/../lib.sh"
odx_require

MIB=${BENCH_MIB:-512}
odx_config "$WORK/odxtgt.yaml" bench "${MIB}M"
odx_start "$WORK/odxtgt.yaml"
lio_start bench "${MIB}M"
declare -A DISK
DISK[odxtgt]=$(lun_disk "$(login_one "$ODX_IQN" "$ODX_PORT")" 0)
DISK[lio]=$(lun_disk "$(login_one "$LIO_IQN" "$LIO_PORT")" 0)

# rate MIB CMD... runs CMD and prints MiB/s.
rate() {
	local mib=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	"$@" || return 1
	t1=$(date +%s.%N)
	awk "BEGIN { printf \"%.1f\", $mib / ($t1 - $t0) }"
}

# Both targets share the guest's two vCPUs with the initiator, and the host
# may be busy: alternate the targets over BENCH_ROUNDS rounds (default 3)
# and keep the median of each.
ROUNDS=${BENCH_ROUNDS:-3}
declare -A W R
for ((i = 1; i <= ROUNDS; i++)); do
	for side in odxtgt lio; do
		d=${DISK[$side]}
		w=$(rate "$MIB" dd if=/dev/zero of="$d" bs=1M count="$MIB" oflag=direct status=none) ||
			fail "$side: write failed"
		r=$(rate "$MIB" dd if="$d" of=/dev/null bs=1M count="$MIB" iflag=direct status=none) ||
			fail "$side: read failed"
		W[$side]+="$w " R[$side]+="$r "
		log "round $i, $side ($d): write $w MiB/s, read $r MiB/s"
	done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
wo=$(median "${W[odxtgt]}") wl=$(median "${W[lio]}") ro=$(median "${R[odxtgt]}") rl=$(median "${R[lio]}")
{
	printf 'dd 1 MiB O_DIRECT, %d MiB, kernel initiator, tmpfs-backed LUNs, median of %d rounds (MiB/s)\n' "$MIB" "$ROUNDS"
	printf '%-8s %12s %12s\n' "" "odxtgt" "LIO"
	printf '%-8s %12s %12s   ratio odxtgt/LIO %s\n' write "$wo" "$wl" "$(ratio "$wo" "$wl")"
	printf '%-8s %12s %12s   ratio odxtgt/LIO %s\n' read "$ro" "$rl" "$(ratio "$ro" "$rl")"
} | tee "$OUT/bench.txt"
iscsi_logout "$ODX_IQN" "$ODX_PORT" >/dev/null
iscsi_logout "$LIO_IQN" "$LIO_PORT" >/dev/null
