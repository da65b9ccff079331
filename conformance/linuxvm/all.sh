#!/usr/bin/env bash
# all.sh runs every scenario under scenarios/ in one boot of the guest (a
# failing scenario does not stop the others), then the dd, fio, sg_xcopy, ODX
# and COMPARE AND WRITE benchmarks.
#
#   all.sh [--no-bench] [-t SECONDS] [-m MIB] [OUTDIR]
#
# OUTDIR (default $LINUXVM_CACHE/out) receives console.log and one folder
# per scenario. The last line is "N passed, M failed"; the exit code is 0
# only when every scenario passed. When this machine cannot run QEMU the
# run fails saying what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
opts=() bench=(bench/dd-throughput.sh bench/fio-throughput.sh bench/xcopy-throughput.sh bench/odx-throughput.sh bench/caw-throughput.sh)
while [ $# -gt 0 ]; do
	case $1 in
	--no-bench) bench=() ;;
	-t | -m) opts+=("$1" "$2"); shift ;;
	-*) echo "usage: all.sh [--no-bench] [-t SECONDS] [-m MIB] [OUTDIR]" >&2; exit 2 ;;
	*) opts+=(-o "$1") ;;
	esac
	shift
done
scripts=()
for f in "$here"/scenarios/*.sh; do
	scripts+=("scenarios/${f##*/}")
done
exec "$here/run.sh" "${opts[@]}" "${scripts[@]}" "${bench[@]}"
