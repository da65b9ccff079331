package rod

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

const mib = 1 << 20

// Offsets of the descriptors of a LID1 list built by rig.list: the CSCDs
// one per disk after the 16-byte header, then the segments.
func cscdOffset(i int) int { return lid1HeaderLen + i*cscdLen }

func segOffset(p *Params, k int) int {
	off := lid1HeaderLen + len(p.CSCDs)*cscdLen
	for _, s := range p.Segments[:k] {
		off += 4 + segmentLength[s.Type]
	}
	return off
}

// requireProgress checks what a finished list reports.
func requireProgress(t *testing.T, r *rig, to int, id uint32, segments uint32, bytes uint64) Progress {
	t.Helper()
	p, ok := r.m.Status(r.nexus, r.disks[to].lu, id, false)
	require.True(t, ok, "list %d is held", id)
	require.True(t, p.Done)
	require.Equal(t, segments, p.Segments, "segments processed")
	require.Equal(t, bytes, p.Bytes, "bytes written")
	return p
}

// requireCopyAborted checks COPY ABORTED with the failed segment's number
// in COMMAND-SPECIFIC INFORMATION and the sense key specific field.
func requireCopyAborted(t *testing.T, s *scsi.Sense, code scsi.ASC, seg int, sks []byte) {
	t.Helper()
	requireSense(t, s, scsi.CopyAborted, code, sks)
	require.True(t, s.HasCommandSpecific, "COMMAND-SPECIFIC INFORMATION set")
	require.Equal(t, uint64(seg), s.CommandSpecific, "failed segment")
	// The sense data survives encoding in both formats.
	for _, desc := range []bool{false, true} {
		got, err := scsi.ParseSense(s.Encode(desc))
		require.NoError(t, err)
		require.Equal(t, s.Key, got.Key)
		require.Equal(t, s.Code, got.Code)
		require.Equal(t, s.SenseKeySpecific, got.SenseKeySpecific)
		if seg != 0 || desc {
			require.Equal(t, uint64(seg), got.CommandSpecific)
		}
		if s.Forwarded != nil {
			require.Equal(t, s.Forwarded, got.Forwarded, "forwarded sense data, descriptor format %v", desc)
		}
	}
}

// requireForwarded checks the forwarded sense data descriptor: its source,
// CHECK CONDITION, and the device's sense data in the format dsense
// selects.
func requireForwarded(t *testing.T, s *scsi.Sense, source byte, dsense bool, key scsi.SenseKey, code scsi.ASC) *scsi.Sense {
	t.Helper()
	require.NotNil(t, s.Forwarded, "forwarded sense data")
	require.Equal(t, source, s.Forwarded.Source)
	require.Equal(t, scsi.StatusCheckCondition, s.Forwarded.Status)
	want := byte(0x70)
	if dsense {
		want = 0x72
	}
	require.Equal(t, want, s.Forwarded.Sense[0]&0x7F, "forwarded sense data format")
	dev, err := scsi.ParseSense(s.Forwarded.Sense)
	require.NoError(t, err)
	require.Equal(t, key, dev.Key)
	require.Equal(t, code, dev.Code)
	return dev
}

func TestCopyBetweenLUs(t *testing.T) {
	r := newRig(t, Config{}, memDisk(64, 512), memDisk(64, 512))
	l, s := r.run(r.list(1, b2b(0, 1, 16, 3, 7), b2b(1, 0, 1, 63, 0), b2b(0, 1, 0, 64, 64)))
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 3*512, 1, 7*512, 16*512)
	r.copyModel(1, 63*512, 0, 0, 512)
	r.verify()
	require.Equal(t, uint32(3), l.segments.Load())
	requireProgress(t, r, 0, 1, 3, 17*512)
}

func TestCopySameLUNonOverlapping(t *testing.T) {
	r := newRig(t, Config{}, memDisk(64, 512))
	_, s := r.run(r.list(1, b2b(0, 0, 8, 0, 32), b2b(0, 0, 8, 40, 8)))
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 0, 0, 32*512, 8*512)
	r.copyModel(0, 40*512, 0, 8*512, 8*512)
	r.verify()
	clone, copyRange, buffered := r.logs.lastPaths(t)
	require.Equal(t, uint64(16*512), clone+copyRange, "a memory store clones")
	require.Zero(t, buffered)
}

// TestCopyOverlapping copies ranges of one logical unit onto themselves,
// shifted both ways, in segments of several buffers, with both one and
// two buffers to pipeline through: the result is a memmove (SPC-4
// 6.4.6.5 copies as if through a buffer of the whole segment).
func TestCopyOverlapping(t *testing.T) {
	cases := []struct {
		name string
		bs   int
		seg  Segment
	}{
		{"forwards by one block", 512, b2b(0, 0, 100, 10, 11)},
		{"backwards by one block", 512, b2b(0, 0, 100, 11, 10)},
		{"forwards, many chunks", 4096, b2b(0, 0, 2500, 0, 300)},
		{"backwards, many chunks", 4096, b2b(0, 0, 2500, 300, 0)},
		{"forwards by less than a chunk", 4096, b2b(0, 0, 3000, 7, 1000)},
		{"onto itself", 4096, b2b(0, 0, 2000, 5, 5)},
		{"byte offsets forwards", 512, b2bOffset(0, 0, 9*mib+77, 1, 100, 2, 300)},
		{"byte offsets backwards", 512, b2bOffset(0, 0, 9*mib+77, 2, 300, 1, 100)},
		{"byte offsets, shift below a block", 512, b2bOffset(0, 0, 5*mib, 4, 10, 4, 20)},
		{"byte offsets, shift below a block backwards", 512, b2bOffset(0, 0, 5*mib, 4, 20, 4, 10)},
	}
	for _, c := range cases {
		for _, buffers := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d buffers", c.name, buffers), func(t *testing.T) {
				r := newRig(t, Config{}, memDisk(16*mib/int64(c.bs), c.bs))
				// Leave only the given number of buffers in the pool.
				var taken [][]byte
				for len(r.m.buffers) > buffers {
					taken = append(taken, <-r.m.buffers)
				}
				_, s := r.run(r.list(1, c.seg))
				require.Nil(t, s, "%v", s)
				bs := int64(c.bs)
				n := int64(c.seg.Blocks) * bs
				if c.seg.Type == SegmentBlockToBlockOffset {
					n = int64(c.seg.Bytes)
				}
				r.copyModel(0, int64(c.seg.SrcLBA)*bs+int64(c.seg.SrcByteOffset), 0, int64(c.seg.DstLBA)*bs+int64(c.seg.DstByteOffset), n)
				r.verify()
				requireProgress(t, r, 0, 1, 1, uint64(n))
				require.Len(t, r.m.buffers, buffers, "every buffer went back to the pool")
				for _, b := range taken {
					r.m.buffers <- b
				}
			})
		}
	}
}

