package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/cmd/internal/facility"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/interop"
	"github.com/pacsnet/pacsnet/node"
)

// interopCorpus is part of testdata/dicom with distinct instances: native
// 16-bit CT and MR, CR (MONOCHROME1), JPEG baseline RGB, JPEG lossless NM.
var interopCorpus = []string{
	"ct_explicit-le_private-tags__CT_small.dcm",
	"mr_explicit-le__MR_small.dcm",
	"cr_small__6154.dcm",
	"sc-rgb_jpeg-baseline__SC_rgb_jpeg_dcmtk.dcm",
	"nm_jpeg-lossless-sv1__JPEG-LL.dcm",
}

// A real `pacsnet serve` passes the DICOMweb harness that Orthanc's
// DICOMweb plugin passes (interop): the npm dicomweb-client searches,
// retrieves (bytes compared with the originals), reads metadata, frames,
// bulk data and rendered images and stores over STOW-RS, with the node's
// bearer token; OHIF, served on another origin that the node's config
// allows (http.cors_origins), lists the generated CT and draws it in
// Debian's headless Chromium.
func TestDICOMwebInterop(t *testing.T) {
	interop.RequireTools(t, true)
	c := newCluster(t)
	f := facility.New(c.bin, c.dir, "St Mary")
	c.facs = append(c.facs, f)
	if err := f.Init(); err != nil {
		t.Fatal(err)
	}
	// The ports are fixed before the first start: OHIF's configuration
	// names the node's address, and the node's names OHIF's origin.
	for _, p := range []*int{&f.P2PPort, &f.DICOMPort} {
		var err error
		if *p, err = facility.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	hp, err := facility.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	f.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", hp)
	tok, err := node.ReadAPIToken(f.Home)
	if err != nil {
		t.Fatal(err)
	}
	root := "http://" + f.HTTPAddr + "/dicom-web"
	// OHIF's origin must be known to the node before it starts.
	page := interop.ServeOHIF(t, root, tok)
	cfgPath := filepath.Join(f.Home, "config.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), "[http]") {
		cfg = []byte(strings.Replace(string(cfg), "[http]", "[http]\ncors_origins = [\""+page+"\"]", 1))
	} else {
		cfg = append(cfg, []byte("\n[http]\ncors_origins = [\""+page+"\"]\n")...)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	ctUID, ctPaths, err := synth.WriteCT(filepath.Join(tmp, "ct"), synth.CTOptions{Slices: 24, Rows: 256, Cols: 256, Seed: 2020})
	if err != nil {
		t.Fatal(err)
	}
	_, stowPaths, err := synth.WriteCT(filepath.Join(tmp, "stow"), synth.CTOptions{Slices: 3, Rows: 64, Cols: 64, Seed: 2021})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, name := range interopCorpus {
		paths = append(paths, filepath.Join("..", "..", "testdata", "dicom", name))
	}
	paths = append(paths, ctPaths...)
	mustRun(t, f, append([]string{"import", "--no-progress"}, paths...)...)

	start := time.Now()
	interop.RunDicomwebClient(t, root, tok, interop.Expectation{Studies: interop.StudiesOf(t, paths...), Store: interop.StudiesOf(t, stowPaths...),
		// Lossless JPEG is stored and served, not rendered (docs/conformance.md).
		NotRendered: []string{"1.2.840.10008.1.2.4.70"}})
	t.Logf("dicomweb-client checks: %v", time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		return
	}
	// Without the token nothing is served, whatever the origin.
	interopUnauthorized(t, root)

	shot := filepath.Join(tmp, "ohif-pacsnet.png")
	if dir := os.Getenv("INTEROP_SCREENSHOTS"); dir != "" {
		shot = filepath.Join(dir, "ohif-pacsnet.png")
	}
	start = time.Now()
	interop.RunOHIF(t, page, ctUID, shot)
	t.Logf("OHIF checks: %v; screenshot %s", time.Since(start).Round(time.Millisecond), shot)
}

// interopUnauthorized: no token, a wrong one: 401 on search and retrieval.
func interopUnauthorized(t *testing.T, root string) {
	t.Helper()
	for _, auth := range []string{"", "Bearer wrong"} {
		req, _ := http.NewRequest("GET", root+"/studies", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("DICOMweb with Authorization %q: %d, want 401", auth, resp.StatusCode)
		}
	}
}
