#!/bin/bash
# guest-boot.sh runs inside the guest, started by /init once the shares are
# mounted: /odxin (read-only: this folder as linuxvm/, bin/odxtgt, job) and
# /odxout (results). It prepares the system the scenarios expect (loopback,
# kernel modules, configfs, D-Bus, iscsid), then runs every script named in
# /odxin/job, one after the other, each in its own bash with its output in
# /odxout/<name>/log.txt. A failing script does not stop the others. The last
# line printed is "N passed, M failed"; the exit code is 0 only if M is 0.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb

boot_fail() { echo "guest-boot: $*"; exit 2; }

uptime_s() { cut -d' ' -f1 /proc/uptime; }
echo "guest-boot: started at $(uptime_s)s"
hostname odxtgt-guest
# devtmpfs has no /dev/fd: bash process substitution needs it.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
ip link set lo up || boot_fail "cannot bring up lo"
mount -t tmpfs -o mode=1777,size=85% tmpfs /tmp || boot_fail "cannot mount /tmp"

mkdir -p /etc/target
# Nothing loads modules on its own here: load what the scenarios use.
for m in configfs sd_mod sg iscsi_tcp target_core_mod target_core_file \
	target_core_iblock iscsi_target_mod ext4 loop crc32c_intel crc32c_generic; do
	modprobe "$m" 2>/dev/null || {
		# crc32c_intel needs SSE4.2, which not every CPU model has.
		case $m in crc32c_*) ;; *) boot_fail "modprobe $m failed" ;; esac
	}
done
mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config ||
	boot_fail "cannot mount configfs"

# targetcli-fb talks to a system D-Bus.
mkdir -p /run/dbus /var/lib/dbus
dbus-daemon --system --fork || boot_fail "dbus-daemon did not start"

mkdir -p /run/lock/iscsi /var/lib/iscsi /etc/iscsi/nodes /etc/iscsi/send_targets /etc/iscsi/ifaces
iscsid || boot_fail "iscsid did not start"
# iscsiadm exits 21 (no objects found) once iscsid answers.
for _ in $(seq 100); do
	rc=0
	iscsiadm -m session >/dev/null 2>&1 || rc=$?
	[ $rc -eq 21 ] && break
	sleep 0.2
done
[ "$rc" -eq 21 ] || boot_fail "iscsid does not answer (iscsiadm -m session exit $rc)"

if [ -x /odxin/bin/odxtgt ]; then
	cp /odxin/bin/odxtgt /usr/local/bin/odxtgt
fi

echo "guest-boot: ready at $(uptime_s)s"
read -r -a job </odxin/job
if [ "${job[0]:-}" = probe ]; then
	echo "guest-boot: probe ok, kernel $(uname -r), $(nproc) CPUs"
	exit 0
fi
[ ${#job[@]} -gt 0 ] || boot_fail "empty job"

# leftovers undoes what a script killed by its timeout (or a broken
# script) left behind, so the next one starts clean: odxtgt processes,
# iSCSI sessions and records, LIO objects.
leftovers() {
	local pids
	if [ -n "$(ls /sys/class/iscsi_session 2>/dev/null)" ]; then
		echo "guest-boot: logging out leftover sessions"
		iscsiadm -m node --logoutall=all >/dev/null 2>&1
	fi
	pids=$(pidof odxtgt || true)
	if [ -n "$pids" ]; then
		echo "guest-boot: killing leftover odxtgt ($pids)"
		# shellcheck disable=SC2086
		kill -KILL $pids
	fi
	rm -rf /etc/iscsi/nodes/* /etc/iscsi/send_targets/* /etc/iscsi/ifaces/*
	if compgen -G '/sys/kernel/config/target/iscsi/iqn.*' >/dev/null ||
		compgen -G '/sys/kernel/config/target/core/*_*/*/info' >/dev/null; then
		echo "guest-boot: clearing leftover LIO configuration"
		echo "clearconfig confirm=True" | targetcli >/dev/null 2>&1
	fi
	rm -rf /tmp/odx
}

# Each script runs with its own output folder and a clean kernel log, at
# most SCRIPT_TIMEOUT seconds (default 900).
passed=0 failed=0 results=()
for script in "${job[@]}"; do
	# VAR=value entries set the environment of the scripts that follow.
	if [[ $script == *=* ]]; then
		export "${script?}"
		continue
	fi
	name=$(basename "$script" .sh)
	out="/odxout/$name"
	mkdir -p "$out"
	dmesg -C
	echo "===== $name ====="
	t0=$(date +%s)
	SCENARIO=$name OUT=$out timeout -k 10 "${SCRIPT_TIMEOUT:-900}" \
		bash "/odxin/linuxvm/$script" 2>&1 | tee "$out/log.txt"
	rc=${PIPESTATUS[0]}
	dt=$(($(date +%s) - t0))
	[ "$rc" -ne 124 ] || echo "guest-boot: $name killed after ${SCRIPT_TIMEOUT:-900}s"
	dmesg >"$out/dmesg.txt"
	leftovers
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		results+=("PASS $name (${dt}s)")
	else
		failed=$((failed + 1))
		results+=("FAIL $name (exit $rc, ${dt}s)")
	fi
	echo "===== $name: ${results[-1]%% *} ====="
done

echo "===== summary ====="
printf '%s\n' "${results[@]}" | tee /odxout/results.txt
echo "$passed passed, $failed failed" | tee /odxout/summary.txt
[ "$failed" -eq 0 ]
