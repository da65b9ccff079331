package initiator_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/scsi"
	"github.com/stretchr/testify/require"
)

// The fake target is a deliberately small, independent iSCSI target for
// exercising the initiator: a 1 MiB memory disk with READ(10), WRITE(10)
// and TEST UNIT READY, R2Ts, Data-In with or without status, NOP-In pings,
// task management, SendTargets with continuation, logout, CHAP. It checks
// the initiator's side of the protocol and records what it finds.

const (
	fakeBlock    = 512
	fakeDiskSize = 1 << 20
	fakeTarget   = "iqn.2024-01.org.odxtgt:fake"
	fakeInit     = "iqn.2024-01.org.odxtgt:initiator"
	opHang       = 0xC0 // vendor opcode the fake never answers
)

type fakeConfig struct {
	chapUser, chapSecret     string
	mutualUser, mutualSecret string
	// keys are the target's own values for negotiation.
	keys map[string]string
	// depth is the command window (MaxCmdSN - ExpCmdSN + 1).
	depth uint32
	// dataInSize caps Data-In segments (beside the initiator's limit).
	dataInSize int
	// statusInData sends status in the last Data-In.
	statusInData bool
	// extraTargets adds targets to SendTargets answers.
	extraTargets int
	// mutate, if set, may change each PDU before it is sent.
	mutate func(p *iscsi.PDU)
	// loginFail answers the first login request with this status class
	// and detail when non-zero.
	loginFail [2]byte
}

type fake struct {
	t    *testing.T
	cfg  fakeConfig
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	disk []byte
	errs []string
	// conns are the live connections, for target-initiated pings.
	conns []*fconn
	// pingAnswers receives the data of NOP-Outs answering target pings.
	pingAnswers chan []byte
}

func newFake(t *testing.T, cfg fakeConfig) *fake {
	t.Helper()
	if cfg.depth == 0 {
		cfg.depth = 32
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fake{t: t, cfg: cfg, ln: ln, disk: make([]byte, fakeDiskSize), pingAnswers: make(chan []byte, 4)}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.nc.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.errs {
			t.Errorf("fake target saw: %s", e)
		}
	})
	return f
}

func (f *fake) addr() string { return f.ln.Addr().String() }

func (f *fake) errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *fake) accept() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		c := &fconn{f: f, nc: nc, fr: iscsi.NewFramer(nc, nc), statSN: 0x1000,
			writes: map[uint32]*fwrite{}, hung: map[uint32]uint64{}, initMRDSL: 8192, maxBurst: 262144,
			firstBurst: 65536, maxR2T: 1, immediate: true, initialR2T: true}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer nc.Close()
			c.run()
		}()
	}
}

// ping makes every connection send a target NOP-In with data.
func (f *fake) ping(data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		p := &iscsi.PDU{Data: data}
		p.SetOpcode(iscsi.OpNOPIn)
		p.SetFinal(true)
		p.SetITT(iscsi.ReservedTag)
		p.PutUint32(iscsi.OffTTT, 0x7777)
		c.send(p, false)
	}
}

type fconn struct {
	f  *fake
	nc net.Conn
	fr *iscsi.Framer

	wmu      sync.Mutex // guards writes and the sequence numbers below
	statSN   uint32
	expCmdSN uint32

	discovery                  bool
	initMRDSL, maxBurst        int
	firstBurst, maxR2T         int
	immediate, initialR2T      bool
	headerDigest, dataDigest   bool
	writes                     map[uint32]*fwrite
	hung                       map[uint32]uint64 // ITT -> LUN of never-answered commands
	nextTTT                    uint32
	textTTT                    uint32
	textRest                   []byte
	chapAlg                    iscsi.CHAPAlgorithm
	chapID                     byte
	chapChallenge              []byte
	authDone, chapNeeded, full bool
}

type fwrite struct {
	itt, ttt    uint32
	lun         [8]byte
	lba         int
	buf         []byte
	got         int
	next        int // next offset to solicit
	outstanding int
	r2tSN       uint32
	seqEnd      int // end of the current R2T or unsolicited sequence
}

