package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/exchange"
)

func patientCT(t *testing.T, seed int64, slices int, patientID string) (string, []synth.File) {
	t.Helper()
	return ctStudyOf(t, synth.CTOptions{Slices: slices, Seed: seed, PatientID: patientID})
}

// A patient grant covers the patient's studies held here, and those that
// arrive later flow to the grantee as they come; another patient's study
// does not, even when the grantee cites the patient grant for its blocks.
func TestPatientGrant(t *testing.T) {
	a, b := newNode(t, "Alpha"), newNode(t, "Bravo")
	link(t, a, b)
	ctx := context.Background()
	prior, files := patientCT(t, 51, 2, "PAT-1")
	importFiles(t, a, files)
	other, files := patientCT(t, 52, 2, "PAT-2")
	importFiles(t, a, files)

	g, err := a.Grant(ctx, GrantRequest{To: "Bravo", Patient: &consent.Patient{ID: "PAT-1"}, Expires: time.Hour, Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Grant.Patient == nil || len(g.Grant.Studies) != 0 {
		t.Fatalf("grant scope: %+v", g.Grant)
	}
	s := waitShared(t, b, a, prior, SharedAvailable, 1, 20*time.Second)
	if s.Scope != "patient" {
		t.Errorf("shared scope %q, want patient", s.Scope)
	}
	// A new study of the patient arrives at the holder after the grant.
	later, files := patientCT(t, 53, 3, "PAT-1")
	importFiles(t, a, files)
	waitShared(t, b, a, later, SharedAvailable, 1, 20*time.Second)
	if st := fetchWait(t, b, later, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch of the later study: %+v", st)
	}
	if st := fetchWait(t, b, prior, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch of the prior: %+v", st)
	}
	if _, ok := sharedStudy(t, b, a, other); ok {
		t.Fatal("another patient's study was shared")
	}
	// Citing the patient grant for another patient's block is refused.
	if _, err := fetchBlock(t, b, a, g.Grant.ID, studyCIDs(t, a, other)[0]); !errors.Is(err, exchange.ErrDenied) {
		t.Fatalf("block of another patient under the patient grant: %v, want denied", err)
	}
	requireAudit(t, a, consent.Entry{Action: consent.ActFetchDenied, Study: other, Reason: string(consent.ReasonOutOfScope)})
	// The grant's audit entry names no patient.
	for _, e := range auditLog(t, a) {
		if e.GrantID == g.Grant.ID && e.Action == consent.ActGrant && (e.Study != "" || strings.Contains(e.Reason, "PAT-1")) {
			t.Errorf("grant entry carries patient data: %+v", e)
		}
	}
	// Revoking the patient grant revokes every study it covered.
	if _, err := a.Revoke(g.Grant.ID, "consent-withdrawn", "admin"); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, prior, SharedRevoked, 2, 20*time.Second)
	waitShared(t, b, a, later, SharedRevoked, 2, 20*time.Second)
	// The patient's next study no longer flows.
	next, files := patientCT(t, 54, 1, "PAT-1")
	importFiles(t, a, files)
	time.Sleep(2 * studyGrownQuiet)
	if _, ok := sharedStudy(t, b, a, next); ok {
		t.Fatal("a study arriving after the revocation was shared")
	}
}

// A grant naming a user at the grantee is that user's alone: another user
// there (and the node's admin) cannot fetch under it.
func TestGranteeUser(t *testing.T) {
	a, b := newNode(t, "Alpha"), newNode(t, "Bravo")
	link(t, a, b)
	ctx := context.Background()
	study, _ := importCT(t, a, 55, 2)
	if _, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: study, User: "dr.who", Expires: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s := waitShared(t, b, a, study, SharedAvailable, 1, 20*time.Second)
	if s.User != "dr.who" {
		t.Errorf("shared user %q", s.User)
	}
	for _, u := range []string{"admin", "dr.no", ""} {
		if _, err := b.StartFetch(ctx, FetchRequest{Study: study, Actor: u}); !errors.Is(err, exchange.ErrDenied) || !strings.Contains(err.Error(), "another user") {
			t.Errorf("fetch by %q: %v, want denied (another user)", u, err)
		}
	}
	// dr.who is a real user at Bravo: the grant names her by name, her
	// requests carry her ID.
	who, err := b.users.Add("dr.who", roleClinician, "correct horse battery", "admin")
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.StartFetch(ctx, FetchRequest{Study: study, Actor: who.ID, ActorName: who.Name})
	if err != nil {
		t.Fatalf("fetch by the named user: %v", err)
	}
	if st = waitFetch(t, b, st.ID, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch by the named user: %+v", st)
	}
	// The copy is hers to read: to Bravo's admin, its other users and its
	// DICOM AEs it does not exist.
	her := reader{id: who.ID, name: who.Name}
	if err := b.archive.gate(study, her); err != nil {
		t.Errorf("the named user reading the copy: %v", err)
	}
	for _, rd := range []reader{{id: "admin", name: "admin"}, {id: "u-other", name: "dr.no"}, {}} {
		if err := b.archive.gate(study, rd); !errors.Is(err, errStudyNotFound) {
			t.Errorf("%+v reading another user's copy: %v, want not found", rd, err)
		}
	}
	ident := dimse.Dataset{}
	ident.Set(tagQRLevel, "CS", "STUDY")
	ident.Set(tagStudyUID, "UI", study)
	q, err := parseQuery(ident, false)
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := b.dicom.query.Find(q); err != nil || len(rows) != 0 {
		t.Errorf("C-FIND by an AE found the user's copy: %d rows, %v", len(rows), err)
	}
	q.reader = her
	if rows, err := b.dicom.query.Find(q); err != nil || len(rows) != 1 {
		t.Errorf("QIDO by the named user: %d rows, %v", len(rows), err)
	}
	if code, body := apiRaw(t, b, "GET", "/api/v1/studies", "Bearer "+b.keys.apiToken, nil); code != 200 || strings.Contains(string(body), study) {
		t.Errorf("the admin's study list shows the user's copy: %d", code)
	}
	if code, _ := apiRaw(t, b, "GET", "/dicom-web/studies/"+study+"/metadata", "Bearer "+b.keys.apiToken, nil); code != 404 {
		t.Errorf("the admin's WADO-RS of the user's copy: %d, want 404", code)
	}
	// A grant to the facility opens the copy to it.
	if _, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: study, Expires: time.Hour}); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, SharedAvailable, 2, 20*time.Second)
	if st := fetchWait(t, b, study, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch under the facility's grant: %+v", st)
	}
	if err := b.archive.gate(study, reader{}); err != nil {
		t.Errorf("after a grant to the facility: %v", err)
	}
}

