package scsi

import (
	"context"
	"fmt"
)

// Command is one SCSI command on its way through a logical unit: the
// transport fills the request fields, the handler the reply fields.
type Command struct {
	// Request, set by the transport before Submit.
	CDB   []byte
	LUN   uint64
	Tag   uint64 // task tag (iSCSI ITT), unique per I_T nexus while active
	Attr  TaskAttr
	Nexus *Nexus
	// DataOut is the complete data-out buffer the initiator sent: exactly
	// the transport's expected data transfer length, possibly empty. It may
	// come from a pool: it is valid only until the command completes, so a
	// handler that hands work to another goroutine copies what it keeps.
	DataOut []byte
	// ExpectedIn is the transport's expected data-in length; handlers may
	// produce more (the transport truncates and reports overflow).
	ExpectedIn int
	// Alloc, if set, provides pooled data-in buffers; see AllocDataIn.
	Alloc func(n int) []byte

	// Reply, set while the command runs.
	Status Status
	Sense  []byte // encoded sense data when Status is CHECK CONDITION
	// DataIn is the data-in produced, already limited by the CDB's
	// allocation length. A buffer from AllocDataIn belongs to the
	// transport's pool and returns to it once the response is sent.
	DataIn []byte
	// DataOutLength is the SCSI data-out length the CDB calls for (SPDTL);
	// the transport compares it with what it expected to compute residuals.
	DataOutLength int
	// Aborted is set when a task management function or session loss ended
	// the command; the transport sends no response for it.
	Aborted bool

	ctx context.Context
	lu  *LU
}

// Context is cancelled when the task is aborted; long handlers watch it.
func (c *Command) Context() context.Context {
	if c.ctx == nil {
		return context.Background()
	}
	return c.ctx
}

// LU is the logical unit the command addresses.
func (c *Command) LU() *LU { return c.lu }

// AllocDataIn returns a data-in buffer of n bytes, pooled when the transport
// offers a pool, and records it as the command's data-in.
func (c *Command) AllocDataIn(n int) []byte {
	var b []byte
	if c.Alloc != nil {
		b = c.Alloc(n)[:n]
	} else {
		b = make([]byte, n)
	}
	c.DataIn = b
	return b
}

// SetDataIn records p as the data-in, truncated to the allocation length
// allocLen (SPC-4 4.2.5.6: the device server stops at the allocation length
// without error).
func (c *Command) SetDataIn(p []byte, allocLen int) {
	if len(p) > allocLen {
		p = p[:allocLen]
	}
	c.DataIn = p
}

// TakeDataOut records that the CDB calls for n bytes of data-out (the
// SPDTL) and returns them. When the transport carried more (its expected
// data transfer length exceeds n), the first n bytes are used and the
// transport reports the underflow; when it carried less, the command is
// refused with ILLEGAL REQUEST, INVALID FIELD IN COMMAND INFORMATION UNIT
// and nothing is transferred (FCP-4 9.4.2 options (a) and (b), which
// iSCSI targets follow too). Block commands use TakeDataOutBlocks instead.
func (c *Command) TakeDataOut(n int) ([]byte, error) {
	c.DataOutLength = n
	if len(c.DataOut) < n {
		return nil, NewSense(IllegalRequest, ASCInvalidFieldInCommandIU).
			WithReason("CDB calls for %d bytes of data-out, transport carried %d", n, len(c.DataOut))
	}
	return c.DataOut[:n], nil
}

// TakeDataOutBlocks is TakeDataOut for commands that transfer whole logical
// blocks of blockSize bytes. When the transport carried less than the n
// bytes the CDB calls for, the command is processed for the whole blocks
// that did arrive and the transport reports the overflow (FCP-4 9.4.2
// option (a): data beyond the expected length is neither requested nor
// written); a partial block is refused as TakeDataOut refuses, so no
// block is ever written in part. The handler must act on len(p) bytes.
func (c *Command) TakeDataOutBlocks(n, blockSize int) ([]byte, error) {
	if len(c.DataOut) < n && len(c.DataOut)%blockSize == 0 {
		c.DataOutLength = n
		return c.DataOut, nil
	}
	return c.TakeDataOut(n)
}

// Handler executes one command. It returns nil for GOOD, a *Sense for CHECK
// CONDITION, or another error, which the dispatcher reports as HARDWARE
// ERROR, INTERNAL TARGET FAILURE.
type Handler func(cmd *Command) error

// CommandFlags qualify how the dispatcher treats a command.
type CommandFlags uint8

// Command flags.
const (
	// FlagIgnoresUA: the command runs while a unit attention is pending
	// and does not clear it (INQUIRY, REPORT LUNS, REQUEST SENSE; SPC-4
	// 5.14 and SAM-5 5.14).
	FlagIgnoresUA CommandFlags = 1 << iota
	// FlagNoLU: the command is served for a LUN that has no logical unit.
	FlagNoLU
	// FlagWritesMedium: refused with DATA PROTECT on a read-only LU.
	FlagWritesMedium
)

// CommandDesc describes one supported command: its operation code and
// service action, CDB length and usage mask, timeouts and handler.
type CommandDesc struct {
	Name             string
	Opcode           byte
	ServiceAction    uint16
	HasServiceAction bool
	// Usage is the CDB USAGE DATA of REPORT SUPPORTED OPERATION CODES
	// (SPC-4 6.35.3): its length is the CDB length, byte 0 is the opcode,
	// and every bit set is one the device server examines. The dispatcher
	// refuses a CDB with a bit set outside the mask.
	Usage     []byte
	Direction Direction
	Flags     CommandFlags
	// NominalTimeout and RecommendedTimeout are in seconds (SPC-4 6.35.4).
	NominalTimeout, RecommendedTimeout uint32
	Handler                            Handler
}

