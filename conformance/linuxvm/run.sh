#!/usr/bin/env bash
# run.sh boots the conformance guest once and runs scripts inside it.
#
# Usage: run.sh [-o OUTDIR] [-t SECONDS] [-m MIB] SCRIPT...
#   SCRIPT   a scenario name (10-login-chap, 10-login-chap.sh or a prefix
#            such as 10) from scenarios/, or a path relative to this folder
#            (bench/dd-throughput.sh). "probe" only boots and powers off.
#            VAR=value sets VAR for the scripts after it (TARGET=lio runs
#            the scenarios that support it against LIO instead of odxtgt;
#            SCRIPT_TIMEOUT=SEC kills one script after SEC s, default 900).
#   -o DIR   output folder (default $LINUXVM_CACHE/out, emptied first)
#   -t SEC   the guest is killed after SEC seconds (default 3600)
#   -m MIB   guest memory (default 3072)
# Environment: ODXTGT_VM_ACCEL=auto|tcg|kvm (default auto: KVM only when a
# probe boot under KVM works on this machine, else TCG), ODXTGT_BIN=path to a
# prebuilt odxtgt (default: built from the repository with CGO_ENABLED=0).
#
# Streams the guest console, leaves each script's output in OUTDIR/<name>/
# and exits with the guest's exit code (124 when the guest timed out).
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

outdir="$LINUXVM_CACHE/out"
timeout_s=3600
mem=3072
while getopts "o:t:m:" opt; do
	case $opt in
	o) outdir=$OPTARG ;;
	t) timeout_s=$OPTARG ;;
	m) mem=$OPTARG ;;
	*) sed -n '2,/^set /p' "$0" | sed 's/^# \{0,1\}//;$d' >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || linuxvm_die "usage: run.sh [-o OUTDIR] [-t SECONDS] [-m MIB] SCRIPT..."

