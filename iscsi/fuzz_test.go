package iscsi

import (
	"bytes"
	"io"
	"testing"
	"testing/synctest"
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

// FuzzConnection feeds arbitrary bytes to a logged-in connection: the
// target must neither panic nor hang, whatever it answers.
func FuzzConnection(f *testing.F) {
	seed := &tester{}
	seed.cmdSN = 1
	write := seed.commandPDU(write10(0, 2), cmdOpts{write: true, edtl: 1024, data: pattern(512, 0), notFinal: true})
	dataOut := &PDU{Data: pattern(512, 1)}
	dataOut.SetOpcode(OpDataOut)
	dataOut.SetFinal(true)
	dataOut.SetITT(write.ITT())
	dataOut.PutUint32(OffTTT, ReservedTag)
	dataOut.PutUint32(OffBufferOffset, 512)
	read := seed.commandPDU(read10(0, 4), cmdOpts{read: true, edtl: 2048})
	slow := seed.commandPDU(slowCDB, cmdOpts{})
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
	f.Add(encodePDUs(write, dataOut, read))
	f.Add(encodePDUs(slow, abort, text))
	f.Add(encodePDUs(read)[:60])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		synctest.Test(t, func(t *testing.T) {
			tt := newTester(t)
			tt.login(opKeys())
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
