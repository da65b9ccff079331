# shellcheck shell=bash disable=SC2034 # TGT_* and the names below are for the scenarios
# lib.sh is the scenario library, sourced by every script under scenarios/
# and bench/ inside the guest (as root, started by guest-boot.sh).
#
# Layout inside the guest: odxtgt listens on 127.0.0.1:$ODX_PORT, LIO on
# 127.0.0.1:$LIO_PORT; LUN files live on tmpfs under $WORK; results go to $OUT
# (a folder on the host share). The initiator is the kernel's (open-iscsi).
#
# Conventions: fail MESSAGE ends the scenario at once; check DESC CMD... runs
# CMD and records a failure without stopping; finish exits non-zero when any
# check failed. An EXIT trap logs out every session, stops odxtgt, clears
# LIO and removes the LUN files, so each scenario starts from a clean guest.
set -euo pipefail

SCENARIO=${SCENARIO:-$(basename "$0" .sh)}
OUT=${OUT:-/tmp/out/$SCENARIO}
WORK=/tmp/odx
ADDR=127.0.0.1
ODX_PORT=3260
LIO_PORT=3261
ODX_IQN=iqn.2025-01.io.odxtgt:t1
LIO_IQN=iqn.2003-01.org.linux-iscsi.odxtgt-guest:lio
ODX_BIN=${ODX_BIN:-/usr/local/bin/odxtgt}
# Extra arguments for "odxtgt serve", e.g. ODX_ARGS=--log-level=debug given
# to run.sh.
ODX_ARGS=${ODX_ARGS:-}
ODX_LOG=$OUT/odxtgt.log
INITIATOR_IQN=$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)
ODX_PID=
CHECK_FAILURES=0
mkdir -p "$OUT" "$WORK"

log() { printf '%s [%s] %s\n' "$(date +%T)" "$SCENARIO" "$*"; }
fail() {
	log "FAIL: $*"
	exit 1
}

# check DESC CMD... runs CMD; on failure it logs and counts, and goes on.
check() {
	local desc=$1
	shift
	if "$@"; then
		log "ok: $desc"
	else
		log "FAIL: $desc"
		CHECK_FAILURES=$((CHECK_FAILURES + 1))
	fi
}

# finish ends a scenario: exit 1 if any check failed.
finish() {
	if [ "$CHECK_FAILURES" -ne 0 ]; then
		log "$CHECK_FAILURES check(s) failed"
		exit 1
	fi
	log "all checks passed"
}

# run_logged FILE CMD... runs CMD with its stdout and stderr saved to FILE
# (relative to $OUT) and shown; returns CMD's exit code.
run_logged() {
	local file=$OUT/$1 rc=0
	shift
	"$@" >"$file" 2>&1 || rc=$?
	sed 's/^/    /' "$file"
	return $rc
}

# wait_for SECONDS CMD... retries CMD every 0.5 s until it succeeds.
wait_for() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

# ---------------------------------------------------------------- odxtgt

# odx_require fails the scenario when the odxtgt binary was not shared.
odx_require() {
	[ -x "$ODX_BIN" ] || fail "odxtgt binary missing (run.sh builds it from ./cmd/odxtgt)"
}

# port_listening PORT: a LISTEN socket on 127.0.0.1:PORT or 0.0.0.0:PORT.
# Reads /proc so that no probe connection shows up in the target's log.
port_listening() {
	local hex
	hex=$(printf '%04X' "$1")
	grep -qE "^ *[0-9]+: (0100007F|00000000):$hex 00000000:0000 0A" /proc/net/tcp
}

# lun_file NAME SIZE creates (or truncates to SIZE) a sparse file on tmpfs
# and prints its path.
lun_file() {
	local f=$WORK/$1.img
	rm -f "$f"
	truncate -s "$2" "$f"
	echo "$f"
}

