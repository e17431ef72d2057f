package crypto

import (
	"errors"
	"testing"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestSignVerify(t *testing.T) {
	a := mustIdentity(t)
	b := mustIdentity(t)
	msg := []byte("grant 1234")
	sig, err := Sign(a.Sign, "grant", msg)
	if err != nil {
		t.Fatal(err)
	}
	// "grant" + "\x00" + "x\x00y" and "grant\x00x" + "\x00" + "y" must not
	// collide: domains cannot contain NUL, so the second is refused.
	if _, err := Sign(a.Sign, "grant\x00x", []byte("y")); err == nil {
		t.Error("domain with NUL accepted")
	}

	rsaPeer := func() peer.ID {
		_, pub, err := lcrypto.GenerateECDSAKeyPair(nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := peer.IDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}()

	tests := []struct {
		name   string
		peer   peer.ID
		domain string
		msg    []byte
		sig    []byte
		ok     bool
	}{
		{"valid", a.PeerID(), "grant", msg, sig, true},
		{"wrong domain", a.PeerID(), "revocation", msg, sig, false},
		{"domain prefix", a.PeerID(), "gran", msg, sig, false},
		{"wrong message", a.PeerID(), "grant", []byte("grant 1235"), sig, false},
		{"wrong signer", b.PeerID(), "grant", msg, sig, false},
		{"truncated signature", a.PeerID(), "grant", msg, sig[:63], false},
		{"empty signature", a.PeerID(), "grant", msg, nil, false},
		{"flipped bit", a.PeerID(), "grant", msg, flip(sig, 10), false},
		{"empty domain", a.PeerID(), "", msg, sig, false},
		{"non-Ed25519 peer", rsaPeer, "grant", msg, sig, false},
		{"empty peer", "", "grant", msg, sig, false},
		{"garbage peer", peer.ID("\x00\x01garbage"), "grant", msg, sig, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyPeer(tt.peer, tt.domain, tt.msg, tt.sig)
			if tt.ok {
				if err != nil {
					t.Fatalf("VerifyPeer: %v", err)
				}
			} else if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
			if pk, perr := PublicKey(tt.peer); perr == nil {
				if err2 := Verify(pk, tt.domain, tt.msg, tt.sig); (err2 == nil) != (err == nil) {
					t.Fatalf("Verify and VerifyPeer disagree: %v vs %v", err2, err)
				}
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	a := mustIdentity(t)
	ecdsa, _, err := lcrypto.GenerateECDSAKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		key    lcrypto.PrivKey
		domain string
	}{
		{"reserved envelope domain", a.Sign, "envelope"},
		{"empty domain", a.Sign, ""},
		{"space in domain", a.Sign, "a b"},
		{"long domain", a.Sign, string(make([]byte, MaxDomainLen+1))},
		{"non-Ed25519 key", ecdsa, "grant"},
		{"nil key", nil, "grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Sign(tt.key, tt.domain, []byte("m")); err == nil {
				t.Fatal("Sign succeeded")
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

// TestDomains pins the signature domains: they are inside signed data that
// is already deployed, so a changed value would make every existing
// invite, manifest, grant or revocation fail to verify.
func TestDomains(t *testing.T) {
	id := mustIdentity(t)
	seen := map[string]bool{}
	for _, tt := range []struct{ got, want string }{
		{DomainInvite, "invite"},
		{DomainManifest, "manifest"},
		{DomainGrant, "grant"},
		{DomainRevocation, "revocation"},
		{envelopeDomain, "envelope"},
	} {
		if tt.got != tt.want {
			t.Errorf("domain %q, want %q", tt.got, tt.want)
		}
		if seen[tt.got] {
			t.Errorf("domain %q listed twice", tt.got)
		}
		seen[tt.got] = true
		if err := checkDomain(tt.got); err != nil {
			t.Errorf("domain %q: %v", tt.got, err)
		}
		_, err := Sign(id.Sign, tt.got, []byte("x"))
		if reserved := tt.got == envelopeDomain; (err != nil) != reserved {
			t.Errorf("Sign under %q: err = %v, reserved = %v", tt.got, err, reserved)
		}
	}
}
