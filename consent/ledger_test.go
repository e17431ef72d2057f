package consent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/crypto"
)

func TestCheck(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	carol := peerOf(t, fixedKey(t, 3))

	grant := func(nb, exp time.Time) string {
		t.Helper()
		g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA, studyB}, Purpose: PurposeTreatment, NotBefore: nb, Expires: exp, Actor: "admin"})
		if err != nil {
			t.Fatalf("Grant: %v", err)
		}
		return g.Grant.ID
	}
	day := 24 * time.Hour
	active := grant(time.Time{}, t0.Add(30*day))
	pending := grant(t0.Add(2*day), t0.Add(30*day))
	short := grant(time.Time{}, t0.Add(time.Hour))
	revoked := grant(time.Time{}, t0.Add(30*day))
	if _, err := l.Revoke(revoked, "consent-withdrawn", "admin"); err != nil {
		t.Fatal(err)
	}

	// A grant present in the store but issued by someone else: Check must
	// refuse it even though it is in memory.
	foreign := "0123456789abcdef0123456789abcdef"
	l.st.grants[foreign] = newGrantRec(SignedGrant{Grant: Grant{ID: foreign, Issuer: carol, Grantee: bob, Studies: []string{studyA}, Actions: []string{ActionFetch}, NotBefore: t0, Expires: t0.Add(day)}})

	tests := []struct {
		name    string
		at      time.Time
		grantee peer.ID
		grant   string
		study   string
		action  string
		want    error
	}{
		{"allowed", t0, bob, active, studyA, ActionFetch, nil},
		{"allowed second study", t0, bob, active, studyB, ActionFetch, nil},
		{"unknown grant", t0, bob, "ffffffffffffffffffffffffffffffff", studyA, ActionFetch, ErrNoGrant},
		{"malformed grant id", t0, bob, "../../etc/passwd", studyA, ActionFetch, ErrNoGrant},
		{"empty grant id", t0, bob, "", studyA, ActionFetch, ErrNoGrant},
		{"not issued by us", t0, bob, foreign, studyA, ActionFetch, ErrNoGrant},
		{"wrong grantee", t0, carol, active, studyA, ActionFetch, ErrWrongGrantee},
		{"empty grantee", t0, "", active, studyA, ActionFetch, ErrWrongGrantee},
		{"study out of scope", t0, bob, active, studyC, ActionFetch, ErrOutOfScope},
		{"study prefix out of scope", t0, bob, active, studyA[:len(studyA)-1], ActionFetch, ErrOutOfScope},
		{"action not granted", t0, bob, active, studyA, "delete", ErrActionNotGranted},
		{"pending", t0, bob, pending, studyA, ActionFetch, ErrNotYetValid},
		{"pending one ns early", t0.Add(2*day - 1), bob, pending, studyA, ActionFetch, ErrNotYetValid},
		{"valid exactly at not-before", t0.Add(2 * day), bob, pending, studyA, ActionFetch, nil},
		{"valid one ns before expiry", t0.Add(time.Hour - 1), bob, short, studyA, ActionFetch, nil},
		{"expired exactly at expiry", t0.Add(time.Hour), bob, short, studyA, ActionFetch, ErrExpired},
		{"expired later", t0.Add(40 * day), bob, active, studyA, ActionFetch, ErrExpired},
		{"revoked", t0, bob, revoked, studyA, ActionFetch, ErrRevoked},
		{"revoked wins over expired", t0.Add(40 * day), bob, revoked, studyA, ActionFetch, ErrRevoked},
		{"wrong grantee wins over revoked", t0, carol, revoked, studyA, ActionFetch, ErrWrongGrantee},
	}
	sentinels := []error{ErrNoGrant, ErrWrongGrantee, ErrOutOfScope, ErrExpired, ErrNotYetValid, ErrRevoked, ErrActionNotGranted}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.Set(tt.at)
			err := l.Check(tt.grantee, tt.grant, tt.study, tt.action)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) {
					t.Errorf("error also matches %v", s)
				}
			}
			if strings.Contains(err.Error(), "1.2.826") || strings.Contains(err.Error(), "passwd") {
				t.Errorf("error leaks request data: %v", err)
			}
		})
	}
}

func TestCheckDoesNotAllocateWhenAllowed(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := l.Check(bob, g.Grant.ID, studyA, ActionFetch); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Check allocates %v times per allowed call", allocs)
	}
}

// A study whose UID has letters (a hex digest some archives use) is stored
// with a warning; it can be granted, and the grant verifies.
func TestGrantStudyUIDWithLetters(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	hex := "dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed"
	g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{hex}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(bob, g.Grant.ID, hex, ActionFetch); err != nil {
		t.Fatal(err)
	}
}

