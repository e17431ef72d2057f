package wire

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestParseManifest(t *testing.T) {
	f := newFixture(t)
	for _, want := range []Manifest{f.studyManifest(), f.revocationManifest()} {
		t.Run(want.Kind, func(t *testing.T) {
			payload := mustJSON(t, want)
			m, err := ParseManifest(payload)
			if err != nil {
				t.Fatalf("ParseManifest: %v", err)
			}
			if got := mustJSON(t, m); !bytes.Equal(got, payload) {
				t.Errorf("decoded manifest re-encodes differently:\n%s\n%s", got, payload)
			}
			if err := m.CheckParties(f.alice, f.bob); err != nil {
				t.Errorf("CheckParties: %v", err)
			}
		})
	}
}

// TestParseManifestRejects has one case per rule of ParseManifest, each
// breaking exactly that rule of a valid manifest. The messages are fixed
// texts: none may quote what the peer sent.
func TestParseManifestRejects(t *testing.T) {
	f := newFixture(t)
	// A revocation of the live grant by Bob, who did not issue it.
	foreignRev := func() *consent.SignedRevocation {
		rv := consent.Revocation{GrantID: f.revoked.Grant.ID, Issuer: f.bob, Revoked: t0}
		sig, err := crypto.Sign(f.bobKey, crypto.DomainRevocation, mustJSON(t, rv))
		if err != nil {
			t.Fatal(err)
		}
		return &consent.SignedRevocation{Revocation: rv, Sig: sig}
	}()
	cidOf := func(v uint64, codec uint64, mh uint64, length int) string {
		c, err := cid.Prefix{Version: v, Codec: codec, MhType: mh, MhLength: length}.Sum([]byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		return c.String()
	}
	study := func(mut func(m *Manifest)) []byte {
		m := f.studyManifest()
		mut(&m)
		return mustJSON(t, m)
	}
	revocation := func(mut func(m *Manifest)) []byte {
		m := f.revocationManifest()
		mut(&m)
		return mustJSON(t, m)
	}
	block := func(mut func(b *BlockRef)) []byte {
		return study(func(m *Manifest) { mut(&m.Instances[1].Blocks[1]) })
	}
	tests := []struct {
		name    string
		payload []byte
		reason  Reason
		msg     string
	}{
		{"empty", nil, ReasonMalformed, "manifest payload does not decode"},
		{"not json", []byte("PATIENT^NAME"), ReasonMalformed, "manifest payload does not decode"},
		{"trailing data", append(study(func(*Manifest) {}), " x"...), ReasonMalformed, "manifest payload does not decode"},
		{"wrong type", []byte(`{"format":"1"}`), ReasonMalformed, "manifest payload does not decode"},
		{"bad peer id", []byte(`{"format":1,"issuer":"PATIENT"}`), ReasonMalformed, "manifest payload does not decode"},
		{"format 2", study(func(m *Manifest) { m.Format = 2 }), ReasonFormat, "manifest format 2 is not supported"},
		{"no format", study(func(m *Manifest) { m.Format = 0 }), ReasonFormat, "manifest format 0 is not supported"},
		{"no grant", study(func(m *Manifest) { m.Grant = nil }), ReasonMalformed, "manifest carries no grant"},
		{"grant signature", study(func(m *Manifest) {
			g := *m.Grant
			g.Sig = bytes.Clone(g.Sig)
			g.Sig[0] ^= 1
			m.Grant = &g
		}), ReasonBadGrant, "grant signature does not verify"},
		{"grant altered", study(func(m *Manifest) {
			g := *m.Grant
			g.Grant.Expires = g.Grant.Expires.Add(time.Hour)
			m.Grant = &g
		}), ReasonBadGrant, "grant signature does not verify"},
		{"issuer is not the grant's", study(func(m *Manifest) { m.Issuer = f.bob }), ReasonWrongIssuer, "issuer field differs from the grant's issuer"},
		{"study not granted", study(func(m *Manifest) {
			m.Study.UID = studyB
			for i := range m.Instances {
				m.Instances[i].Study = studyB
			}
		}), ReasonBadGrant, "grant does not cover the manifest's study"},
		{"unknown kind", study(func(m *Manifest) { m.Kind = "PATIENT^NAME" }), ReasonMalformed, "unknown manifest kind"},
		{"no kind", study(func(m *Manifest) { m.Kind = "" }), ReasonMalformed, "unknown manifest kind"},
		{"no study key", study(func(m *Manifest) { m.StudyKey = "" }), ReasonMalformed, "study key does not parse"},
		{"bad study key", study(func(m *Manifest) { m.StudyKey = strings.ToLower(m.StudyKey) }), ReasonMalformed, "study key does not parse"},
		{"no instances", study(func(m *Manifest) { m.Instances = nil }), ReasonMalformed, "study manifest lists no instances"},
		{"instance of another study", study(func(m *Manifest) { m.Instances[1].Study = studyB }), ReasonMalformed, "instance entry is inconsistent"},
		{"instance without blocks", study(func(m *Manifest) { m.Instances[1].Blocks = nil }), ReasonMalformed, "instance entry is inconsistent"},
		{"short digest", study(func(m *Manifest) { m.Instances[1].Digest = m.Instances[1].Digest[:63] }), ReasonMalformed, "instance entry is inconsistent"},
		{"upper-case digest", study(func(m *Manifest) { m.Instances[1].Digest = strings.ToUpper(m.Instances[1].Digest) }), ReasonMalformed, "instance entry is inconsistent"},
		{"non-hex digest", study(func(m *Manifest) { m.Instances[1].Digest = strings.Repeat("g", 64) }), ReasonMalformed, "instance entry is inconsistent"},
		{"negative size", study(func(m *Manifest) { m.Instances[1].Size = -1 }), ReasonMalformed, "instance entry is inconsistent"},
		{"SOP instance UID ..", study(func(m *Manifest) { m.Instances[1].SOPInstanceUID = ".." }), ReasonMalformed, "instance entry has a malformed UID"},
		{"series UID with a slash", study(func(m *Manifest) { m.Instances[1].Series = "1.2/../3" }), ReasonMalformed, "instance entry has a malformed UID"},
		{"empty SOP class", study(func(m *Manifest) { m.Instances[0].SOPClassUID = "" }), ReasonMalformed, "instance entry has a malformed UID"},
		{"block size 0", block(func(b *BlockRef) { b.Size = 0 }), ReasonMalformed, "instance names a malformed block"},
		{"block size negative", block(func(b *BlockRef) { b.Size = -5 }), ReasonMalformed, "instance names a malformed block"},
		{"block too big", block(func(b *BlockRef) { b.Size = BlockSize + 1 }), ReasonMalformed, "instance names a malformed block"},
		{"no cid", block(func(b *BlockRef) { b.CID = "" }), ReasonMalformed, "instance names a malformed block"},
		{"garbage cid", block(func(b *BlockRef) { b.CID = "PATIENT^NAME" }), ReasonMalformed, "instance names a malformed block"},
		{"cid v0", block(func(b *BlockRef) { b.CID = cidOf(0, cid.DagProtobuf, multihash.SHA2_256, -1) }), ReasonMalformed, "instance names a malformed block"},
		{"cid dag-pb", block(func(b *BlockRef) { b.CID = cidOf(1, cid.DagProtobuf, multihash.SHA2_256, -1) }), ReasonMalformed, "instance names a malformed block"},
		{"cid sha2-512", block(func(b *BlockRef) { b.CID = cidOf(1, cid.Raw, multihash.SHA2_512, -1) }), ReasonMalformed, "instance names a malformed block"},
		{"cid identity", block(func(b *BlockRef) { b.CID = cidOf(1, cid.Raw, multihash.IDENTITY, -1) }), ReasonMalformed, "instance names a malformed block"},
		{"cid short digest", block(func(b *BlockRef) { b.CID = cidOf(1, cid.Raw, multihash.SHA2_256, 20) }), ReasonMalformed, "instance names a malformed block"},
		{"no revocation", revocation(func(m *Manifest) { m.Revocation = nil }), ReasonBadRevocation, "revocation is missing or does not verify"},
		{"revocation signature", revocation(func(m *Manifest) {
			rv := *m.Revocation
			rv.Sig = bytes.Clone(rv.Sig)
			rv.Sig[5] ^= 1
			m.Revocation = &rv
		}), ReasonBadRevocation, "revocation is missing or does not verify"},
		{"revocation of another grant", revocation(func(m *Manifest) { m.Grant = f.grant }), ReasonBadRevocation, "revocation is missing or does not verify"},
		{"revocation by another issuer", revocation(func(m *Manifest) { m.Revocation = foreignRev }), ReasonBadRevocation, "revocation is missing or does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseManifest(tt.payload)
			if err == nil {
				t.Fatal("accepted")
			}
			if m != nil {
				t.Error("a manifest returned with an error")
			}
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("error %v (%T) is not a *wire.Error", err, err)
			}
			if ReasonOf(err) != tt.reason || we.Msg != tt.msg {
				t.Errorf("got %q, want %q", err, string(tt.reason)+": "+tt.msg)
			}
			if strings.Contains(err.Error(), "PATIENT") {
				t.Errorf("error quotes the payload: %v", err)
			}
		})
	}
}

