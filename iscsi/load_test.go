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

	"github.com/odxtgt/odxtgt/backstore"
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
	usage := func(n int) []byte { return bytes.Repeat([]byte{0xFF}, n) }
	table, err := scsi.NewTable([]scsi.CommandDesc{
		{Name: "READ(10)", Opcode: 0x28, Usage: usage(10), Direction: scsi.DirIn,
			Handler: func(cmd *scsi.Command) error {
				lba, n := binary.BigEndian.Uint32(cmd.CDB[2:]), int(binary.BigEndian.Uint16(cmd.CDB[7:]))*block
				return cmd.LU().Store.ReadAt(cmd.AllocDataIn(n), int64(lba)*block)
			}},
		{Name: "WRITE(10)", Opcode: 0x2A, Usage: usage(10), Direction: scsi.DirOut,
			Handler: func(cmd *scsi.Command) error {
				lba, n := binary.BigEndian.Uint32(cmd.CDB[2:]), int(binary.BigEndian.Uint16(cmd.CDB[7:]))*block
				data, err := cmd.TakeDataOut(n)
				if err != nil {
					return err
				}
				return cmd.LU().Store.WriteAt(data, int64(lba)*block, false)
			}},
	})
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "load"}, Store: backstore.NewMemory(2*workers*region*block, block), Table: table, Logger: log})
	const target = "iqn.2024-01.org.odxtgt:load"
	srv, err := iscsi.NewServer(iscsi.Config{
		Targets: []*iscsi.Target{{Name: target, TPGs: []*iscsi.TPG{{Tag: 1, Portals: []string{"127.0.0.1:0"}, LUNs: map[uint64]*scsi.LU{0: lu}}}}},
		Absent:  scsi.NewAbsentLU(table, log),
		Logger:  log,
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
