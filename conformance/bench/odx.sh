#!/usr/bin/env bash
# ODX benchmark: copies the same bytes between two file LUNs of odxtgt four
# ways in the same run and prints the ratios:
#
#   - ODX from the Go initiator (conformance/bench/xcopy -mode odx): POPULATE
#     TOKEN and RECEIVE ROD TOKEN INFORMATION, then WRITE USING TOKEN in
#     256 MiB pieces (Windows' size when OPTIMAL TRANSFER COUNT is 256 MiB);
#   - EXTENDED COPY (LID1) from the same tool;
#   - a host copy over iSCSI: READ (16) and WRITE (16), 1 MiB, QD8;
#   - a local `cp --reflink=never` of the same file (the physical limit).
#
# Then the parts of ODX alone: POPULATE TOKEN (+ RRTI) of the whole LUN in
# 64 ranges, which takes the point-in-time snapshot (a clone where the file
# system has reflinks, else nothing until the source is written); one
# WRITE USING TOKEN of 256 MiB; and the cost a live point-in-time token
# puts on writes to its source: random 4 KiB writes (QD8) over the LUN with
# and without a token over all of it (copy-on-write of each first-written
# 4 KiB granule, or the file system's own unsharing after a clone).
#
# First on the filesystem of the work directory (ext4 here), then, as root,
# on an XFS filesystem with reflink on a loop device. Not a test: it
# measures, it does not judge.
#
#   conformance/bench/odx.sh [MIB]   (default 1024; ODX_BENCH_REPS=3, ODX_BENCH_WRITES=20000)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

mib=${1:-1024}
bytes=$((mib << 20))
reps=${ODX_BENCH_REPS:-3}
nwrites=${ODX_BENCH_WRITES:-20000}
wut_mib=$((mib < 256 ? mib : 256))
work=$(mktemp -d /tmp/odxtgt-odx.XXXXXX)
mnt=
cleanup() {
	stop_odxtgt
	if [ -n "$mnt" ]; then
		umount -l "$mnt" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

build_odxtgt "$work"
ODXTGT_BIN=$work/odxtgt
(cd "$repo_root" && go build -o "$work/xcopy" ./conformance/bench/xcopy) || die "go build ./conformance/bench/xcopy failed"

median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }
med() { printf '%s\n' "$@" | median; }

