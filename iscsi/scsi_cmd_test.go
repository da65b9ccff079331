package iscsi

import (
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

func TestReadWriteImmediateData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		data := pattern(4*testBlock, 7)
		itt := tt.command(write10(8, 4), cmdOpts{write: true, edtl: uint32(len(data)), data: data})
		r := tt.wantResult(itt)
		require.Equal(t, scsi.StatusGood, r.status)
		assert.Zero(t, r.flags)

		itt = tt.command(read10(8, 4), cmdOpts{read: true, edtl: uint32(len(data))})
		r = tt.wantResult(itt)
		require.Equal(t, scsi.StatusGood, r.status)
		assert.Equal(t, data, r.data)
		assert.Equal(t, 1, r.dataPDUs)
	})
}

func TestUnsolicitedDataOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault("ImmediateData", "No")
		data := pattern(8*testBlock, 3)
		itt := tt.command(write10(0, 8), cmdOpts{write: true, edtl: uint32(len(data)), notFinal: true})
		tt.dataOut(itt, ReservedTag, 0, 0, data[:2048], false)
		tt.dataOut(itt, ReservedTag, 1, 2048, data[2048:], true)
		require.Equal(t, scsi.StatusGood, tt.wantResult(itt).status)
		got := make([]byte, len(data))
		require.NoError(t, tt.store.ReadAt(got, 0))
		assert.Equal(t, data, got)
	})
}

func TestR2TWithSeveralOutstanding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault("InitialR2T", "Yes", "ImmediateData", "No", "MaxBurstLength", "1024", "FirstBurstLength", "512", "MaxOutstandingR2T", "2")
		data := pattern(8*testBlock, 9)
		itt := tt.command(write10(16, 8), cmdOpts{write: true, edtl: uint32(len(data))})
		ttt0, sn0, off0, len0 := tt.wantR2T(itt)
		ttt1, sn1, off1, len1 := tt.wantR2T(itt)
		assert.Equal(t, []uint32{0, 1}, []uint32{sn0, sn1})
		assert.Equal(t, []uint32{0, 1024}, []uint32{off0, off1})
		assert.Equal(t, []uint32{1024, 1024}, []uint32{len0, len1})
		assert.NotEqual(t, ttt0, ttt1)
		// Answer the second R2T first: sequences may complete in any order.
		tt.dataOut(itt, ttt1, 0, 1024, data[1024:2048], true)
		ttt2, sn2, off2, _ := tt.wantR2T(itt)
		assert.Equal(t, uint32(2), sn2)
		assert.Equal(t, uint32(2048), off2)
		tt.dataOut(itt, ttt0, 0, 0, data[:512], false)
		tt.dataOut(itt, ttt0, 1, 512, data[512:1024], true)
		ttt3, _, off3, _ := tt.wantR2T(itt)
		assert.Equal(t, uint32(3072), off3)
		tt.dataOut(itt, ttt2, 0, 2048, data[2048:3072], true)
		tt.dataOut(itt, ttt3, 0, 3072, data[3072:], true)
		require.Equal(t, scsi.StatusGood, tt.wantResult(itt).status)
		got := make([]byte, len(data))
		require.NoError(t, tt.store.ReadAt(got, 16*testBlock))
		assert.Equal(t, data, got)
	})
}

func TestImmediateDataThenR2T(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault("InitialR2T", "Yes", "FirstBurstLength", "1024")
		data := pattern(4*testBlock, 1)
		itt := tt.command(write10(0, 4), cmdOpts{write: true, edtl: uint32(len(data)), data: data[:1024]})
		ttt, _, off, n := tt.wantR2T(itt)
		assert.Equal(t, uint32(1024), off)
		assert.Equal(t, uint32(1024), n)
		tt.dataOut(itt, ttt, 0, off, data[1024:], true)
		require.Equal(t, scsi.StatusGood, tt.wantResult(itt).status)
		got := make([]byte, len(data))
		require.NoError(t, tt.store.ReadAt(got, 0))
		assert.Equal(t, data, got)
	})
}

