package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/cmd/internal/facility"
)

// webApp: Dr Chen signs in to Riverside's web app as a browser does (the
// login form, the session cookie), finds the fetched CT in her worklist,
// and downloads it as a ZIP with a DICOMDIR that DCMTK reads. The app's
// address and her password are printed for a person to open it.
func (d *demo) webApp(riverside *facility.Facility, study string, n int) error {
	step("Dr Chen signs in to Riverside's web app, finds the CT in her worklist and downloads it (ZIP with a DICOMDIR)")
	var pw api.UserPassword
	if err := d.json(riverside, &pw, "user", "passwd", "dr.chen"); err != nil {
		return err
	}
	base := "http://" + riverside.HTTPAddr
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: time.Minute}
	resp, err := hc.Get(base + "/app/")
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	built := resp.StatusCode == http.StatusOK
	if !built && resp.StatusCode != http.StatusServiceUnavailable {
		return fmt.Errorf("GET /app/: %s", resp.Status)
	}
	_ = page
	resp, err = hc.PostForm(base+"/login", url.Values{"username": {"dr.chen"}, "password": {pw.Password}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/app/" {
		return fmt.Errorf("sign-in did not lead to the app: %s %s", resp.Status, resp.Request.URL.Path)
	}
	get := func(path string, v any) ([]byte, error) {
		resp, err := hc.Get(base + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, firstLine(string(b)))
		}
		if err == nil && v != nil {
			err = json.Unmarshal(b, v)
		}
		return b, err
	}
	var me api.Me
	if _, err := get("/api/v1/me", &me); err != nil {
		return err
	}
	fmt.Printf("  signed in through the login form: %s (%s) at %s; the session is an HttpOnly, SameSite=Strict cookie\n", me.Name, me.Role, me.Facility)
	var wl api.WorklistPage
	if _, err := get("/api/v1/worklist?limit=10", &wl); err != nil {
		return err
	}
	var row *api.WorklistStudy
	for i := range wl.Rows {
		if wl.Rows[i].StudyUID == study {
			row = &wl.Rows[i]
		}
	}
	if row == nil || row.Location != api.LocationHere || row.Origin == nil {
		return fmt.Errorf("her worklist (%d studies) does not show the CT as fetched here", wl.Total)
	}
	fmt.Printf("  her worklist (studies here and at partners): %d; the CT is %s, from %s, %d instances\n", wl.Total, row.Location, row.Origin.Name, row.Instances)
	t0 := time.Now()
	zb, err := get("/api/v1/studies/"+study+"/download", nil)
	if err != nil {
		return err
	}
	secs := time.Since(t0).Seconds()
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		return fmt.Errorf("the download is not a ZIP: %w", err)
	}
	dir := filepath.Join(d.dir, "download")
	files := 0
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
		if f.Name != "DICOMDIR" {
			files++
		}
	}
	if files != n {
		return fmt.Errorf("the ZIP holds %d instances, want %d", files, n)
	}
	out, err := exec.CommandContext(d.ctx, "dcmdump", "-dc", filepath.Join(dir, "DICOMDIR")).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("E: ")) {
		return fmt.Errorf("dcmdump DICOMDIR: %v: %s", err, firstLine(string(out)))
	}
	d.row("web download (ZIP)", n, int64(len(zb)), secs)
	fmt.Printf("  GET /api/v1/studies/{study}/download: %d files and a DICOMDIR of %d IMAGE records that DCMTK's dcmdump reads\n",
		files, strings.Count(string(out), "CS [IMAGE"))
	if built {
		d.webNote = fmt.Sprintf("web app: %s/ — sign in at Riverside as dr.chen with %s", base, pw.Password)
		d.notes = append(d.notes, d.webNote+" (`make demo-web` keeps the nodes up to open it)")
		fmt.Printf("  the web app is at %s/ (sign in as dr.chen)\n", base)
	} else {
		fmt.Printf("  this binary was built without the web app's assets (make web): the API above works, the pages do not\n")
	}
	return nil
}
