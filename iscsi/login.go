package iscsi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Login stages (RFC 7143 11.12.3, CSG and NSG fields).
const (
	stageSecurity    = 0
	stageOperational = 1
	stageFullFeature = 3
)

// Login Request and Response fields (RFC 7143 11.12, 11.13).
const (
	loginFlagTransit  = 0x80
	loginFlagContinue = 0x40
	offISID           = 8
	offTSIH           = 14
	offCID            = 20
	offLoginCmdSN     = 24
	offLoginExpStatSN = 28
	offStatusClass    = 36
)

// loginRequest is the decoded header of a Login Request.
type loginRequest struct {
	transit, cont bool
	csg, nsg      byte
	versionMax    byte
	versionMin    byte
	isid          [6]byte
	tsih          uint16
	itt           uint32
	cid           uint16
	cmdSN         uint32
	expStatSN     uint32
}

func parseLoginRequest(p *PDU) loginRequest {
	f := p.Flags()
	return loginRequest{
		transit:    f&loginFlagTransit != 0,
		cont:       f&loginFlagContinue != 0,
		csg:        f >> 2 & 3,
		nsg:        f & 3,
		versionMax: p.BHS[2],
		versionMin: p.BHS[3],
		isid:       [6]byte(p.BHS[offISID : offISID+6]),
		tsih:       p.Uint16(offTSIH),
		itt:        p.ITT(),
		cid:        p.Uint16(offCID),
		cmdSN:      p.Uint32(offLoginCmdSN),
		expStatSN:  p.Uint32(offLoginExpStatSN),
	}
}

// chapStep is the progress of CHAP on the target side (RFC 7143 12.1.3).
type chapStep uint8

const (
	chapNone       chapStep = iota // AuthMethod not yet chosen
	chapChosen                     // AuthMethod=CHAP answered, CHAP_A awaited
	chapChallenged                 // challenge sent, CHAP_N and CHAP_R awaited
	chapDone                       // authenticated
)

// loginState is the state of one connection's login phase.
type loginState struct {
	c       *conn
	req     loginRequest // the first request's header
	first   bool         // no complete request processed yet
	started bool         // the leading PDU has been checked
	stage   byte
	text    *TextBuffer
	statSN  uint32

	initiatorName, initiatorAlias string
	discovery                     bool
	target                        *Target
	tpg                           *TPG
	acl                           *ACL
	topo                          *topology // where target, tpg and acl were found
	auth                          *CHAP     // credentials the initiator must prove; nil for none
	authMethod                    string
	chap                          chapStep
	chapAlg                       CHAPAlgorithm
	chapID                        byte
	chapChallenge                 []byte
	declaredMRDSL                 bool
	p                             params
	neg                           negotiator
}

// login runs the login phase (RFC 7143 6.3) synchronously on the
// connection. On success the connection has a session and is in full
// feature phase.
func (c *conn) login() error {
	timeout := c.srv.loginTimeout
	if err := c.nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	ls := &loginState{c: c, first: true, text: NewTextBuffer(maxTextLength), p: defaultParams()}
	ls.neg = negotiator{p: &ls.p, seen: map[string]bool{}}
	var p PDU
	for {
		err := c.fr.ReadPDUInto(&p)
		var tooLong *DataSegmentTooLongError
		switch {
		case err == nil:
		case errors.As(err, &tooLong):
			return ls.fail(&p, loginErr(LoginInitiatorError, "%v", err))
		case errors.Is(err, os.ErrDeadlineExceeded):
			return errLoginTimeout
		default:
			var dd *DataDigestError
			if errors.As(err, &dd) {
				// Digests are off during login; the framer cannot report
				// this, but a wrapped reader might.
				return ls.fail(&p, loginErr(LoginInitiatorError, "%v", err))
			}
			return err
		}
		if p.Opcode() != OpLoginReq {
			// RFC 7143 6.3: only Login Requests are allowed before full
			// feature phase.
			return dropConn("%s during login", p.Opcode())
		}
		resp, done, lerr := ls.step(&p)
		if lerr != nil {
			return ls.fail(&p, lerr)
		}
		if err := c.writeLoginResponse(resp); err != nil {
			return err
		}
		if done {
			return c.nc.SetDeadline(time.Time{})
		}
	}
}

