package rod

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/odxtgt/odxtgt/scsi"
)

// bufferSize is the size of one pooled copy buffer and so of one chunk of
// a buffered copy; slack leaves room for the partial blocks at either end
// of an unaligned chunk.
const (
	bufferSize   = 4 << 20
	bufferSlack  = 2 * 4096
	offloadChunk = 64 << 20 // bytes per clone or copy_file_range call
)

// Request is what a copy needs besides its parameter list: the nexus it
// acts for and the logical unit that received the command.
type Request struct {
	Nexus *scsi.Nexus
	LU    *scsi.LU
	// DSense selects descriptor format for the forwarded sense data of a
	// failed segment (the receiving logical unit's D_SENSE).
	DSense bool
}

// Run executes the segments of p in order for list l and returns nil when
// all of them completed, or the sense data that ends the command: COPY
// ABORTED with the failed segment's number in COMMAND-SPECIFIC
// INFORMATION (SPC-4 6.4.3.6), or scsi.TaskAborted when ctx ended (the
// caller tells COPY OPERATION ABORT from a task management function).
// Progress is visible in l while it runs.
func (m *Manager) Run(parent context.Context, l *List, req Request, p *Params) *scsi.Sense {
	start := time.Now()
	// The copy also stops when one of its internal tasks is aborted
	// while it runs (ABORT TASK SET, a reset or the loss of the nexus on
	// a logical unit it accesses): the nexus's tasks are gone, and the
	// copy must not go on as a task nobody aborted.
	ctx, stop := context.WithCancel(parent)
	defer stop()
	toks, failed := m.holdRODs(req.Nexus, p)
	if failed != nil {
		return failed
	}
	var paths pathCounts
	var res residue
	for i := range p.Segments {
		if ctx.Err() != nil {
			failed = scsi.TaskAborted()
			break
		}
		if s := m.runSegment(ctx, stop, l, req, p, toks, i, &paths, &res); s != nil {
			failed = s
			break
		}
		l.segments.Add(1)
	}
	m.releaseRODs(p, toks, true, failed == nil)
	attrs := []any{"list_id", l.key.id, "segments", l.segments.Load(), "of", len(p.Segments),
		"bytes", l.bytes.Load(), "duration", time.Since(start).Round(time.Microsecond)}
	attrs = append(attrs, paths.attrs()...)
	m.counters.addPaths(&paths)
	if failed != nil && failed.Key == scsi.AbortedCommand && parent.Err() == nil {
		failed.WithReason("an internal task of the copy was aborted")
	}
	if failed != nil {
		m.log.Info("copy failed", append(attrs, "sense", failed.Error())...)
	} else {
		m.log.Info("copy finished", attrs...)
	}
	return failed
}

// pathCounts counts the bytes each data path moved, and those a copy
// from the block device zero ROD token zeroed.
type pathCounts struct{ clone, copyRange, buffered, zeroed uint64 }

func (c *pathCounts) attrs() []any {
	a := []any{"clone_bytes", c.clone, "copy_file_range_bytes", c.copyRange, "buffered_bytes", c.buffered}
	if c.zeroed != 0 {
		a = append(a, "zeroed_bytes", c.zeroed)
	}
	return a
}

// endpoint is a resolved copy source or destination: a logical unit, or a
// ROD (a held token, whose lu is the token's source, or the zero token).
type endpoint struct {
	lu        *scsi.LU
	tok       *Token
	zero      bool
	blockSize int64
	fwd       byte // forwarded sense data source for errors on this side
}

// rod reports whether the endpoint is a ROD rather than a logical unit.
func (e endpoint) rod() bool { return e.tok != nil || e.zero }

// size is the endpoint's capacity in bytes.
func (e endpoint) size() int64 {
	switch {
	case e.zero:
		return zeroRODBytes
	case e.tok != nil:
		return e.tok.bytes
	}
	return e.lu.Store.Size()
}

// blocks is the endpoint's capacity in its logical blocks.
func (e endpoint) blocks() uint64 { return uint64(e.size() / e.blockSize) }

