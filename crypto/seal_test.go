package crypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"

	"filippo.io/age"
)

func mustIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustX25519(t testing.TB) *age.X25519Identity {
	t.Helper()
	k, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	alice, bob, carol := mustIdentity(t), mustIdentity(t), mustIdentity(t)
	for _, size := range []int{0, 1, 64 << 10, 64<<10 + 1, 300 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			payload := bytes.Repeat([]byte{0xa5}, size)
			sealed, err := Seal(alice.Sign, "manifest", payload, bob.Recipient(), carol.Recipient())
			if err != nil {
				t.Fatal(err)
			}
			for _, who := range []*Identity{bob, carol} {
				got, signer, err := Open(sealed, who.Box, "manifest", int64(size))
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if signer != alice.PeerID() {
					t.Errorf("signer = %s, want %s", signer, alice.PeerID())
				}
				if !bytes.Equal(got, payload) {
					t.Error("payload changed")
				}
			}
		})
	}
	t.Run("classic X25519 recipient", func(t *testing.T) {
		k := mustX25519(t)
		sealed, err := Seal(alice.Sign, "manifest", []byte("x"), k.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		if got, _, err := Open(sealed, k, "manifest", 1); err != nil || string(got) != "x" {
			t.Fatalf("Open: %q %v", got, err)
		}
	})
}

