package rod

import "github.com/odxtgt/odxtgt/scsi"

// residue is the data a block to block segment leaves for the next one
// (SPC-4 5.17.7.2): reads and writes are of whole blocks, so with source
// and destination block sizes that do not divide the bytes of a segment
// some destination data may not fill a last destination block, and some
// source data read may not have been processed. data holds the first,
// dst bytes long, followed by the second. Each part is shorter than a
// block, so a list holds at most maxResidue bytes of it.
type residue struct {
	data []byte
	dst  int
}

// segmentPlan is what one segment of type 02h or 0Ah does. Its data is
// the stream S: the residue of the previous segments followed by medium
// bytes of the copy source from byte mediumStart. The first write bytes
// of S, then zeros zero bytes, are written to the copy destination from
// byte dstStart; S from byte keepFrom on (with keepDst bytes of
// destination data first) is the residue for the next segment, none when
// keepFrom is negative.
// maxResidue bounds the data a list keeps for its next segment: less than
// a block of each side, for logical units (and their ROD tokens) of at
// most 4096-byte blocks. Only the zero ROD, whose DISK BLOCK LENGTH the
// peer chooses up to FFFFFFh, could leave more.
const maxResidue = 2 * 4096

type segmentPlan struct {
	mediumStart, medium    int64
	dstStart, write, zeros int64
	keepFrom               int64
	keepDst                int
}

// planSegment computes the plan of segment i, whose endpoints are src and
// dst, given the residue res of the previous segments: the bytes it reads
// and processes (SPC-4 table 115, 6.4.6.4 and 6.4.6.12), then what
// becomes of the data left over (SPC-4 table 116, the PAD bits of the two
// CSCD descriptors and the segment's CAT bit). A segment that leaves data
// over that it may neither keep, pad nor discard is an UNEXPECTED INEXACT
// SEGMENT, found before anything of it is read or written. The offsets are
// computed from the LBAs, which the caller checked.
func planSegment(i int, p *Params, src, dst endpoint, res residue) (segmentPlan, *scsi.Sense) {
	seg := p.Segments[i]
	held, rdIn := int64(len(res.data)), int64(res.dst)
	rsIn := held - rdIn
	var pl segmentPlan
	// processed is the bytes moved from source data to destination data;
	// written, the destination data written in whole blocks or as the
	// segment's byte range.
	var processed, written int64
	switch seg.Type {
	case SegmentBlockToBlock:
		pl.mediumStart, pl.dstStart = int64(seg.SrcLBA)*src.blockSize, int64(seg.DstLBA)*dst.blockSize
		if seg.DC {
			// DC set: the count is of destination blocks, and only as much
			// is processed as the residual destination data lacks.
			written = int64(seg.Blocks) * dst.blockSize
			processed = max(0, written-rdIn)
		} else {
			processed = int64(seg.Blocks) * src.blockSize
			written = (rdIn + processed) / dst.blockSize * dst.blockSize
		}
		// Just enough whole source blocks to process that many bytes
		// after the residual source data.
		if need := processed - rsIn; need > 0 {
			pl.medium = (need + src.blockSize - 1) / src.blockSize * src.blockSize
		}
	case SegmentBlockToBlockOffset:
		// The byte ranges are exact on both sides: only residue carried
		// into the segment can leave any over.
		pl.mediumStart = int64(seg.SrcLBA)*src.blockSize + int64(seg.SrcByteOffset)
		pl.dstStart = int64(seg.DstLBA)*dst.blockSize + int64(seg.DstByteOffset)
		processed, written, pl.medium = int64(seg.Bytes), int64(seg.Bytes), int64(seg.Bytes)
	}
	destData := rdIn + processed
	rd := destData - written          // destination data left over
	rs := held + pl.medium - destData // source data left over
	srcPAD, dstPAD := cscdPAD(p, seg.Src), cscdPAD(p, seg.Dst)
	pl.write, pl.keepFrom = written, -1
	inexact := func(why string) *scsi.Sense {
		return segmentError(i, p, scsi.ASCUnexpectedInexactSegment).
			WithReason("%d bytes of destination and %d of source data left over with blocks of %d and %d bytes: %s",
				rd, rs, src.blockSize, dst.blockSize, why)
	}
	switch {
	case seg.CAT:
		// Both kinds are kept for the next segment, whatever its CSCDs.
		pl.keepFrom, pl.keepDst = written, int(rd)
	case !srcPAD && !dstPAD:
		if rd+rs != 0 {
			return pl, inexact("CAT and both PAD bits are zero")
		}
	case !dstPAD:
		// PAD set on the source side only: everything left over is
		// discarded.
	default:
		// PAD set on the destination side: the destination data is
		// padded with zeroes to a whole block, unless the segment names
		// exactly what it writes (0Ah, or 02h with DC set), which then
		// may not leave any over (table 116, footnote a). Source data is
		// discarded with PAD set on its side too, else kept as with CAT.
		if rd != 0 && (seg.Type == SegmentBlockToBlockOffset || seg.DC) {
			return pl, inexact("PAD set in the destination CSCD descriptor with an exact destination range")
		}
		if rd != 0 {
			pl.write, pl.zeros = destData, dst.blockSize-rd
		}
		if !srcPAD {
			pl.keepFrom = destData
		}
	}
	if i == len(p.Segments)-1 || pl.keepFrom >= held+pl.medium {
		// Residue of the last segment is discarded, which is no error.
		pl.keepFrom, pl.keepDst = -1, 0
	}
	if kept := held + pl.medium - pl.keepFrom; pl.keepFrom >= 0 && kept > maxResidue {
		// Memory a peer can make the target hold is bounded: a zero ROD
		// block this large is refused where its data would be kept.
		s := scsi.NewSense(scsi.CopyAborted, scsi.ASCInvalidFieldInParameterList).WithCommandSpecific(uint64(i)).
			WithReason("segment %d would keep %d bytes for the next one with source blocks of %d bytes, at most %d", i, kept, src.blockSize, maxResidue)
		if int(seg.Src) < len(p.CSCDs) {
			return pl, s.SegmentPointer(false, p.CSCDs[seg.Src].Offset+29)
		}
		return pl, s.SegmentPointer(false, seg.Offset)
	}
	return pl, nil
}

// cscdPAD is the PAD bit of the CSCD descriptor a segment names by id;
// the logical units named by CSCD IDs FFFFh and F800h have none.
func cscdPAD(p *Params, id uint16) bool {
	return int(id) < len(p.CSCDs) && p.CSCDs[id].PAD
}
