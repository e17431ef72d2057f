// Package interop proves a DICOMweb server with real programs nobody here
// wrote: the npm package dicomweb-client driven from Node.js
// ([RunDicomwebClient]) and the OHIF viewer's prebuilt build in Debian's
// headless Chromium driven by playwright-core ([ServeOHIF], [RunOHIF]).
// The programs live in interop/js (package.json and its lockfile);
// `make deps` installs them with `npm ci`, and Node.js, Chromium and
// Orthanc's DICOMweb plugin (the reference server of TestOrthancDicomweb)
// from Debian.
//
// The helpers take any DICOMweb base URL and an optional bearer token, so
// the same checks run against Orthanc and against a pacsnet node's
// /dicom-web. They are test helpers: they fail or skip the testing.TB they
// are given.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/pacsnet/pacsnet/dicomio"
)

// Expectation describes what a DICOMweb server holds (Studies) and what
// dicomweb-check.mjs stores into it with STOW-RS and reads back (Store),
// with the paths of the original files the answers are compared with.
// [StudiesOf] builds it from files.
type Expectation struct {
	Studies []Study `json:"studies"`
	Store   []Study `json:"store,omitempty"`
	// NotRendered are transfer syntaxes the server does not render: a
	// rendered request for such an instance must be refused with 406 and
	// a message (PS3.18 8.3.5: a clear refusal, not a wrong image).
	NotRendered []string `json:"notRendered,omitempty"`
}

// Study is one expected study.
type Study struct {
	StudyInstanceUID string   `json:"studyInstanceUID"`
	PatientID        string   `json:"patientID"`
	StudyDate        string   `json:"studyDate"`
	Series           []Series `json:"series"`
}

// Series is one expected series.
type Series struct {
	SeriesInstanceUID string     `json:"seriesInstanceUID"`
	Modality          string     `json:"modality"`
	Instances         []Instance `json:"instances"`
}

// Instance is one expected instance and the file it came from. Rows,
// Columns, Frames, BitsAllocated and SamplesPerPixel are zero for an
// instance without pixel data (then no frame or rendered check).
type Instance struct {
	SOPInstanceUID    string `json:"sopInstanceUID"`
	SOPClassUID       string `json:"sopClassUID"`
	TransferSyntaxUID string `json:"transferSyntaxUID"`
	Path              string `json:"path"`
	Rows              int    `json:"rows,omitempty"`
	Columns           int    `json:"columns,omitempty"`
	Frames            int    `json:"frames,omitempty"`
	BitsAllocated     int    `json:"bitsAllocated,omitempty"`
	SamplesPerPixel   int    `json:"samplesPerPixel,omitempty"`
}

// StudiesOf reads Part-10 files and groups them into studies and series
// (in the order the files are given). Paths are made absolute, since the
// checks run in another working directory.
func StudiesOf(t testing.TB, paths ...string) []Study {
	t.Helper()
	var studies []Study
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			t.Fatal(err)
		}
		in, err := dicomio.Parse(data, dicomio.DefaultLimits())
		if err != nil {
			t.Fatalf("parse %s: %v", filepath.Base(p), err)
		}
		if in.Raw {
			t.Fatalf("%s is a bare data set: the checks compare Part-10 files", filepath.Base(p))
		}
		inst := Instance{SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID,
			TransferSyntaxUID: in.TransferSyntaxUID, Path: abs}
		imageGeometry(abs, &inst, in.NumberOfFrames)

		si := slices.IndexFunc(studies, func(s Study) bool { return s.StudyInstanceUID == in.StudyInstanceUID })
		if si < 0 {
			studies = append(studies, Study{StudyInstanceUID: in.StudyInstanceUID, PatientID: in.PatientID, StudyDate: in.StudyDate})
			si = len(studies) - 1
		}
		st := &studies[si]
		ri := slices.IndexFunc(st.Series, func(s Series) bool { return s.SeriesInstanceUID == in.SeriesInstanceUID })
		if ri < 0 {
			st.Series = append(st.Series, Series{SeriesInstanceUID: in.SeriesInstanceUID, Modality: in.Modality})
			ri = len(st.Series) - 1
		}
		st.Series[ri].Instances = append(st.Series[ri].Instances, inst)
	}
	return studies
}

