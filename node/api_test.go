package node

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/internal/wire"
)

var apiClient = &http.Client{Timeout: 20 * time.Second}

// apiRaw calls n's local API with the given Authorization header and
// returns the status and body.
func apiRaw(t *testing.T, n *tnode, method, path, auth string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// jsonError decodes an error body and requires it to carry a message.
func jsonError(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": …}", body)
	}
	return e.Error
}

func TestAPIAuthentication(t *testing.T) {
	n := newNode(t, "Alpha")
	tok, err := ReadAPIToken(n.home)
	if err != nil || tok != n.keys.apiToken {
		t.Fatalf("ReadAPIToken: %q, %v", tok, err)
	}
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer " + strings.Repeat("0", 64), http.StatusUnauthorized},
		{"token without scheme", tok, http.StatusUnauthorized},
		{"basic scheme", "Basic " + tok, http.StatusUnauthorized},
		{"token prefix", "Bearer " + tok[:32], http.StatusUnauthorized},
		{"token and more", "Bearer " + tok + "x", http.StatusUnauthorized},
		{"right token", "Bearer " + tok, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/api/v1/status", "/api/v1/audit", "/api/v1/invite"} {
				code, body := apiRaw(t, n, "GET", path, tc.auth, nil)
				if code != tc.want {
					t.Errorf("GET %s: %d, want %d", path, code, tc.want)
				}
				if code == http.StatusUnauthorized {
					jsonError(t, body)
				}
			}
			// Writes are refused too, before anything is read.
			code, _ := apiRaw(t, n, "POST", "/api/v1/instances", tc.auth, []byte("x"))
			if tc.want == http.StatusUnauthorized && code != http.StatusUnauthorized {
				t.Errorf("POST instances: %d, want 401", code)
			}
		})
	}
	// Even unknown paths need the token (nothing is learnt without it).
	if code, _ := apiRaw(t, n, "GET", "/api/v1/nope", "", nil); code != http.StatusUnauthorized {
		t.Errorf("unknown path without a token: %d", code)
	}
}

