package spc

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

func TestTransportIDRoundTrip(t *testing.T) {
	for _, tid := range []scsi.TransportID{
		{Name: "iqn.2024-01.org.example:c"},
		{Name: "iqn.2024-01.org.example:a", ISID: "400001370000"},
		{Name: "eui.0123456789abcdef"},
		{Name: "iqn.2024-01.org.example:" + strings.Repeat("x", maxISCSINameLen-len("iqn.2024-01.org.example:")), ISID: "000000000001"},
	} {
		b := appendTransportID(nil, tid)
		assert.GreaterOrEqual(t, len(b), minTransportIDLen)
		assert.Zero(t, len(b)%4)
		assert.LessOrEqual(t, len(b), maxTransportIDLen)
		got, n, s := parseTransportID(b, 0)
		require.Nil(t, s, "%v", s)
		assert.Equal(t, len(b), n)
		assert.Equal(t, tid, got)
	}
}

func TestParseTransportIDErrors(t *testing.T) {
	good := appendTransportID(nil, scsi.TransportID{Name: "iqn.2024-01.org.example:a", ISID: "400001370000"})
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, tc := range map[string]struct {
		b    []byte
		byte int
	}{
		"short":                 {good[:3], 28},
		"protocol":              {mutate(func(b []byte) []byte { b[0] = 0x40; return b }), 28},
		"format 10b":            {mutate(func(b []byte) []byte { b[0] = 0x85; return b }), 28},
		"reserved bits":         {mutate(func(b []byte) []byte { b[0] |= 0x10; return b }), 28},
		"length not a multiple": {mutate(func(b []byte) []byte { b[3]--; return b }), 30},
		"length too small":      {mutate(func(b []byte) []byte { b[2], b[3] = 0, 16; return b }), 30},
		"length past the end":   {mutate(func(b []byte) []byte { b[3] += 4; return b }), 30},
		"no terminator":         {mutate(func(b []byte) []byte { b[len(b)-1], b[len(b)-2], b[len(b)-3] = 'x', 'x', 'x'; return b }), 32},
		"bad ISID":              {mutate(func(b []byte) []byte { copy(b[4+len("iqn.2024-01.org.example:a,i,0x"):], "zz"); return b }), 32},
		"format 01b without ISID": {mutate(func(b []byte) []byte {
			b[0] = 0x45
			copy(b[4:], "iqn.2024-01.org.example:a\x00")
			return b
		}), 32},
		"upper case outside the name rules": {mutate(func(b []byte) []byte { b[6] = ' '; return b }), 32},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, s := parseTransportID(tc.b, 28)
			require.NotNil(t, s)
			assert.Equal(t, scsi.ASCInvalidFieldInParameterList, s.Code)
			assert.Equal(t, tc.byte, int(binary.BigEndian.Uint16(s.SenseKeySpecific[1:])))
		})
	}
	// Names compare in lowercase, as at login.
	b := appendTransportID(nil, scsi.TransportID{Name: "IQN.2024-01.ORG.EXAMPLE:A", ISID: "ABCDEF000001"})
	tid, _, s := parseTransportID(b, 0)
	require.Nil(t, s)
	assert.Equal(t, scsi.TransportID{Name: "iqn.2024-01.org.example:a", ISID: "abcdef000001"}, tid)
}

func TestParseRegisterAndMove(t *testing.T) {
	tid := appendTransportID(nil, scsi.TransportID{Name: "iqn.2024-01.org.example:b", ISID: "000000000002"})
	p := make([]byte, 24, 24+len(tid))
	binary.BigEndian.PutUint64(p, 0xAA)
	binary.BigEndian.PutUint64(p[8:], 0xBB)
	p[17] = 0x03
	binary.BigEndian.PutUint16(p[18:], 2)
	binary.BigEndian.PutUint32(p[20:], uint32(len(tid)))
	p = append(p, tid...)
	req := &scsi.PROUTRequest{Action: scsi.PROUTRegisterAndMove}
	require.Nil(t, parsePROUT(req, p))
	assert.Equal(t, &scsi.PROUTRequest{Action: scsi.PROUTRegisterAndMove, Key: 0xAA, ServiceActionKey: 0xBB, Unregister: true, APTPL: true,
		RelativePortID: 2, TransportIDs: []scsi.TransportID{{Name: "iqn.2024-01.org.example:b", ISID: "000000000002"}}}, req)

	assert.Equal(t, scsi.ASCParameterListLengthError, parsePROUT(&scsi.PROUTRequest{Action: scsi.PROUTRegisterAndMove}, p[:len(p)-4]).Code)
	bad := append([]byte(nil), p...)
	bad[17] = 0x04
	assert.Equal(t, scsi.ASCInvalidFieldInParameterList, parsePROUT(&scsi.PROUTRequest{Action: scsi.PROUTRegisterAndMove}, bad).Code)
	empty := append([]byte(nil), p[:24]...)
	binary.BigEndian.PutUint32(empty[20:], 0)
	assert.Equal(t, scsi.ASCInvalidFieldInParameterList, parsePROUT(&scsi.PROUTRequest{Action: scsi.PROUTRegisterAndMove}, empty).Code)
}

// FuzzPROUTParameterList feeds arbitrary parameter lists to the parser
// for every service action. It must not panic; a list it accepts decodes
// to a request whose TransportIDs encode back to TransportIDs it accepts
// again, and whose length checks held: 24 bytes without SPEC_I_PT.
func FuzzPROUTParameterList(f *testing.F) {
	basic := make([]byte, 24)
	binary.BigEndian.PutUint64(basic[8:], 0xAA)
	f.Add(byte(0), basic)
	spec := append(append([]byte(nil), basic...), 0, 0, 0, 0)
	spec[20] = 0x08
	tid := appendTransportID(nil, scsi.TransportID{Name: "iqn.2024-01.org.example:c", ISID: "000000000003"})
	binary.BigEndian.PutUint32(spec[24:], uint32(2*len(tid)))
	spec = append(append(spec, tid...), appendTransportID(nil, scsi.TransportID{Name: "iqn.2024-01.org.example:d"})...)
	f.Add(byte(0), spec)
	move := append([]byte(nil), basic...)
	move[17] = 0x02
	binary.BigEndian.PutUint32(move[20:], uint32(len(tid)))
	f.Add(byte(7), append(move, tid...))
	f.Fuzz(func(t *testing.T, sa byte, p []byte) {
		req := &scsi.PROUTRequest{Action: scsi.PROUTAction(sa % 8)}
		s := parsePROUT(req, p)
		if s != nil {
			if s.Key != scsi.IllegalRequest {
				t.Fatalf("sense key %v", s.Key)
			}
			return
		}
		if req.Action != scsi.PROUTRegisterAndMove && !req.SpecIPT && len(p) != proutBasicLen {
			t.Fatalf("accepted a %d-byte list without SPEC_I_PT", len(p))
		}
		if req.SpecIPT && req.Action != scsi.PROUTRegister {
			t.Fatalf("accepted SPEC_I_PT with %v", req.Action)
		}
		if req.Action == scsi.PROUTRegisterAndMove && len(req.TransportIDs) != 1 {
			t.Fatalf("REGISTER AND MOVE with %d TransportIDs", len(req.TransportIDs))
		}
		for _, tid := range req.TransportIDs {
			b := appendTransportID(nil, tid)
			again, n, s := parseTransportID(b, 0)
			if s != nil || n != len(b) || again != tid {
				t.Fatalf("TransportID %v does not round trip: %v %d %v", tid, s, n, again)
			}
		}
	})
}
