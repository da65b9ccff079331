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
# With --vm, the Linux VM of conformance/linuxvm (QEMU, as root) runs
# bench/soak-iscsi.sh for the same time, alongside: two open-iscsi sessions
# with ext4 on each under fio's verifying jobs (fsx-style) and stress-ng's
# file system stressors (fsstress-style), then e2fsck -fn. The guest has no
# network device, so it cannot reach this odxtgt: it runs its own (the
# same binary) on its own loopback. Its summary is added to summary.txt,
# its samples go to vm/soak-iscsi/soak-vm.csv and soak-vm.png, and a
# failure there fails the soak.
#
#   conformance/stress/soak.sh [--vm] [DURATION] [OUTDIR]
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

vm=0
if [ "${1:-}" = --vm ]; then
	vm=1
	shift
fi
need gnuplot-nox gnuplot
duration=${1:-10m}
out=${2:-$(mktemp -d /tmp/odxtgt-soak.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/odxtgt-soak-work.XXXXXX)
VM_PID= VMOUT=
# The VM runs in its own process group (setsid): run.sh, timeout, QEMU.
trap 'stop_odxtgt; [ -z "$VM_PID" ] || kill -- -"$VM_PID" 2>/dev/null; rm -rf "$work"' EXIT

# seconds_of DURATION prints a duration made of whole h, m and s units
# (90s, 10m, 1h30m) in seconds.
seconds_of() {
	local d=$1 total=0
	while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
		case ${BASH_REMATCH[2]} in
		h) total=$((total + BASH_REMATCH[1] * 3600)) ;;
		m) total=$((total + BASH_REMATCH[1] * 60)) ;;
		s) total=$((total + BASH_REMATCH[1])) ;;
		esac
		d=${BASH_REMATCH[3]}
	done
	[ -z "$d" ] && [ "$total" -gt 0 ] || die "--vm needs DURATION in whole h, m or s (10m, 90s), not $1"
	echo "$total"
}

build_odxtgt "$work"
ODXTGT_BIN=$work/odxtgt
(cd "$repo_root" && go build -o "$work/soak" ./conformance/stress/soak) || die "go build ./conformance/stress/soak failed"
if [ "$vm" = 1 ]; then
	secs=$(seconds_of "$duration")
	linuxvm=$repo_root/conformance/linuxvm
	# Built first, so that the soak in the guest starts with the one here.
	"$linuxvm/build-guest.sh" >"$out/vm-build.log" 2>&1 || die "building the Linux VM guest failed (see $out/vm-build.log)"
	# The race build links against libc: let run.sh build a static one.
	bin=$ODXTGT_BIN
	[ "${ODXTGT_RACE:-0}" != 1 ] || bin=
	ODXTGT_BIN=$bin setsid "$linuxvm/run.sh" -o "$out/vm" -t $((secs + 1800)) \
		SCRIPT_TIMEOUT=$((secs + 1200)) SOAK_SECONDS="$secs" bench/soak-iscsi.sh >"$out/vm-console.log" 2>&1 &
	VM_PID=$!
	VMOUT="vm/, soak-vm.png"
	echo "soak: the VM half runs alongside (console: $out/vm-console.log)"
fi

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

if [ "$vm" = 1 ]; then
	vrc=0
	wait "$VM_PID" || vrc=$?
	VM_PID=
	{
		echo
		cat "$out/vm/soak-iscsi/soak-vm.txt" 2>/dev/null || echo "VM soak: no summary (see $out/vm-console.log)"
		[ "$vrc" = 0 ] || echo "VM soak failed: exit $vrc (see $out/vm/soak-iscsi/log.txt)"
	} | tee -a "$out/summary.txt"
	[ "$vrc" = 0 ] || rc=1
	if [ -s "$out/vm/soak-iscsi/soak-vm.csv" ]; then
		gnuplot <<GNUPLOT || die "gnuplot failed"
set terminal png size 1200,600
set output "$out/soak-vm.png"
set datafile separator ","
set datafile commentschars "#"
set key autotitle columnhead
set multiplot layout 2,1 title "odxtgt in the VM: 2 open-iscsi sessions, ext4, fio verify + stress-ng, $duration"
set xlabel "seconds"
set ylabel "SCSI commands/s"
plot "$out/vm/soak-iscsi/soak-vm.csv" using 1:2 with lines title "SCSI commands/s"
set ylabel "MiB / count"
plot "$out/vm/soak-iscsi/soak-vm.csv" using 1:3 with lines title "resident memory (MiB)", "" using 1:4 with lines title "goroutines", "" using 1:5 with lines title "open files"
unset multiplot
GNUPLOT
	fi
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
echo "soak: output in $out (summary.txt, soak.csv, soak.png, odxtgt.log${VMOUT:+, $VMOUT})"
exit $rc
