package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
)

// fetchBlock asks holder for one block over the real block protocol,
// citing grantID, as from's node would.
func fetchBlock(t *testing.T, from, holder *tnode, grantID string, c cid.Cid) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []byte
	err := from.ex.FetchBlocks(ctx, holder.ID(), grantID, []cid.Cid{c}, func(_ cid.Cid, data []byte) error {
		got = bytes.Clone(data)
		return nil
	})
	if err == nil && got == nil {
		t.Fatal("FetchBlocks succeeded without a block")
	}
	return got, err
}

// Every block request is authorized on its own: the block's study must be
// covered by a live grant issued to the very peer that asks.
func TestBlockAuthorization(t *testing.T) {
	clock := &testClock{}
	a := newNode(t, "Alpha", nodeSetup{clock: clock})
	b := newNode(t, "Beta")
	c := newNode(t, "Gamma")
	link(t, a, b)
	link(t, a, c)
	studyA, _ := importCT(t, a, 1, 2)
	studyB, _ := importCT(t, a, 2, 2)
	blockA := studyCIDs(t, a, studyA)[0]
	blockB := studyCIDs(t, a, studyB)[0]
	ctx := context.Background()
	g := grant(t, a, b, studyA)

	want, err := a.store.GetBlock(ctx, blockA)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fetchBlock(t, b, a, g.Grant.ID, blockA)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("grantee fetches a block of its study: %v", err)
	}
	requireAudit(t, a, consent.Entry{Action: consent.ActFetchAllowed, Peer: b.ID(), Study: studyA, GrantID: g.Grant.ID, Decision: "allow"})

	unknownGrant := "0123456789abcdef0123456789abcdef"
	absent, _ := cidPrefix.Sum([]byte("a block nobody stored"))
	for _, tc := range []struct {
		name    string
		from    *tnode
		grant   string
		block   cid.Cid
		wantErr error
		reason  string // of the fetch-denied audit entry at the holder; "" for none
	}{
		{"another partner cites the grant", c, g.Grant.ID, blockA, exchange.ErrDenied, "wrong-grantee"},
		{"unknown grant", b, unknownGrant, blockA, exchange.ErrDenied, "no-grant"},
		{"empty grant", b, "", blockA, exchange.ErrDenied, "no-grant"},
		{"block of another study", b, g.Grant.ID, blockB, exchange.ErrDenied, "out-of-scope"},
		// Only a grantee of ours learns that a block is absent.
		{"absent block, no grant", c, unknownGrant, absent, exchange.ErrDenied, "no-grant"},
		{"absent block, other's grant", c, g.Grant.ID, absent, exchange.ErrDenied, "no-grant"},
		{"absent block, own grant", b, g.Grant.ID, absent, exchange.ErrNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fetchBlock(t, tc.from, a, tc.grant, tc.block)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("FetchBlocks: %v, want %v", err, tc.wantErr)
			}
			if tc.reason != "" {
				grant := tc.grant
				if tc.block == absent {
					grant = "" // a grant cited for an unknown block is not recorded: the peer chose it
				}
				requireAudit(t, a, consent.Entry{Action: consent.ActFetchDenied, Peer: tc.from.ID(), GrantID: grant, Decision: "deny", Reason: tc.reason})
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		g2, err := a.Grant(ctx, GrantRequest{To: "Beta", Study: studyB, Expires: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fetchBlock(t, b, a, g2.Grant.ID, blockB); err != nil {
			t.Fatalf("before expiry: %v", err)
		}
		clock.Advance(time.Hour + time.Second)
		if _, err := fetchBlock(t, b, a, g2.Grant.ID, blockB); !errors.Is(err, exchange.ErrDenied) {
			t.Fatalf("after expiry: %v, want ErrDenied", err)
		}
		requireAudit(t, a, consent.Entry{Action: consent.ActFetchDenied, Peer: b.ID(), Study: studyB, GrantID: g2.Grant.ID, Reason: "expired"})
		// The other grant (72 h) is still live.
		if _, err := fetchBlock(t, b, a, g.Grant.ID, blockA); err != nil {
			t.Fatalf("the longer grant after the short one expired: %v", err)
		}
	})
	t.Run("not yet valid", func(t *testing.T) {
		g3, err := a.Grant(ctx, GrantRequest{To: "Beta", Study: studyB, NotBefore: clock.Now().Add(time.Hour), Expires: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fetchBlock(t, b, a, g3.Grant.ID, blockB); !errors.Is(err, exchange.ErrDenied) {
			t.Fatalf("before not-before: %v, want ErrDenied", err)
		}
		requireAudit(t, a, consent.Entry{Action: consent.ActFetchDenied, Peer: b.ID(), Study: studyB, GrantID: g3.Grant.ID, Reason: "not-yet-valid"})
	})
	t.Run("revoked", func(t *testing.T) {
		if _, err := a.Revoke(g.Grant.ID, "", "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := fetchBlock(t, b, a, g.Grant.ID, blockA); !errors.Is(err, exchange.ErrDenied) {
			t.Fatalf("after revocation: %v, want ErrDenied", err)
		}
		requireAudit(t, a, consent.Entry{Action: consent.ActFetchDenied, Peer: b.ID(), Study: studyA, GrantID: g.Grant.ID, Reason: "revoked"})
	})
	t.Run("pull without a grant", func(t *testing.T) {
		if _, err := c.ex.PullManifest(ctx, a.ID(), studyA); !errors.Is(err, exchange.ErrDenied) {
			t.Fatalf("pull without a grant: %v, want ErrDenied", err)
		}
		requireAudit(t, a, consent.Entry{Action: consent.ActFetchDenied, Peer: c.ID(), Study: studyA, Reason: "no-grant"})
		if _, err := c.StartFetch(ctx, FetchRequest{Study: studyA, From: "Alpha"}); !errors.Is(err, exchange.ErrDenied) {
			t.Errorf("fetch --from without a grant: %v, want ErrDenied", err)
		}
	})
}

// A host that is not a partner cannot even open a stream: the holder's
// connection gater refuses it, so the authorizer is never asked.
func TestNonPartnerCannotOpenStream(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	study, _ := importCT(t, a, 1, 1)
	g := grant(t, a, b, study)
	block := studyCIDs(t, a, study)[0]

	key, _, err := lcrypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The stranger's own gater admits the holder: only the holder's
	// refusal is tested.
	h, err := exchange.NewHost(exchange.HostConfig{
		Key: key, ListenAddrs: []multiaddr.Multiaddr{multiaddr.StringCast("/ip4/127.0.0.1/tcp/0")},
		Partners: partnersFunc(func(p peer.ID) bool { return p == a.ID() }),
	})
	if err != nil {
		t.Fatal(err)
	}
	svc := exchange.NewService(h, exchange.ServiceConfig{})
	t.Cleanup(func() {
		svc.Close()
		h.Close()
	})
	h.Peerstore().AddAddrs(a.ID(), a.host.Addrs(), peerstore.PermanentAddrTTL)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, proto := range []protocol.ID{exchange.BlocksProtocol, exchange.ManifestProtocol, exchange.ManifestPullProtocol} {
		if s, err := h.NewStream(ctx, a.ID(), proto); err == nil {
			// A stream may look open before the remote refusal arrives;
			// it must not carry anything.
			s.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := s.Write([]byte{0}); err == nil {
				if _, err := s.Read(make([]byte, 1)); err == nil {
					t.Errorf("stranger opened and used a %s stream", proto)
				}
			}
			s.Reset()
		}
	}
	called := false
	err = svc.FetchBlocks(ctx, a.ID(), g.Grant.ID, []cid.Cid{block}, func(cid.Cid, []byte) error { called = true; return nil })
	if err == nil || called {
		t.Fatalf("stranger fetched a block citing a real grant: err=%v, got a block=%v", err, called)
	}
	if errors.Is(err, exchange.ErrDenied) {
		t.Errorf("stranger reached the authorizer: %v", err)
	}
	if e := findAudit(t, a, consent.Entry{Peer: h.ID()}); len(e) != 0 {
		t.Errorf("holder audited the stranger, so its request got through the gater: %+v", e)
	}
	if a.host.Network().Connectedness(h.ID()).String() == "Connected" {
		t.Error("holder keeps a connection to a stranger")
	}
}

type partnersFunc func(peer.ID) bool

func (f partnersFunc) IsPartner(p peer.ID) bool { return f(p) }
