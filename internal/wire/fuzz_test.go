package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/crypto"
)

// FuzzParseInvite feeds hostile strings to ParseInvite. It must never
// panic, every error must wrap ErrBadInvite, and an accepted invite must
// keep ParseInvite's promises; when it is signed by the fuzz key it must
// re-encode to an invite that parses back to the same fields.
func FuzzParseInvite(f *testing.F) {
	key := fixedKey(f, 1)
	valid, err := EncodeInvite(key, testInvite(f, key))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(" " + valid + "\n")
	for _, n := range []int{0, len(InvitePrefix), len(InvitePrefix) + 1, len(InvitePrefix) + 40, len(valid) / 2, len(valid) - 1} {
		f.Add(valid[:n])
	}
	f.Add(InvitePrefix + "e30") // {}
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInvite(s)
		if err != nil {
			if !errors.Is(err, ErrBadInvite) {
				t.Fatalf("error does not wrap ErrBadInvite: %v", err)
			}
			return
		}
		checkInvite(t, inv)
		if inv.PeerID != peerOf(t, key) {
			return // only the holder of the key can re-encode it
		}
		again, err := EncodeInvite(key, inv)
		if err != nil {
			t.Fatalf("re-encode a parsed invite: %v", err)
		}
		inv2, err := ParseInvite(again)
		if err != nil {
			t.Fatalf("re-encoded invite does not parse: %v", err)
		}
		if !inv2.Created.Equal(inv.Created) {
			t.Fatalf("created %v, then %v", inv.Created, inv2.Created)
		}
		inv.Created, inv2.Created = inv.Created.UTC(), inv2.Created.UTC()
		if !reflect.DeepEqual(inv, inv2) {
			t.Fatalf("round trip changed the invite:\n%+v\n%+v", inv, inv2)
		}
		// An invite in the canonical encoding comes back byte for byte.
		if again2, _ := EncodeInvite(key, inv2); again2 != again {
			t.Fatal("encoding a re-parsed invite is not stable")
		}
	})
}

// checkInvite asserts what ParseInvite promises about an invite it
// returns.
func checkInvite(t *testing.T, inv Invite) {
	t.Helper()
	if _, err := crypto.PublicKey(inv.PeerID); err != nil {
		t.Fatalf("accepted peer ID without an Ed25519 key: %v", err)
	}
	if _, err := age.ParseHybridRecipient(inv.Recipient); err != nil {
		t.Fatalf("accepted recipient: %v", err)
	}
	if strings.TrimSpace(inv.Name) == "" || len(inv.Name) > 64 {
		t.Fatalf("accepted a name of %d bytes", len(inv.Name))
	}
	if len(inv.Addrs) == 0 || len(inv.Addrs) > 32 {
		t.Fatalf("accepted %d addresses", len(inv.Addrs))
	}
	for _, a := range inv.Addrs {
		if _, err := multiaddr.NewMultiaddr(a); err != nil {
			t.Fatalf("accepted address: %v", err)
		}
	}
}

