package node

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// dw calls n's DICOMweb with the admin token (auth "" for none, or the
// Authorization value to send) and returns the response with its body.
func dw(t *testing.T, n *tnode, method, path string, hdr map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+"/dicom-web"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.keys.apiToken)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, b
}

type dwObject map[string]struct {
	VR          string            `json:"vr"`
	Value       []json.RawMessage `json:"Value"`
	BulkDataURI string            `json:"BulkDataURI"`
}

func (o dwObject) str(tag string) string {
	a, ok := o[tag]
	if !ok || len(a.Value) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(a.Value[0], &s) == nil {
		return s
	}
	return string(a.Value[0])
}

func dwJSON(t *testing.T, resp *http.Response, b []byte) []dwObject {
	t.Helper()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/dicom+json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var out []dwObject
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body is not a DICOM JSON array: %v: %.200s", err, b)
	}
	return out
}

// parts splits a multipart/related answer.
func parts(t *testing.T, resp *http.Response, b []byte) (wantType string, out []struct {
	ctype string
	data  []byte
}) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct {
			ctype string
			data  []byte
		}{p.Header.Get("Content-Type"), data})
	}
	return params["type"], out
}

// stowBody builds a multipart/related body of application/dicom parts.
func stowBody(t *testing.T, files ...[]byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range files {
		pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(f)
	}
	mw.Close()
	return `multipart/related; type="application/dicom"; boundary=` + mw.Boundary(), buf.Bytes()
}

// QIDO-RS over local studies: matching, paging in a stable order, the
// JSON model with Retrieve URLs; a partner's shared study only with
// shared=true (NEARLINE).
func TestDICOMwebSearch(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	var studies []string
	for i := range 3 {
		st, files := ctStudy(t, int64(10+i), 3, fmt.Sprintf("Doe^Pat%d", i))
		importFiles(t, a, files)
		studies = append(studies, st)
	}
	all := dwList(t, a, "/studies")
	if len(all) != 3 {
		t.Fatalf("%d studies, want 3", len(all))
	}
	for _, o := range all {
		if o["00080056"].VR != "CS" || o.str("00080056") != "ONLINE" || !strings.Contains(o.str("00081190"), "/dicom-web/studies/"+o.str("0020000D")) {
			t.Errorf("study answer lacks availability or Retrieve URL: %v", o)
		}
		if o.str("00201208") != "3" {
			t.Errorf("NumberOfStudyRelatedInstances %q, want 3", o.str("00201208"))
		}
		var pn map[string]string
		json.Unmarshal(o["00100010"].Value[0], &pn)
		if !strings.HasPrefix(pn["Alphabetic"], "Doe^Pat") {
			t.Errorf("PatientName %v is not a PN object", o["00100010"])
		}
	}
	// Paging: pages concatenate to the whole list, in the same order.
	var paged []string
	for off := 0; off < 3; off += 2 {
		for _, o := range dwList(t, a, fmt.Sprintf("/studies?limit=2&offset=%d", off)) {
			paged = append(paged, o.str("0020000D"))
		}
	}
	for i, o := range all {
		if i >= len(paged) || paged[i] != o.str("0020000D") {
			t.Fatalf("paged order %v differs from %v", paged, all)
		}
	}
	// Matching: wildcard on the name, UID list, series and instances in a study.
	if got := dwList(t, a, "/studies?PatientName=Doe%5EPat1*"); len(got) != 1 || got[0].str("0020000D") != studies[1] {
		t.Errorf("PatientName match: %v", got)
	}
	if got := dwList(t, a, "/studies?StudyInstanceUID="+studies[0]+","+studies[2]); len(got) != 2 {
		t.Errorf("UID list match: %d studies", len(got))
	}
	series := dwList(t, a, "/studies/"+studies[0]+"/series")
	if len(series) != 1 || series[0].str("00080060") != "CT" || series[0].str("00201209") != "3" {
		t.Fatalf("series: %v", series)
	}
	insts := dwList(t, a, "/studies/"+studies[0]+"/series/"+series[0].str("0020000E")+"/instances")
	if len(insts) != 3 || !strings.HasSuffix(insts[0].str("00081190"), "/instances/"+insts[0].str("00080018")) {
		t.Fatalf("instances: %v", insts)
	}
	// A bad query is a 400 naming the parameter.
	if resp, body := dwGet(t, a, "/studies?StudyDate=2020-13"); resp.StatusCode != 400 || !strings.Contains(string(body), "StudyDate") {
		t.Errorf("bad date: %d %s", resp.StatusCode, body)
	}

	// Beta: Alpha's study shared, not fetched: listed with shared=true only.
	grant(t, a, b, studies[0])
	waitShared(t, b, a, studies[0], SharedAvailable, 0, 10*time.Second)
	if got := dwList(t, b, "/studies"); len(got) != 0 {
		t.Errorf("Beta lists %d studies without shared=true", len(got))
	}
	got := dwList(t, b, "/studies?shared=true")
	if len(got) != 1 || got[0].str("00080056") != "NEARLINE" {
		t.Fatalf("shared=true: %v", got)
	}
	if resp, body := dwGet(t, b, "/studies/"+studies[0]+"/metadata"); resp.StatusCode != 404 || !strings.Contains(string(body), "fetch it first") {
		t.Errorf("metadata of a study not fetched: %d %s", resp.StatusCode, body)
	}
	// Fetched, it is listed like a local study (ONLINE) and retrievable.
	fetchWait(t, b, studies[0], 30*time.Second)
	got = dwList(t, b, "/studies")
	if len(got) != 1 || got[0].str("00080056") != "ONLINE" || got[0].str("0020000D") != studies[0] {
		t.Fatalf("after the fetch: %v", got)
	}
	if meta := dwList(t, b, "/studies/"+studies[0]+"/metadata"); len(meta) != 3 {
		t.Errorf("metadata of the fetched study: %d instances", len(meta))
	}
	if !hasAudit(auditLog(t, a), consent.ActQuery, "") {
		t.Error("no query audit entry for the searches")
	}
}

