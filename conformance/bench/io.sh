#!/usr/bin/env bash
# I/O benchmark: odxtgt against Debian's tgt in the same run, both on
# loopback with a file LUN of the same size (page cache warm). Reads are
# driven by libiscsi's iscsi-perf; writes and the 70/30 mix, which
# iscsi-perf cannot do, by conformance/bench/load (the project's Go
# initiator, the same client for both targets). For every run it also
# reads the target process's CPU time (/proc/PID/stat) and reports IOPS
# per core used. Prints the median of three runs of each workload and the
# ratio odxtgt/tgt. Not a test: it measures, it does not judge.
#
#   conformance/bench/io.sh [SECONDS] [OUTDIR]   (default 8 s per run)
#
# With OUTDIR it also leaves there io.txt (what it printed) and io.png, a
# bar chart of the ratios drawn by gnuplot.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

need libiscsi-bin iscsi-perf
need tgt tgtd tgtadm

secs=${1:-8}
outdir=${2:-}
if [ -n "$outdir" ]; then
	need gnuplot-nox gnuplot
	mkdir -p "$outdir"
fi
reps=3
size=1GiB
work=$(mktemp -d /tmp/odxtgt-bench.XXXXXX)
cleanup() {
	stop_odxtgt
	stop_tgt
	rm -rf "$work"
}
trap cleanup EXIT

build_odxtgt "$work"
ODXTGT_BIN=$work/odxtgt
(cd "$repo_root" && go build -o "$work/load" ./conformance/bench/load) || die "go build ./conformance/bench/load failed"

# Same size, same data (zeros, then filled), page cache warm for both.
truncate -s "$size" "$work/odxtgt.img" "$work/tgt.img"
dd if=/dev/urandom of="$work/odxtgt.img" bs=1M count=1024 conv=notrunc status=none
cp "$work/odxtgt.img" "$work/tgt.img"
cat "$work/odxtgt.img" "$work/tgt.img" >/dev/null

cat >"$work/odxtgt.yaml" <<YAML
backstores:
  - {name: bench, type: file, path: $work/odxtgt.img}
targets:
  - iqn: iqn.2025-01.io.odxtgt:bench
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: bench}]
YAML
start_odxtgt "$work/odxtgt.yaml" "$work/odxtgt.log"
odx_port=$(head -n1 <<<"$ODXTGT_PORTS")
odx_url="iscsi://127.0.0.1:$odx_port/iqn.2025-01.io.odxtgt:bench/0"

start_tgt "$work/tgt.img" "$work/tgtd.log"
tgt_url="iscsi://127.0.0.1:$TGT_PORT/$TGT_IQN/1"

