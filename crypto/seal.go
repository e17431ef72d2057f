package crypto

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"filippo.io/age"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Envelope wire format, version 1. This is the plaintext inside the age
// file that [Seal] produces; all integers are big-endian:
//
//	magic      4 bytes  "PNE\x01" (the last byte is the version)
//	signerLen  1 byte   length of signer, 1..64
//	signer     bytes    the signer's peer ID (binary multihash; Ed25519, inline)
//	domainLen  1 byte   1..MaxDomainLen
//	domain     bytes    [A-Za-z0-9._/-]
//	nRcpt      1 byte   1..MaxRecipients
//	rcpt       nRcpt × 32 bytes: SHA-256 of each recipient's String() form
//	payloadLen 4 bytes
//	payload    bytes
//	sig        64 bytes Ed25519 signature
//
// sig is Sign(signer, "envelope", SHA-256(every byte before sig)), i.e. an
// Ed25519 signature over "pacsnet-sig-v1\x00envelope\x00" + SHA-256(magic …
// payload). Signing the digest rather than the body hashes a large payload
// once with SHA-256 instead of twice with SHA-512 (Ed25519's internal
// hash); it halves Seal's cost for a 64 KiB payload. No trailing bytes are
// allowed, so each envelope has exactly one encoding.
//
// The recipient hashes close the surreptitious-forwarding hole that
// sign-then-encrypt otherwise has: without them, a recipient could decrypt
// a manifest and re-encrypt it, still validly signed by the issuer, to a
// third party, who would believe the issuer addressed it to them. [Open]
// refuses an envelope whose signed recipient list does not contain the
// opening identity's recipient.
const (
	envelopeMagic   = "PNE\x01"
	envelopeSigSize = 64
	maxSignerLen    = 64
	// maxEnvelopeOverhead is the largest envelope minus its payload.
	maxEnvelopeOverhead = len(envelopeMagic) + 1 + maxSignerLen + 1 + MaxDomainLen +
		1 + MaxRecipients*sha256.Size + 4 + envelopeSigSize
)

// Seal signs payload with signer for domain, inside, and age-encrypts the
// result to the recipients, outside (age has no sender authentication).
// The format is described at the top of seal.go. Every recipient must
// have a String method returning its age encoding (all native age
// recipients do); hybrid and classic recipients cannot be mixed.
func Seal(signer lcrypto.PrivKey, domain string, payload []byte, r ...age.Recipient) ([]byte, error) {
	if err := checkRecipients(r); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if err := checkDomain(domain); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if uint64(len(payload)) > math.MaxUint32 {
		return nil, errors.New("seal: payload larger than 4 GiB")
	}
	if _, ok := signer.(*lcrypto.Ed25519PrivateKey); !ok {
		return nil, fmt.Errorf("seal: %w", errKeyType)
	}
	id, err := peer.IDFromPrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	hashes := make([][sha256.Size]byte, len(r))
	for i, x := range r {
		s, ok := x.(fmt.Stringer)
		if !ok {
			return nil, fmt.Errorf("seal: recipient %d (%T) has no string form to bind", i, x)
		}
		hashes[i] = sha256.Sum256([]byte(s.String()))
	}
	body := encodeEnvelopeBody(id, domain, hashes, payload)
	digest := sha256.Sum256(body)
	sig, err := sign(signer, envelopeDomain, digest[:])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	env := append(body, sig...)
	out, err := Encrypt(env, r...)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return out, nil
}