# odx_start CONFIG starts odxtgt in the background, logging to $ODX_LOG, and
# waits until it listens on $ODX_PORT.
odx_start() {
	odx_require
	local cfg=$1
	cp "$cfg" "$OUT/$(basename "$cfg")"
	echo "--- odxtgt serve --config $cfg $ODX_ARGS ($(date +%T))" >>"$ODX_LOG"
	# shellcheck disable=SC2086 # ODX_ARGS holds several words
	"$ODX_BIN" serve --config "$cfg" $ODX_ARGS >>"$ODX_LOG" 2>&1 &
	ODX_PID=$!
	if ! wait_for 30 odx_up; then
		tail -n 20 "$ODX_LOG" | sed 's/^/    odxtgt: /'
		fail "odxtgt did not start listening on $ADDR:$ODX_PORT"
	fi
	log "odxtgt running (pid $ODX_PID)"
}

odx_up() {
	kill -0 "$ODX_PID" 2>/dev/null || {
		tail -n 20 "$ODX_LOG" | sed 's/^/    odxtgt: /'
		fail "odxtgt exited during startup"
	}
	port_listening "$ODX_PORT"
}

# odx_stop sends SIGTERM and waits up to 20 s; returns odxtgt's exit status
# (1 if it had to be killed).
odx_stop() {
	[ -n "$ODX_PID" ] || return 0
	local pid=$ODX_PID rc=0
	ODX_PID=
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_for 20 eval "! kill -0 $pid 2>/dev/null"; then
		log "odxtgt did not stop within 20 s of SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 1
	fi
	wait "$pid" 2>/dev/null || rc=$?
	log "odxtgt stopped (exit $rc)"
	return $rc
}

# odx_errors prints the error lines of odxtgt's log (text or JSON slog).
odx_errors() {
	grep -E 'level=ERROR|"level":"ERROR"|panic:|goroutine [0-9]+ \[' "$ODX_LOG" 2>/dev/null || true
}

# odx_config FILE BACKSTORE SIZE [AUTH_YAML] writes a one-target, one-LUN
# config: target $ODX_IQN, LUN 0 on a file backstore of SIZE.
odx_config() {
	local file=$1 name=$2 size=$3 auth=${4:-}
	local img
	img=$(lun_file "$name" "$size")
	{
		echo "backstores:"
		echo "  - {name: $name, type: file, path: $img, size: $size, block_size: 512}"
		echo "targets:"
		echo "  - iqn: $ODX_IQN"
		echo "    portals: [\"$ADDR:$ODX_PORT\"]"
		echo "    luns: [{lun: 0, backstore: $name}]"
		[ -z "$auth" ] || echo "    auth: $auth"
	} >"$file"
}

# ---------------------------------------------------------------- LIO

# targetcli_batch runs targetcli commands read from stdin in one process.
# targetcli exits 0 even when a command fails, so callers verify configfs.
targetcli_batch() {
	local cmds
	cmds=$(cat)
	printf '%s\n' "$cmds" >>"$OUT/targetcli.log"
	printf '%s\nexit\n' "$cmds" | targetcli >>"$OUT/targetcli.log" 2>&1
}

# lio_start NAME SIZE [IQN] creates a fileio backstore of SIZE on tmpfs and
# an iSCSI target with it as LUN 0 on $ADDR:$LIO_PORT only (targetcli's
# default 0.0.0.0:3260 portal is turned off, or deleted), open to every initiator without
# authentication. The configuration is checked in configfs.
lio_start() {
	local name=$1 size=$2 iqn=${3:-$LIO_IQN}
	local img
	img=$(lun_file "lio-$name" "$size")
	targetcli_batch <<-EOF
		set global auto_save_on_exit=false auto_add_default_portal=false
		/backstores/fileio create name=$name file_or_dev=$img size=$size write_back=false
		/iscsi create $iqn
		/iscsi/$iqn/tpg1/portals create $ADDR $LIO_PORT
		/iscsi/$iqn/tpg1/luns create /backstores/fileio/$name
		/iscsi/$iqn/tpg1 set attribute authentication=0 demo_mode_write_protect=0 generate_node_acls=1 cache_dynamic_acls=1
	EOF
	local t=/sys/kernel/config/target
	# Older targetcli-fb ignore auto_add_default_portal and add 0.0.0.0:3260.
	if [ -e "$t/iscsi/$iqn/tpgt_1/np/0.0.0.0:3260" ]; then
		echo "/iscsi/$iqn/tpg1/portals delete 0.0.0.0 3260" | targetcli_batch
	fi
	[ -d "$t/core/fileio_0/$name" ] || ls -d "$t"/core/fileio_*/"$name" >/dev/null 2>&1 ||
		fail "LIO: backstore $name missing in configfs (see $OUT/targetcli.log)"
	[ -d "$t/iscsi/$iqn/tpgt_1/np/$ADDR:$LIO_PORT" ] ||
		fail "LIO: portal $ADDR:$LIO_PORT missing in configfs (see $OUT/targetcli.log)"
	[ ! -e "$t/iscsi/$iqn/tpgt_1/np/0.0.0.0:3260" ] ||
		fail "LIO: default portal 0.0.0.0:3260 still present"
	[ -d "$t/iscsi/$iqn/tpgt_1/lun/lun_0" ] || fail "LIO: LUN 0 missing in configfs"
	[ "$(cat "$t/iscsi/$iqn/tpgt_1/enable")" = 1 ] || fail "LIO: TPG 1 not enabled"
	log "LIO target $iqn on $ADDR:$LIO_PORT, fileio $name ($size)"
}

