package rod

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/internal/durable"
	"github.com/odxtgt/odxtgt/scsi"
)

// Persistent tokens. With a token key (TokenConfig.Key) the authenticator
// outlives the process, and so can a token whose data needs nothing the
// process keeps in memory: an access upon reference token, which reads
// its source when used, or a point-in-time token whose snapshot file is a
// clone of all its ranges (a file system with reflinks), which needs no
// copy-on-write. Such a token is described in a record file beside its
// snapshot, written and synced, with the snapshot, before POPULATE TOKEN
// completes, and removed when the token ends; RestoreTokens brings it
// back when the process starts again, kill -9 included. A token whose
// snapshot relies on copy-on-write ends with the process, as without a
// key: which granules it preserved is not kept durably. Nothing may write
// the backstore while odxtgt is down, or the restored tokens of access
// upon reference type see those writes, as they would see a host's.

// tokenRecordSuffix names token record files.
const tokenRecordSuffix = ".odxtgt-token"

// tokenRecord is the content of a token record file.
type tokenRecord struct {
	// Token is the 512-byte token, authenticated under the key.
	Token []byte `json:"token"`
	// LU and Serial identify the logical unit it was made from: its
	// backstore name and unit serial number.
	LU     string `json:"lu"`
	Serial string `json:"serial"`
	// Ranges are its source ranges, as LBA and block count pairs.
	Ranges    [][2]uint64 `json:"ranges"`
	Timeout   int64       `json:"timeout_seconds"`
	Creator   string      `json:"creator"`
	Target    string      `json:"target"`
	Initiator string      `json:"initiator"`
	// Snapshot is the file name of its snapshot in the same directory;
	// empty for access upon reference.
	Snapshot string `json:"snapshot,omitempty"`
	// MAC authenticates the rest of the record under the key, so the
	// ranges a token reads cannot be changed behind it.
	MAC []byte `json:"mac"`
}

// recordMAC is the authenticator of rec without its MAC.
func (t *tokens) recordMAC(rec tokenRecord) []byte {
	rec.MAC = nil
	b, _ := json.Marshal(rec) // a struct of plain fields always encodes
	h := hmac.New(sha256.New, t.key)
	h.Write(b)
	return h.Sum(nil)
}

// persist writes the record of tok, just made, if tok can outlive the
// process. A token that cannot be recorded stays valid for this process.
func (m *Manager) persist(tok *Token) {
	dir := m.snapshotDir(tok.lu)
	if len(m.tcfg.Key) == 0 || dir == "" {
		return
	}
	rec := tokenRecord{Token: tok.raw[:], LU: tok.lu.Identity.Name, Serial: tok.lu.Identity.Serial,
		Timeout: int64(tok.timeout / time.Second), Creator: tok.creator, Target: tok.target, Initiator: tok.initiator}
	for _, r := range tok.ranges {
		rec.Ranges = append(rec.Ranges, [2]uint64{r.lba, r.blocks})
	}
	switch {
	case tok.rodType == RODTypeAccessUponReference:
	case tok.snap != nil && tok.snap.sinkPath != "" && tok.snap.cloned():
		if err := tok.snap.sink.Sync(); err != nil {
			m.log.Warn("ROD token not kept across restarts: cannot sync its snapshot", "token", tok.id, "err", err)
			return
		}
		rec.Snapshot = filepath.Base(tok.snap.sinkPath)
	default:
		return // copy-on-write, or change vulnerable
	}
	path := filepath.Join(dir, strings.TrimSuffix(rec.Snapshot, snapshotSuffix))
	if rec.Snapshot == "" {
		path = filepath.Join(dir, fmt.Sprintf("%016x", tok.id))
	}
	path += tokenRecordSuffix
	rec.MAC = m.tok.recordMAC(rec)
	b, err := json.Marshal(rec)
	if err == nil {
		err = durable.WriteFile(path, b)
	}
	if err != nil {
		m.log.Warn("ROD token not kept across restarts", "token", tok.id, "err", err)
		return
	}
	m.tok.setRecord(tok, path)
}