func dwList(t *testing.T, n *tnode, path string) []dwObject {
	t.Helper()
	resp, b := dwGet(t, n, path)
	return dwJSON(t, resp, b)
}

func dwGet(t *testing.T, n *tnode, path string) (*http.Response, []byte) {
	t.Helper()
	return dw(t, n, "GET", path, nil, nil)
}

func hasAudit(log []consent.Entry, action, study string) bool {
	for _, e := range log {
		if e.Action == action && e.Study == study {
			return true
		}
	}
	return false
}

// WADO-RS: instances in their stored bytes, metadata with bulk data
// URIs, native frames, rendered PNG/JPEG, bulk data, gzip; each
// retrieval audited.
func TestDICOMwebRetrieve(t *testing.T) {
	a := newNode(t, "Alpha")
	study, files := ctStudy(t, 42, 4, "Roe^Ann")
	importFiles(t, a, files)
	resp, body := dwGet(t, a, "/studies/"+study)
	if resp.StatusCode != 200 {
		t.Fatalf("retrieve study: %d %s", resp.StatusCode, body)
	}
	typ, ps := parts(t, resp, body)
	if typ != "application/dicom" || len(ps) != 4 {
		t.Fatalf("retrieve study: type %q, %d parts", typ, len(ps))
	}
	held := map[string]bool{}
	for _, f := range files {
		held[string(f.Data[128:])] = true
	}
	for _, p := range ps {
		if !strings.HasPrefix(p.ctype, "application/dicom; transfer-syntax=") || len(p.data) < 132 || !held[string(p.data[128:])] {
			t.Fatalf("part %q (%d bytes) is not one of the imported files", p.ctype, len(p.data))
		}
	}
	if !hasAudit(auditLog(t, a), consent.ActInstanceRead, study) {
		t.Error("retrieval not audited")
	}

	meta := dwList(t, a, "/studies/"+study+"/metadata")
	if len(meta) != 4 {
		t.Fatalf("metadata of %d instances, want 4", len(meta))
	}
	m := meta[0]
	series, sop := m.str("0020000E"), m.str("00080018")
	if !strings.HasSuffix(m["7FE00010"].BulkDataURI, "/instances/"+sop+"/bulk/7FE00010") || m["00280010"].VR != "US" {
		t.Fatalf("metadata: pixel data %+v, rows %+v", m["7FE00010"], m["00280010"])
	}
	inst := "/studies/" + study + "/series/" + series + "/instances/" + sop

	resp, body = dw(t, a, "GET", inst+"/frames/1", map[string]string{"Accept": `multipart/related; type="application/octet-stream"; transfer-syntax=*`}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("frames: %d %s", resp.StatusCode, body)
	}
	if _, fr := parts(t, resp, body); len(fr) != 1 || len(fr[0].data) != 64*64*2 {
		t.Fatalf("frame parts: %d", len(fr))
	}
	if resp, body := dwGet(t, a, inst+"/frames/2"); resp.StatusCode != 400 {
		t.Errorf("frame 2 of a single-frame instance: %d %s", resp.StatusCode, body)
	}

	resp, body = dw(t, a, "GET", inst+"/rendered?window=40,400&viewport=32,32", map[string]string{"Accept": "image/png"}, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("rendered: %d %s", resp.StatusCode, body)
	}
	img, err := png.Decode(bytes.NewReader(body))
	if err != nil || img.Bounds().Dx() != 32 || img.Bounds().Dy() != 32 {
		t.Fatalf("rendered PNG: %v %v", err, img)
	}
	if resp, _ := dw(t, a, "GET", inst+"/rendered", map[string]string{"Accept": "image/gif"}, nil); resp.StatusCode != 406 {
		t.Errorf("rendered as GIF: %d, want 406", resp.StatusCode)
	}

	resp, body = dw(t, a, "GET", inst+"/bulk/7FE00010", map[string]string{"Accept": "application/octet-stream"}, nil)
	if resp.StatusCode != 200 || len(body) != 64*64*2 {
		t.Fatalf("bulk data: %d, %d bytes", resp.StatusCode, len(body))
	}

	// gzip when asked.
	resp, body = dw(t, a, "GET", "/studies/"+study+"/metadata", map[string]string{"Accept-Encoding": "gzip"}, nil)
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip: %v", resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if plain, err := io.ReadAll(zr); err != nil || !json.Valid(plain) {
		t.Fatalf("gunzipped metadata: %v", err)
	}

	// A transfer syntax other than the stored one: 406 naming it.
	resp, body = dw(t, a, "GET", inst, map[string]string{"Accept": `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50`}, nil)
	if resp.StatusCode != 406 || !strings.Contains(string(body), "1.2.840.10008.1.2.1") {
		t.Errorf("transcoding asked: %d %s", resp.StatusCode, body)
	}
}

