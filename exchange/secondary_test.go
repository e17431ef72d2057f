package exchange

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// presenterFunc adapts a function to GrantPresenter.
type presenterFunc func(ctx context.Context, p peer.ID, signed []byte) (Authorizer, error)

func (f presenterFunc) PresentGrant(ctx context.Context, p peer.ID, signed []byte) (Authorizer, error) {
	return f(ctx, p, signed)
}

// A secondary holder checks the presented grant once per stream and then
// every block with the Authorizer it returned; a refused grant is one
// code before any block.
func TestFetchBlocksPresenting(t *testing.T) {
	p := newPair(t, "tcp")
	cids, store := randomBlocks(t, MaxBlocksPerRequest+3, 1000, 70000)
	var presented, authorized atomic.Int64
	newService(t, p.server, ServiceConfig{Blocks: store, Secondary: presenterFunc(func(_ context.Context, from peer.ID, signed []byte) (Authorizer, error) {
		presented.Add(1)
		switch {
		case from != p.clientID:
			return nil, fmt.Errorf("wrong peer: %w", ErrDenied)
		case bytes.Equal(signed, []byte("forged")):
			return nil, fmt.Errorf("signature: %w", ErrDenied)
		case bytes.Equal(signed, []byte("garbage")):
			return nil, fmt.Errorf("decode: %w", ErrBadRequest)
		}
		return authFunc(func(_ context.Context, _ peer.ID, grant string, c cid.Cid) error {
			authorized.Add(1)
			if grant != "g1" || c == cids[len(cids)-1] {
				return fmt.Errorf("not this one: %w", ErrDenied)
			}
			return nil
		}), nil
	})})
	client := newService(t, p.client, ServiceConfig{})
	ctx := context.Background()

	t.Run("served", func(t *testing.T) {
		want := cids[:len(cids)-1]
		i := 0
		err := client.FetchBlocksPresenting(ctx, p.serverID, []byte("signed grant"), "g1", want, func(c cid.Cid, data []byte) error {
			if c != want[i] || !bytes.Equal(data, store.m[c]) {
				t.Fatalf("block %d differs", i)
			}
			i++
			return nil
		})
		if err != nil || i != len(want) {
			t.Fatalf("FetchBlocksPresenting: %v after %d of %d blocks", err, i, len(want))
		}
		if presented.Load() != 1 || authorized.Load() != int64(len(want)) {
			t.Errorf("grant presented %d times, blocks authorized %d times", presented.Load(), authorized.Load())
		}
	})
	for _, tc := range []struct {
		name   string
		signed []byte
		want   error
	}{
		{"forged", []byte("forged"), ErrDenied},
		{"malformed", []byte("garbage"), ErrBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called := false
			err := client.FetchBlocksPresenting(ctx, p.serverID, tc.signed, "g1", cids[:3], func(cid.Cid, []byte) error { called = true; return nil })
			var re *RemoteError
			if !errors.As(err, &re) || !errors.Is(err, tc.want) || called {
				t.Errorf("got %v (block handed over: %v), want a RemoteError matching %v", err, called, tc.want)
			}
		})
	}
	t.Run("refused block ends the stream", func(t *testing.T) {
		n := 0
		err := client.FetchBlocksPresenting(ctx, p.serverID, []byte("signed grant"), "g1", cids[len(cids)-3:], func(cid.Cid, []byte) error { n++; return nil })
		if !errors.Is(err, ErrDenied) || n != 2 {
			t.Errorf("got %v after %d blocks, want ErrDenied after 2", err, n)
		}
	})
	t.Run("local checks", func(t *testing.T) {
		if err := client.FetchBlocksPresenting(ctx, p.serverID, nil, "g1", cids[:1], nil); !errors.Is(err, ErrBadRequest) {
			t.Errorf("empty grant: %v", err)
		}
		if err := client.FetchBlocksPresenting(ctx, p.serverID, make([]byte, MaxPresentedGrantSize+1), "g1", cids[:1], nil); !errors.Is(err, ErrTooLarge) {
			t.Errorf("oversized grant: %v", err)
		}
	})
	t.Run("not served without a presenter", func(t *testing.T) {
		q := newPair(t, "tcp")
		newService(t, q.server, ServiceConfig{Blocks: store, Auth: allowAll()})
		c := newService(t, q.client, ServiceConfig{})
		if err := c.FetchBlocksPresenting(ctx, q.serverID, []byte("g"), "g1", cids[:1], func(cid.Cid, []byte) error { return nil }); err == nil {
			t.Error("a node that does not serve as a secondary answered")
		}
	})
}

// FuzzGrantFrame checks that a hostile opening of a SecondaryBlocksProtocol
// stream never panics, never yields more than the cap, and that every
// accepted frame has exactly one encoding.
func FuzzGrantFrame(f *testing.F) {
	f.Add(appendGrantFrame(nil, []byte(`{"grant":{},"sig":""}`)))
	f.Add([]byte{0})
	f.Add([]byte{0x80, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		signed, err := readGrantFrame(br)
		if err != nil {
			return
		}
		if len(signed) == 0 || len(signed) > MaxPresentedGrantSize {
			t.Fatalf("accepted a grant of %d bytes", len(signed))
		}
		frame := appendGrantFrame(nil, signed)
		if !bytes.HasPrefix(in, frame) {
			t.Fatalf("re-encoding differs:\n got %x\nwant a prefix of %x", frame, in)
		}
	})
}
