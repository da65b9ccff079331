package initiator

import (
	"time"

	"github.com/odxtgt/odxtgt/iscsi"
)

// Config describes one session to open.
type Config struct {
	// InitiatorName is the initiator's iSCSI name (RFC 7143 13.5).
	InitiatorName string
	// TargetName is the target to log in to; unused for discovery.
	TargetName string
	// ISID is the initiator part of the session identifier (RFC 7143
	// 11.12.5); all zeroes picks a random ISID of type 10b (random).
	ISID [6]byte
	// TSIH is zero for a new session.
	TSIH uint16
	// InitialCmdSN is the CmdSN of the login request and of the first
	// command; any value, including one close to 2^32 to exercise
	// serial number wrap-around.
	InitialCmdSN uint32
	// CHAP enables CHAP authentication; nil offers AuthMethod=None.
	CHAP *CHAPConfig
	// HeaderDigest and DataDigest require CRC32C digests; false offers
	// None only.
	HeaderDigest, DataDigest bool
	// Params overrides or adds operational keys sent in the operational
	// negotiation stage, for example MaxRecvDataSegmentLength,
	// ImmediateData, InitialR2T, FirstBurstLength, MaxBurstLength or
	// MaxOutstandingR2T. Values are sent as given, so invalid ones can be
	// used to test the target. An "AuthMethod" entry replaces the
	// security stage offer.
	Params map[string]string
	// Discovery opens a discovery session (SessionType=Discovery).
	Discovery bool
	// Timeout bounds connecting and logging in; zero means 30 seconds.
	Timeout time.Duration
	// OnAsyncMessage, if set, is called from the reader goroutine with
	// each Asynchronous Message PDU (RFC 7143 11.9); it must return
	// promptly and must not call Session methods that wait for the
	// target, since no PDU is read while it runs.
	OnAsyncMessage func(p *iscsi.PDU)
}

// CHAPConfig holds CHAP credentials (RFC 7143 12.1.3).
type CHAPConfig struct {
	// User and Secret authenticate the initiator to the target.
	User, Secret string
	// MutualUser and MutualSecret, when MutualSecret is set, make the
	// initiator challenge the target too: the target must answer with
	// CHAP_N=MutualUser and a response computed from MutualSecret.
	MutualUser, MutualSecret string
	// Algorithms is the CHAP_A offer in preference order; empty offers
	// iscsi.DefaultCHAPAlgorithms.
	Algorithms []iscsi.CHAPAlgorithm
}

// defaultTimeout bounds connect and login when Config.Timeout is zero.
const defaultTimeout = 30 * time.Second

// defaultMaxRecvDataSegmentLength is the MaxRecvDataSegmentLength the
// initiator declares unless Params says otherwise.
const defaultMaxRecvDataSegmentLength = 262144
