package initiator

import (
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/odxtgt/odxtgt/iscsi"
)

// keyKind is how a key's value is settled (RFC 7143 6.2.2 and the key
// definitions of section 13).
type keyKind uint8

const (
	kindDeclarative keyKind = iota // each side declares its own value
	kindAnd                        // Boolean, result is the AND
	kindOr                         // Boolean, result is the OR
	kindMin                        // numerical, result is the minimum
	kindMax                        // numerical, result is the maximum
	kindList                       // list, result is the first common value
)

type keyDef struct {
	kind   keyKind
	def    string // default (RFC 7143 13)
	lo, hi uint64 // numerical range
}

// operationalKeys are the operational keys of RFC 7143 13 the initiator
// understands, with their defaults and ranges.
var operationalKeys = map[string]keyDef{
	"HeaderDigest":             {kind: kindList, def: iscsi.ValueNone},
	"DataDigest":               {kind: kindList, def: iscsi.ValueNone},
	"MaxConnections":           {kind: kindMin, def: "1", lo: 1, hi: 65535},
	"InitialR2T":               {kind: kindOr, def: iscsi.ValueYes},
	"ImmediateData":            {kind: kindAnd, def: iscsi.ValueYes},
	"MaxRecvDataSegmentLength": {kind: kindDeclarative, def: "8192", lo: 512, hi: iscsi.MaxDataSegmentLength},
	"MaxBurstLength":           {kind: kindMin, def: "262144", lo: 512, hi: iscsi.MaxDataSegmentLength},
	"FirstBurstLength":         {kind: kindMin, def: "65536", lo: 512, hi: iscsi.MaxDataSegmentLength},
	"DefaultTime2Wait":         {kind: kindMax, def: "2", lo: 0, hi: 3600},
	"DefaultTime2Retain":       {kind: kindMin, def: "20", lo: 0, hi: 3600},
	"MaxOutstandingR2T":        {kind: kindMin, def: "1", lo: 1, hi: 65535},
	"DataPDUInOrder":           {kind: kindOr, def: iscsi.ValueYes},
	"DataSequenceInOrder":      {kind: kindOr, def: iscsi.ValueYes},
	"ErrorRecoveryLevel":       {kind: kindMin, def: "0", lo: 0, hi: 2},
}

// normalOffers is the order in which a normal session offers its keys;
// a discovery session offers only the first three (the others are
// irrelevant there, RFC 7143 13).
var normalOffers = []string{
	"HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength",
	"InitialR2T", "ImmediateData", "MaxBurstLength", "FirstBurstLength",
	"MaxOutstandingR2T", "MaxConnections", "DefaultTime2Wait", "DefaultTime2Retain",
	"DataPDUInOrder", "DataSequenceInOrder", "ErrorRecoveryLevel",
}

// targetDeclared are keys only the target declares; they need no answer.
var targetDeclared = map[string]bool{
	"TargetAlias": true, "TargetPortalGroupTag": true, "TargetAddress": true,
}

// TargetMaxRecvDataSegmentLengthKey is the Negotiated entry holding the
// MaxRecvDataSegmentLength the target declared (the largest data segment
// the initiator may send); the "MaxRecvDataSegmentLength" entry is the
// initiator's own declaration.
const TargetMaxRecvDataSegmentLengthKey = "TargetMaxRecvDataSegmentLength"

// negotiation tracks the operational stage from the initiator's side.
type negotiation struct {
	offers   iscsi.TextKeys    // what the initiator offers, in order
	offered  map[string]string // offered key -> value, awaiting answer
	result   map[string]string // settled values
	declared map[string]string // target-declared keys
}

func newNegotiation(cfg *Config) *negotiation {
	n := &negotiation{offered: map[string]string{}, result: map[string]string{}, declared: map[string]string{}}
	own := map[string]string{
		"HeaderDigest":             digestOffer(cfg.HeaderDigest),
		"DataDigest":               digestOffer(cfg.DataDigest),
		"MaxRecvDataSegmentLength": strconv.Itoa(defaultMaxRecvDataSegmentLength),
	}
	keys := normalOffers
	if cfg.Discovery {
		keys = normalOffers[:3]
	}
	for _, k := range keys {
		v, ok := own[k]
		if !ok {
			v = operationalKeys[k].def
		}
		if p, ok := cfg.Params[k]; ok {
			v = p
		}
		n.offers.Add(k, v)
	}
	// Keep the default FirstBurstLength within a smaller MaxBurstLength
	// override (RFC 7143 13.14).
	if _, set := cfg.Params["FirstBurstLength"]; !set && !cfg.Discovery {
		mb, err1 := iscsi.ParseNumber(n.offersValue("MaxBurstLength"))
		fb, err2 := iscsi.ParseNumber(n.offersValue("FirstBurstLength"))
		if err1 == nil && err2 == nil && fb > mb {
			n.offers.Set("FirstBurstLength", iscsi.FormatNumber(mb))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Params)) {
		if k != "AuthMethod" && !n.offers.Has(k) {
			n.offers.Add(k, cfg.Params[k])
		}
	}
	for _, kv := range n.offers {
		if def, known := operationalKeys[kv.Key]; known && def.kind == kindDeclarative {
			n.result[kv.Key] = kv.Value
		} else {
			n.offered[kv.Key] = kv.Value
		}
	}
	return n
}