// TestCopyByteOffsets copies with segment descriptor 0Ah between block
// sizes, starting and ending inside blocks: the bytes of the destination
// blocks outside the range are kept (read-modify-write).
func TestCopyByteOffsets(t *testing.T) {
	cases := []struct {
		name string
		seg  Segment
	}{
		{"inside one block", b2bOffset(0, 1, 100, 2, 7, 3, 1000)},
		{"across blocks", b2bOffset(0, 1, 10000, 2, 100, 1, 3000)},
		{"from block start to inside a block", b2bOffset(0, 1, 5000, 0, 0, 5, 0)},
		{"ending on a block boundary", b2bOffset(0, 1, 4096-3000+4096, 9, 511, 1, 3000)},
		{"aligned", b2bOffset(0, 1, 3*4096, 8, 0, 2, 0)},
		{"several chunks", b2bOffset(0, 1, 9*mib+5, 3, 1, 1, 4095)},
		{"reverse direction", b2bOffset(1, 0, 7777, 1, 4000, 100, 3)},
		{"nothing", b2bOffset(0, 1, 0, 1, 1, 1, 1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, Config{}, memDisk(32*mib/512, 512), memDisk(16*mib/4096, 4096))
			_, s := r.run(r.list(1, c.seg))
			require.Nil(t, s, "%v", s)
			bs := []int64{512, 4096}
			r.copyModel(int(c.seg.Src), int64(c.seg.SrcLBA)*bs[c.seg.Src]+int64(c.seg.SrcByteOffset),
				int(c.seg.Dst), int64(c.seg.DstLBA)*bs[c.seg.Dst]+int64(c.seg.DstByteOffset), int64(c.seg.Bytes))
			r.verify()
			requireProgress(t, r, 0, 1, 1, uint64(c.seg.Bytes))
		})
	}
}

func TestCopyByteOffsetBeyondBlock(t *testing.T) {
	for _, c := range []struct {
		seg Segment
		at  int
	}{
		{b2bOffset(0, 1, 10, 0, 512, 0, 0), 28},
		{b2bOffset(0, 1, 10, 0, 0, 0, 4096), 30},
		{b2bOffset(0, 1, 10, 0, 0xFFFF, 0, 0xFFFF), 28},
	} {
		r := newRig(t, Config{}, memDisk(64, 512), memDisk(16, 4096))
		p := r.list(1, b2b(0, 1, 8, 0, 0), c.seg)
		_, s := r.run(p)
		requireCopyAborted(t, s, scsi.ASCInvalidFieldInParameterList, 1, segPtr(true, c.at))
		r.copyModel(0, 0, 1, 0, 4096)
		r.verify()
		requireProgress(t, r, 0, 1, 1, 4096)
	}
}

func TestCopyDestinationCount(t *testing.T) {
	r := newRig(t, Config{}, memDisk(256, 512), memDisk(32, 4096))
	seg := func(src, dst uint16, blocks uint32, srcLBA, dstLBA uint64, dc bool) Segment {
		s := b2b(src, dst, blocks, srcLBA, dstLBA)
		s.DC = dc
		return s
	}
	_, s := r.run(r.list(1,
		seg(0, 1, 2, 8, 1, true),    // 2 destination blocks of 4096: 16 source blocks
		seg(0, 1, 16, 40, 5, false), // 16 source blocks: 2 destination blocks
		seg(1, 0, 3, 7, 100, false), // 3 source blocks of 4096
		seg(1, 0, 8, 9, 200, true),  // 8 destination blocks of 512
	))
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 8*512, 1, 1*4096, 8192)
	r.copyModel(0, 40*512, 1, 5*4096, 8192)
	r.copyModel(1, 7*4096, 0, 100*512, 3*4096)
	r.copyModel(1, 9*4096, 0, 200*512, 8*512)
	r.verify()
	requireProgress(t, r, 0, 1, 4, 8192+8192+3*4096+8*512)

	// A count that is not a whole number of blocks on the other side is
	// an inexact segment: COPY ABORTED, UNEXPECTED INEXACT SEGMENT, and
	// nothing of it is copied.
	for _, bad := range []Segment{seg(0, 1, 3, 0, 0, false), seg(1, 0, 3, 0, 0, true), seg(0, 1, 9, 0, 0, false)} {
		p := r.list(2, seg(0, 1, 8, 0, 3, false), bad)
		_, s := r.run(p)
		requireCopyAborted(t, s, scsi.ASCUnexpectedInexactSegment, 1, segPtr(false, segOffset(p, 1)))
		r.copyModel(0, 0, 1, 3*4096, 4096)
		r.verify()
		requireProgress(t, r, 0, 2, 1, 4096)
	}
}

