package rod

import "sync/atomic"

// CopyKind is what a copy operation does, for monitoring.
type CopyKind uint8

// Copy kinds, by the service action of the command that started the list.
const (
	KindExtendedCopy    CopyKind = iota // EXTENDED COPY (LID1 or LID4)
	KindPopulateToken                   // POPULATE TOKEN
	KindWriteUsingToken                 // WRITE USING TOKEN
	NumCopyKinds
)

var copyKindNames = [NumCopyKinds]string{"extended_copy", "populate_token", "write_using_token"}

func (k CopyKind) String() string { return copyKindNames[k%NumCopyKinds] }

// kindOf maps the service action of a THIRD-PARTY COPY OUT command to
// its kind (SPC-4 table 60).
func kindOf(sa byte) CopyKind {
	switch sa {
	case 0x10:
		return KindPopulateToken
	case 0x11:
		return KindWriteUsingToken
	}
	return KindExtendedCopy
}

// CopyResult is how a copy operation ended.
type CopyResult uint8

// Copy results.
const (
	ResultGood    CopyResult = iota // GOOD
	ResultFailed                    // CHECK CONDITION
	ResultAborted                   // COPY OPERATION ABORT, a task management function or the loss of the nexus
	NumCopyResults
)

var copyResultNames = [NumCopyResults]string{"good", "failed", "aborted"}

func (r CopyResult) String() string { return copyResultNames[r%NumCopyResults] }

// CopyPath is the data path that moved a copy's bytes.
type CopyPath uint8

// Copy paths, in the order the segment engine tries them.
const (
	PathClone         CopyPath = iota // FICLONERANGE: blocks shared
	PathCopyFileRange                 // copy_file_range: the kernel moved them
	PathBuffered                      // read into pooled buffers, then written
	NumCopyPaths
)

var copyPathNames = [NumCopyPaths]string{"clone", "copy_file_range", "buffered"}

func (p CopyPath) String() string { return copyPathNames[p%NumCopyPaths] }

// Stats is a snapshot of a copy manager's counters.
type Stats struct {
	// Running counts the lists begun and not finished.
	Running int
	// Finished counts the lists ended, by kind and result.
	Finished [NumCopyKinds][NumCopyResults]uint64
	// Bytes counts the bytes EXTENDED COPY and WRITE USING TOKEN wrote,
	// by the path that moved them.
	Bytes [NumCopyPaths]uint64
	// Tokens counts the live ROD tokens.
	Tokens int
	// SnapshotSpaceUsed and SnapshotSpaceLimit are the bytes all
	// point-in-time snapshots preserve and the most they may.
	SnapshotSpaceUsed, SnapshotSpaceLimit int64
}

// counters are the Manager's monitoring counters.
type counters struct {
	finished [NumCopyKinds][NumCopyResults]atomic.Uint64
	bytes    [NumCopyPaths]atomic.Uint64
}

// addPaths adds a copy's per-path byte counts.
func (c *counters) addPaths(p *pathCounts) {
	c.bytes[PathClone].Add(p.clone)
	c.bytes[PathCopyFileRange].Add(p.copyRange)
	c.bytes[PathBuffered].Add(p.buffered)
}

// Stats returns a snapshot of the copy manager's counters.
func (m *Manager) Stats() Stats {
	var s Stats
	for k := range s.Finished {
		for r := range s.Finished[k] {
			s.Finished[k][r] = m.counters.finished[k][r].Load()
		}
	}
	for p := range s.Bytes {
		s.Bytes[p] = m.counters.bytes[p].Load()
	}
	m.mu.Lock()
	s.Running = m.running
	m.mu.Unlock()
	s.Tokens = m.tok.count()
	s.SnapshotSpaceUsed = m.tok.space.Used()
	s.SnapshotSpaceLimit = m.tcfg.SnapshotSpace
	return s
}

// SnapshotBytes returns the bytes the live snapshots of the store hold
// for ROD tokens, as charged to the snapshot space.
func (p *Protected) SnapshotBytes() int64 {
	var n int64
	for _, s := range *p.snaps.Load() {
		s.mu.Lock()
		n += s.charged
		s.mu.Unlock()
	}
	return n
}
