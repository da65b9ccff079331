package iscsi

import (
	"strings"
)

// params are the operational parameters of a session and its connection,
// as negotiated at login (RFC 7143 13).
type params struct {
	HeaderDigest, DataDigest bool
	// MaxSendDataSegmentLength is the initiator's declared
	// MaxRecvDataSegmentLength: the largest data segment the target sends.
	MaxSendDataSegmentLength uint32
	MaxConnections           uint32
	InitialR2T               bool
	ImmediateData            bool
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	DefaultTime2Wait         uint32
	DefaultTime2Retain       uint32
	MaxOutstandingR2T        uint32
	DataPDUInOrder           bool
	DataSequenceInOrder      bool
	ErrorRecoveryLevel       uint32
	ProtocolLevel            uint32
}

// defaultParams are the values in force for keys not negotiated (RFC 7143
// 13).
func defaultParams() params {
	return params{
		MaxSendDataSegmentLength: 8192,
		MaxConnections:           1,
		InitialR2T:               true,
		ImmediateData:            true,
		MaxBurstLength:           262144,
		FirstBurstLength:         65536,
		DefaultTime2Wait:         2,
		DefaultTime2Retain:       20,
		MaxOutstandingR2T:        1,
		DataPDUInOrder:           true,
		DataSequenceInOrder:      true,
	}
}

// The target's side of each negotiation: the values it offers or the
// limits it accepts.
const (
	// targetMaxRecvDataSegmentLength is what the target declares: the
	// largest data segment it accepts in full feature phase.
	targetMaxRecvDataSegmentLength = 256 << 10
	targetMaxBurstLength           = 1 << 20
	targetFirstBurstLength         = 256 << 10
	targetMaxOutstandingR2T        = 16
	targetDefaultTime2Wait         = 2
	targetDefaultTime2Retain       = 20
	// targetProtocolLevel: RFC 7143 is iSCSIProtocolLevel 1 (RFC 7144 2.1).
	targetProtocolLevel = 1
	// loginMaxRecvDataSegmentLength applies to every login PDU (RFC 7143
	// 13.12: the default holds until full feature phase).
	loginMaxRecvDataSegmentLength = 8192
	// maxTextLength bounds a reassembled login or text request.
	maxTextLength = 64 << 10
)

// keyKind is how a key's value is negotiated (RFC 7143 6.2).
type keyKind uint8

const (
	kindDeclarative  keyKind = iota // declared by the initiator, not answered
	kindAnd                         // boolean, result is the AND of both
	kindOr                          // boolean, result is the OR of both
	kindMin                         // numerical, result is the minimum
	kindMax                         // numerical, result is the maximum
	kindList                        // list, the first offered value accepted
	kindTargetOnly                  // declared only by targets
	kindObsoleteBool                // RFC 3720 markers, answered No
	kindObsolete                    // RFC 3720 marker intervals, answered Reject
	kindTextOnly                    // used only in Text requests (SendTargets)
)

// keyDef describes one key the target negotiates.
type keyDef struct {
	kind keyKind
	// loginOnly keys may not be renegotiated in full feature phase.
	loginOnly bool
	// discoveryIrrelevant keys are Irrelevant in discovery sessions.
	discoveryIrrelevant bool
	// lo and hi are the valid range of a numerical value.
	lo, hi uint64
	// target is the target's boolean preference or numerical limit.
	target uint64
	// choose picks from a list the first value the target supports.
	choose func(string) (string, bool)
	// set records the result.
	set func(p *params, v uint64)
}

func setBool(f func(p *params, v bool)) func(*params, uint64) {
	return func(p *params, v uint64) { f(p, v != 0) }
}

func setNum(f func(p *params, v uint32)) func(*params, uint64) {
	return func(p *params, v uint64) { f(p, uint32(v)) }
}

func chooseDigest(offer string) (string, bool) {
	for m := range strings.SplitSeq(offer, ",") {
		if m == "CRC32C" || m == ValueNone {
			return m, true
		}
	}
	return "", false
}

const maxNumber = 1<<24 - 1