// TestCopyThisLU uses CSCD descriptor ID FFFFh, the logical unit that
// received the command (SPC-4 table 122), on either side.
func TestCopyThisLU(t *testing.T) {
	r := newRig(t, Config{}, memDisk(64, 512), memDisk(64, 512))
	p := &Params{ListID: 3, Segments: []Segment{b2b(CSCDThisLU, CSCDThisLU, 4, 0, 20), {Type: SegmentVerifyCSCD, Src: CSCDThisLU}}}
	_, s := r.runOn(context.Background(), 1, p, false)
	require.Nil(t, s, "%v", s)
	r.copyModel(1, 0, 1, 20*512, 4*512)
	p = &Params{ListID: 4, CSCDs: []CSCD{r.cscd(1)}, Segments: []Segment{b2b(CSCDThisLU, 0, 4, 10, 30), b2b(0, CSCDThisLU, 2, 50, 60)}}
	_, s = r.runOn(context.Background(), 0, p, false)
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 10*512, 1, 30*512, 4*512)
	r.copyModel(1, 50*512, 0, 60*512, 2*512)
	r.verify()
}

func TestCopyVerifySegment(t *testing.T) {
	r := newRig(t, Config{}, memDisk(64, 512), memDisk(64, 512))
	_, s := r.run(r.list(1, Segment{Type: SegmentVerifyCSCD, Src: 1, TUR: true}, Segment{Type: SegmentVerifyCSCD, Src: 0}))
	require.Nil(t, s, "%v", s)
	requireProgress(t, r, 0, 1, 2, 0)
	p := r.list(2, Segment{Type: SegmentVerifyCSCD, Src: 0}, Segment{Type: SegmentVerifyCSCD, Src: 2})
	_, s = r.run(p)
	requireCopyAborted(t, s, scsi.ASCCopyTargetDeviceNotReachable, 1, segPtr(false, segOffset(p, 1)))
	requireProgress(t, r, 0, 2, 1, 0)
	r.verify()
}

// TestCopyUnreachable names copy sources and destinations the copy
// manager must not or cannot reach: COPY ABORTED, COPY TARGET DEVICE NOT
// REACHABLE, which VMware and Windows answer with a host copy, and
// nothing written.
func TestCopyUnreachable(t *testing.T) {
	outside := backstore.NewMemory(64*512, 512)
	outsideSerial := "0123456789abcdef0123456789abcdef"
	cases := []struct {
		name  string
		cscd  func(r *rig) CSCD
		src   uint16 // the segment's source CSCD ID; the destination is disk 1
		cross bool   // the outside logical unit is reachable across targets
	}{
		{name: "CSCD ID beyond the list", cscd: func(r *rig) CSCD { return r.cscd(0) }, src: 5},
		{name: "CSCD ID FFFEh", cscd: func(r *rig) CSCD { return r.cscd(0) }, src: 0xFFFE},
		{name: "unknown NAA", cscd: func(r *rig) CSCD { return naaCSCD("fedcba98765432100123", 0) }},
		{name: "logical unit group (shared by all)", cscd: func(r *rig) CSCD {
			return CSCD{Designator: scsi.Designator{CodeSet: scsi.CodeSetBinary, Association: scsi.AssocLU, Type: scsi.DesignatorLUGroup, Value: []byte{0, 0, 0, 0}}}
		}},
		{name: "T10 vendor ID without serial (shared)", cscd: func(r *rig) CSCD {
			return CSCD{Designator: scsi.Designator{CodeSet: scsi.CodeSetASCII, Association: scsi.AssocLU, Type: scsi.DesignatorT10VendorID,
				Value: scsi.T10VendorIDDesignator("ODXTGT", "rod-test", "")}}
		}},
		{name: "target port association", cscd: func(r *rig) CSCD {
			c := r.cscd(0)
			c.Designator.Association = scsi.AssocTargetPort
			return c
		}},
		{name: "wrong code set", cscd: func(r *rig) CSCD {
			c := r.cscd(0)
			c.Designator.CodeSet = scsi.CodeSetASCII
			return c
		}},
		{name: "NUL", cscd: func(r *rig) CSCD { c := r.cscd(0); c.NUL = true; return c }},
		{name: "proxy token", cscd: func(r *rig) CSCD { c := r.cscd(0); c.LUIDType = 1; return c }},
		{name: "sequential-access device", cscd: func(r *rig) CSCD { c := r.cscd(0); c.DeviceType = 1; return c }},
		{name: "logical unit of another target", cscd: func(r *rig) CSCD { return naaCSCD(outsideSerial, 0) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Disks 2 and 3 have no serial, so they share their T10
			// vendor ID designator.
			r := newRig(t, Config{}, memDisk(64, 512), memDisk(64, 512),
				diskSpec{store: backstore.NewMemory(64*512, 512), serial: "-"}, diskSpec{store: backstore.NewMemory(64*512, 512), serial: "-"})
			p := &Params{ListID: 1, CSCDs: []CSCD{c.cscd(r), r.cscd(1)}, Segments: []Segment{b2b(1, 1, 1, 0, 1), b2b(c.src, 1, 4, 0, 8)}}
			_, s := r.run(p)
			requireCopyAborted(t, s, scsi.ASCCopyTargetDeviceNotReachable, 1, segPtr(false, segOffset(p, 1)))
			require.Nil(t, s.Forwarded)
			r.copyModel(1, 0, 1, 512, 512)
			r.verify()
			requireProgress(t, r, 0, 1, 1, 512)
		})
	}
	t.Run("logical unit of another target, cross-target allowed", func(t *testing.T) {
		var other *scsi.LU
		r := newRig(t, Config{CrossTarget: func() []*scsi.LU { return []*scsi.LU{other} }}, memDisk(64, 512), memDisk(64, 512))
		other = scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "outside", Serial: outsideSerial}, Store: outside, Table: r.table, Logger: quietLogger()})
		want := pattern(512*4, 99)
		require.NoError(t, outside.WriteAt(want, 0, false))
		p := &Params{ListID: 1, CSCDs: []CSCD{naaCSCD(outsideSerial, 512), r.cscd(1)}, Segments: []Segment{b2b(0, 1, 4, 0, 8)}}
		_, s := r.run(p)
		require.Nil(t, s, "%v", s)
		copy(r.disks[1].model[8*512:], want)
		r.verify()
	})
}

