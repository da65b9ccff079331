// Package stress is a model-based stress test of odxtgt (issue 10): many
// iSCSI sessions, from several initiator names and every other one with
// CRC32C header and data digests, issue a seeded random mix
// of block and copy-offload commands to the real odxtgt binary, and an
// in-memory model of every logical unit predicts what each read returns.
//
// The library part starts the target ([BuildBinary], [StartServer]) and
// drives it ([Run]); stress_test.go holds TestStressShort, crash_test.go
// TestCrashRecovery, which kills the target with SIGKILL mid-run and
// checks what it finds on the files after a restart ([Crash]), and
// fault_test.go TestBackstoreFaults, which serves a failing store from a
// target built in the test process ([Config].Faults). Beside the mix,
// nexus_loss_test.go (TestCopyNexusLoss, and TestCopyNexusLossBinary
// against the binary) ends the I_T nexus of running copies and checks
// what they wrote, their list state and the goroutines and files left,
// and fault_counts_test.go (TestCopyFaultCounts) checks the exact counts
// a copy failed by the backstore reports. Besides the plain
// commands, the mix cuts commands short (ABORT TASK, COPY OPERATION
// ABORT, dropped connections, LOGICAL UNIT RESETs): a block such a
// command covered is read back, and must be its old or a new content.
//
// Each session runs several workers, so it has commands outstanding at
// once. To keep the model exact without serialising them, each worker owns
// a disjoint region of blocks on every LU: it writes, copies and reads only
// there (a copy or token may cross LUs, but its source and destination are
// both regions of the same worker). A token a worker populates can be
// written by any worker of any session and initiator name, since the data
// it stands for is frozen (point in time) and kept beside it; a token the
// target revokes (snapshot space exhausted) may have written any of its
// blocks, each of which must then read back as the old or the token's
// data. The only shared blocks are the lock blocks, which every session races for with COMPARE AND WRITE
// and which are checked for atomicity: every round has exactly one winner
// and no block is ever torn.
//
// Each worker's sequence of operations (kinds, ranges, data) is a pure
// function of the seed and the worker number; which token a WRITE USING
// TOKEN picks, which tokens get revoked and the lock-block rounds depend on
// timing.
package stress
