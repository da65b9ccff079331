package iscsi

// Logout reason codes (RFC 7143 11.14.1) and response codes (11.15.1).
const (
	logoutCloseSession    = 0
	logoutCloseConnection = 1
	logoutRecovery        = 2

	logoutSuccess              = 0
	logoutCIDNotFound          = 1
	logoutRecoveryNotSupported = 2
)

// processLogout handles a Logout Request (RFC 7143 11.14). Closing the
// session or this connection (the same at MaxConnections=1) aborts what is
// still running, then the Logout Response goes out and the connection
// closes.
func (c *conn) processLogout(p *PDU) error {
	reason := p.Flags() & 0x7F
	itt := p.ITT()
	switch reason {
	case logoutCloseSession:
	case logoutCloseConnection:
		if cid := p.Uint16(offCID); cid != c.cid {
			c.queueLogoutResponse(itt, logoutCIDNotFound)
			return nil
		}
	case logoutRecovery:
		// Connection recovery needs ErrorRecoveryLevel 2.
		c.queueLogoutResponse(itt, logoutRecoveryNotSupported)
		return nil
	default:
		return reject(RejectProtocolError, "logout reason code %d", reason)
	}
	if err := c.tmfRoom(p); err != nil {
		return err
	}
	c.loggingOut = true
	tm := &tmfRequest{itt: itt, logout: true}
	c.abortScope(tm, func(*task) bool { return true }, func() {
		if c.sess.nexus != nil {
			c.sess.nexus.AbortTasks()
		}
	})
	return nil
}

// queueLogoutResponse stages a Logout Response; Time2Wait and Time2Retain
// are 0: nothing is kept for recovery at ERL 0 (RFC 7143 11.15.2).
func (c *conn) queueLogoutResponse(itt uint32, response byte) {
	o := c.queue(OpLogoutResp, 0x80, itt)
	o.bhs[2] = response
	c.stamp(o, true)
}
