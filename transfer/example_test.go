package transfer_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/transfer"
)

// streamer is the shape of a block protocol's client: it fetches a list
// of CIDs over one stream and calls got for each, as
// exchange.Service.FetchBlocks does with the peer and grant bound.
type streamer func(ctx context.Context, cids []cid.Cid, got func(cid.Cid, []byte) error) error

// holder adapts a streamer to a transfer.Source: one request, one stream.
type holder struct {
	id    string
	fetch streamer
}

func (h holder) ID() string { return h.id }

func (h holder) Fetch(ctx context.Context, blocks []transfer.Block, got func(transfer.Block, []byte) error) error {
	cids := make([]cid.Cid, len(blocks))
	size := make(map[cid.Cid]int, len(blocks))
	for i, b := range blocks {
		cids[i], size[b.CID] = b.CID, b.Size
	}
	return h.fetch(ctx, cids, func(c cid.Cid, data []byte) error {
		return got(transfer.Block{CID: c, Size: size[c]}, data)
	})
}

func Example() {
	// A holder with three blocks in memory.
	held := map[cid.Cid][]byte{}
	var plan transfer.Plan
	for _, s := range []string{"first", "second", "third"} {
		c := key([]byte(s))
		held[c] = []byte(s)
		plan.Blocks = append(plan.Blocks, transfer.Block{CID: c, Size: len(s)})
	}
	memory := streamer(func(ctx context.Context, cids []cid.Cid, got func(cid.Cid, []byte) error) error {
		for _, c := range cids {
			if err := got(c, held[c]); err != nil {
				return err
			}
		}
		return nil
	})

	// The CID check, and a sink (the node's: batched, synced writes).
	plan.Verify = func(b transfer.Block, data []byte) error {
		if !key(data).Equals(b.CID) {
			return errors.New("bytes do not match the CID")
		}
		return nil
	}
	var mu sync.Mutex
	stored := 0
	plan.Sink = transfer.SinkFunc(func(ctx context.Context, b transfer.Block, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		stored += len(data)
		return nil
	})

	res, err := transfer.Fetch(context.Background(), plan, []transfer.Source{holder{"riverside", memory}}, transfer.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d blocks, %d bytes stored, %.0f%% from %s, %d missing\n", res.Blocks, stored, 100*res.Sources[0].Share, res.Sources[0].ID, len(res.Missing))
	// Output: 3 blocks, 16 bytes stored, 100% from riverside, 0 missing
}

func key(data []byte) cid.Cid {
	h, _ := mh.Sum(data, mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h)
}
