package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestReviewLoadThroughputInMiB: io.sh prints load's throughput beside
// iscsi-perf's "MB/s", which is MiB/s (bytes >> 20); load's must be in
// the same unit, or the write lines read 4.9% high against the read
// lines.
func TestReviewLoadThroughputInMiB(t *testing.T) {
	assert.InDelta(t, 100.0, mibPerSecond(200<<20, 2), 1e-9)
}