func TestDataInSequences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault("MaxRecvDataSegmentLength", "512", "MaxBurstLength", "1024")
		want := pattern(4*testBlock, 5)
		require.NoError(t, tt.store.WriteAt(want, 0, false))
		itt := tt.command(read10(0, 4), cmdOpts{read: true, edtl: 4 * testBlock})
		var got []byte
		for i := range 4 {
			p := tt.want(OpDataIn)
			require.Len(t, p.Data, 512)
			assert.Equal(t, uint32(i), p.Uint32(OffDataSN))
			assert.Equal(t, i%2 == 1, p.Final(), "F ends each MaxBurstLength sequence")
			assert.Equal(t, i == 3, p.Flags()&dataInStatus != 0, "S on the last PDU only")
			got = append(got, p.Data...)
		}
		assert.Equal(t, want, got)
		_ = itt
	})
}

// TestDataOutBudget: a write whose data-out would not fit in the server's
// budget ends with TASK SET FULL after its immediate data is taken, and the
// budget comes back as commands finish.
func TestDataOutBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t, func(c *Config) { c.DataOutBudget = 2 * testBlock })
		tt.loginDefault()
		for range 3 { // each write's reservation is released when it ends
			itt := tt.command(write10(0, 2), cmdOpts{write: true, edtl: 2 * testBlock, data: pattern(2*testBlock, 1)})
			assert.Equal(t, scsi.StatusGood, tt.wantResult(itt).status)
		}
		itt := tt.command(write10(0, 3), cmdOpts{write: true, edtl: 3 * testBlock, data: pattern(3*testBlock, 2)})
		r := tt.wantResult(itt)
		assert.Equal(t, scsi.StatusTaskSetFull, r.status)
		assert.Nil(t, r.sense)
		itt = tt.command(read10(0, 3), cmdOpts{read: true, edtl: 3 * testBlock})
		r = tt.wantResult(itt)
		require.Equal(t, scsi.StatusGood, r.status)
		assert.Equal(t, pattern(2*testBlock, 1), r.data[:2*testBlock], "the refused write wrote nothing")
	})
}

func TestResiduals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		// READ of one block with EDTL 0: overflow, no data.
		itt := tt.command(read10(0, 1), cmdOpts{read: true, edtl: 0})
		r := tt.wantResult(itt)
		assert.Equal(t, scsi.StatusGood, r.status)
		assert.Equal(t, byte(0x04), r.flags)
		assert.Equal(t, uint32(testBlock), r.residual)
		assert.Empty(t, r.data)
		// EDTL 10000: underflow.
		itt = tt.command(read10(0, 1), cmdOpts{read: true, edtl: 10000})
		r = tt.wantResult(itt)
		assert.Equal(t, scsi.StatusGood, r.status)
		assert.Equal(t, byte(0x02), r.flags)
		assert.Equal(t, uint32(10000-testBlock), r.residual)
		assert.Len(t, r.data, testBlock)
		// EDTL 200: truncated data, overflow.
		itt = tt.command(read10(0, 1), cmdOpts{read: true, edtl: 200})
		r = tt.wantResult(itt)
		assert.Equal(t, byte(0x04), r.flags)
		assert.Equal(t, uint32(testBlock-200), r.residual)
		assert.Len(t, r.data, 200)
		// WRITE of one block with EDTL two blocks: the first block is
		// written, underflow.
		itt = tt.command(write10(0, 1), cmdOpts{write: true, edtl: 2 * testBlock, data: pattern(2*testBlock, 0)})
		r = tt.wantResult(itt)
		assert.Equal(t, scsi.StatusGood, r.status)
		assert.Equal(t, byte(0x02), r.flags)
		assert.Equal(t, uint32(testBlock), r.residual)
		// WRITE of two blocks with EDTL one block: overflow.
		itt = tt.command(write10(0, 2), cmdOpts{write: true, edtl: testBlock, data: pattern(testBlock, 0)})
		r = tt.wantResult(itt)
		assert.Equal(t, scsi.StatusCheckCondition, r.status)
		assert.Equal(t, byte(0x04), r.flags)
		assert.Equal(t, uint32(testBlock), r.residual)
	})
}

func TestTransportRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []string
		run  func(tt *tester) uint32
		key  scsi.SenseKey
		asc  scsi.ASC
	}{
		{"transfer too long", []string{"ImmediateData", "No"}, func(tt *tester) uint32 {
			itt := tt.command(write10(0, 1), cmdOpts{write: true, edtl: scsi.MaxTransferBytes + 512, notFinal: true})
			// Unsolicited data is drained, never stored.
			tt.dataOut(itt, ReservedTag, 0, 0, pattern(4096, 0), false)
			tt.dataOut(itt, ReservedTag, 1, 4096, pattern(65536-4096, 0), true)
			return itt
		}, scsi.IllegalRequest, scsi.ASCInvalidFieldInCommandIU},
		{"immediate data not negotiated", []string{"ImmediateData", "No"}, func(tt *tester) uint32 {
			return tt.command(write10(0, 1), cmdOpts{write: true, edtl: testBlock, data: pattern(testBlock, 0)})
		}, scsi.AbortedCommand, ascUnexpectedUnsolicitedData},
		{"unsolicited Data-Out with InitialR2T", []string{"InitialR2T", "Yes", "ImmediateData", "No"}, func(tt *tester) uint32 {
			itt := tt.command(write10(0, 1), cmdOpts{write: true, edtl: testBlock})
			ttt, _, _, _ := tt.wantR2T(itt)
			tt.dataOut(itt, ReservedTag, 0, 0, pattern(testBlock, 0), true)
			tt.dataOut(itt, ttt, 0, 0, pattern(testBlock, 0), true)
			return itt
		}, scsi.AbortedCommand, ascUnexpectedUnsolicitedData},
		{"not enough unsolicited data", []string{"ImmediateData", "No", "FirstBurstLength", "1024"}, func(tt *tester) uint32 {
			itt := tt.command(write10(0, 4), cmdOpts{write: true, edtl: 4 * testBlock, notFinal: true})
			ttt, _, off, n := tt.wantR2T(itt)
			require.Equal(tt.t, uint32(1024), off)
			tt.dataOut(itt, ReservedTag, 0, 0, pattern(512, 0), true)
			tt.dataOut(itt, ttt, 0, off, pattern(int(n), 0), true)
			return itt
		}, scsi.AbortedCommand, ascNotEnoughUnsolicitedData},
		{"data on a non-write command", nil, func(tt *tester) uint32 {
			return tt.command(read10(0, 1), cmdOpts{read: true, edtl: testBlock, data: pattern(16, 0)})
		}, scsi.AbortedCommand, ascUnexpectedUnsolicitedData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t)
				tt.loginDefault(tc.ops...)
				before := make([]byte, testBlock)
				require.NoError(t, tt.store.ReadAt(before, 0))
				r := tt.wantResult(tc.run(tt))
				require.Equal(t, scsi.StatusCheckCondition, r.status)
				require.NotNil(t, r.sense)
				assert.Equal(t, tc.key, r.sense.Key)
				assert.Equal(t, tc.asc, r.sense.Code)
				after := make([]byte, testBlock)
				require.NoError(t, tt.store.ReadAt(after, 0))
				assert.Equal(t, before, after, "nothing written")
			})
		})
	}
}

func TestDataOutSequenceErrorsDropTheConnection(t *testing.T) {
	for _, tc := range []struct {
		name        string
		dataSN, off uint32
		length      int
		badTTT      bool
		reason      RejectReason
	}{
		{"offset", 0, 512, testBlock, false, RejectProtocolError},
		{"beyond the R2T", 0, 0, 2 * testBlock, false, RejectProtocolError},
		{"unknown TTT", 0, 0, testBlock, true, RejectInvalidPDUField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tt := newTester(t)
				tt.loginDefault("InitialR2T", "Yes", "ImmediateData", "No")
				itt := tt.command(write10(0, 1), cmdOpts{write: true, edtl: testBlock})
				ttt, _, _, _ := tt.wantR2T(itt)
				if tc.badTTT {
					ttt++
				}
				tt.dataOut(itt, ttt, tc.dataSN, tc.off, pattern(tc.length, 0), true)
				tt.wantReject(tc.reason, OpDataOut)
				tt.wantClosed()
			})
		})
	}
}

