package iscsi

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// floods are requests that each make the target queue an answer, sent by
// an initiator that reads none.
var floods = []struct {
	name   string
	count  int
	answer int // largest answer, in bytes queued
	pdu    func(tt *tester, i int) *PDU
}{
	{"NOP-Out with 64 KiB of ping data", 6000, BHSLength + 64<<10, func(tt *tester, i int) *PDU {
		p := &PDU{Data: pingData}
		p.SetOpcode(OpNOPOut)
		p.SetImmediate(true)
		p.SetFinal(true)
		p.SetITT(uint32(i))
		p.PutUint32(OffTTT, ReservedTag)
		return p
	}},
	{"SNACK", 30000, 2 * BHSLength, func(tt *tester, i int) *PDU {
		p := &PDU{}
		p.SetOpcode(OpSNACKReq)
		p.SetFinal(true)
		p.SetITT(uint32(i))
		return p
	}},
	{"NOP-Out that must be rejected", 30000, 2 * BHSLength, func(tt *tester, i int) *PDU {
		p := &PDU{}
		p.SetOpcode(OpNOPOut)
		p.SetFinal(true)
		p.SetITT(ReservedTag) // not immediate: Reject
		p.PutUint32(OffTTT, ReservedTag)
		return p
	}},
	{"unsupported opcode", 30000, 2 * BHSLength, func(tt *tester, i int) *PDU {
		p := &PDU{}
		p.SetOpcode(0x1C)
		p.SetITT(uint32(i))
		return p
	}},
	{"Text Request", 30000, BHSLength + 64, func(tt *tester, i int) *PDU {
		p := &PDU{Data: kv("X-odxtgt-flood", "1").Encode()}
		p.SetOpcode(OpTextReq)
		p.SetImmediate(true)
		p.SetFinal(true)
		p.SetITT(uint32(i))
		p.PutUint32(OffTTT, ReservedTag)
		return p
	}},
}

var pingData = make([]byte, 64<<10)

// TestSendQueueBoundedWhenInitiatorDoesNotRead: an initiator that floods
// requests and reads no answer is no longer read once SendQueueLimit bytes
// wait for its socket, and is dropped after SendTimeout without write
// progress; another session is not affected.
func TestSendQueueBoundedWhenInitiatorDoesNotRead(t *testing.T) {
	for _, tc := range floods {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t, func(c *Config) { c.SendTimeout = 10 * time.Second })
				tt.loginDefault()
				other := tt.second(2)
				other.loginDefault()
				c := tt.serverConn()

				sent := make(chan int)
				go func() {
					n := 0
					for ; n < tc.count; n++ {
						p := tc.pdu(tt, n)
						p.PutUint32(OffCmdSN, tt.cmdSN)
						if tt.fr.WritePDU(p) != nil {
							break
						}
					}
					sent <- n
				}()
				synctest.Wait()
				queued := c.sq.queued()
				assert.LessOrEqual(t, queued, DefaultSendQueueLimit+tc.answer, "bytes queued")
				assert.GreaterOrEqual(t, queued, DefaultSendQueueLimit, "the flood filled the queue")

				// No write progress for SendTimeout: the connection is
				// dropped and the flood ends.
				time.Sleep(10 * time.Second)
				assert.Less(t, <-sent, tc.count)
				synctest.Wait()
				assert.Equal(t, 1, tt.connCount())
				assert.Equal(t, scsi.StatusGood, other.wantResult(other.command(tur, cmdOpts{})).status)
			})
		})
	}
}

// serverConn returns the server side of the tester's connection: the one
// connection with its ISID.
func (tt *tester) serverConn() *conn {
	tt.t.Helper()
	tt.srv.mu.Lock()
	defer tt.srv.mu.Unlock()
	for c := range tt.srv.conns {
		if c.sess != nil && c.sess.isid == tt.isid {
			return c
		}
	}
	require.FailNow(tt.t, "no server connection")
	return nil
}