// TestCopyBlockLengthMismatch: a DISK BLOCK LENGTH that differs from the
// logical unit's is an invalid field of the CSCD descriptor, on either
// side. It once dereferenced the nil logical unit resolve returned.
func TestCopyBlockLengthMismatch(t *testing.T) {
	for _, side := range []int{0, 1} {
		r := newRig(t, Config{}, memDisk(64, 512), memDisk(64, 4096))
		p := r.list(1, b2b(0, 1, 8, 0, 0), b2b(0, 1, 8, 8, 1))
		p.CSCDs[side].BlockLength = 1024
		p.CSCDs[1-side].BlockLength = uint32(r.disks[1-side].store.BlockSize())
		// The first segment names the bad CSCD too, so it fails.
		_, s := r.run(p)
		requireCopyAborted(t, s, scsi.ASCInvalidFieldInParameterList, 0, segPtr(false, cscdOffset(side)+29))
		r.verify()
		requireProgress(t, r, 0, 1, 0, 0)
	}
}

// TestCopyPastTheEnd: a segment reaching past the end of its source or
// destination, however far (LBAs near 2^64 must neither panic nor wrap
// to a valid offset), is COPY ABORTED with LOGICAL BLOCK ADDRESS OUT OF
// RANGE forwarded, and none of it is written; the segments before it
// are.
func TestCopyPastTheEnd(t *testing.T) {
	const blocks = 64
	cases := []struct {
		name string
		seg  Segment
		side byte
	}{
		{"source one block past", b2b(0, 1, 8, blocks-7, 0), scsi.ForwardedFromSource},
		{"destination one block past", b2b(0, 1, 8, 0, blocks-7), scsi.ForwardedFromDestination},
		{"source starts at the end", b2b(0, 1, 1, blocks, 0), scsi.ForwardedFromSource},
		{"source LBA 2^64-1", b2b(0, 1, 1, 1<<64-1, 0), scsi.ForwardedFromSource},
		{"destination LBA 2^64-1", b2b(0, 1, 2, 0, 1<<64-1), scsi.ForwardedFromDestination},
		{"source LBA times block size wraps to 0", b2b(0, 1, 1, 1<<55, 0), scsi.ForwardedFromSource},
		{"destination LBA times block size wraps to 512", b2b(0, 1, 1, 0, 1<<55+1), scsi.ForwardedFromDestination},
		{"destination LBA 2^63", b2b(0, 1, 0, 0, 1<<63), scsi.ForwardedFromDestination},
		{"0Ah source LBA 2^64-1", b2bOffset(0, 1, 1, 1<<64-1, 0, 0, 0), scsi.ForwardedFromSource},
		{"0Ah source wraps to 0", b2bOffset(0, 1, 512, 1<<55, 0, 0, 0), scsi.ForwardedFromSource},
		{"0Ah destination wraps", b2bOffset(0, 1, 100, 0, 0, 1<<55, 10), scsi.ForwardedFromDestination},
		{"0Ah source last byte past", b2bOffset(0, 1, 101, blocks-1, 412, 0, 0), scsi.ForwardedFromSource},
		{"0Ah destination starts past the end by an offset", b2bOffset(0, 1, 1, 0, 0, blocks, 0), scsi.ForwardedFromDestination},
		{"0Ah NUMBER OF BYTES 2^32-1", b2bOffset(0, 1, 1<<32-1, 0, 0, 0, 0), 0},
	}
	for _, c := range cases {
		for _, dsense := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/dsense=%v", c.name, dsense), func(t *testing.T) {
				r := newRig(t, Config{}, memDisk(blocks, 512), memDisk(blocks, 512))
				p := r.list(1, b2b(0, 1, 2, 0, 0), c.seg, b2b(0, 1, 2, 0, 10))
				_, s := r.runOn(context.Background(), 0, p, dsense)
				if c.side == 0 {
					// More than MAXIMUM SEGMENT LENGTH.
					requireCopyAborted(t, s, scsi.ASCInvalidFieldInParameterList, 1, segPtr(true, 8))
				} else {
					requireCopyAborted(t, s, scsi.ASCNoAdditionalSense, 1, segPtr(false, segOffset(p, 1)))
					require.NotNil(t, s.Forwarded)
					require.Equal(t, c.side, s.Forwarded.Source)
					require.Equal(t, scsi.StatusCheckCondition, s.Forwarded.Status)
					dev, err := scsi.ParseSense(s.Forwarded.Sense)
					require.NoError(t, err)
					require.Equal(t, scsi.IllegalRequest, dev.Key)
					require.Equal(t, scsi.ASCLBAOutOfRange, dev.Code)
				}
				r.copyModel(0, 0, 1, 0, 1024)
				r.verify()
				requireProgress(t, r, 0, 1, 1, 1024)
			})
		}
	}
}

