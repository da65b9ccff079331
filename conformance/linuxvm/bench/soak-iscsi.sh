#!/bin/bash
# soak-iscsi: the VM half of conformance/stress/soak.sh --vm. Not a
# scenario and not run by all.sh: a soak, SOAK_SECONDS long (default 600).
#
# The guest has no network device, so it cannot reach the odxtgt the host
# half runs: it starts its own odxtgt with two targets, one file LUN on
# tmpfs each (SOAK_MIB, default 512), and logs in to both with open-iscsi,
# the second session with CRC32C header and data digests. Each LUN gets
# ext4, a set of files with their SHA-256 sums, and then, for SOAK_SECONDS
# on both file systems at once:
#
#   - an fsx-style workload: fio with data verification, random reads and
#     writes of 512 B to 128 KiB with fsync every 32 writes (psync) and
#     random 4 KiB writes through mmap, every written block read back and
#     checked (verify=crc32c, verify_backlog, verify_fatal). Debian has no
#     fsx package (xfstests and LTP, which carry fsx and fsstress, are not
#     in bookworm), so fio's verifying jobs stand in for it;
#   - an fsstress-style workload: stress-ng's file system stressors
#     (hdd with --verify, dir, rename, link, symlink, fallocate, seek with
#     hole punching, sync-file, iomix) in a directory of the file system,
#     mounted with discard so that freed blocks reach odxtgt as UNMAP.
#
# odxtgt's /metrics is sampled every 10 s into soak-vm.csv (SCSI commands
# per second, resident memory, goroutines, open files); both sessions must
# be LOGGED_IN at every sample, and memory, goroutines and open files must
# not keep growing (the rule of conformance/stress/soak: the last quarter
# of the samples against the second). Afterwards both file systems are
# unmounted and e2fsck -fn must find them clean, the files keep their
# sums, the kernel logged no connection or I/O error, and odxtgt logged
# no error and exits 0. The summary goes to soak-vm.txt.
. "$(dirname "$0")/../lib.sh"
odx_require
for c in fio stress-ng mkfs.ext4 e2fsck python3; do
	command -v "$c" >/dev/null || fail "$c is not in the guest: add its Debian package to GUEST_PACKAGES in conformance/linuxvm/common.sh"
done

SECS=${SOAK_SECONDS:-600}
MIB=${SOAK_MIB:-512}
METRICS=127.0.0.1:9469
NAMES=(a b)
declare -A IQN=([a]=iqn.2025-01.io.odxtgt:soak-a [b]=iqn.2025-01.io.odxtgt:soak-b)

cfg=$WORK/odxtgt.yaml
{
	echo "backstores:"
	for n in "${NAMES[@]}"; do
		echo "  - {name: $n, type: file, path: $(lun_file "$n" "${MIB}M"), size: ${MIB}MiB}"
	done
	echo "targets:"
	for n in "${NAMES[@]}"; do
		echo "  - iqn: ${IQN[$n]}"
		echo "    portals: [\"$ADDR:$ODX_PORT\"]"
		echo "    luns: [{lun: 0, backstore: $n}]"
	done
	echo "metrics:"
	echo "  listen: \"$METRICS\""
} >"$cfg"
odx_start "$cfg"

declare -A SESSION DISK MNT
iscsi_node_new "${IQN[b]}" "$ODX_PORT"
iscsi_node_set "${IQN[b]}" "$ODX_PORT" node.conn[0].iscsi.HeaderDigest CRC32C
iscsi_node_set "${IQN[b]}" "$ODX_PORT" node.conn[0].iscsi.DataDigest CRC32C
for n in "${NAMES[@]}"; do
	SESSION[$n]=$(login_one "${IQN[$n]}" "$ODX_PORT")
	DISK[$n]=$(lun_disk "${SESSION[$n]}" 0)
	MNT[$n]=/mnt/soak-$n
	log "session $n: ${SESSION[$n]} (${IQN[$n]}), ${DISK[$n]}"