// segmentError returns COPY ABORTED with code, the segment number in
// COMMAND-SPECIFIC INFORMATION and a segment pointer to the segment
// descriptor (SPC-4 6.4.3.6).
func segmentError(seg int, p *Params, code scsi.ASC) *scsi.Sense {
	return scsi.NewSense(scsi.CopyAborted, code).WithCommandSpecific(uint64(seg)).
		SegmentPointer(false, p.Segments[seg].Offset)
}

// resolve finds the logical unit a CSCD descriptor ID names: the one that
// received the command for FFFFh, otherwise the one logical unit reachable
// from the nexus whose designator the descriptor carries. For a unit whose
// block length the descriptor contradicts it returns the unit and
// errBlockLength.
func (m *Manager) resolve(req Request, p *Params, id uint16) (*scsi.LU, error) {
	switch {
	case id == CSCDThisLU:
		return req.LU, nil
	case int(id) >= len(p.CSCDs):
		// Reserved IDs, the null logical units (C000h, C001h), and
		// F800h, which only a ROD CSCD descriptor's ROD PRODUCER CSCD
		// DESCRIPTOR ID may hold (SPC-4 table 148, note c), name
		// nothing a segment can reach.
		return nil, fmt.Errorf("CSCD descriptor ID %d: the list has %d", id, len(p.CSCDs))
	}
	c := p.CSCDs[id]
	switch {
	case c.NUL:
		return nil, fmt.Errorf("CSCD %d: NUL device", id)
	case c.LUIDType == 1:
		return nil, fmt.Errorf("CSCD %d: proxy tokens are not supported", id)
	case c.DeviceType != 0:
		return nil, fmt.Errorf("CSCD %d: peripheral device type %02xh is not a block device", id, c.DeviceType)
	}
	candidates := req.Nexus.LogicalUnits()
	if m.cross != nil {
		candidates = append(append([]*scsi.LU(nil), candidates...), m.cross()...)
	}
	lu, err := scsi.FindByDesignator(c.Designator, candidates)
	if err != nil {
		return nil, fmt.Errorf("CSCD %d: %w", id, err)
	}
	if c.BlockLength != 0 && int(c.BlockLength) != lu.Store.BlockSize() {
		// The logical unit goes with the error: endpoint reports its
		// block length.
		return lu, errBlockLength
	}
	return lu, nil
}

// errBlockLength is what resolve returns, with the logical unit it found,
// when the CSCD descriptor's DISK BLOCK LENGTH is not that unit's.
var errBlockLength = errors.New("CSCD block length differs from the logical unit's")

// endpoint resolves one side of segment seg, or returns the sense data
// for a CSCD that names nothing reachable.
func (m *Manager) endpoint(req Request, p *Params, toks []*Token, seg int, id uint16, fwd byte) (endpoint, *scsi.Sense) {
	if int(id) < len(p.CSCDs) && p.CSCDs[id].ROD != nil {
		ep, err := rodEndpoint(p.CSCDs[id], toks[id], fwd)
		if err != nil {
			return endpoint{}, blockLengthError(seg, p, id, ep.lu)
		}
		return ep, nil
	}
	lu, err := m.resolve(req, p, id)
	if errors.Is(err, errBlockLength) {
		return endpoint{}, blockLengthError(seg, p, id, lu)
	}
	if err != nil {
		// COPY TARGET DEVICE NOT REACHABLE makes VMware and Windows fall
		// back to a host copy quietly.
		return endpoint{}, segmentError(seg, p, scsi.ASCCopyTargetDeviceNotReachable).WithReason("%v", err)
	}
	return endpoint{lu: lu, blockSize: int64(lu.Store.BlockSize()), fwd: fwd}, nil
}

