package iscsi

import (
	"errors"
	"fmt"
)

// LoginStatus is the Status-Class (high byte) and Status-Detail (low byte)
// of a Login Response (RFC 7143 11.13.5).
type LoginStatus uint16

// Login status codes (RFC 7143 11.13.5).
const (
	LoginSuccess                   LoginStatus = 0x0000
	LoginTargetMovedTemp           LoginStatus = 0x0101
	LoginTargetMovedPerm           LoginStatus = 0x0102
	LoginInitiatorError            LoginStatus = 0x0200
	LoginAuthFailure               LoginStatus = 0x0201
	LoginAuthorizationFailure      LoginStatus = 0x0202
	LoginNotFound                  LoginStatus = 0x0203
	LoginTargetRemoved             LoginStatus = 0x0204
	LoginUnsupportedVersion        LoginStatus = 0x0205
	LoginTooManyConnections        LoginStatus = 0x0206
	LoginMissingParameter          LoginStatus = 0x0207
	LoginCantIncludeInSession      LoginStatus = 0x0208
	LoginSessionTypeUnsupp         LoginStatus = 0x0209
	LoginSessionDoesNotExist       LoginStatus = 0x020A
	LoginInvalidDuringLogin        LoginStatus = 0x020B
	LoginTargetError               LoginStatus = 0x0300
	LoginServiceUnavailable        LoginStatus = 0x0301
	LoginOutOfResources            LoginStatus = 0x0302
	loginStatusClassRedirect                   = 0x01
	loginStatusClassInitiatorError             = 0x02
)

var loginStatusNames = map[LoginStatus]string{
	LoginSuccess:              "success",
	LoginTargetMovedTemp:      "target moved temporarily",
	LoginTargetMovedPerm:      "target moved permanently",
	LoginInitiatorError:       "initiator error",
	LoginAuthFailure:          "authentication failure",
	LoginAuthorizationFailure: "authorization failure",
	LoginNotFound:             "not found",
	LoginTargetRemoved:        "target removed",
	LoginUnsupportedVersion:   "unsupported version",
	LoginTooManyConnections:   "too many connections",
	LoginMissingParameter:     "missing parameter",
	LoginCantIncludeInSession: "can't include in session",
	LoginSessionTypeUnsupp:    "session type not supported",
	LoginSessionDoesNotExist:  "session does not exist",
	LoginInvalidDuringLogin:   "invalid request during login",
	LoginTargetError:          "target error",
	LoginServiceUnavailable:   "service unavailable",
	LoginOutOfResources:       "out of resources",
}

// Class returns the Status-Class byte.
func (s LoginStatus) Class() byte { return byte(s >> 8) }

// Detail returns the Status-Detail byte.
func (s LoginStatus) Detail() byte { return byte(s) }

func (s LoginStatus) String() string {
	if n, ok := loginStatusNames[s]; ok {
		return fmt.Sprintf("%s (%04x)", n, uint16(s))
	}
	return fmt.Sprintf("LoginStatus(%04x)", uint16(s))
}

// LoginError ends a login with a Login Response carrying Status; Reason is
// for the log only.
type LoginError struct {
	Status LoginStatus
	Reason string
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("iscsi: login failed: %s: %s", e.Status, e.Reason)
}

func loginErr(status LoginStatus, format string, args ...any) *LoginError {
	return &LoginError{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// RejectReason is the reason code of a Reject PDU (RFC 7143 11.17.1).
type RejectReason byte

// Reject reasons (RFC 7143 11.17.1).
const (
	RejectDataDigest       RejectReason = 0x02
	RejectSNACK            RejectReason = 0x03
	RejectProtocolError    RejectReason = 0x04
	RejectCmdNotSupported  RejectReason = 0x05
	RejectImmediateCmd     RejectReason = 0x06
	RejectTaskInProgress   RejectReason = 0x07
	RejectInvalidDataAck   RejectReason = 0x08
	RejectInvalidPDUField  RejectReason = 0x09
	RejectLongOp           RejectReason = 0x0A
	RejectWaitingForLogout RejectReason = 0x0C
)

var rejectNames = map[RejectReason]string{
	RejectDataDigest:       "data digest error",
	RejectSNACK:            "SNACK reject",
	RejectProtocolError:    "protocol error",
	RejectCmdNotSupported:  "command not supported",
	RejectImmediateCmd:     "immediate command reject",
	RejectTaskInProgress:   "task in progress",
	RejectInvalidDataAck:   "invalid data ack",
	RejectInvalidPDUField:  "invalid PDU field",
	RejectLongOp:           "long operation reject",
	RejectWaitingForLogout: "waiting for logout",
}

func (r RejectReason) String() string {
	if n, ok := rejectNames[r]; ok {
		return n
	}
	return fmt.Sprintf("RejectReason(0x%02x)", byte(r))
}

// rejectError answers one PDU with a Reject; the connection goes on unless
// drop is set, in which case it is closed once the Reject is sent (ERL 0
// has no recovery short of the session for a broken data sequence, RFC
// 7143 7.1.5).
type rejectError struct {
	reason RejectReason
	drop   bool
	why    string
}

func (e *rejectError) Error() string {
	return fmt.Sprintf("iscsi: reject (%s): %s", e.reason, e.why)
}

func reject(reason RejectReason, format string, args ...any) *rejectError {
	return &rejectError{reason: reason, why: fmt.Sprintf(format, args...)}
}

func rejectAndDrop(reason RejectReason, format string, args ...any) *rejectError {
	return &rejectError{reason: reason, drop: true, why: fmt.Sprintf(format, args...)}
}

// connError closes the connection (and at ERL 0 the session) without a
// further PDU, for errors after which the byte stream cannot be trusted.
type connError struct{ why string }

func (e *connError) Error() string { return "iscsi: connection dropped: " + e.why }

func dropConn(format string, args ...any) *connError {
	return &connError{why: fmt.Sprintf(format, args...)}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("iscsi: server closed")

// Reasons a connection ends, for the log and for tests.
var (
	errLogout       = errors.New("logout")
	errReinstated   = errors.New("session reinstated by a new login with the same ISID")
	errShutdown     = errors.New("server shutting down")
	errReconfigured = errors.New("no longer allowed by the reloaded configuration")
	errNOPTimeout   = errors.New("no answer to NOP-In ping")
	errColdReset    = errors.New("target cold reset")
	errLoginTimeout = errors.New("login timed out")
)
