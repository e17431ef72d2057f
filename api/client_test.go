package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testToken = "0123456789abcdef"

// fakeNode serves the route table with handlers a test sets by route
// name; it checks the token, decodes JSON bodies into the route's request
// type with unknown fields disallowed, and records what it got.
type fakeNode struct {
	t        *testing.T
	handlers map[string]func(w http.ResponseWriter, r *http.Request, body any)
	hit      string
	params   map[string]string
	body     any
}

func newFake(t *testing.T) (*fakeNode, *Client) {
	f := &fakeNode{t: t, handlers: map[string]func(http.ResponseWriter, *http.Request, any){}}
	mux := http.NewServeMux()
	for _, rt := range Routes {
		mux.HandleFunc(rt.Pattern(), func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+testToken {
				writeJSON(w, 401, ErrorBody{Error: "missing or wrong API token", Code: CodeUnauthorized})
				return
			}
			f.hit = rt.Name
			f.params = map[string]string{}
			for _, p := range []string{ParamPeer, ParamStudyUID, ParamSOPInstanceUID, ParamGrantID, ParamFetchID, ParamAE} {
				if v := r.PathValue(p); v != "" {
					f.params[p] = v
				}
			}
			f.body = nil
			if rt.Request != nil && r.Method == http.MethodPost {
				if _, ok := rt.Request.(DICOMBody); ok {
					b, _ := io.ReadAll(r.Body)
					f.body = b
				} else {
					if ct := r.Header.Get("Content-Type"); ct != ContentTypeJSON {
						t.Errorf("%s: Content-Type %q", rt.Name, ct)
					}
					v := reflect.New(reflect.TypeOf(rt.Request))
					dec := json.NewDecoder(r.Body)
					dec.DisallowUnknownFields()
					if err := dec.Decode(v.Interface()); err != nil {
						t.Errorf("%s: request body: %v", rt.Name, err)
					}
					f.body = v.Elem().Interface()
				}
			}
			h := f.handlers[rt.Name]
			if h == nil {
				writeJSON(w, 500, ErrorBody{Error: "no handler", Code: CodeInternal})
				return
			}
			h(w, r, f.body)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, NewClient(srv.URL+"/", testToken, srv.Client())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// answer is a handler that answers v with status 200.
func answer(v any) func(http.ResponseWriter, *http.Request, any) {
	return func(w http.ResponseWriter, _ *http.Request, _ any) { writeJSON(w, 200, v) }
}

func (f *fakeNode) expect(name string, params map[string]string) {
	f.t.Helper()
	if f.hit != name {
		f.t.Errorf("route %s was called, want %s", f.hit, name)
	}
	if params == nil {
		params = map[string]string{}
	}
	if !reflect.DeepEqual(f.params, params) {
		f.t.Errorf("%s: path parameters %v, want %v", name, f.params, params)
	}
}

func TestClientRoutes(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	eq := func(got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	st := Status{Name: "St Mary", AETitle: "STMARY", PeerID: "12D3", P2P: []string{"/ip4/127.0.0.1/tcp/1"}, HTTP: "127.0.0.1:7480", Partners: 2, Outbox: 1}
	f.handlers["Status"] = answer(st)
	gotSt, err := c.Status(ctx)
	must(err)
	f.expect("Status", nil)
	eq(gotSt, st)

	f.handlers["Invite"] = answer(Invite{Invite: "pacsnet-invite-1:abc"})
	inv, err := c.Invite(ctx)
	must(err)
	f.expect("Invite", nil)
	eq(inv.Invite, "pacsnet-invite-1:abc")

	p := Partner{PeerID: "12D3", Name: "Riverside", Recipient: "age1pq", Addrs: []string{"/ip4/1.2.3.4/tcp/1"}, Added: now}
	f.handlers["Partners"] = answer(nil) // null: the client makes it []
	ps, err := c.Partners(ctx)
	must(err)
	f.expect("Partners", nil)
	if ps == nil || len(ps) != 0 {
		t.Errorf("Partners on null = %#v, want an empty non-nil list", ps)
	}
	f.handlers["Partners"] = answer([]Partner{p})
	ps, err = c.Partners(ctx)
	must(err)
	eq(ps, []Partner{p})

	f.handlers["AddPartner"] = answer(p)
	gotP, err := c.AddPartner(ctx, "pacsnet-invite-1:xyz")
	must(err)
	f.expect("AddPartner", nil)
	eq(f.body, AddPartnerRequest{Invite: "pacsnet-invite-1:xyz"})
	eq(gotP, p)

	// A name with a slash and a space is one escaped segment.
	f.handlers["RemovePartner"] = answer(p)
	_, err = c.RemovePartner(ctx, "St Mary/North")
	must(err)
	f.expect("RemovePartner", map[string]string{ParamPeer: "St Mary/North"})

	s := Study{StudyAttributes: StudyAttributes{StudyUID: "1.2.3", PatientID: "P1", Modalities: []string{"CT"}},
		Origin: &PartnerRef{PeerID: "12D3", Name: "St Mary"}, Instances: 3, Complete: true, Bytes: 100, Updated: now}
	f.handlers["Studies"] = answer([]Study{s})
	ss, err := c.Studies(ctx)
	must(err)
	f.expect("Studies", nil)
	eq(ss, []Study{s})

	in := Instance{StudyUID: "1.2.3", SeriesUID: "1.2.3.1", SOPInstanceUID: "1.2.3.1.1", Size: 10, SHA256: "ab", Blocks: []Block{{CID: "bafk", Size: 10}}}
	f.handlers["Instances"] = answer([]Instance{in})
	ins, err := c.Instances(ctx, "1.2.3")
	must(err)
	f.expect("Instances", map[string]string{ParamStudyUID: "1.2.3"})
	eq(ins, []Instance{in})

	f.handlers["InstanceData"] = func(w http.ResponseWriter, _ *http.Request, _ any) {
		w.Header().Set("Content-Type", ContentTypeDICOM)
		w.Header().Set(HeaderSHA256, "cafe")
		w.Write([]byte("DICM-bytes"))
	}
	rc, sum, err := c.InstanceData(ctx, "1.2.3", "1.2.3.1.1")
	must(err)
	b, _ := io.ReadAll(rc)
	rc.Close()
	f.expect("InstanceData", map[string]string{ParamStudyUID: "1.2.3", ParamSOPInstanceUID: "1.2.3.1.1"})
	eq(string(b), "DICM-bytes")
	eq(sum, "cafe")

	exp := ExportResult{StudyUID: "1.2.3", Out: "/tmp/x", Files: []ExportedFile{{Path: "/tmp/x/1/2.dcm", SOPInstanceUID: "2", SHA256: "ab", Size: 1}}, Bytes: 1, Verified: 1}
	f.handlers["Export"] = answer(exp)
	gotExp, err := c.Export(ctx, "1.2.3", ExportRequest{Out: "/tmp/x", AllowPartial: true})
	must(err)
	f.expect("Export", map[string]string{ParamStudyUID: "1.2.3"})
	eq(f.body, ExportRequest{Out: "/tmp/x", AllowPartial: true})
	eq(gotExp, exp)

	g := Grant{GrantID: "00ff", Issuer: PartnerRef{PeerID: "A"}, Grantee: PartnerRef{PeerID: "B", Name: "Riverside"}, StudyUIDs: []string{"1.2.3"},
		Actions: []string{ActionFetch}, Purpose: PurposeTreatment, NotBefore: now, Expires: now.Add(time.Hour), Created: now, State: GrantActive,
		Signed: json.RawMessage(`{"grant":{"id":"00ff"},"sig":"AA=="}`)}
	f.handlers["Grants"] = answer([]Grant{g})
	gs, err := c.Grants(ctx)
	must(err)
	f.expect("Grants", nil)
	eq(gs, []Grant{g})

	f.handlers["Grant"] = func(w http.ResponseWriter, _ *http.Request, _ any) {
		w.Header().Set(HeaderNotice, "notice: 1 other live grant")
		writeJSON(w, 200, g)
	}
	gotG, notice, err := c.Grant(ctx, GrantRequest{To: "Riverside", StudyUID: "1.2.3", Expires: "2h"})
	must(err)
	f.expect("Grant", nil)
	eq(f.body, GrantRequest{To: "Riverside", StudyUID: "1.2.3", Expires: "2h"})
	eq(gotG, g)
	eq(notice, "notice: 1 other live grant")
	f.handlers["Grant"] = answer(g)
	if _, notice, _ = c.Grant(ctx, GrantRequest{To: "Riverside", StudyUID: "1.2.3"}); notice != "" {
		t.Errorf("notice %q without the header", notice)
	}

	rv := Revocation{GrantID: "00ff", Revoked: now, Reason: "test", Signed: json.RawMessage(`{"revocation":{},"sig":"AA=="}`)}
	f.handlers["Revoke"] = answer(rv)
	gotRv, err := c.Revoke(ctx, "00ff", "test")
	must(err)
	f.expect("Revoke", map[string]string{ParamGrantID: "00ff"})
	eq(f.body, RevokeRequest{Reason: "test"})
	eq(gotRv, rv)

	sh := SharedStudy{StudyAttributes: StudyAttributes{StudyUID: "1.2.3"}, Issuer: PartnerRef{PeerID: "A", Name: "St Mary"}, State: SharedAvailable, GrantID: "00ff", Received: now}
	f.handlers["Shared"] = answer([]SharedStudy{sh})
	shs, err := c.Shared(ctx)
	must(err)
	f.expect("Shared", nil)
	eq(shs, []SharedStudy{sh})

	job := FetchJob{FetchID: "f1", StudyUID: "1.2.3", Holder: PartnerRef{PeerID: "A", Name: "St Mary"}, State: FetchRunning, Instances: 3, Started: now}
	f.handlers["StartFetch"] = answer(job)
	gotJob, err := c.StartFetch(ctx, FetchRequest{StudyUID: "1.2.3", From: "St Mary"})
	must(err)
	f.expect("StartFetch", nil)
	eq(f.body, FetchRequest{StudyUID: "1.2.3", From: "St Mary"})
	eq(gotJob, job)

	f.handlers["Fetch"] = answer(job)
	_, err = c.Fetch(ctx, "f1")
	must(err)
	f.expect("Fetch", map[string]string{ParamFetchID: "f1"})

	ob := OutboxItem{Seq: 1, Peer: PartnerRef{PeerID: "B"}, Kind: ManifestStudy, StudyUID: "1.2.3", Next: now}
	f.handlers["Outbox"] = answer([]OutboxItem{ob})
	obs, err := c.Outbox(ctx)
	must(err)
	f.expect("Outbox", nil)
	eq(obs, []OutboxItem{ob})

	var query url.Values
	e := AuditEntry{Seq: 8, Time: now, Actor: ActorSystem, Peer: &PartnerRef{PeerID: "B"}, Action: ActFetchDenied, StudyUID: "1.2.3", Decision: DecisionDeny, Prev: "00", Hash: "11"}
	f.handlers["Audit"] = func(w http.ResponseWriter, r *http.Request, _ any) {
		query = r.URL.Query()
		writeJSON(w, 200, []AuditEntry{e})
	}
	es, next, err := c.Audit(ctx, AuditQuery{After: 7, Limit: 50})
	must(err)
	f.expect("Audit", nil)
	eq(es, []AuditEntry{e})
	eq(next, uint64(0))
	eq(query, url.Values{"after": {"7"}, "limit": {"50"}})
	f.handlers["Audit"] = func(w http.ResponseWriter, r *http.Request, _ any) {
		query = r.URL.Query()
		w.Header().Set(HeaderAuditNext, "900")
		writeJSON(w, 200, []AuditEntry{})
	}
	since := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	es, next, err = c.Audit(ctx, AuditQuery{Since: since, Partner: "St Mary", Study: "1.2.3", Action: ActGrant})
	must(err)
	eq(es, []AuditEntry{})
	eq(next, uint64(900))
	eq(query, url.Values{"after": {"0"}, "since": {"2026-12-01T08:00:00Z"}, "partner": {"St Mary"}, "study_uid": {"1.2.3"}, "action": {"grant"}})

	f.handlers["AuditVerify"] = answer(AuditVerify{OK: true, Entries: 8, Head: "11"})
	av, err := c.AuditVerify(ctx)
	must(err)
	f.expect("AuditVerify", nil)
	eq(av, AuditVerify{OK: true, Entries: 8, Head: "11"})

	ae := AE{Title: "CT 1/A", Host: "10.0.0.5", Port: 104, RestrictAddress: true, Source: AESourceAPI, Added: now}
	f.handlers["AEs"] = answer([]AE{ae})
	aes, err := c.AEs(ctx)
	must(err)
	f.expect("AEs", nil)
	eq(aes, []AE{ae})
	f.handlers["AddAE"] = answer(ae)
	gotAE, err := c.AddAE(ctx, AddAERequest{Title: ae.Title, Host: ae.Host, Port: 104, RestrictAddress: true})
	must(err)
	f.expect("AddAE", nil)
	eq(f.body, AddAERequest{Title: ae.Title, Host: ae.Host, Port: 104, RestrictAddress: true})
	eq(gotAE, ae)
	f.handlers["RemoveAE"] = answer(ae)
	gotAE, err = c.RemoveAE(ctx, ae.Title)
	must(err)
	f.expect("RemoveAE", map[string]string{ParamAE: "CT 1/A"})
	eq(gotAE, ae)
}

func TestClientImportFile(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	for _, tc := range []struct {
		status int
		res    ImportResult
	}{
		{200, ImportResult{Outcome: OutcomeStored, SOPInstanceUID: "1.2", StudyUID: "1", Size: 5, SHA256: "ab"}},
		{200, ImportResult{Outcome: OutcomeDuplicate, Warnings: []string{"transfer syntax differs"}}},
		{409, ImportResult{Outcome: OutcomeConflict, SOPInstanceUID: "1.2", Error: "a different instance"}},
		{413, ImportResult{Outcome: OutcomeRejected, Code: "too-large", Error: "instance larger than 10 bytes"}},
		{422, ImportResult{Outcome: OutcomeRejected, Code: "missing-attribute", Error: "no SOP Class UID"}},
		{500, ImportResult{Outcome: OutcomeFailed, Error: "disk full"}},
	} {
		t.Run(tc.res.Outcome+"-"+http.StatusText(tc.status), func(t *testing.T) {
			var clen int64
			var ctype string
			f.handlers["ImportFile"] = func(w http.ResponseWriter, r *http.Request, _ any) {
				clen, ctype = r.ContentLength, r.Header.Get("Content-Type")
				writeJSON(w, tc.status, tc.res)
			}
			got, err := c.ImportFile(ctx, strings.NewReader("DICM12345"), 9)
			if err != nil {
				t.Fatalf("ImportFile: %v, want the result", err)
			}
			if !reflect.DeepEqual(got, tc.res) {
				t.Errorf("got %+v, want %+v", got, tc.res)
			}
			if string(f.body.([]byte)) != "DICM12345" || clen != 9 || ctype != ContentTypeDICOM {
				t.Errorf("node got %q (length %d, type %q)", f.body, clen, ctype)
			}
		})
	}
	t.Run("unknown size is streamed", func(t *testing.T) {
		var clen int64
		f.handlers["ImportFile"] = func(w http.ResponseWriter, r *http.Request, _ any) {
			clen = r.ContentLength
			writeJSON(w, 200, ImportResult{Outcome: OutcomeStored})
		}
		if _, err := c.ImportFile(ctx, io.MultiReader(strings.NewReader("DICM"), bytes.NewReader(make([]byte, 1<<16))), -1); err != nil {
			t.Fatal(err)
		}
		if clen != -1 || len(f.body.([]byte)) != 4+1<<16 {
			t.Errorf("length %d, %d bytes", clen, len(f.body.([]byte)))
		}
	})
	t.Run("an error body is an *Error", func(t *testing.T) {
		f.handlers["ImportFile"] = func(w http.ResponseWriter, r *http.Request, _ any) {
			writeJSON(w, 400, ErrorBody{Error: "read body: unexpected EOF", Code: CodeBadRequest})
		}
		_, err := c.ImportFile(ctx, strings.NewReader("x"), 1)
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != CodeBadRequest || ae.Message != "read body: unexpected EOF" {
			t.Fatalf("err = %#v", err)
		}
	})
}

func TestClientErrors(t *testing.T) {
	f, c := newFake(t)
	ctx := context.Background()
	t.Run("error body", func(t *testing.T) {
		f.handlers["Instances"] = func(w http.ResponseWriter, _ *http.Request, _ any) {
			writeJSON(w, 404, ErrorBody{Error: "study not found", Code: CodeNotFound})
		}
		_, err := c.Instances(ctx, "9.9")
		var ae *Error
		if !errors.As(err, &ae) || *ae != (Error{Status: 404, Code: CodeNotFound, Message: "study not found"}) {
			t.Fatalf("err = %#v", err)
		}
		if err.Error() != "study not found" {
			t.Errorf("Error() = %q", err.Error())
		}
	})
	t.Run("no body: code from the status", func(t *testing.T) {
		f.handlers["Outbox"] = func(w http.ResponseWriter, _ *http.Request, _ any) { w.WriteHeader(503) }
		_, err := c.Outbox(ctx)
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Code != CodeUnavailable || ae.Message != "node API: 503 Service Unavailable" {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		bad := NewClient(c.base, "wrong", c.hc)
		_, err := bad.Studies(ctx)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != CodeUnauthorized || ae.Message != "missing or wrong API token" {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("instance data error", func(t *testing.T) {
		f.handlers["InstanceData"] = func(w http.ResponseWriter, _ *http.Request, _ any) {
			writeJSON(w, 404, ErrorBody{Error: "no such instance", Code: CodeNotFound})
		}
		rc, _, err := c.InstanceData(ctx, "1", "2")
		var ae *Error
		if rc != nil || !errors.As(err, &ae) || ae.Code != CodeNotFound {
			t.Fatalf("rc %v, err %#v", rc, err)
		}
	})
	t.Run("corrupt audit log is a result", func(t *testing.T) {
		f.handlers["AuditVerify"] = func(w http.ResponseWriter, _ *http.Request, _ any) {
			writeJSON(w, 409, AuditVerify{OK: false, Error: "verify audit log: entry 3: hash mismatch"})
		}
		av, err := c.AuditVerify(ctx)
		if err != nil || av.OK || av.Error != "verify audit log: entry 3: hash mismatch" {
			t.Fatalf("AuditVerify = %+v, %v", av, err)
		}
		// An ErrorBody with a conflict code reads the same.
		f.handlers["AuditVerify"] = func(w http.ResponseWriter, _ *http.Request, _ any) {
			writeJSON(w, 409, ErrorBody{Error: "entry 3 corrupt", Code: CodeConflict})
		}
		if av, err := c.AuditVerify(ctx); err != nil || av.OK || av.Error != "entry 3 corrupt" {
			t.Fatalf("AuditVerify = %+v, %v", av, err)
		}
		f.handlers["AuditVerify"] = func(w http.ResponseWriter, _ *http.Request, _ any) {
			writeJSON(w, 500, ErrorBody{Error: "read audit log: disk", Code: CodeInternal})
		}
		var ae *Error
		if _, err := c.AuditVerify(ctx); !errors.As(err, &ae) || ae.Code != CodeInternal {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("unreachable is a *url.Error", func(t *testing.T) {
		dead := NewClient("http://127.0.0.1:1", testToken, nil)
		_, err := dead.Status(ctx)
		var ue *url.Error
		var ae *Error
		if !errors.As(err, &ue) || errors.As(err, &ae) {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := c.Status(cctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("empty parameter", func(t *testing.T) {
		f.hit = ""
		if _, err := c.Fetch(ctx, ""); err == nil || f.hit != "" {
			t.Fatalf("Fetch(\"\") = %v (route %q)", err, f.hit)
		}
	})
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		params  []string
		want    string
		err     bool
	}{
		{pathStatus, nil, "/api/v1/status", false},
		{pathInstanceData, []string{"1.2", "3.4"}, "/api/v1/studies/1.2/instances/3.4", false},
		{pathPeer, []string{"a b/c?d#e%f"}, "/api/v1/peers/a%20b%2Fc%3Fd%23e%25f", false},
		{pathPeer, nil, "", true},
		{pathStatus, []string{"x"}, "", true},
		{pathPeer, []string{""}, "", true},
	} {
		got, err := expand(tc.pattern, tc.params)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("expand(%s, %q) = %q, %v", tc.pattern, tc.params, got, err)
		}
	}
}