// faultDisks is a rig whose two disks are memory stores wrapped in
// faults, of 16 MiB with 512-byte blocks.
func faultDisks(t *testing.T, cfg Config) (*rig, *backstore.Fault, *backstore.Fault) {
	src := backstore.NewFault(backstore.NewMemory(16*mib, 512))
	dst := backstore.NewFault(backstore.NewMemory(16*mib, 512))
	return newRig(t, cfg, diskSpec{store: src}, diskSpec{store: dst}), src, dst
}

// noOffload makes clones and copies into f unsupported, so copies into
// it take the buffered path.
func noOffload(f *backstore.Fault) {
	f.Inject(func(op backstore.Op) error {
		if op.Kind == backstore.OpClone || op.Kind == backstore.OpCopy {
			return fmt.Errorf("test: %w", backstore.ErrNotSupported)
		}
		return nil
	})
}

// failWrites fails every write, clone or copy into f touching [off,
// off+n).
func failWrites(f *backstore.Fault, off, n int64, err error) {
	f.Inject(func(op backstore.Op) error {
		switch op.Kind {
		case backstore.OpWrite, backstore.OpClone, backstore.OpCopy:
			if op.Off < off+n && off < op.Off+int64(op.Len) {
				return err
			}
		}
		return nil
	})
}

// requireFixedForwarded checks the fixed format encoding of s, which
// forwards a device's CHECK CONDITION (SPC-4 5.17.7.4 d and e): the
// offset of the status byte in the first (copy source) or second (copy
// destination) byte of COMMAND-SPECIFIC INFORMATION, the segment number in
// its third and fourth, and the status byte and the device's sense data
// after the 18 standard bytes.
func requireFixedForwarded(t *testing.T, s *scsi.Sense, source byte, seg int) {
	t.Helper()
	b := s.Encode(false)
	require.Equal(t, byte(0x70), b[0]&0x7F)
	require.Equal(t, byte(len(b)-8), b[7], "ADDITIONAL SENSE LENGTH")
	offsets := []byte{0, 0}
	offsets[source-1] = 18
	require.Equal(t, offsets, b[8:10], "sense data offsets")
	require.Equal(t, uint16(seg), binary.BigEndian.Uint16(b[10:]), "segment number")
	require.Equal(t, byte(scsi.StatusCheckCondition), b[18])
	require.Equal(t, s.Forwarded.Sense, b[19:], "the device's sense data")
}

// TestCopySegmentFails fails segment 2 of four in the middle of its
// second buffer, on the source's reads or the destination's writes,
// through the offload and the buffered paths: COPY ABORTED, THIRD PARTY
// DEVICE FAILURE with the segment number, a segment pointer to the
// failing side's CSCD descriptor and the device's sense data forwarded;
// the segments before it and the completed chunks of it written, nothing
// else.
func TestCopySegmentFails(t *testing.T) {
	for _, side := range []string{"source read", "destination write"} {
		for _, offload := range []bool{true, false} {
			for _, dsense := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/offload=%v/dsense=%v", side, offload, dsense), func(t *testing.T) {
					r, src, dst := faultDisks(t, Config{})
					if !offload {
						noOffload(dst)
					}
					segs := []Segment{b2b(0, 1, 8, 0, 0), b2b(1, 1, 8, 0, 100), b2b(0, 1, 20000, 1000, 2000), b2b(0, 1, 8, 30000, 30000)}
					p := r.list(1, segs...)
					failAt := int64(5 * mib) // inside the second 4 MiB chunk of segment 2
					eio := &backstore.OpError{Op: "test", Err: syscall.EIO}
					if side == "source read" {
						src.FailRange(backstore.OpRead, 1000*512+failAt, 512, eio)
					} else {
						failWrites(dst, 2000*512+failAt, 512, eio)
					}
					l, s := r.runOn(context.Background(), 0, p, dsense)
					if side == "source read" {
						requireCopyAborted(t, s, scsi.ASCThirdPartyDeviceFailure, 2, segPtr(false, cscdOffset(0)))
						dev := requireForwarded(t, s, scsi.ForwardedFromSource, dsense, scsi.MediumError, scsi.ASCUnrecoveredReadError)
						require.Equal(t, uint64(1000+bufferSize/512), dev.Information, "the first LBA of the failed read")
						requireFixedForwarded(t, s, scsi.ForwardedFromSource, 2)
					} else {
						requireCopyAborted(t, s, scsi.ASCThirdPartyDeviceFailure, 2, segPtr(false, cscdOffset(1)))
						dev := requireForwarded(t, s, scsi.ForwardedFromDestination, dsense, scsi.MediumError, scsi.ASCWriteError)
						require.Equal(t, uint64(2000+bufferSize/512), dev.Information, "the first LBA of the failed write")
						requireFixedForwarded(t, s, scsi.ForwardedFromDestination, 2)
					}
					r.copyModel(0, 0, 1, 0, 8*512)
					r.copyModel(1, 0, 1, 100*512, 8*512)
					r.copyModel(0, 1000*512, 1, 2000*512, bufferSize)
					src.Reset()
					dst.Reset()
					r.verify()
					require.Equal(t, uint32(2), l.segments.Load())
					requireProgress(t, r, 0, 1, 2, 16*512+bufferSize)
					require.Len(t, r.m.buffers, cap(r.m.buffers), "every buffer went back to the pool")
					_, _, buffered := r.logs.lastPaths(t)
					if offload {
						require.Equal(t, uint64(bufferSize), buffered, "the failed offload is redone through buffers")
					} else {
						require.Equal(t, uint64(16*512+bufferSize), buffered)
					}
				})
			}
		}
	}
}

