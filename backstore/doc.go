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
// # Errors
//
// Every error returned by an I/O method of File, Block or Memory is an
// [*OpError] naming the operation, the store's path, the byte offset and the
// length, and wrapping the cause, so callers can still reach a
// [syscall.Errno] (for example syscall.EIO, a MEDIUM ERROR) with errors.Is
// or errors.As. [Fault] returns the errors it injects exactly as given.
// Callers validate ranges before calling; [ErrOutOfRange] is only a
// backstop.
package backstore