func TestAPI(t *testing.T) {
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.Archive.MaxInstanceSize = 64 << 10 }})
	b := newNode(t, "Beta")
	study, files := ctStudy(t, 21, 2, "")

	t.Run("status", func(t *testing.T) {
		var st api.Status
		if code := apiCall(t, a, "GET", "/api/v1/status", nil, &st); code != http.StatusOK {
			t.Fatal(code)
		}
		if st.Name != "Alpha" || st.PeerID != a.ID().String() || st.HTTP != a.HTTPAddr() || len(st.P2P) == 0 || st.AETitle != "ALPHA" {
			t.Errorf("status: %+v", st)
		}
	})
	t.Run("add peer", func(t *testing.T) {
		var inv api.Invite
		if code := apiCall(t, b, "GET", "/api/v1/invite", nil, &inv); code != http.StatusOK || !strings.HasPrefix(inv.Invite, wire.InvitePrefix) {
			t.Fatalf("invite: %d %v", code, inv)
		}
		body, _ := json.Marshal(api.AddPartnerRequest{Invite: inv.Invite})
		var p api.Partner
		if code := apiCall(t, a, "POST", "/api/v1/peers", body, &p); code != http.StatusOK || p.PeerID != b.ID().String() || p.Name != "Beta" {
			t.Fatalf("add peer: %d %+v", code, p)
		}
		addPeer(t, b, a)
		code, resp := apiRaw(t, a, "POST", "/api/v1/peers", "Bearer "+a.keys.apiToken, []byte(`{"invite":"pacsnet-invite-1:AAAA"}`))
		if code != http.StatusBadRequest {
			t.Errorf("bad invite: %d", code)
		}
		jsonError(t, resp)
		var peers []api.Partner
		apiCall(t, a, "GET", "/api/v1/peers", nil, &peers)
		if len(peers) != 1 || peers[0].PeerID != b.ID().String() {
			t.Errorf("peers: %+v", peers)
		}
	})
	t.Run("import", func(t *testing.T) {
		var r api.ImportResult
		if code := apiCall(t, a, "POST", "/api/v1/instances", files[0].Data, &r); code != http.StatusOK || r.Outcome != OutcomeStored {
			t.Fatalf("import: %d %+v", code, r)
		}
		if code := apiCall(t, a, "POST", "/api/v1/instances", files[0].Data, &r); code != http.StatusOK || r.Outcome != OutcomeDuplicate {
			t.Errorf("import again: %d %+v", code, r)
		}
		if code := apiCall(t, a, "POST", "/api/v1/instances", files[1].Data, &r); code != http.StatusOK || r.Outcome != OutcomeStored {
			t.Errorf("import: %d %+v", code, r)
		}
		conflict := bytes.Clone(files[0].Data)
		conflict[len(conflict)-1] ^= 1
		if code := apiCall(t, a, "POST", "/api/v1/instances", conflict, &r); code != http.StatusConflict || r.Outcome != OutcomeConflict {
			t.Errorf("conflict: %d %+v", code, r)
		}
	})
	t.Run("import garbage", func(t *testing.T) {
		code, body := apiRaw(t, a, "POST", "/api/v1/instances", "Bearer "+a.keys.apiToken, []byte("definitely not DICOM"))
		if code != http.StatusUnprocessableEntity {
			t.Errorf("garbage: %d, want 422", code)
		}
		var r api.ImportResult
		if err := json.Unmarshal(body, &r); err != nil || r.Outcome != OutcomeRejected || r.Error == "" || r.Code == "" {
			t.Errorf("garbage: body %s", body)
		}
	})
	t.Run("import too large", func(t *testing.T) {
		big := make([]byte, 65<<10)
		copy(big, files[0].Data)
		code, body := apiRaw(t, a, "POST", "/api/v1/instances", "Bearer "+a.keys.apiToken, big)
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("oversize body: %d, want 413", code)
		}
		var r api.ImportResult
		if err := json.Unmarshal(body, &r); err != nil || r.Outcome != OutcomeRejected || r.Code != "too-large" {
			t.Errorf("oversize body: %s", body)
		}
	})
	t.Run("studies and instances", func(t *testing.T) {
		var studies []api.Study
		if code := apiCall(t, a, "GET", "/api/v1/studies", nil, &studies); code != http.StatusOK || len(studies) != 1 || studies[0].StudyUID != study || studies[0].Instances != 2 {
			t.Fatalf("studies: %d %+v", code, studies)
		}
		var insts []api.Instance
		if code := apiCall(t, a, "GET", "/api/v1/studies/"+study+"/instances", nil, &insts); code != http.StatusOK || len(insts) != 2 {
			t.Fatalf("instances: %d %+v", code, insts)
		}
		code, body := apiRaw(t, a, "GET", "/api/v1/studies/"+study+"/instances/"+insts[0].SOPInstanceUID, "Bearer "+a.keys.apiToken, nil)
		if code != http.StatusOK || sha(body) != insts[0].SHA256 {
			t.Errorf("instance download: %d, sha256 %s want %s", code, sha(body), insts[0].SHA256)
		}
		code, body = apiRaw(t, a, "GET", "/api/v1/studies/1.2.3.404/instances", "Bearer "+a.keys.apiToken, nil)
		if code != http.StatusNotFound {
			t.Errorf("instances of an unknown study: %d", code)
		}
		jsonError(t, body)
		if code, _ := apiRaw(t, a, "GET", "/api/v1/studies/"+study+"/instances/1.2.3.404", "Bearer "+a.keys.apiToken, nil); code != http.StatusNotFound {
			t.Errorf("unknown instance: %d", code)
		}
		// Reading instance data is audited on its own; the node writes an
		// export itself and audits what it wrote.
		requireAudit(t, a, consent.Entry{Action: consent.ActInstanceRead, Study: study, Actor: "admin"})
		out := t.TempDir()
		var exp api.ExportResult
		req, _ := json.Marshal(api.ExportRequest{Out: out})
		if code := apiCall(t, a, "POST", "/api/v1/studies/"+study+"/export", req, &exp); code != http.StatusOK || len(exp.Files) != 2 || exp.Verified != 2 {
			t.Errorf("export: %d %+v", code, exp)
		}
		for _, f := range exp.Files {
			if b, err := os.ReadFile(f.Path); err != nil || sha(b) != f.SHA256 {
				t.Errorf("exported %s: %v", f.Path, err)
			}
		}
		requireAudit(t, a, consent.Entry{Action: consent.ActExport, Study: study, Actor: "admin", Reason: "2 instances written"})
		if code, body := apiRaw(t, a, "POST", "/api/v1/studies/"+study+"/export", "Bearer "+a.keys.apiToken, []byte(`{"out":"relative/dir"}`)); code != http.StatusBadRequest {
			t.Errorf("export to a relative folder: %d %s", code, body)
		}
	})
	t.Run("grants", func(t *testing.T) {
		code, body := apiRaw(t, a, "POST", "/api/v1/grants", "Bearer "+a.keys.apiToken, []byte(`{"to":"Beta","study_uid":"1.2.3.404"}`))
		if code != http.StatusBadRequest || !strings.Contains(jsonError(t, body), "no study") {
			t.Errorf("grant of an unknown study: %d %s", code, body)
		}
		for _, bad := range []string{`{"to":"Beta","study_uid":"` + study + `","expires":"-1h"}`, `{"to":"Beta","study_uid":"` + study + `","expires":"soon"}`, `{"to":"Beta","study_uid":"` + study + `","colour":"red"}`, `not json`, `{"to":"Nobody","study_uid":"` + study + `"}`} {
			code, body := apiRaw(t, a, "POST", "/api/v1/grants", "Bearer "+a.keys.apiToken, []byte(bad))
			if code != http.StatusBadRequest {
				t.Errorf("grant %s: %d, want 400", bad, code)
			}
			jsonError(t, body)
		}
		var g api.Grant
		if code := apiCall(t, a, "POST", "/api/v1/grants", []byte(`{"to":"Beta","study_uid":"`+study+`","expires":"1d2h"}`), &g); code != http.StatusOK || g.Grantee.PeerID != b.ID().String() ||
			g.Expires.Sub(g.NotBefore) != 26*time.Hour {
			t.Fatalf("grant: %d %+v", code, g)
		}
		var grants []api.Grant
		if apiCall(t, a, "GET", "/api/v1/grants", nil, &grants); len(grants) != 1 || grants[0].GrantID != g.GrantID {
			t.Errorf("grants: %+v", grants)
		}
		waitShared(t, b, a, study, "available", 1, deliverTimeout)
		var shared []api.SharedStudy
		if apiCall(t, b, "GET", "/api/v1/shared", nil, &shared); len(shared) != 1 || shared[0].StudyUID != study {
			t.Errorf("shared: %+v", shared)
		}

		// Fetch over the API.
		var st api.FetchJob
		if code := apiCall(t, b, "POST", "/api/v1/fetches", []byte(`{"study_uid":"`+study+`"}`), &st); code != http.StatusOK || st.FetchID == "" {
			t.Fatalf("start fetch: %d %+v", code, st)
		}
		waitFor(t, 20*time.Second, "the fetch over the API", func() bool {
			apiCall(t, b, "GET", "/api/v1/fetches/"+st.FetchID, nil, &st)
			return st.State == FetchDone || st.State == FetchFailed
		})
		if st.State != FetchDone || st.InstancesDone != 2 {
			t.Errorf("fetch: %+v", st)
		}
		code, body = apiRaw(t, b, "GET", "/api/v1/fetches/0123456789abcdef", "Bearer "+b.keys.apiToken, nil)
		if code != http.StatusNotFound {
			t.Errorf("unknown fetch: %d", code)
		}
		jsonError(t, body)
		code, body = apiRaw(t, b, "POST", "/api/v1/fetches", "Bearer "+b.keys.apiToken, []byte(`{"study_uid":"1.2.3.404"}`))
		if code != http.StatusNotFound {
			t.Errorf("fetch of a study nobody shared: %d %s", code, body)
		}

		// Revoke, then revoking again is a bad request; an unknown grant too.
		if code := apiCall(t, a, "POST", "/api/v1/grants/"+g.GrantID+"/revoke", []byte(`{"reason":"treatment-ended"}`), nil); code != http.StatusOK {
			t.Errorf("revoke: %d", code)
		}
		if code, _ := apiRaw(t, a, "POST", "/api/v1/grants/"+g.GrantID+"/revoke", "Bearer "+a.keys.apiToken, nil); code != http.StatusBadRequest {
			t.Errorf("revoke twice: %d", code)
		}
		if code, _ := apiRaw(t, a, "POST", "/api/v1/grants/"+strings.Repeat("ab", 16)+"/revoke", "Bearer "+a.keys.apiToken, nil); code != http.StatusBadRequest && code != http.StatusNotFound {
			t.Errorf("revoke an unknown grant: %d", code)
		}
		waitShared(t, b, a, study, "revoked", 2, deliverTimeout)
		code, body = apiRaw(t, b, "POST", "/api/v1/fetches", "Bearer "+b.keys.apiToken, []byte(`{"study_uid":"`+study+`"}`))
		if code != http.StatusForbidden {
			t.Errorf("fetch after revocation: %d %s", code, body)
		}
	})
	t.Run("audit", func(t *testing.T) {
		var entries []api.AuditEntry
		if code := apiCall(t, a, "GET", "/api/v1/audit?limit=1000", nil, &entries); code != http.StatusOK || len(entries) == 0 {
			t.Fatalf("audit: %d, %d entries", code, len(entries))
		}
		var page []api.AuditEntry
		apiCall(t, a, "GET", "/api/v1/audit?after=1&limit=2", nil, &page)
		if len(page) != 2 || page[0].Seq != 2 || page[1].Seq != 3 {
			t.Errorf("audit page: %+v", page)
		}
		var v api.AuditVerify
		for _, n := range []*tnode{a, b} {
			if code := apiCall(t, n, "GET", "/api/v1/audit/verify", nil, &v); code != http.StatusOK || !v.OK || v.Entries == 0 || len(v.Head) != 64 {
				t.Errorf("%s: verify: %d %+v", n.name, code, v)
			}
		}
		if v.Entries != uint64(len(auditLog(t, b))) {
			t.Errorf("verify counted %d entries, the log has %d", v.Entries, len(auditLog(t, b)))
		}
	})
	t.Run("methods", func(t *testing.T) {
		code, body := apiRaw(t, a, "DELETE", "/api/v1/studies", "Bearer "+a.keys.apiToken, nil)
		var e api.ErrorBody
		if code != http.StatusMethodNotAllowed || json.Unmarshal(body, &e) != nil || e.Code != api.CodeMethod {
			t.Errorf("DELETE studies: %d %s", code, body)
		}
	})
	t.Run("unknown route", func(t *testing.T) {
		// The API's error shape, not the router's plain text.
		code, body := apiRaw(t, a, "GET", "/api/v1/nope", "Bearer "+a.keys.apiToken, nil)
		var e api.ErrorBody
		if code != http.StatusNotFound || json.Unmarshal(body, &e) != nil || e.Code != api.CodeNotFound || e.Error == "" {
			t.Errorf("GET /api/v1/nope: %d %s", code, body)
		}
	})
}

