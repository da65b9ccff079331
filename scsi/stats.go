package scsi

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// CommandClass groups operation codes for monitoring: the counters of a
// logical unit are kept per class, never per opcode or LBA.
type CommandClass uint8

// Command classes.
const (
	ClassRead  CommandClass = iota // READ (6/10/12/16)
	ClassWrite                     // WRITE, WRITE AND VERIFY, WRITE SAME, COMPARE AND WRITE, ORWRITE, UNMAP
	ClassCopy                      // EXTENDED COPY, COPY OPERATION ABORT, RECEIVE COPY STATUS/DATA/...
	ClassToken                     // POPULATE TOKEN, WRITE USING TOKEN, RECEIVE ROD TOKEN INFORMATION, REPORT ALL ROD TOKENS
	ClassOther                     // everything else: INQUIRY, TEST UNIT READY, MODE SENSE...
	NumClasses
)

var classNames = [NumClasses]string{"read", "write", "copy", "token", "other"}

func (c CommandClass) String() string {
	if c < NumClasses {
		return classNames[c]
	}
	return "other"
}

// Operation codes and service actions ClassOf looks at (SPC-4 table 60,
// SBC-4 table 17).
const (
	opThirdPartyCopyOut = 0x83
	opThirdPartyCopyIn  = 0x84
	saPopulateToken     = 0x10
	saWriteUsingToken   = 0x11
	saReceiveRODToken   = 0x07
	saReportAllRODToken = 0x08
)

// ClassOf returns the class of a CDB by its operation code and, for the
// third-party copy opcodes, its service action.
func ClassOf(cdb []byte) CommandClass {
	if len(cdb) == 0 {
		return ClassOther
	}
	switch cdb[0] {
	case 0x08, 0x28, 0xA8, 0x88:
		return ClassRead
	case 0x0A, 0x2A, 0xAA, 0x8A, 0x2E, 0xAE, 0x8E, 0x41, 0x93, 0x89, 0x8B, 0x42:
		return ClassWrite
	case opThirdPartyCopyOut, opThirdPartyCopyIn:
		if len(cdb) < 2 {
			return ClassCopy
		}
		switch sa := cdb[1] & 0x1F; {
		case cdb[0] == opThirdPartyCopyOut && (sa == saPopulateToken || sa == saWriteUsingToken),
			cdb[0] == opThirdPartyCopyIn && (sa == saReceiveRODToken || sa == saReportAllRODToken):
			return ClassToken
		}
		return ClassCopy
	}
	return ClassOther
}

// LatencyBuckets are the upper bounds of the command latency histogram
// buckets, from 50 µs to 10 s; a last, unbounded bucket follows them.
var LatencyBuckets = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// ClassStats are the counters of one command class of a logical unit.
type ClassStats struct {
	Commands     uint64 // commands completed or aborted
	DataInBytes  uint64 // data-in produced (before the transport's truncation)
	DataOutBytes uint64 // data-out received
	// Latency counts commands by time from submission to completion:
	// Latency[i] those within LatencyBuckets[i] and above the previous
	// bound, the last element those above every bound. Their sum is
	// Commands as far as concurrent updates allow.
	Latency [len(LatencyBuckets) + 1]uint64
	// LatencySum is the total latency of the commands counted.
	LatencySum time.Duration
}

// SenseCode is a sense key with its additional sense code and qualifier.
type SenseCode struct {
	Key  SenseKey
	Code ASC
}

// LUStats is a snapshot of the counters of a logical unit.
type LUStats struct {
	Classes [NumClasses]ClassStats
	// CheckConditions counts the commands ended with CHECK CONDITION, by
	// the sense they carried.
	CheckConditions map[SenseCode]uint64
}

// luStats are the counters behind LUStats: atomics updated by each
// command as it ends, so commands share no lock for them; only CHECK
// CONDITION, off the fast path, takes the LU's senseMu.
type luStats struct {
	classes [NumClasses]classCounters

	senseMu sync.Mutex
	sense   map[SenseCode]uint64 // at most 16 keys × 65536 codes, in practice a few dozen
}

type classCounters struct {
	commands, in, out atomic.Uint64
	latency           [len(LatencyBuckets) + 1]atomic.Uint64
	sum               atomic.Int64 // nanoseconds
}

// record counts a command that ended after taking elapsed.
func (s *luStats) record(cmd *Command, elapsed time.Duration) {
	c := &s.classes[ClassOf(cmd.CDB)]
	c.commands.Add(1)
	if n := len(cmd.DataIn); n > 0 {
		c.in.Add(uint64(n))
	}
	if n := len(cmd.DataOut); n > 0 {
		c.out.Add(uint64(n))
	}
	i := 0
	for i < len(LatencyBuckets) && elapsed > LatencyBuckets[i] {
		i++
	}
	c.latency[i].Add(1)
	c.sum.Add(int64(elapsed))
}

// checkCondition counts a CHECK CONDITION with sense s.
func (s *luStats) checkCondition(sense *Sense) {
	s.senseMu.Lock()
	defer s.senseMu.Unlock()
	if s.sense == nil {
		s.sense = map[SenseCode]uint64{}
	}
	s.sense[SenseCode{Key: sense.Key, Code: sense.Code}]++
}

// Stats returns a snapshot of the logical unit's command counters.
func (lu *LU) Stats() LUStats {
	var out LUStats
	for i := range lu.stats.classes {
		c, o := &lu.stats.classes[i], &out.Classes[i]
		o.Commands, o.DataInBytes, o.DataOutBytes = c.commands.Load(), c.in.Load(), c.out.Load()
		for j := range c.latency {
			o.Latency[j] = c.latency[j].Load()
		}
		o.LatencySum = time.Duration(c.sum.Load())
	}
	lu.stats.senseMu.Lock()
	out.CheckConditions = maps.Clone(lu.stats.sense)
	lu.stats.senseMu.Unlock()
	if out.CheckConditions == nil {
		out.CheckConditions = map[SenseCode]uint64{}
	}
	return out
}
