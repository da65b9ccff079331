// Package rod is odxtgt's copy manager (SPC-4 5.17): it runs the copies
// that EXTENDED COPY asks for between logical units of one process,
// keeps their status per I_T nexus, logical unit and list identifier for
// RECEIVE COPY RESULTS, and aborts them when COPY OPERATION ABORT, a task
// management function or the loss of the nexus says so. The name is the
// standard's: a ROD, a representation of data, is what the copy manager
// moves.
//
// # Layers
//
//   - params.go decodes EXTENDED COPY (LID1) and (LID4) parameter lists
//     into [Params], with the exact sense data SPC-4 names for every bad
//     field; nothing past the parse keeps a reference to the data-out.
//   - limits.go is the one block of limits that RECEIVE COPY OPERATING
//     PARAMETERS, the Third-party Copy VPD page and the parser share.
//   - manager.go owns list state: [Manager.Begin] registers a list (an
//     active duplicate is OPERATION IN PROGRESS), the copy reports its
//     progress while it runs, and its final status stays readable as its
//     LIST ID USAGE says until read, replaced, timed out or lost with its
//     nexus.
//   - rod_cscd.go makes a ROD token, named by a ROD CSCD descriptor with
//     the token in the inline data, an EXTENDED COPY source: a read-only
//     block device over the data the token froze.
//   - copy.go executes segments through scsi.RunInternal, so every block
//     a copy writes goes through the destination's task set, write
//     protection and extent lock, and picks the fastest path the
//     backstores offer: clone, copy_file_range, then pooled buffers.
//     residue.go plans each block to block segment with the data the
//     one before left over, as the CAT and PAD bits say.
//
// # Invariants
//
//   - C1: a copy writes only blocks inside the destination ranges of its
//     segments; a failed copy reports how many segments and bytes
//     completed.
//   - C2: list state is bounded: at most [MaxConcurrentCopies] lists run,
//     and a nexus holds at most [maxHeldLists] completed ones.
//   - C3: a copy never holds an extent lock of one logical unit while
//     waiting for another one's, except through one RunInternal call,
//     which takes them in a fixed order.
package rod