// TestSendQueueReadsOnAfterDrain: once the initiator reads its answers,
// the target reads its requests again.
func TestSendQueueReadsOnAfterDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		const pings = 40 // 2.5 MiB of answers
		go func() {
			for i := range pings {
				p := floods[0].pdu(tt, i+1000)
				p.PutUint32(OffCmdSN, tt.cmdSN)
				if tt.fr.WritePDU(p) != nil {
					return
				}
			}
		}()
		synctest.Wait()
		require.GreaterOrEqual(t, tt.serverConn().sq.queued(), DefaultSendQueueLimit)
		for i := range pings {
			p := tt.want(OpNOPIn)
			assert.Equal(t, uint32(i+1000), p.ITT())
			assert.Len(t, p.Data, 64<<10)
		}
		assert.Equal(t, scsi.StatusGood, tt.wantResult(tt.command(tur, cmdOpts{})).status)
	})
}

// TestHeldRequestsBounded: pings ahead of ExpCmdSN are kept until their
// turn up to maxHeldBytes of data; beyond, they are rejected as out of
// resources and their CmdSN used up, so the window goes on.
func TestHeldRequestsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		gap := tt.cmdSN
		const held = maxHeldBytes / (64 << 10)
		ping := func(sn uint32) uint32 {
			p := floods[0].pdu(tt, int(tt.nextITT()))
			p.SetImmediate(false)
			p.PutUint32(OffCmdSN, sn)
			tt.send(p)
			return p.ITT()
		}
		var itts []uint32
		for i := range held + 1 {
			itts = append(itts, ping(gap+1+uint32(i)))
		}
		tt.wantReject(RejectLongOp, OpNOPOut)
		tt.cmdSN = gap + held + 2
		ping(gap)
		got := []uint32{}
		for range held + 1 {
			got = append(got, tt.want(OpNOPIn).ITT())
		}
		assert.Len(t, got, held+1)
		assert.NotContains(t, got, itts[held], "the rejected ping is not answered")
		assert.Equal(t, scsi.StatusGood, tt.wantResult(tt.command(tur, cmdOpts{})).status)
	})
}

// TestTMFStormBounded: past maxTMFs functions in progress, more are
// rejected; the ones in progress are answered when their work returns.
func TestTMFStormBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		hold := make(chan struct{})
		tt.srv.hook = func(_ *conn, at hookPoint) {
			if at == hookTMF {
				<-hold
			}
		}
		tt.loginDefault()
		for range maxTMFs {
			tt.tmf(tmfAbortTaskSet, 0, 0, 0)
		}
		tt.tmf(tmfAbortTaskSet, 0, 0, 0)
		tt.wantReject(RejectImmediateCmd, OpTaskMgmtReq)
		close(hold)
		for range maxTMFs {
			assert.Equal(t, byte(tmfRespComplete), tt.want(OpTaskMgmtResp).BHS[2])
		}
		assert.Equal(t, scsi.StatusGood, tt.wantResult(tt.command(tur, cmdOpts{})).status)
	})
}

// connCount returns how many connections the server runs.
func (tt *tester) connCount() int {
	tt.srv.mu.Lock()
	defer tt.srv.mu.Unlock()
	return len(tt.srv.conns)
}

// TestDataInLimit: once the commands running on a connection may produce
// DataInLimit bytes of data-in, the target reads no more requests from it
// until one of them ends.
func TestDataInLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t, func(c *Config) { c.DataInLimit = 2 * scsi.MaxTransferBytes })
		tt.loginDefault()
		tt.command(slowCDB, cmdOpts{read: true, edtl: scsi.MaxTransferBytes})
		tt.command(slowCDB, cmdOpts{read: true, edtl: 1 << 31}) // counts as the largest transfer
		pinged := make(chan uint32)
		go func() { pinged <- tt.ping(true, nil) }()
		tt.wantIdle()
		tt.gate <- struct{}{}
		assert.Equal(t, byte(scsi.StatusGood), tt.want(OpSCSIResponse).BHS[3])
		assert.Equal(t, <-pinged, tt.want(OpNOPIn).ITT(), "read again once a command ended")
	})
}
