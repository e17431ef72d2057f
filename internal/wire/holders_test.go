package wire

import (
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Holder notices go from the grantee to the grant's issuer; revocations
// for secondary holders from the issuer to a third facility. Each is
// refused when it travels any other way.
func TestHolderManifests(t *testing.T) {
	fx := newFixture(t)
	carol := peerOf(t, fixedKey(t, 3))
	notice := Manifest{Format: ManifestFormat, Kind: KindHolder, Issuer: fx.bob, Version: 1, Issued: t0, Grant: fx.grant, Study: Study{UID: studyA}}
	hrev := fx.revocationManifest()
	hrev.Kind = KindHolderRevocation
	withKey := notice
	withKey.StudyKey = fx.studyKey
	asIssuer := notice
	asIssuer.Issuer = fx.alice
	withdrawn := notice
	withdrawn.Kind = KindHolderWithdrawn
	for _, tc := range []struct {
		name         string
		m            Manifest
		signer, self peer.ID
		parse, party Reason // "" accepted
	}{
		{"notice", notice, fx.bob, fx.alice, "", ""},
		{"notice to another", notice, fx.bob, carol, "", ReasonBadGrant},
		{"notice signed by the issuer", asIssuer, fx.alice, fx.bob, ReasonWrongIssuer, ""},
		{"notice with a key", withKey, fx.bob, fx.alice, ReasonMalformed, ""},
		{"withdrawal", withdrawn, fx.bob, fx.alice, "", ""},
		{"withdrawal to another", withdrawn, fx.bob, carol, "", ReasonBadGrant},
		{"revocation to a secondary", hrev, fx.alice, carol, "", ""},
		{"revocation of our own grant", hrev, fx.alice, fx.bob, "", ReasonBadGrant},
		{"revocation from another", hrev, carol, carol, "", ReasonWrongIssuer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest(mustJSON(t, tc.m))
			if got := ReasonOf(err); err != nil && got != tc.parse || err == nil && tc.parse != "" {
				t.Fatalf("parse: %v, want reason %q", err, tc.parse)
			}
			if err != nil {
				return
			}
			err = m.CheckParties(tc.signer, tc.self)
			var we *Error
			if tc.party == "" && err != nil || tc.party != "" && (!errors.As(err, &we) || we.Reason != tc.party) {
				t.Errorf("parties: %v, want reason %q", err, tc.party)
			}
		})
	}
}

func TestHoldersAnswerValidate(t *testing.T) {
	fx := newFixture(t)
	many := make([]peer.ID, MaxHolders+1)
	for i := range many {
		many[i] = peerOf(t, fixedKey(t, byte(10+i)))
	}
	for _, tc := range []struct {
		name string
		a    HoldersAnswer
		ok   bool
	}{
		{"none", HoldersAnswer{}, true},
		{"two", HoldersAnswer{Holders: []peer.ID{fx.alice, fx.bob}}, true},
		{"repeated", HoldersAnswer{Holders: []peer.ID{fx.alice, fx.alice}}, false},
		{"too many", HoldersAnswer{Holders: many}, false},
		{"not a peer", HoldersAnswer{Holders: []peer.ID{"x"}}, false},
	} {
		if err := tc.a.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if q := (HoldersQuery{Study: "not a uid"}); q.Validate() == nil {
		t.Error("a malformed study UID is accepted")
	}
}
