package iscsi_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/iscsi"
	"github.com/odxtgt/odxtgt/scsi"
)

// TestShutdownRacingServe stops servers right as Serve starts: whichever
// runs first, Serve ends with ErrServerClosed and Shutdown returns. (The
// accept-loop counting race it guards against shows up under -race only
// with unlucky timing, as in cmd/odxtgt's TestServeDemo.)
func TestShutdownRacingServe(t *testing.T) {
	lu, absent := newRWLU(t, "race", 1<<20)
	for range 20 {
		srv, err := iscsi.NewServer(iscsi.Config{
			Targets: []*iscsi.Target{{Name: "iqn.2024-01.org.odxtgt:race", TPGs: []*iscsi.TPG{{Tag: 1,
				Portals: []string{"127.0.0.1:0"}, LUNs: map[uint64]*scsi.LU{0: lu}}}}},
			Absent: absent,
			Logger: slog.New(slog.DiscardHandler),
		})
		require.NoError(t, err)
		require.NoError(t, srv.Listen())
		served := make(chan error, 1)
		go func() { served <- srv.Serve() }()
		require.NoError(t, srv.Shutdown(context.Background()))
		require.ErrorIs(t, <-served, iscsi.ErrServerClosed)
	}
}