// FuzzParseManifest feeds hostile payloads to ParseManifest, as they
// would come out of a sealed envelope from a partner. It must never panic;
// a rejection must be a *Error with one of ParseManifest's reasons; an
// accepted manifest must have every property ParseManifest documents, and
// its re-encoding must parse to the same manifest.
func FuzzParseManifest(f *testing.F) {
	fx := newFixture(f)
	study := mustJSON(f, fx.studyManifest())
	rev := mustJSON(f, fx.revocationManifest())
	f.Add(study)
	f.Add(rev)
	f.Add(study[:len(study)/2])
	f.Add([]byte(`{"format":1,"kind":"study","instances":[{"blocks":[{"cid":"x","size":1}]}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	own := []Reason{ReasonMalformed, ReasonFormat, ReasonBadGrant, ReasonWrongIssuer, ReasonBadRevocation}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := ParseManifest(payload)
		if err != nil {
			var we *Error
			if m != nil || !errors.As(err, &we) || !slices.Contains(own, we.Reason) || we.Err != nil {
				t.Fatalf("rejection %v (%T), manifest %v", err, err, m != nil)
			}
			return
		}
		checkManifest(t, m)
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, err := ParseManifest(again)
		if err != nil {
			t.Fatalf("re-encoded manifest rejected: %v", err)
		}
		if again2 := mustJSON(t, m2); !bytes.Equal(again, again2) {
			t.Fatalf("re-encoding is not stable:\n%s\n%s", again, again2)
		}
		// What the node checks next must not panic either.
		_ = m.CheckParties(fx.alice, fx.bob)
		_ = m.CheckParties(fx.bob, fx.alice)
	})
}

// checkManifest asserts, independently of ParseManifest's code, what it
// promises about a manifest it returns.
func checkManifest(t *testing.T, m *Manifest) {
	t.Helper()
	if m.Format != ManifestFormat {
		t.Fatalf("accepted format %d", m.Format)
	}
	if m.Grant == nil || m.Grant.Verify() != nil {
		t.Fatal("accepted a grant that does not verify")
	}
	g := m.Grant.Grant
	author := g.Issuer
	if m.Kind == KindHolder || m.Kind == KindHolderWithdrawn {
		author = g.Grantee
	}
	if author != m.Issuer || !slices.Contains(g.Studies, m.Study.UID) {
		t.Fatal("accepted a grant that is not the issuer's for the study")
	}
	switch m.Kind {
	case KindStudy:
		if _, err := crypto.ParseStudyKey(m.StudyKey); err != nil {
			t.Fatalf("accepted study key: %v", err)
		}
		if len(m.Instances) == 0 {
			t.Fatal("accepted a study manifest without instances")
		}
		for _, in := range m.Instances {
			if in.Study != m.Study.UID || in.Size < 0 || len(in.Blocks) == 0 {
				t.Fatalf("accepted instance: study ok %v, size %d, %d blocks", in.Study == m.Study.UID, in.Size, len(in.Blocks))
			}
			if d, err := hex.DecodeString(in.Digest); err != nil || len(d) != 32 || strings.ToLower(in.Digest) != in.Digest {
				t.Fatal("accepted a digest that is not 64 lowercase hex digits")
			}
			for _, b := range in.Blocks {
				checkBlock(t, b)
			}
		}
	case KindHolder, KindHolderWithdrawn:
		if g.GranteeUser != "" || m.StudyKey != "" || len(m.Instances) > 0 {
			t.Fatal("accepted a holder notice with a key, instances or a user's grant")
		}
	case KindRevocation, KindHolderRevocation:
		rv := m.Revocation
		if rv == nil || rv.Verify() != nil || rv.Revocation.GrantID != g.ID || rv.Revocation.Issuer != g.Issuer {
			t.Fatal("accepted a revocation that does not match its grant")
		}
	default:
		t.Fatal("accepted an unknown kind")
	}
}

// checkBlock rebuilds the block's CID from its multihash digest: a CID
// that is not exactly CIDv1(raw, sha2-256 of 32 bytes) comes out
// different.
func checkBlock(t *testing.T, b BlockRef) {
	t.Helper()
	if b.Size <= 0 || b.Size > BlockSize {
		t.Fatalf("accepted block size %d", b.Size)
	}
	c, err := cid.Decode(b.CID)
	if err != nil {
		t.Fatalf("accepted CID: %v", err)
	}
	dm, err := multihash.Decode(c.Hash())
	if err != nil || dm.Code != multihash.SHA2_256 || len(dm.Digest) != 32 {
		t.Fatal("accepted a CID that is not SHA2-256 with 32 bytes")
	}
	mh, err := multihash.Encode(dm.Digest, multihash.SHA2_256)
	if err != nil {
		t.Fatal(err)
	}
	if want := cid.NewCidV1(cid.Raw, mh); !c.Equals(want) {
		t.Fatal("accepted a CID that is not CIDv1 raw")
	}
}

// FuzzHoldersAnswer checks that a hostile holders answer never panics, that
// an accepted one keeps its bounds, and that it re-encodes to an answer
// that is accepted again.
func FuzzHoldersAnswer(f *testing.F) {
	fx := newFixture(f)
	f.Add(mustJSON(f, HoldersAnswer{Holders: []peer.ID{fx.alice, fx.bob}}))
	f.Add([]byte(`{"holders":[]}`))
	f.Add([]byte(`{"holders":["x"]}`))
	f.Add([]byte(`{"holders":null,"extra":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var a HoldersAnswer
		if strictJSON(body, &a) != nil || a.Validate() != nil {
			return
		}
		if len(a.Holders) > MaxHolders {
			t.Fatalf("accepted %d holders", len(a.Holders))
		}
		var b HoldersAnswer
		if err := strictJSON(mustJSON(t, a), &b); err != nil || b.Validate() != nil || !slices.Equal(a.Holders, b.Holders) {
			t.Fatalf("re-encoded answer differs or is refused: %v", err)
		}
	})
}
