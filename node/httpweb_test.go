package node

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// webUser is a browser: a cookie jar signed in through the login form.
type webUser struct {
	t    *testing.T
	n    *tnode
	hc   *http.Client
	csrf string
}

func webLogin(t *testing.T, n *tnode, name, password string) *webUser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + n.HTTPAddr()
	req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"username": {name}, "password": {password}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/app/" {
		t.Fatalf("login %s: %d %s", name, resp.StatusCode, resp.Header.Get("Location"))
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == api.CookieSession {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || !c.Secure || c.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Secure (loopback), Path=/", c)
	}
	u := &webUser{t: t, n: n, hc: hc}
	var me api.Me
	if code, b := u.do("GET", "/api/v1/me", nil, "", &me); code != 200 || me.Name != name || me.CSRF == "" {
		t.Fatalf("me: %d %s", code, b)
	}
	u.csrf = me.CSRF
	return u
}

// do calls the node with the session cookie, and the CSRF header when
// csrf is not empty.
func (u *webUser) do(method, path string, in any, csrf string, out any) (int, []byte) {
	u.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+u.n.HTTPAddr()+path, body)
	if csrf != "" {
		req.Header.Set(api.HeaderCSRF, csrf)
	}
	resp, err := u.hc.Do(req)
	if err != nil {
		u.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			u.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, b
}

