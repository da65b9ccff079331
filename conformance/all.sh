#!/usr/bin/env bash
# Runs every test odxtgt has, the way CI does: formatting and vet, the Go
# unit and in-process end-to-end tests under the race detector, the
# main fuzz targets for a bounded time each, systemd-analyze verify of contrib/odxtgt.service, libiscsi's
# conformance suite against the real binary, and the Linux VM scenarios
# (open-iscsi, sg3_utils, LIO) under QEMU. Installs what it needs with
# apt-get (as root). Prints "N passed, M failed" over the stages last.
#
#   conformance/all.sh [--no-vm]
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$repo_root"

vm=1
[ "${1:-}" = "--no-vm" ] && vm=0
out=${ODXTGT_TEST_OUT:-$(mktemp -d /tmp/odxtgt-tests.XXXXXX)}
mkdir -p "$out"

passed=0 failed=0 failures=()
stage() {
	local name=$1; shift
	echo "=== $name"
	local start=$SECONDS
	if "$@"; then
		passed=$((passed + 1)); echo "=== $name: ok ($((SECONDS - start)) s)"
	else
		failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($((SECONDS - start)) s)"
	fi
}

gofmt_clean() {
	local files
	files=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	[ -z "$files" ] || { echo "gofmt would change:"; echo "$files"; return 1; }
}

# The race detector needs cgo, so a C compiler. As root, the tests that
# make XFS file systems (backstore, conformance/stress) need xfsprogs.
need gcc gcc
if [ "$(id -u)" = 0 ]; then
	need xfsprogs mkfs.xfs
fi
stage "gofmt" gofmt_clean
stage "go vet" go vet ./...
stage "go test -race" go test -race -count=1 ./...
stage "fuzz (bounded)" conformance/fuzz.sh "$out/fuzz"
stage "systemd unit" conformance/systemd.sh
stage "libiscsi conformance" conformance/libiscsi/run.sh "$out/libiscsi"
if [ "$vm" = 1 ]; then
	stage "Linux VM scenarios" conformance/linuxvm/all.sh "$out/linuxvm"
fi

echo
[ "$failed" = 0 ] || echo "failed stages: ${failures[*]}"
echo "outputs in $out"
echo "stages: $passed passed, $failed failed"
[ "$failed" = 0 ]