// keyDefs is every key of RFC 7143 13 and RFC 7144 the target answers.
// Keys handled by the login itself (InitiatorName, TargetName,
// SessionType, AuthMethod, CHAP_*) are not here.
var keyDefs = map[string]*keyDef{
	"HeaderDigest": {kind: kindList, loginOnly: true, choose: chooseDigest,
		set: func(p *params, v uint64) { p.HeaderDigest = v != 0 }},
	"DataDigest": {kind: kindList, loginOnly: true, choose: chooseDigest,
		set: func(p *params, v uint64) { p.DataDigest = v != 0 }},
	"MaxConnections": {kind: kindMin, loginOnly: true, discoveryIrrelevant: true, lo: 1, hi: 65535, target: 1,
		set: setNum(func(p *params, v uint32) { p.MaxConnections = v })},
	"InitialR2T": {kind: kindOr, loginOnly: true, discoveryIrrelevant: true, target: 0,
		set: setBool(func(p *params, v bool) { p.InitialR2T = v })},
	"ImmediateData": {kind: kindAnd, loginOnly: true, discoveryIrrelevant: true, target: 1,
		set: setBool(func(p *params, v bool) { p.ImmediateData = v })},
	"MaxRecvDataSegmentLength": {kind: kindDeclarative, lo: 512, hi: maxNumber,
		set: setNum(func(p *params, v uint32) { p.MaxSendDataSegmentLength = v })},
	"MaxBurstLength": {kind: kindMin, loginOnly: true, discoveryIrrelevant: true, lo: 512, hi: maxNumber, target: targetMaxBurstLength,
		set: setNum(func(p *params, v uint32) { p.MaxBurstLength = v })},
	"FirstBurstLength": {kind: kindMin, loginOnly: true, discoveryIrrelevant: true, lo: 512, hi: maxNumber, target: targetFirstBurstLength,
		set: setNum(func(p *params, v uint32) { p.FirstBurstLength = v })},
	"DefaultTime2Wait": {kind: kindMax, loginOnly: true, lo: 0, hi: 3600, target: targetDefaultTime2Wait,
		set: setNum(func(p *params, v uint32) { p.DefaultTime2Wait = v })},
	"DefaultTime2Retain": {kind: kindMin, loginOnly: true, lo: 0, hi: 3600, target: targetDefaultTime2Retain,
		set: setNum(func(p *params, v uint32) { p.DefaultTime2Retain = v })},
	"MaxOutstandingR2T": {kind: kindMin, loginOnly: true, discoveryIrrelevant: true, lo: 1, hi: 65535, target: targetMaxOutstandingR2T,
		set: setNum(func(p *params, v uint32) { p.MaxOutstandingR2T = v })},
	// DataPDUInOrder and DataSequenceInOrder are OR: the target's Yes makes
	// the result Yes, so data always arrives in order.
	"DataPDUInOrder": {kind: kindOr, loginOnly: true, discoveryIrrelevant: true, target: 1,
		set: setBool(func(p *params, v bool) { p.DataPDUInOrder = v })},
	"DataSequenceInOrder": {kind: kindOr, loginOnly: true, discoveryIrrelevant: true, target: 1,
		set: setBool(func(p *params, v bool) { p.DataSequenceInOrder = v })},
	"ErrorRecoveryLevel": {kind: kindMin, loginOnly: true, lo: 0, hi: 2, target: 0,
		set: setNum(func(p *params, v uint32) { p.ErrorRecoveryLevel = v })},
	"iSCSIProtocolLevel": {kind: kindMin, loginOnly: true, lo: 0, hi: 31, target: targetProtocolLevel,
		set: setNum(func(p *params, v uint32) { p.ProtocolLevel = v })},
	// RFC 7144 2.2: only the RFC 3720 task reporting is implemented.
	"TaskReporting": {kind: kindList, loginOnly: true, discoveryIrrelevant: true,
		choose: func(offer string) (string, bool) {
			for m := range strings.SplitSeq(offer, ",") {
				if m == "RFC3720" {
					return m, true
				}
			}
			return "", false
		}},
	"InitiatorAlias":       {kind: kindDeclarative},
	"TargetAlias":          {kind: kindTargetOnly},
	"TargetAddress":        {kind: kindTargetOnly},
	"TargetPortalGroupTag": {kind: kindTargetOnly},
	// RFC 7143 13.25 obsoletes the markers: IFMarker and OFMarker may be
	// answered No (kept for RFC 3720 initiators), the intervals Reject.
	"IFMarker":    {kind: kindObsoleteBool},
	"OFMarker":    {kind: kindObsoleteBool},
	"IFMarkInt":   {kind: kindObsolete},
	"OFMarkInt":   {kind: kindObsolete},
	"SendTargets": {kind: kindTextOnly},
}