func digestOffer(required bool) string {
	if required {
		return "CRC32C"
	}
	return iscsi.ValueNone
}

// isSpecial reports the answers that leave a key at its default.
func isSpecial(v string) bool {
	return v == iscsi.ValueReject || v == iscsi.ValueIrrelevant || v == iscsi.ValueNotUnderstood
}

// handle processes one key of a login response and returns the
// initiator's answer when the key is a target offer that needs one.
func (n *negotiation) handle(key, value string) (*iscsi.KeyValue, error) {
	def, known := operationalKeys[key]
	if ours, ok := n.offered[key]; ok {
		delete(n.offered, key)
		if !known {
			n.result[key] = value // a probe: record whatever came back
			return nil, nil
		}
		return nil, n.settle(key, ours, value, def)
	}
	switch {
	case targetDeclared[key]:
		n.declared[key] = value
		return nil, nil
	case key == "MaxRecvDataSegmentLength":
		v, err := iscsi.ParseNumber(value)
		if err != nil || v < def.lo || v > def.hi {
			return nil, &NegotiationError{Key: key, Value: value, Reason: "not a number from 512 to 16777215"}
		}
		n.declared[TargetMaxRecvDataSegmentLengthKey] = value
		return nil, nil
	case !known:
		return &iscsi.KeyValue{Key: key, Value: iscsi.ValueNotUnderstood}, nil
	}
	if _, done := n.result[key]; done {
		return nil, &NegotiationError{Key: key, Value: value, Reason: "offered again after it was settled"}
	}
	// A target offer: answer with the result of the key's function
	// between the target's value and ours (RFC 7143 6.2.2).
	ours := def.def
	if key == "HeaderDigest" || key == "DataDigest" {
		ours = n.offersValue(key)
	}
	answer, err := respond(def, ours, value)
	if err != nil {
		return &iscsi.KeyValue{Key: key, Value: iscsi.ValueReject}, nil
	}
	n.result[key] = answer
	return &iscsi.KeyValue{Key: key, Value: answer}, nil
}

func (n *negotiation) offersValue(key string) string {
	if v, ok := n.offers.Get(key); ok {
		return v
	}
	return operationalKeys[key].def
}

// settle checks the target's answer to an initiator offer against the
// key's function and records the result.
func (n *negotiation) settle(key, ours, theirs string, def keyDef) error {
	bad := func(reason string) error {
		return &NegotiationError{Key: key, Value: theirs, Reason: reason}
	}
	if isSpecial(theirs) {
		n.result[key] = def.def
		return nil
	}
	switch def.kind {
	case kindList:
		offered, err := iscsi.ParseList(ours)
		if err == nil && !slices.Contains(offered, theirs) {
			return bad(fmt.Sprintf("not one of the offered values %q", ours))
		}
	case kindAnd, kindOr:
		t, err := iscsi.ParseBoolean(theirs)
		if err != nil {
			return bad("not Yes or No")
		}
		if o, err := iscsi.ParseBoolean(ours); err == nil {
			if def.kind == kindAnd && !o && t {
				return bad("answered Yes to No for a Boolean AND key")
			}
			if def.kind == kindOr && o && !t {
				return bad("answered No to Yes for a Boolean OR key")
			}
		}
	case kindMin, kindMax:
		t, err := iscsi.ParseNumber(theirs)
		if err != nil || t < def.lo || t > def.hi {
			return bad(fmt.Sprintf("not a number from %d to %d", def.lo, def.hi))
		}
		if o, err := iscsi.ParseNumber(ours); err == nil {
			if def.kind == kindMin && t > o {
				return bad(fmt.Sprintf("above the offered %d for a minimum key", o))
			}
			if def.kind == kindMax && t < o {
				return bad(fmt.Sprintf("below the offered %d for a maximum key", o))
			}
		}
	}
	n.result[key] = theirs
	return nil
}