// STOW-RS: stored only after the commit, per-instance results, 200, 202
// and 409 as PS3.18 says, and a study in the path enforced.
func TestDICOMwebStore(t *testing.T) {
	a := newNode(t, "Alpha")
	study, files := ctStudy(t, 7, 3, "")
	ct, body := stowBody(t, files[0].Data, files[1].Data)
	resp, out := dw(t, a, "POST", "/studies", map[string]string{"Content-Type": ct}, body)
	if resp.StatusCode != 200 {
		t.Fatalf("store: %d %s", resp.StatusCode, out)
	}
	var res dwObject
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if len(res["00081199"].Value) != 2 || res["00081198"].Value != nil {
		t.Fatalf("store answer: %s", out)
	}
	if insts, _ := a.Instances(study); len(insts) != 2 {
		t.Fatalf("%d instances stored, want 2", len(insts))
	}

	// One good, one garbage: 202 with one failure.
	ct, body = stowBody(t, files[2].Data, []byte("not dicom at all"))
	resp, out = dw(t, a, "POST", "/studies/"+study, map[string]string{"Content-Type": ct}, body)
	if resp.StatusCode != 202 || !strings.Contains(string(out), `"00081197":{"vr":"US","Value":[49152]}`) {
		t.Fatalf("mixed store: %d %s", resp.StatusCode, out)
	}
	// An instance of another study, posted to this one: 409, nothing stored.
	other, ofiles := ctStudy(t, 8, 1, "")
	ct, body = stowBody(t, ofiles[0].Data)
	resp, out = dw(t, a, "POST", "/studies/"+study, map[string]string{"Content-Type": ct}, body)
	if resp.StatusCode != 409 || !strings.Contains(string(out), `"Value":[43264]`) {
		t.Fatalf("wrong study: %d %s", resp.StatusCode, out)
	}
	if _, err := a.Instances(other); err == nil {
		t.Error("the other study's instance was stored")
	}
	// Not multipart/related: 415; broken framing: 400.
	if resp, out := dw(t, a, "POST", "/studies", map[string]string{"Content-Type": "application/dicom"}, files[0].Data); resp.StatusCode != 415 {
		t.Errorf("plain body: %d %s", resp.StatusCode, out)
	}
	if resp, out := dw(t, a, "POST", "/studies", map[string]string{"Content-Type": `multipart/related; type="application/dicom"; boundary=xyz`}, []byte("--nope\r\n")); resp.StatusCode != 400 {
		t.Errorf("broken framing: %d %s", resp.StatusCode, out)
	}
	if !hasAudit(auditLog(t, a), consent.ActImport, study) {
		t.Error("store not audited")
	}

	// A part larger than archive.max_instance_size: refused, nothing
	// stored, the node serves on.
	small := newNode(t, "Small", nodeSetup{cfg: func(c *Config) { c.Archive.MaxInstanceSize = 4096 }})
	ct, body = stowBody(t, files[0].Data)
	resp, out = dw(t, small, "POST", "/studies", map[string]string{"Content-Type": ct}, body)
	if resp.StatusCode != 409 && resp.StatusCode != 413 {
		t.Fatalf("oversized part: %d %s", resp.StatusCode, out)
	}
	if st, _ := small.Studies(); len(st) != 0 {
		t.Errorf("an oversized instance was stored: %v", st)
	}
	if resp, _ := dwGet(t, small, "/studies"); resp.StatusCode != 200 {
		t.Errorf("the node stopped serving after an oversized part: %d", resp.StatusCode)
	}
}

