package scsi

import "fmt"

// Status is a SCSI status code (SAM-5 5.3).
type Status byte

// SCSI status codes.
const (
	StatusGood                Status = 0x00
	StatusCheckCondition      Status = 0x02
	StatusConditionMet        Status = 0x04
	StatusBusy                Status = 0x08
	StatusReservationConflict Status = 0x18
	StatusTaskSetFull         Status = 0x28
	StatusACAActive           Status = 0x30
	StatusTaskAborted         Status = 0x40
)

var statusNames = map[Status]string{
	StatusGood:                "GOOD",
	StatusCheckCondition:      "CHECK CONDITION",
	StatusConditionMet:        "CONDITION MET",
	StatusBusy:                "BUSY",
	StatusReservationConflict: "RESERVATION CONFLICT",
	StatusTaskSetFull:         "TASK SET FULL",
	StatusACAActive:           "ACA ACTIVE",
	StatusTaskAborted:         "TASK ABORTED",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("STATUS(0x%02x)", byte(s))
}

// TaskAttr is a task attribute (SAM-5 8.6). The numeric values are those of
// the iSCSI SCSI Command PDU's ATTR field (RFC 7143 11.3.1.1).
type TaskAttr byte

// Task attributes.
const (
	TaskUntagged    TaskAttr = 0 // treated as SIMPLE
	TaskSimple      TaskAttr = 1
	TaskOrdered     TaskAttr = 2
	TaskHeadOfQueue TaskAttr = 3
	TaskACA         TaskAttr = 4
)

func (a TaskAttr) String() string {
	switch a {
	case TaskUntagged:
		return "UNTAGGED"
	case TaskSimple:
		return "SIMPLE"
	case TaskOrdered:
		return "ORDERED"
	case TaskHeadOfQueue:
		return "HEAD OF QUEUE"
	case TaskACA:
		return "ACA"
	}
	return fmt.Sprintf("ATTR(%d)", byte(a))
}

// Direction is the direction of a command's data transfer.
type Direction byte

// Data transfer directions.
const (
	DirNone Direction = iota // no data
	DirIn                    // device to initiator (data-in)
	DirOut                   // initiator to device (data-out)
)
