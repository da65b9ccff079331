// Package stress is a model-based stress test of odxtgt (issue 10): many
// iSCSI sessions, from several initiator names, issue a seeded random mix
// of block and copy-offload commands to the real odxtgt binary, and an
// in-memory model of every logical unit predicts what each read returns.
//
// The library part starts the target ([BuildBinary], [StartServer]) and
// drives it ([Run]); stress_test.go holds TestStressShort.
//
// To keep the model exact without serialising the sessions, each session
// owns a disjoint region of blocks on every LU: it writes, copies and reads
// only there (a copy or token may cross LUs, but its source and
// destination are both regions of the same session). A token a session
// populates can be written by any session, since the data it stands for
// is frozen (point in time) and kept beside it. The only shared blocks are
// the lock blocks, which every session races for with COMPARE AND WRITE
// and which are checked for atomicity: every round has exactly one winner
// and no block is ever torn.
//
// Each session's sequence of operations (kinds, ranges, data) is a pure
// function of the seed and the session number; which session's token a
// WRITE USING TOKEN picks and the lock-block rounds depend on timing.
package stress
