#!/bin/bash
# 30-data-fs: 256 MiB of random data written with O_DIRECT reads back the
# same (with O_DIRECT and through the page cache after dropping it); ext4
# made on the LUN holds files across unmount and fsck -n finds it clean.
. "$(dirname "$0")/../lib.sh"

target_start disk0 512M
s=$(login_one "$TGT_IQN" "$TGT_PORT")
disk=$(lun_disk "$s" 0)
log "LUN 0: $disk ($s)"

random_file "$WORK/rand" 256
want=$(sum_file "$WORK/rand")
t0=$(date +%s.%N)
check "write 256 MiB with O_DIRECT" write_direct "$WORK/rand" "$disk"
t1=$(date +%s.%N)
check "read back with O_DIRECT: same SHA-256" test "$(sum_direct "$disk" 256)" = "$want"
drop_caches
check "read back after dropping caches: same SHA-256" \
	test "$(dd if="$disk" bs=1M count=256 status=none | sha256sum | cut -d' ' -f1)" = "$want"
log "256 MiB O_DIRECT write took $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s"

mnt=/mnt/$SCENARIO
mkdir -p "$mnt"
check "mkfs.ext4" mkfs.ext4 -q -F "$disk"
mount "$disk" "$mnt" || fail "mount $disk failed"
cp "$WORK/rand" "$mnt/big"
mkdir "$mnt/small"
for i in $(seq 1 64); do
	head -c $((i * 4099)) /dev/urandom >"$mnt/small/f$i"
done
(cd "$mnt" && sha256sum big small/*) >"$WORK/manifest"
check "unmount" umount "$mnt"
drop_caches
check "fsck -n clean" run_logged fsck.txt e2fsck -fn "$disk"
mount -o ro "$disk" "$mnt" || fail "second mount failed"
check "files intact after remount" eval '(cd "$mnt" && sha256sum --quiet -c "$WORK/manifest")'
umount "$mnt"
check "logout" iscsi_logout "$TGT_IQN" "$TGT_PORT"
finish
