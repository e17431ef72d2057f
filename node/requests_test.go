package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
)

func sendRequest(t *testing.T, n *tnode, req api.AccessRequestCreate) api.AccessRequest {
	t.Helper()
	b, _ := json.Marshal(req)
	var out api.AccessRequest
	if code := apiCall(t, n, "POST", "/api/v1/requests", b, &out); code != http.StatusOK {
		t.Fatalf("send request: %d %+v", code, out)
	}
	return out
}

func incoming(t *testing.T, n *tnode, id string) api.AccessRequest {
	t.Helper()
	return requestIn(t, n, "/api/v1/requests/incoming", id)
}

func outgoing(t *testing.T, n *tnode, id string) api.AccessRequest {
	t.Helper()
	return requestIn(t, n, "/api/v1/requests", id)
}

// requestIn finds request id in the list a GET of path answers.
func requestIn(t *testing.T, n *tnode, path, id string) api.AccessRequest {
	t.Helper()
	var list []api.AccessRequest
	apiCall(t, n, "GET", path, nil, &list)
	for _, r := range list {
		if r.RequestID == id {
			return r
		}
	}
	t.Fatalf("%s has no request %s in %s", n.name, id, path)
	return api.AccessRequest{}
}

// Access requests end to end between real nodes (issue 8): request →
// approve → manifest → fetch; request → deny; emergency → break-glass
// grant at once → review; an emergency request where break-glass is off
// waits; replayed, forged and misaddressed messages are refused and
// audited.
func TestAccessRequests(t *testing.T) {
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.Requests.EmergencyPartners = []string{"Bravo"} }})
	b, c := newNode(t, "Bravo"), newNode(t, "Charlie")
	link(t, a, b)
	link(t, a, c)
	study, files := patientCT(t, 61, 2, "PAT-7")
	importFiles(t, a, files)

	// Request → approve → manifest → fetch.
	r := sendRequest(t, b, api.AccessRequestCreate{To: "Alpha", PatientID: "PAT-7", BirthDate: "19700102",
		Purpose: "treatment", Reason: "continuity-of-care", Note: "chest pain, prior CT please"})
	if r.State != api.RequestPending || r.Holder == nil || r.Holder.Name != "Alpha" || r.User != "admin" {
		t.Fatalf("sent: %+v", r)
	}
	in := incoming(t, a, r.RequestID)
	if in.State != api.RequestPending || in.Requester.Name != "Bravo" || in.Note != "chest pain, prior CT please" ||
		in.Studies != 1 || in.PatientID != "PAT-7" || in.BirthDate != "19700102" {
		t.Fatalf("incoming: %+v", in)
	}
	b2, _ := json.Marshal(api.ApproveRequest{Expires: "2h"})
	var ap api.AccessRequest
	if code := apiCall(t, a, "POST", "/api/v1/requests/incoming/"+r.RequestID[:10]+"/approve", b2, &ap); code != http.StatusOK ||
		ap.State != api.RequestApproved || ap.GrantID == "" {
		t.Fatalf("approve: %d %+v", code, ap)
	}
	if code := apiCall(t, a, "POST", "/api/v1/requests/incoming/"+r.RequestID+"/approve", b2, nil); code != http.StatusConflict {
		t.Errorf("approve twice: %d", code)
	}
	if got := outgoing(t, b, r.RequestID); got.State != api.RequestApproved || got.GrantID != ap.GrantID || got.Expires == nil {
		t.Fatalf("the requester's view: %+v", got)
	}
	waitShared(t, b, a, study, SharedAvailable, 1, 20*time.Second)
	if st := fetchWait(t, b, study, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch: %+v", st)
	}
	for _, e := range auditLog(t, a) {
		if strings.Contains(e.Reason, "PAT-7") || strings.Contains(e.Reason, "chest") {
			t.Errorf("patient data in the holder's chain: %+v", e)
		}
	}
	requireAudit(t, a, consent.Entry{Action: consent.ActRequestApproved, GrantID: ap.GrantID})
	requireAudit(t, b, consent.Entry{Action: api.ActRequestSent, Reason: "request=" + r.RequestID + " purpose=treatment reason=continuity-of-care"})

	// Request → deny.
	r2 := sendRequest(t, c, api.AccessRequestCreate{To: "Alpha", PatientID: "PAT-7", Purpose: "second-opinion", Reason: "second-opinion"})
	bd, _ := json.Marshal(api.DenyRequest{Reason: "because I say so"})
	if code := apiCall(t, a, "POST", "/api/v1/requests/incoming/"+r2.RequestID+"/deny", bd, nil); code != http.StatusBadRequest {
		t.Errorf("deny with free text: %d", code)
	}
	bd, _ = json.Marshal(api.DenyRequest{Reason: "no-consent"})
	if code := apiCall(t, a, "POST", "/api/v1/requests/incoming/"+r2.RequestID+"/deny", bd, nil); code != http.StatusOK {
		t.Fatalf("deny: %d", code)
	}
	if got := outgoing(t, c, r2.RequestID); got.State != api.RequestDenied || got.DenyReason != "no-consent" {
		t.Fatalf("denied, as the requester sees it: %+v", got)
	}

	// Emergency from Bravo (break-glass on): granted at once, reviewed.
	r3 := sendRequest(t, b, api.AccessRequestCreate{To: "Alpha", PatientID: "PAT-7", Purpose: "treatment", Reason: "emergency-care", Emergency: true})
	if r3.State != api.RequestApproved || !r3.Emergency || r3.GrantID == "" || r3.Expires == nil ||
		r3.Expires.Sub(time.Now()) > 4*time.Hour || r3.Expires.Sub(time.Now()) < 3*time.Hour {
		t.Fatalf("break-glass: %+v", r3)
	}
	if g, ok := a.ledger.Get(r3.GrantID); !ok || !g.Grant.Emergency || g.Grant.GranteeUser != "admin" {
		t.Fatalf("break-glass grant: %+v", g)
	}
	var st api.Status
	apiCall(t, a, "GET", "/api/v1/status", nil, &st)
	if st.EmergencyToReview != 1 {
		t.Errorf("status before the review: %d emergency accesses to review", st.EmergencyToReview)
	}
	br, _ := json.Marshal(api.ReviewRequest{Outcome: "justified"})
	var rv api.AccessRequest
	if code := apiCall(t, a, "POST", "/api/v1/requests/incoming/"+r3.RequestID+"/review", br, &rv); code != http.StatusOK ||
		rv.Review != "justified" || rv.ReviewedBy != "admin" || rv.DecidedBy != "system" {
		t.Fatalf("review: %d %+v", code, rv)
	}
	requireAudit(t, a, consent.Entry{Action: consent.ActEmergencyAccess, GrantID: r3.GrantID})
	requireAudit(t, a, consent.Entry{Action: consent.ActEmergencyReviewed, GrantID: r3.GrantID})

	apiCall(t, a, "GET", "/api/v1/status", nil, &st)
	if st.RequestsPending != 0 || st.EmergencyToReview != 0 {
		t.Errorf("status after the decisions: %d pending, %d to review", st.RequestsPending, st.EmergencyToReview)
	}
	// Emergency from Charlie (break-glass off): it waits for an admin.
	r4 := sendRequest(t, c, api.AccessRequestCreate{To: "Alpha", PatientID: "PAT-7", Purpose: "treatment", Reason: "emergency-care", Emergency: true})
	if r4.State != api.RequestPending || !r4.Emergency {
		t.Fatalf("emergency without break-glass: %+v", r4)
	}
	apiCall(t, a, "GET", "/api/v1/status", nil, &st)
	if st.RequestsPending != 1 {
		t.Errorf("status with one request waiting: %d pending", st.RequestsPending)
	}

	// Bad requests never reach the holder.
	for name, req := range map[string]api.AccessRequestCreate{
		"research":       {To: "Alpha", PatientID: "PAT-7", Purpose: "research-deidentified", Reason: "referral"},
		"free reason":    {To: "Alpha", PatientID: "PAT-7", Reason: "curious"},
		"no patient":     {To: "Alpha", Reason: "referral"},
		"unknown holder": {To: "Nobody", PatientID: "PAT-7", Reason: "referral"},
	} {
		body, _ := json.Marshal(req)
		if code, ans := apiRaw(t, b, "POST", "/api/v1/requests", "Bearer "+b.keys.apiToken, body); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, code, ans)
		}
	}

	// The wire: a replayed message, one addressed to another facility and
	// one signed by another than the sender are refused.
	ctx := context.Background()
	msg, _, err := wire.SealAsk(b.keys.id.Sign, a.host.ID(), wire.KindRequestStatus, "", wire.RequestRef{ID: r.RequestID}, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ex.Ask(ctx, a.host.ID(), msg); err != nil {
		t.Fatalf("first ask: %v", err)
	}
	if _, err := b.ex.Ask(ctx, a.host.ID(), msg); !errors.Is(err, exchange.ErrBadRequest) {
		t.Errorf("replayed ask: %v, want bad request", err)
	}
	misaddressed, _, _ := wire.SealAsk(b.keys.id.Sign, c.host.ID(), wire.KindRequestStatus, "", wire.RequestRef{ID: r.RequestID}, time.Now(), time.Minute)
	if _, err := b.ex.Ask(ctx, a.host.ID(), misaddressed); !errors.Is(err, exchange.ErrBadRequest) {
		t.Errorf("misaddressed ask: %v", err)
	}
	forged, _, _ := wire.SealAsk(c.keys.id.Sign, a.host.ID(), wire.KindRequestStatus, "", wire.RequestRef{ID: r.RequestID}, time.Now(), time.Minute)
	if _, err := b.ex.Ask(ctx, a.host.ID(), forged); !errors.Is(err, exchange.ErrBadRequest) {
		t.Errorf("ask signed by another: %v", err)
	}
	// Charlie cannot learn the state of Bravo's request.
	other, _, _ := wire.SealAsk(c.keys.id.Sign, a.host.ID(), wire.KindRequestStatus, "", wire.RequestRef{ID: r.RequestID}, time.Now(), time.Minute)
	if _, err := c.ex.Ask(ctx, a.host.ID(), other); !errors.Is(err, exchange.ErrNotFound) {
		t.Errorf("status of another partner's request: %v, want not found", err)
	}
	a.audit.flushDenials(true)
	requireAudit(t, a, consent.Entry{Action: api.ActAskRefused, Peer: b.host.ID(), Reason: "replay"})
	requireAudit(t, a, consent.Entry{Action: api.ActAskRefused, Peer: b.host.ID(), Reason: "malformed"})
}

