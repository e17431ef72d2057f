package node

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
)

// invitePrefix starts every invite string; the number is the invite format.
const invitePrefix = "pacsnet-invite-1:"

const (
	sigDomainInvite   = "invite"
	sigDomainManifest = "manifest"
	maxInviteLen      = 16 << 10
)

// Peer is a partner facility this node admits.
type Peer struct {
	ID        peer.ID   `json:"id"`
	Name      string    `json:"name"`
	Recipient string    `json:"recipient"` // age1pq… hybrid recipient manifests are encrypted to
	Addrs     []string  `json:"addrs"`
	Added     time.Time `json:"added"`
}

// invite is the signed body of an invite string.
type invite struct {
	Format    int       `json:"format"`
	Name      string    `json:"name"`
	PeerID    peer.ID   `json:"peer_id"`
	Recipient string    `json:"recipient"`
	Addrs     []string  `json:"addrs"`
	Created   time.Time `json:"created"`
}

type signedInvite struct {
	Invite json.RawMessage `json:"invite"`
	Sig    []byte          `json:"sig"`
}

// Invite returns this facility's signed invite: its name, peer ID, age
// recipient and listen addresses. Anyone may read an invite; it holds no
// secret, and its signature proves it was made by the key of the peer ID.
func (n *Node) Invite() (string, error) {
	var addrs []string
	for _, a := range n.host.Addrs() {
		addrs = append(addrs, a.String())
	}
	body, err := json.Marshal(invite{
		Format:    1,
		Name:      n.cfg.Name,
		PeerID:    n.host.ID(),
		Recipient: n.keys.id.Recipient().String(),
		Addrs:     addrs,
		Created:   n.now().UTC(),
	})
	if err != nil {
		return "", err
	}
	sig, err := crypto.Sign(n.keys.id.Sign, sigDomainInvite, body)
	if err != nil {
		return "", fmt.Errorf("sign invite: %w", err)
	}
	b, err := json.Marshal(signedInvite{Invite: body, Sig: sig})
	if err != nil {
		return "", err
	}
	return invitePrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// ErrBadInvite is returned for an invite that does not parse or verify.
var ErrBadInvite = errors.New("invalid invite")

// parseInvite decodes and verifies an invite string.
func parseInvite(s string) (Peer, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxInviteLen {
		return Peer{}, fmt.Errorf("%w: longer than %d bytes", ErrBadInvite, maxInviteLen)
	}
	rest, ok := strings.CutPrefix(s, invitePrefix)
	if !ok {
		return Peer{}, fmt.Errorf("%w: does not start with %q", ErrBadInvite, invitePrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return Peer{}, fmt.Errorf("%w: not base64url", ErrBadInvite)
	}
	var si signedInvite
	if err := json.Unmarshal(raw, &si); err != nil {
		return Peer{}, fmt.Errorf("%w: malformed", ErrBadInvite)
	}
	var inv invite
	if err := json.Unmarshal(si.Invite, &inv); err != nil {
		return Peer{}, fmt.Errorf("%w: malformed body", ErrBadInvite)
	}
	if inv.Format != 1 {
		return Peer{}, fmt.Errorf("%w: format %d is not supported", ErrBadInvite, inv.Format)
	}
	if err := inv.PeerID.Validate(); err != nil {
		return Peer{}, fmt.Errorf("%w: bad peer ID", ErrBadInvite)
	}
	if err := crypto.VerifyPeer(inv.PeerID, sigDomainInvite, si.Invite, si.Sig); err != nil {
		return Peer{}, fmt.Errorf("%w: signature does not verify", ErrBadInvite)
	}
	if _, err := age.ParseHybridRecipient(inv.Recipient); err != nil {
		return Peer{}, fmt.Errorf("%w: recipient is not an age1pq hybrid recipient", ErrBadInvite)
	}
	if strings.TrimSpace(inv.Name) == "" || len(inv.Name) > 64 {
		return Peer{}, fmt.Errorf("%w: name must be 1-64 characters", ErrBadInvite)
	}
	if len(inv.Addrs) == 0 || len(inv.Addrs) > 32 {
		return Peer{}, fmt.Errorf("%w: needs 1-32 addresses", ErrBadInvite)
	}
	for _, a := range inv.Addrs {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return Peer{}, fmt.Errorf("%w: bad address %q", ErrBadInvite, a)
		}
	}
	return Peer{ID: inv.PeerID, Name: inv.Name, Recipient: inv.Recipient, Addrs: inv.Addrs}, nil
}

// AddPeer admits the facility an invite describes as a partner. Adding a
// peer again updates its name and addresses.
func (n *Node) AddPeer(inviteStr, actor string) (Peer, error) {
	p, err := parseInvite(inviteStr)
	if err != nil {
		return Peer{}, err
	}
	if p.ID == n.host.ID() {
		return Peer{}, fmt.Errorf("%w: that is this node's own invite", ErrBadInvite)
	}
	for _, q := range n.partners.list() {
		if q.ID != p.ID && strings.EqualFold(q.Name, p.Name) {
			return Peer{}, fmt.Errorf("%w: a partner called %q already exists with another peer ID (%s); remove it first if this facility replaced its keys", ErrBadInvite, q.Name, q.ID)
		}
	}
	p.Added = n.now().UTC()
	if err := n.arch.update(func(txn *badger.Txn) error { return setJSON(txn, pfxPeer+p.ID.String(), p) }); err != nil {
		return Peer{}, fmt.Errorf("store peer: %w", err)
	}
	n.partners.add(p)
	n.addPeerAddrs(p)
	if _, err := n.ledger.Record(consent.Entry{Actor: actor, Peer: p.ID, Action: consent.ActPeerAdded}); err != nil {
		return p, fmt.Errorf("audit: %w", err)
	}
	n.outbox.kick()
	return p, nil
}

// RemovePeer ends a partnership: the partner's live grants are revoked,
// manifests still queued for it are dropped, its connections are closed
// and the gater refuses it from now on. Audited.
func (n *Node) RemovePeer(idOrName, actor string) (Peer, error) {
	p, err := n.resolvePeer(idOrName)
	if err != nil {
		return Peer{}, fmt.Errorf("%w: %v", consent.ErrInvalidRequest, err)
	}
	for _, st := range n.ledger.GrantsFor(p.ID) {
		if st.State == consent.StateActive || st.State == consent.StatePending {
			if _, err := n.ledger.Revoke(st.Grant.ID, "partner removed", actor); err != nil {
				return p, fmt.Errorf("revoke grant %s: %w", st.Grant.ID, err)
			}
		}
	}
	items, err := n.outbox.pending()
	if err != nil {
		return p, err
	}
	err = n.arch.update(func(txn *badger.Txn) error {
		for _, it := range items {
			if it.Peer == p.ID {
				if err := txn.Delete([]byte(outboxKey(it.Seq))); err != nil {
					return err
				}
			}
		}
		return txn.Delete([]byte(pfxPeer + p.ID.String()))
	})
	if err != nil {
		return p, fmt.Errorf("remove peer: %w", err)
	}
	n.partners.remove(p.ID)
	n.host.Network().ClosePeer(p.ID)
	n.audit(consent.Entry{Actor: actor, Peer: p.ID, Action: consent.ActPeerRemoved})
	return p, nil
}

func (n *Node) addPeerAddrs(p Peer) {
	for _, s := range p.Addrs {
		if a, err := multiaddr.NewMultiaddr(s); err == nil {
			n.host.Peerstore().AddAddr(p.ID, a, peerstore.PermanentAddrTTL)
		}
	}
}

// Peers lists the partner facilities, by name.
func (n *Node) Peers() []Peer { return n.partners.list() }

// partnerSet is the live set of admitted partners; the connection gater
// asks it on every connection.
type partnerSet struct {
	mu sync.RWMutex
	m  map[peer.ID]Peer
}

func newPartnerSet() *partnerSet { return &partnerSet{m: map[peer.ID]Peer{}} }

func (s *partnerSet) IsPartner(p peer.ID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.m[p]
	return ok
}

func (s *partnerSet) get(p peer.ID) (Peer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[p]
	return v, ok
}

func (s *partnerSet) add(p Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[p.ID] = p
}

func (s *partnerSet) remove(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, p)
}

func (s *partnerSet) list() []Peer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Peer, 0, len(s.m))
	for _, p := range s.m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// resolvePeer finds a partner by peer ID or by (case-insensitive) name.
func (n *Node) resolvePeer(s string) (Peer, error) {
	if id, err := peer.Decode(s); err == nil {
		if p, ok := n.partners.get(id); ok {
			return p, nil
		}
		return Peer{}, fmt.Errorf("%s is not a partner facility", id)
	}
	var found []Peer
	for _, p := range n.partners.list() {
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
