package consent

import (
	"testing"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

// CheckPresented refuses, with Check's reasons, what the original holder's
// ledger would refuse; it needs nothing but the signed grant.
func TestCheckPresented(t *testing.T) {
	clock := newClock()
	h := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	carol := peerOf(t, fixedKey(t, 3))
	nb := clock.Now().Add(time.Hour)
	g, err := h.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, NotBefore: nb, Expires: nb.Add(24 * time.Hour), Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := h.Grant(GrantRequest{Grantee: bob, Patient: &Patient{ID: "P1", Issuer: "H"}, Purpose: PurposeTreatment, Expires: clock.Now().Add(24 * time.Hour), Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	live := nb.Add(time.Minute)
	for _, tc := range []struct {
		name           string
		g              *SignedGrant
		who            lpeer.ID
		study, pid, pi string
		action         string
		now            time.Time
		revoked        bool
		want           DenyReason
	}{
		{"allowed", g, bob, studyA, "", "", ActionFetch, live, false, ""},
		{"another grantee", g, carol, studyA, "", "", ActionFetch, live, false, ReasonWrongGrantee},
		{"revoked", g, bob, studyA, "", "", ActionFetch, live, true, ReasonRevoked},
		{"not yet", g, bob, studyA, "", "", ActionFetch, clock.Now(), false, ReasonNotYetValid},
		{"expired", g, bob, studyA, "", "", ActionFetch, nb.Add(24 * time.Hour), false, ReasonExpired},
		{"another study", g, bob, studyB, "", "", ActionFetch, live, false, ReasonOutOfScope},
		{"another action", g, bob, studyA, "", "", "delete", live, false, ReasonActionNotGranted},
		{"patient", pg, bob, studyC, "P1", "H", ActionFetch, clock.Now(), false, ""},
		{"patient elsewhere", pg, bob, studyC, "P1", "", ActionFetch, clock.Now(), false, ReasonOutOfScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPresented(tc.g, tc.who, tc.study, tc.pid, tc.pi, tc.action, tc.now, tc.revoked)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && ReasonOf(err) != tc.want:
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}
