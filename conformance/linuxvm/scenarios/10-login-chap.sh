#!/bin/bash
# 10-login-chap: discovery and login to odxtgt without authentication, with
# CHAP and with mutual CHAP; wrong credentials are refused; an ACL admits
# only the initiator it lists. One odxtgt serves five targets on
# 127.0.0.1:3260: open, chap, mutual, acl-allowed, acl-other.
. "$(dirname "$0")/../lib.sh"
odx_require

T_OPEN=$ODX_IQN
T_CHAP=iqn.2025-01.io.odxtgt:chap
T_MUT=iqn.2025-01.io.odxtgt:mutual
T_ACL_OK=iqn.2025-01.io.odxtgt:acl-allowed
T_ACL_NO=iqn.2025-01.io.odxtgt:acl-other
USER=odxuser SECRET=secret123456
TUSER=odxtarget TSECRET=tsecret123456

cat >"$WORK/odxtgt.yaml" <<YAML
backstores:
  - {name: open, type: file, path: $(lun_file open 16M), size: 16M, block_size: 512}
  - {name: chap, type: file, path: $(lun_file chap 16M), size: 16M, block_size: 512}
  - {name: mutual, type: file, path: $(lun_file mutual 16M), size: 16M, block_size: 512}
  - {name: aclok, type: file, path: $(lun_file aclok 16M), size: 16M, block_size: 512}
  - {name: aclno, type: file, path: $(lun_file aclno 16M), size: 16M, block_size: 512}
targets:
  - iqn: $T_OPEN
    portals: ["$ADDR:$ODX_PORT"]
    luns: [{lun: 0, backstore: open}]
  - iqn: $T_CHAP
    portals: ["$ADDR:$ODX_PORT"]
    luns: [{lun: 0, backstore: chap}]
    auth: {chap_user: $USER, chap_secret: $SECRET}
  - iqn: $T_MUT
    portals: ["$ADDR:$ODX_PORT"]
    luns: [{lun: 0, backstore: mutual}]
    auth: {chap_user: $USER, chap_secret: $SECRET, mutual_user: $TUSER, mutual_secret: $TSECRET}
  - iqn: $T_ACL_OK
    portals: ["$ADDR:$ODX_PORT"]
    luns: [{lun: 0, backstore: aclok}]
    acls: [{initiator: $INITIATOR_IQN, auth: {chap_user: $USER, chap_secret: $SECRET}}]
  - iqn: $T_ACL_NO
    portals: ["$ADDR:$ODX_PORT"]
    luns: [{lun: 0, backstore: aclno}]
    acls: [{initiator: iqn.2025-01.io.odxtgt:someone-else}]
YAML
odx_start "$WORK/odxtgt.yaml"

# Discovery (SendTargets=All) lists every target with the portal and TPGT.
check "discovery succeeds" run_logged discovery.txt iscsi_discover "$ODX_PORT"
for t in "$T_OPEN" "$T_CHAP" "$T_MUT"; do
	check "discovery lists $t at $ADDR:$ODX_PORT,1" grep -qx "$ADDR:$ODX_PORT,1 $t" "$OUT/discovery.txt"
	iscsiadm -m node -T "$t" -p "$ADDR:$ODX_PORT" >/dev/null 2>&1 || iscsi_node_new "$t" "$ODX_PORT"
done

