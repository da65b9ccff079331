package initiator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/odxtgt/odxtgt/iscsi"
)

// Login stages (RFC 7143 11.12.3).
const (
	stageSecurity    byte = 0
	stageOperational byte = 1
	stageFullFeature byte = 3
)

// Login flags (RFC 7143 11.12.2).
const (
	loginT = 0x80
	loginC = 0x40
)

const (
	// loginMaxDataSegment is the MaxRecvDataSegmentLength in force during
	// login (RFC 7143 13.12: the default until one is declared).
	loginMaxDataSegment = 8192
	// maxLoginText bounds one reassembled login response.
	maxLoginText = 64 << 10
	// maxLoginRounds bounds each login stage.
	maxLoginRounds = 16
	// isidRandom is the ISID type 10b, random (RFC 7143 11.12.5).
	isidRandom = 0x80
)

// Dial connects to addr ("host:port") and logs in.
func Dial(ctx context.Context, addr string, cfg Config) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return Login(ctx, conn, cfg)
}

func (c *Config) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return defaultTimeout
}

// Login logs in on an established connection and starts the session. On
// failure conn is closed. Errors are *LoginError (the target refused),
// *NegotiationError (the target's keys or CHAP were wrong), a
// *ProtocolError or an I/O or context error.
func Login(ctx context.Context, conn net.Conn, cfg Config) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	if d, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(d); err != nil {
			conn.Close()
			return nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	s := newSession(conn, cfg)
	err := s.login()
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = conn.SetDeadline(time.Time{})
	}
	if err != nil {
		conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("initiator: login: %w (%v)", cerr, err)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection deadline is the context's; it may fire first.
			return nil, fmt.Errorf("initiator: login: %w (%v)", context.DeadlineExceeded, err)
		}
		return nil, err
	}
	s.start()
	return s, nil
}

// loginConv is the login request/response exchange on one connection.
type loginConv struct {
	s        *Session
	itt      uint32
	haveStat bool
	lastResp *iscsi.PDU
	neg      *negotiation
	answers  iscsi.TextKeys // answers to target offers, sent next
}

func (s *Session) login() error {
	s.isid = s.cfg.ISID
	if s.isid == [6]byte{} {
		if _, err := rand.Read(s.isid[1:]); err != nil {
			return err
		}
		s.isid[0] = isidRandom
	}
	s.tsih = s.cfg.TSIH
	c := &loginConv{s: s, itt: s.NewITT(), neg: newNegotiation(&s.cfg)}
	if err := c.security(); err != nil {
		return err
	}
	if err := c.operational(); err != nil {
		return err
	}
	m := c.neg.values(s.cfg.Discovery)
	p, err := decodeParams(m, s.cfg.Discovery)
	if err != nil {
		return err
	}
	s.negotiated, s.params = m, p
	// Digests and the declared MaxRecvDataSegmentLength apply from the
	// first PDU after the final Login Response.
	s.fr.HeaderDigest, s.fr.DataDigest = p.headerDigest, p.dataDigest
	s.fr.MaxRecvDataSegmentLength = p.maxRecvDataSegmentLength
	r := c.lastResp
	s.tsih = r.Uint16(14)
	s.expCmdSN, s.maxCmdSN = r.Uint32(iscsi.OffExpCmdSN), r.Uint32(iscsi.OffMaxCmdSN)
	if s.expCmdSN != s.cmdSN {
		s.violate(iscsi.OpLoginResp, c.itt, "ExpCmdSN %d, the login CmdSN was %d", s.expCmdSN, s.cmdSN)
	}
	return nil
}

