package iscsi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestConcurrentLoad drives two sessions over loopback TCP with many
// commands in flight: writes through immediate data, unsolicited Data-Out
// and R2Ts, reads back, and ABORT TASK aimed at commands that may or may
// not have finished. Every write that completed GOOD must read back, and
// the initiator must see no protocol violation (StatSN order, a response
// for an aborted task, PDUs for unknown tasks).
func TestConcurrentLoad(t *testing.T) {
	const (
		block   = 512
		workers = 6
		rounds  = 25
		region  = 128 // blocks per worker
	)
	lu, absent := newRWLU(t, "load", 2*workers*region*block)
	const target = "iqn.2024-01.org.odxtgt:load"
	srv, err := iscsi.NewServer(iscsi.Config{
		Targets: []*iscsi.Target{{Name: target, TPGs: []*iscsi.TPG{{Tag: 1, Portals: []string{"127.0.0.1:0"}, LUNs: map[uint64]*scsi.LU{0: lu}}}}},
		Absent:  absent,
		Logger:  slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	go srv.Serve()
	defer srv.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	rw10 := func(op byte, lba, blocks int) []byte {
		cdb := []byte{op, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(cdb[2:], uint32(lba))
		binary.BigEndian.PutUint16(cdb[7:], uint16(blocks))
		return cdb
	}
	params := []map[string]string{
		{"ImmediateData": "Yes", "InitialR2T": "No", "FirstBurstLength": "8192", "MaxBurstLength": "16384", "MaxOutstandingR2T": "2", "MaxRecvDataSegmentLength": "4096"},
		{"ImmediateData": "No", "InitialR2T": "Yes", "MaxBurstLength": "8192", "MaxRecvDataSegmentLength": "8192"},
	}
	var wg sync.WaitGroup
	for si, p := range params {
		s, err := initiator.Dial(ctx, srv.Addrs()[0].String(), initiator.Config{
			InitiatorName: fmt.Sprintf("iqn.2024-01.org.odxtgt:load-%d", si), TargetName: target, Params: p,
		})
		require.NoError(t, err)
		_, err = s.Command(ctx, initiator.Request{CDB: rw10(0x28, 0, 1), ReadLen: block}) // the power-on unit attention
		require.NoError(t, err)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(si), uint64(w)))
				base := (si*workers + w) * region
				shadow := make([]byte, region*block) // what the region holds
				for range rounds {
					lba := rng.IntN(region - 32)
					n := 1 + rng.IntN(32)
					data := make([]byte, n*block)
					for i := range data {
						data[i] = byte(rng.Uint32())
					}
					resp, err := s.Command(ctx, initiator.Request{CDB: rw10(0x2A, base+lba, n), DataOut: data})
					if !assert.NoError(t, err) || !assert.Equal(t, scsi.StatusGood, resp.Status) {
						return
					}
					copy(shadow[lba*block:], data)
					// A read, and an abort racing it.
					pc, err := s.Start(ctx, initiator.Request{CDB: rw10(0x28, base, region), ReadLen: region * block})
					if !assert.NoError(t, err) {
						return
					}
					if rng.IntN(3) == 0 {
						_, err := s.TaskMgmt(ctx, initiator.TMFAbortTask, 0, pc.ITT)
						assert.NoError(t, err)
					}
					resp, err = pc.Wait(ctx)
					if errors.Is(err, initiator.ErrTaskAborted) {
						continue
					}
					if assert.NoError(t, err) && assert.Equal(t, scsi.StatusGood, resp.Status) {
						assert.True(t, bytes.Equal(shadow, resp.DataIn), "region %d reads back", base)
					}
				}
			}()
		}
		defer func() {
			assert.Empty(t, s.Violations())
			assert.NoError(t, s.Logout(ctx, 0))
		}()
	}
	wg.Wait()
}
