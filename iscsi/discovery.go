package iscsi

import (
	"net"
	"strconv"
	"strings"
)

// Text Request and Response flags (RFC 7143 11.10.1, 11.11.1).
const (
	textFlagFinal    = 0x80
	textFlagContinue = 0x40
)

// textExchange is a text negotiation in progress on a connection: a
// request arriving in pieces (C bit) or a response too long for one PDU,
// handed out as the initiator asks for more (RFC 7143 11.10.2).
type textExchange struct {
	active  bool
	itt     uint32
	ttt     uint32
	final   bool // the request had the F bit
	buf     *TextBuffer
	pending []byte // response text not yet sent
}

func (x *textExchange) reset() {
	x.active = false
	x.pending = nil
	if x.buf != nil {
		x.buf.Reset()
	}
}

// processText handles a Text Request (RFC 7143 11.10): SendTargets and the
// keys that may change in full feature phase.
func (c *conn) processText(p *PDU) error {
	itt := p.ITT()
	ttt := p.Uint32(OffTTT)
	final := p.Flags()&textFlagFinal != 0
	cont := p.Flags()&textFlagContinue != 0
	if final && cont {
		return reject(RejectProtocolError, "Text Request with F and C set")
	}
	x := &c.text
	switch {
	case ttt == ReservedTag:
		// A new exchange; it replaces one in progress (RFC 7143 11.10.4).
		x.reset()
		x.active, x.itt = true, itt
		if x.buf == nil {
			x.buf = NewTextBuffer(maxTextLength)
		}
	case !x.active || ttt != x.ttt || itt != x.itt:
		return reject(RejectInvalidPDUField, "Text Request TTT %#x continues no exchange", ttt)
	}
	if len(x.pending) > 0 {
		if len(p.Data) > 0 {
			x.reset()
			return reject(RejectProtocolError, "Text Request with data while a response is pending")
		}
		c.sendTextChunk()
		return nil
	}
	if err := x.buf.Append(p.Data); err != nil {
		x.reset()
		return reject(RejectProtocolError, "%v", err)
	}
	if cont {
		x.ttt = c.newTextTTT()
		o := c.queue(OpTextResp, 0, itt)
		o.put32(OffTTT, x.ttt)
		c.stamp(o, true)
		return nil
	}
	keys, err := ParseText(x.buf.Bytes())
	x.buf.Reset()
	if err != nil {
		x.reset()
		return reject(RejectProtocolError, "%v", err)
	}
	var resp TextKeys
	n := negotiator{p: &c.p, discovery: c.sess.discovery, ffp: true, seen: map[string]bool{}}
	for _, kv := range keys {
		if kv.Key == "SendTargets" {
			c.sendTargets(kv.Value, &resp)
			continue
		}
		if lerr := n.negotiate(kv, &resp); lerr != nil {
			x.reset()
			return reject(RejectProtocolError, "%s", lerr.Reason)
		}
	}
	x.final = final
	x.pending = resp.Encode()
	c.sendTextChunk()
	return nil
}

// sendTextChunk sends as much of the pending response as the initiator
// accepts in one PDU: with the C bit and a TTT to ask for the rest when
// more remains, with F when the exchange is over.
func (c *conn) sendTextChunk() {
	x := &c.text
	chunk := x.pending
	limit := int(c.p.MaxSendDataSegmentLength)
	more := len(chunk) > limit
	if more {
		chunk = chunk[:limit]
	}
	x.pending = x.pending[len(chunk):]
	var flags byte
	ttt := uint32(ReservedTag)
	switch {
	case more:
		flags = textFlagContinue
		x.ttt = c.newTextTTT()
		ttt = x.ttt
	case x.final:
		flags = textFlagFinal
		x.reset()
	default:
		// The initiator has more to negotiate (F=0); it continues with
		// this TTT.
		x.ttt = c.newTextTTT()
		ttt = x.ttt
	}
	o := c.queue(OpTextResp, flags, x.itt)
	o.put32(OffTTT, ttt)
	c.stamp(o, true)
	o.data = chunk
}

func (c *conn) newTextTTT() uint32 {
	c.nextTTT++
	if c.nextTTT == ReservedTag {
		c.nextTTT = 0
	}
	return c.nextTTT
}

// sendTargets answers SendTargets (RFC 7143 12.3, Appendix C): All lists
// every target the initiator may see and is allowed in discovery sessions
// only; a target name lists that target; an empty value the session's
// own target (normal sessions).
func (c *conn) sendTargets(val string, resp *TextKeys) {
	switch {
	case val == "All":
		if !c.sess.discovery {
			resp.Add("SendTargets", ValueReject)
			return
		}
		for _, t := range c.srv.topo.Load().list {
			c.describeTarget(t, resp)
		}
	case val == "":
		if t := c.srv.topo.Load().targets[c.sess.targetName]; !c.sess.discovery && t != nil {
			c.describeTarget(t, resp)
		}
	default:
		if t := c.srv.topo.Load().targets[strings.ToLower(val)]; t != nil {
			c.describeTarget(t, resp)
		}
	}
}

// describeTarget adds TargetName and a TargetAddress for every portal of
// every portal group of t that admits the initiator; nothing when none
// does.
func (c *conn) describeTarget(t *Target, resp *TextKeys) {
	var addrs []string
	for _, g := range t.TPGs {
		if _, ok := g.acl(c.sess.initiatorName); !ok {
			continue
		}
		tag := strconv.Itoa(int(g.Tag))
		for _, pa := range g.Portals {
			addrs = append(addrs, c.srv.portalAddress(pa, c.nc)+","+tag)
		}
	}
	if len(addrs) == 0 {
		return
	}
	resp.Add("TargetName", t.Name)
	for _, a := range addrs {
		resp.Add("TargetAddress", a)
	}
}

// portalAddress is the address initiators reach a portal at: the listen
// address with its real port, and for a wildcard host the local address
// of the connection asking.
func (s *Server) portalAddress(configured string, nc net.Conn) string {
	addr := configured
	s.mu.Lock()
	for _, p := range s.portals {
		if p.addr == configured && p.ln != nil {
			addr = p.ln.Addr().String()
		}
	}
	s.mu.Unlock()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if la, ok := nc.LocalAddr().(*net.TCPAddr); ok {
			host = la.IP.String()
		}
	}
	return net.JoinHostPort(host, port)
}
