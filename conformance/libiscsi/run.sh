#!/usr/bin/env bash
# libiscsi conformance: runs libiscsi's iscsi-test-cu (Debian package
# libiscsi-bin) against odxtgt on loopback, counts passed, failed and
# skipped tests itself (CUnit reports a skipped test as passed) and fails
# unless all of this holds:
#
#   - every iscsi-test-cu exits 0, or 1 with failed tests counted (that is
#     how it reports them); anything else is a crash, a usage error or a
#     failed login;
#   - every run ran at least its expected number of tests, and CUnit's own
#     summary agrees with the count (a mistyped -t runs nothing and exits 0);
#   - no test failed, and no test skipped unless it is on the allowed list
#     below or every skip message in it says that a command assigned to a
#     later issue is not implemented;
#   - no test on the allowed list passed (delete its line when it does);
#   - /metrics, scraped once after the runs (metrics.listen on loopback),
#     shows read and write commands counted on the LUNs, and /healthz
#     answers 200;
#   - odxtgt's log has no panic, no level=ERROR line, no Go runtime fatal
#     error, fatal signal, data race report or goroutine dump, and odxtgt
#     exits 0 on SIGTERM.
#
#   conformance/libiscsi/run.sh [OUTDIR]
#
# odxtgt is built with the race detector (needs gcc) unless ODXTGT_RACE=0.
# The verbose output of each run, its exit status, a verdict per test
# (verdicts-NAME.txt) and odxtgt's log are kept in OUTDIR (default: a temp
# dir).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

need libiscsi-bin iscsi-test-cu
need curl curl
export ODXTGT_RACE=${ODXTGT_RACE:-1}
[ "$ODXTGT_RACE" = 1 ] && need gcc gcc

out=${1:-$(mktemp -d /tmp/odxtgt-libiscsi.XXXXXX)}
mkdir -p "$out"
work=$(mktemp -d /tmp/odxtgt-libiscsi-work.XXXXXX)
trap 'stop_odxtgt; rm -rf "$work"' EXIT

build_odxtgt "$work"
ODXTGT_BIN=$work/odxtgt

init1=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test
init2=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2
rw=iqn.2025-01.io.odxtgt:conformance
ro=iqn.2025-01.io.odxtgt:conformance-ro
# disk2 reports 4096-byte physical blocks (8 logical blocks each): some
# tests (CompareAndWrite.InvalidDataOutSize, WriteSame10/16.UnmapUnaligned
# and InvalidDataOutSize) run only when LBPPB > 1.
cat >"$work/odxtgt.yaml" <<YAML
backstores:
  - {name: disk0, type: file, path: $work/disk0.img, size: 256MiB}
  - {name: disk1, type: file, path: $work/disk1.img, size: 64MiB, block_size: 4096}
  - {name: disk2, type: file, path: $work/disk2.img, size: 64MiB, physical_block_size: 4096}
  - {name: rodisk, type: file, path: $work/rodisk.img, size: 64MiB, readonly: true}
targets:
  - iqn: $rw
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: disk0}, {lun: 1, backstore: disk1}, {lun: 2, backstore: disk2}]
    acls: [{initiator: $init1}, {initiator: $init2}]
  - iqn: $ro
    portals: ["127.0.0.1:0"]
    luns: [{lun: 0, backstore: rodisk}]
    acls: [{initiator: $init1}, {initiator: $init2}]
metrics:
  listen: "127.0.0.1:0"
YAML
# A read-only file backstore is never created: make it first.
truncate -s 64M "$work/rodisk.img"