func TestCheckParties(t *testing.T) {
	f := newFixture(t)
	carol := peerOf(t, fixedKey(t, 3))
	tests := []struct {
		name         string
		mut          func(m *Manifest)
		signer, self peer.ID // "": Alice, Bob
		reason       Reason
		msg          string
	}{
		{name: "ok"},
		{name: "signed by another", signer: carol, reason: ReasonWrongIssuer, msg: "issuer field differs from signer"},
		{name: "grantee is another", self: carol, reason: ReasonBadGrant, msg: "grant is not from the sender to us"},
		{name: "grant from another", mut: func(m *Manifest) { m.Issuer = carol }, signer: carol, reason: ReasonBadGrant, msg: "grant is not from the sender to us"},
		{name: "no grant", mut: func(m *Manifest) { m.Grant = nil }, reason: ReasonMalformed, msg: "manifest carries no grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.studyManifest()
			if tt.mut != nil {
				tt.mut(&m)
			}
			signer, self := cmp.Or(tt.signer, f.alice), cmp.Or(tt.self, f.bob)
			err := m.CheckParties(signer, self)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("CheckParties: %v", err)
				}
				return
			}
			if want := string(tt.reason) + ": " + tt.msg; err == nil || err.Error() != want || ReasonOf(err) != tt.reason {
				t.Errorf("got %v, want %s", err, want)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	tests := []struct {
		err    error
		text   string
		reason Reason
	}{
		{&Error{Reason: ReasonMalformed, Msg: "manifest carries no grant"}, "malformed: manifest carries no grant", ReasonMalformed},
		{&Error{Reason: ReasonOpen, Err: cause}, "open: unexpected EOF", ReasonOpen},
		{&Error{Reason: ReasonStoreFailed, Msg: "commit", Err: cause}, "store-failed: commit: unexpected EOF", ReasonStoreFailed},
		{fmt.Errorf("rejected: %w", &Error{Reason: ReasonNotPartner, Msg: "sender is not a partner facility"}), "rejected: not-partner: sender is not a partner facility", ReasonNotPartner},
		{errors.New("bad-grant: looks like a reason"), "bad-grant: looks like a reason", ReasonUnknown},
		{nil, "", ""},
	}
	for _, tt := range tests {
		if tt.err == nil {
			if r := ReasonOf(nil); r != "" {
				t.Errorf("ReasonOf(nil) = %q", r)
			}
			continue
		}
		if tt.err.Error() != tt.text || ReasonOf(tt.err) != tt.reason {
			t.Errorf("%q (reason %q), want %q (reason %q)", tt.err, ReasonOf(tt.err), tt.text, tt.reason)
		}
	}
	if err := (&Error{Reason: ReasonOpen, Err: cause}); !errors.Is(err, cause) {
		t.Error("the cause does not unwrap")
	}
}

// TestManifestJSON pins the manifest encoding: it is signed and deployed,
// so a renamed or reordered field must fail here, not at a partner.
func TestManifestJSON(t *testing.T) {
	f := newFixture(t)
	m := f.studyManifest()
	m.Grant, m.StudyKey = nil, "PACSNET-STUDY-KEY-1…"
	m.Study = Study{UID: "1", PatientID: "2", IssuerOfPatientID: "3", PatientName: "4", PatientBirthDate: "5", PatientSex: "6",
		StudyDate: "7", StudyTime: "8", Description: "9", AccessionNumber: "10", StudyID: "11", Modalities: []string{"CT", "SR"}}
	m.Instances[0].Modality, m.Instances[0].SeriesNumber, m.Instances[0].SeriesDescription = "", 0, ""
	m.Instances[1].SeriesNumber, m.Instances[1].SeriesDescription = 3, "axial"
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "\t")
	for _, v := range []any{m, Manifest{Issuer: f.alice}} {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	const golden = "testdata/manifest.json"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("manifest JSON differs from %s (run with -update only for a deliberate format change):\n%s", golden, buf.Bytes())
	}
}
