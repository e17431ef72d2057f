package crypto

import (
	"crypto/rand"
	"testing"

	"filippo.io/age"
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

// The study-key benchmarks measure what every imported or fetched instance
// pays; the Hybrid ones are the same with an age hybrid (ML-KEM-768 +
// X25519) identity, which study keys were until the symmetric StudyKey
// replaced them, kept to show the difference.

func BenchmarkEncryptStudyKey512KiB(b *testing.B) {
	k, err := NewStudyKey()
	if err != nil {
		b.Fatal(err)
	}
	benchEncrypt(b, k.Recipient())
}

func BenchmarkDecryptStudyKey512KiB(b *testing.B) {
	k, err := NewStudyKey()
	if err != nil {
		b.Fatal(err)
	}
	benchDecrypt(b, k.Recipient(), k)
}

func BenchmarkEncryptHybrid512KiB(b *testing.B) {
	k, err := age.GenerateHybridIdentity()
	if err != nil {
		b.Fatal(err)
	}
	benchEncrypt(b, k.Recipient())
}

func BenchmarkDecryptHybrid512KiB(b *testing.B) {
	k, err := age.GenerateHybridIdentity()
	if err != nil {
		b.Fatal(err)
	}
	benchDecrypt(b, k.Recipient(), k)
}

// benchEncrypt and benchDecrypt measure one 512 KiB instance, the size of
// a 512×512 16-bit CT slice.
func benchEncrypt(b *testing.B, r age.Recipient) {
	plain := make([]byte, 512<<10)
	rand.Read(plain)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := Encrypt(plain, r); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecrypt(b *testing.B, r age.Recipient, id age.Identity) {
	plain := make([]byte, 512<<10)
	rand.Read(plain)
	ct, err := Encrypt(plain, r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		if _, err := Decrypt(ct, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStudyKeyRoundTrip1KiB is the fixed per-file cost: encrypt and
// decrypt of a tiny payload.
func BenchmarkStudyKeyRoundTrip1KiB(b *testing.B) {
	k, err := NewStudyKey()
	if err != nil {
		b.Fatal(err)
	}
	benchRoundTrip(b, k.Recipient(), k)
}

func BenchmarkHybridRoundTrip1KiB(b *testing.B) {
	k, err := age.GenerateHybridIdentity()
	if err != nil {
		b.Fatal(err)
	}
	benchRoundTrip(b, k.Recipient(), k)
}

func benchRoundTrip(b *testing.B, r age.Recipient, id age.Identity) {
	plain := make([]byte, 1<<10)
	rand.Read(plain)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		ct, err := Encrypt(plain, r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decrypt(ct, id); err != nil {
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