// respond computes the answer to a target offer.
func respond(def keyDef, ours, theirs string) (string, error) {
	switch def.kind {
	case kindList:
		acceptable, err := iscsi.ParseList(ours)
		if err != nil {
			return "", err
		}
		offered, err := iscsi.ParseList(theirs)
		if err != nil {
			return "", err
		}
		for _, v := range offered {
			if slices.Contains(acceptable, v) {
				return v, nil
			}
		}
		return "", fmt.Errorf("no common value")
	case kindAnd, kindOr:
		t, err := iscsi.ParseBoolean(theirs)
		if err != nil {
			return "", err
		}
		o, _ := iscsi.ParseBoolean(ours)
		if def.kind == kindAnd {
			return iscsi.FormatBoolean(o && t), nil
		}
		return iscsi.FormatBoolean(o || t), nil
	case kindMin, kindMax:
		t, err := iscsi.ParseNumber(theirs)
		if err != nil || t < def.lo || t > def.hi {
			return "", fmt.Errorf("out of range")
		}
		o, _ := iscsi.ParseNumber(ours)
		if def.kind == kindMin {
			return iscsi.FormatNumber(min(o, t)), nil
		}
		return iscsi.FormatNumber(max(o, t)), nil
	}
	return "", fmt.Errorf("not negotiable")
}

// finish checks that every offer was answered, except those whose answer
// is optional (Boolean AND offered No, OR offered Yes: RFC 7143 6.2.2),
// which settle to the offer.
func (n *negotiation) finish() error {
	for _, k := range slices.Sorted(maps.Keys(n.offered)) {
		ours := n.offered[k]
		def, known := operationalKeys[k]
		switch {
		case known && def.kind == kindAnd && ours == iscsi.ValueNo,
			known && def.kind == kindOr && ours == iscsi.ValueYes:
			n.result[k] = ours
		case !known:
			// Keys the initiator does not know are test probes; no answer
			// is recorded as no answer.
		default:
			return &NegotiationError{Key: k, Value: ours, Reason: "offer never answered"}
		}
	}
	return nil
}

// values returns the settled operational values, defaults filled in.
func (n *negotiation) values(discovery bool) map[string]string {
	m := map[string]string{}
	keys := normalOffers
	if discovery {
		keys = normalOffers[:3]
	}
	for _, k := range keys {
		m[k] = operationalKeys[k].def
	}
	maps.Copy(m, n.result)
	m[TargetMaxRecvDataSegmentLengthKey] = operationalKeys["MaxRecvDataSegmentLength"].def
	maps.Copy(m, n.declared)
	return m
}

// opParams are the values the data path needs, decoded once.
type opParams struct {
	headerDigest, dataDigest  bool
	maxRecvDataSegmentLength  int // the initiator's declaration
	maxXmitDataSegmentLength  int // the target's declaration
	maxBurstLength            int
	firstBurstLength          int
	initialR2T, immediateData bool
	maxOutstandingR2T         int
	dataPDUInOrder            bool
}

// decodeParams turns the settled values into opParams; a value the
// initiator cannot use is an error naming the key. A discovery session
// has no data path, so only digests and segment lengths matter.
func decodeParams(m map[string]string, discovery bool) (opParams, error) {
	var p opParams
	var err error
	num := func(k string) int {
		if err != nil {
			return 0
		}
		v, e := iscsi.ParseNumber(m[k])
		if e != nil || v > iscsi.MaxDataSegmentLength {
			err = &NegotiationError{Key: k, Value: m[k], Reason: "unusable value"}
		}
		return int(v)
	}
	boolean := func(k string) bool {
		if err != nil {
			return false
		}
		v, e := iscsi.ParseBoolean(m[k])
		if e != nil {
			err = &NegotiationError{Key: k, Value: m[k], Reason: "unusable value"}
		}
		return v
	}
	p.headerDigest = m["HeaderDigest"] == "CRC32C"
	p.dataDigest = m["DataDigest"] == "CRC32C"
	p.maxRecvDataSegmentLength = num("MaxRecvDataSegmentLength")
	p.maxXmitDataSegmentLength = num(TargetMaxRecvDataSegmentLengthKey)
	if discovery {
		return p, err
	}
	p.maxBurstLength = num("MaxBurstLength")
	p.firstBurstLength = num("FirstBurstLength")
	p.initialR2T = boolean("InitialR2T")
	p.immediateData = boolean("ImmediateData")
	p.maxOutstandingR2T = num("MaxOutstandingR2T")
	p.dataPDUInOrder = boolean("DataPDUInOrder")
	if err == nil && p.firstBurstLength > p.maxBurstLength && (!p.initialR2T || p.immediateData) {
		err = &NegotiationError{Key: "FirstBurstLength", Value: m["FirstBurstLength"],
			Reason: "exceeds MaxBurstLength (RFC 7143 13.14)"}
	}
	if err == nil && (p.maxRecvDataSegmentLength < 512 || p.maxXmitDataSegmentLength < 512) {
		err = &NegotiationError{Key: "MaxRecvDataSegmentLength", Value: m["MaxRecvDataSegmentLength"],
			Reason: "below 512"}
	}
	return p, err
}
