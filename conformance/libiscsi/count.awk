# Classifies the verbose output of one iscsi-test-cu run (CUnit basic mode)
# and checks that the run is complete. A test is skipped when [SKIPPED]
# appears inside it before its result, failed on FAILED or when the output
# stops inside it, passed on "passed" (CUnit itself counts a skipped test as
# passed).
#
# Variables:
#   allowed  a file naming the tests (SUITE.TEST) allowed to skip in this
#            run, one per line; blank lines and '#' comments are ignored
#   later    a regular expression: a skip whose every [SKIPPED] message
#            matches it (a command assigned to a later issue is not
#            implemented) is allowed too, whatever the test
#   min      the fewest tests the run must have run
#   report   a file that gets one line per test ("passed", "FAILED",
#            "skipped", "SKIPPED" when not allowed) and one per problem
#
# Prints "N passed, M failed, K skipped" last. M counts the failed tests and
# every problem with the run itself: a HANG or CRASH line the runner
# appended, no CUnit run summary (the run stopped early), CUnit counting
# other than this script, fewer tests than min, a suite whose set-up failed,
# and a test on the allowed list that passed (its line must go).

function problem(msg) {
	nfail++
	print "PROBLEM            " msg > report
}

function finish() {
	if (test == "") return
	name = suite "." test
	if (result == "") result = "FAILED"   # the run stopped inside the test
	ntests++
	if (skipped && result == "passed") {
		if (name in allow) { nskip++; print "skipped (listed)   " name > report }
		else if (later != "" && !otherskip) { nskip++; print "skipped (later)    " name " " msgs > report }
		else { nfail++; print "SKIPPED (not allowed) " name " " msgs > report }
	} else if (result == "passed") {
		npass++
		print "passed             " name > report
		if (name in allow) problem(name " passed but is on the allowed-skip list: delete its line")
	} else {
		nfail++; ntfail++
		print "FAILED             " name > report
	}
	test = ""
}

BEGIN {
	if (allowed != "") {
		while ((r = getline line < allowed) > 0) {
			sub(/#.*/, "", line)
			gsub(/[ \t]/, "", line)
			if (line != "") allow[line] = 1
		}
		if (r < 0) problem("cannot read the allowed-skip list " allowed)
		close(allowed)
	}
	min += 0
}
FNR == 1 { finish(); suite = ""; summary = 0 }
/^Suite: / { finish(); suite = $2; next }
/^  Test: / {
	finish()
	line = $0; sub(/^  Test: /, "", line); test = line; sub(/ \.\.\..*/, "", test)
	result = ""; skipped = 0; otherskip = 0; msgs = ""
}
/^Run Summary/ { finish(); summary = 1; next }
# The summary table: Type Total Ran Passed Failed Inactive.
summary && $1 == "suites" && $2 ~ /^[0-9]+$/ { suitesFailed = $5 + 0; next }
summary && $1 == "tests" && $2 ~ /^[0-9]+$/ { cuRan = $3 + 0; cuFailed = $5 + 0; haveTests = 1; next }
/^(HANG|CRASH):/ { problem($0); next }
# Once a test has its result, later text on the line (and later lines)
# belongs to the suite's own setup or teardown, which also prints [SKIPPED].
test != "" && result == "" {
	p = match($0, /(\.\.\.|^)passed/) ? RSTART : 0
	# libiscsi prints "[FAILED] ..." for commands a test expects to fail;
	# only CUnit's own verdict, after "..." or alone, counts.
	f = match($0, /(\.\.\.|^)FAILED/) ? RSTART : 0
	s = index($0, "[SKIPPED]")
	if (s && (!p || s < p) && (!f || s < f)) {
		skipped = 1
		m = substr($0, s)
		if (index(msgs, m) == 0) msgs = msgs (msgs == "" ? "" : " ") m
		if (m !~ later) otherskip = 1
	}
	if (f && (!p || f < p)) result = "FAILED"
	else if (p) result = "passed"
}
END {
	finish()
	if (!haveTests) {
		problem("no CUnit run summary: iscsi-test-cu stopped before the end (see its output)")
	} else {
		if (cuRan != ntests) problem(sprintf("CUnit ran %d tests but %d were found in its output", cuRan, ntests))
		if (cuFailed != ntfail) problem(sprintf("CUnit counts %d failed tests, this script %d", cuFailed, ntfail))
		if (suitesFailed > 0) problem(sprintf("%d suites failed their set-up or clean-up", suitesFailed))
	}
	if (ntests < min) problem(sprintf("only %d tests ran, at least %d expected (a mistyped -t, a failed login?)", ntests, min))
	printf "%d passed, %d failed, %d skipped\n", npass, nfail, nskip
}