// loginResponse is a Login Response ready to send.
type loginResponse struct {
	pdu PDU
}

func (c *conn) writeLoginResponse(r *loginResponse) error {
	if err := c.fr.WritePDU(&r.pdu); err != nil {
		return err
	}
	return c.bw.Flush()
}

// fail sends a Login Response with the error's status and returns the
// error, after which the connection is closed (RFC 7143 11.13.5).
func (ls *loginState) fail(p *PDU, lerr *LoginError) error {
	r := ls.response(p)
	r.pdu.BHS[offStatusClass] = lerr.Status.Class()
	r.pdu.BHS[offStatusClass+1] = lerr.Status.Detail()
	r.pdu.BHS[1] = 0
	r.pdu.PutUint16(offTSIH, 0)
	// Best effort: the connection closes either way.
	_ = ls.c.writeLoginResponse(r)
	return lerr
}

// response returns a Login Response header answering p, with no flags and
// no data. StatSN advances with every response of the login (RFC 7143
// 11.13.4).
func (ls *loginState) response(p *PDU) *loginResponse {
	r := &loginResponse{}
	h := &r.pdu
	h.SetOpcode(OpLoginResp)
	copy(h.BHS[offISID:offISID+6], p.BHS[offISID:offISID+6])
	h.PutUint16(offTSIH, p.Uint16(offTSIH))
	h.SetITT(p.ITT())
	h.PutUint32(OffStatSN, ls.statSN)
	ls.statSN++
	// The Login Request is an immediate command; its CmdSN is the first
	// one of the session (RFC 7143 11.12.7).
	h.PutUint32(OffExpCmdSN, ls.req.cmdSN)
	h.PutUint32(OffMaxCmdSN, ls.req.cmdSN+cmdWindow-1)
	return r
}

// step processes one Login Request and returns the response; done is set
// when the response moves the connection to full feature phase.
func (ls *loginState) step(p *PDU) (*loginResponse, bool, *LoginError) {
	req := parseLoginRequest(p)
	if !ls.started {
		ls.started = true
		if err := ls.checkLeading(req); err != nil {
			return nil, false, err
		}
	} else if req.isid != ls.req.isid || req.tsih != ls.req.tsih || req.cid != ls.req.cid {
		// RFC 7143 11.12: ISID, TSIH and CID stay the same for the whole
		// login.
		return nil, false, loginErr(LoginInitiatorError, "ISID, TSIH or CID changed during login")
	}
	if req.transit && req.cont {
		return nil, false, loginErr(LoginInitiatorError, "T and C bits both set")
	}
	if req.csg != ls.stage {
		return nil, false, loginErr(LoginInvalidDuringLogin, "CSG %d while in stage %d", req.csg, ls.stage)
	}
	if req.transit && (req.nsg <= req.csg || req.nsg == 2) {
		return nil, false, loginErr(LoginInitiatorError, "cannot go from stage %d to %d", req.csg, req.nsg)
	}
	if err := ls.text.Append(p.Data); err != nil {
		return nil, false, loginErr(LoginInitiatorError, "%v", err)
	}
	r := ls.response(p)
	r.pdu.BHS[1] = ls.stage << 2
	if req.cont {
		// RFC 7143 11.12.2: answer each partial request with an empty
		// response until the text is complete.
		return r, false, nil
	}
	keys, err := ParseText(ls.text.Bytes())
	ls.text.Reset()
	if err != nil {
		return nil, false, loginErr(LoginInitiatorError, "%v", err)
	}
	var resp TextKeys
	if err := ls.processKeys(keys, &resp); err != nil {
		return nil, false, err
	}
	wasFirst := ls.first
	ls.first = false
	if wasFirst && !ls.discovery {
		// RFC 7143 13.9: the first response of a normal session names the
		// portal group.
		if !resp.Has("TargetPortalGroupTag") {
			resp.Add("TargetPortalGroupTag", FormatNumber(uint64(ls.tpg.Tag)))
		}
		if ls.target.Alias != "" && !resp.Has("TargetAlias") {
			resp.Add("TargetAlias", ls.target.Alias)
		}
	}
	done := false
	if req.transit && ls.mayLeave() {
		r.pdu.BHS[1] |= loginFlagTransit | req.nsg
		ls.stage = req.nsg
		done = req.nsg == stageFullFeature
	}
	// The target declares its MaxRecvDataSegmentLength in the operational
	// stage, or on a jump from security straight to full feature phase.
	if !ls.declaredMRDSL && (req.csg == stageOperational || done) {
		resp.Add("MaxRecvDataSegmentLength", FormatNumber(targetMaxRecvDataSegmentLength))
		ls.declaredMRDSL = true
	}
	ls.neg.finish(resp)
	if done {
		tsih, err := ls.c.srv.startSession(ls)
		if err != nil {
			return nil, false, err
		}
		r.pdu.PutUint16(offTSIH, tsih)
	}
	r.pdu.Data = resp.Encode()
	if len(r.pdu.Data) > loginMaxRecvDataSegmentLength {
		return nil, false, loginErr(LoginInitiatorError, "login response of %d bytes exceeds %d", len(r.pdu.Data), loginMaxRecvDataSegmentLength)
	}
	return r, done, nil
}