// An out-of-order DataSN stands for Data-Out PDUs lost to digest errors
// (RFC 7143 7.9); at ErrorRecoveryLevel 0 the command ends with CHECK
// CONDITION, PROTOCOL SERVICE CRC ERROR once its sequence is complete, the
// connection stays up and nothing is written. The cases are libiscsi's
// iSCSIDataSnInvalid, on unsolicited and on solicited data.
func TestDataOutDataSNOutOfOrder(t *testing.T) {
	type pdu struct{ dataSN, off uint32 }
	cases := []struct {
		name   string
		blocks uint16
		pdus   []pdu
	}{
		{"two PDUs with DataSN 0", 2, []pdu{{0, 0}, {0, testBlock}}},
		{"DataSN 27", 1, []pdu{{27, 0}}},
		{"DataSN ffffffff", 1, []pdu{{0xFFFFFFFF, 0}}},
		{"DataSN 1 then 0", 2, []pdu{{1, 0}, {0, testBlock}}},
		{"first PDU missing", 2, []pdu{{1, testBlock}}},
	}
	for _, solicited := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s solicited=%v", tc.name, solicited), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					tt := newTester(t)
					tt.loginDefault("ImmediateData", "No", "InitialR2T", map[bool]string{false: "No", true: "Yes"}[solicited])
					n := uint32(tc.blocks) * testBlock
					itt := tt.command(write10(0, tc.blocks), cmdOpts{write: true, edtl: n, notFinal: !solicited})
					ttt := uint32(ReservedTag)
					if solicited {
						var off, length uint32
						ttt, _, off, length = tt.wantR2T(itt)
						require.Equal(t, []uint32{0, n}, []uint32{off, length})
					}
					for i, p := range tc.pdus {
						tt.dataOut(itt, ttt, p.dataSN, p.off, pattern(testBlock, 1), i == len(tc.pdus)-1)
					}
					r := tt.wantResult(itt)
					require.Equal(t, scsi.StatusCheckCondition, r.status)
					require.NotNil(t, r.sense)
					assert.Equal(t, scsi.AbortedCommand, r.sense.Key)
					assert.Equal(t, ascProtocolServiceCRCError, r.sense.Code)
					got := make([]byte, n)
					require.NoError(t, tt.store.ReadAt(got, 0))
					assert.Equal(t, make([]byte, n), got, "nothing written")
					// The connection goes on.
					assert.Equal(t, scsi.StatusGood, tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})).status)
				})
			})
		}
	}
}

func TestDataOutForUnknownTaskIsDiscarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		tt.dataOut(999, 5, 0, 0, pattern(512, 0), true)
		itt := tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		assert.Equal(t, scsi.StatusGood, tt.wantResult(itt).status)
	})
}

func TestCmdSNWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		tur := []byte{0, 0, 0, 0, 0, 0}
		// Idle: MaxCmdSN = ExpCmdSN + window - 1.
		itt := tt.command(tur, cmdOpts{})
		p := tt.want(OpSCSIResponse)
		require.Equal(t, itt, p.ITT())
		assert.Equal(t, tt.cmdSN, p.Uint32(OffExpCmdSN))
		assert.Equal(t, tt.cmdSN+cmdWindow-1, p.Uint32(OffMaxCmdSN))

		// Too high and too low: dropped silently (RFC 7143 4.2.2.1).
		high := tt.cmdSN + cmdWindow
		tt.command(tur, cmdOpts{cmdSN: &high})
		low := tt.cmdSN - 1
		tt.command(tur, cmdOpts{cmdSN: &low})
		tt.wantIdle()

		// Out of order in the window: held until the gap fills.
		first, second := tt.cmdSN, tt.cmdSN+1
		tt.cmdSN += 2
		itt2 := tt.command(tur, cmdOpts{cmdSN: &second})
		tt.wantIdle()
		itt1 := tt.command(tur, cmdOpts{cmdSN: &first})
		got := []uint32{tt.want(OpSCSIResponse).ITT(), tt.want(OpSCSIResponse).ITT()}
		assert.ElementsMatch(t, []uint32{itt1, itt2}, got)

		// Immediate commands do not take a CmdSN.
		itt = tt.command(tur, cmdOpts{immediate: true})
		p = tt.want(OpSCSIResponse)
		require.Equal(t, itt, p.ITT())
		assert.Equal(t, tt.cmdSN, p.Uint32(OffExpCmdSN))
	})
}

func TestWindowShrinksWhileCommandsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		var itts []uint32
		for range 3 {
			itts = append(itts, tt.command([]byte{opSlow, 0, 0, 0, 0, 0}, cmdOpts{}))
		}
		// A NOP ping shows the window: three slots taken.
		itt := tt.ping(false, nil)
		p := tt.want(OpNOPIn)
		require.Equal(t, itt, p.ITT())
		assert.Equal(t, tt.cmdSN+cmdWindow-1-3, p.Uint32(OffMaxCmdSN))
		for _, itt := range itts {
			tt.tmf(tmfAbortTask, 0, itt, 0)
		}
		for range 3 {
			assert.Equal(t, byte(tmfRespComplete), tt.want(OpTaskMgmtResp).BHS[2])
		}
		tt.ping(false, nil)
		p = tt.want(OpNOPIn)
		assert.Equal(t, tt.cmdSN+cmdWindow-1, p.Uint32(OffMaxCmdSN))
	})
}

func TestTaskInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		itt := tt.command([]byte{opSlow, 0, 0, 0, 0, 0}, cmdOpts{})
		tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{itt: &itt})
		tt.wantReject(RejectTaskInProgress, OpSCSICommand)
		// The rejected command's CmdSN is used up: the next one runs.
		next := tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		assert.Equal(t, scsi.StatusGood, tt.wantResult(next).status)
	})
}

func TestUnmappedAndInvalidLUN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		itt := tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{lun: 7})
		r := tt.wantResult(itt)
		require.Equal(t, scsi.StatusCheckCondition, r.status)
		assert.Equal(t, scsi.ASCLUNotSupported, r.sense.Code)

		p := tt.commandPDU([]byte{0x12, 0, 0, 0, 36, 0}, cmdOpts{read: true, edtl: 36})
		p.SetLUN([8]byte{0xC0, 1}) // extended addressing: not decodable
		tt.send(p)
		r = tt.wantResult(p.ITT())
		require.Equal(t, scsi.StatusGood, r.status)
		assert.Equal(t, byte(0x7F), r.data[0], "absent LU answers INQUIRY")
	})
}

func TestExtendedCDBAndBidiAHS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		p := tt.commandPDU([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		p.AHS = []byte{0, 5, ahsExtendedCDB, 0, 1, 2, 3, 4}
		tt.send(p)
		assert.Equal(t, scsi.StatusGood, tt.wantResult(p.ITT()).status)

		p = tt.commandPDU([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		p.AHS = []byte{0, 5, ahsBidiReadLen, 0, 0, 0, 1, 0}
		tt.send(p)
		tt.wantReject(RejectInvalidPDUField, OpSCSICommand)

		p = tt.commandPDU([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
		p.AHS = []byte{0, 9, 0x3F, 0, 1, 2, 3, 4}
		tt.send(p)
		tt.wantReject(RejectInvalidPDUField, OpSCSICommand)
	})
}

// TestImmediateDataBeyondEDTLThenDataOutAtEnd is the regression test for a
// reader crash: 1024 bytes of immediate data on a write with EDTL 512 and
// F=0, then a zero-length Data-Out at offset 1024, indexed the 512-byte
// data-out buffer at 1024. Data beyond EDTL is never stored: the command
// ends with CHECK CONDITION, UNEXPECTED UNSOLICITED DATA, and the
// connection goes on.
func TestImmediateDataBeyondEDTLThenDataOutAtEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTester(t)
		tt.loginDefault()
		itt := tt.command(write10(0, 1), cmdOpts{write: true, edtl: testBlock, data: pattern(2*testBlock, 1), notFinal: true})
		tt.dataOut(itt, ReservedTag, 0, 2*testBlock, nil, true)
		r := tt.wantResult(itt)
		require.Equal(t, scsi.StatusCheckCondition, r.status)
		require.NotNil(t, r.sense)
		assert.Equal(t, scsi.AbortedCommand, r.sense.Key)
		assert.Equal(t, ascUnexpectedUnsolicitedData, r.sense.Code)
		got := make([]byte, testBlock)
		require.NoError(t, tt.store.ReadAt(got, 0))
		assert.Equal(t, make([]byte, testBlock), got, "nothing written")
		assert.Equal(t, scsi.StatusGood, tt.wantResult(tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})).status)
	})
}