# login_ok DESC IQN: login succeeds, LUN 0 is readable, logout succeeds.
login_ok() {
	local desc=$1 iqn=$2 s disk
	if ! iscsi_login "$iqn" "$ODX_PORT" >"$OUT/login.txt" 2>&1; then
		sed 's/^/    /' "$OUT/login.txt"
		return 1
	fi
	s=$(iscsi_sessions "$iqn" "$ODX_PORT" | head -n 1)
	[ -n "$s" ] || { log "$desc: no session in sysfs"; return 1; }
	disk=$(wait_for 30 session_dev "$s" 0 block >/dev/null && session_dev "$s" 0 block) ||
		{ log "$desc: no disk for LUN 0"; iscsi_logout "$iqn" "$ODX_PORT" >/dev/null; return 1; }
	dd if="$disk" of=/dev/null bs=64k count=16 iflag=direct status=none ||
		{ log "$desc: read of $disk failed"; iscsi_logout "$iqn" "$ODX_PORT" >/dev/null; return 1; }
	log "$desc: logged in ($s, $disk)"
	iscsi_logout "$iqn" "$ODX_PORT" >/dev/null || { log "$desc: logout failed"; return 1; }
	[ -z "$(iscsi_sessions "$iqn" "$ODX_PORT")" ]
}

# login_refused DESC IQN: iscsiadm reports a failed login, no session stays.
login_refused() {
	local desc=$1 iqn=$2 rc=0
	iscsi_login "$iqn" "$ODX_PORT" >"$OUT/login.txt" 2>&1 || rc=$?
	sed 's/^/    /' "$OUT/login.txt"
	if [ $rc -eq 0 ]; then
		log "$desc: login was accepted"
		iscsi_logout "$iqn" "$ODX_PORT" >/dev/null 2>&1
		return 1
	fi
	log "$desc: refused (iscsiadm exit $rc)"
	[ -z "$(iscsi_sessions "$iqn" "$ODX_PORT")" ]
}

iscsi_chap "$T_OPEN" "$ODX_PORT"
check "open target: login without CHAP" login_ok "open" "$T_OPEN"

iscsi_chap "$T_CHAP" "$ODX_PORT"
check "CHAP target: login without CHAP refused" login_refused "chap/none" "$T_CHAP"
iscsi_chap "$T_CHAP" "$ODX_PORT" "$USER" wrongsecret1234
check "CHAP target: wrong secret refused" login_refused "chap/wrong secret" "$T_CHAP"
iscsi_chap "$T_CHAP" "$ODX_PORT" nosuchuser "$SECRET"
check "CHAP target: wrong user refused" login_refused "chap/wrong user" "$T_CHAP"
iscsi_chap "$T_CHAP" "$ODX_PORT" "$USER" "$SECRET"
check "CHAP target: login with CHAP" login_ok "chap" "$T_CHAP"

iscsi_chap "$T_MUT" "$ODX_PORT" "$USER" "$SECRET" "$TUSER" "$TSECRET"
check "mutual CHAP target: login with mutual CHAP" login_ok "mutual" "$T_MUT"
iscsi_chap "$T_MUT" "$ODX_PORT" "$USER" "$SECRET" "$TUSER" wrongtsecret1234
check "mutual CHAP: wrong target secret refused by the initiator" login_refused "mutual/wrong target secret" "$T_MUT"
iscsi_chap "$T_MUT" "$ODX_PORT" "$USER" wrongsecret1234 "$TUSER" "$TSECRET"
check "mutual CHAP: wrong initiator secret refused" login_refused "mutual/wrong secret" "$T_MUT"
iscsi_chap "$T_MUT" "$ODX_PORT" "$USER" "$SECRET"
check "mutual CHAP target: one-way CHAP login" login_ok "mutual/one-way" "$T_MUT"

# Access lists: only the listed initiator may log in, with its own CHAP.
iscsi_node_new "$T_ACL_OK" "$ODX_PORT"
iscsi_node_new "$T_ACL_NO" "$ODX_PORT"
iscsi_chap "$T_ACL_OK" "$ODX_PORT" "$USER" "$SECRET"
check "ACL target: listed initiator logs in with its CHAP" login_ok "acl/listed" "$T_ACL_OK"
iscsi_chap "$T_ACL_OK" "$ODX_PORT"
check "ACL target: listed initiator without its CHAP refused" login_refused "acl/no chap" "$T_ACL_OK"
check "ACL target: unlisted initiator refused" login_refused "acl/unlisted" "$T_ACL_NO"

check "odxtgt still running" kill -0 "$ODX_PID"
finish