// imageGeometry fills the pixel attributes with a second, independent
// parser (github.com/suyashkumar/dicom), leaving them zero where it cannot
// read the file or there is no pixel data.
func imageGeometry(path string, inst *Instance, frames int) {
	ds, err := dicom.ParseFile(path, nil, dicom.SkipPixelData())
	if err != nil {
		return
	}
	if _, err := ds.FindElementByTag(tag.PixelData); err != nil {
		return
	}
	first := func(t tag.Tag) int {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return 0
		}
		if v, ok := e.Value.GetValue().([]int); ok && len(v) > 0 {
			return v[0]
		}
		return 0
	}
	inst.Rows, inst.Columns = first(tag.Rows), first(tag.Columns)
	inst.BitsAllocated, inst.SamplesPerPixel = first(tag.BitsAllocated), first(tag.SamplesPerPixel)
	if inst.Rows == 0 || inst.Columns == 0 {
		inst.Rows, inst.Columns = 0, 0
		return
	}
	inst.Frames = max(frames, 1)
}

// jsDir is interop/js, found from this source file so that the helpers
// work from any package's test (whose working directory is its own).
func jsDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	return filepath.Join(filepath.Dir(file), "js")
}

// requireJS skips t unless Node.js and interop/js/node_modules are there,
// and returns interop/js.
func requireJS(t testing.TB) string {
	t.Helper()
	dir := jsDir()
	if dir == "" {
		t.Fatal("interop: cannot locate interop/js (built with -trimpath?)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("Node.js not installed (make deps installs it)")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		t.Skip("interop/js/node_modules missing (make deps runs npm ci there)")
	}
	return dir
}

// ChromiumPath is Debian's Chromium, the browser RunOHIF drives.
const ChromiumPath = "/usr/bin/chromium"

// RequireTools skips t with a clear message unless everything the
// helpers need is installed: Node.js, the npm packages (interop/js/
// node_modules) and, for browser, Debian's Chromium. All of it comes from
// `make deps`.
func RequireTools(t testing.TB, browser bool) {
	t.Helper()
	requireJS(t)
	if browser {
		if _, err := os.Stat(ChromiumPath); err != nil {
			t.Skip("Chromium not installed (make deps installs Debian's chromium)")
		}
	}
}

// check is one line of a script's report.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// runScript runs node on one of interop/js's scripts with env added, logs
// each passed check, fails t with each failed check's detail, and fails t
// if the script exits non-zero for any other reason. It returns the
// checks.
func runScript(t testing.TB, timeout time.Duration, script string, env []string, args ...string) []check {
	t.Helper()
	dir := requireJS(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	// Its own process group, so that a timeout ends the browser that
	// playwright started too, not only node.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	var checks []check
	failed := 0
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var c check
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil || c.Name == "" {
			t.Logf("%s: %s", script, sc.Text())
			continue
		}
		checks = append(checks, c)
		if c.OK {
			t.Logf("%s: ok   %s: %s", script, c.Name, c.Detail)
		} else {
			failed++
			t.Errorf("%s: FAIL %s: %s", script, c.Name, c.Detail)
		}
	}
	t.Logf("%s: %d checks in %v", script, len(checks), time.Since(start).Round(time.Millisecond))
	switch {
	case ctx.Err() != nil:
		t.Errorf("%s did not finish in %v; stderr:\n%s", script, timeout, stderr.String())
	case runErr != nil && failed == 0:
		t.Errorf("%s: %v; stderr:\n%s", script, runErr, stderr.String())
	case runErr == nil && len(checks) == 0:
		t.Errorf("%s reported no checks; stderr:\n%s", script, stderr.String())
	case stderr.Len() > 0 && failed > 0:
		t.Logf("%s stderr:\n%s", script, stderr.String())
	}
	return checks
}

// RunDicomwebClient runs interop/js/dicomweb-check.mjs (dicomweb-client)
// against the DICOMweb service at baseURL (e.g. http://127.0.0.1:8042/
// dicom-web) with an optional bearer token, checking QIDO-RS searches
// with filters and paging, WADO-RS study/series/instance retrieval
// (bytes compared with the originals after the preamble), metadata,
// bulk data, frames and rendered images, and STOW-RS of expect.Store. It
// fails t with the detail of every failed check.
func RunDicomwebClient(t testing.TB, baseURL, token string, expect Expectation) {
	t.Helper()
	requireJS(t)
	b, err := json.Marshal(expect)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "expect.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	runScript(t, 3*time.Minute, "dicomweb-check.mjs", []string{"DICOMWEB_TOKEN=" + token}, baseURL, path)
}

// RunOHIF opens the OHIF page at pageURL (from [ServeOHIF]) in Debian's
// headless Chromium through interop/js/ohif-check.mjs: the study list
// must list studyUID, and the viewer opened on it must draw non-blank
// pixels. A screenshot of the viewer is saved to screenshot (PNG). It
// fails t with the detail of every failed check; the browser's console
// errors are logged.
func RunOHIF(t testing.TB, pageURL, studyUID, screenshot string) {
	t.Helper()
	RequireTools(t, true)
	runScript(t, 3*time.Minute, "ohif-check.mjs", []string{"CHROMIUM=" + ChromiumPath}, pageURL, studyUID, screenshot)
}

// ServeOHIF serves OHIF's prebuilt viewer (interop/js/node_modules/
// @ohif/app/dist) at the root of a loopback HTTP server until t ends, with
// an app-config.js whose one data source is the DICOMweb service at
// dicomwebRoot, reached with the bearer token if one is given. It returns
// the server's URL (no trailing slash).
//
// Paths without a file fall back to index.html (OHIF routes in the
// browser: /viewer?StudyInstanceUIDs=...), except asset paths (.js, .wasm,
// .css, ...), which answer 404 when missing so that a missing chunk fails
// loudly instead of being parsed as HTML.
func ServeOHIF(t testing.TB, dicomwebRoot, token string) (url string) {
	t.Helper()
	dir := filepath.Join(requireJS(t), "node_modules", "@ohif", "app", "dist")
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		t.Fatalf("OHIF's build is missing (%v): run make deps", err)
	}
	cfg, err := OHIFConfig(dicomwebRoot, token)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ohifHandler(dir, cfg), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve OHIF: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return "http://" + ln.Addr().String()
}

