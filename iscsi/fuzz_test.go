package iscsi

import (
	"bytes"
	"io"
	"testing"
	"testing/synctest"

	"github.com/odxtgt/odxtgt/scsi"
)

// encodePDUs encodes PDUs back to back, for fuzz seeds.
func encodePDUs(ps ...*PDU) []byte {
	var buf bytes.Buffer
	f := NewFramer(&buf, &buf)
	for _, p := range ps {
		if err := f.WritePDU(p); err != nil {
			panic(err)
		}
	}
	return buf.Bytes()
}

// encodeIllegal encodes a PDU exactly as built, length fields included,
// for seeds whose header lies about its data.
func encodeIllegal(p *PDU) []byte {
	var buf bytes.Buffer
	f := NewFramer(&buf, &buf)
	f.AllowIllegalWrites = true
	if err := f.WritePDU(p); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// fuzzOps are the operational keys FuzzConnection logs in with, chosen by
// the mode byte: bit 0 InitialR2T=Yes, bit 1 ImmediateData=No, bit 2
// MaxOutstandingR2T=1, bit 3 FirstBurstLength=512, bit 4
// MaxBurstLength=512.
func fuzzOps(mode byte) TextKeys {
	pick := func(bit byte, set, unset string) string {
		if mode&bit != 0 {
			return set
		}
		return unset
	}
	return opKeys("InitialR2T", pick(1, "Yes", "No"), "ImmediateData", pick(2, "No", "Yes"),
		"MaxOutstandingR2T", pick(4, "1", "4"), "FirstBurstLength", pick(8, "512", "65536"),
		"MaxBurstLength", pick(16, "512", "262144"))
}

// fuzzSeed is a FuzzConnection input: the login mode and the PDUs sent
// after login.
type fuzzSeed struct {
	mode byte
	data []byte
}

// connectionSeeds cover every shape of immediate data and Data-Out: F=0
// and F=1, EDTL 0, data beyond EDTL, offsets at and after the end or
// beyond 2^31, zero-length Data-Out, DataSN gaps, unknown TTT and ITT,
// Data-Out for an immediate command, R2T sequences, and data segments
// whose length field lies.
func connectionSeeds() []fuzzSeed {
	s := &tester{}
	write := func(edtl uint32, imm int, final, immediate bool) *PDU {
		return s.commandPDU(write10(0, uint16((edtl+testBlock-1)/testBlock)),
			cmdOpts{write: true, edtl: edtl, data: pattern(imm, 1), notFinal: !final, immediate: immediate})
	}
	do := func(w *PDU, ttt, dataSN, off uint32, n int, final bool) *PDU {
		p := &PDU{Data: pattern(n, 2)}
		p.SetOpcode(OpDataOut)
		p.SetFinal(final)
		p.SetITT(w.ITT())
		p.PutUint32(OffTTT, ttt)
		p.PutUint32(OffDataSN, dataSN)
		p.PutUint32(OffBufferOffset, off)
		return p
	}
	const u = ReservedTag
	var seeds []fuzzSeed
	add := func(mode byte, ps ...*PDU) { seeds = append(seeds, fuzzSeed{mode, encodePDUs(ps...)}) }

	w := write(1024, 512, false, false)
	add(0, w, do(w, u, 0, 512, 512, true), s.commandPDU(read10(0, 4), cmdOpts{read: true, edtl: 2048}))
	w = write(512, 1024, false, false) // the copyIn crash
	add(0, w, do(w, u, 0, 1024, 0, true))
	add(0, write(0, 512, true, false))
	w = write(0, 0, false, false)
	add(0, w, do(w, u, 0, 0, 512, true))
	w = write(1024, 0, false, false)
	add(0, w, do(w, u, 0, 1024, 512, false), do(w, u, 1, 2048, 0, true))
	w = write(1024, 0, false, false)
	add(0, w, do(w, u, 0, 0, 0, false), do(w, u, 1, 0, 1024, true))
	w = write(2048, 0, false, false)
	add(0, w, do(w, u, 5, 0, 512, false), do(w, u, 0xFFFFFFFF, 512, 512, false), do(w, u, 2, 1024, 1024, true))
	w = write(1024, 0, false, false)
	add(0, w, do(w, u, 0, 0x80000000, 512, false), do(w, u, 1, 0xFFFFFFFF, 1, false), do(w, u, 2, 0xFFFFFE00, 1024, true))
	w = write(1024, 512, false, true) // Data-Out for an immediate command
	add(0, w, do(w, u, 0, 512, 512, true))
	w = write(2048, 512, false, false)
	add(0, w, do(w, u, 0, 512, 512, true), do(w, u, 1, 1024, 512, true)) // Data-Out after F
	w = write(scsi.MaxTransferBytes+512, 0, false, false)
	add(0, w, do(w, u, 0, 0, 4096, true))
	w = write(4096, 1024, true, false)
	add(2, w) // immediate data not negotiated
	w = write(2048, 512, false, false)
	add(8, w, do(w, u, 0, 512, 512, true)) // beyond FirstBurstLength

	// Solicited data: the target's TTTs count from 1.
	w = write(4096, 0, true, false)
	add(1, w, do(w, 1, 0, 0, 4096, true))
	w = write(1024, 0, true, false)
	add(1, w, do(w, 7, 0, 0, 1024, true), do(&PDU{}, 1, 0, 0, 512, true)) // unknown TTT, unknown ITT
	w = write(2048, 0, true, false)
	add(1|16, w, do(w, 2, 0, 512, 512, true), do(w, 1, 0, 0, 512, true), do(w, 4, 0, 1536, 512, true), do(w, 3, 0, 1024, 512, true))
	w = write(2048, 0, true, false)
	add(1|4|16, w, do(w, 1, 0, 0, 256, false), do(w, 1, 1, 256, 256, true), do(w, 2, 0, 512, 512, false))
	w = write(1024, 0, true, false)
	add(1, w, do(w, 1, 0, 512, 512, true), do(w, 1, 0, 0, 1024, true))

	// Length fields that lie.
	w = write(1024, 0, false, false)
	d := do(w, u, 0, 0, 512, true)
	d.BHS[5], d.BHS[6], d.BHS[7] = 0xFF, 0xFF, 0xFF
	seeds = append(seeds, fuzzSeed{0, append(encodePDUs(w), encodeIllegal(d)...)})
	d = do(w, u, 0, 0, 512, true)
	d.BHS[5], d.BHS[6], d.BHS[7] = 0x04, 0x00, 0x01 // 256 KiB + 1
	seeds = append(seeds, fuzzSeed{0, append(encodePDUs(w), encodeIllegal(d)...)})
	w = write(4096, 4096, true, false)
	w.BHS[4] = 0xFF // TotalAHSLength
	seeds = append(seeds, fuzzSeed{0, encodeIllegal(w)})

	// Reads, task management and text.
	read := s.commandPDU(read10(0, 4), cmdOpts{read: true, edtl: 2048, data: pattern(16, 0), notFinal: true})
	add(0, read)
	slow := s.commandPDU(slowCDB, cmdOpts{})
	abort := &PDU{}
	abort.SetOpcode(OpTaskMgmtReq)
	abort.SetImmediate(true)
	abort.BHS[1] = 0x80 | tmfAbortTask
	abort.SetITT(99)
	abort.PutUint32(offReferencedTag, slow.ITT())
	text := &PDU{Data: kv("SendTargets", "All").Encode()}
	text.SetOpcode(OpTextReq)
	text.SetImmediate(true)
	text.SetFinal(true)
	text.SetITT(100)
	text.PutUint32(OffTTT, ReservedTag)
	add(0, slow, abort, text)
	seeds = append(seeds, fuzzSeed{0, encodePDUs(read)[:60]}, fuzzSeed{0, nil})
	return seeds
}

// FuzzConnection feeds arbitrary bytes to a logged-in connection, whose
// operational keys the mode byte picks (fuzzOps): the target must neither
// panic nor hang, whatever it answers.
func FuzzConnection(f *testing.F) {
	for _, s := range connectionSeeds() {
		f.Add(s.mode, s.data)
	}
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		synctest.Test(t, func(t *testing.T) {
			tt := newTester(t)
			tt.login(fuzzOps(mode))
			go io.Copy(io.Discard, tt.nc)
			tt.nc.Write(data)
			tt.nc.Close()
		})
	})
}

// FuzzLogin feeds arbitrary login text and header flags to the login
// phase.
func FuzzLogin(f *testing.F) {
	f.Add(byte(0x87), append(normalKeys(), opKeys()...).Encode())
	f.Add(byte(0x81), append(normalKeys(), kv("AuthMethod", "CHAP,None", "CHAP_A", "5,7")...).Encode())
	f.Add(byte(0x40), []byte("InitiatorName=x"))
	f.Fuzz(func(t *testing.T, flags byte, text []byte) {
		synctest.Test(t, func(t *testing.T) {
			tt := newTester(t, func(c *Config) {
				c.Targets[0].TPGs[0].Auth = &CHAP{User: "u", Secret: "secret-secret"}
			})
			p := tt.loginPDU(0, 0, false, nil)
			p.BHS[1] = flags
			p.Data = text
			go io.Copy(io.Discard, tt.nc)
			tt.fr.WritePDU(p)
			tt.nc.Close()
		})
	})
}
