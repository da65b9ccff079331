package scsi

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Nexus is an I_T nexus: one initiator port logged in to one target port,
// and the logical units that nexus may see (SAM-5 4.7). The transport makes
// one per session; its exported fields do not change afterwards, while the
// logical units it sees may change with SetLUs when the configuration is
// reloaded.
type Nexus struct {
	// InitiatorName is the initiator's iSCSI name; InitiatorPort the SCSI
	// initiator port name (for iSCSI "<name>,i,0x<ISID>", RFC 7143 10.1).
	InitiatorName string
	InitiatorPort string
	// TargetName is the target's iSCSI name; TargetPort the SCSI target
	// port name ("<name>,t,0x<TPGT>").
	TargetName string
	TargetPort string
	// TPGT is the target portal group tag, RelativePortID the relative
	// target port identifier reported in VPD page 83h.
	TPGT           uint16
	RelativePortID uint16

	key    string
	absent *LU
	view   *atomic.Pointer[nexusView] // shared by copies of the Nexus value
	ended  *atomic.Bool               // set by End; shared by copies of the Nexus value
	former *formerLUs                 // shared by copies of the Nexus value
}

// formerLUs are the logical units a nexus no longer sees (SetLUs) on
// which it may still have tasks: they are its tasks all the same, so
// aborting all of them and ending the nexus reach them too.
type formerLUs struct {
	mu  sync.Mutex
	lus []*LU
}

// add records the logical units of removed and forgets, from those kept
// before, the ones the nexus sees again (in view) or has no task on.
func (f *formerLUs) add(key string, removed []*LU, view []*LU) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lus = slices.DeleteFunc(f.lus, func(lu *LU) bool { return slices.Contains(view, lu) || !lu.hasTasksOf(key) })
	for _, lu := range removed {
		if !slices.Contains(f.lus, lu) {
			f.lus = append(f.lus, lu)
		}
	}
}

func (f *formerLUs) list() []*LU {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lus)
}

// nexusView is the logical unit inventory of a nexus, replaced whole.
type nexusView struct {
	lus      map[uint64]*LU
	luns     []uint64
	distinct []*LU // every logical unit of lus once, then absent
}

func newNexusView(lus map[uint64]*LU, absent *LU) *nexusView {
	v := &nexusView{lus: lus, luns: make([]uint64, 0, len(lus))}
	for lun := range lus {
		v.luns = append(v.luns, lun)
	}
	slices.Sort(v.luns)
	for _, lun := range v.luns {
		if lu := lus[lun]; !slices.Contains(v.distinct, lu) {
			v.distinct = append(v.distinct, lu)
		}
	}
	if absent != nil {
		v.distinct = append(v.distinct, absent)
	}
	return v
}

// NewNexus returns a nexus that sees the given logical units by LUN.
// Commands to any other LUN go to absent, a logical unit created with
// NewAbsentLU that answers as SPC-4 requires for an unsupported LUN.
func NewNexus(n Nexus, lus map[uint64]*LU, absent *LU) *Nexus {
	n.key = n.InitiatorPort + "|" + n.TargetPort
	n.ended = new(atomic.Bool)
	n.absent = absent
	n.view = new(atomic.Pointer[nexusView])
	n.view.Store(newNexusView(lus, absent))
	n.former = &formerLUs{}
	return &n
}

// testHookSetLUs, set by tests, runs in SetLUs between its check that the
// nexus has not ended and the switch to the new view.
var testHookSetLUs func(*Nexus)

