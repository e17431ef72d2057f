package exchange

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
)

// transports are the ones every end-to-end test runs over.
var transports = []string{"tcp", "quic"}

// partnerSet is a Partners whose members change at run time.
type partnerSet struct {
	mu sync.Mutex
	m  map[peer.ID]bool
}

func newPartners(ids ...peer.ID) *partnerSet {
	p := &partnerSet{m: map[peer.ID]bool{}}
	for _, id := range ids {
		p.add(id)
	}
	return p
}

func (p *partnerSet) IsPartner(id peer.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[id]
}

func (p *partnerSet) add(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[id] = true
}

func (p *partnerSet) remove(id peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, id)
}

func newKey(t testing.TB) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

func loopback(t testing.TB, transport string) multiaddr.Multiaddr {
	t.Helper()
	s := "/ip4/127.0.0.1/tcp/0"
	if transport == "quic" {
		s = "/ip4/127.0.0.1/udp/0/quic-v1"
	}
	return multiaddr.StringCast(s)
}

// newHost starts a host on loopback with only the given transport
// listening; it is closed when the test ends.
func newHost(t testing.TB, transport string, key crypto.PrivKey, partners Partners) host.Host {
	t.Helper()
	h, err := NewHost(HostConfig{Key: key, ListenAddrs: []multiaddr.Multiaddr{loopback(t, transport)}, Partners: partners})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// pair starts two hosts that are each other's partner, client connected
// to server over transport.
type pair struct {
	server, client     host.Host
	serverP, clientP   *partnerSet
	serverID, clientID peer.ID
}

func newPair(t testing.TB, transport string) *pair {
	t.Helper()
	sk, sid := newKey(t)
	ck, cid := newKey(t)
	p := &pair{serverP: newPartners(cid), clientP: newPartners(sid), serverID: sid, clientID: cid}
	p.server = newHost(t, transport, sk, p.serverP)
	p.client = newHost(t, transport, ck, p.clientP)
	connect(t, p.client, p.server)
	return p
}

func connect(t testing.TB, from, to host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: to.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// newService starts a Service closed when the test ends.
func newService(t testing.TB, h host.Host, cfg ServiceConfig) *Service {
	t.Helper()
	s := NewService(h, cfg)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// memBlocks is a BlockStore over a map.
type memBlocks struct {
	mu sync.Mutex
	m  map[cid.Cid][]byte
}

func (b *memBlocks) GetBlock(_ context.Context, c cid.Cid) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, ok := b.m[c]
	if !ok {
		return nil, fmt.Errorf("get block %s: %w", c, ErrBlockNotFound)
	}
	return d, nil
}

// lyingBlocks answers every request with the same bytes.
type lyingBlocks struct{ data []byte }

func (b lyingBlocks) GetBlock(context.Context, cid.Cid) ([]byte, error) { return b.data, nil }

// authFunc adapts a function to Authorizer.
type authFunc func(ctx context.Context, p peer.ID, grant string, c cid.Cid) error

func (f authFunc) AuthorizeBlock(ctx context.Context, p peer.ID, grant string, c cid.Cid) error {
	return f(ctx, p, grant, c)
}

func allowAll() Authorizer {
	return authFunc(func(context.Context, peer.ID, string, cid.Cid) error { return nil })
}

// manifestFunc adapts a function to ManifestHandler.
type manifestFunc func(ctx context.Context, from peer.ID, sealed []byte) error

func (f manifestFunc) HandleManifest(ctx context.Context, from peer.ID, sealed []byte) error {
	return f(ctx, from, sealed)
}

// randomBlocks makes n blocks with the given sizes (cycled) and their CIDv1
// (raw, sha2-256), as the node stores them.
func randomBlocks(t testing.TB, n int, sizes ...int) ([]cid.Cid, *memBlocks) {
	t.Helper()
	store := &memBlocks{m: map[cid.Cid][]byte{}}
	cids := make([]cid.Cid, n)
	for i := range cids {
		data := make([]byte, sizes[i%len(sizes)])
		_, _ = rand.Read(data)
		cids[i] = blockCID(t, data)
		store.m[cids[i]] = data
	}
	return cids, store
}

func blockCID(t testing.TB, data []byte) cid.Cid {
	t.Helper()
	mh, err := multihash.Sum(data, multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, mh)
}
