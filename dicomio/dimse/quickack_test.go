package dimse

import (
	"bytes"
	"crypto/tls"
	"net"
	"runtime"
	"testing"
)

// The Reader acknowledges each PDU's start at once (quickack_linux.go):
// a peer with Nagle's algorithm on (DCMTK's default) holds the rest of
// a message until then. BenchmarkSend and BenchmarkCStore's
// *-storescu-nagle cases measure what it is worth against DCMTK.
func TestReaderQuickAcksEachPDU(t *testing.T) {
	var b []byte
	for _, p := range []PDU{sampleRQ(), &PData{Values: []PDV{{Context: 1, Command: true, Last: true, Data: []byte{1, 2}}}}, &ReleaseRQ{}} {
		b = AppendPDU(b, p)
	}
	r := NewReader(bytes.NewReader(b), 1<<20)
	calls := 0
	r.quickAck = func() { calls++ }
	for i := range 3 {
		if _, err := r.Read(); err != nil {
			t.Fatalf("PDU %d: %v", i, err)
		}
		if calls != i+1 {
			t.Fatalf("after PDU %d: %d quick ACKs, want %d", i, calls, i+1)
		}
	}
}

func TestQuickAckFindsTheTCPSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if quickAck(a) != nil {
		t.Error("quickAck of a pipe: want nil")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			c.Read(make([]byte, 1))
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := runtime.GOOS == "linux"
	for _, conn := range []net.Conn{c, tls.Client(c, &tls.Config{InsecureSkipVerify: true})} {
		f := quickAck(conn)
		if (f != nil) != want {
			t.Errorf("quickAck(%T) set: %v, want %v on %s", conn, f != nil, want, runtime.GOOS)
		}
		if f != nil {
			f() // a setsockopt on a live socket: must not fail or block
		}
	}
}