# lio_clear removes every LIO object and checks configfs is empty again.
lio_clear() {
	[ -d /sys/kernel/config/target/iscsi ] || return 0
	if ls -d /sys/kernel/config/target/iscsi/iqn.* >/dev/null 2>&1 ||
		ls -d /sys/kernel/config/target/core/*_*/*/info >/dev/null 2>&1; then
		echo "clearconfig confirm=True" | targetcli_batch
	fi
	! ls -d /sys/kernel/config/target/iscsi/iqn.* >/dev/null 2>&1
}

# ---------------------------------------------------------------- either

# target_start NAME SIZE starts the target under test with LUN 0 on a
# backstore of SIZE and sets TGT_IQN and TGT_PORT. TARGET=lio (given to
# run.sh as TARGET=lio) runs the scenario against LIO instead of odxtgt, to
# tell a harness problem from an odxtgt one.
target_start() {
	case ${TARGET:-odxtgt} in
	odxtgt)
		odx_config "$WORK/odxtgt.yaml" "$1" "$2"
		odx_start "$WORK/odxtgt.yaml"
		TGT_IQN=$ODX_IQN TGT_PORT=$ODX_PORT
		;;
	lio)
		lio_start "$1" "$2"
		TGT_IQN=$LIO_IQN TGT_PORT=$LIO_PORT
		;;
	*) fail "TARGET must be odxtgt or lio, not $TARGET" ;;
	esac
}

# ---------------------------------------------------------------- initiator

# iscsid_debug restarts iscsid in the foreground with debug level 8, its
# log in $OUT/iscsid.log: the login keys exchanged show up there.
iscsid_debug() {
	local pids
	pids=$(pidof iscsid || true)
	# shellcheck disable=SC2086
	[ -z "$pids" ] || kill $pids
	wait_for 10 eval '! pidof iscsid >/dev/null'
	iscsid -f -d 8 >"$OUT/iscsid.log" 2>&1 &
	local rc=0
	wait_for 10 eval 'rc=0; iscsiadm -m session >/dev/null 2>&1 || rc=$?; [ $rc -eq 21 ]' ||
		fail "debug iscsid does not answer"
	log "iscsid restarted with debug logging ($OUT/iscsid.log)"
}

# iscsi_discover PORT prints the SendTargets records found at $ADDR:PORT
# (and creates node records for them).
iscsi_discover() {
	iscsiadm -m discovery -t sendtargets -p "$ADDR:$1" "${@:2}"
}

# iscsi_node_new IQN PORT creates a node record without discovery.
iscsi_node_new() {
	iscsiadm -m node -o new -T "$1" -p "$ADDR:$2" >/dev/null
}

# iscsi_node_set IQN PORT NAME VALUE updates one setting of a node record.
iscsi_node_set() {
	iscsiadm -m node -T "$1" -p "$ADDR:$2" -o update -n "$3" -v "$4"
}

