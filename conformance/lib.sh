# Shared helpers for conformance scripts: sourced, not run.
#
# need PACKAGE COMMAND... installs a Debian package with apt-get when one of
# its commands is missing, and fails with what to install when it cannot.
# build_odxtgt DIR builds the odxtgt binary (CGO_ENABLED=0) into DIR; with
# ODXTGT_RACE=1 it builds with the race detector instead (cgo, needs gcc).
# start_odxtgt CONFIG LOG starts it on that configuration, waits until it
# listens and sets ODXTGT_PID and ODXTGT_PORTS (the ports, in log order).
# stop_odxtgt sends SIGTERM (SIGKILL after 10 s) and sets ODXTGT_STATUS to
# the exit status (137 when it had to be killed).

conformance_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$conformance_dir/.." && pwd)

die() { echo "FAIL: $*" >&2; exit 1; }

need() {
	local pkg=$1; shift
	local missing=0 c
	for c in "$@"; do command -v "$c" >/dev/null 2>&1 || missing=1; done
	[ "$missing" = 0 ] && return 0
	echo "installing $pkg (needed for: $*)" >&2
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		die "$* not found: install the Debian package '$pkg' (apt-get install $pkg) and run again"
	fi
	if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1; }; }; then
		die "could not install the Debian package '$pkg' with apt-get: install it and run again"
	fi
	for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "package '$pkg' installed but $c is still missing"; done
}

build_odxtgt() {
	local cgo=0 race=()
	if [ "${ODXTGT_RACE:-0}" = 1 ]; then cgo=1 race=(-race); fi
	(cd "$repo_root" && CGO_ENABLED=$cgo go build "${race[@]}" -o "$1/odxtgt" ./cmd/odxtgt) || die "go build ${race[*]} ./cmd/odxtgt failed"
}

start_odxtgt() {
	local cfg=$1 log=$2 bin=${ODXTGT_BIN:?ODXTGT_BIN not set} i
	"$bin" check --config "$cfg" >/dev/null || die "generated config $cfg is invalid"
	"$bin" serve --config "$cfg" --log-format text >"$log" 2>&1 &
	ODXTGT_PID=$!
	for i in $(seq 1 100); do
		if grep -q 'msg=listening' "$log"; then
			ODXTGT_PORTS=$(sed -n 's/.*msg=listening portal=[^ ]*:\([0-9]*\).*/\1/p' "$log")
			return 0
		fi
		kill -0 "$ODXTGT_PID" 2>/dev/null || { cat "$log" >&2; die "odxtgt exited during start-up"; }
		sleep 0.1
	done
	cat "$log" >&2
	die "odxtgt did not start listening within 10 s"
}

stop_odxtgt() {
	[ -n "${ODXTGT_PID:-}" ] || return 0
	kill -TERM "$ODXTGT_PID" 2>/dev/null || true
	local i
	for i in $(seq 1 100); do kill -0 "$ODXTGT_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$ODXTGT_PID" 2>/dev/null || true
	ODXTGT_STATUS=0
	wait "$ODXTGT_PID" 2>/dev/null || ODXTGT_STATUS=$?
	ODXTGT_PID=
}

# start_tgt IMAGE LOG starts Debian's tgtd on 127.0.0.1:$TGT_PORT (default
# 3299) with target TGT_IQN, LUN 1 backed by IMAGE, open to every
# initiator; stop_tgt takes it down. Needs root.
TGT_IQN=iqn.2025-01.io.odxtgt:tgt-peer
start_tgt() {
	TGT_PORT=${TGT_PORT:-3299}
	tgtd -f --iscsi portal=127.0.0.1:$TGT_PORT >"$2" 2>&1 &
	TGTD_PID=$!
	sleep 1
	tgtadm --lld iscsi --op new --mode target --tid 1 -T "$TGT_IQN"
	tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$1"
	tgtadm --lld iscsi --op bind --mode target --tid 1 -I ALL
}

stop_tgt() {
	[ -n "${TGTD_PID:-}" ] || return 0
	tgtadm --lld iscsi --op update --mode target --tid 1 -n state -v offline >/dev/null 2>&1 || true
	tgtadm --lld iscsi --op delete --mode target --tid 1 --force >/dev/null 2>&1 || true
	tgtadm --op delete --mode system >/dev/null 2>&1 || true
	kill -KILL "$TGTD_PID" 2>/dev/null || true
	TGTD_PID=
}