// security runs the security negotiation stage (RFC 7143 6.3, 12.1.3).
func (c *loginConv) security() error {
	cfg := &c.s.cfg
	keys := iscsi.TextKeys{{Key: "InitiatorName", Value: cfg.InitiatorName}}
	if cfg.Discovery {
		keys.Add("SessionType", "Discovery")
	} else {
		keys.Add("SessionType", "Normal")
		keys.Add("TargetName", cfg.TargetName)
	}
	auth := iscsi.ValueNone
	if cfg.CHAP != nil {
		auth = "CHAP"
	}
	if v, ok := cfg.Params["AuthMethod"]; ok {
		auth = v
	}
	keys.Add("AuthMethod", auth)
	offers, _ := iscsi.ParseList(auth)
	transit := !slices.Contains(offers, "CHAP")
	resp, err := c.exchange(stageSecurity, stageOperational, transit, keys)
	if err != nil {
		return err
	}
	method, ok := resp.Get("AuthMethod")
	switch {
	case !ok:
		return &NegotiationError{Key: "AuthMethod", Reason: "target did not answer"}
	case !slices.Contains(offers, method):
		return &NegotiationError{Key: "AuthMethod", Value: method, Reason: "not one of the offered methods " + auth}
	case method == "CHAP":
		if cfg.CHAP == nil {
			return &NegotiationError{Key: "AuthMethod", Value: method, Reason: "no CHAP credentials configured"}
		}
		if err := c.chap(); err != nil {
			return err
		}
	case method != iscsi.ValueNone:
		return &NegotiationError{Key: "AuthMethod", Value: method, Reason: "method not implemented"}
	}
	// Ask to move on until the target agrees.
	for range maxLoginRounds {
		if c.transited() {
			if next := c.nsg(); next != stageOperational {
				return &ProtocolError{Op: iscsi.OpLoginResp, ITT: c.itt,
					Msg: fmt.Sprintf("security stage ended with NSG %d", next)}
			}
			return nil
		}
		if _, err := c.exchange(stageSecurity, stageOperational, true, nil); err != nil {
			return err
		}
	}
	return &NegotiationError{Reason: "target never left the security stage"}
}

// chap runs CHAP after the target chose it: CHAP_A, then CHAP_N/CHAP_R
// and, for mutual CHAP, the initiator's own challenge (RFC 7143 12.1.3).
func (c *loginConv) chap() error {
	cc := c.s.cfg.CHAP
	algs := cc.Algorithms
	if len(algs) == 0 {
		algs = iscsi.DefaultCHAPAlgorithms
	}
	resp, err := c.exchange(stageSecurity, stageOperational, false,
		iscsi.TextKeys{{Key: "CHAP_A", Value: iscsi.FormatCHAPAlgorithms(algs)}})
	if err != nil {
		return err
	}
	get := func(k string) (string, error) {
		v, ok := resp.Get(k)
		if !ok {
			return "", &NegotiationError{Key: k, Reason: "missing from the target's CHAP challenge"}
		}
		return v, nil
	}
	av, err := get("CHAP_A")
	if err != nil {
		return err
	}
	alg, err := iscsi.ParseCHAPAlgorithm(av)
	if err != nil || !slices.Contains(algs, alg) {
		return &NegotiationError{Key: "CHAP_A", Value: av, Reason: "not one of the offered algorithms"}
	}
	iv, err := get("CHAP_I")
	if err != nil {
		return err
	}
	id, err := iscsi.ParseCHAPIdentifier(iv)
	if err != nil {
		return &NegotiationError{Key: "CHAP_I", Value: iv, Reason: err.Error()}
	}
	cv, err := get("CHAP_C")
	if err != nil {
		return err
	}
	challenge, err := iscsi.ParseCHAPBinary(cv)
	if err != nil {
		return &NegotiationError{Key: "CHAP_C", Value: cv, Reason: err.Error()}
	}
	r, err := iscsi.CHAPResponse(alg, id, []byte(cc.Secret), challenge)
	if err != nil {
		return err
	}
	keys := iscsi.TextKeys{{Key: "CHAP_N", Value: cc.User}, {Key: "CHAP_R", Value: iscsi.EncodeHex(r)}}
	mutual := cc.MutualSecret != ""
	var myID byte
	var myChallenge []byte
	if mutual {
		if myID, myChallenge, err = iscsi.NewCHAPChallenge(alg); err != nil {
			return err
		}
		keys.Add("CHAP_I", iscsi.FormatNumber(uint64(myID)))
		keys.Add("CHAP_C", iscsi.EncodeHex(myChallenge))
	}
	resp, err = c.exchange(stageSecurity, stageOperational, true, keys)
	if err != nil {
		return err
	}
	if !mutual {
		return nil
	}
	name, _ := resp.Get("CHAP_N")
	if name != cc.MutualUser {
		return &NegotiationError{Key: "CHAP_N", Value: name, Reason: "target name does not match MutualUser"}
	}
	rv, _ := resp.Get("CHAP_R")
	tr, err := iscsi.ParseCHAPBinary(rv)
	if err != nil || !iscsi.VerifyCHAPResponse(alg, myID, []byte(cc.MutualSecret), myChallenge, tr) {
		return &NegotiationError{Key: "CHAP_R", Value: rv, Reason: "target failed mutual authentication"}
	}
	return nil
}