// send fills the sequence numbers and writes p; advance consumes a StatSN.
func (c *fconn) send(p *iscsi.PDU, advance bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p.PutUint32(iscsi.OffStatSN, c.statSN)
	if advance {
		c.statSN++
	}
	p.PutUint32(iscsi.OffExpCmdSN, c.expCmdSN)
	p.PutUint32(iscsi.OffMaxCmdSN, c.expCmdSN+c.f.cfg.depth-1)
	if c.f.cfg.mutate != nil && c.full {
		c.f.cfg.mutate(p)
	}
	_ = c.fr.WritePDU(p)
}

func (c *fconn) run() {
	if !c.login() {
		return
	}
	for {
		p, err := c.fr.ReadPDU()
		if err != nil {
			return
		}
		if !c.handle(p) {
			return
		}
	}
}

// login runs the fake's side of login; false ends the connection.
func (c *fconn) login() bool {
	buf := iscsi.NewTextBuffer(1 << 16)
	first := true
	for {
		p, err := c.fr.ReadPDU()
		if err != nil {
			return false
		}
		if p.Opcode() != iscsi.OpLoginReq {
			c.f.errorf("%s during login", p.Opcode())
			return false
		}
		c.wmu.Lock()
		c.expCmdSN = p.Uint32(iscsi.OffCmdSN)
		c.wmu.Unlock()
		r := &iscsi.PDU{}
		r.SetOpcode(iscsi.OpLoginResp)
		copy(r.BHS[8:16], p.BHS[8:16])
		r.SetITT(p.ITT())
		csg := (p.Flags() >> 2) & 3
		if first && c.f.cfg.loginFail != [2]byte{} {
			r.BHS[36], r.BHS[37] = c.f.cfg.loginFail[0], c.f.cfg.loginFail[1]
			c.send(r, true)
			return false
		}
		first = false
		_ = buf.Append(p.Data)
		if p.Flags()&0x40 != 0 { // C bit: ask for the rest
			r.BHS[1] = csg << 2
			c.send(r, true)
			continue
		}
		keys, err := iscsi.ParseText(buf.Bytes())
		buf.Reset()
		if err != nil {
			c.f.errorf("login text: %v", err)
			return false
		}
		var out iscsi.TextKeys
		ok := true
		if csg == 0 {
			out, ok = c.securityKeys(keys)
		} else {
			out = c.operationalKeys(keys)
		}
		if !ok {
			r.BHS[36], r.BHS[37] = 2, 1 // authentication failure
			c.send(r, true)
			return false
		}
		flags := csg << 2
		transit := p.Flags()&0x80 != 0 && (csg != 0 || !c.chapNeeded || c.authDone)
		if transit {
			flags |= 0x80 | p.Flags()&3
		}
		r.BHS[1] = flags
		r.Data = out.Encode()
		if transit && p.Flags()&3 == 3 {
			r.PutUint16(14, 1) // TSIH
			c.send(r, true)
			c.fr.HeaderDigest, c.fr.DataDigest = c.headerDigest, c.dataDigest
			c.fr.MaxRecvDataSegmentLength = 262144
			c.full = true
			return true
		}
		c.send(r, true)
	}
}