func TestGrantValidation(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	valid := GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeSecondOpinion, Expires: t0.Add(time.Hour), Actor: "admin"}
	tests := []struct {
		name   string
		mutate func(r *GrantRequest)
	}{
		{"no studies", func(r *GrantRequest) { r.Studies = nil }},
		{"empty study list", func(r *GrantRequest) { r.Studies = []string{} }},
		{"empty study UID", func(r *GrantRequest) { r.Studies = []string{""} }},
		{"study with a slash", func(r *GrantRequest) { r.Studies = []string{"1.2/3"} }},
		{"study dot-dot", func(r *GrantRequest) { r.Studies = []string{".."} }},
		{"study with empty component", func(r *GrantRequest) { r.Studies = []string{"1..2"} }},
		{"study too long", func(r *GrantRequest) { r.Studies = []string{strings.Repeat("1", 65)} }},
		{"too many studies", func(r *GrantRequest) {
			r.Studies = nil
			for i := range MaxStudiesPerGrant + 1 {
				r.Studies = append(r.Studies, "1.2."+strings.Repeat("9", 1+i/10)+"."+string(rune('0'+i%10)))
			}
		}},
		{"expiry in the past", func(r *GrantRequest) { r.Expires = t0.Add(-time.Second) }},
		{"expiry now", func(r *GrantRequest) { r.Expires = t0 }},
		{"no expiry", func(r *GrantRequest) { r.Expires = time.Time{} }},
		{"expiry before not-before", func(r *GrantRequest) { r.NotBefore = t0.Add(2 * time.Hour) }},
		{"expiry equals not-before", func(r *GrantRequest) { r.NotBefore = r.Expires }},
		{"expiry beyond year 9999", func(r *GrantRequest) { r.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"grantee is issuer", func(r *GrantRequest) { r.Grantee = l.Self() }},
		{"no grantee", func(r *GrantRequest) { r.Grantee = "" }},
		{"garbage grantee", func(r *GrantRequest) { r.Grantee = peer.ID("garbage") }},
		{"non-Ed25519 grantee", func(r *GrantRequest) { r.Grantee = ecdsaPeer(t) }},
		{"bad purpose", func(r *GrantRequest) { r.Purpose = "marketing" }},
		{"empty purpose", func(r *GrantRequest) { r.Purpose = "" }},
		{"grantee user with newline", func(r *GrantRequest) { r.GranteeUser = "dr\nevil" }},
		{"actor too long", func(r *GrantRequest) { r.Actor = strings.Repeat("a", 300) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := valid
			tt.mutate(&req)
			before, _ := l.Entries(0, 0)
			_, err := l.Grant(req)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
			if strings.Contains(err.Error(), "1.2.") {
				t.Errorf("error quotes a study UID: %v", err)
			}
			after, _ := l.Entries(0, 0)
			if len(l.Grants()) != 0 || len(after) != len(before) {
				t.Fatal("a refused grant changed the ledger")
			}
		})
	}
	t.Run("valid request succeeds", func(t *testing.T) {
		req := valid
		req.Studies = []string{studyA, studyB, studyA} // duplicates are dropped
		g, err := l.Grant(req)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Grant.Studies) != 2 || g.Grant.NotBefore != t0 || g.Grant.Created != t0 || g.Grant.Issuer != l.Self() {
			t.Fatalf("unexpected grant %+v", g.Grant)
		}
		if len(g.Grant.ID) != 32 || !validID(g.Grant.ID) {
			t.Fatalf("grant ID %q", g.Grant.ID)
		}
	})
}