// operational runs the operational negotiation stage until the target
// moves to full feature phase.
func (c *loginConv) operational() error {
	keys := append(c.takeAnswers(), c.neg.offers...)
	for range maxLoginRounds {
		resp, err := c.exchange(stageOperational, stageFullFeature, true, keys)
		if err != nil {
			return err
		}
		keys = nil
		for _, kv := range resp {
			a, err := c.neg.handle(kv.Key, kv.Value)
			if err != nil {
				return err
			}
			if a != nil {
				keys = append(keys, *a)
			}
		}
		if c.transited() {
			if c.nsg() != stageFullFeature {
				return &ProtocolError{Op: iscsi.OpLoginResp, ITT: c.itt,
					Msg: fmt.Sprintf("operational stage ended with NSG %d", c.nsg())}
			}
			if len(keys) > 0 {
				return &NegotiationError{Key: keys[0].Key, Value: keys[0].Value,
					Reason: "target ended the login while offering keys"}
			}
			if c.lastResp.Uint16(14) == 0 {
				return &ProtocolError{Op: iscsi.OpLoginResp, ITT: c.itt, Msg: "final Login Response with TSIH 0"}
			}
			return c.neg.finish()
		}
	}
	return &NegotiationError{Reason: "target never reached full feature phase"}
}

func (c *loginConv) takeAnswers() iscsi.TextKeys {
	a := c.answers
	c.answers = nil
	return a
}

func (c *loginConv) transited() bool { return c.lastResp.Flags()&loginT != 0 }

func (c *loginConv) nsg() byte { return c.lastResp.Flags() & 0x03 }

// exchange sends keys in one or more Login Requests (C bit when longer
// than the login data segment limit) and returns the target's complete
// answer, collecting continued responses with empty requests (RFC 7143
// 11.12.2). Keys of the security stage other than AuthMethod and CHAP_*
// go through the negotiation and their answers ride on the next request.
func (c *loginConv) exchange(csg, nsg byte, transit bool, keys iscsi.TextKeys) (iscsi.TextKeys, error) {
	if csg == stageSecurity {
		keys = append(keys, c.takeAnswers()...)
	}
	segs := iscsi.SplitText(keys.Encode(), loginMaxDataSegment)
	buf := iscsi.NewTextBuffer(maxLoginText)
	for i, seg := range segs {
		last := i == len(segs)-1
		r, err := c.roundTrip(csg, nsg, transit && last, !last, seg)
		if err != nil {
			return nil, err
		}
		if !last && (len(r.Data) != 0 || r.Flags()&(loginT|loginC) != 0) {
			return nil, &ProtocolError{Op: iscsi.OpLoginResp, ITT: c.itt,
				Msg: "answer to a continued Login Request is not empty"}
		}
		if last {
			if err := buf.Append(r.Data); err != nil {
				return nil, err
			}
		}
	}
	for c.lastResp.Flags()&loginC != 0 {
		r, err := c.roundTrip(csg, nsg, false, false, nil)
		if err != nil {
			return nil, err
		}
		if err := buf.Append(r.Data); err != nil {
			return nil, err
		}
	}
	resp, err := iscsi.ParseText(buf.Bytes())
	if err != nil {
		return nil, &ProtocolError{Op: iscsi.OpLoginResp, ITT: c.itt, Msg: err.Error()}
	}
	if csg == stageSecurity {
		for _, kv := range resp {
			if kv.Key == "AuthMethod" || len(kv.Key) > 5 && kv.Key[:5] == "CHAP_" {
				continue
			}
			a, err := c.neg.handle(kv.Key, kv.Value)
			if err != nil {
				return nil, err
			}
			if a != nil {
				c.answers = append(c.answers, *a)
			}
		}
	}
	return resp, nil
}

