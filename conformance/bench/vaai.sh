#!/usr/bin/env bash
# Zeroing benchmark: makes the same range of one file LUN of odxtgt read as
# zeroes four ways in the same run, from the Go initiator
# (conformance/bench/vaai), and prints the ratios:
#
#   - WRITE (16) of 1 MiB of zeroes, QD8 (no offload: every byte crosses
#     the wire and is written);
#   - WRITE SAME (16) of a zero block, UNMAP clear (odxtgt zeroes the range
#     with fallocate, the blocks stay allocated);
#   - WRITE SAME (16) with UNMAP (the range is deallocated: holes punched);
#   - UNMAP (the same, through the block descriptor list).
#
# Before each, the range is filled with data written to the backing file
# and synced, so every way starts from allocated, non-zero blocks; each
# ends with SYNCHRONIZE CACHE, inside the timing, and is checked to read
# back as zeroes. Medians of 3. Not a test: it measures, it does not judge.
#
#   conformance/bench/vaai.sh [MIB]   (default 1024)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

mib=${1:-1024}
bytes=$((mib << 20))
reps=3
work=$(mktemp -d /tmp/odxtgt-vaai.XXXXXX)
trap 'stop_odxtgt; rm -rf "$work"' EXIT

build_odxtgt "$work"
ODXTGT_BIN=$work/odxtgt
(cd "$repo_root" && go build -o "$work/vaai" ./conformance/bench/vaai) || die "go build ./conformance/bench/vaai failed"

median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }
allocated_mib() { echo $(($(stat -c '%b * %B' "$1") >> 20)); }

img=$work/lu.img
truncate -s "${mib}M" "$img"
# The fill: bytes FFh, written over the LUN's backing file before each way.
head -c "$bytes" /dev/zero | tr '\0' '\377' >"$work/fill"
iqn=iqn.2025-01.io.odxtgt:vaai-bench
cat >"$work/odxtgt.yaml" <<YAML
backstores:
  - {name: lu, type: file, path: $img, size: ${mib}MiB}
targets:
  - iqn: $iqn
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: lu}]
YAML
start_odxtgt "$work/odxtgt.yaml" "$work/odxtgt.log"
addr=127.0.0.1:$(head -n1 <<<"$ODXTGT_PORTS")

modes=(write writesame writesame-unmap unmap)
declare -A times after
for i in $(seq 1 $reps); do
	for m in "${modes[@]}"; do
		# odxtgt is idle between runs and reads the file through the page
		# cache, so writing the file directly is safe here.
		dd if="$work/fill" of="$img" bs=1M conv=notrunc,fsync status=none
		sync
		t=$("$work/vaai" -addr "$addr" -target "$iqn" -bytes "$bytes" -mode "$m")
		times[$m]+="$t "
		after[$m]=$(allocated_mib "$img")
		cmp -s -n "$bytes" "$img" /dev/zero || die "$m: the LUN does not read as zeroes afterwards"
	done
done
stop_odxtgt
[ "${ODXTGT_STATUS:-0}" = 0 ] || die "odxtgt exited with status $ODXTGT_STATUS on SIGTERM"
if grep -qE 'level=ERROR|panic:' "$work/odxtgt.log"; then
	grep -E 'level=ERROR|panic:' "$work/odxtgt.log" | head -5 >&2
	die "odxtgt logged errors"
fi

fs=$(findmnt -no FSTYPE -T "$work")
declare -A med
for m in "${modes[@]}"; do
	med[$m]=$(tr ' ' '\n' <<<"${times[$m]}" | grep . | median)
done
awk -v fs="$fs" -v m="$mib" -v w="${med[write]}" -v ws="${med[writesame]}" -v wsu="${med[writesame-unmap]}" -v u="${med[unmap]}" \
	-v aw="${after[write]}" -v aws="${after[writesame]}" -v awsu="${after[writesame-unmap]}" -v au="${after[unmap]}" 'BEGIN {
	printf "%s, %d MiB zeroed (medians of 3, SYNCHRONIZE CACHE included; MiB still allocated after):\n", fs, m
	printf "  WRITE (16) of zeroes, QD8     %8.3f s  %8.0f MiB/s  %6d MiB\n", w, m/w, aw
	printf "  WRITE SAME (16), zero block   %8.3f s  %8.0f MiB/s  %6d MiB\n", ws, m/ws, aws
	printf "  WRITE SAME (16) with UNMAP    %8.3f s  %8.0f MiB/s  %6d MiB\n", wsu, m/wsu, awsu
	printf "  UNMAP                         %8.3f s  %8.0f MiB/s  %6d MiB\n", u, m/u, au
	printf "ratios (time of WRITE of zeroes / time of the offload): WRITE SAME %.1f, WRITE SAME UNMAP %.1f, UNMAP %.1f\n", w/ws, w/wsu, w/u
}'
