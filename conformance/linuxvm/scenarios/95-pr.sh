#!/bin/bash
# 95-pr: persistent reservations between two initiators. Two open-iscsi
# iface records with different initiator names (pr-a and pr-b) log in to
# the same LUN; sg_persist registers both, reads the keys, reserves WRITE
# EXCLUSIVE through a, reads the reservation from b, and checks that a
# write from b (sg_raw WRITE (10) and an O_DIRECT dd through the kernel)
# gets RESERVATION CONFLICT while its reads work; b preempts a, a's writes
# now conflict, b releases and clears. RESERVE (6) from a makes b conflict
# until RELEASE (6). Then a registers with APTPL, odxtgt restarts, the
# sessions reconnect with the same ISIDs, and the registration is still
# there. The same sg_persist sequence runs against LIO in the same guest,
# only logged, for comparison.
. "$(dirname "$0")/../lib.sh"
odx_require

NAME_A=iqn.2025-01.io.odxtgt:pr-a
NAME_B=iqn.2025-01.io.odxtgt:pr-b
KEY_A=0xa1
KEY_B=0xb2

for i in pra prb; do
	iscsiadm -m iface -I "$i" -o new >/dev/null
	iscsiadm -m iface -I "$i" -o update -n iface.transport_name -v tcp >/dev/null
done
iscsiadm -m iface -I pra -o update -n iface.initiatorname -v "$NAME_A" >/dev/null
iscsiadm -m iface -I prb -o update -n iface.initiatorname -v "$NAME_B" >/dev/null

# session_of IQN PORT NAME prints the session of initiator NAME to IQN.
session_of() {
	local s
	for s in $(iscsi_sessions "$1" "$2"); do
		[ "$(cat "/sys/class/iscsi_session/$s/initiatorname")" = "$3" ] && echo "$s" && return 0
	done
	return 1
}

# connect IQN PORT logs in through both ifaces and sets SG_A, SG_B, DISK_B.
connect() {
	iscsi_discover "$2" -I pra -I prb >"$OUT/discovery-$2.txt" 2>&1 || fail "discovery at port $2 failed"
	iscsi_login "$1" "$2" >/dev/null || fail "login through both ifaces at port $2 failed"
	SESS_A=$(session_of "$1" "$2" "$NAME_A") || fail "no session for $NAME_A"
	SESS_B=$(session_of "$1" "$2" "$NAME_B") || fail "no session for $NAME_B"
	SG_A=$(lun_sg "$SESS_A" 0)
	SG_B=$(lun_sg "$SESS_B" 0)
	DISK_B=$(lun_disk "$SESS_B" 0)
	log "port $2: $NAME_A $SESS_A $SG_A; $NAME_B $SESS_B $SG_B $DISK_B"
}

