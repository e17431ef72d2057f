package crypto

import (
	"errors"
	"fmt"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sigPrefix starts every signed message. With the NUL after the domain it
// makes the signed bytes an unambiguous function of (domain, msg): domains
// cannot contain NUL, so no (domain, msg) pair can be re-read as another.
const sigPrefix = "pacsnet-sig-v1\x00"

// Signature domains: the list of every domain pacsnet signs under. A
// signature made for one never verifies for another, so one kind of
// signed object can never be passed off as another. The values are part
// of signed data already deployed: never change one, add a new domain
// instead (and add it here, so this list stays complete).
const (
	DomainInvite     = "invite"     // a facility's invite (internal/wire)
	DomainManifest   = "manifest"   // a sealed study or revocation manifest ([Seal])
	DomainGrant      = "grant"      // a consent grant
	DomainRevocation = "revocation" // a consent revocation

	DomainAuditCheckpoint = "audit-checkpoint" // a signed head of a node's audit log (consent)
	DomainAsk             = "ask"              // a signed message between facilities: access requests, their answers (internal/wire)

	// envelopeDomain is the domain under which [Seal] signs envelopes.
	// [Sign] refuses it so no ordinary signature can ever be passed off as
	// an envelope signature; it is unexported because only this package
	// signs under it.
	envelopeDomain = "envelope"
)

// MaxDomainLen is the longest accepted signature domain.
const MaxDomainLen = 64

var errKeyType = errors.New("not an Ed25519 key")

// checkDomain accepts 1..MaxDomainLen bytes of [A-Za-z0-9._/-]. The small
// alphabet keeps domains readable in logs and excludes NUL, which the
// message framing relies on.
func checkDomain(domain string) error {
	if len(domain) == 0 || len(domain) > MaxDomainLen {
		return fmt.Errorf("domain must be 1..%d bytes", MaxDomainLen)
	}
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '/', c == '-':
		default:
			return fmt.Errorf("domain contains byte %#x outside [A-Za-z0-9._/-]", c)
		}
	}
	return nil
}

func signedMessage(domain string, msg []byte) []byte {
	b := make([]byte, 0, len(sigPrefix)+len(domain)+1+len(msg))
	b = append(b, sigPrefix...)
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}

// Sign signs msg with the Ed25519 key k for one purpose, domain. The
// signed bytes are "pacsnet-sig-v1\x00" + domain + "\x00" + msg, so a
// signature made for one domain never verifies for another. Domains are
// 1..[MaxDomainLen] bytes of [A-Za-z0-9._/-]; "envelope" is reserved for
// [Seal].
func Sign(k lcrypto.PrivKey, domain string, msg []byte) ([]byte, error) {
	if domain == envelopeDomain {
		return nil, fmt.Errorf("sign: domain %q is reserved", domain)
	}
	return sign(k, domain, msg)
}

func sign(k lcrypto.PrivKey, domain string, msg []byte) ([]byte, error) {
	if _, ok := k.(*lcrypto.Ed25519PrivateKey); !ok {
		return nil, fmt.Errorf("sign: %w", errKeyType)
	}
	if err := checkDomain(domain); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sig, err := k.Sign(signedMessage(domain, msg))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

// Verify checks a signature made by [Sign]. Every failure, including a
// non-Ed25519 key or an invalid domain, wraps [ErrBadSignature].
func Verify(k lcrypto.PubKey, domain string, msg, sig []byte) error {
	if _, ok := k.(*lcrypto.Ed25519PublicKey); !ok {
		return fmt.Errorf("verify: %w: %w", errKeyType, ErrBadSignature)
	}
	if err := checkDomain(domain); err != nil {
		return fmt.Errorf("verify: %w: %w", err, ErrBadSignature)
	}
	if len(sig) != 64 {
		return fmt.Errorf("verify: signature length %d: %w", len(sig), ErrBadSignature)
	}
	ok, err := k.Verify(signedMessage(domain, msg), sig)
	if err != nil || !ok {
		return fmt.Errorf("verify: %w", ErrBadSignature)
	}
	return nil
}

// VerifyPeer is [Verify] with the public key taken from the peer ID.
// Only Ed25519 peer IDs (which inline the key) are accepted: pacsnet
// nodes never use other key types, and refusing them keeps hostile IDs
// away from less-travelled parsers. Failures wrap [ErrBadSignature].
func VerifyPeer(p peer.ID, domain string, msg, sig []byte) error {
	pk, err := PublicKey(p)
	if err != nil {
		return fmt.Errorf("verify: %w: %w", err, ErrBadSignature)
	}
	return Verify(pk, domain, msg, sig)
}

// PublicKey extracts the Ed25519 public key inlined in a peer ID.
func PublicKey(p peer.ID) (lcrypto.PubKey, error) {
	// An inline Ed25519 ID is 38 bytes; anything much longer is not one and
	// is not worth decoding.
	if len(p) == 0 || len(p) > 64 {
		return nil, fmt.Errorf("extract public key: peer ID of %d bytes is not an Ed25519 ID", len(p))
	}
	pk, err := p.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("extract public key: %w", err)
	}
	if _, ok := pk.(*lcrypto.Ed25519PublicKey); !ok {
		return nil, fmt.Errorf("extract public key: %w", errKeyType)
	}
	return pk, nil
}
