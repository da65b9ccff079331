package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/odxtgt/odxtgt/scsi"
)

// TestMain lets the tests run this test binary as odxtgt itself: with
// ODXTGT_TEST_MAIN=1 it is the command, signals and all.
func TestMain(m *testing.M) {
	if os.Getenv("ODXTGT_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// notifySocket listens where a service manager would and returns each
// datagram received.
func notifySocket(t *testing.T, name string) (*net.UnixConn, func() string) {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
		n, err := c.Read(buf)
		require.NoError(t, err)
		return string(buf[:n])
	}
}

func TestSdNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	_, next := notifySocket(t, path)
	require.NoError(t, sdNotify(path, "READY=1"))
	assert.Equal(t, "READY=1", next())

	abstract := fmt.Sprintf("@odxtgt-test-%d", os.Getpid())
	_, next = notifySocket(t, "\x00"+abstract[1:])
	require.NoError(t, sdNotify(abstract, "STOPPING=1"))
	assert.Equal(t, "STOPPING=1", next())

	assert.NoError(t, sdNotify("", "READY=1"), "no NOTIFY_SOCKET: nothing to do")
	assert.Error(t, sdNotify(filepath.Join(t.TempDir(), "nobody"), "READY=1"))
	assert.Regexp(t, `^RELOADING=1\nMONOTONIC_USEC=\d+$`, reloadingState())
}

// TestBinarySIGHUP runs odxtgt as a process under a fake service manager:
// READY=1 once the portal listens, SIGHUP reloads the configuration
// between RELOADING=1 and READY=1 and a live session sees the new LUN,
// SIGTERM ends it with STOPPING=1 and exit status 0.
func TestBinarySIGHUP(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk0.img")
	port := freePort(t)
	cfgPath := writeConfig(t, dir, rlConfig(img, port, "", "    luns: [{lun: 0, backstore: disk0}]\n"))
	sock := filepath.Join(dir, "notify")
	_, next := notifySocket(t, sock)

	var stderr syncBuffer
	cmd := exec.Command(os.Args[0], "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "ODXTGT_TEST_MAIN=1", "NOTIFY_SOCKET="+sock)
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	require.Equal(t, "READY=1", next(), stderr.String())

	addr := "127.0.0.1:" + fmt.Sprint(port)
	s := rlDial(t, addr, rlHost1, rlTarget)
	wantUA(t, s, 0, scsi.ASCPowerOnResetOrBusDeviceReset)
	require.NoError(t, os.WriteFile(cfgPath, []byte(rlConfig(img, port, "  - {name: mem1, type: memory, size: 1MiB}\n",
		"    luns: [{lun: 0, backstore: disk0}, {lun: 1, backstore: mem1}]\n")), 0o644))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	assert.True(t, strings.HasPrefix(next(), "RELOADING=1\nMONOTONIC_USEC="))
	assert.Equal(t, "READY=1", next())
	wantUA(t, s, 0, scsi.ASCReportedLUNsDataChanged)
	assert.Equal(t, []uint64{0, 1}, reportLUNs(t, s))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Logout(ctx, 0))

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, "STOPPING=1", next())
	select {
	case <-exited:
		require.NoError(t, waitErr, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("odxtgt did not exit after SIGTERM")
	}
	assert.Contains(t, stderr.String(), `msg="reload: LUN added"`)
	assert.NotContains(t, stderr.String(), "level=ERROR")
}

// TestSystemdUnit verifies contrib/odxtgt.service with systemd-analyze,
// ExecStart pointing at this test binary; conformance/systemd.sh does
// the same with the real binary and fails where this skips.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian package systemd): conformance/systemd.sh installs it and verifies the unit")
	}
	unit, err := os.ReadFile(filepath.Join("..", "..", "contrib", "odxtgt.service"))
	require.NoError(t, err)
	self, err := os.Executable()
	require.NoError(t, err)
	for _, want := range []string{"Type=notify\n", "ExecStart=/usr/local/bin/odxtgt serve", "ExecReload=/bin/kill -HUP $MAINPID\n"} {
		assert.Contains(t, string(unit), want)
	}
	path := filepath.Join(t.TempDir(), "odxtgt.service")
	require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/odxtgt", self)), 0o644))
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.NotContains(t, string(out), "odxtgt.service", "systemd-analyze verify has complaints")
}
