package iscsi_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestInitiatorInterop runs odxtgt's own Go initiator against the target
// over loopback TCP: CHAP with mutual authentication, digests, large
// writes through immediate data, unsolicited data and R2Ts, concurrent
// reads, SendTargets and logout.
func TestInitiatorInterop(t *testing.T) {
	const block = 512
	lu, absent := newRWLU(t, "interop", 8<<20)
	const target = "iqn.2024-01.org.odxtgt:interop"
	auth := &iscsi.CHAP{User: "init", Secret: "init-secret-1", MutualUser: "tgt", MutualSecret: "tgt-secret-22"}
	srv, err := iscsi.NewServer(iscsi.Config{
		Targets: []*iscsi.Target{{Name: target, TPGs: []*iscsi.TPG{{Tag: 1, Portals: []string{"127.0.0.1:0"},
			LUNs: map[uint64]*scsi.LU{0: lu}, Auth: auth}}}},
		Absent: absent,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	go srv.Serve()
	defer srv.Shutdown(context.Background())
	addr := srv.Addrs()[0].String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, params := range []map[string]string{
		{"ImmediateData": "Yes", "InitialR2T": "No", "MaxOutstandingR2T": "4", "MaxBurstLength": "65536", "FirstBurstLength": "16384"},
		{"ImmediateData": "No", "InitialR2T": "Yes", "MaxOutstandingR2T": "1", "MaxRecvDataSegmentLength": "4096"},
	} {
		s, err := initiator.Dial(ctx, addr, initiator.Config{
			InitiatorName: "iqn.2024-01.org.odxtgt:interop-init", TargetName: target,
			CHAP:         &initiator.CHAPConfig{User: auth.User, Secret: auth.Secret, MutualUser: auth.MutualUser, MutualSecret: auth.MutualSecret},
			HeaderDigest: true, DataDigest: true, Params: params,
		})
		require.NoError(t, err)
		// Clear the power-on unit attention.
		_, err = s.Command(ctx, initiator.Request{CDB: []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}, ReadLen: block})
		require.NoError(t, err)

		data := make([]byte, 256<<10)
		for i := range data {
			data[i] = byte(i*7 + len(params))
		}
		cdb := []byte{0x2A, 0, 0, 0, 0, 0x10, 0, 0x02, 0, 0} // LBA 16, 512 blocks
		resp, err := s.Command(ctx, initiator.Request{CDB: cdb, DataOut: data})
		require.NoError(t, err)
		require.Equal(t, scsi.StatusGood, resp.Status)

		var pending []*initiator.Pending
		for i := range 16 {
			lba := 16 + i*32
			p, err := s.Start(ctx, initiator.Request{CDB: []byte{0x28, 0, 0, 0, byte(lba >> 8), byte(lba), 0, 0, 32, 0}, ReadLen: 32 * block})
			require.NoError(t, err)
			pending = append(pending, p)
		}
		for i, p := range pending {
			resp, err := p.Wait(ctx)
			require.NoError(t, err)
			require.Equal(t, scsi.StatusGood, resp.Status)
			assert.Equal(t, data[i*32*block:(i+1)*32*block], resp.DataIn)
		}
		targets, err := s.SendTargets(ctx, "")
		require.NoError(t, err)
		require.Len(t, targets, 1)
		require.NoError(t, s.Logout(ctx, 0))
		assert.Empty(t, s.Violations())
	}
}