// blockLengthError is the error for CSCD descriptor id, whose DISK BLOCK
// LENGTH is not that of lu, the logical unit it names.
func blockLengthError(seg int, p *Params, id uint16, lu *scsi.LU) *scsi.Sense {
	c := p.CSCDs[id]
	return scsi.NewSense(scsi.CopyAborted, scsi.ASCInvalidFieldInParameterList).
		WithCommandSpecific(uint64(seg)).SegmentPointer(false, c.Offset+29).
		WithReason("CSCD %d block length %d, the logical unit has %d", id, c.BlockLength, lu.Store.BlockSize())
}

// span is the byte range of one side of a segment.
type span struct {
	ep    endpoint
	start int64 // byte offset on the medium
}

// blocks returns the logical blocks covering n bytes from s.start.
func (s span) blocks(off, n int64) (lba, count uint64) {
	first := (s.start + off) / s.ep.blockSize
	last := (s.start + off + n + s.ep.blockSize - 1) / s.ep.blockSize
	return uint64(first), uint64(last - first)
}

// room is how much buffer reading n bytes from s.start+off needs: the
// whole blocks that hold them, or just n for the zero ROD, whose blocks
// (of up to FFFFFFh bytes, the peer's choice) are never read whole.
func (s span) room(off, n int64) int64 {
	if s.ep.zero {
		return n
	}
	_, count := s.blocks(off, n)
	return int64(count) * s.ep.blockSize
}

// runSegment validates and executes segment i, which takes the residue
// res of the segments before it and leaves its own there.
func (m *Manager) runSegment(ctx context.Context, stop context.CancelFunc, l *List, req Request, p *Params, toks []*Token, i int, paths *pathCounts, res *residue) *scsi.Sense {
	seg := p.Segments[i]
	src, s := m.endpoint(req, p, toks, i, seg.Src, scsi.ForwardedFromSource)
	if s != nil {
		return s
	}
	if seg.Type == SegmentVerifyCSCD {
		// The source was found; with TUR the copy manager would send it
		// TEST UNIT READY, which a present logical unit always passes.
		// Any residue stays for the next segment (SPC-4 table 115).
		return nil
	}
	dst, s := m.endpoint(req, p, toks, i, seg.Dst, scsi.ForwardedFromDestination)
	if s != nil {
		return s
	}
	if dst.rod() {
		// The RODs of ROD tokens are read only: their data is what the
		// token froze (SPC-4 5.17.7.6).
		return scsi.NewSense(scsi.CopyAborted, scsi.ASCInvalidFieldInParameterList).WithCommandSpecific(uint64(i)).
			SegmentPointer(true, 6).WithReason("segment %d writes to the ROD of CSCD descriptor %d", i, seg.Dst)
	}
	if src.zero && src.blockSize == 0 {
		src.blockSize = dst.blockSize
	}
	if seg.Type == SegmentBlockToBlockOffset {
		if int64(seg.Bytes) > MaxSegmentLength {
			return scsi.NewSense(scsi.CopyAborted, scsi.ASCInvalidFieldInParameterList).WithCommandSpecific(uint64(i)).
				SegmentPointer(true, 8).WithReason("segment of %d bytes exceeds %d", seg.Bytes, MaxSegmentLength)
		}
		if int64(seg.SrcByteOffset) >= src.blockSize || int64(seg.DstByteOffset) >= dst.blockSize {
			at := 28
			if int64(seg.SrcByteOffset) < src.blockSize {
				at = 30
			}
			return scsi.NewSense(scsi.CopyAborted, scsi.ASCInvalidFieldInParameterList).WithCommandSpecific(uint64(i)).
				SegmentPointer(true, at).WithReason("byte offset beyond the first block")
		}
	}
	if s := checkEnds(i, p, seg, src, dst, req.DSense); s != nil {
		return s
	}
	pl, s := planSegment(i, p, src, dst, *res)
	if s != nil {
		return s
	}
	if pl.write > MaxSegmentLength {
		// Only a zero ROD of blocks over 16 KiB makes NUMBER OF BLOCKS
		// reach past MAXIMUM SEGMENT LENGTH; bytes of padding do not
		// count (SPC-4 6.18.4).
		return scsi.NewSense(scsi.CopyAborted, scsi.ASCInvalidFieldInParameterList).WithCommandSpecific(uint64(i)).
			SegmentPointer(true, 10).WithReason("segment writes %d bytes, more than %d", pl.write, MaxSegmentLength)
	}
	switch {
	case pl.medium != 0 && pl.mediumStart+pl.medium > src.size():
		return outOfRange(i, p, src, req.DSense)
	case pl.write+pl.zeros != 0 && pl.dstStart+pl.write+pl.zeros > dst.size():
		return outOfRange(i, p, dst, req.DSense)
	}
	held := int64(len(res.data))
	c := &segmentCopy{m: m, ctx: ctx, stop: stop, l: l, req: req, from: span{src, pl.mediumStart}, to: span{dst, pl.dstStart},
		head: res.data[:min(held, pl.write)], n: pl.write + pl.zeros, zeros: pl.zeros, seg: i, p: p, paths: paths}
	// What is kept for the next segment is read first: it is source data
	// of this segment, which its writes may overwrite when source and
	// destination share a logical unit.
	var next residue
	if pl.keepFrom >= 0 {
		next.data, next.dst = append([]byte(nil), res.data[min(held, pl.keepFrom):]...), pl.keepDst
		if from := max(0, pl.keepFrom-held); from < pl.medium {
			b, s := c.readMedium(from, pl.medium-from, make([]byte, c.from.room(from, pl.medium-from)))
			if s != nil {
				return s
			}
			next.data = append(next.data, b...)
		}
	}
	if c.n != 0 {
		if s := c.run(); s != nil {
			return s
		}
	}
	*res = next
	return nil
}

