# Classifies iscsi-test-cu verbose output (CUnit basic mode): a test is
# skipped when [SKIPPED] appears inside it before its result, failed on
# FAILED or when the output stops inside it, passed on "passed". Variables: allowed, a
# regular expression of SUITE.TEST names allowed to skip; report, the file
# that lists every failed and skipped test. Prints "N passed, M failed,
# K skipped" last. later, a regular expression: a skip whose every
# [SKIPPED] message matches it (a command assigned to a later issue is not
# implemented) is allowed too.

function finish() {
	if (test == "") return
	name = suite "." test
	if (result == "") result = "FAILED"   # the run stopped inside the test
	if (skipped && result == "passed") {
		if (name ~ allowed || (later != "" && !otherskip)) { nskip++; print "skipped (allowed)  " name > report }
		else { nfail++; print "SKIPPED (not allowed) " name > report }
	} else if (result == "passed") { npass++ }
	else { nfail++; print "FAILED             " name > report }
	test = ""
}
FNR == 1 { finish(); suite = "" }
/^Suite: / { finish(); suite = $2; next }
/^  Test: / {
	finish()
	line = $0; sub(/^  Test: /, "", line); test = line; sub(/ \.\.\..*/, "", test)
	result = ""; skipped = 0; otherskip = 0
}
/^Run Summary/ { finish(); next }
/^(HANG|CRASH):/ { nfail++; print $0 > report; next }
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
		if (substr($0, s) !~ later) otherskip = 1
	}
	if (f && (!p || f < p)) result = "FAILED"
	else if (p) result = "passed"
}
END {
	finish()
	printf "%d passed, %d failed, %d skipped\n", npass, nfail, nskip 
}