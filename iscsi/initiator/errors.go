package initiator

import (
	"errors"
	"fmt"

	"github.com/odxtgt/odxtgt/iscsi"
)

// ErrSessionClosed is returned for work cut short by Close or Logout.
var ErrSessionClosed = errors.New("initiator: session closed")

// ErrTaskAborted is returned by Command when a task management function
// aborted the command, so no status will arrive for it.
var ErrTaskAborted = errors.New("initiator: task aborted by task management function")

// LoginError is a Login Response with a non-zero Status-Class (RFC 7143
// 11.13.5).
type LoginError struct {
	Class, Detail byte
	// TargetAddress is the redirection address of a class 1 response.
	TargetAddress string
}

// Login status classes (RFC 7143 11.13.5).
const (
	LoginClassSuccess      = 0
	LoginClassRedirection  = 1
	LoginClassInitiatorErr = 2
	LoginClassTargetErr    = 3
)

func (e *LoginError) Error() string {
	msg := fmt.Sprintf("initiator: login failed: status class %d detail %02xh", e.Class, e.Detail)
	if e.TargetAddress != "" {
		msg += " redirected to " + e.TargetAddress
	}
	return msg
}

// NegotiationError reports a login the initiator gave up because the
// target's keys broke the negotiation rules (RFC 7143 6.2, 13) or CHAP
// failed.
type NegotiationError struct {
	Key    string
	Value  string
	Reason string
}

func (e *NegotiationError) Error() string {
	if e.Key == "" {
		return "initiator: login negotiation: " + e.Reason
	}
	return fmt.Sprintf("initiator: login negotiation: %s=%q: %s", e.Key, e.Value, e.Reason)
}

// ProtocolError is target behaviour that breaks an RFC 7143 rule.
type ProtocolError struct {
	Op  iscsi.Opcode // the target PDU involved
	ITT uint32
	Msg string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("initiator: target protocol error in %s (ITT %#x): %s", e.Op, e.ITT, e.Msg)
}

// RejectError is a Reject PDU the target sent for a request (RFC 7143
// 11.17).
type RejectError struct {
	Reason byte
	Header [iscsi.BHSLength]byte // the rejected PDU's header
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("initiator: target rejected %s with reason %02xh",
		iscsi.Opcode(e.Header[0]&0x3F), e.Reason)
}

// ServiceResponseError is a SCSI Response whose Response field is not
// Command Completed at Target (RFC 7143 11.4.3).
type ServiceResponseError struct{ Response byte }

func (e *ServiceResponseError) Error() string {
	return fmt.Sprintf("initiator: SCSI Response with iSCSI response %02xh (target failure)", e.Response)
}

// LogoutError is a Logout Response other than "connection or session
// closed successfully" (RFC 7143 11.15.1).
type LogoutError struct{ Response byte }

func (e *LogoutError) Error() string {
	return fmt.Sprintf("initiator: logout failed with response %d", e.Response)
}
