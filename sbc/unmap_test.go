package sbc_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/internal/scratchfs"
	"github.com/odxtgt/odxtgt/rod"
	"github.com/odxtgt/odxtgt/scsi"
)

// allocatedBytes is the space the file at path takes on its file system
// (st_blocks).
func allocatedBytes(tb testing.TB, path string) int64 {
	tb.Helper()
	var st syscall.Stat_t
	require.NoError(tb, syscall.Stat(path, &st))
	return st.Blocks * 512
}

// requireZeroes checks that blocks [lba, lba+n) of s read as zeroes.
func requireZeroes(tb testing.TB, s backstore.Store, lba, n int64) {
	tb.Helper()
	bs := int64(s.BlockSize())
	p := make([]byte, n*bs)
	require.NoError(tb, s.ReadAt(p, lba*bs))
	require.Equal(tb, make([]byte, len(p)), p, "blocks %d-%d read as zeroes", lba, lba+n-1)
}

func requireThinCapacity(tb testing.TB, b *bench) {
	tb.Helper()
	c := b.run(readCapacity16CDB(0, 32, false), nil)
	requireGood(tb, c)
	require.Equal(tb, byte(0xC0), c.DataIn[14], "LBPME and LBPRZ")
}

// TestThinProvisioningFile deallocates through WRITE SAME with UNMAP and
// through UNMAP on a sparse file: the file's allocated space shrinks, the
// blocks read as zeroes and GET LBA STATUS reports them deallocated.
func TestThinProvisioningFile(t *testing.T) {
	const mib, bs = 1 << 20, 512
	path := filepath.Join(t.TempDir(), "lu.img")
	f, err := backstore.OpenFile(path, 16*mib, bs, backstore.FileOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	if err := backstore.Unmap(f, 0, 4096); errors.Is(err, backstore.ErrNotSupported) {
		t.Skipf("the file system of %s cannot punch holes: %v", path, err)
	}
	b := newBench(t, f, benchConfig{writeCache: true})
	requireThinCapacity(t, b)
	const blocksPerMiB = mib / bs
	data := pattern(4*mib, 0x42)
	for i := range 2 {
		requireGood(t, b.run(cdb16(opWrite16, 0, uint64(i)*4*blocksPerMiB, 4*blocksPerMiB), data))
	}
	require.NoError(t, f.Sync())
	full := allocatedBytes(t, path)
	require.GreaterOrEqual(t, full, int64(8*mib))

	// WRITE SAME (16) with UNMAP and a block of zeroes: MiB 1-2.
	requireGood(t, b.run(writeSame16CDB(wsUnmapBit, blocksPerMiB, 2*blocksPerMiB), make([]byte, bs)))
	afterWS := allocatedBytes(t, path)
	require.LessOrEqual(t, afterWS, full-2*mib, "WRITE SAME with UNMAP frees the space")
	requireZeroes(t, f, blocksPerMiB, 2*blocksPerMiB)
	n, mapped := b.lbaStatus(t, blocksPerMiB)
	require.False(t, mapped)
	require.Equal(t, uint32(2*blocksPerMiB), n)
	n, mapped = b.lbaStatus(t, 3*blocksPerMiB)
	require.True(t, mapped)
	require.Equal(t, uint32(5*blocksPerMiB), n)

	// UNMAP of two ranges, MiB 4 and MiB 6, one of them not aligned to a
	// file system block at either end: the space of the whole file system
	// blocks inside is freed, the rest zeroed.
	cdb, list := unmapCDB(4*blocksPerMiB, blocksPerMiB, 6*blocksPerMiB+1, blocksPerMiB-2)
	requireGood(t, b.run(cdb, list))
	afterUnmap := allocatedBytes(t, path)
	require.LessOrEqual(t, afterUnmap, afterWS-2*mib+16*1024)
	requireZeroes(t, f, 4*blocksPerMiB, blocksPerMiB)
	requireZeroes(t, f, 6*blocksPerMiB+1, blocksPerMiB-2)
	p := make([]byte, bs)
	for _, lba := range []int64{6 * blocksPerMiB, 7*blocksPerMiB - 1, 5 * blocksPerMiB} {
		require.NoError(t, f.ReadAt(p, lba*bs))
		require.Equal(t, data[(lba%(4*blocksPerMiB))*bs:][:bs], p, "LBA %d keeps its data", lba)
	}

	// Everything else still reads as written.
	all := contents(t, f)
	require.Equal(t, data[:mib], all[:mib])
	require.Equal(t, data[3*mib:], all[3*mib:4*mib])
}

// TestThinProvisioningLoopDevice runs WRITE SAME with UNMAP and UNMAP on a
// block device (a loop device over a sparse file): the blocks read as
// zeroes and the space of the file behind the device is freed.
func TestThinProvisioningLoopDevice(t *testing.T) {
	const mib, bs = 1 << 20, 512
	dev, img := newLoopDevice(t, 16*mib)
	s, err := backstore.OpenBlock(dev, backstore.BlockOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	probe := backstore.Unmap(s, 15*mib, mib)
	canUnmap := probe == nil
	if !canUnmap {
		require.ErrorIs(t, probe, backstore.ErrNotSupported)
	}
	b := newBench(t, s, benchConfig{writeCache: true})
	requireThinCapacity(t, b)
	const blocksPerMiB = mib / bs
	data := pattern(8*mib, 0x24)
	for i := range 4 {
		requireGood(t, b.run(cdb16(opWrite16, 0, uint64(i)*2*blocksPerMiB, 2*blocksPerMiB), data[i*2*mib:][:2*mib]))
	}
	requireGood(t, b.run(cdb10(opSyncCache10, 0, 0, 0), nil))
	full := allocatedBytes(t, img)
	require.GreaterOrEqual(t, full, int64(8*mib))

	requireGood(t, b.run(writeSame16CDB(wsUnmapBit, blocksPerMiB, 2*blocksPerMiB), make([]byte, bs)))
	cdb, list := unmapCDB(4*blocksPerMiB, 2*blocksPerMiB)
	requireGood(t, b.run(cdb, list))
	requireGood(t, b.run(cdb10(opSyncCache10, 0, 0, 0), nil))
	requireZeroes(t, s, blocksPerMiB, 2*blocksPerMiB)
	requireZeroes(t, s, 4*blocksPerMiB, 2*blocksPerMiB)
	if canUnmap {
		require.LessOrEqual(t, allocatedBytes(t, img), full-4*mib, "the space behind the unmapped blocks is freed")
	} else {
		t.Logf("the loop device cannot deallocate (%v): the blocks were zeroed, the space stays allocated", probe)
	}
	// A block device cannot say what it deallocated: mapped throughout.
	n, mapped := b.lbaStatus(t, blocksPerMiB)
	require.True(t, mapped)
	require.Equal(t, uint32(16*blocksPerMiB-blocksPerMiB), n)
	all := contents(t, s)
	require.Equal(t, data[:mib], all[:mib])
	require.Equal(t, data[3*mib:4*mib], all[3*mib:4*mib])
	require.Equal(t, data[6*mib:], all[6*mib:8*mib])
}

// newLoopDevice attaches a sparse file of size bytes to a free loop device
// and returns both paths; it is detached when the test ends. The test is
// skipped where loop devices cannot be made.
func newLoopDevice(t *testing.T, size int64) (dev, img string) {
	t.Helper()
	img = filepath.Join(t.TempDir(), "loop.img")
	dev, whyNot := scratchfs.Loop(t, img, size, 512)
	if dev == "" {
		t.Skip(whyNot)
	}
	return dev, img
}

// TestProvisioningThroughWrappers: the stores logical units get in
// production are wrapped (rod.Protect); provisioning is reported and
// deallocation happens through the wrapper.
func TestProvisioningThroughWrappers(t *testing.T) {
	const blocks, bs = 64, 512
	m := backstore.NewMemory(blocks*bs, bs)
	b := newBench(t, rod.Protect(backstore.NewFault(m)), benchConfig{writeCache: true})
	requireThinCapacity(t, b)
	requireGood(t, b.run(cdb16(opWrite16, 0, 0, blocks), bytes.Repeat([]byte{1}, blocks*bs)))
	cdb, list := unmapCDB(8, 8)
	requireGood(t, b.run(cdb, list))
	mapped, end, err := m.Allocated(8 * bs)
	require.NoError(t, err)
	require.False(t, mapped)
	require.Equal(t, int64(16*bs), end)
	n, mapped := b.lbaStatus(t, 8)
	require.False(t, mapped)
	require.Equal(t, uint32(8), n)
	requireSense(t, b.run(cdb16(opWrite16, 0, blocks, 1), make([]byte, bs)), scsi.IllegalRequest, scsi.ASCLBAOutOfRange)
}
