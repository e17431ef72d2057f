package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// orthancDicomWebPlugin is where Debian's orthanc-dicomweb puts the plugin.
const orthancDicomWebPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

// orthanc is an Orthanc server (Debian's binary, with the DICOMweb
// plugin) run by a test on loopback ports with its own storage folder; it
// is stopped by its PID when the test ends. (node/orthanc_test.go starts
// Orthanc the same way; test helpers cannot be imported across packages.)
type orthanc struct {
	http string // port
	cmd  *exec.Cmd
}

func startOrthanc(t testing.TB) *orthanc {
	t.Helper()
	bin, err := exec.LookPath("Orthanc")
	if err != nil {
		t.Skip("Orthanc not installed (make deps installs the orthanc package)")
	}
	if _, err := os.Stat(orthancDicomWebPlugin); err != nil {
		t.Skip("Orthanc's DICOMweb plugin not installed (make deps installs orthanc-dicomweb)")
	}
	dir := t.TempDir()
	o := &orthanc{http: freeTCPPort(t)}
	hp, _ := strconv.Atoi(o.http)
	dp, _ := strconv.Atoi(freeTCPPort(t))
	cfg := map[string]any{
		"Name": "pacsnet-interop", "StorageDirectory": filepath.Join(dir, "storage"), "IndexDirectory": filepath.Join(dir, "index"),
		"HttpPort": hp, "DicomPort": dp, "DicomAet": "ORTHANC", "RemoteAccessAllowed": false,
		"AuthenticationEnabled": false, "DicomCheckCalledAet": false,
		"Plugins": []string{orthancDicomWebPlugin},
		"DicomWeb": map[string]any{
			"Enable": true, "Root": "/dicom-web/", "EnableWado": true, "WadoRoot": "/wado", "Ssl": false,
			"StudiesMetadata": "Full", "SeriesMetadata": "Full",
		},
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	o.cmd = exec.Command(bin, path)
	o.cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	o.cmd.Stdout, o.cmd.Stderr = &logBuf, &logBuf
	if err := o.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { o.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		o.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			o.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("Orthanc's log:\n%s", logBuf.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := o.rest("GET", "/plugins", nil); err == nil {
			var plugins []string
			json.Unmarshal(b, &plugins)
			for _, p := range plugins {
				if p == "dicom-web" {
					return o
				}
			}
			t.Fatalf("Orthanc runs without its DICOMweb plugin (plugins %v):\n%s", plugins, logBuf.String())
		}
		select {
		case <-done:
			t.Fatalf("Orthanc exited:\n%s", logBuf.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Orthanc did not answer in 30s:\n%s", logBuf.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (o *orthanc) url() string { return "http://127.0.0.1:" + o.http }

func (o *orthanc) rest(method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, o.url()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return b, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return b, nil
}

// proxy serves target on a loopback port until t ends, adding the CORS
// headers a viewer on another origin needs (answering preflights). With a
// token it answers 401 to a request without that bearer token, as a
// pacsnet node does; with corrupt it flips one byte in every
// multipart/related answer, to prove that the checks notice.
func proxy(t testing.TB, target, token string, corrupt bool) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(r *http.Response) error {
		r.Header.Set("Access-Control-Allow-Origin", "*")
		r.Header.Set("Access-Control-Expose-Headers", "*")
		if !corrupt || !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/related") {
			return nil
		}
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err
		}
		if len(b) > 300 {
			b[len(b)-200] ^= 0x55
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		r.Header.Del("Content-Encoding")
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "*")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("Access-Control-Allow-Origin", "*")
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		if corrupt {
			r.Header.Del("Accept-Encoding")
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func freeTCPPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// corpus is a few files of testdata/dicom with distinct instances: native
// 16-bit CT and MR, CR, JPEG baseline RGB, JPEG lossless NM.
var corpus = []string{
	"ct_explicit-le_private-tags__CT_small.dcm",
	"mr_explicit-le__MR_small.dcm",
	"cr_small__6154.dcm",
	"sc-rgb_jpeg-baseline__SC_rgb_jpeg_dcmtk.dcm",
	"nm_jpeg-lossless-sv1__JPEG-LL.dcm",
}

// Orthanc's DICOMweb plugin, the reference server, passes the harness:
// dicomweb-client's QIDO/WADO/STOW checks over part of the test corpus and
// a generated CT (loaded through Orthanc's REST API, a second generated
// study stored with STOW-RS), and OHIF, served here and pointed at
// Orthanc's /dicom-web, lists the CT and draws it.
func TestOrthancDicomweb(t *testing.T) {
	RequireTools(t, true)
	start := time.Now()
	o := startOrthanc(t)
	t.Logf("Orthanc up in %v", time.Since(start).Round(time.Millisecond))

	tmp := t.TempDir()
	ctUID, ctPaths, err := synth.WriteCT(filepath.Join(tmp, "ct"), synth.CTOptions{Slices: 24, Rows: 256, Cols: 256, Seed: 1010})
	if err != nil {
		t.Fatal(err)
	}
	_, stowPaths, err := synth.WriteCT(filepath.Join(tmp, "stow"), synth.CTOptions{Slices: 3, Rows: 64, Cols: 64, Seed: 1011})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range corpus {
		paths = append(paths, filepath.Join("..", "testdata", "dicom", f))
	}
	paths = append(paths, ctPaths...)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.rest("POST", "/instances", b); err != nil {
			t.Fatalf("load %s into Orthanc: %v", filepath.Base(p), err)
		}
	}
	expect := Expectation{Studies: StudiesOf(t, paths...), Store: StudiesOf(t, stowPaths...)}
	if len(expect.Studies) != len(corpus)+1 {
		t.Fatalf("%d studies from %d files, want %d", len(expect.Studies), len(paths), len(corpus)+1)
	}
	t.Logf("%d instances in %d studies loaded in %v", len(paths), len(expect.Studies), time.Since(start).Round(time.Millisecond))

	root := o.url() + "/dicom-web"
	step := time.Now()
	RunDicomwebClient(t, root, "", expect)
	t.Logf("dicomweb-client checks: %v", time.Since(step).Round(time.Millisecond))
	if t.Failed() {
		return
	}

	// The checks notice a server that sends wrong bytes: one byte flipped
	// in every multipart answer fails the retrievals, not the searches.
	rec := &recorder{TB: t}
	RunDicomwebClient(rec, proxy(t, o.url(), "", true)+"/dicom-web", "", expect)
	for _, want := range []string{"FAIL wado.study:", "FAIL wado.instance:", "FAIL wado.frames:"} {
		if !slices.ContainsFunc(rec.failures, func(f string) bool { return strings.Contains(f, want) }) {
			t.Errorf("a corrupting server went unnoticed: no %q among the failures %q", want, rec.failures)
		}
	}
	if slices.ContainsFunc(rec.failures, func(f string) bool { return strings.Contains(f, "FAIL qido.") }) {
		t.Errorf("a QIDO check failed although only multipart answers were corrupted: %q", rec.failures)
	}

	// OHIF runs on another origin than Orthanc, which sends no CORS
	// headers and takes no token: the browser reaches Orthanc through a
	// proxy that adds the headers and, as a pacsnet node, refuses requests
	// without the bearer token, so that the token's way through OHIF's
	// configuration is proven too.
	step = time.Now()
	const token = "interop-test-token"
	page := ServeOHIF(t, proxy(t, o.url(), token, false)+"/dicom-web", token)
	shot := filepath.Join(tmp, "ohif-orthanc.png")
	if dir := os.Getenv("INTEROP_SCREENSHOTS"); dir != "" {
		shot = filepath.Join(dir, "ohif-orthanc.png")
	}
	RunOHIF(t, page, ctUID, shot)
	t.Logf("OHIF checks: %v; screenshot %s", time.Since(step).Round(time.Millisecond), shot)
}