// setRecord gives tok its record file, written at path, unless tok has
// ended meanwhile (a host that found it with REPORT ALL ROD TOKENS
// deleted it, the reaper, a reload): it was freed without the record,
// which is removed now, or the next process would restore it.
func (t *tokens) setRecord(tok *Token, path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tok.state != tokenLive {
		_ = os.Remove(path)
		return
	}
	tok.record = path
}

// cloned reports whether every granule of the snapshot's ranges was
// cloned when it was taken, so it needs no copy-on-write.
func (s *snapshot) cloned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.ranges {
		for i := r.off / s.granule; i*s.granule < r.end(); i++ {
			if !s.preserved.has(i) {
				return false
			}
		}
	}
	return true
}

// RestoreTokens brings back the persistent tokens recorded in dir for the
// logical units lus (those whose snapshots dir holds), and removes every
// other snapshot and record file there: a record that does not verify
// under the key, names no logical unit of lus, or whose snapshot is gone
// or the wrong size is stale. It returns how many tokens it restored and
// how many files it removed. Without a key it only removes.
func (m *Manager) RestoreTokens(dir string, lus []*scsi.LU) (restored, removed int, err error) {
	keep := map[string]bool{}
	records, err := filesNamed(dir, tokenRecordSuffix)
	if err != nil {
		return 0, 0, err
	}
	for _, path := range records {
		if len(m.tcfg.Key) == 0 {
			break
		}
		tok, err := m.restore(path, lus)
		if err != nil {
			m.log.Warn("ROD token record not restored", "file", path, "err", err)
			continue
		}
		keep[path] = true
		if tok.snap != nil {
			keep[tok.snap.sinkPath] = true
		}
		restored++
	}
	snaps, err := filesNamed(dir, snapshotSuffix)
	if err != nil {
		return restored, 0, err
	}
	// A record a process was writing when it died.
	partial, err := durable.Temps(dir, func(name string) bool { return strings.HasSuffix(name, tokenRecordSuffix) })
	if err != nil {
		return restored, 0, err
	}
	for _, path := range slices.Concat(records, snaps, partial) {
		if keep[path] {
			continue
		}
		if err := os.Remove(path); err != nil {
			return restored, removed, err
		}
		removed++
	}
	if restored > 0 {
		m.startReaper()
	}
	return restored, removed, nil
}

// filesNamed returns the paths of the files of dir whose names end in
// suffix; none if dir does not exist. (filepath.Glob would take the
// directory's own name as a pattern: "vm[1]" would match "vm1".)
func filesNamed(dir, suffix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), suffix) && e.Type().IsRegular() {
			paths = append(paths, filepath.Join(dir, e.Name()))
		}
	}
	return paths, nil
}

