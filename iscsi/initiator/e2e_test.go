package initiator_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/odxtgt/odxtgt/backstore"
	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/iscsi/initiator"
	"github.com/odxtgt/odxtgt/scsi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// End-to-end tests against odxtgt's own target (package iscsi) on
// loopback, with a small command table on a memory store.

const (
	e2eTarget = "iqn.2024-01.org.odxtgt:e2e"
	e2eSize   = 4 << 20
	opSlow    = 0xC0 // runs until the test releases it or it is aborted
)

func usage(n int) []byte { return slices.Repeat([]byte{0xFF}, n) }

func e2eTable(gate <-chan struct{}) *scsi.Table {
	rw := func(cdb []byte) (int64, int) {
		return int64(binary.BigEndian.Uint32(cdb[2:])) * fakeBlock, int(binary.BigEndian.Uint16(cdb[7:])) * fakeBlock
	}
	table, err := scsi.NewTable(scsi.CommandSet{Commands: []scsi.CommandDesc{
		{Name: "TEST UNIT READY", Opcode: 0x00, Usage: usage(6), Handler: func(*scsi.Command) error { return nil }},
		{Name: "READ(10)", Opcode: 0x28, Usage: usage(10), Direction: scsi.DirIn,
			Handler: func(cmd *scsi.Command) error {
				off, n := rw(cmd.CDB)
				if off+int64(n) > e2eSize {
					return scsi.LBAOutOfRange()
				}
				return cmd.LU().Store.ReadAt(cmd.AllocDataIn(n), off)
			}},
		{Name: "WRITE(10)", Opcode: 0x2A, Usage: usage(10), Direction: scsi.DirOut, Flags: scsi.FlagWritesMedium,
			Handler: func(cmd *scsi.Command) error {
				off, n := rw(cmd.CDB)
				data, err := cmd.TakeDataOut(n)
				if err != nil {
					return err
				}
				if off+int64(n) > e2eSize {
					return scsi.LBAOutOfRange()
				}
				return cmd.LU().Store.WriteAt(data, off, false)
			}},
		{Name: "SLOW", Opcode: opSlow, Usage: usage(6), Handler: func(cmd *scsi.Command) error {
			select {
			case <-gate:
			case <-cmd.Context().Done():
			}
			return nil
		}},
	}})
	if err != nil {
		panic(err)
	}
	return table
}

// newE2E starts a server with target e2eTarget, LUN 0 on a memory store,
// and returns its address.
func newE2E(t *testing.T, mods ...func(*iscsi.Config)) string {
	t.Helper()
	gate := make(chan struct{})
	log := slog.New(slog.DiscardHandler)
	table := e2eTable(gate)
	lu := scsi.NewLU(scsi.LUConfig{Identity: scsi.Identity{Name: "lu0"}, Store: backstore.NewMemory(e2eSize, fakeBlock),
		Table: table, Logger: log})
	cfg := iscsi.Config{
		Targets: []*iscsi.Target{{Name: e2eTarget, Alias: "e2e", TPGs: []*iscsi.TPG{{
			Tag: 1, RelativePortID: 1, Portals: []string{"127.0.0.1:0"}, LUNs: map[uint64]*scsi.LU{0: lu},
		}}}},
		Absent: scsi.NewAbsentLU(table, log),
		Logger: log,
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := iscsi.NewServer(cfg)
	require.NoError(t, err)
	require.NoError(t, srv.Listen())
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() {
		close(gate)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, srv.Shutdown(ctx))
	})
	return srv.Addrs()[0].String()
}

func e2eConfig() initiator.Config {
	return initiator.Config{InitiatorName: fakeInit, TargetName: e2eTarget, Timeout: 10 * time.Second}
}

func e2eDial(t *testing.T, addr string, cfg initiator.Config) *initiator.Session {
	t.Helper()
	s, err := initiator.Dial(testCtx(t), addr, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.Empty(t, s.Violations())
		s.Close()
	})
	if !cfg.Discovery {
		// The first command of a new I_T nexus reports the power on unit
		// attention (SAM-5 5.14); consume it.
		resp, err := s.Command(testCtx(t), initiator.Request{CDB: []byte{0, 0, 0, 0, 0, 0}})
		require.NoError(t, err)
		if resp.Status == scsi.StatusCheckCondition {
			require.NotNil(t, resp.Sense)
			require.Equal(t, scsi.UnitAttention, resp.Sense.Key)
		}
	}
	return s
}