// assetExt are the extensions of files OHIF loads as code or data: a
// missing one is a 404, never index.html.
var assetExt = map[string]bool{
	".js": true, ".mjs": true, ".map": true, ".wasm": true, ".css": true, ".json": true, ".ico": true,
	".png": true, ".svg": true, ".jpg": true, ".gif": true, ".woff": true, ".woff2": true, ".ttf": true,
	".txt": true, ".xml": true, ".webmanifest": true, ".onnx": true, ".data": true,
}

func ohifHandler(dir string, appConfig []byte) http.Handler {
	files := http.FileServer(http.Dir(dir))
	index := filepath.Join(dir, "index.html")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		p := path.Clean("/" + r.URL.Path)
		if p == "/app-config.js" {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(appConfig)
			return
		}
		if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); err == nil && !fi.IsDir() {
			files.ServeHTTP(w, r)
			return
		}
		if assetExt[strings.ToLower(path.Ext(p))] {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.ServeFile(w, r, index)
	})
}

// OHIFConfig is the app-config.js ServeOHIF serves: OHIF's own defaults
// where they suit a DICOMweb archive, one data source "dicomweb" whose
// QIDO, WADO-RS and WADO-URI roots are dicomwebRoot, and, with a token,
// the bearer token on every request OHIF makes to it.
//
// OHIF 3.13's DICOMweb data source takes its Authorization header from
// its userAuthenticationService, not from the data source's
// requestOptions (which the config still carries, for older OHIFs and
// for readers): a tiny extension in the config sets that service's
// header before the data source is created.
func OHIFConfig(dicomwebRoot, token string) ([]byte, error) {
	root := strings.TrimRight(dicomwebRoot, "/")
	if !strings.HasPrefix(root, "http://") && !strings.HasPrefix(root, "https://") {
		return nil, fmt.Errorf("ohif config: DICOMweb root %q is not an http(s) URL", dicomwebRoot)
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var b strings.Builder
	fmt.Fprintf(&b, `// Generated by interop.ServeOHIF: OHIF against one DICOMweb service.
(function () {
  var token = %s;
  var auth = token ? { Authorization: 'Bearer ' + token } : {};
  window.config = {
    routerBasename: '/',
    extensions: [{
      id: 'pacsnet-interop-auth',
      preRegistration: function (ctx) {
        if (!token) return;
        ctx.servicesManager.services.userAuthenticationService.setServiceImplementation({
          getAuthorizationHeader: function () { return auth; },
        });
      },
    }],
    modes: [],
    customizationService: {},
    showStudyList: true,
    maxNumberOfWebWorkers: 2,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: false,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    investigationalUseDialog: { option: 'never' },
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 10 },
    showErrorDetails: 'always',
    defaultDataSourceName: 'dicomweb',
    dataSources: [{
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'dicomweb',
      configuration: {
        friendlyName: 'DICOMweb under test',
        name: 'dicomweb',
        qidoRoot: %s,
        wadoRoot: %s,
        wadoUriRoot: %s,
        qidoSupportsIncludeField: true,
        supportsReject: false,
        supportsStow: true,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        staticWado: false,
        singlepart: 'bulkdata,video',
        bulkDataURI: { enabled: true },
        omitQuotationForMultipartRequest: true,
        requestOptions: token ? { auth: function () { return 'Bearer ' + token; } } : {},
      },
    }],
  };
})();
`, q(token), q(root), q(root), q(root))
	return []byte(b.String()), nil
}