func TestOpenRejects(t *testing.T) {
	alice, bob, mallory := mustIdentity(t), mustIdentity(t), mustIdentity(t)
	payload := []byte("study manifest")
	good, err := Seal(alice.Sign, "manifest", payload, bob.Recipient())
	if err != nil {
		t.Fatal(err)
	}

	// Signed by mallory but claiming to come from alice.
	forged := func() []byte {
		body := encodeEnvelopeBody(alice.PeerID(), "manifest", rcptHashes(bob), payload)
		digest := sha256.Sum256(body)
		sig, err := sign(mallory.Sign, envelopeDomain, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		out, err := Encrypt(append(body, sig...), bob.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}()
	// Bob decrypts alice's envelope and re-encrypts it, still validly
	// signed by alice, to mallory.
	forwarded := func() []byte {
		plain, err := Decrypt(good, bob.Box)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Encrypt(plain, mallory.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}()
	// A well-signed envelope with trailing junk after the signature.
	trailing := func() []byte {
		plain, err := Decrypt(good, bob.Box)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Encrypt(append(plain, 0), bob.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}()
	// A plain Sign signature for another domain cannot become an envelope.
	crossDomain := func() []byte {
		body := encodeEnvelopeBody(alice.PeerID(), "manifest", rcptHashes(bob), payload)
		digest := sha256.Sum256(body)
		sig, err := Sign(alice.Sign, "manifest", digest[:])
		if err != nil {
			t.Fatal(err)
		}
		out, err := Encrypt(append(body, sig...), bob.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		return out
	}()
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-20] ^= 1

	tests := []struct {
		name    string
		sealed  []byte
		id      age.Identity
		domain  string
		max     int64
		wantErr error
	}{
		{"valid", good, bob.Box, "manifest", int64(len(payload)), nil},
		{"wrong recipient", good, mallory.Box, "manifest", 1 << 20, ErrNotForUs},
		{"forged signer", forged, bob.Box, "manifest", 1 << 20, ErrBadSignature},
		{"cross-domain signature", crossDomain, bob.Box, "manifest", 1 << 20, ErrBadSignature},
		{"forwarded", forwarded, mallory.Box, "manifest", 1 << 20, ErrNotForUs},
		{"wrong domain", good, bob.Box, "grant", 1 << 20, ErrWrongDomain},
		{"oversize", good, bob.Box, "manifest", int64(len(payload)) - 1, ErrMalformed},
		{"oversize zero limit", good, bob.Box, "manifest", 0, ErrMalformed},
		{"trailing bytes", trailing, bob.Box, "manifest", 1 << 20, ErrMalformed},
		{"ciphertext bit flip", flipped, bob.Box, "manifest", 1 << 20, ErrMalformed},
		{"truncated", good[:len(good)-1], bob.Box, "manifest", 1 << 20, ErrMalformed},
		{"header only", good[:1700], bob.Box, "manifest", 1 << 20, ErrMalformed},
		{"empty", nil, bob.Box, "manifest", 1 << 20, ErrMalformed},
		{"not age", []byte("hello world\n"), bob.Box, "manifest", 1 << 20, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, signer, err := Open(tt.sealed, tt.id, tt.domain, tt.max)
			if tt.wantErr == nil {
				if err != nil || !bytes.Equal(got, payload) || signer != alice.PeerID() {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != nil || signer != "" {
				t.Error("payload or signer returned with an error")
			}
			if strings.Contains(err.Error(), string(payload)) {
				t.Error("error leaks the payload")
			}
		})
	}
}

func rcptHashes(ids ...*Identity) [][sha256.Size]byte {
	var out [][sha256.Size]byte
	for _, id := range ids {
		out = append(out, sha256.Sum256([]byte(id.Recipient().String())))
	}
	return out
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	alice := mustIdentity(t)
	body := encodeEnvelopeBody(alice.PeerID(), "d", rcptHashes(alice), []byte("payload"))
	full := append(body, make([]byte, 64)...)
	if _, err := decodeEnvelope(full); err != nil {
		t.Fatalf("well-formed envelope: %v", err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), full...)) }
	signerLen := 4
	domainLen := signerLen + 1 + len(alice.PeerID())
	rcptCount := domainLen + 1 + 1
	payloadLen := rcptCount + 1 + 32
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad magic", mut(func(b []byte) []byte { b[0] = 'X'; return b })},
		{"future version", mut(func(b []byte) []byte { b[3] = 2; return b })},
		{"zero signer length", mut(func(b []byte) []byte { b[signerLen] = 0; return b })},
		{"huge signer length", mut(func(b []byte) []byte { b[signerLen] = 255; return b })},
		{"zero domain length", mut(func(b []byte) []byte { b[domainLen] = 0; return b })},
		{"bad domain byte", mut(func(b []byte) []byte { b[domainLen+1] = 0; return b })},
		{"zero recipients", mut(func(b []byte) []byte { b[rcptCount] = 0; return b })},
		{"too many recipients", mut(func(b []byte) []byte { b[rcptCount] = MaxRecipients + 1; return b })},
		{"payload length past end", mut(func(b []byte) []byte { b[payloadLen] = 0xff; return b })},
		{"payload length short", mut(func(b []byte) []byte { b[payloadLen+3]--; return b })},
		{"missing signature", full[:len(full)-1]},
		{"trailing byte", append(append([]byte(nil), full...), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodeEnvelope(tt.b); err == nil {
				t.Fatal("decoded")
			}
		})
	}
}

func TestSealRefuses(t *testing.T) {
	alice := mustIdentity(t)
	many := make([]age.Recipient, MaxRecipients+1)
	for i := range many {
		many[i] = mustX25519(t).Recipient()
	}
	tests := []struct {
		name   string
		domain string
		r      []age.Recipient
	}{
		{"no recipients", "d", nil},
		{"nil recipient", "d", []age.Recipient{nil}},
		{"too many recipients", "d", many},
		{"bad domain", "a b", []age.Recipient{alice.Recipient()}},
		{"mixed pq and classic", "d", []age.Recipient{alice.Recipient(), many[0]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Seal(alice.Sign, tt.domain, []byte("x"), tt.r...); err == nil {
				t.Fatal("sealed")
			}
		})
	}
}

func TestDecryptStanzaLimit(t *testing.T) {
	// age itself allows 1,024 stanzas; Decrypt stops at MaxRecipients.
	for _, n := range []int{MaxRecipients, MaxRecipients + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ids := make([]*age.X25519Identity, n)
			rs := make([]age.Recipient, n)
			for i := range ids {
				ids[i] = mustX25519(t)
				rs[i] = ids[i].Recipient()
			}
			var buf bytes.Buffer
			w, err := age.Encrypt(&buf, rs...)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("x"))
			w.Close()
			_, err = Decrypt(buf.Bytes(), ids[n-1])
			if n <= MaxRecipients && err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if n > MaxRecipients && !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestNewArchiveKey(t *testing.T) {
	a, err := NewArchiveKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewArchiveKey()
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Fatalf("archive keys: len %d, equal %v", len(a), bytes.Equal(a, b))
	}
	// The documented way to keep it on disk: wrapped to the node's recipient.
	id := mustIdentity(t)
	wrapped, err := Encrypt(a, id.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decrypt(wrapped, id.Box)
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("unwrap: %v", err)
	}
}

func TestOpenRefusesUnbindableIdentity(t *testing.T) {
	alice := mustIdentity(t)
	sealed, err := Seal(alice.Sign, "d", []byte("x"), alice.Recipient())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(sealed, stanzaLimit{alice.Box}, "d", 10); err == nil {
		t.Fatal("opened with an identity whose recipient is unknown")
	}
	var nilHybrid *age.HybridIdentity
	if _, _, err := Open(sealed, nilHybrid, "d", 10); err == nil {
		t.Fatal("opened with a nil identity")
	}
	if _, _, err := Open(sealed, nil, "d", 10); err == nil {
		t.Fatal("opened with a nil interface")
	}
	if _, _, err := Open(sealed, alice.Box, "d", -1); err == nil {
		t.Fatal("negative maxSize accepted")
	}
}
