package node

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/transfer"
)

// fakeBlocks serves blocks from memory the way exchange.FetchBlocks does:
// in the order asked, stopping at the first error; bad names a block it
// refuses as not matching its CID.
type fakeBlocks struct {
	held map[cid.Cid][]byte
	bad  cid.Cid
}

func (f fakeBlocks) FetchBlocks(ctx context.Context, p peer.ID, grant string, cids []cid.Cid, got func(cid.Cid, []byte) error) error {
	for _, c := range cids {
		if c.Equals(f.bad) {
			return fmt.Errorf("fetch blocks from %s: verify block %s: %w", p, c, exchange.ErrBadBlock)
		}
		if err := got(c, f.held[c]); err != nil {
			return err
		}
	}
	return nil
}

func (fakeBlocks) PullManifest(context.Context, peer.ID, string) ([]byte, error) {
	return nil, exchange.ErrNotFound
}

// The holder adapter hands the engine each block with its planned size,
// and a block that does not match its CID drops the holder as corrupt.
func TestHolderSource(t *testing.T) {
	held := map[cid.Cid][]byte{}
	var plan transfer.Plan
	for i := range 8 {
		data := fmt.Appendf(nil, "block %d of a study", i)
		c, _ := cidPrefix.Sum(data)
		held[c] = data
		plan.Blocks = append(plan.Blocks, transfer.Block{CID: c, Size: len(data)})
	}
	plan.Verify = verifyFetched
	for _, tc := range []struct {
		name  string
		bad   int // index of the block the holder sends wrong; -1: none
		state transfer.State
	}{
		{"good", -1, transfer.StateActive},
		{"bad block", 5, transfer.StateCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fb := fakeBlocks{held: held}
			if tc.bad >= 0 {
				fb.bad = plan.Blocks[tc.bad].CID
			}
			got := map[cid.Cid]bool{}
			plan.Sink = transfer.SinkFunc(func(_ context.Context, b transfer.Block, data []byte) error {
				if b.Size != len(held[b.CID]) || string(data) != string(held[b.CID]) {
					return fmt.Errorf("sink got %s with size %d", b.CID, b.Size)
				}
				got[b.CID] = true
				return nil
			})
			h := holderSource{ex: fb, peer: "holder", name: "Alpha", grant: "g"}
			res, err := transfer.Fetch(context.Background(), plan, []transfer.Source{h}, transfer.Options{MaxRequestBlocks: 2, InitialWindow: 1})
			if s := res.Sources[0]; s.State != tc.state || s.ID != "Alpha" {
				t.Fatalf("holder's state %v (%v), want %v", s.State, s.Err, tc.state)
			}
			if tc.bad < 0 {
				if err != nil || len(got) != len(plan.Blocks) {
					t.Fatalf("fetch: %d blocks, %v", len(got), err)
				}
				return
			}
			err = unwrapHolder(err)
			if !errors.Is(err, transfer.ErrCorrupt) || !errors.Is(err, exchange.ErrBadBlock) || !permanent(err) || fetchFailReason(err) != fetchFailCorrupt {
				t.Errorf("error of a corrupt holder: %v", err)
			}
			if got[fb.bad] || len(res.Missing) == 0 {
				t.Errorf("the bad block reached the sink, or nothing is missing: %d missing", len(res.Missing))
			}
		})
	}
}
