//go:build !linux

package dimse

import "net"

// quickAck is Linux's (quickack_linux.go); elsewhere ACKs are left to the
// kernel's defaults.
func quickAck(net.Conn) func() { return nil }
