package node

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// One UID rule everywhere (issue 6, item 5): a study whose UID the archive
// accepts (here a 64-hex-digit digest, stored with a warning) can be
// listed, granted, fetched and exported; one it could not name in a URL
// ("..") is refused on import, not stored; and the API answers a bad UID
// in a path with 400, never a lookup.
func TestOneUIDRule(t *testing.T) {
	a, b := newNode(t, "Alpha"), newNode(t, "Bravo")
	link(t, a, b)

	hex := "dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed"
	study, files, err := synth.CT(synth.CTOptions{Slices: 3, Rows: 32, Cols: 32, Seed: 7, StudyUID: hex})
	if err != nil || study != hex {
		t.Fatalf("synth: %q, %v", study, err)
	}
	res := importFiles(t, a, files)
	if !strings.Contains(strings.Join(res[0].Warnings, "\n"), "Study Instance UID (0020,000D) is not a valid UID") {
		t.Errorf("warnings %q lack the UID warning", res[0].Warnings)
	}
	code, body := apiRaw(t, a, "GET", "/api/v1/studies/"+hex+"/instances", "Bearer "+a.keys.apiToken, nil)
	if code != http.StatusOK {
		t.Fatalf("instances of the hex study: %d %s", code, body)
	}
	grant(t, a, b, hex)
	waitShared(t, b, a, hex, SharedAvailable, 1, 20*time.Second)
	if st := fetchWait(t, b, hex, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch: %+v", st)
	}
	out := filepath.Join(t.TempDir(), "export")
	got, err := b.archive.Export(context.Background(), ExportRequest{Study: hex, Out: out, Actor: "admin"})
	if err != nil || len(got.Files) != 3 {
		t.Fatalf("export: %d files, %v", len(got.Files), err)
	}

	for _, bad := range []string{"..", ".", "1..2", "1.2."} {
		_, files, err := synth.CT(synth.CTOptions{Slices: 1, Rows: 16, Cols: 16, Seed: 8, StudyUID: bad})
		if err != nil {
			t.Fatal(err)
		}
		r := a.Import(context.Background(), files[0].Data)
		if r.Outcome != OutcomeRejected || !strings.Contains(r.Error, "Study Instance UID (0020,000D) is refused: UID has an empty component") {
			t.Errorf("import of study UID %q: %+v", bad, r)
		}
	}
	studies, err := a.Studies()
	if err != nil || len(studies) != 1 {
		t.Fatalf("studies after refused imports: %d, %v", len(studies), err)
	}

	for _, path := range []string{
		"/api/v1/studies/1..2/instances",
		"/api/v1/studies/1.2%2F3/instances",
		"/api/v1/studies/1.2%20x/export",
		"/api/v1/studies/1.2.3/instances/.1",
	} {
		method := "GET"
		if strings.HasSuffix(path, "/export") {
			method = "POST"
		}
		code, body := apiRaw(t, a, method, path, "Bearer "+a.keys.apiToken, []byte(`{"out":"/tmp/x"}`))
		if code != http.StatusBadRequest || !strings.Contains(jsonError(t, body), "UID") {
			t.Errorf("%s %s: %d %s, want 400 naming the UID", method, path, code, body)
		}
	}
}