// checkLeading checks the header of the login's first PDU.
func (ls *loginState) checkLeading(req loginRequest) *LoginError {
	ls.req = req
	ls.statSN = req.expStatSN
	// odxtgt speaks version 0 only (RFC 7143 11.12.4).
	if req.versionMin != 0 {
		return loginErr(LoginUnsupportedVersion, "Version-min %d, only 0 is supported", req.versionMin)
	}
	if req.csg != stageSecurity && req.csg != stageOperational {
		return loginErr(LoginInitiatorError, "login starts in stage %d", req.csg)
	}
	ls.stage = req.csg
	return nil
}

// mayLeave reports whether the target agrees to leave the current stage:
// the security stage only once authentication is complete.
func (ls *loginState) mayLeave() bool {
	if ls.stage != stageSecurity || ls.auth == nil {
		return true
	}
	return ls.chap == chapDone
}

// processKeys answers the keys of one complete request.
func (ls *loginState) processKeys(keys TextKeys, resp *TextKeys) *LoginError {
	if ls.first {
		if err := ls.identify(keys); err != nil {
			return err
		}
	}
	var chapN, chapR, chapI, chapC *string
	for i := range keys {
		kv := keys[i]
		switch kv.Key {
		case "InitiatorName", "TargetName", "SessionType":
			if !ls.first {
				return loginErr(LoginInitiatorError, "%s after the first login request", kv.Key)
			}
		case "AuthMethod", "CHAP_A", "CHAP_N", "CHAP_R", "CHAP_I", "CHAP_C":
			if ls.stage != stageSecurity {
				return loginErr(LoginInvalidDuringLogin, "security key %s in the operational stage", kv.Key)
			}
			if ls.neg.seen[kv.Key] {
				return loginErr(LoginInitiatorError, "key %s sent twice", kv.Key)
			}
			ls.neg.seen[kv.Key] = true
			switch kv.Key {
			case "AuthMethod":
				if err := ls.authMethodKey(kv.Value, resp); err != nil {
					return err
				}
			case "CHAP_A":
				if err := ls.chapAlgorithmKey(kv.Value, resp); err != nil {
					return err
				}
			case "CHAP_N":
				chapN = &keys[i].Value
			case "CHAP_R":
				chapR = &keys[i].Value
			case "CHAP_I":
				chapI = &keys[i].Value
			case "CHAP_C":
				chapC = &keys[i].Value
			}
		default:
			if err := ls.neg.negotiate(kv, resp); err != nil {
				return err
			}
		}
	}
	if chapN != nil || chapR != nil || chapI != nil || chapC != nil {
		return ls.chapResponse(chapN, chapR, chapI, chapC, resp)
	}
	return nil
}