func (c *fconn) securityKeys(keys iscsi.TextKeys) (iscsi.TextKeys, bool) {
	cfg := &c.f.cfg
	var out iscsi.TextKeys
	if v, ok := keys.Get("SessionType"); ok {
		c.discovery = v == "Discovery"
		if !c.discovery {
			if tn, _ := keys.Get("TargetName"); tn != fakeTarget {
				return nil, false
			}
		}
	}
	if v, ok := keys.Get("AuthMethod"); ok {
		offered, _ := iscsi.ParseList(v)
		want := iscsi.ValueNone
		if cfg.chapSecret != "" {
			want, c.chapNeeded = "CHAP", true
		}
		if !slices.Contains(offered, want) {
			return nil, false
		}
		out.Add("AuthMethod", want)
		out.Add("TargetPortalGroupTag", "1")
	}
	if v, ok := keys.Get("CHAP_A"); ok {
		alg, found := iscsi.SelectCHAPAlgorithm(v, iscsi.DefaultCHAPAlgorithms)
		if !found {
			out.Add("CHAP_A", iscsi.ValueReject)
			return out, true
		}
		c.chapAlg = alg
		c.chapID, c.chapChallenge, _ = iscsi.NewCHAPChallenge(alg)
		out.Add("CHAP_A", strconv.Itoa(int(alg)))
		out.Add("CHAP_I", strconv.Itoa(int(c.chapID)))
		out.Add("CHAP_C", iscsi.EncodeBase64(c.chapChallenge))
	}
	if rv, ok := keys.Get("CHAP_R"); ok {
		n, _ := keys.Get("CHAP_N")
		resp, err := iscsi.ParseCHAPBinary(rv)
		if err != nil || n != cfg.chapUser ||
			!iscsi.VerifyCHAPResponse(c.chapAlg, c.chapID, []byte(cfg.chapSecret), c.chapChallenge, resp) {
			return nil, false
		}
		if cv, ok := keys.Get("CHAP_C"); ok {
			iv, _ := keys.Get("CHAP_I")
			id, err1 := iscsi.ParseCHAPIdentifier(iv)
			ch, err2 := iscsi.ParseCHAPBinary(cv)
			if err1 != nil || err2 != nil || cfg.mutualSecret == "" {
				return nil, false
			}
			r, _ := iscsi.CHAPResponse(c.chapAlg, id, []byte(cfg.mutualSecret), ch)
			out.Add("CHAP_N", cfg.mutualUser)
			out.Add("CHAP_R", iscsi.EncodeHex(r))
		}
		c.authDone = true
	}
	return out, true
}

// fakeDefaults are the fake's own values for keys it negotiates.
var fakeDefaults = map[string]string{
	"MaxRecvDataSegmentLength": "65536", "MaxBurstLength": "262144", "FirstBurstLength": "65536",
	"MaxOutstandingR2T": "4", "ImmediateData": "Yes", "InitialR2T": "No", "MaxConnections": "1",
	"DefaultTime2Wait": "2", "DefaultTime2Retain": "20", "DataPDUInOrder": "Yes",
	"DataSequenceInOrder": "Yes", "ErrorRecoveryLevel": "0",
}

func (c *fconn) own(k string) string {
	if v, ok := c.f.cfg.keys[k]; ok {
		return v
	}
	return fakeDefaults[k]
}

func (c *fconn) operationalKeys(keys iscsi.TextKeys) iscsi.TextKeys {
	var out iscsi.TextKeys
	num := func(s string) int { v, _ := iscsi.ParseNumber(s); return int(v) }
	for _, kv := range keys {
		k, v := kv.Key, kv.Value
		switch k {
		case "HeaderDigest", "DataDigest":
			ans := iscsi.ValueReject
			vals, _ := iscsi.ParseList(v)
			for _, x := range vals {
				if x == "CRC32C" || x == iscsi.ValueNone {
					ans = x
					break
				}
			}
			if k == "HeaderDigest" {
				c.headerDigest = ans == "CRC32C"
			} else {
				c.dataDigest = ans == "CRC32C"
			}
			out.Add(k, ans)
		case "MaxRecvDataSegmentLength":
			c.initMRDSL = num(v)
		case "MaxBurstLength", "FirstBurstLength", "MaxOutstandingR2T", "MaxConnections",
			"DefaultTime2Retain", "ErrorRecoveryLevel":
			if c.discovery && k != "DefaultTime2Retain" {
				out.Add(k, iscsi.ValueIrrelevant)
				continue
			}
			ans := min(num(v), num(c.own(k)))
			switch k {
			case "MaxBurstLength":
				c.maxBurst = ans
			case "FirstBurstLength":
				c.firstBurst = ans
			case "MaxOutstandingR2T":
				c.maxR2T = ans
			}
			out.Add(k, strconv.Itoa(ans))
		case "DefaultTime2Wait":
			out.Add(k, strconv.Itoa(max(num(v), num(c.own(k)))))
		case "ImmediateData":
			ans := iscsi.FormatBoolean(v == "Yes" && c.own(k) == "Yes")
			c.immediate = ans == "Yes"
			out.Add(k, ans)
		case "InitialR2T", "DataPDUInOrder", "DataSequenceInOrder":
			ans := iscsi.FormatBoolean(v == "Yes" || c.own(k) == "Yes")
			if k == "InitialR2T" {
				c.initialR2T = ans == "Yes"
			}
			out.Add(k, ans)
		default:
			out.Add(k, iscsi.ValueNotUnderstood)
		}
	}
	if !out.Has("MaxRecvDataSegmentLength") {
		out.Add("MaxRecvDataSegmentLength", c.own("MaxRecvDataSegmentLength"))
	}
	return out
}