# raw FILE SG OPTION... -- CDB... runs sg_raw, again after a unit
# attention (nothing consumes those for SG_IO), leaving its output in FILE
# and its exit status in RAW_RC.
raw() {
	local f=$1 sg=$2 i opts=()
	shift 2
	while [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	shift
	for i in 1 2 3 4; do
		RAW_RC=0
		sg_raw "${opts[@]}" "$sg" "$@" >"$f" 2>&1 || RAW_RC=$?
		grep -qi 'unit attention' "$f" || break
	done
	cat "$f" >>"$OUT/sg_raw.txt"
}
# raw_status FILE: conflict, good or other for the last raw command.
raw_status() {
	if grep -qi 'reservation conflict' "$1"; then
		echo conflict
	elif [ "$RAW_RC" = 0 ]; then
		echo good
	else
		echo other
	fi
}
# write_status SG / read_status SG: the outcome of a one-block WRITE (10)
# or READ (10) at LBA 8.
write_status() {
	raw "$WORK/raw.txt" "$1" -s 512 -i "$WORK/block" -- 2a 00 00 00 00 08 00 00 01 00
	raw_status "$WORK/raw.txt"
}
read_status() {
	raw "$WORK/raw.txt" "$1" -r 512 -o /dev/null -- 28 00 00 00 00 08 00 00 01 00
	raw_status "$WORK/raw.txt"
}
dd if=/dev/urandom of="$WORK/block" bs=512 count=1 status=none

# step MODE DESC CMD...: with MODE check a failing CMD is a failure, with
# MODE log (LIO) it is only logged. CMD's output goes to the logs.
step() {
	local mode=$1 desc=$2
	shift 2
	if [ "$mode" = check ]; then
		check "$desc" "$@"
	elif "$@" >>"$OUT/lio.txt" 2>&1; then
		log "LIO: $desc: ok"
	else
		log "LIO: $desc: differs"
	fi
}
# sgp PREFIX ARGS...: sg_persist, again after a unit attention (exit
# status 6), its output kept in PREFIX-sg_persist.txt and in SGP_OUT.
sgp() {
	local p=$1 i rc
	shift
	for i in 1 2 3 4; do
		rc=0
		SGP_OUT=$(sg_persist "$@" 2>&1) || rc=$?
		printf -- '--- sg_persist %s (exit %d)\n%s\n' "$*" "$rc" "$SGP_OUT" >>"$OUT/$p-sg_persist.txt"
		[ "$rc" = 6 ] || break
	done
	return "$rc"
}
out() { sgp "$@"; }
# in_has PREFIX PATTERN ARGS...: sg_persist --in ARGS prints PATTERN.
in_has() {
	local p=$1 pat=$2
	shift 2
	sgp "$p" --in "$@" || return 1
	grep -qiE "$pat" <<<"$SGP_OUT"
}
is() { [ "$("$1" "$2")" = "$3" ]; }

# pr_sequence MODE PREFIX: the register/reserve/preempt/release/clear
# sequence through SG_A and SG_B.
pr_sequence() {
	local m=$1 p=$2
	step "$m" "register a" out "$p" --out --register --param-sark=$KEY_A "$SG_A"
	step "$m" "register b" out "$p" --out --register --param-sark=$KEY_B "$SG_B"
	step "$m" "re-register a with a wrong key conflicts" eval "! out $p --out --register --param-rk=0x99 --param-sark=0x98 $SG_A"
	step "$m" "read keys: both" in_has "$p" "0xa1" --read-keys "$SG_B"
	step "$m" "read keys: b's too" in_has "$p" "0xb2" --read-keys "$SG_A"
	step "$m" "a reserves WRITE EXCLUSIVE" out "$p" --out --reserve --param-rk=$KEY_A --prout-type=1 "$SG_A"
	step "$m" "b reads the reservation: a's key" in_has "$p" "key=0xa1" --read-reservation "$SG_B"
	step "$m" "b reads the reservation: Write Exclusive" in_has "$p" "type: Write Exclusive" --read-reservation "$SG_B"
	step "$m" "b cannot reserve" eval "! out $p --out --reserve --param-rk=$KEY_B --prout-type=1 $SG_B"
	step "$m" "b's WRITE (10) gets RESERVATION CONFLICT" is write_status "$SG_B" conflict
	step "$m" "b's O_DIRECT write through the kernel fails" eval "! dd if=$WORK/block of=$DISK_B bs=512 seek=16 count=1 oflag=direct conv=notrunc status=none"
	step "$m" "b reads (WRITE EXCLUSIVE lets it)" is read_status "$SG_B" good
	step "$m" "a, the holder, writes" is write_status "$SG_A" good
	sg_persist --in --read-full-status "$SG_A" >"$OUT/$p-read-full-status.txt" 2>&1 || true
	sg_persist --in --report-capabilities "$SG_A" >"$OUT/$p-report-capabilities.txt" 2>&1 || true
	step "$m" "b preempts a" out "$p" --out --preempt --param-rk=$KEY_B --param-sark=$KEY_A --prout-type=1 "$SG_B"
	step "$m" "a is no longer registered" eval "! in_has $p 0xa1 --read-keys $SG_B"
	step "$m" "b holds the reservation" in_has "$p" "key=0xb2" --read-reservation "$SG_A"
	step "$m" "a's WRITE (10) now conflicts" is write_status "$SG_A" conflict
	step "$m" "b writes" is write_status "$SG_B" good
	step "$m" "b releases" out "$p" --out --release --param-rk=$KEY_B --prout-type=1 "$SG_B"
	step "$m" "no reservation after release" in_has "$p" "NO reservation" --read-reservation "$SG_A"
	step "$m" "a writes again" is write_status "$SG_A" good
	step "$m" "b clears" out "$p" --out --clear --param-rk=$KEY_B "$SG_B"
	step "$m" "no keys after clear" in_has "$p" "no registered reservation keys|there are NO registered" --read-keys "$SG_A"
	# SPC-2 RESERVE (6) / RELEASE (6).
	raw "$OUT/$p-reserve6-a.txt" "$SG_A" -- 16 00 00 00 00 00
	step "$m" "RESERVE (6) from a: b's write conflicts" is write_status "$SG_B" conflict
	step "$m" "RESERVE (6) from a: b's read conflicts" is read_status "$SG_B" conflict
	raw "$OUT/$p-release6-a.txt" "$SG_A" -- 17 00 00 00 00 00
	step "$m" "after RELEASE (6) b writes" is write_status "$SG_B" good
}

# odxtgt.
odx_config "$WORK/odxtgt.yaml" disk0 64M
odx_start "$WORK/odxtgt.yaml"
connect "$ODX_IQN" "$ODX_PORT"
pr_sequence check odx
check "REPORT CAPABILITIES lists every type" test "$(grep -c 'xclusive.*: 1' "$OUT/odx-report-capabilities.txt")" -ge 6
check "READ FULL STATUS names both initiators" grep -q "pr-b" "$OUT/odx-read-full-status.txt"

# APTPL across a restart of odxtgt: the sessions come back with the same
# ISIDs, so they are the same I_T nexuses.
check "register a with APTPL" out odx --out --register --param-sark=$KEY_A --param-aptpl "$SG_A"
check "a reserves EXCLUSIVE ACCESS" out odx --out --reserve --param-rk=$KEY_A --prout-type=3 "$SG_A"
check "the state file exists" test -f "$WORK/.odxtgt-pr/disk0.json"
check "odxtgt stops on SIGTERM" odx_stop
odx_start "$WORK/odxtgt.yaml"
up() { [ "$(session_state "$SESS_A")" = LOGGED_IN ] && [ "$(session_state "$SESS_B")" = LOGGED_IN ]; }
check "both sessions reconnect" wait_for 120 up
check "a's key survived the restart" in_has odx "0xa1" --read-keys "$SG_B"
check "the reservation survived the restart" in_has odx "Exclusive Access" --read-reservation "$SG_B"
check "b's read conflicts after the restart" is read_status "$SG_B" conflict
check "APTPL active in REPORT CAPABILITIES" in_has odx "Persist Through Power Loss Active.*1|PTPL_A: *1|PTPL_A=1" --report-capabilities "$SG_A"
check "a clears" out odx --out --clear --param-rk=$KEY_A "$SG_A"
check "CLEAR removes the state file" test ! -f "$WORK/.odxtgt-pr/disk0.json"
iscsi_logout "$ODX_IQN" "$ODX_PORT" >/dev/null || true
check "no reservation conflict made odxtgt log an error" test -z "$(odx_errors)"

# LIO, for comparison only. In this guest LIO answers REGISTER with NOT
# READY (it fails to write its APTPL metadata file, even with APTPL zero),
# although the registration takes effect, as READ KEYS then shows; every
# other step matches odxtgt.
lio_start lio0 64M
connect "$LIO_IQN" "$LIO_PORT"
pr_sequence log lio
iscsi_logout "$LIO_IQN" "$LIO_PORT" >/dev/null || true
finish