// Error paths every DICOMweb client can hit, and who may ask.
func TestDICOMwebRefusals(t *testing.T) {
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.HTTP.CORSOrigins = []string{"http://viewer.test"} }})
	study, files := ctStudy(t, 3, 1, "")
	importFiles(t, a, files)
	cases := []struct {
		name, path string
		hdr        map[string]string
		status     int
	}{
		{"no token", "/studies", map[string]string{"Authorization": ""}, 401},
		{"wrong token", "/studies", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"bad study UID", "/studies/1..2/metadata", nil, 400},
		{"unknown study", "/studies/1.2.3.4/metadata", nil, 404},
		{"unknown series", "/studies/" + study + "/series/1.2.3/metadata", nil, 404},
		{"XML asked", "/studies", map[string]string{"Accept": "application/dicom+xml"}, 406},
		{"unknown parameter", "/studies?NoSuchKeyword=1", nil, 400},
		{"negative limit", "/studies?limit=-1", nil, 400},
		{"no such resource", "/workitems", nil, 404},
	}
	for _, c := range cases {
		resp, body := dw(t, a, "GET", c.path, c.hdr, nil)
		if resp.StatusCode != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, body, c.status)
			continue
		}
		if c.status != 401 && jsonError(t, body) == "" {
			t.Errorf("%s: no message", c.name)
		}
		if strings.Contains(string(body), files[0].Name) {
			t.Errorf("%s: the answer names a file", c.name)
		}
	}
	// CORS: a preflight from the configured origin, none for another.
	resp, _ := dw(t, a, "OPTIONS", "/studies", map[string]string{"Authorization": "", "Origin": "http://viewer.test", "Access-Control-Request-Method": "GET"}, nil)
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "http://viewer.test" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = dw(t, a, "OPTIONS", "/studies", map[string]string{"Authorization": "", "Origin": "http://evil.test", "Access-Control-Request-Method": "GET"}, nil)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode == 204 {
		t.Errorf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
}