// TestCopySegmentFailsFirstChunk fails a segment at once: nothing of it
// is written and no bytes are counted for it.
func TestCopySegmentFailsFirstChunk(t *testing.T) {
	r, _, dst := faultDisks(t, Config{})
	noOffload(dst)
	failWrites(dst, 0, 1, &backstore.OpError{Op: "test", Err: syscall.EIO})
	p := r.list(1, b2b(0, 1, 8, 0, 8), b2bOffset(0, 1, 100, 3, 3, 0, 5))
	_, s := r.run(p)
	requireCopyAborted(t, s, scsi.ASCThirdPartyDeviceFailure, 1, segPtr(false, cscdOffset(1)))
	// The read-modify-write of the first destination block read it
	// fine; its write failed.
	requireForwarded(t, s, scsi.ForwardedFromDestination, false, scsi.MediumError, scsi.ASCWriteError)
	r.copyModel(0, 0, 1, 8*512, 8*512)
	r.verify()
	requireProgress(t, r, 0, 1, 1, 8*512)
}

// TestCopyNoSpace: a destination out of space forwards DATA PROTECT,
// SPACE ALLOCATION FAILED WRITE PROTECT.
func TestCopyNoSpace(t *testing.T) {
	r, _, dst := faultDisks(t, Config{})
	failWrites(dst, 0, 16*mib, &backstore.OpError{Op: "test", Err: syscall.ENOSPC})
	_, s := r.run(r.list(1, b2b(0, 1, 8, 0, 8)))
	requireCopyAborted(t, s, scsi.ASCThirdPartyDeviceFailure, 0, segPtr(false, cscdOffset(1)))
	requireForwarded(t, s, scsi.ForwardedFromDestination, false, scsi.DataProtect, scsi.ASCSpaceAllocationFailedWP)
	r.verify()
}

func TestCopyWriteProtected(t *testing.T) {
	for _, how := range []string{"read-only", "SWP"} {
		t.Run(how, func(t *testing.T) {
			r := newRig(t, Config{}, memDisk(64, 512), diskSpec{store: backstore.NewMemory(64*512, 512), readOnly: how == "read-only"}, memDisk(64, 512))
			if how == "SWP" {
				r.disks[1].lu.UpdateMode(r.nexus, func(m *scsi.ModeState) { m.SWP = true })
			}
			for _, seg := range []Segment{b2b(0, 1, 8, 0, 8), b2bOffset(0, 1, 100, 0, 3, 0, 5)} {
				p := r.list(1, b2b(0, 2, 4, 0, 0), seg)
				_, s := r.run(p)
				requireCopyAborted(t, s, scsi.ASCThirdPartyDeviceFailure, 1, segPtr(false, cscdOffset(1)))
				requireForwarded(t, s, scsi.ForwardedFromDestination, false, scsi.DataProtect, scsi.ASCWriteProtected)
				r.copyModel(0, 0, 2, 0, 4*512)
				r.verify()
				requireProgress(t, r, 0, 1, 1, 4*512)
			}
			// Reading from it is fine.
			_, s := r.run(r.list(2, b2b(1, 0, 8, 0, 8)))
			require.Nil(t, s, "%v", s)
			r.copyModel(1, 0, 0, 8*512, 8*512)
			r.verify()
		})
	}
}

// blockWrite makes the first write into f at or after off wait until
// release is closed, telling started when it does.
func blockWrite(f *backstore.Fault, off int64) (started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.Inject(func(op backstore.Op) error {
		if op.Kind == backstore.OpWrite && op.Off >= off {
			once.Do(func() {
				close(started)
				<-release
			})
		}
		return nil
	})
	return started, release
}

// TestCopyAbortMidCopy aborts a copy while a destination write is stuck:
// COPY OPERATION ABORT (Manager.Abort), the end of the command's context,
// ABORT TASK SET on the destination. The copy ends with TASK ABORTED, no
// chunk after the stuck one is written, the list reports it aborted with
// the bytes that made it, and nothing lingers.
func TestCopyAbortMidCopy(t *testing.T) {
	for _, how := range []string{"COPY OPERATION ABORT", "context", "ABORT TASK SET"} {
		t.Run(how, func(t *testing.T) {
			base := runtime.NumGoroutine()
			r, _, dst := faultDisks(t, Config{})
			noOffload(dst)
			started, release := blockWrite(dst, 100*512)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				l *List
				s *scsi.Sense
			}
			done := make(chan result, 1)
			go func() {
				l, s := r.runOn(ctx, 0, r.list(7, b2b(0, 1, 8, 0, 0), b2b(0, 1, 25000, 50, 100)), false)
				done <- result{l, s}
			}()
			<-started
			switch how {
			case "COPY OPERATION ABORT":
				require.True(t, r.m.Abort(r.nexus, r.disks[0].lu, 7))
				close(release)
			case "context":
				cancel()
				close(release)
			case "ABORT TASK SET":
				// On the logical unit that received the command: the
				// command is one of the nexus's tasks there, so the
				// task set ends its context (here, first), and so are
				// the copy's internal tasks there.
				cancel()
				r.disks[0].lu.AbortTaskSet(r.nexus)
				close(release)
			}
			res := <-done
			requireSense(t, res.s, scsi.AbortedCommand, scsi.ASCNoAdditionalSense, nil)
			p, ok := r.m.Status(r.nexus, r.disks[0].lu, 7, false)
			require.True(t, ok)
			require.True(t, p.Done)
			require.True(t, p.Aborted)
			require.Equal(t, scsi.StatusTaskAborted, p.Status)
			require.Equal(t, uint32(1), p.Segments)
			// The stuck write completes; nothing after it is written.
			require.Equal(t, uint64(8*512+bufferSize), p.Bytes)
			r.copyModel(0, 0, 1, 0, 8*512)
			r.copyModel(0, 50*512, 1, 100*512, bufferSize)
			r.verify()
			require.Len(t, r.m.buffers, cap(r.m.buffers), "every buffer went back to the pool")
			require.Zero(t, r.m.Running())
			settleGoroutines(t, base)
		})
	}
}

