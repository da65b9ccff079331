#!/usr/bin/env bash
# Runs the fuzz targets that parse what a peer sends for a bounded time
# each (go test -fuzz takes one target per run): the iSCSI PDU reader, the
# login phase and a logged-in connection, the CDBs of spc/ and sbc/, the
# EXTENDED COPY and token parameter lists of rod/ and the YAML loader.
# `go test ./...` runs only their seeds; this looks for new crashers.
# A target that finds one fails the stage with its name and package; Go
# writes the failing input under that package's testdata/fuzz/, where
# `go test -run 'FuzzX/<file>'` replays it, and this copies it to OUTDIR.
# Nothing is written into the tree when every target passes (the corpus
# grown while fuzzing stays in the Go build cache).
#
#   conformance/fuzz.sh [OUTDIR]    (ODXTGT_FUZZ_TIME=16s per target)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$repo_root"

out=${1:-$(mktemp -d /tmp/odxtgt-fuzz.XXXXXX)}
mkdir -p "$out"
fuzztime=${ODXTGT_FUZZ_TIME:-16s}

# package and target; nine at 16 s (plus building each) keep the stage near three minutes.
targets=(
	"./iscsi FuzzReadPDU"
	"./iscsi FuzzLogin"
	"./iscsi FuzzConnection"
	"./spc FuzzCDB"
	"./sbc FuzzCDB"
	"./rod FuzzParseParams"
	"./rod FuzzTokenParams"
	"./config FuzzParse"
	"./config FuzzImportLIO"
)

failed=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	log="$out/${pkg#./}-$name.log"
	start=$SECONDS
	# A crasher is new when it was not in the package's testdata before.
	before=$(git ls-files --others --exclude-standard -- "${pkg#./}/testdata/fuzz/$name" 2>/dev/null | sort)
	if go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
		echo "$name ($pkg): ok ($((SECONDS - start)) s, $(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2) execs)"
		continue
	fi
	failed+=("$name ($pkg)")
	echo "$name ($pkg): FAILED ($((SECONDS - start)) s); log $log:"
	tail -n 40 "$log" | sed 's/^/    /'
	after=$(git ls-files --others --exclude-standard -- "${pkg#./}/testdata/fuzz/$name" 2>/dev/null | sort)
	for f in $(comm -13 <(echo "$before") <(echo "$after")); do
		cp "$f" "$out/" && echo "    failing input $f (copied to $out/)"
	done
done

[ "${#failed[@]}" = 0 ] || { echo "fuzz targets that failed: ${failed[*]}"; exit 1; }
echo "${#targets[@]} fuzz targets ran $fuzztime each without a failure"
