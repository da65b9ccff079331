package rod

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/odxtgt/odxtgt/backstore"
)

// Point-in-time snapshots keep the data a ROD token represents as it was
// when POPULATE TOKEN completed (see PIT-1 in doc.go). A snapshot holds, in
// a sink store at the same byte offsets as the source, every granule of
// the token's ranges that has changed since: either cloned into the sink
// when the token was made (a reflink, on file systems that have them) or
// preserved by the first write that reaches it (copy-on-write, through
// the Protected wrapper every logical unit's store is given). Reading the
// token's data takes each granule from the sink when it is there and from
// the live source otherwise.

// Protected wraps a logical unit's store so that live point-in-time
// snapshots stay true: every write, whatever path it takes (WRITE, WRITE
// SAME, UNMAP, EXTENDED COPY, WRITE USING TOKEN, a clone or a
// copy_file_range into the store), first preserves the granules of the
// range that a snapshot still needs. Preservation never fails a write: a
// snapshot that cannot keep its data is revoked instead (PIT-2). Reads and
// the store's other methods pass straight through.
//
// Callers hold the logical unit's extent lock over every write, as
// scsi.LU requires; Protected relies on it: a snapshot reading a range
// under the shared lock sees no write in progress there.
type Protected struct {
	inner backstore.Store
	mu    sync.Mutex                  // serializes changes of snaps
	snaps atomic.Pointer[[]*snapshot] // live snapshots of this store, copy on write
}

// Protect wraps s.
func Protect(s backstore.Store) *Protected {
	p := &Protected{inner: s}
	p.snaps.Store(&[]*snapshot{})
	return p
}

// Unwrap returns the protected store (backstore.Wrapper).
func (p *Protected) Unwrap() backstore.Store { return p.inner }

// ReadAt implements backstore.Store.
func (p *Protected) ReadAt(b []byte, off int64) error { return p.inner.ReadAt(b, off) }

// WriteAt implements backstore.Store.
func (p *Protected) WriteAt(b []byte, off int64, fua bool) error {
	p.preserve(off, int64(len(b)))
	return p.inner.WriteAt(b, off, fua)
}

// Sync implements backstore.Store.
func (p *Protected) Sync() error { return p.inner.Sync() }

// Size implements backstore.Store.
func (p *Protected) Size() int64 { return p.inner.Size() }

// BlockSize implements backstore.Store.
func (p *Protected) BlockSize() int { return p.inner.BlockSize() }

// PhysicalBlockSize implements backstore.PhysicalBlockSizer.
func (p *Protected) PhysicalBlockSize() int { return backstore.PhysicalBlockSize(p.inner) }

// Close implements backstore.Store.
func (p *Protected) Close() error { return p.inner.Close() }

// CloneRange implements backstore.RangeCloner.
func (p *Protected) CloneRange(dstOff int64, src backstore.Store, srcOff, n int64, fua bool) error {
	if p.CloneAlignment() > 0 {
		p.preserve(dstOff, n)
	}
	return backstore.CloneRange(p.inner, dstOff, src, srcOff, n, fua)
}

// CloneAlignment implements backstore.RangeCloner.
func (p *Protected) CloneAlignment() int {
	if c, ok := p.inner.(backstore.RangeCloner); ok {
		return c.CloneAlignment()
	}
	return 0
}

// CopyRange implements backstore.RangeCopier.
func (p *Protected) CopyRange(dstOff int64, src backstore.Store, srcOff, n int64, fua bool) error {
	if _, ok := p.inner.(backstore.RangeCopier); ok {
		p.preserve(dstOff, n)
	}
	return backstore.CopyRange(p.inner, dstOff, src, srcOff, n, fua)
}

// WriteZeroes implements backstore.ZeroWriter.
func (p *Protected) WriteZeroes(off, n int64, fua bool) error {
	if _, ok := p.inner.(backstore.ZeroWriter); ok {
		p.preserve(off, n)
	}
	return backstore.WriteZeroes(p.inner, off, n, fua)
}

// Unmap implements backstore.Unmapper.
func (p *Protected) Unmap(off, n int64) error {
	if _, ok := p.inner.(backstore.Unmapper); ok {
		p.preserve(off, n)
	}
	return backstore.Unmap(p.inner, off, n)
}

// Allocated implements backstore.AllocationReporter.
func (p *Protected) Allocated(off int64) (bool, int64, error) {
	return backstore.Allocated(p.inner, off)
}

// preserve keeps, in every live snapshot, the old data of the granules of
// [off, off+n) it still needs.
func (p *Protected) preserve(off, n int64) {
	for _, s := range *p.snaps.Load() {
		s.preserve(off, n)
	}
}

// attach makes s a live snapshot of p.
func (p *Protected) attach(s *snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := append(slices.Clone(*p.snaps.Load()), s)
	p.snaps.Store(&list)
}