done
# The kernel shows a negotiated CRC32C digest as 1.
conn_b=/sys/class/iscsi_connection/connection${SESSION[b]#session}:0
check "session b negotiated CRC32C header and data digests" \
	test "$(cat "$conn_b/header_digest")$(cat "$conn_b/data_digest")" = 11

# The file systems, and files whose sums must survive the soak.
for n in "${NAMES[@]}"; do
	mkfs.ext4 -q -F "${DISK[$n]}" || fail "mkfs.ext4 ${DISK[$n]} failed"
	mkdir -p "${MNT[$n]}"
	# discard: deletes and punched holes reach odxtgt as UNMAP.
	mount -o discard "${DISK[$n]}" "${MNT[$n]}" || fail "mount ${DISK[$n]} failed"
	mkdir -p "${MNT[$n]}/keep" "${MNT[$n]}/fio" "${MNT[$n]}/stress"
	random_file "${MNT[$n]}/keep/big" 16
	for i in $(seq 1 32); do head -c $((i * 4099)) /dev/urandom >"${MNT[$n]}/keep/f$i"; done
	(cd "${MNT[$n]}" && sha256sum keep/*) >"$WORK/manifest-$n"
done
sync

# sampler samples odxtgt's metrics and the session states every 10 s
# until the file $WORK/stop-sampler exists.
sampler() {
	python3 - "http://$METRICS/metrics" "$OUT/soak-vm.csv" "$WORK/stop-sampler" "${SESSION[@]}" <<-'PY'
		import os, sys, time, urllib.request
		url, csv, stop, sessions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
		def scrape():
		    v = {}
		    with urllib.request.urlopen(url, timeout=5) as r:
		        for line in r.read().decode().splitlines():
		            if not line or line[0] == "#":
		                continue
		            name = line.split("{")[0].split(" ")[0]
		            v[name] = v.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
		    return v
		def state(s):
		    with open("/sys/class/iscsi_session/%s/state" % s) as f:
		        return f.read().strip()
		t0, prev = time.time(), None
		with open(csv, "w") as out:
		    out.write("seconds,scsi_commands_per_s,rss_mib,goroutines,open_files,sessions_logged_in\n")
		    while not os.path.exists(stop):
		        now = time.time()
		        try:
		            v = scrape()
		        except OSError as e:
		            out.write("# %.0f scrape failed: %s\n" % (now - t0, e))
		            out.flush()
		            time.sleep(10)
		            continue
		        cmds = v.get("odxtgt_scsi_commands_total", 0.0)
		        rate = (cmds - prev[1]) / (now - prev[0]) if prev else 0.0
		        prev = (now, cmds)
		        up = sum(1 for s in sessions if state(s) == "LOGGED_IN")
		        out.write("%.0f,%.0f,%.1f,%.0f,%.0f,%d\n" % (now - t0, rate,
		            v.get("process_resident_memory_bytes", 0.0) / 1048576,
		            v.get("go_goroutines", 0.0), v.get("process_open_fds", 0.0), up))
		        out.flush()
		        time.sleep(10)
	PY
}
sampler &
SAMPLER_PID=$!
# errexit holds in the trap too: nothing in it may fail before lib_cleanup.
trap 'rc=$?; touch "$WORK/stop-sampler"; kill "$SAMPLER_PID" 2>/dev/null || true
umount -l /mnt/soak-a /mnt/soak-b 2>/dev/null || true; (exit $rc); lib_cleanup' EXIT

# fsx N MNT: fio's verifying jobs for SECS seconds; exit status in
# $WORK/rc-fio-N, the JSON report in $OUT/fio-N.json.
fsx() {
	local rc=0
	fio --directory="$2/fio" --time_based --runtime="$SECS" --output-format=json --output="$OUT/fio-$1.json" \
		--verify=crc32c --verify_fatal=1 \
		--name=fsx-psync --ioengine=psync --size=48M --rw=randrw --rwmixread=30 --bsrange=512-128k --fsync=32 --verify_backlog=256 \
		--name=fsx-mmap --ioengine=mmap --size=16M --rw=randwrite --bs=4k --verify_backlog=128 \
		>"$OUT/fio-$1.err" 2>&1 || rc=$?
	echo "$rc" >"$WORK/rc-fio-$1"
}
# fsstress N MNT: stress-ng's file system stressors for SECS seconds; exit
# status in $WORK/rc-stress-N, the report in $OUT/stress-ng-N.txt.
fsstress() {
	local rc=0
	stress-ng --temp-path "$2/stress" --timeout "${SECS}s" --verify --metrics-brief \
		--hdd 1 --hdd-bytes 16M --dir 1 --dir-dirs 512 --rename 1 --link 1 --symlink 1 \
		--fallocate 1 --fallocate-bytes 16M --seek 1 --seek-size 16M --seek-punch \
		--sync-file 1 --sync-file-bytes 16M --iomix 1 --iomix-bytes 16M \
		>"$OUT/stress-ng-$1.txt" 2>&1 || rc=$?
	echo "$rc" >"$WORK/rc-stress-$1"
}
log "soak: fio (verifying) and stress-ng on both file systems for ${SECS}s"
t0=$(date +%s)
pids=()
for n in "${NAMES[@]}"; do
	fsx "$n" "${MNT[$n]}" &
	pids+=($!)
	fsstress "$n" "${MNT[$n]}" &
	pids+=($!)
done
wait "${pids[@]}"
elapsed=$(($(date +%s) - t0))
touch "$WORK/stop-sampler"
wait "$SAMPLER_PID" 2>/dev/null || true
log "soak: workloads ended after ${elapsed}s"

# fio_line N: "job: read IOPS, write IOPS, verified writes" for each job.
fio_line() {
	python3 - "$OUT/fio-$1.json" <<-'PY'
		import json, sys
		try:
		    with open(sys.argv[1]) as f:
		        jobs = json.load(f)["jobs"]
		except (OSError, ValueError, KeyError) as e:
		    print("no fio report: %s" % e)
		    sys.exit(0)
		for j in jobs:
		    print("%s: %.0f read IOPS, %.0f write IOPS, %.1f MiB written, errors %d" % (j["jobname"],
		        j["read"]["iops"], j["write"]["iops"], j["write"]["io_bytes"] / 1048576.0, j["error"]))
	PY
}
for n in "${NAMES[@]}"; do
	check "$n: fio verified everything it wrote (exit $(cat "$WORK/rc-fio-$n"))" test "$(cat "$WORK/rc-fio-$n")" = 0
	check "$n: stress-ng completed with no failed stressor (exit $(cat "$WORK/rc-stress-$n"))" \
		test "$(cat "$WORK/rc-stress-$n")" = 0
	check "$n: stress-ng reports a successful run" grep -q 'successful run completed' "$OUT/stress-ng-$n.txt"
done
samples=$(grep -c '^[0-9]' "$OUT/soak-vm.csv" || true)
check "odxtgt's metrics were sampled ($samples samples)" test "$samples" -ge $((SECS / 10 - 1))
check "both sessions were LOGGED_IN at every sample" \
	test "$(awk -F, '/^[0-9]/ && $6 != 2' "$OUT/soak-vm.csv" | wc -l)" -eq 0
check "no metrics scrape failed" test "$(grep -c 'scrape failed' "$OUT/soak-vm.csv" || true)" -eq 0
# growth COLUMN RATIO PLUS prints the means of column COLUMN of soak-vm.csv
# over the second and the last quarter of the samples, and fails when the
# last is above RATIO times the second plus PLUS: the rule of
# conformance/stress/soak (the first quarter is the warm-up).
growth() {
	awk -F, -v c="$1" -v r="$2" -v p="$3" '/^[0-9]/ { v[n++] = $c }
		END {
			if (n < 8) { printf "%d samples, too few to judge", n; exit 0 }
			for (i = int(n / 4); i < int(n / 2); i++) { a += v[i]; na++ }
			for (i = int(3 * n / 4); i < n; i++) { b += v[i]; nb++ }
			a /= na; b /= nb
			printf "%.1f in the second quarter, %.1f in the last", a, b
			exit !(b <= a * r + p)
		}' "$OUT/soak-vm.csv"
}
for g in "3 1.5 16 resident memory (MiB)" "4 1.2 50 goroutines" "5 1.2 16 open files"; do
	read -r col ratio plus what <<<"$g"
	grew=0
	trend=$(growth "$col" "$ratio" "$plus") || grew=1
	check "odxtgt's $what did not keep growing: $trend" test "$grew" = 0
done

# classes prints, per command class, the commands odxtgt completed and the
# 99th percentile of their latency (the upper bound of the histogram bucket
# that holds it), summed over the LUNs.
classes() {
	python3 - "http://$METRICS/metrics" <<-'PY'
		import re, sys, urllib.request
		text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
		count, buckets = {}, {}
		for line in text.splitlines():
		    m = re.match(r'odxtgt_scsi_command_duration_seconds_(bucket|count)\{(.*)\} (\S+)$', line)
		    if not m:
		        continue
		    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
		    c, v = labels["class"], float(m.group(3))
		    if m.group(1) == "count":
		        count[c] = count.get(c, 0) + v
		    else:
		        le = float(labels["le"])
		        buckets.setdefault(c, {})[le] = buckets.get(c, {}).get(le, 0) + v
		for c in sorted(count):
		    if not count[c]:
		        continue
		    p99 = next(le for le, n in sorted(buckets[c].items()) if n >= 0.99 * count[c])
		    print("%s: %d commands, p99 <= %s ms" % (c, count[c], "%g" % (p99 * 1000) if p99 != float("inf") else "inf"))
	PY
}
classes >"$OUT/classes.txt" 2>&1 || log "could not read the command classes from /metrics: $(cat "$OUT/classes.txt")"
check "odxtgt served reads and writes" eval 'grep -q "^read: " "$OUT/classes.txt" && grep -q "^write: " "$OUT/classes.txt"'

for n in "${NAMES[@]}"; do
	sync
	check "$n: unmount" umount "${MNT[$n]}"
done
drop_caches
for n in "${NAMES[@]}"; do
	check "$n: e2fsck -fn finds the file system clean" run_logged "fsck-$n.txt" e2fsck -fn "${DISK[$n]}"
	mount -o ro "${DISK[$n]}" "${MNT[$n]}" || fail "$n: read-only remount failed"
	check "$n: the files written before the soak keep their sums" \
		eval '(cd "${MNT[$n]}" && sha256sum --quiet -c "$WORK/manifest-$n")'
	umount "${MNT[$n]}"
done
dmesg >"$OUT/dmesg-soak.txt"
check "the kernel logged no iSCSI connection error" \
	test "$(grep -ciE 'detected conn error|connection[0-9:]* .*error|iscsi.*(reset|timed out)' "$OUT/dmesg-soak.txt" || true)" -eq 0
check "the kernel logged no I/O error" test "$(grep -ciE 'I/O error|EXT4-fs error|Buffer I/O' "$OUT/dmesg-soak.txt" || true)" -eq 0
check "no errors or panics in the odxtgt log" test "$(odx_errors | wc -l)" -eq 0
for n in "${NAMES[@]}"; do
	check "$n: logout" iscsi_logout "${IQN[$n]}" "$ODX_PORT"
done
check "odxtgt exits 0 on SIGTERM" odx_stop

{
	echo "VM soak: odxtgt in the guest, 2 open-iscsi sessions (b with CRC32C digests), ext4 on each, ${elapsed}s of fio verify + stress-ng"
	for n in "${NAMES[@]}"; do
		fio_line "$n" | sed "s/^/  $n fio /"
		# The per-stressor lines: name, bogo ops, real, user and system
		# time, bogo ops/s.
		awk -v n="$n" '$2 == "metrc:" && NF == 10 && $5 ~ /^[0-9]+$/ {
			printf "  %s stress-ng %s: %s bogo ops, %s ops/s\n", n, $4, $5, $9 }' "$OUT/stress-ng-$n.txt"
	done
	sed 's/^/  odxtgt commands, /' "$OUT/classes.txt"
	awk -F, '/^[0-9]/ { n++; if (n == 1) { r0 = $3; g0 = $4; f0 = $5 } if ($2 > 0) { c += $2; k++ } r = $3; g = $4; f = $5; if ($3 > rmax) rmax = $3 }
		END { if (n) printf "  odxtgt: %.0f SCSI commands/s on average; RSS %.1f -> %.1f MiB (max %.1f); goroutines %d -> %d; open files %d -> %d (%d samples)\n",
			(k ? c / k : 0), r0, r, rmax, g0, g, f0, f, n }' "$OUT/soak-vm.csv"
	if [ "$CHECK_FAILURES" -eq 0 ]; then echo "  result: clean"; else echo "  result: $CHECK_FAILURES check(s) failed (see log.txt)"; fi
} | tee "$OUT/soak-vm.txt"
finish
