package iscsi

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/scsi"
)

// BenchmarkRead4KQD32 measures 4 KiB reads with 32 commands in flight
// over loopback TCP, the shape of iscsi-perf's random read test.
func BenchmarkRead4KQD32(b *testing.B) {
	benchQD32(b, func(tt *tester, i int) *PDU {
		return tt.commandPDU(read10(uint32(i*8), 8), cmdOpts{read: true, edtl: 4096})
	}, func(p *PDU) bool { return p.Opcode() == OpDataIn && p.Flags()&dataInStatus != 0 })
}

// BenchmarkWrite4KQD32 measures 4 KiB writes carried as immediate data,
// 32 in flight, the shape of a random write test.
func BenchmarkWrite4KQD32(b *testing.B) {
	data := make([]byte, 4096)
	benchQD32(b, func(tt *tester, i int) *PDU {
		return tt.commandPDU(write10(uint32(i*8), 8), cmdOpts{write: true, edtl: 4096, data: data})
	}, func(p *PDU) bool { return p.Opcode() == OpSCSIResponse })
}

// benchQD32 logs in to a memory LU over loopback TCP and keeps 32 commands
// built by cmd in flight until b.N have ended, a PDU for which ends says
// so.
func benchQD32(b *testing.B, cmd func(tt *tester, i int) *PDU, ends func(*PDU) bool) {
	log := testLogger(b)
	table := testTable(nil)
	lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "bench"}, Store: backstore.NewMemory(testLUSize, testBlock), Table: table, Logger: log})
	srv, err := NewServer(Config{
		Targets: []*Target{{Name: testTarget, TPGs: []*TPG{{Tag: 1, Portals: []string{"127.0.0.1:0"}, LUNs: map[uint64]*scsi.LU{0: lu}}}}},
		Absent:  scsi.NewAbsentLU(table, log),
		Logger:  log,
	})
	require.NoError(b, err)
	require.NoError(b, srv.Listen())
	go srv.Serve()
	defer srv.Shutdown(context.Background())
	nc, err := net.Dial("tcp", srv.Addrs()[0].String())
	require.NoError(b, err)
	defer nc.Close()
	tt := &tester{t: &testing.T{}, srv: srv, nc: nc, fr: NewFramer(nc, nc), isid: [6]byte{0x80, 0, 0, 0, 0, 1}}
	p, resp := tt.loginStep(stageOperational, stageFullFeature, true, append(normalKeys(), opKeys()...))
	require.Equal(b, LoginSuccess, loginStatus(p))
	tt.enterFFP(resp)
	tt.command([]byte{0, 0, 0, 0, 0, 0}, cmdOpts{})
	_, err = tt.fr.ReadPDU()
	require.NoError(b, err)

	const depth = 32
	cmdSN := tt.cmdSN
	cmds := make([]*PDU, depth)
	for i := range cmds {
		cmds[i] = cmd(tt, i)
	}
	tt.cmdSN = cmdSN
	// Each slot reuses the ITT of the command that finished.
	send := func(slot uint32) {
		p := cmds[slot-1]
		p.SetITT(slot)
		p.PutUint32(OffCmdSN, tt.cmdSN)
		tt.cmdSN++
		require.NoError(b, tt.fr.WritePDU(p))
	}
	nc.SetDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for ; sent < min(depth, b.N); sent++ {
		send(uint32(sent) + 1)
	}
	for done := 0; done < b.N; {
		p, err := tt.fr.ReadPDU()
		require.NoError(b, err)
		if ends(p) {
			done++
			if sent < b.N {
				send(p.ITT())
				sent++
			}
		}
	}
}
