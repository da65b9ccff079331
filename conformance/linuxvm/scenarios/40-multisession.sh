#!/bin/bash
# 40-multisession: two sessions to the same target through two iface
# records, as dm-multipath would have; both paths show the same LU (same
# designators), concurrent O_DIRECT I/O on both, each path reads what the
# other wrote.
. "$(dirname "$0")/../lib.sh"

target_start disk0 256M
for i in path0 path1; do
	iscsiadm -m iface -I "$i" -o new >/dev/null
	iscsiadm -m iface -I "$i" -o update -n iface.transport_name -v tcp >/dev/null
done
check "discovery through both ifaces" run_logged discovery.txt \
	iscsi_discover "$TGT_PORT" -I path0 -I path1
iscsi_login "$TGT_IQN" "$TGT_PORT" || fail "login through both ifaces failed"
mapfile -t ss < <(iscsi_sessions "$TGT_IQN" "$TGT_PORT")
[ ${#ss[@]} -eq 2 ] || fail "expected 2 sessions, have ${#ss[@]}: ${ss[*]}"
d0=$(lun_disk "${ss[0]}" 0)
d1=$(lun_disk "${ss[1]}" 0)
g0=$(lun_sg "${ss[0]}" 0)
g1=$(lun_sg "${ss[1]}" 0)
log "path 0: ${ss[0]} $d0 $g0; path 1: ${ss[1]} $d1 $g1"
check "two distinct block devices" test "$d0" != "$d1"
check "ISIDs differ" test "$(cat /sys/class/iscsi_session/"${ss[0]}"/isid 2>/dev/null || echo a)" != \
	"$(cat /sys/class/iscsi_session/"${ss[1]}"/isid 2>/dev/null || echo b)"
sg_vpd -p di "$g0" >"$OUT/di-path0.txt" 2>&1
sg_vpd -p di "$g1" >"$OUT/di-path1.txt" 2>&1
check "same device identification on both paths" cmp -s "$OUT/di-path0.txt" "$OUT/di-path1.txt"
check "same unit serial on both paths" test "$(sg_vpd -p sn "$g0" 2>&1)" = "$(sg_vpd -p sn "$g1" 2>&1)"

random_file "$WORK/a" 32
random_file "$WORK/b" 32
random_file "$WORK/c" 16
# Concurrent writes to disjoint ranges, one per path.
write_direct "$WORK/a" "$d0" 0 &
p0=$!
write_direct "$WORK/b" "$d1" 64 &
p1=$!
check "concurrent write on path 0" wait $p0
check "concurrent write on path 1" wait $p1
check "path 1 reads what path 0 wrote" test "$(sum_direct "$d1" 32 0)" = "$(sum_file "$WORK/a")"
check "path 0 reads what path 1 wrote" test "$(sum_direct "$d0" 32 64)" = "$(sum_file "$WORK/b")"
# Overwrite through one path, read through the other.
check "overwrite through path 1" write_direct "$WORK/c" "$d1" 8
check "path 0 sees the overwrite" test "$(sum_direct "$d0" 16 8)" = "$(sum_file "$WORK/c")"
# Concurrent reads of the whole written area agree.
sum_direct "$d0" 96 >"$WORK/s0" &
r0=$!
sum_direct "$d1" 96 >"$WORK/s1" &
r1=$!
wait $r0 $r1
check "concurrent reads agree" cmp -s "$WORK/s0" "$WORK/s1"
check "logout of both sessions" iscsi_logout "$TGT_IQN" "$TGT_PORT"
check "no session left" test -z "$(iscsi_sessions "$TGT_IQN" "$TGT_PORT")"
finish