// identify handles the declarations of the leading login request: who the
// initiator is, which session type and which target (RFC 7143 6.3.1), and
// whether the initiator may log in.
func (ls *loginState) identify(keys TextKeys) *LoginError {
	srv := ls.c.srv
	name, ok := keys.Get("InitiatorName")
	if !ok || name == "" {
		return loginErr(LoginMissingParameter, "no InitiatorName")
	}
	// iSCSI names compare in their normalized, lowercase form (RFC 7143
	// 4.2.7.2, RFC 3722): configured names are lowercase already. The
	// limit applies to that form, which can be longer than what was sent
	// (U+023A lowercases to three bytes): the name goes into persistent
	// reservation state files, which refuse longer ones.
	name = strings.ToLower(name)
	if len(name) > maxNameLength {
		return loginErr(LoginInitiatorError, "InitiatorName longer than %d bytes", maxNameLength)
	}
	ls.initiatorName = name
	ls.initiatorAlias, _ = keys.Get("InitiatorAlias")
	switch st, _ := keys.Get("SessionType"); st {
	case "", "Normal":
	case "Discovery":
		ls.discovery = true
	default:
		return loginErr(LoginSessionTypeUnsupp, "SessionType=%.40q", st)
	}
	ls.neg.discovery = ls.discovery
	if ls.discovery {
		ls.auth = srv.cfg.DiscoveryAuth
	} else {
		tname, ok := keys.Get("TargetName")
		if !ok || tname == "" {
			return loginErr(LoginMissingParameter, "no TargetName in a normal session")
		}
		ls.topo = srv.topo.Load()
		t := ls.topo.targets[strings.ToLower(tname)]
		if t == nil {
			return loginErr(LoginNotFound, "no target %q", tname)
		}
		tpg := ls.topo.tpg(ls.c.portal.addr, t)
		if tpg == nil {
			return loginErr(LoginNotFound, "target %q is not served on portal %s", tname, ls.c.portal.addr)
		}
		acl, admitted := tpg.acl(name)
		if !admitted {
			return loginErr(LoginAuthorizationFailure, "initiator %q is not in the ACL of %q TPG %d", name, tname, tpg.Tag)
		}
		ls.target, ls.tpg, ls.acl = t, tpg, acl
		_, ls.auth = tpg.view(acl)
	}
	if ls.req.tsih != 0 {
		// Adding a connection to an existing session: MaxConnections is 1
		// (RFC 7143 6.3.1, 13.2).
		if srv.sessionByTSIH(ls.req.tsih) == nil {
			return loginErr(LoginSessionDoesNotExist, "no session with TSIH %d", ls.req.tsih)
		}
		return loginErr(LoginTooManyConnections, "session %d already has its one connection", ls.req.tsih)
	}
	if ls.auth != nil && ls.stage != stageSecurity {
		return loginErr(LoginAuthFailure, "authentication required but login skipped the security stage")
	}
	return nil
}

// authMethodKey answers AuthMethod: CHAP when credentials are required,
// otherwise None (RFC 7143 12.1).
func (ls *loginState) authMethodKey(offer string, resp *TextKeys) *LoginError {
	want := ValueNone
	if ls.auth != nil {
		want = "CHAP"
	}
	members, err := ParseList(offer)
	if err != nil {
		return loginErr(LoginInitiatorError, "AuthMethod: %v", err)
	}
	for _, m := range members {
		if m == want {
			ls.authMethod = want
			resp.Add("AuthMethod", want)
			if want == "CHAP" {
				ls.chap = chapChosen
			}
			return nil
		}
	}
	return loginErr(LoginAuthFailure, "AuthMethod=%.80q does not include %s", offer, want)
}