// Every corpus file that imports can be retrieved byte for byte and
// described for metadata; frames come out for those with pixel data.
func TestDICOMwebCorpus(t *testing.T) {
	a := newNode(t, "Alpha")
	type held struct{ study, series, sop string }
	var list []held
	for _, row := range readCorpus(t) {
		if row.outcome != "parse-ok" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(corpus, row.file))
		if err != nil {
			t.Fatal(err)
		}
		res := a.Import(t.Context(), data)
		if res.Outcome != OutcomeStored {
			continue
		}
		inst, err := dicomio.Parse(data, dicomio.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, held{inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID})
	}
	if len(list) < 15 {
		t.Fatalf("only %d corpus files stored", len(list))
	}
	for _, h := range list {
		path := "/studies/" + h.study + "/series/" + h.series + "/instances/" + h.sop
		resp, body := dwGet(t, a, path+"/metadata")
		if resp.StatusCode != 200 || !json.Valid(body) {
			t.Errorf("%s metadata: %d %.200s", h.sop, resp.StatusCode, body)
			continue
		}
		resp, body = dw(t, a, "GET", path, map[string]string{"Accept": `multipart/related; type="application/dicom"; transfer-syntax=*`}, nil)
		if resp.StatusCode != 200 {
			t.Errorf("%s retrieve: %d %s", h.sop, resp.StatusCode, body)
			continue
		}
		want, _, _ := a.InstanceData(h.study, h.sop)
		if _, ps := parts(t, resp, body); len(ps) != 1 || !bytes.Equal(ps[0].data, want) {
			t.Errorf("%s: retrieved bytes differ from the stored instance", h.sop)
		}
	}
	_ = synth.File{}
}

// DICOMweb by role: a clinician's token searches, retrieves and stores,
// and the audit names that user; an auditor's token is refused (403); a
// disabled user's token is refused (401).
func TestDICOMwebRoles(t *testing.T) {
	a := newNode(t, "Alpha")
	study, files := ctStudy(t, 5, 2, "")
	importFiles(t, a, files[:1])
	clin, clinTok := addUser(t, a, "dr.house", api.RoleClinician, "")
	_, audTok := addUser(t, a, "privacy.officer", api.RoleAuditor, "")
	as := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	if resp, body := dw(t, a, "GET", "/studies", as(clinTok), nil); resp.StatusCode != 200 {
		t.Fatalf("clinician search: %d %s", resp.StatusCode, body)
	}
	if resp, body := dw(t, a, "GET", "/studies/"+study+"/metadata", as(clinTok), nil); resp.StatusCode != 200 {
		t.Fatalf("clinician metadata: %d %s", resp.StatusCode, body)
	}
	ct, body := stowBody(t, files[1].Data)
	h := as(clinTok)
	h["Content-Type"] = ct
	if resp, out := dw(t, a, "POST", "/studies", h, body); resp.StatusCode != 200 {
		t.Fatalf("clinician store: %d %s", resp.StatusCode, out)
	}
	found := false
	for _, e := range auditLog(t, a) {
		if e.Action == consent.ActInstanceRead && e.Study == study && e.Actor == clin.UserID {
			found = true
		}
	}
	if !found {
		t.Errorf("no instance-read entry naming the clinician %s", clin.UserID)
	}
	for _, path := range []string{"/studies", "/studies/" + study + "/metadata"} {
		resp, body := dw(t, a, "GET", path, as(audTok), nil)
		if resp.StatusCode != 403 || !strings.Contains(jsonError(t, body), "clinician or admin") {
			t.Errorf("auditor GET %s: %d %s, want 403", path, resp.StatusCode, body)
		}
	}
	if code, b := apiAs(t, a, a.keys.apiToken, "POST", "/api/v1/users/dr.house/disable", nil, nil); code != 200 {
		t.Fatalf("disable: %d %s", code, b)
	}
	if resp, _ := dw(t, a, "GET", "/studies", as(clinTok), nil); resp.StatusCode != 401 {
		t.Errorf("disabled user's token: %d, want 401", resp.StatusCode)
	}
}
