package wire

import (
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/consent"
)

// A patient grant covers a manifest's study by the study's Patient ID and
// Issuer of Patient ID, exactly; another patient's study is refused.
func TestParseManifestPatientGrant(t *testing.T) {
	f := newFixture(t)
	l, err := consent.Open(consent.NewMemStore(), f.aliceKey, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	pg, err := l.Grant(consent.GrantRequest{Grantee: f.bob, Patient: &consent.Patient{ID: "P1"}, Purpose: consent.PurposeTreatment, Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		patient   string
		issuer    string
		wantError bool
	}{
		{"the patient's study", "P1", "", false},
		{"another patient", "P2", "", true},
		{"same ID, another issuer", "P1", "HOSP", true},
		{"no patient ID", "", "", true},
	} {
		m := f.studyManifest()
		m.Grant = pg
		m.Study.PatientID, m.Study.IssuerOfPatientID = tc.patient, tc.issuer
		_, err := ParseManifest(mustJSON(t, m))
		if (err != nil) != tc.wantError {
			t.Errorf("%s: ParseManifest = %v, want error %v", tc.name, err, tc.wantError)
		}
		if err != nil && ReasonOf(err) != ReasonBadGrant {
			t.Errorf("%s: reason %v, want %v", tc.name, ReasonOf(err), ReasonBadGrant)
		}
	}
}