// chapAlgorithmKey answers CHAP_A with the algorithm, identifier and
// challenge.
func (ls *loginState) chapAlgorithmKey(offer string, resp *TextKeys) *LoginError {
	if ls.chap != chapChosen {
		return loginErr(LoginAuthFailure, "CHAP_A before AuthMethod=CHAP")
	}
	alg, ok := SelectCHAPAlgorithm(offer, DefaultCHAPAlgorithms)
	if !ok {
		return loginErr(LoginAuthFailure, "no supported algorithm in CHAP_A=%.80q", offer)
	}
	id, challenge, err := NewCHAPChallenge(alg)
	if err != nil {
		return loginErr(LoginTargetError, "CHAP challenge: %v", err)
	}
	ls.chapAlg, ls.chapID, ls.chapChallenge = alg, id, challenge
	ls.chap = chapChallenged
	resp.Add("CHAP_A", FormatNumber(uint64(alg)))
	resp.Add("CHAP_I", FormatNumber(uint64(id)))
	resp.Add("CHAP_C", EncodeHex(challenge))
	return nil
}

// chapResponse checks the initiator's CHAP_N and CHAP_R and, when it sent
// CHAP_I and CHAP_C, answers the mutual challenge.
func (ls *loginState) chapResponse(n, r, i, c *string, resp *TextKeys) *LoginError {
	if ls.chap != chapChallenged {
		return loginErr(LoginAuthFailure, "CHAP response before a challenge")
	}
	if n == nil || r == nil {
		return loginErr(LoginAuthFailure, "CHAP_N and CHAP_R are both required")
	}
	if (i == nil) != (c == nil) {
		return loginErr(LoginAuthFailure, "CHAP_I and CHAP_C must come together")
	}
	got, err := ParseCHAPBinary(*r)
	if err != nil {
		return loginErr(LoginAuthFailure, "CHAP_R: %v", err)
	}
	if *n != ls.auth.User || !VerifyCHAPResponse(ls.chapAlg, ls.chapID, []byte(ls.auth.Secret), ls.chapChallenge, got) {
		return loginErr(LoginAuthFailure, "CHAP %s response for user %q does not verify", ls.chapAlg, *n)
	}
	if i != nil {
		if !ls.auth.mutual() {
			return loginErr(LoginAuthFailure, "mutual CHAP requested but not configured")
		}
		id, err := ParseCHAPIdentifier(*i)
		if err != nil {
			return loginErr(LoginAuthFailure, "%v", err)
		}
		challenge, err := ParseCHAPBinary(*c)
		if err != nil {
			return loginErr(LoginAuthFailure, "CHAP_C: %v", err)
		}
		// RFC 7143 12.1.3: a challenge equal to the target's own is a
		// reflection attack.
		if string(challenge) == string(ls.chapChallenge) {
			return loginErr(LoginAuthFailure, "initiator reflected the target's CHAP challenge")
		}
		answer, err := CHAPResponse(ls.chapAlg, id, []byte(ls.auth.MutualSecret), challenge)
		if err != nil {
			return loginErr(LoginTargetError, "%v", err)
		}
		resp.Add("CHAP_N", ls.auth.MutualUser)
		resp.Add("CHAP_R", EncodeHex(answer))
	}
	ls.chap = chapDone
	return nil
}

// isidString formats an ISID as the 12 hex digits used in SCSI port names
// (RFC 7143 10.1.1).
func isidString(isid [6]byte) string {
	var b [8]byte
	copy(b[2:], isid[:])
	return fmt.Sprintf("%012x", binary.BigEndian.Uint64(b[:]))
}
