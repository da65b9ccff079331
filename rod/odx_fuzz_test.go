package rod

import (
	"encoding/binary"
	"testing"
	"time"
)

// FuzzTokenParams decodes arbitrary POPULATE TOKEN and WRITE USING TOKEN
// parameter lists and verifies arbitrary tokens: nothing may panic, and a
// decoded list keeps within the limits.
func FuzzTokenParams(f *testing.F) {
	pt := make([]byte, 32)
	binary.BigEndian.PutUint16(pt, 30)
	binary.BigEndian.PutUint16(pt[14:], 16)
	binary.BigEndian.PutUint32(pt[24:], 8)
	f.Add(pt)
	wut := make([]byte, 552)
	binary.BigEndian.PutUint16(wut, 550)
	binary.BigEndian.PutUint32(wut[16:], RODTypePointInTime)
	binary.BigEndian.PutUint16(wut[22:], tokenBodyLength)
	binary.BigEndian.PutUint16(wut[534:], 16)
	binary.BigEndian.PutUint32(wut[544:], 8)
	f.Add(wut)
	f.Add([]byte{0xFF, 0xFF, 0x03, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x80, 0xFF, 0xFF, 0, 0, 0xFF, 0xF0})
	toks := newTokens(1<<20, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, s := ParsePopulate(data); s == nil {
			if len(p.Ranges) == 0 || len(p.Ranges) > MaxRangeDescriptors {
				t.Fatalf("%d ranges", len(p.Ranges))
			}
		}
		if p, s := ParseWriteUsingToken(data); s == nil {
			if len(p.Ranges) == 0 || len(p.Ranges) > MaxRangeDescriptors {
				t.Fatalf("%d ranges", len(p.Ranges))
			}
		}
		raw := make([]byte, TokenLength)
		copy(raw, data)
		if tok, s := toks.verify(raw, time.Now()); tok != nil || (s == nil && binary.BigEndian.Uint32(raw) != RODTypeBlockZero) {
			t.Fatalf("a token the copy manager never made was accepted: %v %v", tok, s)
		}
	})
}
