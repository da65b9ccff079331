#!/bin/bash
# 60-logout: a session with some I/O ends with a clean logout: iscsiadm
# succeeds, the session and its disk disappear, the kernel logs no
# connection error, odxtgt stops with exit 0 on SIGTERM and its log has no
# error line.
. "$(dirname "$0")/../lib.sh"
odx_require

odx_config "$WORK/odxtgt.yaml" disk0 64M
odx_start "$WORK/odxtgt.yaml"
check "discovery" run_logged discovery.txt iscsi_discover "$ODX_PORT"
s=$(login_one "$ODX_IQN" "$ODX_PORT")
disk=$(lun_disk "$s" 0)
random_file "$WORK/data" 8
check "I/O before logout" eval 'write_direct "$WORK/data" "$disk" && test "$(sum_direct "$disk" 8)" = "$(sum_file "$WORK/data")"'
check "logout succeeds" run_logged logout.txt iscsi_logout "$ODX_IQN" "$ODX_PORT"
check "session gone from sysfs" wait_for 10 test -z "$(iscsi_sessions "$ODX_IQN" "$ODX_PORT")"
check "disk $disk gone" wait_for 10 test ! -b "$disk"
rc=0
iscsiadm -m session >/dev/null 2>&1 || rc=$?
check "iscsiadm reports no active session (exit 21)" test $rc -eq 21
dmesg >"$OUT/dmesg-after-logout.txt"
check "kernel logged no connection error" eval '! grep -iE "conn error|connection.*error|session recovery timed out" "$OUT/dmesg-after-logout.txt"'
check "odxtgt stops on SIGTERM with exit 0" odx_stop
errs=$(odx_errors)
[ -z "$errs" ] || printf '    %s\n' "$errs"
check "odxtgt log has no error line" test -z "$errs"
finish