# bench DIR LABEL: everything on the filesystem holding DIR.
bench() {
	local dir=$1 label=$2 i
	local iqn=iqn.2025-01.io.odxtgt:odx-bench
	truncate -s "${mib}M" "$dir/src.img" "$dir/dst.img"
	dd if=/dev/urandom of="$dir/src.img" bs=1M count="$mib" conv=notrunc status=none
	sync
	cat >"$work/odxtgt.yaml" <<-YAML
		backstores:
		  - {name: src, type: file, path: $dir/src.img, size: ${mib}MiB}
		  - {name: dst, type: file, path: $dir/dst.img, size: ${mib}MiB}
		targets:
		  - iqn: $iqn
		    portals: ["127.0.0.1:0"]
		    luns: [{lun: 0, backstore: src}, {lun: 1, backstore: dst}]
	YAML
	start_odxtgt "$work/odxtgt.yaml" "$work/odxtgt-$label.log"
	local addr=127.0.0.1:$(head -n1 <<<"$ODXTGT_PORTS")
	tool() { "$work/xcopy" -addr "$addr" -target "$iqn" "$@"; }
	local o=() x=() h=() c=() p=() w=() plain=() cow=()
	for i in $(seq 1 "$reps"); do
		# Each copy starts with no dirty pages, so none pays for the
		# write-back of the one before.
		sync
		o+=("$(tool -bytes "$bytes" -mode odx 2>>"$work/odx-$label.txt")")
		sync
		x+=("$(tool -bytes "$bytes" -mode xcopy)")
		sync
		h+=("$(tool -bytes "$bytes" -mode host)")
		sync
		rm -f "$dir/cp.img"
		local t0 t1
		t0=$(date +%s.%N)
		cp --reflink=never "$dir/src.img" "$dir/cp.img"
		t1=$(date +%s.%N)
		c+=("$(awk "BEGIN{print $t1 - $t0}")")
	done
	rm -f "$dir/cp.img"
	cmp "$dir/src.img" "$dir/dst.img" || die "$label: the destination LUN differs from the source after the copies"
	for i in $(seq 1 "$reps"); do
		sync
		p+=("$(tool -bytes "$bytes" -mode pt -ranges 64)")
		sync
		w+=("$(tool -bytes $((wut_mib << 20)) -mode wut 2>>"$work/odx-$label.txt")")
	done
	for i in $(seq 1 "$reps"); do
		sync
		plain+=("$(tool -bytes "$bytes" -mode writes -writes "$nwrites")")
		sync
		cow+=("$(tool -bytes "$bytes" -mode writes -writes "$nwrites" -live-token)")
	done
	stop_odxtgt
	local om xm hm cm pm wm plm cwm paths
	om=$(med "${o[@]}") xm=$(med "${x[@]}") hm=$(med "${h[@]}") cm=$(med "${c[@]}")
	pm=$(med "${p[@]}") wm=$(med "${w[@]}") plm=$(med "${plain[@]}") cwm=$(med "${cow[@]}")
	paths=$(grep -o 'clone_bytes=[0-9]* copy_file_range_bytes=[0-9]* buffered_bytes=[0-9]*' "$work/odxtgt-$label.log" | tail -n1 || true)
	awk -v l="$label" -v m="$mib" -v o="$om" -v x="$xm" -v h="$hm" -v c="$cm" -v p="$paths" 'BEGIN {
		printf "%s, %d MiB (medians of %s): ODX %.3f s (%.0f MiB/s), EXTENDED COPY %.3f s (%.0f MiB/s), host READ+WRITE %.3f s (%.0f MiB/s), cp %.3f s (%.0f MiB/s)\n", l, m, '"$reps"', o, m/o, x, m/x, h, m/h, c, m/c
		printf "%s ratios: ODX/cp throughput %.2f, ODX/XCOPY %.2f, ODX/host copy %.2f   [%s]\n", l, c/o, x/o, h/o, p
	}'
	awk -v l="$label" -v m="$mib" -v pt="$pm" -v wm="$wm" -v wmib="$wut_mib" -v pl="$plm" -v cw="$cwm" -v n="$nwrites" 'BEGIN {
		printf "%s: POPULATE TOKEN + RRTI of %d MiB in 64 ranges %.4f s; one WRITE USING TOKEN of %d MiB %.3f s (%.0f MiB/s)\n", l, m, pt, wmib, wm, wmib/wm
		printf "%s: %d random 4 KiB writes (QD8) over %d MiB: %.3f s without a token (%.0f IOPS), %.3f s with a live point-in-time token (%.0f IOPS): cost ratio %.2f\n", l, n, m, pl, n/pl, cw, n/cw, cw/pl
	}'
	local f=$work/odx-$label.txt
	printf '%s: ODX copy breakdown (medians): POPULATE TOKEN + RRTI %.4f s, WRITE USING TOKENs %.3f s; WRITE USING TOKEN truncated by the write budget and resumed: %d in the copies, %d in the 256 MiB runs\n' \
		"$label" "$(awk '/^odx: populate/ { print $3 }' "$f" | median)" "$(awk '/^odx: populate/ { print $6 }' "$f" | median)" \
		"$(awk '/^odx: populate/ { t += $8 } END { print t + 0 }' "$f")" "$(awk '/^wut: the target truncated/ { t += $5 } END { print t + 0 }' "$f")"
	rm -f "$dir/src.img" "$dir/dst.img"
	rm -rf "$dir/.odxtgt-snapshots"
}

bench "$work" "$(findmnt -no FSTYPE -T "$work" | tr -c "a-z0-9\n" -)"

if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null 2>&1; then
	truncate -s $((mib * 4 + 512))M "$work/xfs.img"
	mkfs.xfs -q -m reflink=1 "$work/xfs.img"
	mnt=$work/xfs
	mkdir -p "$mnt"
	mount -o loop "$work/xfs.img" "$mnt"
	bench "$mnt" "xfs-reflink"
else
	echo "XFS run skipped: needs root and mkfs.xfs (apt-get install xfsprogs)"
fi