// handle processes one full feature phase PDU; false ends the connection.
func (c *fconn) handle(p *iscsi.PDU) bool {
	op := p.Opcode()
	switch op {
	case iscsi.OpSCSICommand, iscsi.OpTaskMgmtReq, iscsi.OpTextReq, iscsi.OpLogoutReq, iscsi.OpNOPOut:
		if op == iscsi.OpNOPOut && p.ITT() == iscsi.ReservedTag {
			break
		}
		sn := p.Uint32(iscsi.OffCmdSN)
		c.wmu.Lock()
		maxSN := c.expCmdSN + c.f.cfg.depth - 1
		if !p.Immediate() {
			if sn != c.expCmdSN {
				c.f.errorf("%s CmdSN %d, expected %d", op, sn, c.expCmdSN)
			}
			if int32(sn-maxSN) > 0 {
				c.f.errorf("%s CmdSN %d beyond MaxCmdSN %d", op, sn, maxSN)
			}
			c.expCmdSN = sn + 1
		} else if sn != c.expCmdSN {
			c.f.errorf("immediate %s CmdSN %d, expected %d", op, sn, c.expCmdSN)
		}
		c.wmu.Unlock()
	}
	switch op {
	case iscsi.OpSCSICommand:
		c.command(p)
	case iscsi.OpDataOut:
		c.dataOut(p)
	case iscsi.OpNOPOut:
		if p.ITT() == iscsi.ReservedTag {
			if p.Uint32(iscsi.OffTTT) != 0x7777 || !p.Immediate() {
				c.f.errorf("bad NOP-Out answer: TTT %#x", p.Uint32(iscsi.OffTTT))
			}
			c.f.pingAnswers <- append([]byte(nil), p.Data...)
			return true
		}
		r := &iscsi.PDU{Data: append([]byte(nil), p.Data...)}
		r.SetOpcode(iscsi.OpNOPIn)
		r.SetFinal(true)
		r.SetITT(p.ITT())
		r.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
		c.send(r, true)
	case iscsi.OpTaskMgmtReq:
		c.tmf(p)
	case iscsi.OpTextReq:
		c.text(p)
	case iscsi.OpLogoutReq:
		r := &iscsi.PDU{}
		r.SetOpcode(iscsi.OpLogoutResp)
		r.SetFinal(true)
		r.SetITT(p.ITT())
		c.send(r, true)
		return false
	default:
		c.f.errorf("unexpected %s", op)
	}
	return true
}

func (c *fconn) scsiResponse(itt uint32, status scsi.Status, sense []byte, flags byte, residual uint32) {
	r := &iscsi.PDU{}
	r.SetOpcode(iscsi.OpSCSIResponse)
	r.BHS[1] = 0x80 | flags
	r.BHS[3] = byte(status)
	r.SetITT(itt)
	r.PutUint32(iscsi.OffResidual, residual)
	if len(sense) > 0 {
		r.Data = binary.BigEndian.AppendUint16(nil, uint16(len(sense)))
		r.Data = append(r.Data, sense...)
	}
	c.send(r, true)
}