func searchPatient(t *testing.T, n *tnode, q api.PatientSearch) []api.PatientSearchResult {
	t.Helper()
	b, _ := json.Marshal(q)
	var out []api.PatientSearchResult
	if code := apiCall(t, n, "POST", "/api/v1/search", b, &out); code != http.StatusOK {
		t.Fatalf("search: %d", code)
	}
	return out
}

// Federated patient search (issue 8): a partner the holder's policy names
// gets the patient's studies (date, modality, description, count, UID and
// nothing else); a partner it does not name, and a patient it does not
// hold, get the same empty answer; both sides audit every query without
// naming the patient; queries are rate-limited per partner.
func TestPatientSearch(t *testing.T) {
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.Requests.QueryPartners = []string{"Bravo"} }})
	b, c := newNode(t, "Bravo"), newNode(t, "Charlie")
	link(t, a, b)
	link(t, a, c)
	link(t, b, c)
	s1, files := patientCT(t, 71, 1, "PAT-8")
	importFiles(t, a, files)
	s2, files := patientCT(t, 72, 2, "PAT-8")
	importFiles(t, a, files)
	_, files = patientCT(t, 73, 1, "PAT-9")
	importFiles(t, a, files)
	if _, err := a.Grant(context.Background(), GrantRequest{To: "Bravo", Study: s2, Expires: time.Hour, Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, s2, SharedAvailable, 1, 20*time.Second)

	res := searchPatient(t, b, api.PatientSearch{PatientID: "PAT-8", Partners: []string{"Alpha"}})
	if len(res) != 1 || res[0].Error != "" || len(res[0].Studies) != 2 || res[0].Holder.Name != "Alpha" {
		t.Fatalf("search: %+v", res)
	}
	found := map[string]api.FoundStudy{}
	for _, f := range res[0].Studies {
		found[f.StudyUID] = f
	}
	if f := found[s1]; f.Instances != 1 || f.Shared != "" || f.StudyDate == "" || len(f.Modalities) != 1 || f.Modalities[0] != "CT" {
		t.Errorf("found s1: %+v", f)
	}
	if f := found[s2]; f.Instances != 2 || f.Shared != SharedAvailable {
		t.Errorf("found s2 (shared with us): %+v", f)
	}
	// All partners: Charlie lets nobody search it; Alpha holds nothing of
	// PAT-404.
	res = searchPatient(t, b, api.PatientSearch{PatientID: "PAT-404"})
	if len(res) != 2 || len(res[0].Studies)+len(res[1].Studies) != 0 || res[0].Error != "" || res[1].Error != "" {
		t.Fatalf("search for nobody: %+v", res)
	}
	// Not allowed looks exactly like not held.
	res = searchPatient(t, c, api.PatientSearch{PatientID: "PAT-8", Partners: []string{"Alpha"}})
	if len(res) != 1 || len(res[0].Studies) != 0 || res[0].Error != "" {
		t.Fatalf("search without permission: %+v", res)
	}
	// A birth date that does not match hides the studies.
	res = searchPatient(t, b, api.PatientSearch{PatientID: "PAT-8", BirthDate: "18991231", Partners: []string{"Alpha"}})
	if len(res[0].Studies) != 0 {
		t.Errorf("search with another birth date: %+v", res)
	}
	requireAudit(t, a, consent.Entry{Action: api.ActPatientQuery, Peer: b.host.ID(), Reason: "user=admin allowed=yes results=2"})
	requireAudit(t, a, consent.Entry{Action: api.ActPatientQuery, Peer: c.host.ID(), Reason: "user=admin allowed=no results=0"})
	requireAudit(t, b, consent.Entry{Action: api.ActPatientSearch, Peer: a.host.ID(), Reason: "results=2"})
	for _, n := range []*tnode{a, b, c} {
		for _, e := range auditLog(t, n) {
			if strings.Contains(e.Reason, "PAT-") {
				t.Errorf("%s: patient data in the chain: %+v", n.name, e)
			}
		}
	}
	// Malformed searches are refused here.
	for name, q := range map[string]api.PatientSearch{
		"no patient":      {},
		"bad birth date":  {PatientID: "PAT-8", BirthDate: "1970-01-01"},
		"unknown partner": {PatientID: "PAT-8", Partners: []string{"Nobody"}},
	} {
		body, _ := json.Marshal(q)
		if code, ans := apiRaw(t, b, "POST", "/api/v1/search", "Bearer "+b.keys.apiToken, body); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", name, code, ans)
		}
	}
	// Fishing is slowed down: beyond the burst, the partner says busy.
	var busy string
	for range 2 * queryBurst {
		res = searchPatient(t, c, api.PatientSearch{PatientID: "PAT-8", Partners: []string{"Alpha"}})
		if res[0].Error != "" {
			busy = res[0].Error
			break
		}
	}
	if !strings.Contains(busy, "busy or limits how often") {
		t.Errorf("rate limit: %q", busy)
	}
}

