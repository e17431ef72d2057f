package consent

import (
	"encoding/json"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

var update = flag.Bool("update", false, "rewrite testdata/audit.golden.json")

// goldenScenario runs a fixed sequence of events with a fixed clock,
// signing key and grant-ID source, over a fresh store, and returns the
// audit log. It reopens the ledger halfway, as a restart would.
func goldenScenario(t *testing.T) []Entry {
	t.Helper()
	clock := newClock()
	store := NewMemStore()
	l := newLedger(t, store, clock)
	bob := peerOf(t, fixedKey(t, 2))
	carol := peerOf(t, fixedKey(t, 3))
	step := func() { clock.Advance(90 * time.Second) }

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	record := func(e Entry) { _, err := l.Record(e); must(err) }

	record(Entry{Actor: "admin", Peer: bob, Action: ActPeerAdded})
	step()
	g1, err := l.Grant(GrantRequest{Grantee: bob, GranteeUser: "dr.house", Studies: []string{studyA, studyB}, Purpose: PurposeSecondOpinion, Expires: t0.Add(14 * 24 * time.Hour), Actor: "admin"})
	must(err)
	step()
	record(Entry{Peer: bob, Action: ActManifestSent, Study: studyA, GrantID: g1.Grant.ID})
	step()
	for _, study := range []string{studyA, studyC} {
		err := l.Check(bob, g1.Grant.ID, study, ActionFetch)
		e := Entry{Peer: bob, Action: ActFetchAllowed, Study: study, GrantID: g1.Grant.ID, Decision: DecisionAllow}
		if err != nil {
			e.Action, e.Decision, e.Reason = ActFetchDenied, DecisionDeny, err.Error()
		}
		record(e)
		step()
	}
	if err := l.Check(carol, g1.Grant.ID, studyA, ActionFetch); err != nil {
		record(Entry{Peer: carol, Action: ActFetchDenied, Study: studyA, GrantID: g1.Grant.ID, Decision: DecisionDeny, Reason: err.Error()})
	}
	step()

	// Restart.
	l = newLedger(t, store, clock)
	l.rand.Read(make([]byte, 16)) // keep IDs distinct from before the restart
	g2, err := l.Grant(GrantRequest{Grantee: carol, Studies: []string{studyC}, Purpose: PurposeResearch, NotBefore: t0.Add(24 * time.Hour), Expires: t0.Add(48 * time.Hour), Actor: "research-office"})
	must(err)
	step()
	_, err = l.Revoke(g1.Grant.ID, "treatment-ended", "admin")
	must(err)
	step()
	if err := l.Check(bob, g1.Grant.ID, studyA, ActionFetch); err != nil {
		record(Entry{Peer: bob, Action: ActFetchDenied, Study: studyA, GrantID: g1.Grant.ID, Decision: DecisionDeny, Reason: err.Error()})
	}
	step()
	if err := l.Check(carol, g2.Grant.ID, studyC, ActionFetch); err != nil {
		record(Entry{Peer: carol, Action: ActFetchDenied, Study: studyC, GrantID: g2.Grant.ID, Decision: DecisionDeny, Reason: err.Error()})
	}
	step()

	// Patient scope (appended, so the entries above keep their hashes): a
	// grant for patient P1 of issuer H covers P1's studies here, not the
	// same number under another issuer, and its entry names no patient.
	l.SetStudyPatient(patients)
	g3, err := l.Grant(GrantRequest{Grantee: bob, Patient: &Patient{ID: "P1", Issuer: "H"}, Purpose: PurposeTreatment, Expires: t0.Add(30 * 24 * time.Hour), Actor: "admin"})
	must(err)
	step()
	for _, study := range []string{studyB, studyC} {
		err := l.Check(bob, g3.Grant.ID, study, ActionFetch)
		e := Entry{Peer: bob, Action: ActFetchAllowed, Study: study, GrantID: g3.Grant.ID, Decision: DecisionAllow}
		if err != nil {
			e.Action, e.Decision, e.Reason = ActFetchDenied, DecisionDeny, string(ReasonOf(err))
		}
		record(e)
		step()
	}
	_, err = l.Revoke(g3.Grant.ID, "consent-withdrawn", "admin")
	must(err)
	step()

	// Access requests and break-glass (appended): bob's request approved
	// into a grant, carol's denied, bob's emergency request granted at once
	// and reviewed; then a signed checkpoint. No entry names the patient.
	r1 := AccessRequest{ID: "11111111111111111111111111111111", User: "u-bob-1", PatientID: "P1", Issuer: "H",
		Purpose: PurposeTreatment, Reason: "referral", Note: "free text, kept out of the chain"}
	_, _, err = NewRequestBook(l).ReceiveRequest(bob, r1, []byte("signed"), BreakGlass{})
	must(err)
	step()
	_, _, err = NewRequestBook(l).DecideRequest(r1.ID, Decision{Approve: true, Expires: clock.Now().Add(72 * time.Hour), Actor: "admin"})
	must(err)
	step()
	r2 := AccessRequest{ID: "22222222222222222222222222222222", User: "u-carol-7", PatientID: "P2",
		Purpose: PurposeSecondOpinion, Reason: "second-opinion"}
	_, _, err = NewRequestBook(l).ReceiveRequest(carol, r2, []byte("signed"), BreakGlass{})
	must(err)
	step()
	_, _, err = NewRequestBook(l).DecideRequest(r2.ID, Decision{Reason: "no-consent", Actor: "admin"})
	must(err)
	step()
	r3 := AccessRequest{ID: "33333333333333333333333333333333", User: "u-bob-1", PatientID: "P1", Issuer: "H",
		Purpose: PurposeTreatment, Reason: "emergency-care", Emergency: true}
	_, _, err = NewRequestBook(l).ReceiveRequest(bob, r3, []byte("signed"), BreakGlass{TTL: 4 * time.Hour})
	must(err)
	step()
	_, err = NewRequestBook(l).ReviewRequest(r3.ID, "not-justified", "admin")
	must(err)
	step()
	_, err = l.Checkpoint("auditor")
	must(err)

	// Secondary serving (appended): dave, another facility, granted studyA
	// to bob and studyB to carol; this node holds dave's copy and checks the
	// grants bob and carol present offline: bob's is served, carol's is
	// out of scope for studyA, and bob's is refused once dave's revocation
	// of it is here.
	dave, err := Open(NewMemStore(), fixedKey(t, 4), clock.Now)
	must(err)
	dave.rand = rand.NewChaCha8([32]byte{7})
	gd, err := dave.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, Expires: clock.Now().Add(72 * time.Hour), Actor: "admin"})
	must(err)
	gc, err := dave.Grant(GrantRequest{Grantee: carol, Studies: []string{studyB}, Purpose: PurposeTreatment, Expires: clock.Now().Add(72 * time.Hour), Actor: "admin"})
	must(err)
	for _, c := range []struct {
		g       *SignedGrant
		who     peer.ID
		revoked bool
	}{{gd, bob, false}, {gc, carol, false}, {gd, bob, true}} {
		must(c.g.Verify())
		e := Entry{Peer: c.who, Action: ActFetchServedSecondary, Study: studyA, GrantID: c.g.Grant.ID, Decision: DecisionAllow, Reason: "for=" + dave.self.String()}
		if err := CheckPresented(c.g, c.who, studyA, "", "", ActionFetch, clock.Now(), c.revoked); err != nil {
			e.Action, e.Decision, e.Reason = ActFetchDeniedSecondary, DecisionDeny, e.Reason+" "+string(ReasonOf(err))
		}
		record(e)
		step()
	}

	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	entries, err := l.Entries(0, MaxEntriesLimit)
	must(err)
	return entries
}

func TestGoldenAuditLog(t *testing.T) {
	run1 := goldenScenario(t)
	run2 := goldenScenario(t)
	if len(run1) != len(run2) {
		t.Fatalf("runs differ in length: %d vs %d", len(run1), len(run2))
	}
	for i := range run1 {
		if run1[i] != run2[i] {
			t.Fatalf("entry %d differs between runs:\n%+v\n%+v", i+1, run1[i], run2[i])
		}
	}

	path := filepath.Join("testdata", "audit.golden.json")
	if *update {
		b, err := json.MarshalIndent(run1, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var want []Entry
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(run1) != len(want) {
		t.Fatalf("%d entries, golden has %d", len(run1), len(want))
	}
	// Fields first, so a behaviour change reads as one; then hashes, which
	// pin the canonical encoding: if they change, every existing log on
	// disk stops verifying.
	for i := range want {
		got, w := run1[i], want[i]
		gotH, wantH := got.Hash, w.Hash
		got.Hash, w.Hash, got.Prev, w.Prev = "", "", "", ""
		if got != w {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i+1, got, w)
			continue
		}
		if gotH != wantH {
			t.Errorf("entry %d: hash %s, golden %s (canonical encoding changed?)", i+1, gotH, wantH)
		}
	}
}
