package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// notifySystemd sends a state line to the service manager when odxtgt
// runs as a systemd service of Type=notify (sd_notify(3)): a datagram
// to the unix socket named by $NOTIFY_SOCKET, an abstract socket when the
// name starts with "@". Without $NOTIFY_SOCKET it does nothing; a failure
// is logged, never fatal.
func notifySystemd(log *slog.Logger, state string) {
	if err := sdNotify(os.Getenv("NOTIFY_SOCKET"), state); err != nil {
		log.Warn("cannot notify systemd", "state", state, "err", err)
	}
}

// sdNotify sends state to the notification socket path; "" is a no-op.
func sdNotify(path, state string) error {
	if path == "" {
		return nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}

// reloadingState is the notification that a reload starts: systemd wants
// the CLOCK_MONOTONIC time with it, to tell this reload from an older one
// (sd_notify(3), RELOADING=1).
func reloadingState() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "RELOADING=1"
	}
	return fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", ts.Nano()/1000)
}