// checkEnds refuses a segment whose first block lies beyond the end of
// its source or destination, before any offset is computed from it.
func checkEnds(i int, p *Params, seg Segment, src, dst endpoint, dsense bool) *scsi.Sense {
	switch {
	case seg.SrcLBA > src.blocks():
		return outOfRange(i, p, src, dsense)
	case seg.DstLBA > dst.blocks():
		return outOfRange(i, p, dst, dsense)
	}
	return nil
}

// outOfRange is the error for a segment reaching past the end of its
// source or destination ep: COPY ABORTED, with the LOGICAL BLOCK ADDRESS
// OUT OF RANGE the device would have returned forwarded, in the format
// dsense selects. Nothing of the segment is copied.
func outOfRange(i int, p *Params, ep endpoint, dsense bool) *scsi.Sense {
	s := segmentError(i, p, scsi.ASCNoAdditionalSense).
		WithReason("segment %d reaches past the end of its %s", i, sideName(ep.fwd))
	s.Forwarded = &scsi.ForwardedSense{Source: ep.fwd, Status: scsi.StatusCheckCondition, Sense: scsi.LBAOutOfRange().Encode(dsense)}
	return s
}

func sideName(fwd byte) string {
	if fwd == scsi.ForwardedFromSource {
		return "source"
	}
	return "destination"
}

// runInternal is scsi.RunInternal for the copy manager: a write goes only
// to a logical unit the nexus still reaches (its LUN map, or any with
// copy.cross_target). A reload may take a logical unit out of the map
// while a copy runs, and the copy must stop writing it at the next chunk
// rather than go on for as long as its segments last.
func (m *Manager) runInternal(ctx context.Context, n *scsi.Nexus, accesses []scsi.Access, fn func(ctx context.Context) error) error {
	for _, a := range accesses {
		if a.Write && !m.reachable(n, a.LU) {
			return scsi.NewSense(scsi.IllegalRequest, scsi.ASCLUNotSupported).
				WithReason("logical unit %s is no longer mapped to the nexus", a.LU.Identity.Name)
		}
	}
	return scsi.RunInternal(ctx, n, accesses, fn)
}

// reachable reports whether a copy acting for nexus n may reach lu.
func (m *Manager) reachable(n *scsi.Nexus, lu *scsi.LU) bool {
	return slices.Contains(n.LogicalUnits(), lu) || m.cross != nil && slices.Contains(m.cross(), lu)
}