func encodeEnvelopeBody(signer peer.ID, domain string, rcpt [][sha256.Size]byte, payload []byte) []byte {
	n := len(envelopeMagic) + 1 + len(signer) + 1 + len(domain) + 1 + len(rcpt)*sha256.Size + 4 + len(payload)
	b := make([]byte, 0, n+envelopeSigSize)
	b = append(b, envelopeMagic...)
	b = append(b, byte(len(signer)))
	b = append(b, signer...)
	b = append(b, byte(len(domain)))
	b = append(b, domain...)
	b = append(b, byte(len(rcpt)))
	for _, h := range rcpt {
		b = append(b, h[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// envelope is a decoded envelope. Slices alias the input.
type envelope struct {
	signer  peer.ID
	domain  string
	rcpt    [][]byte
	payload []byte
	body    []byte // the signed bytes
	sig     []byte
}

// decodeEnvelope parses the format above. It allocates only the small
// recipient index; every length is checked against what remains.
func decodeEnvelope(b []byte) (*envelope, error) {
	var e envelope
	rest := b
	take := func(n int) ([]byte, bool) {
		if n < 0 || n > len(rest) {
			return nil, false
		}
		v := rest[:n:n]
		rest = rest[n:]
		return v, true
	}
	takeByte := func() (int, bool) {
		v, ok := take(1)
		if !ok {
			return 0, false
		}
		return int(v[0]), true
	}
	if m, ok := take(len(envelopeMagic)); !ok || string(m) != envelopeMagic {
		return nil, errors.New("bad magic or version")
	}
	n, ok := takeByte()
	if !ok || n == 0 || n > maxSignerLen {
		return nil, errors.New("bad signer length")
	}
	signer, ok := take(n)
	if !ok {
		return nil, errors.New("truncated signer")
	}
	e.signer = peer.ID(signer)
	if n, ok = takeByte(); !ok {
		return nil, errors.New("truncated domain")
	}
	domain, ok := take(n)
	if !ok {
		return nil, errors.New("truncated domain")
	}
	e.domain = string(domain)
	if err := checkDomain(e.domain); err != nil {
		return nil, fmt.Errorf("bad domain: %w", err)
	}
	if n, ok = takeByte(); !ok || n == 0 || n > MaxRecipients {
		return nil, errors.New("bad recipient count")
	}
	e.rcpt = make([][]byte, n)
	for i := range e.rcpt {
		if e.rcpt[i], ok = take(sha256.Size); !ok {
			return nil, errors.New("truncated recipients")
		}
	}
	l, ok := take(4)
	if !ok {
		return nil, errors.New("truncated payload length")
	}
	plen := binary.BigEndian.Uint32(l)
	if uint64(plen) > uint64(len(rest)) {
		return nil, errors.New("truncated payload")
	}
	e.payload, _ = take(int(plen))
	e.body = b[: len(b)-len(rest) : len(b)-len(rest)]
	if e.sig, ok = take(envelopeSigSize); !ok {
		return nil, errors.New("truncated signature")
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing bytes")
	}
	return &e, nil
}

// Open decrypts sealed with id, checks that the envelope was sealed for
// domain, addressed to id, and signed by the peer it names, and returns
// the payload and that peer's ID.
//
// maxSize caps the payload; the decrypted envelope may exceed it only by
// the fixed envelope overhead (< 2.3 KiB), and a larger one is refused
// with [ErrMalformed] before it is allocated. Errors: [ErrNotForUs] (no
// matching identity, or not addressed to id), [ErrMalformed],
// [ErrWrongDomain], [ErrBadSignature].
//
// id must be an *age.HybridIdentity or *age.X25519Identity (possibly the
// Box of an [Identity]): Open needs its recipient to check the binding.
func Open(sealed []byte, id age.Identity, domain string, maxSize int64) (payload []byte, signer peer.ID, err error) {
	if maxSize < 0 {
		return nil, "", errors.New("open envelope: negative maxSize")
	}
	if err := checkDomain(domain); err != nil {
		return nil, "", fmt.Errorf("open envelope: %w", err)
	}
	self, err := recipientHash(id)
	if err != nil {
		return nil, "", fmt.Errorf("open envelope: %w", err)
	}
	limit := maxSize + int64(maxEnvelopeOverhead)
	if limit < maxSize { // overflow
		limit = math.MaxInt64
	}
	plain, err := decrypt(sealed, limit, id)
	if err != nil {
		return nil, "", fmt.Errorf("open envelope: %w", err)
	}
	e, err := decodeEnvelope(plain)
	if err != nil {
		return nil, "", fmt.Errorf("open envelope: %w: %w", ErrMalformed, err)
	}
	if int64(len(e.payload)) > maxSize {
		return nil, "", fmt.Errorf("open envelope: payload of %d bytes exceeds limit %d: %w", len(e.payload), maxSize, ErrMalformed)
	}
	digest := sha256.Sum256(e.body)
	if err := VerifyPeer(e.signer, envelopeDomain, digest[:], e.sig); err != nil {
		return nil, "", fmt.Errorf("open envelope: %w", err)
	}
	// Checked after the signature so a forged envelope always reports
	// ErrBadSignature, whatever domain or recipients the forger chose.
	if e.domain != domain {
		return nil, "", fmt.Errorf("open envelope: sealed for %q, want %q: %w", e.domain, domain, ErrWrongDomain)
	}
	if !slices.ContainsFunc(e.rcpt, func(h []byte) bool { return string(h) == string(self[:]) }) {
		return nil, "", fmt.Errorf("open envelope: signer did not address it to us (forwarded?): %w", ErrNotForUs)
	}
	return e.payload, e.signer, nil
}

func recipientHash(id age.Identity) ([sha256.Size]byte, error) {
	var s string
	switch k := id.(type) {
	case *age.HybridIdentity:
		if k == nil {
			return [sha256.Size]byte{}, errors.New("nil identity")
		}
		s = k.Recipient().String()
	case *age.X25519Identity:
		if k == nil {
			return [sha256.Size]byte{}, errors.New("nil identity")
		}
		s = k.Recipient().String()
	default:
		return [sha256.Size]byte{}, fmt.Errorf("identity type %T cannot be bound to a recipient", id)
	}
	return sha256.Sum256([]byte(s)), nil
}
