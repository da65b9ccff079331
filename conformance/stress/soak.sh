#!/usr/bin/env bash
# Soak: the real binary (two file LUNs on the file system of /tmp, a memory
# LUN, metrics on loopback) under the model-based stress mix of
# conformance/stress from 16 sessions of the project's Go initiator for
# DURATION (default 10m), sampled every 10 s. Writes into OUTDIR soak.csv,
# soak.png (commands and copy throughput, resident memory and Go heap,
# goroutines, open files and ROD tokens over time, drawn by gnuplot) and
# summary.txt, and fails when the mix found wrong data, the target logged
# an error or panicked, or memory, goroutines or open files kept growing.
# A benchmark run, not part of CI.
#
#   conformance/stress/soak.sh [DURATION] [OUTDIR]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

need gnuplot-nox gnuplot
duration=${1:-10m}
out=${2:-$(mktemp -d /tmp/odxtgt-soak.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/odxtgt-soak-work.XXXXXX)
trap 'stop_odxtgt; rm -rf "$work"' EXIT

build_odxtgt "$work"
ODXTGT_BIN=$work/odxtgt
(cd "$repo_root" && go build -o "$work/soak" ./conformance/stress/soak) || die "go build ./conformance/stress/soak failed"

target=iqn.2025-01.io.odxtgt:soak
cat >"$work/odxtgt.yaml" <<YAML
backstores:
  - {name: f0, type: file, path: $work/f0.img, size: 64MiB}
  - {name: m1, type: memory, size: 64MiB}
  - {name: f2, type: file, path: $work/f2.img, size: 64MiB}
targets:
  - iqn: $target
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: f0}, {lun: 1, backstore: m1}, {lun: 2, backstore: f2}]
tokens:
  snapshot_space: 64MiB
metrics:
  listen: "127.0.0.1:0"
YAML
start_odxtgt "$work/odxtgt.yaml" "$out/odxtgt.log"
port=$(head -n1 <<<"$ODXTGT_PORTS")
maddr=$(sed -n 's/.*msg="serving metrics" addr=\([^ ]*\).*/\1/p' "$out/odxtgt.log" | head -n1)
[ -n "$maddr" ] || die "the metrics address is not in $out/odxtgt.log"

rc=0
"$work/soak" -addr "127.0.0.1:$port" -target "$target" -luns 0,1,2 -sessions 16 -workers 2 \
	-duration "$duration" -interval 10s -metrics "http://$maddr/metrics" -csv "$out/soak.csv" |
	tee "$out/summary.txt" || rc=1
stop_odxtgt
[ "${ODXTGT_STATUS:-0}" = 0 ] || { echo "odxtgt exited with status $ODXTGT_STATUS" | tee -a "$out/summary.txt"; rc=1; }
trouble='panic:|level=ERROR|fatal error:|DATA RACE'
if grep -q -E "$trouble" "$out/odxtgt.log"; then
	grep -E "$trouble" "$out/odxtgt.log" | head -5 | tee -a "$out/summary.txt"
	rc=1
fi

gnuplot <<GNUPLOT || die "gnuplot failed"
set terminal png size 1200,900
set output "$out/soak.png"
set datafile separator ","
set key autotitle columnhead
set multiplot layout 3,1 title "odxtgt soak: 16 sessions of the stress mix, $duration"
set xlabel "seconds"
set ylabel "SCSI commands/s"
set y2label "MiB/s"
set y2tics
plot "$out/soak.csv" using 1:2 with lines title "SCSI commands/s", "" using 1:3 with lines axes x1y2 title "MiB/s copied in the target (right axis)"
unset y2tics
unset y2label
set ylabel "MiB"
plot "$out/soak.csv" using 1:4 with lines title "resident memory (MiB)", "" using 1:5 with lines title "Go heap in use (MiB)"
set ylabel "count"
plot "$out/soak.csv" using 1:6 with lines title "goroutines", "" using 1:7 with lines title "open files", "" using 1:8 with lines title "ROD tokens"
unset multiplot
GNUPLOT
echo "soak: output in $out (summary.txt, soak.csv, soak.png, odxtgt.log)"
exit $rc
