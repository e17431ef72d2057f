package exchange

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The benchmark set: 200 random 512 KiB blocks (~100 MB), like a
// 200-slice CT. All the transfer benchmarks move the same bytes: compare
// their MB/s within one run, as the machine's load moves them all.
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

// BenchmarkBitswap: boxo bitswap between the same kind of hosts, blocks
// in in-memory blockstores, fetched with GetBlocks. Bitswap verifies
// blocks too (it derives each block's CID from its data).
func BenchmarkBitswap(b *testing.B) {
	cids, store := benchSet(b)
	for _, transport := range transports {
		b.Run(transport, func(b *testing.B) {
			p := newPair(b, transport)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			serverBS := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
			for _, c := range cids {
				blk, err := blocks.NewBlockWithCid(store.m[c], c)
				if err != nil {
					b.Fatal(err)
				}
				if err := serverBS.Put(ctx, blk); err != nil {
					b.Fatal(err)
				}
			}
			clientBS := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
			// The filter is the only per-request hook bitswap offers: it
			// sees the peer and the CID, never a grant.
			filter := bitswap.WithPeerBlockRequestFilter(func(p peer.ID, _ cid.Cid) bool { return p != "" })
			server := bitswap.New(ctx, bsnet.NewFromIpfsHost(p.server), nil, serverBS, filter)
			defer server.Close()
			client := bitswap.New(ctx, bsnet.NewFromIpfsHost(p.client), nil, clientBS)
			defer client.Close()
			// bitswap learns of peers through connection events; the
			// pair connected before bitswap started, so reconnect.
			_ = p.client.Network().ClosePeer(p.serverID)
			connect(b, p.client, p.server)
			time.Sleep(100 * time.Millisecond)

			b.SetBytes(benchBlocks * benchBlockSize)
			b.ResetTimer()
			for range b.N {
				fctx, fcancel := context.WithTimeout(ctx, time.Minute)
				ch, err := client.GetBlocks(fctx, cids)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for range ch {
					n++
				}
				fcancel()
				if n != benchBlocks {
					b.Fatalf("GetBlocks: %d blocks", n)
				}
				b.StopTimer()
				// Otherwise the next round is served from the local store.
				for _, c := range cids {
					if err := clientBS.DeleteBlock(ctx, c); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
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