// negotiator answers the operational keys of one login or of full feature
// phase text negotiation.
type negotiator struct {
	p         *params
	discovery bool
	ffp       bool            // full feature phase: login-only keys are refused
	seen      map[string]bool // RFC 7143 6.2: each key at most once per login
}

// negotiate answers one key, appending the answer (if any) to resp. A
// LoginError ends the login.
func (n *negotiator) negotiate(kv KeyValue, resp *TextKeys) *LoginError {
	key, val := kv.Key, kv.Value
	def := keyDefs[key]
	if def == nil {
		// Unknown keys, including X- and X# extension keys (RFC 7143
		// 6.2, 13.16).
		resp.Add(key, ValueNotUnderstood)
		return nil
	}
	if n.seen[key] {
		// RFC 7143 6.2: a renegotiation attempt is a protocol error the
		// target answers with a Login reject (initiator error).
		return loginErr(LoginInitiatorError, "key %s sent twice", key)
	}
	n.seen[key] = true
	if n.ffp && def.loginOnly {
		resp.Add(key, ValueReject)
		return nil
	}
	if n.discovery && def.discoveryIrrelevant {
		resp.Add(key, ValueIrrelevant)
		return nil
	}
	switch def.kind {
	case kindDeclarative:
		if def.set != nil {
			v, err := ParseNumber(val)
			if err != nil || v < def.lo || v > def.hi {
				return loginErr(LoginInitiatorError, "%s=%.40q is not a number from %d to %d", key, val, def.lo, def.hi)
			}
			def.set(n.p, v)
		}
	case kindAnd, kindOr:
		b, err := ParseBoolean(val)
		if err != nil {
			resp.Add(key, ValueReject)
			return nil
		}
		r := b && def.target != 0
		if def.kind == kindOr {
			r = b || def.target != 0
		}
		def.set(n.p, boolNum(r))
		resp.Add(key, FormatBoolean(r))
	case kindMin, kindMax:
		v, err := ParseNumber(val)
		if err != nil || v < def.lo || v > def.hi {
			resp.Add(key, ValueReject)
			return nil
		}
		r := min(v, def.target)
		if def.kind == kindMax {
			r = max(v, def.target)
		}
		def.set(n.p, r)
		resp.Add(key, FormatNumber(r))
	case kindList:
		if _, err := ParseList(val); err != nil {
			resp.Add(key, ValueReject)
			return nil
		}
		choice, ok := def.choose(val)
		if !ok {
			resp.Add(key, ValueReject)
			return nil
		}
		if def.set != nil {
			def.set(n.p, boolNum(choice != ValueNone))
		}
		resp.Add(key, choice)
	case kindObsoleteBool:
		resp.Add(key, ValueNo)
	case kindObsolete, kindTargetOnly:
		resp.Add(key, ValueReject)
	case kindTextOnly:
		resp.Add(key, ValueIrrelevant)
	}
	return nil
}

// finish applies the rules that tie keys together once a request's keys
// are answered: FirstBurstLength never exceeds MaxBurstLength (RFC 7143
// 13.14) and is Irrelevant when InitialR2T=Yes and ImmediateData=No.
func (n *negotiator) finish(resp TextKeys) {
	p := n.p
	p.FirstBurstLength = min(p.FirstBurstLength, p.MaxBurstLength)
	for i := range resp {
		if resp[i].Key != "FirstBurstLength" || resp[i].Value == ValueReject || resp[i].Value == ValueIrrelevant {
			continue
		}
		if p.InitialR2T && !p.ImmediateData {
			resp[i].Value = ValueIrrelevant
		} else {
			resp[i].Value = FormatNumber(uint64(p.FirstBurstLength))
		}
	}
}

func boolNum(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
