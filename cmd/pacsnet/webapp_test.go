package main

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/cmd/internal/facility"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/interop"
	"github.com/pacsnet/pacsnet/node"
)

// webDistBuilt says whether web/dist holds the built app (make web).
func webDistBuilt() bool {
	_, file, _, _ := runtime.Caller(0)
	_, err := os.Stat(filepath.Join(filepath.Dir(file), "..", "..", "web", "dist", "index.html"))
	return err == nil
}

// The web app, in Debian's headless Chromium against two real `pacsnet
// serve` processes (issue 11): St Mary's admin grants a study in the UI;
// Riverside's clinician signs in, sees it, fetches it with live progress,
// opens the viewer, scrolls, changes the window, and the pixel value the
// viewer reads out under the mouse is the one in the DICOM file; her
// access request reaches St Mary's admin, who approves it, and the study
// becomes fetchable; a study St Mary's admin revokes in the UI shows as
// revoked; the clinician cannot reach admin pages and the server refuses
// their API calls; St Mary's auditor sees only the audit and verifies the
// chain. Screenshots of every main page go to the test's output folder
// (PACSNET_SCREENSHOTS, or a temporary one).
func TestWebApp(t *testing.T) {
	interop.RequireTools(t, true)
	if !webDistBuilt() {
		t.Fatal("web/dist is not built: run `make web` (make test does)")
	}
	c := newCluster(t)
	stMary, riverside := partneredWithRequests(t, c, `query_partners = ["Riverside"]`)
	ctx := context.Background()
	client := func(f *facility.Facility) *api.Client {
		tok, err := node.ReadAPIToken(f.Home)
		if err != nil {
			t.Fatal(err)
		}
		return api.NewClient("http://"+f.HTTPAddr, tok, nil)
	}
	users := map[string]string{}
	addUser := func(f *facility.Facility, name, role string) {
		pw := "pw-" + name + "-0123456789"
		if _, err := client(f).AddUser(ctx, api.AddUserRequest{Name: name, Role: role, Password: pw}); err != nil {
			t.Fatal(err)
		}
		users[name] = pw
	}
	addUser(stMary, "mary.admin", api.RoleAdmin)
	addUser(stMary, "audrey", api.RoleAuditor)
	addUser(riverside, "dr.chen", api.RoleClinician)

	// Three studies at St Mary: A is granted in the UI, B requested and
	// approved in the UI, C granted here and revoked in the UI.
	type study struct {
		uid, patient string
		files        []synth.File
	}
	mk := func(seed int64, patient, name string, slices int) study {
		uid, files, err := synth.CT(synth.CTOptions{Slices: slices, Rows: 128, Cols: 128, Seed: seed, PatientID: patient, PatientName: name})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mustRun(t, stMary, "import", dir)
		return study{uid, patient, files}
	}
	a := mk(501, "WEB-A", "ALPHA^ANNA", 12)
	b := mk(502, "WEB-B", "BRAVO^BEN", 3)
	cc := mk(503, "WEB-C", "CHARLIE^CARL", 2)
	mustRun(t, stMary, "grant", "--to", "Riverside", "--study", cc.uid, "--expires", "24h")
	waitFor(t, "Riverside receives C's manifest", 30*time.Second, func() bool { return sharedState(t, riverside, cc.uid) == api.SharedAvailable })

	shots := os.Getenv("PACSNET_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	env := []string{
		"MARY_URL=http://" + stMary.HTTPAddr, "RIVER_URL=http://" + riverside.HTTPAddr,
		"MARY_ADMIN=mary.admin", "MARY_ADMIN_PW=" + users["mary.admin"],
		"MARY_AUDITOR=audrey", "MARY_AUDITOR_PW=" + users["audrey"],
		"RIVER_CLIN=dr.chen", "RIVER_CLIN_PW=" + users["dr.chen"],
		"STUDY_A=" + a.uid, "PATIENT_A=" + a.patient,
		"STUDY_B=" + b.uid, "PATIENT_B=" + b.patient,
		"STUDY_C=" + cc.uid,
		"SHOTS=" + shots,
	}
	checks := interop.RunWebApp(t, 6*time.Minute, env)
	probed := false
	for _, ch := range checks {
		if ch.Name != "probe" {
			continue
		}
		probed = true
		p, err := interop.ParseProbe(ch.Detail)
		if err != nil {
			t.Fatalf("probe detail %q: %v", ch.Detail, err)
		}
		want, ok := ctPixelHU(a.files, p.SOPInstanceUID, p.Col, p.Row, 128, 128)
		if !ok {
			t.Errorf("probe names %s, not an instance of study A", p.SOPInstanceUID)
		} else if p.Value != want {
			t.Errorf("the viewer reads %v HU at (%d,%d) of %s; the DICOM file holds %v", p.Value, p.Col, p.Row, p.SOPInstanceUID, want)
		} else {
			t.Logf("probe: %v HU at (%d,%d), as in the file", p.Value, p.Col, p.Row)
		}
	}
	if !probed {
		t.Error("the script reported no probe")
	}
	// What the UI did is what the nodes did.
	if st := sharedState(t, riverside, cc.uid); st != api.SharedRevoked {
		t.Errorf("C at Riverside: %s, want revoked", st)
	}
	if st := sharedState(t, riverside, b.uid); st != api.SharedAvailable {
		t.Errorf("B at Riverside after the approval: %s, want available", st)
	}
	t.Logf("screenshots in %s", shots)
}

// ctPixelHU is the Hounsfield value at (col,row) of the synthetic CT
// instance sop: unsigned 16-bit little-endian pixels at the end of the
// file, rescale slope 1, intercept -1024 (dicomio/synth).
func ctPixelHU(files []synth.File, sop string, col, row, rows, cols int) (float64, bool) {
	for _, f := range files {
		// (0008,0018) UI, explicit VR little endian.
		i := strings.Index(string(f.Data), "\x08\x00\x18\x00UI")
		if i < 0 || i+8 > len(f.Data) {
			continue
		}
		n := int(binary.LittleEndian.Uint16(f.Data[i+6:]))
		if strings.TrimRight(string(f.Data[i+8:i+8+n]), "\x00 ") != sop {
			continue
		}
		if col < 0 || row < 0 || col >= cols || row >= rows {
			return 0, false
		}
		px := f.Data[len(f.Data)-rows*cols*2:]
		raw := binary.LittleEndian.Uint16(px[(row*cols+col)*2:])
		return float64(raw) - 1024, true
	}
	return 0, false
}