// roundTrip sends one Login Request and reads and checks its response
// (RFC 7143 11.12, 11.13).
func (c *loginConv) roundTrip(csg, nsg byte, transit, cont bool, data []byte) (*iscsi.PDU, error) {
	s := c.s
	p := &iscsi.PDU{Data: data}
	p.SetOpcode(iscsi.OpLoginReq)
	p.SetImmediate(true)
	flags := csg << 2
	if transit {
		flags |= loginT | nsg
	}
	if cont {
		flags |= loginC
	}
	p.BHS[1] = flags // Version-max and Version-min (bytes 2-3) are 0
	copy(p.BHS[8:14], s.isid[:])
	p.PutUint16(14, s.tsih)
	p.SetITT(c.itt)
	p.PutUint32(iscsi.OffCmdSN, s.cmdSN)
	p.PutUint32(iscsi.OffExpStatSN, s.expStatSN)
	if err := s.fr.WritePDU(p); err != nil {
		return nil, err
	}
	r, err := s.fr.ReadPDU()
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return &ProtocolError{Op: r.Opcode(), ITT: r.ITT(), Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case r.Opcode() == iscsi.OpReject && len(r.Data) >= iscsi.BHSLength:
		return nil, &RejectError{Reason: r.BHS[2], Header: [iscsi.BHSLength]byte(r.Data)}
	case r.Opcode() != iscsi.OpLoginResp:
		return nil, bad("%s during login", r.Opcode())
	case r.ITT() != c.itt:
		return nil, bad("ITT %#x, sent %#x", r.ITT(), c.itt)
	}
	if class := r.BHS[36]; class != LoginClassSuccess {
		le := &LoginError{Class: class, Detail: r.BHS[37]}
		if keys, err := iscsi.ParseText(r.Data); err == nil {
			le.TargetAddress, _ = keys.Get("TargetAddress")
		}
		return nil, le
	}
	statSN := r.Uint32(iscsi.OffStatSN)
	rf := r.Flags()
	switch {
	case r.BHS[3] != 0:
		return nil, bad("Version-active %d", r.BHS[3])
	case [6]byte(r.BHS[8:14]) != s.isid:
		return nil, bad("ISID %x, sent %x", r.BHS[8:14], s.isid)
	case (rf>>2)&0x03 != csg:
		return nil, bad("CSG %d, sent %d", (rf>>2)&0x03, csg)
	case rf&loginT != 0 && !transit:
		return nil, bad("T bit set without the initiator's")
	case rf&loginT != 0 && (rf&0x03 > nsg || rf&0x03 <= csg):
		return nil, bad("NSG %d, initiator asked for %d", rf&0x03, nsg)
	case rf&loginT != 0 && rf&loginC != 0:
		return nil, bad("T and C bits both set")
	case c.haveStat && statSN != s.expStatSN:
		return nil, bad("StatSN %d, expected %d", statSN, s.expStatSN)
	}
	c.haveStat = true
	s.expStatSN = statSN + 1
	c.lastResp = r
	return r, nil
}
