package netsim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// A stream's writes are in flight together, each arriving one one-way
// latency after it was written, in order: ten 64 KiB writes on a 1 s
// round trip are all written before the first arrives, and all arrive
// about half a second after the first is written, where mocknet alone
// (one write at a time) took ten one-way latencies. (Ordering, and a
// bound five times the ideal: not a timing.)
func TestNetsimStreamsPipelineWrites(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	a, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	b, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mn.LinkPeers(a.ID(), b.ID()); err != nil {
		t.Fatal(err)
	}
	spec := LinkSpec{RTT: time.Second}
	s := &Sim{}
	s.setImpairment(&Node{ID: a.ID()}, &Node{ID: b.ID(), idx: 1}, spec)
	const writes, size = 10, 64 << 10
	got := make(chan []byte, 1)
	var arrived atomic.Int64
	b.SetStreamHandler("/pipe", func(st network.Stream) {
		defer st.Close()
		var data []byte
		buf := make([]byte, 32<<10)
		for {
			n, err := st.Read(buf)
			data = append(data, buf[:n]...)
			arrived.Add(int64(n))
			if err != nil {
				break
			}
		}
		got <- data
	})
	if _, err := mn.ConnectPeers(a.ID(), b.ID()); err != nil {
		t.Fatal(err)
	}
	raw, err := a.NewStream(context.Background(), b.ID(), "/pipe")
	if err != nil {
		t.Fatal(err)
	}
	st := s.wrapStream(raw)
	start := time.Now()
	for i := range writes {
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(i)
		}
		if _, err := st.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if n := arrived.Load(); n > 0 {
		t.Errorf("%d bytes arrived before the last write returned: the writes waited for one another", n)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	data := <-got
	took := time.Since(start)
	if len(data) != writes*size {
		t.Fatalf("%d bytes arrived, want %d", len(data), writes*size)
	}
	for i := range writes {
		if data[i*size] != byte(i) || data[(i+1)*size-1] != byte(i) {
			t.Fatalf("write %d arrived out of order", i)
		}
	}
	if took < spec.RTT/2 || took > 5*spec.RTT/2 {
		t.Errorf("the writes arrived after %s; one-way latency %s", took, spec.RTT/2)
	}
}