// A request to a holder that cannot be reached is kept, unsent, and sent
// as soon as the holder is back; one the holder refuses outright is not
// kept and the user is told why.
func TestAccessRequestQueuedWhileHolderDown(t *testing.T) {
	a, b := newNode(t, "Alpha"), newNode(t, "Bravo")
	link(t, a, b)
	aAddrs := a.listenAddrs()
	a.stop()
	req := api.AccessRequestCreate{To: "Alpha", PatientID: "PAT-Q", Purpose: "treatment", Reason: "referral"}
	r := sendRequest(t, b, req)
	if r.State != api.RequestUnsent || r.LastError == "" {
		t.Fatalf("a request to a holder that is down: %+v", r)
	}
	requireAudit(t, b, consent.Entry{Action: api.ActRequestSent, Reason: "request=" + r.RequestID + " purpose=treatment reason=referral queued"})

	a = a.reopen(aAddrs, nil)
	waitFor(t, 20*time.Second, "the queued request at the holder", func() bool {
		return outgoing(t, b, r.RequestID).State == api.RequestPending
	})
	if in := incoming(t, a, r.RequestID); in.State != api.RequestPending || in.PatientID != "PAT-Q" {
		t.Fatalf("the holder's view: %+v", in)
	}
	if got := outgoing(t, b, r.RequestID); got.LastError != "" {
		t.Errorf("a delivered request keeps its error: %+v", got)
	}
}
