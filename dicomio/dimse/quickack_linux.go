//go:build linux

package dimse

import (
	"net"
	"syscall"
)

// quickAck returns a function that makes conn's TCP socket send the
// acknowledgement it is holding back now (TCP_QUICKACK), or nil when conn
// is not TCP (over TLS: the connection under it).
//
// Many DICOM programs leave Nagle's algorithm on (DCMTK's default): they
// hold back a segment smaller than the MSS until the one before it is
// acknowledged, and Linux delays acknowledgements by up to 40 ms when it
// has nothing to send back. Every message they send or answer then waits
// for that delayed ACK: a C-STORE to DCMTK's storescp took ~50 ms an
// instance, a storescu sending to us ~20 ms. The kernel goes back to
// delaying on its own, so the Reader asks again after each PDU's header
// has arrived, when the ACK for it is pending.
func quickAck(conn net.Conn) func() {
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = nc.NetConn()
	}
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	set := func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	}
	return func() { rc.Control(set) }
}
