// Package backstore provides the storage that logical units are built on: a
// flat, byte-addressed range of a fixed size with a logical block size, and
// the durability controls SCSI needs (FUA and SYNCHRONIZE CACHE).
//
// # Implementations
//
//   - [File] serves a regular file (created sparse if missing).
//   - [Block] serves a raw block device, optionally with O_DIRECT.
//   - [Memory] is an in-memory reference model that also models what a power
//     loss would leave behind ([Memory.Crash]); it is used by tests.
//   - [Fault] wraps any [Store] and injects errors, so callers can test their
//     MEDIUM ERROR paths.
//
// # Concurrency
//
// ReadAt, WriteAt and Sync may be called concurrently from any number of
// goroutines, on any mix of ranges. Size, BlockSize and PhysicalBlockSize
// never change after a store is opened and may be called at any time. Close
// must be called once, after the store's users are done; calls made after
// Close fail with an error matching [ErrClosed].
//
// Concurrent writes to overlapping byte ranges complete in an unspecified
// order (just as a disk would), but writes to disjoint byte ranges never
// disturb each other, even when they share a block. A read that overlaps a
// concurrent write may see old or new data for the bytes in the overlap.
//
// # Durability
//
// WriteAt returns once the data is visible to later reads; it may still be in
// a volatile cache. The data of a WriteAt call made with fua=true is durable
// on the medium when the call returns (the FUA bit of the SBC-3 WRITE commands).
// When Sync returns without error, every write acknowledged before Sync was
// called is durable (SYNCHRONIZE CACHE). Nothing else is promised: data
// written without FUA and not yet synchronised may or may not survive a crash.
//
// # Optional capabilities
//
// Beyond [Store], a store may offer ways to move, zero and deallocate data
// without the caller's buffers, each an interface found by type assertion,
// like [PhysicalBlockSizer]:
//
//   - [RangeCloner]: share another store's blocks (a reflink; File on XFS
//     or Btrfs, with FICLONERANGE), aligned to CloneAlignment.
//   - [RangeCopier]: copy from another store inside the kernel (File, with
//     copy_file_range).
//   - [ZeroWriter]: zero a range (File with fallocate, Block with
//     BLKZEROOUT).
//   - [Unmapper]: deallocate a range, which then reads as zeroes (File by
//     punching a hole, Block with a WRITE ZEROES that may unmap).
//   - [AllocationReporter]: tell allocated blocks from deallocated ones
//     (File with SEEK_DATA and SEEK_HOLE; Block reports all mapped).
//
// [Memory] implements all of them as the reference model, copying between
// Memory stores; [Fault] forwards all of them and can fail each
// ([OpCopy], [OpClone], [OpZero], [OpUnmap], [OpAllocated]). The helper
// functions [CloneRange], [CopyRange], [WriteZeroes], [Unmap] and
// [Allocated] do the type assertion. [SameFilesystem] tells whether two
// stores are files on one file system, where cloning and fast copies work.
//
// Having the method is not a promise: a request the store cannot serve
// (two file systems, misaligned clone ranges, overlapping ranges of one
// store, a medium that cannot deallocate) fails with an error matching
// [ErrNotSupported] and changes nothing, and the caller falls back to
// ReadAt and WriteAt. The capabilities follow the concurrency rules above,
// each behaving like a write of its destination range and, for copies and
// clones, a read of its source range; ranges are checked like WriteAt's,
// and a zero length does nothing. Their durability is that of WriteAt:
// with fua=true (or after the next Sync) the change is durable; an Unmap is
// durable after the next Sync. Other errors from a copy may leave part of
// the destination written.
//
// # Errors
//
// Every error returned by an I/O method (capabilities included) of File,
// Block or Memory is an [*OpError] naming the operation, the store's path,
// the byte offset and the length, and wrapping the cause, so callers can
// still reach a [syscall.Errno] (for example syscall.EIO, a MEDIUM ERROR)
// with errors.Is or errors.As. [Fault] returns the errors it injects
// exactly as given. Callers validate ranges before calling;
// [ErrOutOfRange] is only a backstop.
package backstore