// restore reads one token record and makes its token live again.
func (m *Manager) restore(path string, lus []*scsi.LU) (*Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec tokenRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	if !hmac.Equal(rec.MAC, m.tok.recordMAC(rec)) {
		return nil, errors.New("the record does not verify under the key")
	}
	if len(rec.Token) != TokenLength {
		return nil, fmt.Errorf("token of %d bytes", len(rec.Token))
	}
	tok := &Token{creator: rec.Creator, target: rec.Target, initiator: rec.Initiator,
		timeout: time.Duration(rec.Timeout) * time.Second}
	copy(tok.raw[:], rec.Token)
	if mac := m.tok.mac(&tok.raw); !hmac.Equal(mac[:], tok.raw[tokOffMAC:]) {
		return nil, errors.New("the token does not verify under the key")
	}
	tok.rodType = binary.BigEndian.Uint32(tok.raw[:])
	tok.id = binary.BigEndian.Uint64(tok.raw[tokOffID:])
	tok.bytes = int64(binary.BigEndian.Uint64(tok.raw[tokOffBytes+8:]))
	i := slices.IndexFunc(lus, func(lu *scsi.LU) bool { return lu.Identity.Name == rec.LU && lu.Identity.Serial == rec.Serial })
	if i < 0 {
		return nil, fmt.Errorf("no logical unit %s with serial %q", rec.LU, rec.Serial)
	}
	tok.lu = lus[i]
	bs := int64(tok.lu.Store.BlockSize())
	var total int64
	var ranges []byteRange
	for _, r := range rec.Ranges {
		if r[1] == 0 || r[0] > tok.lu.Blocks() || r[1] > tok.lu.Blocks()-r[0] {
			return nil, fmt.Errorf("range %d+%d outside the logical unit", r[0], r[1])
		}
		tok.ranges = append(tok.ranges, blockRange{r[0], r[1]})
		ranges = append(ranges, byteRange{int64(r[0]) * bs, int64(r[1]) * bs})
		total += int64(r[1]) * bs
	}
	if total != tok.bytes || tok.timeout <= 0 {
		return nil, fmt.Errorf("ranges of %d bytes for a token of %d, timeout %v", total, tok.bytes, tok.timeout)
	}
	// A configuration changed since may allow less now.
	tok.timeout = min(tok.timeout, m.tcfg.MaxTimeout)
	switch tok.rodType {
	case RODTypeAccessUponReference:
	case RODTypePointInTime:
		prot, ok := tok.lu.Store.(*Protected)
		if !ok || rec.Snapshot == "" || filepath.Base(rec.Snapshot) != rec.Snapshot {
			return nil, fmt.Errorf("point-in-time token without its snapshot (%q)", rec.Snapshot)
		}
		sinkPath := filepath.Join(filepath.Dir(path), rec.Snapshot)
		// Lstat: a symbolic link put there is not followed.
		if fi, err := os.Lstat(sinkPath); err != nil || !fi.Mode().IsRegular() || fi.Size() != prot.Size() {
			return nil, fmt.Errorf("snapshot %s missing, not a regular file or not %d bytes", sinkPath, prot.Size())
		}
		sink, err := backstore.OpenFile(sinkPath, prot.Size(), prot.BlockSize(), backstore.FileOptions{})
		if err != nil {
			return nil, err
		}
		tok.snap = restoredSnapshot(prot, sink, sinkPath, ranges, m.tok.space, func() { m.revoked(tok) })
	default:
		return nil, fmt.Errorf("ROD type %08xh is not kept across restarts", tok.rodType)
	}
	tok.record = path
	if !m.tok.restore(tok, m.now(), m.tcfg.MaxTokens) {
		if tok.snap != nil {
			tok.snap.release()
		}
		return nil, fmt.Errorf("token %d is live already, or %d tokens are (tokens.max_tokens)", tok.id, m.tcfg.MaxTokens)
	}
	m.log.Info("ROD token restored", "token", tok.id, "lu", tok.lu.Identity.Name, "bytes", tok.bytes)
	return tok, nil
}

// restoredSnapshot is the snapshot of a persistent token: its sink holds
// every granule of the ranges, so nothing is preserved any more.
func restoredSnapshot(prot *Protected, sink backstore.Store, sinkPath string, ranges []byteRange, sp *space, onRevoke func()) *snapshot {
	g := int64(max(snapshotGranule, prot.BlockSize()))
	s := &snapshot{
		prot: prot, src: prot.inner, sink: sink, sinkPath: sinkPath, granule: g,
		ranges: slices.Clone(ranges), space: sp, onRevoke: onRevoke, preserved: granuleSet{},
	}
	slices.SortFunc(s.ranges, func(a, b byteRange) int { return cmp.Compare(a.off, b.off) })
	for _, r := range s.ranges {
		for i := r.off / g; i*g < r.end(); i++ {
			s.preserved.add(i)
		}
	}
	prot.attach(s)
	return s
}

// restore makes a restored token live under its own identifier, with a
// fresh inactivity timer; identifiers handed out later are above it. It
// reports false if the identifier is taken.
func (t *tokens) restore(tok *Token, now time.Time, limit int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.live[tok.id] != nil || len(t.live)+t.pending >= limit {
		return false
	}
	tok.lastUsed = now
	t.live[tok.id] = tok
	t.next = max(t.next, tok.id)
	return true
}

// releasePersistent lets go of the persistent tokens at the end of the
// process: their files stay for the next one.
func (t *tokens) releasePersistent() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, tok := range t.live {
		if tok.snap != nil {
			tok.snap.release()
		}
		delete(t.live, id)
	}
}