// Research grants are refused until de-identification exists; a grant
// may start later (not-before) and is pending until then.
func TestGrantPurposeAndNotBefore(t *testing.T) {
	clk := &testClock{}
	a := newNode(t, "Alpha", nodeSetup{clock: clk})
	b := newNode(t, "Bravo", nodeSetup{clock: clk})
	link(t, a, b)
	ctx := context.Background()
	study, _ := importCT(t, a, 56, 1)
	if _, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: study, Purpose: string(consent.PurposeResearch)}); !errors.Is(err, consent.ErrInvalidRequest) || !strings.Contains(err.Error(), "de-identification") {
		t.Fatalf("research grant: %v", err)
	}
	if _, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: study, Patient: &consent.Patient{ID: "X"}}); !errors.Is(err, consent.ErrInvalidRequest) {
		t.Fatalf("studies and patient together: %v", err)
	}
	g, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: study, NotBefore: clk.Now().Add(time.Hour), Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := a.ledger.Get(g.Grant.ID); st.State != consent.StatePending {
		t.Fatalf("grant state %s, want pending", st.State)
	}
	waitShared(t, b, a, study, SharedPending, 1, 20*time.Second)
	if _, err := b.StartFetch(ctx, FetchRequest{Study: study, Actor: "admin"}); err == nil || !strings.Contains(err.Error(), "valid from") {
		t.Fatalf("fetch before not-before: %v", err)
	}
	clk.Advance(61 * time.Minute)
	if st := fetchWait(t, b, study, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch once valid: %+v", st)
	}
}
