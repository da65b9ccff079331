package sbc

import (
	"encoding/binary"
	"errors"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// Logical block provisioning (SBC-3 4.7). A logical unit whose store can
// deallocate ([backstore.Unmapper], looked for behind every wrapper) is
// reported with logical block provisioning management enabled: LBPME in
// READ CAPACITY (16), LBPU, LBPWS and LBPWS10 in the Logical Block
// Provisioning VPD page. It also sets LBPRZ: a deallocated block reads as
// zeroes, which the Unmapper contract promises and the fallbacks below
// (writing zeroes where the store cannot deallocate a range) keep. Anchored
// blocks are not supported (ANC_SUP zero): the ANCHOR bits of UNMAP and
// WRITE SAME are outside their usage masks, so the dispatcher refuses them
// with INVALID FIELD IN CDB, as SBC-3 5.28 and 5.44 ask when ANC_SUP is
// zero.

// opUnmap is the operation code of UNMAP, whose support the VPD pages
// report.
const opUnmap = 0x42

// Limits of UNMAP, reported in the Block Limits VPD page and enforced by
// the handler. The count is bounded so that one descriptor list cannot
// make a command run for long; a descriptor is unmapped a chunk at a time
// anyway (see zeroBlocks).
const (
	// maxUnmapLBACount is the MAXIMUM UNMAP LBA COUNT: 2^20 blocks,
	// 512 MiB of 512-byte blocks, 4 GiB of 4096-byte ones.
	maxUnmapLBACount = 1 << 20
	// maxUnmapDescriptors is the MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
	maxUnmapDescriptors = 256
)

// Layout of the UNMAP parameter list (SBC-3 5.28.2).
const (
	unmapHeaderLen     = 8
	unmapDescriptorLen = 16
	unmapBDDLAt        = 2 // UNMAP BLOCK DESCRIPTOR DATA LENGTH, two bytes
)

// provisioning is what a logical unit reports about logical block
// provisioning.
type provisioning struct {
	// lbpme: the store can deallocate blocks (LBPME, LBPRZ, LBPU, LBPWS,
	// LBPWS10).
	lbpme bool
	// thin: PROVISIONING TYPE 010b, thin provisioned. Sparse files and
	// memory allocate space as they are written. For any other store
	// (a block device, which may or may not be thin itself) the type is
	// 000b, which SBC-4 reads as "not reported".
	thin bool
}

// provisioningOf describes lu's store, looking through wrappers
// (rod.Protect, the fault injector) to the store that holds the data.
// Provisioning management needs a command that deallocates, too: a table
// without UNMAP and WRITE SAME reports none.
func provisioningOf(lu *scsi.LU) provisioning {
	inner := backstore.Unwrap(lu.Store)
	_, canUnmap := inner.(backstore.Unmapper)
	t := lu.Table
	if !canUnmap || t.Find(opUnmap, 0) == nil && t.Find(opWriteSame10, 0) == nil && t.Find(opWriteSame16, 0) == nil {
		return provisioning{}
	}
	p := provisioning{lbpme: true}
	switch inner.(type) {
	case *backstore.File, *backstore.Memory:
		p.thin = true
	}
	return p
}

func unmapCommands() []scsi.CommandDesc {
	return []scsi.CommandDesc{
		{
			Name: "UNMAP", Opcode: opUnmap,
			// Byte 1 bit 0: ANCHOR, unsupported; byte 6: GROUP NUMBER;
			// bytes 7-8: PARAMETER LIST LENGTH.
			Usage: []byte{0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, groupNumber,
				0xFF, 0xFF, 0x00},
			Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium, Handler: unmap,
			NominalTimeout: nominalIO, RecommendedTimeout: recommendedIO,
		},
	}
}

// unmap serves UNMAP (SBC-3 5.28): every descriptor is checked before any
// block is deallocated, so a refused command changes nothing.
func unmap(cmd *scsi.Command) error {
	lu := cmd.LU()
	if !provisioningOf(lu).lbpme {
		// LBPU is zero for such a store: UNMAP is not supported there.
		return scsi.InvalidOpcode().WithReason("the store of %s cannot deallocate", lu.Identity.Name)
	}
	g := geometryOf(cmd)
	plen := int(binary.BigEndian.Uint16(cmd.CDB[7:]))
	p, err := cmd.TakeDataOut(plen)
	if err != nil {
		return err
	}
	ranges, s := parseUnmapList(p, g.blocks)
	if s != nil {
		return s
	}
	for _, r := range ranges {
		if err := zeroBlocks(cmd, g, r.LBA, r.Blocks, true); err != nil {
			return err
		}
	}
	return nil
}

// parseUnmapList decodes and checks an UNMAP parameter list for a logical
// unit of capacity blocks (SBC-3 5.28):
//
//   - a PARAMETER LIST LENGTH of zero transfers nothing and is not an
//     error; one shorter than the 8-byte header is PARAMETER LIST LENGTH
//     ERROR, and so is an UNMAP BLOCK DESCRIPTOR DATA LENGTH that claims
//     more descriptors than the list holds;
//   - an UNMAP BLOCK DESCRIPTOR DATA LENGTH that is not a multiple of 16
//     leaves an incomplete last descriptor, which is ignored; the UNMAP
//     DATA LENGTH is not needed to find the descriptors and is not
//     checked;
//   - more descriptors than the MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT, or
//     more blocks in all than the MAXIMUM UNMAP LBA COUNT, is INVALID
//     FIELD IN PARAMETER LIST; a descriptor reaching past the capacity is
//     LOGICAL BLOCK ADDRESS OUT OF RANGE. The descriptors are checked in
//     order, each for the count before its range, and the first problem
//     found is reported. A descriptor of zero blocks
//     unmaps nothing (its LBA is still range-checked); descriptors may
//     overlap.
//
// It returns the descriptors that name at least one block.
func parseUnmapList(p []byte, capacity uint64) ([]extent, *scsi.Sense) {
	if len(p) == 0 {
		return nil, nil
	}
	if len(p) < unmapHeaderLen {
		return nil, scsi.ParameterListLengthError().
			WithReason("UNMAP parameter list of %d bytes is shorter than its header", len(p))
	}
	bddl := int(binary.BigEndian.Uint16(p[unmapBDDLAt:]))
	if bddl > len(p)-unmapHeaderLen {
		return nil, scsi.ParameterListLengthError().
			WithReason("UNMAP BLOCK DESCRIPTOR DATA LENGTH %d exceeds the %d bytes after the header", bddl, len(p)-unmapHeaderLen)
	}
	n := bddl / unmapDescriptorLen
	if n > maxUnmapDescriptors {
		return nil, scsi.InvalidFieldInParameterList(unmapBDDLAt, -1).
			WithReason("%d UNMAP block descriptors, at most %d", n, maxUnmapDescriptors)
	}
	var ranges []extent
	var total uint64
	for i := range n {
		at := unmapHeaderLen + i*unmapDescriptorLen
		d := p[at : at+unmapDescriptorLen]
		e := extent{LBA: binary.BigEndian.Uint64(d), Blocks: uint64(binary.BigEndian.Uint32(d[8:])), LengthAt: at + 8}
		total += e.Blocks // at most 2^8 descriptors of 2^32 blocks: no overflow
		if total > maxUnmapLBACount {
			return nil, scsi.InvalidFieldInParameterList(e.LengthAt, -1).
				WithReason("UNMAP block descriptors name %d blocks or more, at most %d", total, maxUnmapLBACount)
		}
		if s := scsi.CheckRange(e.LBA, e.Blocks, capacity); s != nil {
			return nil, s.WithReason("UNMAP block descriptor %d: %s", i, s.Reason)
		}
		if e.Blocks > 0 {
			ranges = append(ranges, e)
		}
	}
	return ranges, nil
}

// zeroChunk bounds one backstore call of zeroBlocks, and so how long it
// holds one extent lock and how late it notices an abort.
const zeroChunk = 64 << 20

// zeroes is a read-only source of zeroes for stores that cannot zero a
// range themselves.
var zeroes [verifyChunk]byte

// zeroBlocks makes blocks [lba, lba+n) of the logical unit read as zeroes,
// a range already checked. With dealloc set it deallocates them where the
// store can ([backstore.Unmap]), otherwise, or where the store refuses, it
// zeroes them with [backstore.WriteZeroes], and failing that with writes.
// It works a chunk at a time, each under its own exclusive extent lock, so
// it never holds the whole range from other commands for long and stops
// between chunks when the task is aborted. With the write cache disabled
// the zeroes are on the medium before it returns, as a write's would be.
func zeroBlocks(cmd *scsi.Command, g geometry, lba, n uint64, dealloc bool) error {
	lu := cmd.LU()
	fua := !lu.WriteCacheEnabled()
	perChunk := uint64(zeroChunk / g.blockSize)
	unmapped := false
	for done := uint64(0); done < n; {
		if cmd.Context().Err() != nil {
			return scsi.TaskAborted()
		}
		k := min(perChunk, n-done)
		at := lba + done
		unlock, err := lu.LockExtent(cmd.Context(), at, k, scsi.ExtentExclusive)
		if err != nil {
			return scsi.TaskAborted()
		}
		u, err := zeroRange(lu.Store, g.offset(at), int64(g.bytes(k)), dealloc, fua)
		unlock()
		if err != nil {
			return scsi.WriteError(err, at)
		}
		unmapped = unmapped || u
		done += k
	}
	if unmapped && fua {
		// An unmap is durable after the next flush (backstore.Unmapper).
		if err := lu.Store.Sync(); err != nil {
			return scsi.SyncError(err)
		}
	}
	return nil
}

// zeroRange zeroes n bytes at off of s, deallocating them first if dealloc
// is set, and reports whether it did deallocate.
func zeroRange(s backstore.Store, off, n int64, dealloc, fua bool) (unmapped bool, err error) {
	if dealloc {
		err := backstore.Unmap(s, off, n)
		if !errors.Is(err, backstore.ErrNotSupported) {
			return err == nil, err
		}
	}
	err = backstore.WriteZeroes(s, off, n, fua)
	if !errors.Is(err, backstore.ErrNotSupported) {
		return false, err
	}
	for done := int64(0); done < n; {
		k := min(n-done, int64(len(zeroes)))
		if err := s.WriteAt(zeroes[:k], off+done, fua); err != nil {
			return false, err
		}
		done += k
	}
	return false, nil
}
