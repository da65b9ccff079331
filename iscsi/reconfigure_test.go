package iscsi

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// A reconfiguration that cannot bind a new portal, or does not validate,
// changes nothing; one that can adds and removes listeners.
func TestReconfigurePortals(t *testing.T) {
	absent := scsi.NewAbsentLU(testTable(nil), testLogger(t))
	target := func(portals ...string) []*Target {
		return []*Target{{Name: "iqn.2025-01.io.odxtgt:r", TPGs: []*TPG{{Tag: 1, Portals: portals}}}}
	}
	s, err := NewServer(Config{Absent: absent, Logger: testLogger(t), Targets: target("127.0.0.1:0")})
	require.NoError(t, err)
	require.NoError(t, s.Listen())
	t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
	before := s.topo.Load()
	first := s.Addrs()[0].String()

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	err = s.Reconfigure(target("127.0.0.1:0", taken.Addr().String()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "portal "+taken.Addr().String())
	assert.Same(t, before, s.topo.Load(), "the topology is unchanged")
	require.Len(t, s.Addrs(), 1)
	assert.Equal(t, first, s.Addrs()[0].String(), "the old portal still listens")

	err = s.Reconfigure([]*Target{{Name: "iqn.2025-01.io.odxtgt:r"}, {Name: "iqn.2025-01.io.odxtgt:r"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "defined twice")
	assert.Same(t, before, s.topo.Load())

	free, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := free.Addr().String()
	require.NoError(t, free.Close())
	require.NoError(t, s.Reconfigure(target(addr)))
	require.Len(t, s.Addrs(), 1)
	assert.Equal(t, addr, s.Addrs()[0].String())
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err, "the new portal listens")
	c.Close()
	_, err = net.Dial("tcp", first)
	assert.Error(t, err, "the removed portal stopped")
}
