package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/crypto"
)

// InvitePrefix starts every invite string; the number is the invite
// format.
const InvitePrefix = "pacsnet-invite-1:"

// MaxInviteLen is the longest invite string [ParseInvite] reads (after
// trimming surrounding space).
const MaxInviteLen = 16 << 10

// inviteFormat is the Format of the signed body; it matches the number in
// InvitePrefix.
const inviteFormat = 1

// Invite is what a facility tells a prospective partner about itself. It
// holds no secret; its signature proves it was made by the key of PeerID.
type Invite struct {
	Name      string    // facility display name, 1-64 bytes
	PeerID    peer.ID   // the facility's libp2p identity (Ed25519)
	Recipient string    // its age1pq… hybrid recipient, which manifests are sealed to
	Addrs     []string  // its listen multiaddrs, 1-32
	Created   time.Time // when the invite was made
}

// inviteBody is the signed body of an invite string. Its fields and tags
// are the deployed format.
type inviteBody struct {
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

// EncodeInvite signs inv with key (the private key of inv.PeerID, under
// [crypto.DomainInvite]) and returns the invite string: [InvitePrefix]
// followed by the unpadded base64url encoding of the JSON
// {"invite": body, "sig": signature}. It does not check inv; the caller
// writes its own invite, and [ParseInvite] is what distrusts it.
func EncodeInvite(key lcrypto.PrivKey, inv Invite) (string, error) {
	body, err := json.Marshal(inviteBody{
		Format:    inviteFormat,
		Name:      inv.Name,
		PeerID:    inv.PeerID,
		Recipient: inv.Recipient,
		Addrs:     inv.Addrs,
		Created:   inv.Created,
	})
	if err != nil {
		return "", fmt.Errorf("encode invite: %w", err)
	}
	sig, err := crypto.Sign(key, crypto.DomainInvite, body)
	if err != nil {
		return "", fmt.Errorf("sign invite: %w", err)
	}
	b, err := json.Marshal(signedInvite{Invite: body, Sig: sig})
	if err != nil {
		return "", fmt.Errorf("encode invite: %w", err)
	}
	return InvitePrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// ErrBadInvite is returned for an invite that does not parse or verify.
var ErrBadInvite = errors.New("invalid invite")

// ParseInvite decodes and verifies an invite string. Surrounding space is
// ignored. An invite it returns is signed by the key of its PeerID (an
// Ed25519 ID), has an age hybrid recipient, a name of 1-64 bytes that is
// not all space, and 1-32 addresses that parse as multiaddrs. Every error
// wraps [ErrBadInvite].
func ParseInvite(s string) (Invite, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxInviteLen {
		return Invite{}, fmt.Errorf("%w: longer than %d bytes", ErrBadInvite, MaxInviteLen)
	}
	rest, ok := strings.CutPrefix(s, InvitePrefix)
	if !ok {
		return Invite{}, fmt.Errorf("%w: does not start with %q", ErrBadInvite, InvitePrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return Invite{}, fmt.Errorf("%w: not base64url", ErrBadInvite)
	}
	var si signedInvite
	if err := json.Unmarshal(raw, &si); err != nil {
		return Invite{}, fmt.Errorf("%w: malformed", ErrBadInvite)
	}
	var inv inviteBody
	if err := json.Unmarshal(si.Invite, &inv); err != nil {
		return Invite{}, fmt.Errorf("%w: malformed body", ErrBadInvite)
	}
	if inv.Format != inviteFormat {
		return Invite{}, fmt.Errorf("%w: format %d is not supported", ErrBadInvite, inv.Format)
	}
	if err := inv.PeerID.Validate(); err != nil {
		return Invite{}, fmt.Errorf("%w: bad peer ID", ErrBadInvite)
	}
	if err := crypto.VerifyPeer(inv.PeerID, crypto.DomainInvite, si.Invite, si.Sig); err != nil {
		return Invite{}, fmt.Errorf("%w: signature does not verify", ErrBadInvite)
	}
	if _, err := age.ParseHybridRecipient(inv.Recipient); err != nil {
		return Invite{}, fmt.Errorf("%w: recipient is not an age1pq hybrid recipient", ErrBadInvite)
	}
	if strings.TrimSpace(inv.Name) == "" || len(inv.Name) > 64 {
		return Invite{}, fmt.Errorf("%w: name must be 1-64 characters", ErrBadInvite)
	}
	if !PrintableName(inv.Name) {
		return Invite{}, fmt.Errorf("%w: name holds control characters or invalid UTF-8", ErrBadInvite)
	}
	if len(inv.Addrs) == 0 || len(inv.Addrs) > 32 {
		return Invite{}, fmt.Errorf("%w: needs 1-32 addresses", ErrBadInvite)
	}
	for _, a := range inv.Addrs {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			return Invite{}, fmt.Errorf("%w: bad address %q", ErrBadInvite, a)
		}
	}
	return Invite{Name: inv.Name, PeerID: inv.PeerID, Recipient: inv.Recipient, Addrs: inv.Addrs, Created: inv.Created}, nil
}

// PrintableName reports whether a facility name is valid UTF-8 without
// control characters (C0, DEL, C1): names are shown on admins' terminals
// and in other facilities' listings.
func PrintableName(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
