package auditlog

import (
	"net"
	"syscall"
	"unsafe"
)

// unacked returns how many bytes written to c the peer's TCP stack has
// not yet acknowledged (the SIOCOUTQ ioctl), or ok false when the
// connection cannot tell.
func unacked(c net.Conn) (n int, ok bool) {
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return 0, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var v int32
	var errno syscall.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&v)))
	})
	if err != nil || errno != 0 {
		return 0, false
	}
	return int(v), true
}