# Resolve the scripts to paths relative to this folder.
job=()
for s in "$@"; do
	if [[ $s =~ ^[A-Z_][A-Z0-9_]*=[^[:space:]]*$ ]]; then
		job+=("$s")
	elif [ "$s" = probe ]; then
		job=(probe)
		break
	elif [ -f "$LINUXVM_DIR/$s" ]; then
		job+=("$s")
	else
		matches=("$LINUXVM_DIR"/scenarios/"${s%.sh}"*.sh)
		[ -f "${matches[0]}" ] || linuxvm_die "no scenario matches '$s'"
		[ ${#matches[@]} -eq 1 ] || linuxvm_die "'$s' matches several scenarios: ${matches[*]##*/}"
		job+=("scenarios/${matches[0]##*/}")
	fi
done

linuxvm_host_tools
guest=$("$LINUXVM_DIR/build-guest.sh" | tail -n 1)
[ -s "$guest/initramfs.cpio" ] || linuxvm_die "guest build did not produce an initramfs"

mkdir -p "$LINUXVM_CACHE"
share=$(mktemp -d "$LINUXVM_CACHE/share.XXXXXX")
trap 'rm -rf "$share"' EXIT
mkdir -p "$share/bin" "$share/linuxvm"
cp -r "$LINUXVM_DIR"/. "$share/linuxvm/"
printf '%s ' "${job[@]}" >"$share/job"

if [ "${job[0]}" != probe ]; then
	if [ -n "${ODXTGT_BIN:-}" ]; then
		cp "$ODXTGT_BIN" "$share/bin/odxtgt"
	elif [ -d "$REPO_ROOT/cmd/odxtgt" ]; then
		linuxvm_log "building odxtgt (CGO_ENABLED=0)"
		# A build failure does not stop the run: the LIO-only scripts still
		# tell whether the harness works, and every odxtgt scenario fails
		# with "odxtgt binary missing".
		(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$share/bin/odxtgt" ./cmd/odxtgt) ||
			linuxvm_log "WARNING: go build ./cmd/odxtgt failed; odxtgt scenarios will fail"
		# The benchmark tool bench/caw-throughput.sh drives both targets with.
		(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -o "$share/bin/odxtgt-vaai" ./conformance/bench/vaai) ||
			linuxvm_log "WARNING: go build ./conformance/bench/vaai failed; bench/caw-throughput.sh will fail"
	else
		linuxvm_log "WARNING: $REPO_ROOT/cmd/odxtgt does not exist; odxtgt scenarios will fail"
	fi
fi

# Empty the output folder only if it is empty or a previous run's output.
if [ -d "$outdir" ] && [ -n "$(ls -A "$outdir")" ]; then
	[ -e "$outdir/console.log" ] ||
		linuxvm_die "$outdir is not empty and not the output of a previous run; choose another -o"
	rm -rf "${outdir:?}"/*
fi
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

# qemu_cmd ACCEL SHARE OUT fills the array qemu with the QEMU command line.
qemu_cmd() {
	local accel=$1 in=$2 out=$3 cpu=max opts=tcg,thread=multi,tb-size=512
	[ "$accel" = kvm ] && cpu=host opts=kvm
	qemu=(qemu-system-x86_64 -nodefaults -nic none -no-reboot -display none
		-machine q35 -accel "$opts" -cpu "$cpu" -smp 2 -m "$mem"
		-kernel "$guest/vmlinuz" -initrd "$guest/initramfs.cpio"
		-append "console=ttyS0 panic=-1 loglevel=3 mitigations=off tsc=reliable random.trust_cpu=on"
		-serial stdio
		-fsdev "local,id=odxin,path=$in,security_model=none,readonly=on"
		-device "virtio-9p-pci,fsdev=odxin,mount_tag=odxin"
		-fsdev "local,id=odxout,path=$out,security_model=none"
		-device "virtio-9p-pci,fsdev=odxout,mount_tag=odxout")
}

# choose_accel prints kvm only if a probe guest boots and powers off under
# KVM on this machine (the answer is cached per host kernel and guest), tcg
# otherwise.
choose_accel() {
	case ${ODXTGT_VM_ACCEL:-auto} in
	tcg | kvm) echo "$ODXTGT_VM_ACCEL"; return ;;
	auto) ;;
	*) linuxvm_die "ODXTGT_VM_ACCEL must be auto, tcg or kvm" ;;
	esac
	if [ ! -w /dev/kvm ]; then
		echo tcg
		return
	fi
	local stamp probe
	stamp="$LINUXVM_CACHE/kvm-probe-$(uname -r)-${guest##*/}"
	if [ ! -f "$stamp" ]; then
		probe=$(mktemp -d "$LINUXVM_CACHE/probe.XXXXXX")
		mkdir -p "$probe/in/linuxvm" "$probe/out"
		cp "$LINUXVM_DIR/guest-boot.sh" "$probe/in/linuxvm/"
		echo probe >"$probe/in/job"
		qemu_cmd kvm "$probe/in" "$probe/out"
		if timeout -k 5 30 "${qemu[@]}" </dev/null >"$probe/console.log" 2>&1 &&
			[ "$(cat "$probe/out/exit-code" 2>/dev/null)" = 0 ]; then
			echo kvm >"$stamp"
		else
			linuxvm_log "KVM does not boot this guest here; using TCG (probe console: $stamp.log)"
			echo tcg >"$stamp"
		fi
		cp "$probe/console.log" "$stamp.log"
		rm -rf "$probe"
	fi
	cat "$stamp"
}

accel=$(choose_accel)
qemu_cmd "$accel" "$share" "$outdir"
linuxvm_log "booting $(cat "$guest/kernel-version") under $accel: ${job[*]} (output: $outdir)"
start=$(date +%s)
set +e
timeout -k 10 "$timeout_s" "${qemu[@]}" </dev/null 2>&1 | tee "$outdir/console.log"
qrc=${PIPESTATUS[0]}
set -e
elapsed=$(($(date +%s) - start))

if [ -s "$outdir/exit-code" ]; then
	rc=$(cat "$outdir/exit-code")
elif [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	linuxvm_log "guest killed after ${timeout_s}s timeout"
	rc=124
else
	linuxvm_log "guest ended (qemu exit $qrc) without reporting an exit code"
	rc=1
fi
linuxvm_log "guest ran ${elapsed}s under $accel, exit code $rc, output in $outdir"
# The plain closing line, last, for whoever reads this run's output.
[ -s "$outdir/summary.txt" ] && cat "$outdir/summary.txt"
exit "$rc"
