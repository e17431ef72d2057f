package node

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// Peer is a partner facility this node admits.
type Peer = store.Peer

// ErrBadInvite is returned for an invite that does not parse or verify.
var ErrBadInvite = wire.ErrBadInvite

// partners is the registry of partner facilities: stored in the archive,
// held in memory for the connection gater (asked on every connection), and
// their addresses given to the libp2p peerstore.
type partners struct {
	store     *store.Store
	host      host.Host
	id        *crypto.Identity
	name      string
	audit     *auditor
	clock     clock.Clock
	added     func()        // called after a partner is added (the outbox retries at once)
	connected func(peer.ID) // under seenMu: called when a connection to a partner opens (the outbox delivers to it at once); set by onConnect

	mu sync.RWMutex
	m  map[peer.ID]Peer

	// seen is when each peer's last connection closed, kept in memory
	// only: reachability is what this node saw since it started.
	seenMu sync.Mutex
	seen   map[peer.ID]time.Time
	notify network.Notifiee
}

func newPartners(s *store.Store, id *crypto.Identity, name string, a *auditor, c clock.Clock) (*partners, error) {
	ps := &partners{store: s, id: id, name: name, audit: a, clock: c, m: map[peer.ID]Peer{}, seen: map[peer.ID]time.Time{}}
	list, err := s.Peers()
	if err != nil {
		return nil, fmt.Errorf("load peers: %w", err)
	}
	for _, p := range list {
		ps.m[p.ID] = p
	}
	return ps, nil
}

// attach gives the registry its libp2p host, once the host exists (the
// host's gater asks the registry, so the registry comes first).
func (ps *partners) attach(h host.Host) {
	ps.host = h
	for _, p := range ps.List() {
		ps.addAddrs(p)
	}
	// The gater admits partners only, so a connection is a partner seen.
	// A connection that closes marks when it was last seen.
	ps.notify = &network.NotifyBundle{
		DisconnectedF: func(_ network.Network, c network.Conn) {
			ps.seenMu.Lock()
			ps.seen[c.RemotePeer()] = ps.clock.Now().UTC()
			ps.seenMu.Unlock()
		},
		ConnectedF: func(_ network.Network, c network.Conn) {
			ps.seenMu.Lock()
			f := ps.connected
			ps.seenMu.Unlock()
			if f != nil {
				f(c.RemotePeer())
			}
		},
	}
	h.Network().Notify(ps.notify)
}

// onConnect sets what is called when a connection to a partner opens
// (the host may already be accepting connections).
func (ps *partners) onConnect(f func(peer.ID)) {
	ps.seenMu.Lock()
	ps.connected = f
	ps.seenMu.Unlock()
}

// detach stops following the host's connections (a host given in
// Options outlives the node).
func (ps *partners) detach() {
	if ps.host != nil && ps.notify != nil {
		ps.host.Network().StopNotify(ps.notify)
	}
}

// Seen reports whether a partner is connected now and when it was last
// seen: now when it is, else when its last connection closed (zero: not
// since this node started).
func (ps *partners) Seen(p peer.ID) (online bool, last time.Time) {
	if ps.host != nil && ps.host.Network().Connectedness(p) == network.Connected {
		return true, ps.clock.Now().UTC()
	}
	ps.seenMu.Lock()
	defer ps.seenMu.Unlock()
	return false, ps.seen[p]
}

// IsPartner implements exchange.Partners.
func (ps *partners) IsPartner(p peer.ID) bool {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	_, ok := ps.m[p]
	return ok
}

// Get returns a partner.
func (ps *partners) Get(p peer.ID) (Peer, bool) {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	v, ok := ps.m[p]
	return v, ok
}

// List returns the partners by name.
func (ps *partners) List() []Peer {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	out := make([]Peer, 0, len(ps.m))
	for _, p := range ps.m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Invite returns this facility's signed invite: its name, peer ID, age
// recipient and listen addresses. Anyone may read an invite; it holds no
// secret, and its signature proves it was made by the key of the peer ID.
func (ps *partners) Invite() (string, error) {
	var addrs []string
	for _, a := range ps.host.Addrs() {
		addrs = append(addrs, a.String())
	}
	return wire.EncodeInvite(ps.id.Sign, wire.Invite{
		Name:      ps.name,
		PeerID:    ps.host.ID(),
		Recipient: ps.id.Recipient().String(),
		Addrs:     addrs,
		Created:   ps.clock.Now().UTC(),
	})
}

// Add admits the facility an invite describes as a partner. Adding a peer
// again updates its name and addresses.
func (ps *partners) Add(invite, actor string) (Peer, error) {
	inv, err := wire.ParseInvite(invite)
	if err != nil {
		return Peer{}, err
	}
	p := Peer{ID: inv.PeerID, Name: inv.Name, Recipient: inv.Recipient, Addrs: inv.Addrs}
	if p.ID == ps.host.ID() {
		return Peer{}, fmt.Errorf("%w: that is this node's own invite", ErrBadInvite)
	}
	for _, q := range ps.List() {
		if q.ID != p.ID && strings.EqualFold(q.Name, p.Name) {
			return Peer{}, fmt.Errorf("%w: a partner called %q already exists with another peer ID (%s); remove it first if this facility replaced its keys", ErrBadInvite, q.Name, q.ID)
		}
	}
	if q, ok := ps.Get(p.ID); ok && q.Name == p.Name && q.Recipient == p.Recipient && slices.Equal(q.Addrs, p.Addrs) {
		return q, nil // the same invite again: nothing changes, nothing to audit
	}
	p.Added = ps.clock.Now().UTC()
	if err := ps.store.PutPeer(p); err != nil {
		return Peer{}, fmt.Errorf("store peer: %w", err)
	}
	ps.mu.Lock()
	ps.m[p.ID] = p
	ps.mu.Unlock()
	ps.addAddrs(p)
	if _, err := ps.audit.ledger.Record(consent.Entry{Actor: actor, Peer: p.ID, Action: consent.ActPeerAdded}); err != nil {
		return p, fmt.Errorf("audit: %w", err)
	}
	if ps.added != nil {
		ps.added()
	}
	return p, nil
}

// forget removes a partner from the archive (with the manifests still
// queued for it) and from the gater's set, and closes its connections.
func (ps *partners) forget(p Peer) error {
	if err := ps.store.RemovePeer(p.ID); err != nil {
		return fmt.Errorf("remove peer: %w", err)
	}
	ps.mu.Lock()
	delete(ps.m, p.ID)
	ps.mu.Unlock()
	ps.host.Network().ClosePeer(p.ID)
	return nil
}

func (ps *partners) addAddrs(p Peer) {
	for _, s := range p.Addrs {
		if a, err := multiaddr.NewMultiaddr(s); err == nil {
			ps.host.Peerstore().AddAddr(p.ID, a, peerstore.PermanentAddrTTL)
		}
	}
}

// Resolve finds a partner by peer ID or by (case-insensitive) name.
func (ps *partners) Resolve(s string) (Peer, error) {
	if id, err := peer.Decode(s); err == nil {
		if p, ok := ps.Get(id); ok {
			return p, nil
		}
		return Peer{}, fmt.Errorf("%s is not a partner facility", id)
	}
	var found []Peer
	for _, p := range ps.List() {
		if strings.EqualFold(p.Name, s) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return Peer{}, fmt.Errorf("no partner facility is called %q", s)
	default:
		return Peer{}, fmt.Errorf("several partner facilities are called %q: use the peer ID", s)
	}
}