func TestSignedGrantVerify(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeResearch, Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// As the grantee sees it: JSON on the wire.
	wire, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var got SignedGrant
	if err := json.Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("Verify after a JSON round trip: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(g *SignedGrant)
	}{
		{"extra study", func(g *SignedGrant) { g.Grant.Studies = append(g.Grant.Studies, studyB) }},
		{"later expiry", func(g *SignedGrant) { g.Grant.Expires = g.Grant.Expires.Add(time.Second) }},
		{"other grantee", func(g *SignedGrant) { g.Grant.Grantee = peerOf(t, fixedKey(t, 3)) }},
		{"other purpose", func(g *SignedGrant) { g.Grant.Purpose = PurposeTreatment }},
		{"other issuer", func(g *SignedGrant) { g.Grant.Issuer = peerOf(t, fixedKey(t, 3)) }},
		{"truncated sig", func(g *SignedGrant) { g.Sig = g.Sig[:10] }},
		{"signed as a revocation", func(g *SignedGrant) {
			msg, _ := json.Marshal(&g.Grant)
			g.Sig, _ = crypto.Sign(fixedKey(t, 1), crypto.DomainRevocation, msg)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := got.clone()
			tt.mutate(c)
			if err := c.Verify(); err == nil {
				t.Fatal("tampered grant verified")
			}
		})
	}

	rv, err := l.Revoke(g.Grant.ID, "sent-in-error", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if err := rv.Verify(); err != nil {
		t.Fatalf("revocation Verify: %v", err)
	}
	c := rv.clone()
	c.Revocation.GrantID = strings.Repeat("0", 32)
	if err := c.Verify(); !errors.Is(err, crypto.ErrBadSignature) {
		t.Fatalf("tampered revocation: err = %v, want ErrBadSignature", err)
	}
}

func TestRevoke(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, reason string
		want             []error
	}{
		{"unknown grant", "ffffffffffffffffffffffffffffffff", "", []error{ErrInvalidRequest, ErrNoGrant}},
		{"reason with control characters", g.Grant.ID, "a\x00b", []error{ErrInvalidRequest}},
		{"reason too long", g.Grant.ID, strings.Repeat("x", 1025), []error{ErrInvalidRequest}},
		// Reasons are codes: a sentence could name a patient, and the
		// audit log keeps it for good.
		{"free-text reason", g.Grant.ID, "patient withdrew consent, MRN 12345", []error{ErrInvalidRequest}},
		{"first revocation", g.Grant.ID, "treatment-ended", nil},
		{"second revocation", g.Grant.ID, "again", []error{ErrInvalidRequest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Revoke(tt.id, tt.reason, "admin")
			if tt.want == nil && err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Fatalf("err = %v, want %v", err, w)
				}
			}
		})
	}
	st, ok := l.Get(g.Grant.ID)
	if !ok || st.State != StateRevoked || st.Revocation == nil || st.Revocation.Revocation.Reason != "treatment-ended" {
		t.Fatalf("after revoke: %+v", st)
	}
}

func TestGrantStates(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	carol := peerOf(t, fixedKey(t, 3))
	mk := func(who peer.ID, nb time.Time, exp time.Duration) string {
		t.Helper()
		g, err := l.Grant(GrantRequest{Grantee: who, Studies: []string{studyA}, Purpose: PurposeTreatment, NotBefore: nb, Expires: t0.Add(exp)})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second) // distinct Created
		return g.Grant.ID
	}
	a := mk(bob, time.Time{}, time.Hour)
	p := mk(bob, t0.Add(30*time.Minute), time.Hour)
	c := mk(carol, time.Time{}, time.Hour)
	r := mk(bob, time.Time{}, time.Hour)
	e := mk(bob, time.Time{}, time.Hour+10*time.Second)
	if _, err := l.Revoke(r, "", ""); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(time.Minute))
	want := map[string]State{a: StateActive, p: StatePending, c: StateActive, r: StateRevoked, e: StateActive}
	all := l.Grants()
	if len(all) != 5 {
		t.Fatalf("%d grants", len(all))
	}
	for i, st := range all {
		if st.State != want[st.Grant.ID] {
			t.Errorf("grant %s: state %s, want %s", st.Grant.ID, st.State, want[st.Grant.ID])
		}
		if i > 0 && all[i-1].Grant.Created.After(st.Grant.Created) {
			t.Error("Grants not sorted by Created")
		}
	}
	ids := func(s []GrantStatus) (out []string) {
		for _, g := range s {
			out = append(out, g.Grant.ID)
		}
		return out
	}
	if got := ids(l.GrantsFor(bob)); strings.Join(got, ",") != strings.Join([]string{a, e}, ",") {
		t.Errorf("GrantsFor(bob) = %v, want [%s %s]", got, a, e)
	}
	// Boundaries: valid from NotBefore inclusive to Expires exclusive.
	clock.Set(t0.Add(30 * time.Minute))
	if st, _ := l.Get(p); st.State != StateActive {
		t.Errorf("at not-before: state %s, want active", st.State)
	}
	clock.Set(t0.Add(time.Hour - 1))
	if st, _ := l.Get(a); st.State != StateActive {
		t.Errorf("just before expiry: state %s, want active", st.State)
	}
	clock.Set(t0.Add(time.Hour))
	if st, _ := l.Get(a); st.State != StateExpired {
		t.Errorf("at expiry: state %s, want expired", st.State)
	}
	clock.Set(t0.Add(time.Hour + 5*time.Second))
	if got := ids(l.GrantsFor(bob)); strings.Join(got, ",") != e {
		t.Errorf("after expiry GrantsFor(bob) = %v, want [%s]", got, e)
	}
	if st, _ := l.Get(a); st.State != StateExpired {
		t.Errorf("state %s, want expired", st.State)
	}
	// Returned statuses are copies.
	all[0].Grant.Studies[0] = "9.9.9"
	if st, _ := l.Get(all[0].Grant.ID); st.Grant.Studies[0] != studyA {
		t.Error("changing a returned GrantStatus changed the ledger")
	}
}

