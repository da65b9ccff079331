// Package sbc implements the SCSI block commands of SBC-3 that odxtgt's
// direct-access logical units serve: READ and WRITE (6, 10, 12, 16), VERIFY
// and WRITE AND VERIFY (10, 12, 16), READ CAPACITY (10, 16), SYNCHRONIZE
// CACHE (10, 16), PRE-FETCH (10, 16), START STOP UNIT, COMPARE AND WRITE,
// WRITE SAME (10, 16), UNMAP, GET LBA STATUS and ORWRITE (16), with the
// logical block provisioning of SBC-3 4.7 (thin provisioning on stores that
// can deallocate; see provisioningOf).
//
// [Commands] returns their descriptors for a [scsi.Table]. Each descriptor's
// usage mask lists exactly the CDB bits these handlers honour, so the
// dispatcher refuses everything else (RDPROTECT, WRPROTECT and VRPROTECT,
// since odxtgt has no protection information; reserved bits; NACA and LINK)
// with ILLEGAL REQUEST, INVALID FIELD IN CDB before a handler runs.
//
// # Order of checks
//
// Every handler that addresses logical blocks checks, in this order and
// before any data moves:
//
//  1. CDB fields the usage mask cannot express (BYTCHK values, a transfer
//     length above the MAXIMUM TRANSFER LENGTH of the Block Limits VPD page,
//     which is [scsi.MaxTransferBytes] in blocks: INVALID FIELD IN CDB with a
//     field pointer; SBC-3 6.5.3);
//  2. the range: the LOGICAL BLOCK ADDRESS plus the length must not exceed
//     the capacity, computed without overflow (LOGICAL BLOCK ADDRESS OUT OF
//     RANGE; SBC-3 4.5). A length of zero transfers nothing and is not an
//     error, but its LBA is still checked;
//  3. the data-out length the transport carried against what the CDB calls
//     for ([scsi.Command.TakeDataOutBlocks]): extra bytes are ignored, a
//     shortfall of whole blocks limits the command to the blocks carried,
//     a partial block is refused. COMPARE AND WRITE and WRITE SAME, whose
//     Data-Out Buffer the CDB fixes exactly (twice the blocks, one block),
//     refuse any other length, extra bytes included.
//
// Only then does a handler touch the backstore, so a refused command never
// writes a byte.
//
// # Durability
//
// A write is passed to the backstore with FUA when the CDB's FUA bit is set
// or the caching mode page's WCE bit is clear (SBC-3 6.4.5): GOOD then means
// the data is on the medium. WRITE AND VERIFY always writes through, since
// it verifies the medium. SYNCHRONIZE CACHE flushes the store, and so do
// VERIFY and a READ with FUA set before they read, as SBC-3 asks of a
// logical unit with a cache. GOOD is returned only after every backstore
// call the command depends on has returned without error.
//
// # Errors
//
// Backstore failures become sense data here, never HARDWARE ERROR: a failed
// read is MEDIUM ERROR, UNRECOVERED READ ERROR and a failed write MEDIUM
// ERROR, WRITE ERROR, both with the INFORMATION field set to the first LBA of
// the failed transfer (SBC-3 error reporting); a failed flush is MEDIUM
// ERROR, WRITE ERROR without INFORMATION, since the blocks are unknown; a
// write or flush that found no space (ENOSPC, EDQUOT, for example on a
// sparse file) is DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT
// (SBC-3 4.7.3.6).
package sbc
