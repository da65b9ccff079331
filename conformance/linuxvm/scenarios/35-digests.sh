#!/bin/bash
# 35-digests: a session with HeaderDigest=CRC32C and DataDigest=CRC32C (the
# kernel initiator computes both): the digests are negotiated, and O_DIRECT
# data written and read with them round-trips.
. "$(dirname "$0")/../lib.sh"

target_start disk0 64M
iscsi_node_new "$TGT_IQN" "$TGT_PORT"
iscsi_node_set "$TGT_IQN" "$TGT_PORT" node.conn[0].iscsi.HeaderDigest CRC32C
iscsi_node_set "$TGT_IQN" "$TGT_PORT" node.conn[0].iscsi.DataDigest CRC32C
s=$(login_one "$TGT_IQN" "$TGT_PORT")
conn=/sys/class/iscsi_connection/connection${s#session}:0
# The kernel shows the negotiated digests as 1 (CRC32C) or 0 (None).
check "header digest negotiated (CRC32C)" test "$(cat "$conn/header_digest")" = 1
check "data digest negotiated (CRC32C)" test "$(cat "$conn/data_digest")" = 1
disk=$(lun_disk "$s" 0)
random_file "$WORK/rand" 32
check "32 MiB O_DIRECT write with digests" write_direct "$WORK/rand" "$disk"
check "read back with digests: same SHA-256" test "$(sum_direct "$disk" 32)" = "$(sum_file "$WORK/rand")"
dmesg >"$OUT/dmesg-io.txt"
check "no digest error in the kernel log" eval '! grep -iE "digest|conn error" "$OUT/dmesg-io.txt"'
check "logout" iscsi_logout "$TGT_IQN" "$TGT_PORT"
finish