// detach stops copy-on-write for s.
func (p *Protected) detach(s *snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := slices.DeleteFunc(slices.Clone(*p.snaps.Load()), func(x *snapshot) bool { return x == s })
	p.snaps.Store(&list)
}

// byteRange is a range of a store in bytes.
type byteRange struct{ off, n int64 }

func (r byteRange) end() int64 { return r.off + r.n }

// space is the snapshot space every snapshot of a process shares.
type space struct {
	mu          sync.Mutex
	used, limit int64
}

func (s *space) take(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used+n > s.limit {
		return false
	}
	s.used += n
	return true
}

func (s *space) give(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used -= n
}

// Used returns the bytes of preserved data held by live snapshots.
func (s *space) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// errSnapshotRevoked reports that a snapshot lost data it needed.
var errSnapshotRevoked = errors.New("snapshot revoked: its data could not be preserved")

// snapshot is the point-in-time copy of some ranges of one store.
type snapshot struct {
	prot     *Protected
	src      backstore.Store // the live data (prot's inner store)
	sink     backstore.Store // preserved data, at the source's offsets
	sinkPath string          // file to remove with the snapshot, if any
	granule  int64
	ranges   []byteRange // sorted, disjoint
	// vulnerable (ROD type change vulnerable): a write to the ranges
	// revokes the token instead of being preserved.
	vulnerable bool
	space      *space
	onRevoke   func() // called once, without mu held, when data is lost

	mu        sync.Mutex
	preserved granuleSet // granules held in the sink
	charged   int64      // bytes taken from space
	revoked   bool
	closed    bool
}

// snapshotGranule is the unit of copy-on-write: a write of one block
// preserves at most one granule.
const snapshotGranule = 4096

// newSnapshot makes a point-in-time snapshot of ranges of prot's store,
// sinking preserved data into sink (a store of the same size); a
// vulnerable one is revoked by the first write to them instead. The caller
// holds the extent lock over the ranges, shared, so no write is in
// progress: ranges it can clone are cloned at once, the rest is protected
// by copy-on-write from the moment newSnapshot returns.
func newSnapshot(prot *Protected, sink backstore.Store, sinkPath string, ranges []byteRange, vulnerable bool, sp *space, onRevoke func()) *snapshot {
	g := int64(max(snapshotGranule, prot.BlockSize()))
	ranges = slices.Clone(ranges)
	slices.SortFunc(ranges, func(a, b byteRange) int { return cmp.Compare(a.off, b.off) })
	s := &snapshot{
		prot: prot, src: prot.inner, sink: sink, sinkPath: sinkPath, granule: g,
		ranges: ranges, vulnerable: vulnerable, space: sp, onRevoke: onRevoke, preserved: granuleSet{},
	}
	if align := cloneAlignment(sink); !vulnerable && align > 0 && int64(align) <= g && g%int64(align) == 0 {
		for _, r := range ranges {
			first, last := r.off/g, (r.end()+g-1)/g
			start, end := first*g, min(last*g, s.src.Size())
			if end%int64(align) != 0 {
				end -= end % g // the partial last granule is left to copy-on-write
				last = end / g
			}
			if end <= start {
				continue
			}
			if backstore.CloneRange(sink, start, s.src, start, end-start, false) == nil {
				for i := first; i < last; i++ {
					s.preserved.add(i)
				}
			}
		}
	}
	prot.attach(s)
	return s
}

func cloneAlignment(s backstore.Store) int {
	if c, ok := s.(backstore.RangeCloner); ok {
		return c.CloneAlignment()
	}
	return 0
}

// covers reports whether granule i overlaps one of the snapshot's ranges.
func (s *snapshot) covers(i int64) bool {
	lo, hi := i*s.granule, (i+1)*s.granule
	k, _ := slices.BinarySearchFunc(s.ranges, lo, func(r byteRange, off int64) int {
		switch {
		case r.end() <= off:
			return -1
		case r.off > off:
			return 1
		}
		return 0
	})
	return k < len(s.ranges) && s.ranges[k].off < hi && lo < s.ranges[k].end()
}

// overlaps reports whether [off, off+n) touches one of the snapshot's
// ranges, byte for byte.
func (s *snapshot) overlaps(off, n int64) bool {
	for _, r := range s.ranges {
		if r.off < off+n && off < r.end() {
			return true
		}
	}
	return false
}

// preserve copies to the sink the granules of [off, off+n) the snapshot
// needs and does not hold yet. When that fails (no space left, an I/O
// error), the snapshot is revoked: its token can no longer promise the
// old data, and the write goes on.
func (s *snapshot) preserve(off, n int64) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	if s.revoked || s.closed {
		s.mu.Unlock()
		return
	}
	var failed error
	var buf []byte
	for i := off / s.granule; i*s.granule < off+n; i++ {
		if s.preserved.has(i) || !s.covers(i) {
			continue
		}
		if s.vulnerable {
			if s.overlaps(off, n) {
				failed = errors.New("a write reached the ranges of a change vulnerable token")
			}
			break
		}
		start := i * s.granule
		k := min(s.granule, s.src.Size()-start)
		if !s.space.take(k) {
			failed = fmt.Errorf("snapshot space exhausted (%d bytes in use)", s.space.Used())
			break
		}
		s.charged += k
		if buf == nil {
			buf = make([]byte, s.granule)
		}
		if err := s.src.ReadAt(buf[:k], start); err != nil {
			failed = err
			break
		}
		if err := s.sink.WriteAt(buf[:k], start, false); err != nil {
			failed = err
			break
		}
		s.preserved.add(i)
	}
	notify := failed != nil && !s.revoked
	if notify {
		s.revoked = true
	}
	s.mu.Unlock()
	if notify {
		s.prot.detach(s)
		s.onRevoke()
	}
}