// A corrupted audit log makes GET /api/v1/audit/verify answer 409.
func TestAPIAuditVerifyDetectsTampering(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	var v map[string]any
	if code := apiCall(t, a, "GET", "/api/v1/audit/verify", nil, &v); code != http.StatusOK || v["ok"] != true {
		t.Fatalf("verify: %d %v", code, v)
	}
	// Rewrite the reason of entry 1 in the store, and restore it after
	// so that the end-of-test verification passes.
	key := []byte("audit/00000000000000000001")
	var orig []byte
	if err := a.store.Scan(key, func(_, v []byte) error { orig = bytes.Clone(v); return nil }); err != nil || orig == nil {
		t.Fatalf("read entry 1: %v", err)
	}
	var e consent.Entry
	if err := json.Unmarshal(orig, &e); err != nil {
		t.Fatal(err)
	}
	e.Reason = "rewritten"
	raw, _ := json.Marshal(e)
	if err := a.store.Commit([]consent.KV{{Key: key, Value: raw}}); err != nil {
		t.Fatal(err)
	}
	code, body := apiRaw(t, a, "GET", "/api/v1/audit/verify", "Bearer "+a.keys.apiToken, nil)
	if code != http.StatusConflict || !strings.Contains(string(body), `"ok": false`) {
		t.Errorf("verify of a tampered log: %d %s", code, body)
	}
	if err := a.store.Commit([]consent.KV{{Key: key, Value: orig}}); err != nil {
		t.Fatal(err)
	}
	if code := apiCall(t, a, "GET", "/api/v1/audit/verify", nil, &v); code != http.StatusOK || v["ok"] != true {
		t.Errorf("verify after restoring: %d %v", code, v)
	}
}