func (c *fconn) command(p *iscsi.PDU) {
	cdb := p.BHS[iscsi.OffCDB : iscsi.OffCDB+16]
	itt := p.ITT()
	edtl := int(p.Uint32(iscsi.OffEDTL))
	switch cdb[0] {
	case 0x00: // TEST UNIT READY
		c.scsiResponse(itt, scsi.StatusGood, nil, 0, 0)
	case opHang:
		lun, _ := scsi.DecodeLUN(p.LUN())
		c.hung[itt] = lun
	case 0x28: // READ(10)
		lba := int(binary.BigEndian.Uint32(cdb[2:]))
		n := int(binary.BigEndian.Uint16(cdb[7:])) * fakeBlock
		if lba*fakeBlock+n > fakeDiskSize {
			c.scsiResponse(itt, scsi.StatusCheckCondition, scsi.LBAOutOfRange().Encode(false), 0, 0)
			return
		}
		c.f.mu.Lock()
		data := append([]byte(nil), c.f.disk[lba*fakeBlock:lba*fakeBlock+n]...)
		c.f.mu.Unlock()
		c.dataIn(p, data, edtl)
	case 0x2A: // WRITE(10)
		lba := int(binary.BigEndian.Uint32(cdb[2:]))
		n := int(binary.BigEndian.Uint16(cdb[7:])) * fakeBlock
		if n != edtl || p.Flags()&0x20 == 0 {
			c.f.errorf("WRITE(10) of %d bytes with EDTL %d", n, edtl)
			return
		}
		if lba*fakeBlock+n > fakeDiskSize {
			c.scsiResponse(itt, scsi.StatusCheckCondition, scsi.LBAOutOfRange().Encode(false), 0, 0)
			return
		}
		w := &fwrite{itt: itt, lun: p.LUN(), lba: lba, buf: make([]byte, n), ttt: iscsi.ReservedTag}
		copy(w.buf, p.Data)
		w.got = len(p.Data)
		if len(p.Data) > 0 && !c.immediate {
			c.f.errorf("immediate data with ImmediateData=No")
		}
		w.next = len(p.Data)
		if p.Flags()&0x80 == 0 { // unsolicited Data-Out follows
			if c.initialR2T {
				c.f.errorf("unsolicited Data-Out announced with InitialR2T=Yes")
			}
			w.next = min(n, c.firstBurst)
			w.seqEnd = w.next
		}
		c.writes[itt] = w
		c.solicit(w)
	default:
		c.scsiResponse(itt, scsi.StatusCheckCondition, scsi.InvalidOpcode().Encode(false), 0, 0)
	}
}

func (c *fconn) dataIn(p *iscsi.PDU, data []byte, edtl int) {
	var flags byte
	var residual uint32
	switch {
	case len(data) > edtl:
		flags, residual = 0x04, uint32(len(data)-edtl)
		data = data[:edtl]
	case len(data) < edtl:
		flags, residual = 0x02, uint32(edtl-len(data))
	}
	size := c.initMRDSL
	if c.f.cfg.dataInSize > 0 {
		size = min(size, c.f.cfg.dataInSize)
	}
	var sn uint32
	for off := 0; off < len(data); {
		n := min(size, len(data)-off)
		last := off+n == len(data)
		d := &iscsi.PDU{Data: data[off : off+n]}
		d.SetOpcode(iscsi.OpDataIn)
		d.SetITT(p.ITT())
		d.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
		d.PutUint32(iscsi.OffDataSN, sn)
		d.PutUint32(iscsi.OffBufferOffset, uint32(off))
		status := last && c.f.cfg.statusInData
		if last {
			d.BHS[1] = 0x80
		}
		if status {
			d.BHS[1] |= 0x01 | flags
			d.PutUint32(iscsi.OffResidual, residual)
		}
		c.send(d, status)
		sn++
		off += n
		if status {
			return
		}
	}
	r := &iscsi.PDU{}
	r.SetOpcode(iscsi.OpSCSIResponse)
	r.BHS[1] = 0x80 | flags
	r.SetITT(p.ITT())
	r.PutUint32(iscsi.OffDataSN, sn) // ExpDataSN
	r.PutUint32(iscsi.OffResidual, residual)
	c.send(r, true)
}

// solicit sends R2Ts while fewer than MaxOutstandingR2T are outstanding.
func (c *fconn) solicit(w *fwrite) {
	if w.got == len(w.buf) && w.outstanding == 0 {
		c.f.mu.Lock()
		copy(c.f.disk[w.lba*fakeBlock:], w.buf)
		c.f.mu.Unlock()
		delete(c.writes, w.itt)
		c.scsiResponse(w.itt, scsi.StatusGood, nil, 0, 0)
		return
	}
	if w.ttt == iscsi.ReservedTag && w.seqEnd > w.got {
		return // unsolicited data still coming
	}
	for w.outstanding < c.maxR2T && w.next < len(w.buf) {
		n := min(c.maxBurst, len(w.buf)-w.next)
		c.nextTTT++
		r := &iscsi.PDU{}
		r.SetOpcode(iscsi.OpR2T)
		r.SetFinal(true)
		r.SetLUN(w.lun)
		r.SetITT(w.itt)
		r.PutUint32(iscsi.OffTTT, c.nextTTT)
		r.PutUint32(iscsi.OffDataSN, w.r2tSN)
		r.PutUint32(iscsi.OffBufferOffset, uint32(w.next))
		r.PutUint32(iscsi.OffDesiredDTL, uint32(n))
		w.r2tSN++
		w.next += n
		w.outstanding++
		c.send(r, false)
	}
}