# iscsi_chap IQN PORT [USER SECRET [MUTUAL_USER MUTUAL_SECRET]] sets the
# node's authentication: none without USER, CHAP, or mutual CHAP.
iscsi_chap() {
	local iqn=$1 port=$2
	if [ $# -lt 4 ]; then
		# With a password left in the record iscsid still offers CHAP
		# (seen in its debug log): clear the credentials too.
		local k
		for k in username password username_in password_in; do
			iscsi_node_set "$iqn" "$port" "node.session.auth.$k" ""
		done
		iscsi_node_set "$iqn" "$port" node.session.auth.authmethod None
		return
	fi
	iscsi_node_set "$iqn" "$port" node.session.auth.authmethod CHAP
	iscsi_node_set "$iqn" "$port" node.session.auth.username "$3"
	iscsi_node_set "$iqn" "$port" node.session.auth.password "$4"
	iscsi_node_set "$iqn" "$port" node.session.auth.username_in "${5:-}"
	iscsi_node_set "$iqn" "$port" node.session.auth.password_in "${6:-}"
}

# iscsi_login IQN PORT [iscsiadm options] logs in to every node record of
# IQN at the portal (one session per iface record).
iscsi_login() {
	iscsiadm -m node -T "$1" -p "$ADDR:$2" "${@:3}" --login
}

iscsi_logout() {
	iscsiadm -m node -T "$1" -p "$ADDR:$2" "${@:3}" --logout
}

# iscsi_sessions IQN PORT prints the sysfs names (sessionN) of the sessions
# to IQN through $ADDR:PORT.
iscsi_sessions() {
	local s n
	for s in /sys/class/iscsi_session/session*; do
		[ -e "$s" ] || continue
		n=${s##*/session}
		[ "$(cat "$s/targetname")" = "$1" ] || continue
		[ "$(cat "/sys/class/iscsi_connection/connection$n:0/persistent_port" 2>/dev/null)" = "$2" ] || continue
		echo "${s##*/}"
	done
}

# session_state SESSION prints LOGGED_IN, FAILED or FREE.
session_state() {
	cat "/sys/class/iscsi_session/$1/state"
}

# session_dev SESSION LUN KIND prints /dev/sdX (KIND block) or /dev/sgN
# (KIND scsi_generic) of LUN in SESSION, if the kernel has it yet.
session_dev() {
	local d
	for d in /sys/class/iscsi_session/"$1"/device/target*/*:*:*:"$2"/"$3"/*; do
		[ -e "$d" ] || return 1
		[ -b "/dev/${d##*/}" ] || [ -c "/dev/${d##*/}" ] || return 1
		echo "/dev/${d##*/}"
		return 0
	done
	return 1
}

# lun_disk SESSION LUN / lun_sg SESSION LUN wait up to 30 s for the LUN's
# block or SCSI generic device and print it.
lun_disk() {
	wait_for 30 session_dev "$1" "$2" block >/dev/null || fail "no block device for LUN $2 in $1"
	session_dev "$1" "$2" block
}

lun_sg() {
	wait_for 30 session_dev "$1" "$2" scsi_generic >/dev/null || fail "no sg device for LUN $2 in $1"
	session_dev "$1" "$2" scsi_generic
}

# login_one IQN PORT: discovery-free login with the node's current settings
# followed by the sysfs session name on stdout. Fails the scenario when the
# login fails.
login_one() {
	local iqn=$1 port=$2 s
	iscsiadm -m node -T "$iqn" -p "$ADDR:$port" >/dev/null 2>&1 || iscsi_node_new "$iqn" "$port"
	iscsi_login "$iqn" "$port" >&2 || fail "login to $iqn at $ADDR:$port failed"
	s=$(iscsi_sessions "$iqn" "$port" | head -n 1)
	[ -n "$s" ] || fail "logged in to $iqn but no session in sysfs"
	echo "$s"
}

# iscsi_reset logs out every session and forgets every record.
iscsi_reset() {
	iscsiadm -m node --logoutall=all >/dev/null 2>&1 || true
	iscsiadm -m node -o delete >/dev/null 2>&1 || true
	iscsiadm -m discoverydb -t sendtargets -p "$ADDR:$ODX_PORT" -o delete >/dev/null 2>&1 || true
	iscsiadm -m discoverydb -t sendtargets -p "$ADDR:$LIO_PORT" -o delete >/dev/null 2>&1 || true
	rm -rf /etc/iscsi/nodes/* /etc/iscsi/send_targets/*
	local f
	for f in /etc/iscsi/ifaces/*; do
		[ -e "$f" ] && iscsiadm -m iface -I "${f##*/}" -o delete >/dev/null 2>&1
	done
	return 0
}

# ---------------------------------------------------------------- data

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# random_file PATH MIB writes MIB MiB from /dev/urandom to PATH.
random_file() {
	dd if=/dev/urandom of="$1" bs=1M count="$2" status=none
}

# write_direct SRC DEV [SEEK_MIB] copies SRC to DEV with O_DIRECT.
write_direct() {
	dd if="$1" of="$2" bs=1M seek="${3:-0}" oflag=direct conv=fsync,notrunc status=none
}

# sum_direct DEV MIB [SKIP_MIB] prints the SHA-256 of MIB MiB of DEV read
# with O_DIRECT (data written by copy offload bypasses the page cache).
sum_direct() {
	dd if="$1" bs=1M count="$2" skip="${3:-0}" iflag=direct status=none | sha256sum | cut -d' ' -f1
}

sum_file() {
	sha256sum "$1" | cut -d' ' -f1
}

# ---------------------------------------------------------------- identity

# identity SG prints "field<TAB>value" lines for the identity fields of a LU:
# INQUIRY vendor, product, revision, peripheral, version, TPGS, and the
# logical unit designators of VPD page 0x83 (NAA type and value, T10 vendor
# id, the list of designator types).
identity() {
	local sg=$1 inq di lu naa
	inq=$(sg_inq "$sg" 2>&1) || true
	di=$(sg_vpd -p di "$sg" 2>&1) || true
	# Only the "Addressed logical unit:" section describes the LU itself.
	lu=$(awk '/^  [A-Za-z].*:$/ { on = ($0 ~ /Addressed logical unit/) } on' <<<"$di")
	naa=$(awk '/designator type: NAA/ { getline; print $1; exit }' <<<"$lu")
	printf 'vendor\t%s\n' "$(sed -n 's/^ *Vendor identification: *//p' <<<"$inq" | sed 's/ *$//')"
	printf 'product\t%s\n' "$(sed -n 's/^ *Product identification: *//p' <<<"$inq" | sed 's/ *$//')"
	printf 'revision\t%s\n' "$(sed -n 's/^ *Product revision level: *//p' <<<"$inq" | sed 's/ *$//')"
	printf 'peripheral\t%s\n' "$(grep -o 'PQual=[0-9]*  *PDT=[0-9]*' <<<"$inq" | tr -s ' ')"
	printf 'version\t%s\n' "$(grep -oi 'version=0x[0-9a-f]*' <<<"$inq" | tr '[:upper:]' '[:lower:]')"
	printf 'tpgs\t%s\n' "$(grep -o 'TPGS=[0-9]' <<<"$inq")"
	printf 'naa\t%s\n' "${naa:+NAA ${naa:2:1}, $(((${#naa} - 2) / 2)) bytes}"
	printf 'naa_value\t%s\n' "$naa"
	printf 't10_vendor\t%s\n' "$(sed -n 's/^ *vendor id: *//p' <<<"$lu" | head -n 1 | sed 's/ *$//')"
	printf 'lu_designators\t%s\n' "$(sed -n 's/^ *designator type: *\([^,]*\),.*/\1/p' <<<"$lu" | paste -sd '|')"
	printf 'all_designators\t%s\n' "$(sed -n 's/^ *designator type: *\([^,]*\),.*/\1/p' <<<"$di" | paste -sd '|')"
}

# ---------------------------------------------------------------- cleanup

lib_cleanup() {
	local rc=$?
	set +e
	iscsi_reset
	if [ -n "$ODX_PID" ]; then
		odx_stop >/dev/null 2>&1
	fi
	local errs
	errs=$(odx_errors | wc -l)
	[ "$errs" -eq 0 ] || log "note: odxtgt logged $errs error line(s), see $ODX_LOG"
	lio_clear >/dev/null 2>&1
	rm -rf "$WORK"
	exit $rc
}
trap lib_cleanup EXIT
# ISCSID_DEBUG=1 (given to run.sh) logs every login key the initiator sends
# and receives to $OUT/iscsid.log.
if [ "${ISCSID_DEBUG:-0}" = 1 ]; then
	iscsid_debug
fi