// Mistakes in a fetch request are the client's: they must not be
// reported as internal server errors (500).
func TestAPIFetchRequestErrorsAreClientErrors(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	c := newNode(t, "Gamma")
	link(t, a, b)
	link(t, c, b)
	// The same study (same seed: same UIDs and bytes) held by two
	// facilities, both sharing it with b.
	study, _ := importCT(t, a, 1, 1)
	importCT(t, c, 1, 1)
	grant(t, a, b, study)
	grant(t, c, b, study)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	waitShared(t, b, c, study, "available", 1, deliverTimeout)
	for _, tc := range []struct{ name, body string }{
		{"unknown partner", `{"study_uid":"` + study + `","from":"Nobody"}`},
		{"ambiguous: two partners shared it", `{"study_uid":"` + study + `"}`},
		{"malformed", `{"study_uid":`},
		{"unknown field", `{"study_uid":"` + study + `","to":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := apiRaw(t, b, "POST", "/api/v1/fetches", "Bearer "+b.keys.apiToken, []byte(tc.body))
			if code < 400 || code >= 500 {
				t.Errorf("POST fetches %s: %d %s, want a 4xx client error", tc.body, code, body)
			}
			jsonError(t, body)
		})
	}
	// Naming the partner resolves the ambiguity.
	var st api.FetchJob
	if code := apiCall(t, b, "POST", "/api/v1/fetches", []byte(`{"study_uid":"`+study+`","from":"Gamma"}`), &st); code != http.StatusOK || st.Holder.PeerID != c.ID().String() {
		t.Fatalf("fetch --from Gamma: %d %+v", code, st)
	}
	if end := waitFetch(t, b, st.FetchID, 20*time.Second); end.State != FetchDone {
		t.Errorf("fetch: %+v", end)
	}
}
