package crypto

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"filippo.io/age"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
)

// fuzzKeys are fixed so corpus entries stay meaningful across runs.
func fuzzKeys(t testing.TB) (lcrypto.PrivKey, *age.X25519Identity) {
	sk, _, err := lcrypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	// Fixed test-only X25519 identity (generated once; never used outside tests).
	id, err := age.ParseX25519Identity("AGE-SECRET-KEY-1W4TYC385U28NQJYUXMQ55QNP27M6ZS8JZXT4DSWTCNG38RL49UJQHH2YKR")
	if err != nil {
		t.Fatal(err)
	}
	return sk, id
}

// FuzzOpen feeds arbitrary bytes to Open as a sealed message. Most inputs
// die in the age header parser; the seeds include valid sealed messages so
// mutations also reach the stream layer. Open must never panic, and must
// only succeed with a payload within the limit.
func FuzzOpen(f *testing.F) {
	sk, id := fuzzKeys(f)
	for _, p := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{1}, 70000)} {
		s, err := Seal(sk, "fuzz", p, id.Recipient())
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
		f.Add(s[:len(s)/2])
	}
	f.Add([]byte("age-encryption.org/v1\n-> X25519 AAAA\n\n--- AAAA\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		const max = 1 << 16
		payload, signer, err := Open(sealed, id, "fuzz", max)
		if err != nil {
			if payload != nil || signer != "" {
				t.Fatal("payload or signer returned with an error")
			}
			return
		}
		if len(payload) > max {
			t.Fatalf("payload of %d bytes over the limit", len(payload))
		}
		if err := VerifyPeer(signer, "fuzz", nil, nil); err == nil {
			t.Fatal("nonsense verified")
		}
	})
}

// FuzzOpenEnvelope encrypts the fuzz input as the envelope plaintext, so
// every input reaches decodeEnvelope and the signature check (FuzzOpen
// mostly cannot get through age's authentication). Only envelopes that
// re-encode to exactly the input may open.
func FuzzOpenEnvelope(f *testing.F) {
	sk, id := fuzzKeys(f)
	for _, p := range [][]byte{nil, []byte("hello")} {
		s, err := Seal(sk, "fuzz", p, id.Recipient())
		if err != nil {
			f.Fatal(err)
		}
		plain, err := Decrypt(s, id)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(plain)
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		if e, err := decodeEnvelope(plain); err == nil {
			re := encodeEnvelopeBody(e.signer, e.domain, toArrays(e.rcpt), e.payload)
			if !bytes.Equal(append(re, e.sig...), plain) {
				t.Fatal("decode→encode does not give back the input")
			}
		}
		sealed, err := Encrypt(plain, id.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		payload, _, err := Open(sealed, id, "fuzz", 1<<16)
		if err == nil && !bytes.Contains(plain, payload) {
			t.Fatal("payload not from the input")
		}
	})
}

func toArrays(hs [][]byte) [][32]byte {
	out := make([][32]byte, len(hs))
	for i, h := range hs {
		copy(out[i][:], h)
	}
	return out
}
