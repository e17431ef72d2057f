package consent

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzVerifySignedGrant decodes hostile JSON as a peer's grant or
// revocation and verifies it: it must never panic, and anything that
// verifies must re-encode to a grant that still verifies.
func FuzzVerifySignedGrant(f *testing.F) {
	clock := newClock()
	l := newLedger(f, NewMemStore(), clock)
	bob := peerOf(f, fixedKey(f, 2))
	g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA, studyB}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	gj, _ := json.Marshal(g)
	f.Add(gj)
	r, err := l.Revoke(g.Grant.ID, "treatment-ended", "admin")
	if err != nil {
		f.Fatal(err)
	}
	rj, _ := json.Marshal(r)
	f.Add(rj)
	f.Add([]byte(`{"grant":{"issuer":"","studies":null},"sig":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var sg SignedGrant
		if json.Unmarshal(data, &sg) == nil && sg.Verify() == nil {
			again, err := json.Marshal(&sg)
			if err != nil {
				t.Fatal(err)
			}
			var sg2 SignedGrant
			if err := json.Unmarshal(again, &sg2); err != nil || sg2.Verify() != nil {
				t.Fatalf("verified grant does not survive a round trip: %v", err)
			}
		}
		var sr SignedRevocation
		if json.Unmarshal(data, &sr) == nil {
			_ = sr.Verify()
		}
	})
}
