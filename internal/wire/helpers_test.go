package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
)

var t0 = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

const (
	studyA = "1.2.826.0.1.3680043.8.498.1"
	studyB = "1.2.826.0.1.3680043.8.498.2"
)

// fixedKey derives an Ed25519 key from a one-byte seed, so peer IDs and
// signatures are the same on every run (and fuzz corpora stay valid).
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

// testRecipient is a fixed age hybrid recipient (its identity is not
// kept: nothing here decrypts).
func testRecipient(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/recipient.txt")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func blockCID(t testing.TB, data []byte) string {
	t.Helper()
	c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}.Sum(data)
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

// fixture is Alice (the issuer) granting Bob (the grantee) access to
// studyA, twice: grant stays live, revoked is revoked by rev.
type fixture struct {
	aliceKey, bobKey lcrypto.PrivKey
	alice, bob       peer.ID
	grant, revoked   *consent.SignedGrant
	rev              *consent.SignedRevocation
	studyKey         string
	blocks           []BlockRef
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{aliceKey: fixedKey(t, 1), bobKey: fixedKey(t, 2)}
	f.alice, f.bob = peerOf(t, f.aliceKey), peerOf(t, f.bobKey)
	l, err := consent.Open(consent.NewMemStore(), f.aliceKey, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	req := consent.GrantRequest{Grantee: f.bob, Studies: []string{studyA}, Purpose: consent.PurposeTreatment, Expires: t0.Add(72 * time.Hour), Actor: "admin"}
	if f.grant, err = l.Grant(req); err != nil {
		t.Fatal(err)
	}
	if f.revoked, err = l.Grant(req); err != nil {
		t.Fatal(err)
	}
	if f.rev, err = l.Revoke(f.revoked.Grant.ID, "", "admin"); err != nil {
		t.Fatal(err)
	}
	sk, err := crypto.NewStudyKey()
	if err != nil {
		t.Fatal(err)
	}
	f.studyKey = sk.String()
	f.blocks = []BlockRef{{CID: blockCID(t, []byte("block 1")), Size: BlockSize}, {CID: blockCID(t, []byte("block 2")), Size: 1234}}
	return f
}

func (f *fixture) study() Study {
	return Study{UID: studyA, PatientID: "P1", PatientName: "Doe^Jane", StudyDate: "20260314", Modalities: []string{"CT"}}
}

func (f *fixture) instance(sop string) Instance {
	return Instance{
		Study: studyA, Series: studyA + ".1", SOPInstanceUID: sop, SOPClassUID: "1.2.840.10008.5.1.4.1.1.2",
		TransferSyntaxUID: "1.2.840.10008.1.2.1", Modality: "CT", InstanceNumber: 1, Size: 1<<20 + 1000,
		Digest: strings.Repeat("0123456789abcdef", 4), Blocks: append([]BlockRef(nil), f.blocks...),
	}
}

// studyManifest is a valid study manifest from Alice to Bob.
func (f *fixture) studyManifest() Manifest {
	return Manifest{
		Format: ManifestFormat, Kind: KindStudy, Issuer: f.alice, IssuerName: "Alpha", Version: 1, Issued: t0,
		Grant: f.grant, Study: f.study(), StudyKey: f.studyKey,
		Instances: []Instance{f.instance(studyA + ".1.1"), f.instance(studyA + ".1.2")},
	}
}

// revocationManifest is a valid revocation manifest from Alice to Bob.
func (f *fixture) revocationManifest() Manifest {
	return Manifest{
		Format: ManifestFormat, Kind: KindRevocation, Issuer: f.alice, IssuerName: "Alpha", Version: 2, Issued: t0,
		Grant: f.revoked, Revocation: f.rev, Study: f.study(),
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