func TestE2EReadWrite(t *testing.T) {
	addr := newE2E(t)
	tests := []struct {
		name   string
		params map[string]string
		digest bool
	}{
		{name: "defaults"},
		{name: "R2T only", params: map[string]string{"ImmediateData": "No"}},
		{name: "unsolicited", params: map[string]string{"InitialR2T": "No", "FirstBurstLength": "20000"}},
		{name: "small bursts", params: map[string]string{"MaxBurstLength": "4096", "MaxOutstandingR2T": "4",
			"MaxRecvDataSegmentLength": "1024"}},
		{name: "digests", digest: true, params: map[string]string{"InitialR2T": "No"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e2eConfig()
			cfg.Params = tt.params
			cfg.HeaderDigest, cfg.DataDigest = tt.digest, tt.digest
			s := e2eDial(t, addr, cfg)
			ctx := testCtx(t)
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					lba := uint32(i * 1024)
					for _, blocks := range []uint16{1, 7, 128, 700} {
						data := randomBytes(int(blocks) * fakeBlock)
						resp, err := s.Command(ctx, initiator.Request{CDB: write10(lba, blocks), DataOut: data})
						if !assert.NoError(t, err) || !assert.Equal(t, scsi.StatusGood, resp.Status) {
							return
						}
						resp, err = s.Command(ctx, initiator.Request{CDB: read10(lba, blocks), ReadLen: len(data)})
						if !assert.NoError(t, err) {
							return
						}
						assert.True(t, bytes.Equal(data, resp.DataIn), "read back %d blocks at %d", blocks, lba)
					}
				}()
			}
			wg.Wait()
			require.NoError(t, s.Logout(ctx, initiator.LogoutCloseSession))
		})
	}
}

func TestE2ESenseAndResiduals(t *testing.T) {
	addr := newE2E(t)
	s := e2eDial(t, addr, e2eConfig())
	ctx := testCtx(t)

	resp, err := s.Command(ctx, initiator.Request{CDB: []byte{0xFF, 0, 0, 0, 0, 0}})
	require.NoError(t, err)
	assert.Equal(t, scsi.StatusCheckCondition, resp.Status)
	require.NotNil(t, resp.Sense)
	assert.Equal(t, scsi.IllegalRequest, resp.Sense.Key)
	assert.Equal(t, scsi.ASCInvalidCommandOperationCode, resp.Sense.Code)

	resp, err = s.Command(ctx, initiator.Request{CDB: read10(0, 1), ReadLen: 4096})
	require.NoError(t, err)
	assert.True(t, resp.ResidualUnderflow)
	assert.Equal(t, uint32(3584), resp.Residual)
	assert.Len(t, resp.DataIn, 512)

	resp, err = s.Command(ctx, initiator.Request{LUN: 7, CDB: []byte{0, 0, 0, 0, 0, 0}})
	require.NoError(t, err)
	assert.Equal(t, scsi.StatusCheckCondition, resp.Status)
	require.NotNil(t, resp.Sense)
	assert.Equal(t, scsi.ASCLUNotSupported, resp.Sense.Code)
	require.NoError(t, s.NOP(ctx))
}

func TestE2ECHAP(t *testing.T) {
	addr := newE2E(t, func(c *iscsi.Config) {
		c.Targets[0].TPGs[0].Auth = &iscsi.CHAP{User: "alice", Secret: "alice-secret-12",
			MutualUser: "tgt", MutualSecret: "target-secret-1"}
	})
	for _, alg := range iscsi.DefaultCHAPAlgorithms {
		t.Run(alg.String(), func(t *testing.T) {
			cfg := e2eConfig()
			cfg.CHAP = &initiator.CHAPConfig{User: "alice", Secret: "alice-secret-12", MutualUser: "tgt",
				MutualSecret: "target-secret-1", Algorithms: []iscsi.CHAPAlgorithm{alg}}
			s := e2eDial(t, addr, cfg)
			require.NoError(t, s.NOP(testCtx(t)))
		})
	}
	cfg := e2eConfig()
	cfg.CHAP = &initiator.CHAPConfig{User: "alice", Secret: "wrong-secret-12"}
	_, err := initiator.Dial(testCtx(t), addr, cfg)
	var le *initiator.LoginError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, byte(initiator.LoginClassInitiatorErr), le.Class)
}

func TestE2EDiscover(t *testing.T) {
	addr := newE2E(t)
	recs, err := initiator.Discover(testCtx(t), addr, e2eConfig())
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.Equal(t, e2eTarget, recs[0].Name)
	assert.Equal(t, []string{addr + ",1"}, recs[0].Addresses)
}

func TestE2EAbortTask(t *testing.T) {
	addr := newE2E(t)
	s := e2eDial(t, addr, e2eConfig())
	ctx := testCtx(t)
	p, err := s.Start(ctx, initiator.Request{CDB: []byte{opSlow, 0, 0, 0, 0, 0}})
	require.NoError(t, err)
	resp, err := s.TaskMgmt(ctx, initiator.TMFAbortTask, 0, p.ITT)
	require.NoError(t, err)
	assert.Equal(t, initiator.TMFFunctionComplete, resp)
	_, err = p.Wait(ctx)
	assert.ErrorIs(t, err, initiator.ErrTaskAborted)
	resp, err = s.TaskMgmt(ctx, initiator.TMFAbortTask, 0, 0x7777)
	require.NoError(t, err)
	assert.Equal(t, initiator.TMFTaskDoesNotExist, resp)
	_, err = s.Command(ctx, initiator.Request{CDB: []byte{0, 0, 0, 0, 0, 0}})
	require.NoError(t, err)
}
