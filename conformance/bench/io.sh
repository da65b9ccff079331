#!/usr/bin/env bash
# I/O benchmark: odxtgt against Debian's tgt in the same run, both on
# loopback with a file LUN of the same size (page cache warm), driven by
# libiscsi's iscsi-perf. Prints the median of three runs of each workload
# and the ratio odxtgt/tgt. Not a test: it measures, it does not judge.
#
#   conformance/bench/io.sh [SECONDS]   (default 8 s per run)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

need libiscsi-bin iscsi-perf
need tgt tgtd tgtadm

secs=${1:-8}
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
odx_url="iscsi://127.0.0.1:$(head -n1 <<<"$ODXTGT_PORTS")/iqn.2025-01.io.odxtgt:bench/0"

start_tgt "$work/tgt.img" "$work/tgtd.log"
tgt_url="iscsi://127.0.0.1:$TGT_PORT/$TGT_IQN/1"

# perf URL ARGS...: prints "IOPS MBPS" of one iscsi-perf run.
perf() {
	local url=$1; shift
	timeout -s KILL $((secs + 15)) iscsi-perf "$@" -t "$secs" "$url" 2>&1 |
		tr '\r' '\n' | sed -n 's/.*iops average \([0-9]*\) (\([0-9]*\) MB\/s).*/\1 \2/p' | tail -n1
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

# workload NAME FIELD ARGS...: FIELD 1 = IOPS, 2 = MB/s.
workload() {
	local name=$1 field=$2; shift 2
	local o=() t=() i r
	for i in $(seq 1 $reps); do
		r=$(perf "$odx_url" "$@"); o+=("$(cut -d' ' -f"$field" <<<"${r:-0 0}")")
		r=$(perf "$tgt_url" "$@"); t+=("$(cut -d' ' -f"$field" <<<"${r:-0 0}")")
	done
	local om tm
	om=$(printf '%s\n' "${o[@]}" | median)
	tm=$(printf '%s\n' "${t[@]}" | median)
	local unit=IOPS; [ "$field" = 2 ] && unit=MB/s
	awk -v n="$name" -v u="$unit" -v o="$om" -v t="$tm" -v os="${o[*]}" -v ts="${t[*]}" \
		'BEGIN { printf "%-28s odxtgt %8d %s  tgt %8d %s  ratio %.2f   (runs: odxtgt %s; tgt %s)\n", n, o, u, t, u, (t ? o/t : 0), os, ts }'
}

echo "iscsi-perf, $reps runs of $secs s each, medians (machine: $(nproc) cores)"
workload "4 KiB random read QD32" 1 -r -b 8 -m 32
workload "4 KiB random read QD1" 1 -r -b 8 -m 1
workload "1 MiB sequential read QD8" 2 -b 2048 -m 8
