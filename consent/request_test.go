package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func accessRequest(id string) AccessRequest {
	return AccessRequest{ID: id, User: "u-dr-jones", PatientID: "PAT-001", Issuer: "STMARY", BirthDate: "19700102",
		Purpose: PurposeTreatment, Reason: "continuity-of-care", Note: "Mrs Doe, chest pain, prior CT needed"}
}

const (
	req1 = "0123456789abcdef0123456789abcdef"
	req2 = "fedcba9876543210fedcba9876543210"
)

func TestAccessRequestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*AccessRequest)
		want string
	}{
		{"ok", func(*AccessRequest) {}, ""},
		{"bad id", func(r *AccessRequest) { r.ID = "XYZ" }, "id is not 32"},
		{"no user", func(r *AccessRequest) { r.User = " " }, "user is empty"},
		{"no patient", func(r *AccessRequest) { r.PatientID = "" }, "patient ID is empty"},
		{"control in patient", func(r *AccessRequest) { r.PatientID = "P\x1b[2J" }, "control characters"},
		{"bad birth date", func(r *AccessRequest) { r.BirthDate = "1970-01-02" }, "birth date is not YYYYMMDD"},
		{"impossible birth date", func(r *AccessRequest) { r.BirthDate = "19701302" }, "birth date"},
		{"research", func(r *AccessRequest) { r.Purpose = PurposeResearch }, "refused until de-identification"},
		{"unknown purpose", func(r *AccessRequest) { r.Purpose = "curiosity" }, "unknown purpose"},
		{"free-text reason", func(r *AccessRequest) { r.Reason = "she is my neighbour" }, "reason must be one of"},
		{"long note", func(r *AccessRequest) { r.Note = strings.Repeat("x", 1025) }, "note: longer than 1024"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := accessRequest(req1)
			tc.edit(&r)
			err := r.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRequestLifecycle(t *testing.T) {
	clock := newClock()
	s := NewMemStore()
	l := newLedger(t, s, clock)
	bob := peerOf(t, fixedKey(t, 2))
	carol := peerOf(t, fixedKey(t, 3))

	// Received: pending, audited without the patient or the note; the
	// note is kept beside the chain.
	in, g, err := NewRequestBook(l).ReceiveRequest(bob, accessRequest(req1), []byte("signed bytes"), BreakGlass{})
	if err != nil || g != nil || in.Status.State != RequestPending || in.Request.Note != "" || in.From != bob {
		t.Fatalf("receive: %+v, %v, %v", in, g, err)
	}
	if note, _ := NewRequestBook(l).RequestNote(req1); note != "Mrs Doe, chest pain, prior CT needed" {
		t.Fatalf("note: %q", note)
	}
	es, _ := l.Entries(0, 0)
	last := es[len(es)-1]
	if last.Action != ActAccessRequested || last.Peer != bob ||
		last.Reason != "request="+req1+" user=u-dr-jones purpose=treatment reason=continuity-of-care" {
		t.Fatalf("entry: %+v", last)
	}
	for _, e := range es {
		if strings.Contains(e.Reason, "PAT-001") || strings.Contains(e.Reason, "Doe") {
			t.Fatalf("patient data in the chain: %+v", e)
		}
	}
	// The same request again: its status, nothing written. Another
	// partner reusing the ID: refused.
	head := l.Head()
	if again, _, err := NewRequestBook(l).ReceiveRequest(bob, accessRequest(req1), nil, BreakGlass{}); err != nil || again.Status.State != RequestPending || l.Head() != head {
		t.Fatalf("again: %+v, %v", again, err)
	}
	if _, _, err := NewRequestBook(l).ReceiveRequest(carol, accessRequest(req1), nil, BreakGlass{}); !errors.Is(err, ErrRequestExists) {
		t.Fatalf("reused ID: %v", err)
	}

	// Approve: a patient grant to the requesting user.
	clock.Advance(time.Minute)
	if _, _, err := NewRequestBook(l).DecideRequest(req1, Decision{Approve: true, Expires: clock.Now().Add(72 * time.Hour), Reason: "policy"}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("approve with a reason: %v", err)
	}
	in, g, err = NewRequestBook(l).DecideRequest(req1, Decision{Approve: true, Expires: clock.Now().Add(72 * time.Hour), Actor: "u-admin"})
	if err != nil || g == nil || in.Status.State != RequestApproved || in.Status.GrantID != g.Grant.ID || in.DecidedBy != "u-admin" {
		t.Fatalf("approve: %+v, %v, %v", in, g, err)
	}
	if g.Grant.Patient == nil || g.Grant.Patient.ID != "PAT-001" || g.Grant.Patient.Issuer != "STMARY" || g.Grant.GranteeUser != "u-dr-jones" ||
		g.Grant.Grantee != bob || g.Grant.Emergency || g.Verify() != nil {
		t.Fatalf("grant: %+v", g.Grant)
	}
	if st, ok := l.Get(g.Grant.ID); !ok || st.State != StateActive {
		t.Fatalf("grant not live: %+v", st)
	}
	if _, _, err := NewRequestBook(l).DecideRequest(req1, Decision{Reason: "policy"}); !errors.Is(err, ErrRequestDecided) {
		t.Fatalf("decide twice: %v", err)
	}

	// Deny, narrowed approval.
	r2 := accessRequest(req2)
	r2.Note = ""
	NewRequestBook(l).ReceiveRequest(bob, r2, nil, BreakGlass{})
	if _, _, err := NewRequestBook(l).DecideRequest(req2, Decision{Reason: "because"}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("deny with free text: %v", err)
	}
	in, g, err = NewRequestBook(l).DecideRequest(req2, Decision{Reason: "no-consent", Actor: "u-admin"})
	if err != nil || g != nil || in.Status.State != RequestDenied || in.Status.Reason != "no-consent" {
		t.Fatalf("deny: %+v, %v", in, err)
	}
	r3 := accessRequest("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	NewRequestBook(l).ReceiveRequest(carol, r3, nil, BreakGlass{})
	_, g, err = NewRequestBook(l).DecideRequest(r3.ID, Decision{Approve: true, Expires: clock.Now().Add(time.Hour), Studies: []string{studyA}})
	if err != nil || g.Grant.Patient != nil || len(g.Grant.Studies) != 1 {
		t.Fatalf("narrowed: %+v, %v", g, err)
	}
	if _, _, err := NewRequestBook(l).DecideRequest("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Decision{Reason: "policy"}); !errors.Is(err, ErrNoRequest) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := NewRequestBook(l).ReviewRequest(req1, "justified", "u-admin"); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("review of an ordinary request: %v", err)
	}

	// Erasing the note drops the signed copy but keeps its digest.
	if err := NewRequestBook(l).EraseRequestNote(req1); err != nil {
		t.Fatal(err)
	}
	if note, _ := NewRequestBook(l).RequestNote(req1); note != "" {
		t.Fatalf("note after erase: %q", note)
	}
	if r, _ := NewRequestBook(l).Request(req1); r.Signed != nil || len(r.SignedSHA256) != 64 {
		t.Fatalf("after erase: %+v", r)
	}
	list, err := NewRequestBook(l).Requests()
	if err != nil || len(list) != 3 || list[len(list)-1].Request.ID != req1 {
		t.Fatalf("requests: %d, %v", len(list), err)
	}
	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestBreakGlass(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	r := accessRequest(req1)
	r.Emergency, r.Reason = true, "emergency-care"

	// Off for this partner: an emergency request waits like any other.
	in, g, err := NewRequestBook(l).ReceiveRequest(bob, r, nil, BreakGlass{})
	if err != nil || g != nil || in.Status.State != RequestPending || !in.Status.Emergency {
		t.Fatalf("break-glass off: %+v, %v", in, err)
	}
	if _, err := NewRequestBook(l).ReviewRequest(req1, "justified", "u-admin"); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("review of a waiting emergency request: %v", err)
	}

	// On: granted at once, short, to the user, marked emergency.
	r.ID = req2
	in, g, err = NewRequestBook(l).ReceiveRequest(bob, r, nil, BreakGlass{TTL: 4 * time.Hour})
	if err != nil || g == nil || in.Status.State != RequestApproved || !g.Grant.Emergency || in.DecidedBy != ActorSystem ||
		!g.Grant.Expires.Equal(clock.Now().UTC().Add(4*time.Hour)) || g.Grant.GranteeUser != "u-dr-jones" {
		t.Fatalf("break-glass: %+v, %+v, %v", in, g, err)
	}
	es, _ := l.Entries(0, 0)
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "access-requested,access-requested,emergency-access,grant" {
		t.Fatalf("entries: %s", got)
	}
	if !strings.HasSuffix(es[3].Reason, " emergency") {
		t.Fatalf("grant entry: %+v", es[3])
	}
	if _, err := NewRequestBook(l).ReviewRequest(req2, "fine", "u-admin"); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("unknown outcome: %v", err)
	}
	in, err = NewRequestBook(l).ReviewRequest(req2, "not-justified", "u-admin")
	if err != nil || in.Review != "not-justified" || in.ReviewedBy != "u-admin" {
		t.Fatalf("review: %+v, %v", in, err)
	}
	if _, err := NewRequestBook(l).ReviewRequest(req2, "justified", "u-admin"); !errors.Is(err, ErrRequestDecided) {
		t.Fatalf("review twice: %v", err)
	}
	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}

// FuzzAccessRequest feeds arbitrary request bodies through the strict
// decoding and validation a holder applies to a partner's request.
func FuzzAccessRequest(f *testing.F) {
	b, _ := json.Marshal(accessRequest(req1))
	f.Add(b)
	f.Add([]byte(`{"id":"x","emergency":true}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var r AccessRequest
		if dec.Decode(&r) != nil {
			return
		}
		if err := r.Validate(); err == nil {
			if len(r.Note) > maxNoteLen || !validID(r.ID) || r.Purpose == PurposeResearch {
				t.Fatalf("an invalid request was accepted: %+v", r)
			}
		} else if !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("refusal does not wrap ErrInvalidRequest: %v", err)
		}
	})
}