# Tests allowed to skip, one per line, taken from a run with libiscsi 1.19.
# When a command lands, delete its lines: a listed test that passes fails
# the run until its line is gone.
cat >"$work/allowed-skip.txt" <<'LIST'
# WRITE ATOMIC (16) is not implemented.
WriteAtomic16.Simple
WriteAtomic16.BeyondEol
WriteAtomic16.ZeroBlocks
WriteAtomic16.WriteProtect
WriteAtomic16.DpoFua
WriteAtomic16.VPD
# The medium is not removable.
PreventAllow.Simple
PreventAllow.Eject
PreventAllow.ITNexusLoss
PreventAllow.Logout
PreventAllow.WarmReset
PreventAllow.ColdReset
PreventAllow.LUNReset
PreventAllow.2ITNexuses
StartStopUnit.Simple
# SANITIZE runs only with --allow-sanitize, which is not given.
Sanitize.BlockErase
Sanitize.BlockEraseReserved
Sanitize.CryptoErase
Sanitize.CryptoEraseReserved
Sanitize.ExitFailureMode
Sanitize.InvalidServiceAction
Sanitize.Overwrite
Sanitize.OverwriteReserved
Sanitize.Readonly
Sanitize.Reservations
Sanitize.Reset
LIST
# On the writable logical units only: the ReadOnly suite needs a
# write-protected one, and runs on the read-only target below.
{
	cat "$work/allowed-skip.txt"
	echo ReadOnly.ReadOnlySBC
} >"$work/allowed-skip-writable.txt"
# On the logical units with one logical block per physical block: the
# tests that need more skip there and run on LUN 2.
{
	cat "$work/allowed-skip-writable.txt"
	cat <<'LIST'
CompareAndWrite.InvalidDataOutSize
WriteSame10.UnmapUnaligned
WriteSame10.InvalidDataOutSize
WriteSame16.UnmapUnaligned
WriteSame16.InvalidDataOutSize
LIST
} >"$work/allowed-skip-lbppb1.txt"

# Commands assigned to later issues, as libiscsi spells them in
# "[SKIPPED] <command> is not implemented": a test whose every skip message
# names one of them is allowed to skip too (ReadOnly.ReadOnlySBC, for
# example, writes with every write command there is). One spelling per
# line: delete a command's lines when it lands.
later_commands=(
	SANITIZE
	WRITEATOMIC16
	WRITE_ATOMIC16
)
later="\\[SKIPPED\\] ($(
	IFS='|'
	echo "${later_commands[*]}"
)) is not implemented"

start_odxtgt "$work/odxtgt.yaml" "$out/odxtgt.log"
# Both targets share the one portal 127.0.0.1:0, so one ephemeral port.
port=$(head -n1 <<<"$ODXTGT_PORTS")
[ -n "$port" ] || die "could not read the portal port from the odxtgt log"
metrics_addr=$(sed -n 's/.*msg="serving metrics" addr=\([^ ]*\).*/\1/p' "$out/odxtgt.log" | head -n1)
[ -n "$metrics_addr" ] || die "could not read the metrics address from the odxtgt log"

runs=()
declare -A run_min run_allowed
# run_suite NAME MIN ALLOWED TIMEOUT ARGS...: runs iscsi-test-cu, keeps its
# output in NAME.txt and its exit status in NAME.rc; the run must have run
# at least MIN tests, and only those in the file ALLOWED may skip.
run_suite() {
	local name=$1 min=$2 allowed=$3 limit=$4; shift 4
	runs+=("$name")
	run_min[$name]=$min
	run_allowed[$name]=$allowed
	echo "== iscsi-test-cu $*" >&2
	local rc=0
	timeout -s KILL "$limit" iscsi-test-cu "$@" >"$out/$name.txt" 2>&1 || rc=$?
	echo "$rc" >"$out/$name.rc"
	[ "$rc" = 137 ] && echo "HANG: iscsi-test-cu $name did not finish within $limit s" >>"$out/$name.txt"
	kill -0 "$ODXTGT_PID" 2>/dev/null || echo "CRASH: odxtgt is gone after $name" >>"$out/$name.txt"
	return 0
}

# The minimum counts are what libiscsi 1.19 runs: all of ALL, the block
# and copy commands on the 4096-byte LUN, the suites that look at the
# physical block size on LUN 2, the ReadOnly suite. GetLBAStatus stays off
# LUN 2: the second half of its UnmapSingle test queries LBA n+1 and wants
# the first descriptor at n+LBPPB, which no target can answer with LBPPB > 1
# (SBC-3 5.7: that descriptor starts at the STARTING LOGICAL BLOCK ADDRESS).
run_suite all 230 "$work/allowed-skip-lbppb1.txt" 1800 --dataloss -t ALL \
	"iscsi://127.0.0.1:$port/$rw/0" "iscsi://127.0.0.1:$port/$rw/0"
