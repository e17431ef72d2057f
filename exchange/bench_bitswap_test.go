//go:build bitswap

// The bitswap comparison needs modules that go.sum does not list yet
// (github.com/cskr/pubsub and others that boxo/bitswap imports). Run it
// with -tags bitswap once they are added.

package exchange

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/boxo/bitswap"
	bsnet "github.com/ipfs/boxo/bitswap/network/bsnet"
	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
)

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