// CDBLength is the length of the command's CDB.
func (d *CommandDesc) CDBLength() int { return len(d.Usage) }

// Table maps operation codes and service actions to command descriptors.
// It is built once and read concurrently.
type Table struct {
	byOpcode [256]*CommandDesc            // opcodes without service actions
	bySA     [256]map[uint16]*CommandDesc // opcodes with service actions
	all      []*CommandDesc
	vpd      [256]*VPDPage
	vpdCodes []byte // ascending
}

// NewTable builds a table from command sets. A duplicate opcode/service
// action pair, a VPD page registered twice or a malformed descriptor is an
// error.
func NewTable(sets ...CommandSet) (*Table, error) {
	t := &Table{}
	for _, set := range sets {
		for i := range set.VPDPages {
			if err := t.addVPD(&set.VPDPages[i]); err != nil {
				return nil, err
			}
		}
		for i := range set.Commands {
			d := &set.Commands[i]
			if len(d.Usage) < 6 || d.Usage[0] != 0xFF || d.Handler == nil {
				return nil, fmt.Errorf("command %q: needs a handler and a usage mask of at least 6 bytes starting with FFh", d.Name)
			}
			op := d.Opcode
			if d.HasServiceAction {
				if t.byOpcode[op] != nil {
					return nil, fmt.Errorf("command %q: opcode %02xh registered with and without service action", d.Name, op)
				}
				if t.bySA[op] == nil {
					t.bySA[op] = map[uint16]*CommandDesc{}
				}
				if t.bySA[op][d.ServiceAction] != nil {
					return nil, fmt.Errorf("command %q: duplicate %02xh/%02xh", d.Name, op, d.ServiceAction)
				}
				t.bySA[op][d.ServiceAction] = d
			} else {
				if t.byOpcode[op] != nil || t.bySA[op] != nil {
					return nil, fmt.Errorf("command %q: duplicate opcode %02xh", d.Name, op)
				}
				t.byOpcode[op] = d
			}
			t.all = append(t.all, d)
		}
	}
	return t, nil
}

// All returns every descriptor in registration order.
func (t *Table) All() []*CommandDesc { return t.all }

// HasServiceActions reports whether opcode is registered with service
// actions.
func (t *Table) HasServiceActions(opcode byte) bool { return t.bySA[opcode] != nil }

// Find returns the descriptor for opcode and, for opcodes with service
// actions, sa; nil if unsupported.
func (t *Table) Find(opcode byte, sa uint16) *CommandDesc {
	if m := t.bySA[opcode]; m != nil {
		return m[sa]
	}
	return t.byOpcode[opcode]
}

// ServiceActionOf returns the SERVICE ACTION field of a CDB whose opcode
// uses one: bytes 8-9 for variable-length CDBs (7Fh), otherwise byte 1
// bits 4-0 (SPC-4 4.2.2).
func ServiceActionOf(cdb []byte) (uint16, bool) {
	if len(cdb) == 0 {
		return 0, false
	}
	if cdb[0] == 0x7F {
		if len(cdb) < 10 {
			return 0, false
		}
		return uint16(cdb[8])<<8 | uint16(cdb[9]), true
	}
	if len(cdb) < 2 {
		return 0, false
	}
	return uint16(cdb[1] & 0x1F), true
}

// Lookup finds the descriptor for a CDB and checks the CDB against its usage
// mask. It returns the sense data the standard names when the opcode or
// service action is unsupported or a field carries a bit the device server
// does not support.
func (t *Table) Lookup(cdb []byte) (*CommandDesc, *Sense) {
	if len(cdb) == 0 {
		return nil, InvalidOpcode()
	}
	op := cdb[0]
	var d *CommandDesc
	if t.bySA[op] != nil {
		sa, ok := ServiceActionOf(cdb)
		if !ok {
			return nil, InvalidFieldInCDB(1, -1)
		}
		if d = t.bySA[op][sa]; d == nil {
			// SPC-4 4.2.2: an unsupported service action of a supported
			// opcode is an invalid field in the CDB.
			if op == 0x7F {
				return nil, InvalidFieldInCDB(8, -1)
			}
			return nil, InvalidFieldInCDB(1, 4)
		}
	} else if d = t.byOpcode[op]; d == nil {
		return nil, InvalidOpcode()
	}
	if len(cdb) < d.CDBLength() {
		return nil, InvalidOpcode().WithReason("CDB of %d bytes for a %d-byte command", len(cdb), d.CDBLength())
	}
	if s := checkUsage(cdb, d.Usage); s != nil {
		return nil, s
	}
	return d, nil
}

// checkUsage refuses a CDB with a bit set that the usage mask says is not
// examined: reserved bits, unsupported options and the NACA and LINK bits of
// the CONTROL byte (SAM-5 5.2: NACA set where ACA is unsupported is an
// invalid field in the CDB).
func checkUsage(cdb, usage []byte) *Sense {
	for i := 1; i < len(usage); i++ {
		if bad := cdb[i] &^ usage[i]; bad != 0 {
			bit := 7
			for bad&(1<<bit) == 0 {
				bit--
			}
			return InvalidFieldInCDB(i, bit)
		}
	}
	return nil
}

// MaxTransferBytes is the largest data transfer odxtgt accepts for one
// command. Block commands refuse larger transfer lengths and report the
// limit in the Block Limits VPD page (SBC-3 6.5.3); transports refuse to
// buffer more data-out than this.
const MaxTransferBytes = 8 << 20
