package consent

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeClock is the test's time source; safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixedKey derives an Ed25519 key from a one-byte seed, so golden tests
// see the same peer IDs and signatures on every run.
func fixedKey(t testing.TB, seed byte) lcrypto.PrivKey {
	t.Helper()
	sk, _, err := lcrypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func peerOf(t testing.TB, k lcrypto.PrivKey) peer.ID {
	t.Helper()
	p, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newLedger opens a ledger over store with the fixed key 1, the clock and
// a seeded grant-ID source.
func newLedger(t testing.TB, store Store, clock *fakeClock) *Ledger {
	t.Helper()
	l, err := Open(store, fixedKey(t, 1), clock.Now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	l.rand = rand.NewChaCha8([32]byte{42})
	return l
}

// ecdsaPeer is a valid libp2p peer ID that is not Ed25519.
func ecdsaPeer(t testing.TB) peer.ID {
	t.Helper()
	sk, _, err := lcrypto.GenerateECDSAKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	return peerOf(t, sk)
}

const (
	studyA = "1.2.826.0.1.3680043.8.498.1"
	studyB = "1.2.826.0.1.3680043.8.498.2"
	studyC = "1.2.826.0.1.3680043.8.498.3"
)