// TestCopyStopsWhenInternalTaskAborted: ABORT TASK SET from the copy's
// nexus on the destination, which received no command, aborts the
// copy's internal task there while its write is stuck. The write
// completes, but the copy goes no further: it ends with ABORTED COMMAND
// (its own context did not end, so it is a CHECK CONDITION), and the
// same holds for the loss of the nexus, whose tasks are aborted before
// the copy manager hears of it.
func TestCopyStopsWhenInternalTaskAborted(t *testing.T) {
	for _, how := range []string{"ABORT TASK SET", "LOGICAL UNIT RESET"} {
		t.Run(how, func(t *testing.T) {
			r, _, dst := faultDisks(t, Config{})
			noOffload(dst)
			started, release := blockWrite(dst, 100*512)
			done := make(chan *scsi.Sense, 1)
			go func() {
				_, s := r.run(r.list(7, b2b(0, 1, 25000, 50, 100), b2b(0, 1, 8, 0, 0)))
				done <- s
			}()
			<-started
			go func() {
				time.Sleep(20 * time.Millisecond)
				close(release)
			}()
			if how == "ABORT TASK SET" {
				r.disks[1].lu.AbortTaskSet(r.nexus)
			} else {
				r.disks[1].lu.Reset(scsi.ASCBusDeviceResetFunctionOccurred)
			}
			s := <-done
			requireSense(t, s, scsi.AbortedCommand, scsi.ASCNoAdditionalSense, nil)
			p, _ := r.m.Status(r.nexus, r.disks[0].lu, 7, false)
			require.Equal(t, scsi.StatusCheckCondition, p.Status)
			require.False(t, p.Aborted)
			require.Equal(t, uint64(bufferSize), p.Bytes, "the stuck write completed and counts")
			r.copyModel(0, 50*512, 1, 100*512, bufferSize)
			r.verify()
			require.Len(t, r.m.buffers, cap(r.m.buffers))
		})
	}
}

// TestRunHonoursContext: a context already ended copies nothing.
func TestRunHonoursContext(t *testing.T) {
	r := newRig(t, Config{}, memDisk(64, 512), memDisk(64, 512))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, s := r.runOn(ctx, 0, r.list(1, b2b(0, 1, 8, 0, 0)), false)
	requireSense(t, s, scsi.AbortedCommand, scsi.ASCNoAdditionalSense, nil)
	r.verify()
}

// TestRunInternalAfterCancelWritesNothing: once the copy's context has
// ended, a chunk that had already started its internal task does not
// write either (RunInternal itself runs fn when nothing made it wait).
func TestRunInternalAfterCancelWritesNothing(t *testing.T) {
	r, _, dst := faultDisks(t, Config{})
	noOffload(dst)
	ctx, cancel := context.WithCancel(context.Background())
	c := &segmentCopy{m: r.m, ctx: ctx, stop: cancel, l: &List{}, req: Request{Nexus: r.nexus, LU: r.disks[0].lu},
		from: span{endpoint{lu: r.disks[0].lu, blockSize: 512, fwd: scsi.ForwardedFromSource}, 0},
		to:   span{endpoint{lu: r.disks[1].lu, blockSize: 512, fwd: scsi.ForwardedFromDestination}, 0},
		n:    4096, p: &Params{Segments: []Segment{{}}}, paths: &pathCounts{}}
	data := make([]byte, 4096)
	writes := dst.Count(backstore.OpWrite)
	cancel()
	s := c.write(0, 4096, data)
	requireSense(t, s, scsi.AbortedCommand, scsi.ASCNoAdditionalSense, nil)
	_, s = c.read(0, 4096, make([]byte, 4096))
	requireSense(t, s, scsi.AbortedCommand, scsi.ASCNoAdditionalSense, nil)
	require.Equal(t, writes, dst.Count(backstore.OpWrite), "nothing written")
	r.verify()
}

func openFiles(t *testing.T, n int, size int64, bs int) []backstore.Store {
	dir := t.TempDir()
	var stores []backstore.Store
	for i := range n {
		f, err := backstore.OpenFile(filepath.Join(dir, fmt.Sprintf("disk%d.img", i)), size, bs, backstore.FileOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = f.Close() })
		stores = append(stores, f)
	}
	return stores
}

// TestCopyFileStores copies between file stores on one file system: the
// kernel moves the data (FICLONERANGE where the file system has
// reflinks, else copy_file_range), chunk by chunk.
func TestCopyFileStores(t *testing.T) {
	fs := openFiles(t, 2, 20*mib, 4096)
	r := newRig(t, Config{}, diskSpec{store: fs[0]}, diskSpec{store: fs[1]})
	segs := []Segment{b2b(0, 1, 16, 0, 3), b2b(0, 1, 4000, 100, 200), b2b(1, 1, 50, 0, 4500), b2bOffset(0, 1, 4096*4, 5, 0, 4600, 0)}
	_, s := r.run(r.list(1, segs...))
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 0, 1, 3*4096, 16*4096)
	r.copyModel(0, 100*4096, 1, 200*4096, 4000*4096)
	r.copyModel(1, 0, 1, 4500*4096, 50*4096)
	r.copyModel(0, 5*4096, 1, 4600*4096, 4*4096)
	r.verify()
	clone, copyRange, buffered := r.logs.lastPaths(t)
	total := uint64(16+4000+50+4) * 4096
	require.Equal(t, total, clone+copyRange, "offloaded to the kernel (clone %d, copy_file_range %d)", clone, copyRange)
	require.Zero(t, buffered)
	requireProgress(t, r, 0, 1, 4, total)
}

