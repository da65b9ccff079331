#!/usr/bin/env bash
# COMPARE AND WRITE (ATS) benchmark: odxtgt against Debian's tgt in the same
# run, both on loopback with a 64 MiB file LUN of 512-byte blocks, driven
# by the Go initiator (conformance/bench/vaai, modes caw and
# caw-contended), one session per run with QD workers on it. One-block
# COMPARE AND WRITE on a lock block is what VMware's atomic test and set
# sends:
#
#   - uncontended QD1 and QD32: each worker swaps its own lock block (LBA
#     worker * 8) between two values, every compare must succeed; rounds/s;
#   - contended QD32: every worker reads LBA 0 and COMPARE AND WRITEs what
#     it read against a value of its own; lost races end in MISCOMPARE, as
#     they should; wins/s (miscompares/s alongside).
#
# Medians of 3 runs, and the ratio odxtgt/tgt. If tgt refuses COMPARE AND
# WRITE, only odxtgt's numbers are printed, with the reason. Not a test:
# it measures, it does not judge (beyond aborting on a wrong MISCOMPARE).
#
#   conformance/bench/caw.sh [SECONDS]   (default 5 s per run)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

need tgt tgtd tgtadm

secs=${1:-5}
reps=3
work=$(mktemp -d /tmp/odxtgt-caw.XXXXXX)
cleanup() {
	stop_odxtgt
	stop_tgt
	rm -rf "$work"
}
trap cleanup EXIT

build_odxtgt "$work"
ODXTGT_BIN=$work/odxtgt
(cd "$repo_root" && go build -o "$work/vaai" ./conformance/bench/vaai) || die "go build ./conformance/bench/vaai failed"

truncate -s 64M "$work/odxtgt.img" "$work/tgt.img"

odx_iqn=iqn.2025-01.io.odxtgt:caw-bench
cat >"$work/odxtgt.yaml" <<YAML
backstores:
  - {name: lu, type: file, path: $work/odxtgt.img, size: 64MiB}
targets:
  - iqn: $odx_iqn
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: lu}]
YAML
start_odxtgt "$work/odxtgt.yaml" "$work/odxtgt.log"
odx=(-addr "127.0.0.1:$(head -n1 <<<"$ODXTGT_PORTS")" -target "$odx_iqn" -lun 0)

start_tgt "$work/tgt.img" "$work/tgtd.log"
tgt=(-addr "127.0.0.1:$TGT_PORT" -target "$TGT_IQN" -lun 1)

# bench WHO MODE QD: one run; prints the tool's numbers, dies on its error.
bench() {
	local who=$1 mode=$2 qd=$3 out
	local -n args=$who
	out=$(timeout -s KILL $((secs + 30)) "$work/vaai" "${args[@]}" -mode "$mode" -qd "$qd" -seconds "$secs" 2>&1) ||
		die "$who, $mode QD$qd: $out"
	echo "$out"
}

# tgt refusing COMPARE AND WRITE: a one-second QD1 probe says so (any
# other failure, say of the login, is fatal).
tgt_reason=
if ! probe=$(timeout -s KILL 30 "$work/vaai" "${tgt[@]}" -mode caw -qd 1 -seconds 1 2>&1); then
	grep -q 'COMPARE AND WRITE' <<<"$probe" || die "tgt probe: $probe"
	tgt_reason=$probe
fi

median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

workloads=("caw 1" "caw 32" "caw-contended 32")
declare -A runs
for i in $(seq 1 $reps); do
	for w in "${workloads[@]}"; do
		read -r mode qd <<<"$w"
		runs[odx,$w]+="$(bench odx "$mode" "$qd")"$'\n'
		[ -n "$tgt_reason" ] || runs[tgt,$w]+="$(bench tgt "$mode" "$qd")"$'\n'
	done
done
stop_odxtgt
[ "${ODXTGT_STATUS:-0}" = 0 ] || die "odxtgt exited with status $ODXTGT_STATUS on SIGTERM"
if grep -qE 'level=ERROR|panic:' "$work/odxtgt.log"; then
	grep -E 'level=ERROR|panic:' "$work/odxtgt.log" | head -5 >&2
	die "odxtgt logged errors"
fi

# col WHO WORKLOAD FIELD: the median of that field of the runs.
col() { awk -v f="$3" 'NF {print $f}' <<<"${runs[$1,$2]:-}" | median; }
# list WHO WORKLOAD: the runs' first fields.
list() { awk 'NF {printf "%s%s", s, $1; s=" "}' <<<"${runs[$1,$2]:-}"; }

echo "COMPARE AND WRITE (1 block of 512 bytes), one session, $reps runs of $secs s each, medians (machine: $(nproc) cores)"
[ -z "$tgt_reason" ] || echo "tgt: not measured, it refused COMPARE AND WRITE: $tgt_reason"
for w in "${workloads[@]}"; do
	read -r mode qd <<<"$w"
	case $mode in
	caw) name="uncontended QD$qd" unit=rounds/s ;;
	*) name="contended QD$qd (one block)" unit=wins/s ;;
	esac
	o=$(col odx "$w" 1)
	if [ -n "$tgt_reason" ]; then
		awk -v n="$name" -v u="$unit" -v o="$o" -v os="$(list odx "$w")" \
			'BEGIN { printf "%-30s odxtgt %9.0f %s   (runs: %s)\n", n, o, u, os }'
	else
		t=$(col tgt "$w" 1)
		awk -v n="$name" -v u="$unit" -v o="$o" -v t="$t" -v os="$(list odx "$w")" -v ts="$(list tgt "$w")" \
			'BEGIN { printf "%-30s odxtgt %9.0f %s  tgt %9.0f %s  ratio %.2f   (runs: odxtgt %s; tgt %s)\n", n, o, u, t, u, (t ? o/t : 0), os, ts }'
	fi
	if [ "$mode" = caw-contended ]; then
		om=$(col odx "$w" 2)
		if [ -n "$tgt_reason" ]; then
			awk -v o="$om" 'BEGIN { printf "%-30s odxtgt %9.0f miscompares/s\n", "", o }'
		else
			tm=$(col tgt "$w" 2)
			awk -v o="$om" -v t="$tm" 'BEGIN { printf "%-30s odxtgt %9.0f miscompares/s  tgt %9.0f miscompares/s\n", "", o, t }'
		fi
	fi
done