run_suite lun2-lbppb8 39 "$work/allowed-skip-writable.txt" 900 --dataloss \
	-t 'ALL.CompareAndWrite,ALL.WriteSame10,ALL.WriteSame16,ALL.Unmap,ALL.ReadCapacity16,ALL.Inquiry' \
	"iscsi://127.0.0.1:$port/$rw/2" "iscsi://127.0.0.1:$port/$rw/2"
run_suite lun1-4k 58 "$work/allowed-skip-lbppb1.txt" 900 --dataloss \
	-t 'ALL.Read10,ALL.Read16,ALL.Write10,ALL.Write16,ALL.ReadCapacity16,ALL.Verify10,ALL.WriteVerify10,ALL.iSCSIResiduals,ALL.ExtendedCopy,ALL.ReceiveCopyResults' \
	"iscsi://127.0.0.1:$port/$rw/1"
run_suite readonly 1 "$work/allowed-skip.txt" 600 --dataloss -t ALL.ReadOnly "iscsi://127.0.0.1:$port/$ro/0"
metrics_rc=0 health=000
curl -fsS --max-time 10 -o "$out/metrics.txt" "http://$metrics_addr/metrics" || metrics_rc=$?
health=$(curl -sS --max-time 10 -o "$out/healthz.txt" -w '%{http_code}' "http://$metrics_addr/healthz") || true
stop_odxtgt

problems=()
total_pass=0 total_fail=0 total_skip=0
for name in "${runs[@]}"; do
	verdicts=$out/verdicts-$name.txt
	counts=$(awk -v allowed="${run_allowed[$name]}" -v later="$later" -v min="${run_min[$name]}" \
		-v report="$verdicts" -f "$(dirname "$0")/count.awk" "$out/$name.txt")
	read -r p _ f _ s _ <<<"$counts"
	total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + s))
	rc=$(cat "$out/$name.rc")
	case $rc in
	0) ;;
	1) [ "$f" -gt 0 ] || problems+=("$name: iscsi-test-cu exited 1 (failed tests) but none was found in its output") ;;
	*) problems+=("$name: iscsi-test-cu exited with status $rc (crash, usage error or failed login; see $out/$name.txt)") ;;
	esac
	echo "$name: $counts (at least ${run_min[$name]} tests expected; exit status $rc)"
	grep -v -E '^(passed|skipped) ' "$verdicts" | sed 's/^/    /' || true
done

# The counters must have seen the runs' commands.
if [ "$metrics_rc" != 0 ]; then
	problems+=("could not scrape http://$metrics_addr/metrics (curl exit status $metrics_rc)")
else
	read -r reads writes < <(awk '/^odxtgt_scsi_commands_total\{/ {
			if ($0 ~ /class="read"/) r += $NF; if ($0 ~ /class="write"/) w += $NF }
		END { printf "%d %d\n", r, w }' "$out/metrics.txt")
	echo "metrics: $reads read and $writes write commands counted; /healthz answered $health"
	[ "$reads" -gt 0 ] && [ "$writes" -gt 0 ] ||
		problems+=("odxtgt_scsi_commands_total did not move: $reads reads, $writes writes (see $out/metrics.txt)")
fi
[ "$health" = 200 ] || problems+=("/healthz answered $health, not 200: $(head -c 200 "$out/healthz.txt" 2>/dev/null)")

# The log must show no sign of trouble, whatever the tests said.
# Goroutine dumps start "goroutine 1 [running]:" (older Go) or
# "goroutine 1 gp=0x... m=0 [running]:"; a fatal signal prints "SIGSEGV: ...".
log_trouble='panic:|level=ERROR|fatal error:|DATA RACE|^goroutine [0-9]+ .*\[.*\]:$|^SIG[A-Z]+: '
if grep -q -E "$log_trouble" "$out/odxtgt.log"; then
	problems+=("odxtgt's log shows trouble:")
	while IFS= read -r l; do problems+=("    $l"); done < <(grep -E "$log_trouble" "$out/odxtgt.log" | head -20)
fi
[ "${ODXTGT_STATUS:-0}" = 0 ] || problems+=("odxtgt exited with status $ODXTGT_STATUS; SIGTERM should make it exit 0")

echo "output kept in $out"
if [ "${#problems[@]}" -gt 0 ]; then
	printf '%s\n' "${problems[@]}"
fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" = 0 ] && [ "${#problems[@]}" = 0 ]
