#!/usr/bin/env bash
# Copy offload benchmark: copies the same bytes between two file LUNs of
# odxtgt three ways in the same run and prints the ratios:
#
#   - EXTENDED COPY from the Go initiator (conformance/bench/xcopy), which
#     odxtgt turns into copy_file_range or a clone;
#   - a host copy over iSCSI: READ (16) and WRITE (16), 1 MiB, QD8;
#   - a local `cp --reflink=never` of the same file (the physical limit).
#
# first on the filesystem of the work directory (ext4 here), then, as root,
# on an XFS filesystem with reflink on a loop device, where EXTENDED COPY
# becomes a clone. Not a test: it measures, it does not judge.
#
#   conformance/bench/xcopy.sh [MIB]   (default 1024)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

mib=${1:-1024}
bytes=$((mib << 20))
reps=3
work=$(mktemp -d /tmp/odxtgt-xcopy.XXXXXX)
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

# bench DIR LABEL: the three copies on the filesystem holding DIR.
bench() {
	local dir=$1 label=$2 i
	local iqn=iqn.2025-01.io.odxtgt:xcopy-bench
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
	local x=() h=() c=()
	for i in $(seq 1 $reps); do
		# Each copy starts with no dirty pages, so none pays for the
		# write-back of the one before.
		sync
		x+=("$("$work/xcopy" -addr "$addr" -target "$iqn" -bytes "$bytes" -mode xcopy)")
		sync
		h+=("$("$work/xcopy" -addr "$addr" -target "$iqn" -bytes "$bytes" -mode host)")
		sync
		rm -f "$dir/cp.img"
		local t0 t1
		t0=$(date +%s.%N)
		cp --reflink=never "$dir/src.img" "$dir/cp.img"
		t1=$(date +%s.%N)
		c+=("$(awk "BEGIN{print $t1 - $t0}")")
	done
	stop_odxtgt
	cmp "$dir/src.img" "$dir/dst.img" || die "$label: the destination LUN differs from the source after the copies"
	local xm hm cm paths
	xm=$(printf '%s\n' "${x[@]}" | median)
	hm=$(printf '%s\n' "${h[@]}" | median)
	cm=$(printf '%s\n' "${c[@]}" | median)
	paths=$(grep -o 'clone_bytes=[0-9]* copy_file_range_bytes=[0-9]* buffered_bytes=[0-9]*' "$work/odxtgt-$label.log" | tail -n1)
	awk -v l="$label" -v m="$mib" -v x="$xm" -v h="$hm" -v c="$cm" -v p="$paths" 'BEGIN {
		printf "%s, %d MiB (medians of 3): EXTENDED COPY %.3f s (%.0f MiB/s), host READ+WRITE %.3f s (%.0f MiB/s), cp %.3f s (%.0f MiB/s)\n", l, m, x, m/x, h, m/h, c, m/c
		printf "%s ratios: XCOPY/cp throughput %.2f, XCOPY/host copy throughput %.2f   [%s]\n", l, c/x, h/x, p
	}'
	rm -f "$dir/src.img" "$dir/dst.img" "$dir/cp.img"
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