hz=$(getconf CLK_TCK)
# cpu_ticks PID: the user and system CPU time of a process, in ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure WHO TOOL ARGS...: one run against odxtgt or tgt with iscsi-perf
# (TOOL perf) or load (TOOL load); prints "IOPS MBPS CORES", CORES being
# the target's CPU time over the run's length ($secs, the time IOPS is
# averaged over: the tool's start-up, login and logout are not part of
# it, so counting them as wall time would understate CORES). Fails, so
# that the caller dies, when the tool printed no result: a failed run
# must not enter the medians as 0.
measure() {
	local who=$1 tool=$2; shift 2
	local pid url addr target lun
	if [ "$who" = odxtgt ]; then
		pid=$ODXTGT_PID url=$odx_url addr=127.0.0.1:$odx_port target=iqn.2025-01.io.odxtgt:bench lun=0
	else
		pid=$TGTD_PID url=$tgt_url addr=127.0.0.1:$TGT_PORT target=$TGT_IQN lun=1
	fi
	local c0 r c1
	c0=$(cpu_ticks "$pid")
	if [ "$tool" = perf ]; then
		r=$(timeout -s KILL $((secs + 15)) iscsi-perf "$@" -t "$secs" "$url" 2>&1 |
			tr '\r' '\n' | sed -n 's/.*iops average \([0-9]*\) (\([0-9]*\) MB\/s).*/\1 \2/p' | tail -n1)
	else
		r=$(timeout -s KILL $((secs + 15)) "$work/load" -addr "$addr" -target "$target" -lun "$lun" -seconds "$secs" "$@" | cut -d' ' -f1,2)
	fi
	c1=$(cpu_ticks "$pid")
	[ -n "$r" ] || return 1
	awk -v r="$r" -v c="$((c1 - c0))" -v hz="$hz" -v secs="$secs" \
		'BEGIN { printf "%s %.3f\n", r, c / hz / secs }'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

# workload NAME FIELD TOOL ARGS...: FIELD 1 = IOPS, 2 = MiB/s (iscsi-perf's
# "MB/s" is bytes >> 20; load prints the same unit). Prints the
# medians, the ratio, and IOPS per core used (median over the runs).
workload() {
	local name=$1 field=$2 tool=$3; shift 3
	local o=() t=() oe=() te=() i r
	for i in $(seq 1 $reps); do
		r=$(measure odxtgt "$tool" "$@") || die "$name: the $tool run against odxtgt gave no result"
		o+=("$(cut -d' ' -f"$field" <<<"$r")") oe+=("$(awk '{print ($3 > 0 ? $1 / $3 : 0)}' <<<"$r")")
		r=$(measure tgt "$tool" "$@") || die "$name: the $tool run against tgt gave no result"
		t+=("$(cut -d' ' -f"$field" <<<"$r")") te+=("$(awk '{print ($3 > 0 ? $1 / $3 : 0)}' <<<"$r")")
	done
	local om tm oem tem
	om=$(printf '%s\n' "${o[@]}" | median)
	tm=$(printf '%s\n' "${t[@]}" | median)
	oem=$(printf '%s\n' "${oe[@]}" | median)
	tem=$(printf '%s\n' "${te[@]}" | median)
	local unit=IOPS; [ "$field" = 2 ] && unit=MiB/s
	awk -v n="$name" -v u="$unit" -v o="$om" -v t="$tm" -v oe="$oem" -v te="$tem" -v os="${o[*]}" -v ts="${t[*]}" \
		'BEGIN { printf "%-32s odxtgt %8d %s  tgt %8d %s  ratio %.2f | IOPS per core: odxtgt %d, tgt %d, ratio %.2f   (runs: odxtgt %s; tgt %s)\n",
			n, o, u, t, u, (t ? o/t : 0), oe, te, (te ? oe/te : 0), os, ts }'
	awk -v n="$name" -v o="$om" -v t="$tm" -v oe="$oem" -v te="$tem" \
		'BEGIN { printf "\"%s\" %.3f %.3f\n", n, (t ? o/t : 0), (te ? oe/te : 0) }' >>"$work/io.dat"
}

{
	echo "$reps runs of $secs s each, medians (machine: $(nproc) cores); reads by iscsi-perf, writes by conformance/bench/load"
	workload "4 KiB random read QD32" 1 perf -r -b 8 -m 32
	workload "4 KiB random read QD1" 1 perf -r -b 8 -m 1
	workload "1 MiB sequential read QD8" 2 perf -b 2048 -m 8
	workload "4 KiB random write QD32" 1 load -bs 4096 -qd 32 -read 0
	workload "1 MiB sequential write QD8" 2 load -bs 1048576 -qd 8 -read 0 -seq
	workload "4 KiB random 70/30 read/write QD32" 1 load -bs 4096 -qd 32 -read 70
} | tee "$work/io.txt"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1
[ -n "$outdir" ] || exit 0
cp "$work/io.txt" "$outdir/io.txt"
gnuplot <<GNUPLOT || die "gnuplot failed"
set terminal png size 1100,500
set output "$outdir/io.png"
set title "odxtgt against tgt on loopback, $(nproc) cores, medians of $reps runs of $secs s (1 = as fast as tgt)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:*]
set ylabel "odxtgt / tgt"
set xtics rotate by -20 noenhanced
set grid ytics
plot "$work/io.dat" using 2:xtic(1) title "throughput", "" using 3 title "IOPS per CPU core", 1 with lines lc rgb "black" notitle
GNUPLOT
echo "io.txt and io.png in $outdir"
