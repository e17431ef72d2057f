package interop

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ServeOHIF serves the build at the root with the generated config: the
// browser's routes fall back to index.html, a missing asset is a 404 (not
// HTML parsed as code), and the config carries the DICOMweb roots and the
// token.
func TestServeOHIF(t *testing.T) {
	requireJS(t)
	root := "http://127.0.0.1:9/dicom-web"
	base := ServeOHIF(t, root+"/", "tok'en")
	get := func(method, path string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	index, err := os.ReadFile(filepath.Join(jsDir(), "node_modules", "@ohif", "app", "dist", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/viewer?StudyInstanceUIDs=1.2.3", "/viewer/dicomweb", "/local"} {
		if code, _, body := get("GET", p); code != 200 || body != string(index) {
			t.Errorf("GET %s: %d, index.html %v", p, code, body == string(index))
		}
	}
	for _, p := range []string{"/missing.bundle.js", "/x/y.wasm", "/nope.css", "/assets/missing.png"} {
		if code, _, _ := get("GET", p); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(jsDir(), "node_modules", "@ohif", "app", "dist"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "app.bundle.") && strings.HasSuffix(e.Name(), ".js") {
			if code, ctype, _ := get("GET", "/"+e.Name()); code != 200 || !strings.Contains(ctype, "javascript") {
				t.Errorf("GET /%s: %d %s", e.Name(), code, ctype)
			}
		}
	}
	if code, _, _ := get("POST", "/"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d", code)
	}
	code, ctype, cfg := get("GET", "/app-config.js")
	if code != 200 || !strings.Contains(ctype, "javascript") {
		t.Fatalf("GET /app-config.js: %d %s", code, ctype)
	}
	for _, want := range []string{`qidoRoot: "` + root + `"`, `wadoRoot: "` + root + `"`, `wadoUriRoot: "` + root + `"`,
		`var token = "tok'en"`, "getAuthorizationHeader", "defaultDataSourceName: 'dicomweb'"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("app-config.js lacks %s", want)
		}
	}
	if _, err := OHIFConfig("javascript:alert(1)", ""); err == nil {
		t.Error("OHIFConfig took a DICOMweb root that is not an http(s) URL")
	}
}
