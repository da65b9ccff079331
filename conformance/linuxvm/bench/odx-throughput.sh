#!/bin/bash
# odx-throughput: copies BENCH_ODX_MIB (default 256) MiB between two LUNs
# of odxtgt, backed by files on the guest's tmpfs, three ways through the
# kernel initiator in the same guest and the same run: ODX (POPULATE
# TOKEN, RECEIVE ROD TOKEN INFORMATION, then WRITE USING TOKEN in pieces of
# the 256 MiB OPTIMAL TRANSFER COUNT, sent with sg_raw), EXTENDED COPY
# (sg_xcopy) and a host copy (dd, 1 MiB, O_DIRECT on both sides). Prints
# MiB/s for each (median of BENCH_ROUNDS rounds, default 3) and the
# ratios. ddpt --odx is tried too and reported, but Debian's ddpt 0.97
# writes its range descriptors one byte early (see scenarios/80-odx.sh),
# so the target refuses it. A benchmark, not a test: it fails only when it
# cannot measure.
. "$(dirname "$0")/../lib.sh"
odx_require

MIB=${BENCH_ODX_MIB:-256}
blocks=$((MIB * 2048))
{
	echo "backstores:"
	echo "  - {name: a, type: file, path: $(lun_file a "${MIB}M"), size: ${MIB}MiB}"
	echo "  - {name: b, type: file, path: $(lun_file b "${MIB}M"), size: ${MIB}MiB}"
	echo "targets:"
	echo "  - iqn: $ODX_IQN"
	echo "    portals: [\"$ADDR:$ODX_PORT\"]"
	echo "    luns: [{lun: 0, backstore: a}, {lun: 1, backstore: b}]"
} >"$WORK/odxtgt.yaml"
odx_start "$WORK/odxtgt.yaml"
s=$(login_one "$ODX_IQN" "$ODX_PORT")
sg0=$(lun_sg "$s" 0)
sg1=$(lun_sg "$s" 1)
d0=$(lun_disk "$s" 0)
d1=$(lun_disk "$s" 1)
dd if=/dev/urandom of="$d0" bs=1M count="$MIB" oflag=direct status=none || fail "filling the source failed"

# The ODX commands, as scenarios/80-odx.sh sends them (SBC-3 layouts).
hex2bin() { printf '%b' "$(tr -d ' \n' | sed 's/../\\x&/g')"; }
be() {
	local v
	v=$(od -An -tx1 -v -j "$2" -N "$3" "$1" | tr -d ' \n')
	echo $((16#${v:-0}))
}
cdb() { sed 's/../& /g' <<<"$1"; }
LID=$((0x100))
# tpc DEV CDB_HEX [sg_raw options]: one third-party copy command; fails
# unless its status is GOOD.
tpc() {
	local dev=$1 hex=$2 r
	shift 2
	# shellcheck disable=SC2046 # one argument per byte
	r=$(sg_raw -t 120 "$@" "$dev" $(cdb "$hex") 2>&1)
	grep -q 'SCSI Status: Good' <<<"$r" || { echo "$r" >>"$OUT/odx-errors.txt"; return 1; }
}
# The parameter lists are built once, before the rounds, so that the
# timed copy runs only sg_raw and what joins the token to them (process
# starts are slow under TCG): POPULATE TOKEN of all of LUN 0, and one WRITE
# USING TOKEN to LUN 1 per 256 MiB piece, the last with DEL_TKN.
PIECE=$((256 * 2048))
printf '%04x0000000000000000000000000010%016x%08x00000000' 30 0 "$blocks" | hex2bin >"$WORK/pt.bin"
pieces=0
for ((off = 0; off < blocks; off += PIECE)); do
	k=$((blocks - off))
	[ "$k" -le "$PIECE" ] || k=$PIECE
	flags=0
	[ $((off + k)) -lt "$blocks" ] || flags=2 # DEL_TKN
	printf '%04x%02x0000000000%016x' 550 "$flags" "$off" | hex2bin >"$WORK/wut-$pieces.head"
	printf '0000000000000010%016x%08x00000000' "$off" "$k" | hex2bin >"$WORK/wut-$pieces.tail"
	echo "$off $k" >"$WORK/wut-$pieces.range"
	pieces=$((pieces + 1))
done
touch "$OUT/odx-truncations.txt"
# odx_copy: POPULATE TOKEN, RRTI, then the WRITE USING TOKEN pieces; a piece
# the target truncates (COPY ABORTED, DATA UNDERRUN, INFORMATION) is
# resumed with a list built then. Phase times go to $OUT/odx-phases.txt.
odx_copy() {
	local info=$WORK/rrti.bin tok=$WORK/tok.bin i off k n r t0 t1 t2
	t0=$(date +%s.%N)
	LID=$((LID + 1))
	tpc "$sg0" "$(printf '8310''00000000''%08x''%08x''0000' "$LID" 32)" -s 32 -i "$WORK/pt.bin" || return 1
	tpc "$sg0" "$(printf '8407''%08x''00000000''%08x''0000' "$LID" 1024)" -r 1024 -o "$info" || return 1
	dd if="$info" of="$tok" bs=512 skip=$((32 + $(be "$info" 13 1) + 6)) count=512 \
		iflag=skip_bytes,count_bytes status=none
	t1=$(date +%s.%N)
	for ((i = 0; i < pieces; i++)); do
		read -r off k <"$WORK/wut-$i.range"
		cat "$WORK/wut-$i.head" "$tok" "$WORK/wut-$i.tail" >"$WORK/wut.bin"
		while :; do
			LID=$((LID + 1))
			# shellcheck disable=SC2046
			r=$(sg_raw -t 120 -s 552 -i "$WORK/wut.bin" "$sg1" \
				$(cdb "$(printf '8311''00000000''%08x''%08x''0000' "$LID" 552)") 2>&1)
			case $r in
			*'SCSI Status: Good'*) break ;;
			*[Cc]'opy target device data underrun'*)
				n=$(($(grep -oE 'Info fld=0x[0-9a-fA-F]+' <<<"$r" | sed 's/.*=//')))
				[ "$n" -gt 0 ] || return 1
				echo "truncated after $n of $k blocks" >>"$OUT/odx-truncations.txt"
				off=$((off + n)) k=$((k - n))
				{
					head -c 8 "$WORK/wut-$i.head"
					printf '%016x' "$off" | hex2bin
					cat "$tok"
					printf '0000000000000010%016x%08x00000000' "$off" "$k" | hex2bin
				} >"$WORK/wut.bin"
				;;
			*)
				echo "$r" >>"$OUT/odx-errors.txt"
				return 1
				;;
			esac
		done
	done
	t2=$(date +%s.%N)
	awk "BEGIN { printf \"PT+RRTI %.3f s, WUTs %.3f s\\n\", $t1 - $t0, $t2 - $t1 }" >>"$OUT/odx-phases.txt"
	[ "$(be "$info" 16 8)" = "$blocks" ]
}

