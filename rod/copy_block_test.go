package rod

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/internal/scratchfs"
)

// TestCopyFileAndBlockDevice copies from a file store to a block device
// (a loop device) and back, on the same and on different offsets: the
// kernel cannot move data between the two, so the pooled buffers do.
func TestCopyFileAndBlockDevice(t *testing.T) {
	const size = 8 << 20
	dev, whyNot := scratchfs.Loop(t, filepath.Join(t.TempDir(), "disk.img"), size, 512)
	if dev == "" {
		t.Skip(whyNot)
	}
	blk, err := backstore.OpenBlock(dev, backstore.BlockOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = blk.Close() })
	file := openFiles(t, 1, size, 512)[0]
	r := newRig(t, Config{}, diskSpec{store: file}, diskSpec{store: blk})
	segs := []Segment{b2b(0, 1, 4096, 0, 100), b2b(1, 0, 2048, 8000, 9000), b2bOffset(0, 1, 3000, 7, 11, 12000, 500)}
	_, s := r.run(r.list(1, segs...))
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 0, 1, 100*512, 4096*512)
	r.copyModel(1, 8000*512, 0, 9000*512, 2048*512)
	r.copyModel(0, 7*512+11, 1, 12000*512+500, 3000)
	r.verify()
	clone, copyRange, buffered := r.logs.lastPaths(t)
	require.Zero(t, clone+copyRange, "no kernel path between a file and a block device")
	require.Equal(t, uint64((4096+2048)*512+3000), buffered)
}
