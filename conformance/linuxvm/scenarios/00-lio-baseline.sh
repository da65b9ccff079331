#!/bin/bash
# 00-lio-baseline: the harness itself against Linux LIO, no odxtgt involved.
# LIO fileio on 127.0.0.1:3261, discovery, login, O_DIRECT data round trip,
# ext4 on the LUN, clean logout. When this fails, the guest or the library
# is broken, not odxtgt.
. "$(dirname "$0")/../lib.sh"

lio_start lio0 256M
run_logged discovery.txt iscsi_discover "$LIO_PORT" || fail "discovery at LIO failed"
grep -q "$LIO_IQN" "$OUT/discovery.txt" || fail "discovery did not list $LIO_IQN"

s=$(login_one "$LIO_IQN" "$LIO_PORT")
disk=$(lun_disk "$s" 0)
sg=$(lun_sg "$s" 0)
log "LIO LUN 0: $disk $sg ($s)"

random_file "$WORK/rand" 64
write_direct "$WORK/rand" "$disk"
check "64 MiB O_DIRECT round trip" test "$(sum_direct "$disk" 64)" = "$(sum_file "$WORK/rand")"

mkfs.ext4 -q -F "$disk" || fail "mkfs.ext4 failed"
mkdir -p /mnt/lio
mount "$disk" /mnt/lio || fail "mount failed"
cp "$WORK/rand" /mnt/lio/rand
umount /mnt/lio
check "fsck -n clean" e2fsck -fn "$disk"

check "logout" iscsi_logout "$LIO_IQN" "$LIO_PORT"
check "no session left" test -z "$(iscsi_sessions "$LIO_IQN" "$LIO_PORT")"
check "LIO cleared" lio_clear
finish