// TestCopyBufferedWhenOffloadUnsupported: stores that refuse clones and
// copies with ErrNotSupported get the pooled buffers.
func TestCopyBufferedWhenOffloadUnsupported(t *testing.T) {
	fs := openFiles(t, 2, 16*mib, 512)
	src, dst := backstore.NewFault(fs[0]), backstore.NewFault(fs[1])
	noOffload(dst)
	r := newRig(t, Config{}, diskSpec{store: src}, diskSpec{store: dst})
	writes := dst.Count(backstore.OpWrite)
	_, s := r.run(r.list(1, b2b(0, 1, 20000, 7, 9)))
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 7*512, 1, 9*512, 20000*512)
	r.verify()
	clone, copyRange, buffered := r.logs.lastPaths(t)
	require.Zero(t, clone+copyRange)
	require.Equal(t, uint64(20000*512), buffered)
	require.Equal(t, (20000*512+bufferSize-1)/bufferSize, dst.Count(backstore.OpWrite)-writes, "one write per chunk")
	require.Positive(t, dst.Count(backstore.OpClone), "the clone was tried first")
}

// TestCopyOffloadErrorFallsBack: a fast path failing with a real error
// leaves the chunk to the buffered copy, which succeeds if the device
// does.
func TestCopyOffloadErrorFallsBack(t *testing.T) {
	r, _, dst := faultDisks(t, Config{})
	dst.Inject(func(op backstore.Op) error {
		if op.Kind == backstore.OpClone {
			return syscall.EIO
		}
		return nil
	})
	_, s := r.run(r.list(1, b2b(0, 1, 100, 0, 3)))
	require.Nil(t, s, "%v", s)
	r.copyModel(0, 0, 1, 3*512, 100*512)
	r.verify()
	_, _, buffered := r.logs.lastPaths(t)
	require.Equal(t, uint64(100*512), buffered)
}

// TestCopyConcurrent runs 8 copies at once between 3 logical units,
// while the host writes other regions of them with WRITE(10): every copy
// and every write lands as if alone.
func TestCopyConcurrent(t *testing.T) {
	const (
		slot  = 512 // blocks per region
		disks = 3
	)
	r := newRig(t, Config{BufferBytes: 8 * mib}, memDisk(32*slot, 512), memDisk(32*slot, 512),
		diskSpec{store: backstore.NewFault(backstore.NewMemory(32*slot*512, 512))})
	noOffload(r.disks[2].store.(*backstore.Fault)) // copies into disk 2 are buffered
	r.clearUA(r.nexus)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		src, dst := i%disks, (i+1+i/3)%disks
		// Sources are regions 0-7, never written; destinations 8-15,
		// each written by one copy; the host writes regions 16-23.
		segs := []Segment{
			b2b(uint16(src), uint16(dst), slot/2, uint64(i*slot), uint64((8+i)*slot)),
			b2bOffset(uint16(src), uint16(dst), slot/2*512-300, uint64(i*slot+slot/2), 100, uint64((8+i)*slot+slot/2), 300),
		}
		r.copyModel(src, int64(i*slot)*512, dst, int64((8+i)*slot)*512, slot/2*512)
		r.copyModel(src, int64(i*slot+slot/2)*512+100, dst, int64((8+i)*slot+slot/2)*512+300, slot/2*512-300)
		p := r.list(uint32(i), segs...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, s := r.runOn(context.Background(), i%disks, p, false); s != nil {
				errs <- fmt.Errorf("copy %d: %v", i, s)
			}
		}()
	}
	for d := range disks {
		for j := range 8 {
			lba := uint32((16+j)*slot + 7)
			data := pattern(64*512, byte(100+d*8+j))
			copy(r.disks[d].model[int64(lba)*512:], data)
			wg.Add(1)
			go func() {
				defer wg.Done()
				cdb := make([]byte, 10)
				cdb[0] = 0x2A
				binary.BigEndian.PutUint32(cdb[2:], lba)
				binary.BigEndian.PutUint16(cdb[7:], 64)
				if c := r.submit(r.nexus, uint64(d), cdb, data); c.Status != scsi.StatusGood {
					errs <- fmt.Errorf("WRITE(10) to disk %d: %v % x", d, c.Status, c.Sense)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	r.verify()
	require.Zero(t, r.m.Running())
	require.Len(t, r.m.buffers, cap(r.m.buffers))
}

// TestCopyNoDeadlockOppositeDirections copies A to B and B to A at once,
// over and over: the extent locks are taken in one order.
func TestCopyNoDeadlockOppositeDirections(t *testing.T) {
	r := newRig(t, Config{}, memDisk(4096, 512), memDisk(4096, 512))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := uint16(i % 2)
			_, s := r.runOn(context.Background(), int(src), &Params{ListID: uint32(i), Usage: UsageDiscard,
				CSCDs: []CSCD{r.cscd(0), r.cscd(1)}, Segments: []Segment{b2b(src, 1-src, 1024, 0, 2048)}}, false)
			if s != nil {
				t.Errorf("copy %d: %v", i, s)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("copies in opposite directions deadlocked")
	}
}
