package crypto

import (
	"crypto/rand"
	"testing"
)

// Figures are reported as MB/s of payload (b.SetBytes).

func BenchmarkSeal64KiB(b *testing.B) {
	alice, bob := mustIdentity(b), mustIdentity(b)
	payload := make([]byte, 64<<10)
	rand.Read(payload)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := Seal(alice.Sign, "manifest", payload, bob.Recipient()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen64KiB(b *testing.B) {
	alice, bob := mustIdentity(b), mustIdentity(b)
	payload := make([]byte, 64<<10)
	rand.Read(payload)
	sealed, err := Seal(alice.Sign, "manifest", payload, bob.Recipient())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, _, err := Open(sealed, bob.Box, "manifest", 64<<10); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncryptStudyKey512KiB(b *testing.B) {
	k, err := NewStudyKey()
	if err != nil {
		b.Fatal(err)
	}
	r := k.Recipient()
	plain := make([]byte, 512<<10)
	rand.Read(plain)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := Encrypt(plain, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecryptStudyKey512KiB(b *testing.B) {
	k, err := NewStudyKey()
	if err != nil {
		b.Fatal(err)
	}
	plain := make([]byte, 512<<10)
	rand.Read(plain)
	ct, err := Encrypt(plain, k.Recipient())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := Decrypt(ct, k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignVerify(b *testing.B) {
	a := mustIdentity(b)
	msg := make([]byte, 512)
	p := a.PeerID()
	for b.Loop() {
		sig, err := Sign(a.Sign, "grant", msg)
		if err != nil {
			b.Fatal(err)
		}
		if err := VerifyPeer(p, "grant", msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}