// SetLUs replaces the logical units the nexus sees and reports whether
// the LUN inventory changed. When it did, every logical unit the nexus now
// sees holds REPORTED LUNS DATA HAS CHANGED for it (SPC-4 6.33: the
// inventory changed by the creation or removal of a logical unit), and the
// logical units it no longer sees forget it, as if it had ended there:
// its pending unit attentions are dropped and NexusEvents hears of the
// loss, but tasks it has already started on them run to completion
// (unless aborted: AbortTasks and End still reach them).
// An ended nexus does not change.
func (n *Nexus) SetLUs(lus map[uint64]*LU) bool {
	old := n.view.Load()
	if n.Ended() || maps.Equal(old.lus, lus) {
		return false
	}
	v := newNexusView(lus, n.absent)
	if testHookSetLUs != nil {
		testHookSetLUs(n)
	}
	n.view.Store(v)
	for _, lu := range v.distinct {
		if lu.Present() {
			lu.mu.Lock()
			lu.queueUALocked(n.key, ASCReportedLUNsDataChanged)
			lu.mu.Unlock()
		}
	}
	var removed []*LU
	for _, lu := range old.distinct {
		if !slices.Contains(v.distinct, lu) {
			removed = append(removed, lu)
		}
	}
	// Recorded before the logical units forget the nexus: a task it
	// submits there meanwhile is found by AbortTasks and End.
	n.former.add(n.key, removed, v.distinct)
	for _, lu := range removed {
		lu.forgetNexus(n)
	}
	// End may have run meanwhile, through the old view: the unit
	// attentions queued above are for a nexus nobody will ever read them
	// for. End sets ended before it reads the view, so either it saw the
	// new one or this sees ended.
	if n.Ended() {
		for _, lu := range v.distinct {
			if lu.Present() {
				lu.forgetNexus(n)
			}
		}
	}
	return true
}

// Key identifies the nexus in per-nexus state (unit attentions, tasks):
// the initiator port and target port names together.
func (n *Nexus) Key() string { return n.key }

// LUNs returns the LUNs the nexus may see, in ascending order.
func (n *Nexus) LUNs() []uint64 { return n.view.Load().luns }

// LogicalUnits returns every logical unit the nexus may see, each once, in
// LUN order: the devices a copy manager may reach on its behalf.
func (n *Nexus) LogicalUnits() []*LU {
	d := n.view.Load().distinct
	if n.absent != nil {
		return d[:len(d)-1]
	}
	return d
}

// LU returns the logical unit at lun, or the absent logical unit.
func (n *Nexus) LU(lun uint64) *LU {
	if lu := n.view.Load().lus[lun]; lu != nil {
		return lu
	}
	return n.absent
}

// distinct returns every logical unit the nexus sees, then absent.
func (n *Nexus) distinct() []*LU { return n.view.Load().distinct }

// withTasks returns every logical unit the nexus may have tasks on: those
// it sees, absent, and those a reload took from it (formerLUs).
func (n *Nexus) withTasks() []*LU {
	d := n.distinct()
	if n.former == nil {
		return d
	}
	for _, lu := range n.former.list() {
		if !slices.Contains(d, lu) {
			d = append(slices.Clip(d), lu)
		}
	}
	return d
}

// MaxLUN is the largest LUN odxtgt addresses: the flat space addressing
// method covers 0-16383 (SAM-5 4.7.7.3).
const MaxLUN = 16383

// EncodeLUN encodes a single-level LUN in the 8-byte LUN format: peripheral
// device addressing below 256, flat space addressing above (SAM-5 4.7.7).
func EncodeLUN(lun uint64) [8]byte {
	var b [8]byte
	if lun < 256 {
		b[1] = byte(lun)
	} else {
		binary.BigEndian.PutUint16(b[:], 0x4000|uint16(lun&0x3FFF))
	}
	return b
}

// DecodeLUN decodes an 8-byte single-level LUN in peripheral or flat space
// addressing; other addressing methods and multi-level LUNs are errors.
func DecodeLUN(b [8]byte) (uint64, error) {
	if binary.BigEndian.Uint64(b[:])&0x0000FFFFFFFFFFFF != 0 {
		return 0, fmt.Errorf("LUN %x: only single-level LUNs are supported", b)
	}
	switch b[0] >> 6 {
	case 0: // peripheral device addressing, bus 0
		if b[0] != 0 {
			return 0, fmt.Errorf("LUN %x: bus identifier %d is not supported", b, b[0]&0x3F)
		}
		return uint64(b[1]), nil
	case 1: // flat space addressing
		return uint64(binary.BigEndian.Uint16(b[:]) & 0x3FFF), nil
	}
	return 0, fmt.Errorf("LUN %x: address method %d is not supported", b, b[0]>>6)
}