# rate NAME CMD... runs CMD and prints MiB/s.
rate() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >>"$OUT/$1.txt" 2>&1 || return 1
	t1=$(date +%s.%N)
	awk "BEGIN { printf \"%.1f\", $MIB / ($t1 - $t0) }"
}
run_odx() { odx_copy; }
run_ddpt() { ddpt --odx if="$sg0" of="$sg1" bs=512 skip=0,"$blocks" seek=0,"$blocks"; }
run_xcopy() { sg_xcopy if="$sg0" of="$sg1" bs=512 count="$blocks"; }
run_host() { dd if="$d0" of="$d1" bs=1M count="$MIB" iflag=direct oflag=direct status=none; }

ddpt_ok=1
run_ddpt >"$OUT/ddpt-probe.txt" 2>&1 || ddpt_ok=0
[ "$ddpt_ok" = 1 ] || log "ddpt --odx refused ($(grep -m1 -i 'early termination' "$OUT/ddpt-probe.txt")): not measured"
# What the ODX copy pays for its sg_raw processes (each command is one)
# rather than for the copy: three TEST UNIT READY through tpc, the number
# of commands in a copy of up to 256 MiB.
t0=$(date +%s.%N)
for i in 1 2 3; do tpc "$sg0" 000000000000 || fail "TEST UNIT READY failed"; done
t1=$(date +%s.%N)
calib=$(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")
ROUNDS=${BENCH_ROUNDS:-3}
declare -A X
sides=(odx xcopy host)
[ "$ddpt_ok" = 0 ] || sides=(odx ddpt xcopy host)
for ((i = 1; i <= ROUNDS; i++)); do
	for side in "${sides[@]}"; do
		x=$(rate "run_$side") || fail "$side copy failed (see $OUT/run_$side.txt, $OUT/odx-errors.txt)"
		X[$side]+="$x "
		log "round $i, $side: $x MiB/s"
	done
done
drop_caches
[ "$(sum_direct "$d1" "$MIB")" = "$(sum_direct "$d0" "$MIB")" ] || fail "LUN 1 differs from LUN 0 after the copies"
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
xo=$(median "${X[odx]}") xx=$(median "${X[xcopy]}") xh=$(median "${X[host]}")
xd=n/a
[ "$ddpt_ok" = 0 ] || xd=$(median "${X[ddpt]}")
{
	printf 'copy of %d MiB between two LUNs of odxtgt, kernel initiator, tmpfs-backed LUNs, median of %d rounds (MiB/s)\n' "$MIB" "$ROUNDS"
	printf '%-34s %10s\n' "ODX (PT + RRTI + WUT, sg_raw)" "$xo" "ddpt --odx" "$xd" "EXTENDED COPY (sg_xcopy)" "$xx" \
		"host copy (dd 1 MiB O_DIRECT)" "$xh"
	printf 'ratios: ODX/host copy %s, ODX/EXTENDED COPY %s; %d WRITE USING TOKEN truncated by the write budget\n' \
		"$(awk "BEGIN { printf \"%.2f\", $xo / $xh }")" "$(awk "BEGIN { printf \"%.2f\", $xo / $xx }")" \
		"$(wc -l <"$OUT/odx-truncations.txt")"
	printf 'ODX phases (the last round): %s; three sg_raw TEST UNIT READY take %s s here (process start-up, not copying)\n' \
		"$(tail -n 1 "$OUT/odx-phases.txt")" "$calib"
} | tee "$OUT/bench.txt"
iscsi_logout "$ODX_IQN" "$ODX_PORT" >/dev/null
