#!/usr/bin/env bash
# bench.sh boots the guest and runs only the dd benchmark (odxtgt vs LIO).
# BENCH_MIB=N changes the amount written and read (default 512).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/run.sh" "$@" ${BENCH_MIB:+BENCH_MIB=$BENCH_MIB} bench/dd-throughput.sh
