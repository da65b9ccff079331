#!/bin/bash
# 50-restart: odxtgt is stopped (SIGTERM) and started again while the
# initiator is logged in; the initiator reconnects on its own, the same
# block device keeps working and the data written before is intact.
. "$(dirname "$0")/../lib.sh"
odx_require

odx_config "$WORK/odxtgt.yaml" disk0 128M
odx_start "$WORK/odxtgt.yaml"
s=$(login_one "$ODX_IQN" "$ODX_PORT")
disk=$(lun_disk "$s" 0)
log "LUN 0: $disk ($s)"
random_file "$WORK/before" 32
write_direct "$WORK/before" "$disk" || fail "write before restart failed"
check "data readable before restart" test "$(sum_direct "$disk" 32)" = "$(sum_file "$WORK/before")"

check "odxtgt stops on SIGTERM with exit 0" odx_stop
state_is() { [ "$(session_state "$s")" = "$1" ]; }
if wait_for 20 eval '! state_is LOGGED_IN'; then
	log "initiator noticed: session $s is $(session_state "$s")"
else
	log "session $s still LOGGED_IN 20 s after the stop"
fi
odx_start "$WORK/odxtgt.yaml"
check "initiator reconnected (session LOGGED_IN again)" wait_for 120 state_is LOGGED_IN
log "session $s: $(session_state "$s"), recovery lines in dmesg:"
dmesg | grep -iE 'iscsi|connection|session' | tail -n 10 | sed 's/^/    /'
check "same block device after reconnect" test "$(session_dev "$s" 0 block)" = "$disk"
check "data written before the restart intact" test "$(sum_direct "$disk" 32)" = "$(sum_file "$WORK/before")"
random_file "$WORK/after" 16
check "write after reconnect" write_direct "$WORK/after" "$disk" 32
check "read after reconnect" test "$(sum_direct "$disk" 16 32)" = "$(sum_file "$WORK/after")"
check "logout" iscsi_logout "$ODX_IQN" "$ODX_PORT"
finish
