#!/usr/bin/env bash
# Checks contrib/odxtgt.service with systemd-analyze verify (Debian package
# systemd): the unit, with ExecStart pointing at a freshly built odxtgt,
# must verify with no complaint about it at all; systemd-analyze exits 0
# on unknown keys and bad values, so any line naming the unit fails too.
#
#   conformance/systemd.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need systemd systemd-analyze
work=$(mktemp -d /tmp/odxtgt-systemd.XXXXXX)
trap 'rm -rf "$work"' EXIT
build_odxtgt "$work"
sed "s#/usr/local/bin/odxtgt#$work/odxtgt#g" "$repo_root/contrib/odxtgt.service" >"$work/odxtgt.service"
grep -q "ExecStart=$work/odxtgt serve" "$work/odxtgt.service" || die "contrib/odxtgt.service has no ExecStart=/usr/local/bin/odxtgt serve"
if ! out=$(systemd-analyze verify "$work/odxtgt.service" 2>&1); then
	echo "$out" >&2
	die "systemd-analyze verify contrib/odxtgt.service failed"
fi
if grep -F "odxtgt.service" <<<"$out" >&2; then
	die "systemd-analyze verify complains about contrib/odxtgt.service (above)"
fi
echo "contrib/odxtgt.service: verified by $(systemd-analyze --version | head -1)"
