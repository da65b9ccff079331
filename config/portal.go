package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ErrPortal is wrapped by every ParsePortal error.
var ErrPortal = errors.New("invalid portal")

// ParseListen parses the address of an HTTP endpoint (metrics.listen):
// an IP address with an optional TCP port, written as for ParsePortal, but
// DefaultMetricsPort stands for a missing port. Port 0 asks the kernel
// for any free port.
func ParseListen(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	ap, err := ParsePortal(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("invalid listen address %q: want an IP address and optional port, e.g. 127.0.0.1:%d or [::1]:%d",
			s, DefaultMetricsPort, DefaultMetricsPort)
	}
	return netip.AddrPortFrom(ap.Addr(), DefaultMetricsPort), nil
}

// ParsePortal parses a network portal: an IP address with an optional TCP
// port, "192.0.2.1:3260", "192.0.2.1", "[2001:db8::1]:3260", "[2001:db8::1]"
// or "2001:db8::1"; DefaultPort applies when the port is absent. Unspecified
// addresses (0.0.0.0, [::]) listen on every interface. Host names are not
// accepted: a portal is an address odxtgt listens on. Port 0 asks the
// kernel for any free port (the port chosen is logged), which tests and
// conformance scripts use; portals with port 0 and the same address are one
// listener. The canonical form of a portal is the String() of the result.
func ParsePortal(s string) (netip.AddrPort, error) {
	if inner, ok := strings.CutPrefix(s, "["); ok && strings.HasSuffix(inner, "]") {
		a, err := netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		if err != nil || !a.Is6() {
			return netip.AddrPort{}, fmt.Errorf("%w %q: brackets must enclose an IPv6 address", ErrPortal, s)
		}
		return netip.AddrPortFrom(a, DefaultPort), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, DefaultPort), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w %q: want an IP address and optional port, e.g. 192.0.2.1:3260 or [2001:db8::1]:3260",
			ErrPortal, s)
	}
	return ap, nil
}
