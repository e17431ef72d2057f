package exchange

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
)

// The benchmark set: 200 random 512 KiB blocks (~100 MB), like a
// 200-slice CT. All the transfer benchmarks (here and, with -tags bitswap,
// in bench_bitswap_test.go) move the same bytes: compare their MB/s within
// one run, as the machine's load moves them all.
const (
	benchBlocks    = 200
	benchBlockSize = 512 << 10
)

func benchSet(b *testing.B) ([]cid.Cid, *memBlocks) {
	b.Helper()
	return randomBlocks(b, benchBlocks, benchBlockSize)
}

// BenchmarkFetchBlocks: our BlocksProtocol, verification included.
func BenchmarkFetchBlocks(b *testing.B) {
	cids, store := benchSet(b)
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			p := newPair(b, transport)
			newService(b, p.server, ServiceConfig{Blocks: store, Auth: allowAll()})
			client := newService(b, p.client, ServiceConfig{})
			b.SetBytes(benchBlocks * benchBlockSize)
			b.ResetTimer()
			for range b.N {
				n := 0
				err := client.FetchBlocks(context.Background(), p.serverID, "g", cids, func(cid.Cid, []byte) error {
					n++
					return nil
				})
				if err != nil || n != benchBlocks {
					b.Fatalf("FetchBlocks: %d blocks, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkFetchBlocksSlowSink: FetchBlocks into a callback that takes
// 1 ms a block, like a synced 512 KiB write. Reading and verifying ahead
// of the callback (fetchAhead) is what this measures.
func BenchmarkFetchBlocksSlowSink(b *testing.B) {
	cids, store := benchSet(b)
	p := newPair(b, "tcp")
	newService(b, p.server, ServiceConfig{Blocks: store, Auth: allowAll()})
	client := newService(b, p.client, ServiceConfig{})
	b.SetBytes(benchBlocks * benchBlockSize)
	b.ResetTimer()
	for range b.N {
		err := client.FetchBlocks(context.Background(), p.serverID, "g", cids, func(cid.Cid, []byte) error {
			time.Sleep(time.Millisecond) // like a synced 512 KiB write at ~500 MB/s
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawStream: the same bytes over one plain libp2p stream
// (Noise or QUIC's TLS, yamux), without our framing, authorization or
// verification: what the transport itself costs.
func BenchmarkRawStream(b *testing.B) {
	cids, store := benchSet(b)
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			p := newPair(b, transport)
			p.server.SetStreamHandler("/raw", func(st network.Stream) {
				defer st.Close()
				var one [1]byte
				for {
					if _, err := io.ReadFull(st, one[:]); err != nil {
						return
					}
					for _, c := range cids {
						if _, err := st.Write(store.m[c]); err != nil {
							return
						}
					}
				}
			})
			st, err := p.client.NewStream(context.Background(), p.serverID, "/raw")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Reset()
			buf := make([]byte, benchBlockSize)
			b.SetBytes(benchBlocks * benchBlockSize)
			b.ResetTimer()
			for range b.N {
				if _, err := st.Write([]byte{1}); err != nil {
					b.Fatal(err)
				}
				for range benchBlocks {
					if _, err := io.ReadFull(st, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkRawTCP: the same bytes over a plain loopback TCP connection,
// no encryption, muxing or verification. The ceiling for the others.
func BenchmarkRawTCP(b *testing.B) {
	cids, store := benchSet(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var req [1]byte
		for {
			if _, err := io.ReadFull(conn, req[:]); err != nil {
				return
			}
			for _, c := range cids {
				if _, err := conn.Write(store.m[c]); err != nil {
					return
				}
			}
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchBlockSize)
	b.SetBytes(benchBlocks * benchBlockSize)
	b.ResetTimer()
	for range b.N {
		if _, err := conn.Write([]byte{1}); err != nil {
			b.Fatal(err)
		}
		for range benchBlocks {
			if _, err := io.ReadFull(conn, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	conn.Close()
	<-done
}