// piece is a run of a snapshot's data in one store.
type piece struct {
	store  backstore.Store
	off, n int64
}

// pieces returns where the n bytes at off of the snapshot's point-in-time
// data are, in order. The caller holds the extent lock over the range,
// shared, so the answer stays true until it is released.
func (s *snapshot) pieces(off, n int64) ([]piece, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revoked {
		return nil, errSnapshotRevoked
	}
	var out []piece
	for pos := off; pos < off+n; {
		i := pos / s.granule
		k := min((i+1)*s.granule, off+n) - pos
		st := s.src
		if s.preserved.has(i) {
			st = s.sink
		}
		if last := len(out) - 1; last >= 0 && out[last].store == st && out[last].off+out[last].n == pos {
			out[last].n += k
		} else {
			out = append(out, piece{st, pos, k})
		}
		pos += k
	}
	return out, nil
}

// read fills p with the snapshot's data at off.
func (s *snapshot) read(p []byte, off int64) error {
	ps, err := s.pieces(off, int64(len(p)))
	if err != nil {
		return err
	}
	for _, x := range ps {
		if err := x.store.ReadAt(p[x.off-off:x.off-off+x.n], x.off); err != nil {
			return err
		}
	}
	return nil
}

// close ends the snapshot: copy-on-write stops and its space and sink are
// released, the sink file removed.
func (s *snapshot) close() { s.end(true) }

// release ends the snapshot of this process but keeps its sink file, for
// a persistent token the next process restores (persist.go).
func (s *snapshot) release() { s.end(false) }

func (s *snapshot) end(remove bool) {
	s.prot.detach(s)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.space.give(s.charged)
	s.charged = 0
	clear(s.preserved)
	_ = s.sink.Close()
	if remove && s.sinkPath != "" {
		_ = os.Remove(s.sinkPath)
	}
}

// granuleSet is a set of granule indexes, a bitmap allocated in chunks of
// granuleChunk granules as they are first added, so a snapshot of a large
// range that little is written to stays small.
type granuleSet map[int64]*[granuleChunk / 64]uint64

const granuleChunk = 4096

func (g granuleSet) add(i int64) {
	c := g[i/granuleChunk]
	if c == nil {
		c = new([granuleChunk / 64]uint64)
		g[i/granuleChunk] = c
	}
	c[i%granuleChunk/64] |= 1 << (i % 64)
}

func (g granuleSet) has(i int64) bool {
	c := g[i/granuleChunk]
	return c != nil && c[i%granuleChunk/64]&(1<<(i%64)) != 0
}

// memorySink holds the preserved data of a snapshot in memory, sparse: it
// grows by one granule for each granule preserved, never by the size of
// the store it stands beside. It cannot clone, so such snapshots are all
// copy-on-write, and everything they hold is charged to the snapshot
// space.
type memorySink struct {
	size      int64
	blockSize int
	granule   int64

	mu   sync.Mutex
	data map[int64][]byte // by granule index
}

func newMemorySink(size int64, blockSize int) *memorySink {
	return &memorySink{size: size, blockSize: blockSize, granule: int64(max(snapshotGranule, blockSize)), data: map[int64][]byte{}}
}

func (m *memorySink) ReadAt(p []byte, off int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for done := int64(0); done < int64(len(p)); {
		i, at := (off+done)/m.granule, (off+done)%m.granule
		k := min(m.granule-at, int64(len(p))-done)
		if g := m.data[i]; g != nil {
			copy(p[done:done+k], g[at:at+k])
		} else {
			clear(p[done : done+k])
		}
		done += k
	}
	return nil
}

func (m *memorySink) WriteAt(p []byte, off int64, _ bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for done := int64(0); done < int64(len(p)); {
		i, at := (off+done)/m.granule, (off+done)%m.granule
		k := min(m.granule-at, int64(len(p))-done)
		g := m.data[i]
		if g == nil {
			g = make([]byte, m.granule)
			m.data[i] = g
		}
		copy(g[at:at+k], p[done:done+k])
		done += k
	}
	return nil
}

func (m *memorySink) Sync() error    { return nil }
func (m *memorySink) Size() int64    { return m.size }
func (m *memorySink) BlockSize() int { return m.blockSize }
func (m *memorySink) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.data)
	return nil
}
