package consent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// patients is a StudyPatient over a fixed table: studyA and studyB are
// patient P1's (issuer H), studyC is P1's under another issuer, and
// studyD (not ours: a partner's copy) is P1's too.
func patients(study string) (Patient, bool) {
	switch study {
	case studyA, studyB:
		return Patient{ID: "P1", Issuer: "H"}, true
	case studyC:
		return Patient{ID: "P1", Issuer: "OTHER"}, true
	}
	return Patient{}, false
}

func TestPatientGrantScope(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	g, err := l.Grant(GrantRequest{Grantee: bob, Patient: &Patient{ID: "P1", Issuer: "H"}, Purpose: PurposeTreatment,
		Expires: t0.Add(24 * time.Hour), Actor: "admin"})
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	if err := g.Verify(); err != nil {
		t.Fatalf("a patient grant does not verify: %v", err)
	}
	// Without a StudyPatient, a patient grant covers nothing (default deny).
	if err := l.Check(bob, g.Grant.ID, studyA, ActionFetch); !errors.Is(err, ErrOutOfScope) {
		t.Fatalf("no resolver: %v, want out of scope", err)
	}
	l.SetStudyPatient(patients)
	for _, tc := range []struct {
		name, study string
		want        error
	}{
		{"the patient's study", studyA, nil},
		{"a later study of the patient", studyB, nil},
		{"same Patient ID from another issuer", studyC, ErrOutOfScope},
		{"a study we do not hold as our own", "1.2.3.999", ErrOutOfScope},
	} {
		if err := l.Check(bob, g.Grant.ID, tc.study, ActionFetch); !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("%s: Check = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The audit entry names neither the patient nor a study.
	es, err := l.Entries(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	last := es[len(es)-1]
	if last.Study != "" || strings.Contains(last.Reason, "P1") || !strings.Contains(last.Reason, "patient") {
		t.Errorf("grant entry = study %q reason %q; want no study, no patient ID, scope=patient", last.Study, last.Reason)
	}
}

func TestPatientGrantValidation(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	exp := t0.Add(time.Hour)
	for _, tc := range []struct {
		name string
		req  GrantRequest
		want string
	}{
		{"both scopes", GrantRequest{Grantee: bob, Studies: []string{studyA}, Patient: &Patient{ID: "P1"}, Purpose: PurposeTreatment, Expires: exp}, "not both"},
		{"empty patient ID", GrantRequest{Grantee: bob, Patient: &Patient{ID: "  "}, Purpose: PurposeTreatment, Expires: exp}, "patient ID is empty"},
		{"control characters", GrantRequest{Grantee: bob, Patient: &Patient{ID: "P\x1b1"}, Purpose: PurposeTreatment, Expires: exp}, "control characters"},
		{"issuer too long", GrantRequest{Grantee: bob, Patient: &Patient{ID: "P1", Issuer: strings.Repeat("x", 300)}, Purpose: PurposeTreatment, Expires: exp}, "longer than"},
	} {
		_, err := l.Grant(tc.req)
		if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want invalid request mentioning %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "P\x1b1") {
			t.Errorf("%s: the error quotes the patient ID", tc.name)
		}
	}
}

// A signed grant that names both studies and a patient, or an empty
// patient, fails verification even with a good signature.
func TestPatientGrantVerifyRefusesMixedScope(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	g, err := l.Grant(GrantRequest{Grantee: bob, Patient: &Patient{ID: "P1"}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(g)
	var round SignedGrant
	if err := json.Unmarshal(raw, &round); err != nil || round.Verify() != nil {
		t.Fatalf("round trip: %v / %v", err, round.Verify())
	}
	mixed := *g.clone()
	mixed.Grant.Studies = []string{studyA}
	if mixed.Verify() == nil {
		t.Error("a grant with both scopes verified")
	}
	other := *g.clone()
	other.Grant.Patient.ID = "P2"
	if other.Verify() == nil {
		t.Error("a grant whose patient was changed verified")
	}
	if !g.Grant.Covers(studyA, "P1", "") || g.Grant.Covers(studyA, "P1", "H") || g.Grant.Covers(studyA, "", "") {
		t.Error("Covers compares Patient ID and issuer exactly")
	}
}