// The web app's session: the login form sets an HttpOnly, SameSite cookie
// the API accepts; a change needs the session's CSRF header; roles are
// the server's; a wrong password, a cross-site form and a logout without
// the CSRF value are refused; after logout the cookie is dead.
func TestWebSession(t *testing.T) {
	n := newNode(t, "Alpha")
	addUser(t, n, "carol", api.RoleClinician, "carol-password-1")
	addUser(t, n, "audrey", api.RoleAuditor, "audrey-password-1")
	base := "http://" + n.HTTPAddr()
	noRedirect := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := noRedirect.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`name="username"`, `name="password"`, `action="/login"`, "Alpha"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("login page lacks %s", want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	post := func(form url.Values, origin string) *http.Response {
		req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(url.Values{"username": {"carol"}, "password": {"wrong"}}, base); r.StatusCode != 401 || len(r.Cookies()) != 0 {
		t.Errorf("wrong password: %d, cookies %v", r.StatusCode, r.Cookies())
	}
	if r := post(url.Values{"username": {"carol"}, "password": {"carol-password-1"}}, "http://evil.example"); r.StatusCode != 403 || len(r.Cookies()) != 0 {
		t.Errorf("cross-site login form: %d", r.StatusCode)
	}

	carol := webLogin(t, n, "carol", "carol-password-1")
	var page1 api.WorklistPage
	if code, b := carol.do("GET", "/api/v1/worklist", nil, "", &page1); code != 200 {
		t.Errorf("worklist with the cookie: %d %s", code, b)
	}
	// A change without the CSRF header, or with another session's, is
	// refused before the route runs.
	audrey := webLogin(t, n, "audrey", "audrey-password-1")
	for _, csrf := range []string{"", audrey.csrf, "00"} {
		code, b := carol.do("POST", "/api/v1/fetches", api.FetchRequest{StudyUID: "1.2.3"}, csrf, nil)
		wantCode(t, "fetch without the right CSRF header", code, b, 403, api.CodeForbidden)
	}
	code, b := carol.do("POST", "/api/v1/fetches", api.FetchRequest{StudyUID: "1.2.3"}, carol.csrf, nil)
	wantCode(t, "fetch with the CSRF header (no such share)", code, b, 404, api.CodeNotFound)
	// Roles are the server's: a clinician cannot reach admin routes, an
	// auditor only the audit.
	code, b = carol.do("GET", "/api/v1/users", nil, "", nil)
	wantCode(t, "clinician lists users", code, b, 403, api.CodeForbidden)
	code, b = carol.do("POST", "/api/v1/grants", api.GrantRequest{}, carol.csrf, nil)
	wantCode(t, "clinician grants", code, b, 403, api.CodeForbidden)
	code, b = audrey.do("GET", "/api/v1/worklist", nil, "", nil)
	wantCode(t, "auditor's worklist", code, b, 403, api.CodeForbidden)
	if code, b = audrey.do("GET", "/api/v1/audit?limit=5", nil, "", nil); code != 200 {
		t.Errorf("auditor reads the audit: %d %s", code, b)
	}
	// The audit filtered by user (name or ID) and by time.
	var mine []api.AuditEntry
	if code, b = audrey.do("GET", "/api/v1/audit?actor=carol", nil, "", &mine); code != 200 || len(mine) == 0 {
		t.Errorf("audit of carol: %d %s", code, b)
	}
	for _, e := range mine {
		if e.Actor != mine[0].Actor || !strings.HasPrefix(e.Actor, "u-") {
			t.Errorf("audit of carol has %+v", e)
		}
	}
	var before []api.AuditEntry
	if code, b = audrey.do("GET", "/api/v1/audit?actor="+mine[0].Actor+"&until=2000-01-01T00:00:00Z", nil, "", &before); code != 200 || len(before) != 0 {
		t.Errorf("audit until 2000: %d %s", code, b)
	}
	// DICOMweb takes the cookie too.
	if code, b = carol.do("GET", "/dicom-web/studies", nil, "", nil); code != 200 && code != 204 {
		t.Errorf("QIDO-RS with the cookie: %d %s", code, b)
	}

	// Logout needs the CSRF value; then the cookie is worthless.
	req, _ := http.NewRequest("POST", base+"/logout", nil)
	if resp, err := carol.hc.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("logout without CSRF: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	old := carol.hc.Jar.Cookies(&url.URL{Scheme: "http", Host: n.HTTPAddr(), Path: "/"})
	req, _ = http.NewRequest("POST", base+"/logout", nil)
	req.Header.Set(api.HeaderCSRF, carol.csrf)
	resp, err = carol.hc.Do(req)
	if err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("GET", base+"/api/v1/me", nil)
	for _, c := range old {
		req.AddCookie(c)
	}
	resp, err = noRedirect.Do(req)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("the old cookie after logout: %v %v", resp, err)
	}
	resp.Body.Close()
	requireAudit(t, n, consent.Entry{Action: api.ActLogout})
}

// The worklist lists local studies and partners' shares in one paged,
// filtered list; a share is fetched with live progress over server-sent
// events, becomes "here", and downloads as a ZIP whose DICOMDIR DCMTK
// reads and whose files are the stored instances.
func TestWebWorklistFetchDownload(t *testing.T) {
	needTool(t, "dcmdump")
	a, b := newNode(t, "Alpha"), newNode(t, "Bravo")
	link(t, a, b)
	ctx := context.Background()
	shared, files := ctStudyOf(t, synth.CTOptions{Slices: 3, Seed: 91, PatientName: "SHARED^PAT", PatientID: "PAT-SHARED"})
	importFiles(t, a, files)
	local1, _ := importCT(t, b, 92, 2)
	local2, _ := importCT(t, b, 93, 1)
	if _, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: shared, Expires: time.Hour}); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, shared, SharedAvailable, 1, 20*time.Second)
	addUser(t, b, "carol", api.RoleClinician, "carol-password-1")
	carol := webLogin(t, b, "carol", "carol-password-1")

	list := func(q string) api.WorklistPage {
		t.Helper()
		var p api.WorklistPage
		if code, body := carol.do("GET", "/api/v1/worklist"+q, nil, "", &p); code != 200 {
			t.Fatalf("worklist%s: %d %s", q, code, body)
		}
		return p
	}
	all := list("")
	if all.Total != 3 || len(all.Rows) != 3 {
		t.Fatalf("worklist: %+v", all)
	}
	byUID := map[string]api.WorklistStudy{}
	for _, r := range all.Rows {
		byUID[r.StudyUID] = r
	}
	if r := byUID[shared]; r.Location != api.LocationPartner || r.Origin == nil || r.Origin.Name != "Alpha" || r.Shared == nil ||
		r.Shared.State != api.SharedAvailable || r.Instances != 3 {
		t.Errorf("the shared row: %+v", r)
	}
	if r := byUID[local1]; r.Location != api.LocationHere || r.Origin != nil || !r.Complete || r.Instances != 2 {
		t.Errorf("a local row: %+v", r)
	}
	if p := list("?location=partner"); p.Total != 1 || p.Rows[0].StudyUID != shared {
		t.Errorf("location=partner: %+v", p)
	}
	if p := list("?source=local&limit=1"); p.Total != 2 || len(p.Rows) != 1 {
		t.Errorf("source=local, limit 1: %+v", p)
	}
	if p := list("?source=local&limit=1&offset=1"); len(p.Rows) != 1 || p.Rows[0].StudyUID == list("?source=local&limit=1").Rows[0].StudyUID {
		t.Errorf("the second page: %+v", p)
	}
	if p := list("?patient_id=pat-shared"); p.Total != 1 || p.Rows[0].StudyUID != shared {
		t.Errorf("patient_id: %+v", p)
	}
	if p := list("?source=alpha&modality=ct"); p.Total != 1 {
		t.Errorf("source=alpha: %+v", p)
	}
	if p := list("?from=21000101"); p.Total != 0 || p.Rows == nil {
		t.Errorf("from the future: %+v", p)
	}
	_ = local2
	for _, q := range []string{"?limit=0", "?limit=501", "?from=2024-01-01", "?location=moon", "?offset=-1", "?bogus=1", "?limit=1&limit=2"} {
		code, body := carol.do("GET", "/api/v1/worklist"+q, nil, "", nil)
		wantCode(t, "worklist"+q, code, body, 400, api.CodeBadRequest)
	}

	// Fetch through the API, following the server-sent events.
	var job api.FetchJob
	if code, body := carol.do("POST", "/api/v1/fetches", api.FetchRequest{StudyUID: shared}, carol.csrf, &job); code != 200 {
		t.Fatalf("start fetch: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", "http://"+b.HTTPAddr()+"/api/v1/fetches/"+job.FetchID+"/events", nil)
	resp, err := carol.hc.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != api.ContentTypeEventStream {
		t.Fatalf("events: %v %v", resp, err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var event string
	var last api.FetchJob
	ended := false
	for !ended && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &last); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			ended = event == "end"
		}
	}
	resp.Body.Close()
	if !ended || last.State != api.FetchDone || last.InstancesDone != 3 {
		t.Fatalf("the events ended with %q %+v", event, last)
	}
	var jobs []api.FetchJob
	if code, body := carol.do("GET", "/api/v1/fetches", nil, "", &jobs); code != 200 || len(jobs) != 1 || jobs[0].FetchID != job.FetchID || jobs[0].State != api.FetchDone {
		t.Errorf("the fetches list: %d %s", code, body)
	}
	var sendJobs []api.SendJob
	if code, body := carol.do("GET", "/api/v1/sends", nil, "", &sendJobs); code != 200 || len(sendJobs) != 0 {
		t.Errorf("the sends list: %d %s", code, body)
	}
	if code, body := carol.do("GET", "/api/v1/fetches/nope/events", nil, "", nil); code != 404 {
		t.Errorf("events of no fetch: %d %s", code, body)
	}
	if p := list("?patient_id=PAT-SHARED"); p.Rows[0].Location != api.LocationHere || !p.Rows[0].Complete || p.Rows[0].Shared == nil {
		t.Errorf("after the fetch: %+v", p.Rows[0])
	}

	// Download the fetched study.
	req, _ = http.NewRequest("GET", "http://"+b.HTTPAddr()+"/api/v1/studies/"+shared+"/download", nil)
	resp, err = carol.hc.Do(req)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != api.ContentTypeZip {
		t.Fatalf("download: %v %v", resp, err)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") || strings.Contains(cd, "PAT") {
		t.Errorf("Content-Disposition %q", cd)
	}
	zb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stored := map[string]bool{}
	for _, f := range files {
		stored[string(f.Data)] = true
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		rc, _ := f.Open()
		data, _ := io.ReadAll(rc)
		rc.Close()
		if f.Name != "DICOMDIR" && !stored[string(data)] {
			t.Errorf("%s is not one of the imported files", f.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
	}
	if len(names) != 4 || names[0] != "DICOMDIR" || names[1] != "DICOM/S0000001/I0000001" {
		t.Errorf("zip entries %v", names)
	}
	out, err := exec.Command("dcmdump", "-dc", filepath.Join(dir, "DICOMDIR")).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("W: ")) || bytes.Contains(out, []byte("E: ")) {
		t.Fatalf("dcmdump DICOMDIR: %v\n%s", err, out)
	}
	for _, want := range []string{"PATIENT", "STUDY", "SERIES", "IMAGE", `DICOM\S0000001\I0000003`, shared, "PAT-SHARED"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("DICOMDIR lacks %q", want)
		}
	}
	requireAudit(t, b, consent.Entry{Action: consent.ActExport, Study: shared})
	// A study not here, and one of another user, are not found.
	code, body := carol.do("GET", "/api/v1/studies/1.2.3.4/download", nil, "", nil)
	wantCode(t, "download of no study", code, body, 404, api.CodeNotFound)
	_ = dicomio.MediaStorageDirectoryStorage
}