func TestReopen(t *testing.T) {
	clock := newClock()
	store := NewMemStore()
	l := newLedger(t, store, clock)
	bob := peerOf(t, fixedKey(t, 2))
	g1, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour), Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyB}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour), Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Revoke(g2.Grant.ID, "sent-in-error", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(Entry{Action: ActFetchAllowed, Peer: bob, Study: studyA, GrantID: g1.Grant.ID, Decision: DecisionAllow}); err != nil {
		t.Fatal(err)
	}
	res1, err := l.Verify()
	if err != nil {
		t.Fatal(err)
	}

	l2 := newLedger(t, store, clock)
	if got, want := l2.Grants(), l.Grants(); len(got) != len(want) {
		t.Fatalf("reopened: %d grants, want %d", len(got), len(want))
	}
	if err := l2.Check(bob, g1.Grant.ID, studyA, ActionFetch); err != nil {
		t.Errorf("reopened: active grant refused: %v", err)
	}
	if err := l2.Check(bob, g2.Grant.ID, studyB, ActionFetch); !errors.Is(err, ErrRevoked) {
		t.Errorf("reopened: revoked grant: err = %v, want ErrRevoked", err)
	}
	if _, err := l2.Revoke(g2.Grant.ID, "", ""); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("reopened: second revocation allowed: %v", err)
	}
	if l2.st.head != l.st.head {
		t.Fatalf("reopened head %+v, want %+v", l2.st.head, l.st.head)
	}
	e, err := l2.Record(Entry{Action: ActExport, Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != res1.Entries+1 || e.Prev != res1.Head {
		t.Fatalf("append after reopen: seq %d prev %s, want %d %s", e.Seq, e.Prev, res1.Entries+1, res1.Head)
	}
	res2, err := l2.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if res2.Entries != 5 || res2.Head != e.Hash {
		t.Fatalf("Verify after reopen: %+v", res2)
	}
}

func TestOpenRefusesBadStore(t *testing.T) {
	clock := newClock()
	bob := peerOf(t, fixedKey(t, 2))
	build := func() *MemStore {
		s := NewMemStore()
		l := newLedger(t, s, clock)
		g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Revoke(g.Grant.ID, "", ""); err != nil {
			t.Fatal(err)
		}
		return s
	}
	firstKey := func(s *MemStore, prefix string) string {
		for _, k := range s.keys {
			if strings.HasPrefix(k, prefix) {
				return k
			}
		}
		t.Fatalf("no key with prefix %s", prefix)
		return ""
	}
	tests := []struct {
		name   string
		tamper func(s *MemStore)
	}{
		{"grant edited", func(s *MemStore) {
			k := firstKey(s, grantPrefix)
			v := strings.Replace(string(s.m[k]), `"second-opinion"`, `"treatment"`, 1)
			v = strings.Replace(v, `"treatment"`, `"second-opinion"`, 1)
			s.Commit([]KV{{Key: []byte(k), Value: []byte(v)}})
		}},
		{"grant undecodable", func(s *MemStore) { s.Commit([]KV{{Key: []byte(firstKey(s, grantPrefix)), Value: []byte("{")}}) }},
		{"revocation without grant", func(s *MemStore) { s.delete(firstKey(s, grantPrefix)) }},
		{"head record missing", func(s *MemStore) { s.delete(headKey) }},
		{"last entry missing", func(s *MemStore) { s.delete(string(auditKey(2))) }},
		{"entry beyond head", func(s *MemStore) {
			s.Commit([]KV{{Key: auditKey(3), Value: s.m[string(auditKey(2))]}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := build()
			if _, err := Open(s, fixedKey(t, 1), clock.Now); err != nil {
				t.Fatalf("untampered store refused: %v", err)
			}
			tt.tamper(s)
			if _, err := Open(s, fixedKey(t, 1), clock.Now); err == nil {
				t.Fatal("tampered store opened")
			}
		})
	}
	t.Run("grants of another node", func(t *testing.T) {
		s := build()
		if _, err := Open(s, fixedKey(t, 9), clock.Now); err == nil {
			t.Fatal("opened another node's ledger")
		}
	})
}