func (c *fconn) dataOut(p *iscsi.PDU) {
	w := c.writes[p.ITT()]
	if w == nil {
		c.f.errorf("Data-Out for unknown ITT %#x", p.ITT())
		return
	}
	off := int(p.Uint32(iscsi.OffBufferOffset))
	if off+len(p.Data) > len(w.buf) || len(p.Data) > 65536 {
		c.f.errorf("Data-Out bytes %d-%d outside %d", off, off+len(p.Data), len(w.buf))
		return
	}
	if p.Uint32(iscsi.OffTTT) == iscsi.ReservedTag && off+len(p.Data) > c.firstBurst {
		c.f.errorf("unsolicited data beyond FirstBurstLength")
	}
	copy(w.buf[off:], p.Data)
	w.got += len(p.Data)
	if !p.Final() {
		return
	}
	if p.Uint32(iscsi.OffTTT) != iscsi.ReservedTag {
		w.outstanding--
	} else {
		w.seqEnd = 0
	}
	c.solicit(w)
}

func (c *fconn) tmf(p *iscsi.PDU) {
	fn := p.Flags() & 0x7F
	resp := byte(5)
	lun, _ := scsi.DecodeLUN(p.LUN())
	switch fn {
	case 1:
		ref := p.Uint32(iscsi.OffTTT)
		resp = 1
		if _, ok := c.hung[ref]; ok {
			delete(c.hung, ref)
			resp = 0
		}
	case 5:
		for itt, l := range c.hung {
			if l == lun {
				delete(c.hung, itt)
			}
		}
		resp = 0
	}
	r := &iscsi.PDU{}
	r.SetOpcode(iscsi.OpTaskMgmtResp)
	r.SetFinal(true)
	r.BHS[2] = resp
	r.SetITT(p.ITT())
	c.send(r, true)
}

func (c *fconn) text(p *iscsi.PDU) {
	var data []byte
	if ttt := p.Uint32(iscsi.OffTTT); ttt != iscsi.ReservedTag {
		if ttt != c.textTTT {
			c.f.errorf("Text continuation with TTT %#x, expected %#x", ttt, c.textTTT)
		}
		data = c.textRest
	} else {
		keys, err := iscsi.ParseText(p.Data)
		if err != nil {
			c.f.errorf("text: %v", err)
			return
		}
		var out iscsi.TextKeys
		if v, _ := keys.Get("SendTargets"); v == "All" {
			out.Add("TargetName", fakeTarget)
			out.Add("TargetAddress", c.f.addr()+",1")
			for i := range c.f.cfg.extraTargets {
				out.Add("TargetName", fmt.Sprintf("%s-%04d", fakeTarget, i))
				out.Add("TargetAddress", c.f.addr()+",1")
				out.Add("TargetAddress", "[::1]:3260,2")
			}
		}
		data = out.Encode()
	}
	r := &iscsi.PDU{}
	r.SetOpcode(iscsi.OpTextResp)
	r.SetITT(p.ITT())
	if len(data) > c.initMRDSL {
		c.textTTT++
		r.PutUint32(iscsi.OffTTT, c.textTTT)
		r.Data, c.textRest = data[:c.initMRDSL], data[c.initMRDSL:]
		if data[c.initMRDSL-1] != 0 {
			r.BHS[1] = 0x40 // C: a pair continues in the next PDU
		}
	} else {
		r.SetFinal(true)
		r.PutUint32(iscsi.OffTTT, iscsi.ReservedTag)
		r.Data, c.textRest = data, nil
	}
	c.send(r, true)
}
