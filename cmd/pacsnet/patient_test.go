package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// A patient grant through the CLI (issue 8): St Mary grants Riverside the
// patient's studies; a study of the patient that arrives at St Mary later
// reaches Riverside, which fetches it; another patient's study does not;
// `grants` shows the scope; a grant naming a user is that user's alone.
func TestPatientGrantCLI(t *testing.T) {
	stMary, riverside := partnered(t, newCluster(t))
	dir := t.TempDir()
	synth := func(name string, seed, patient string) api.SynthResult {
		var syn api.SynthResult
		mustJSON(t, stMary, &syn, "synth", "--out", filepath.Join(dir, name), "--slices", "2", "--size", "32", "--seed", seed, "--patient-id", patient)
		mustRun(t, stMary, "import", filepath.Join(dir, name))
		return syn
	}
	prior := synth("prior", "11", "MRN-77")
	other := synth("other", "12", "MRN-78")

	var g api.Grant
	mustJSON(t, stMary, &g, "grant", "--to", "Riverside", "--patient", "MRN-77", "--expires", "2h")
	if g.Patient == nil || g.Patient.PatientID != "MRN-77" || len(g.StudyUIDs) != 0 {
		t.Fatalf("grant: %+v", g)
	}
	out := string(mustRun(t, stMary, "grants"))
	if !strings.Contains(out, "SCOPE") || !strings.Contains(out, "patient MRN-77") {
		t.Fatalf("grants:\n%s", out)
	}
	shared := func(study string) api.SharedStudy { return sharedStudy(t, riverside, study) }
	waitFor(t, "the prior at Riverside", 20*time.Second, func() bool { return shared(prior.StudyUID).State == api.SharedAvailable })
	later := synth("later", "13", "MRN-77")
	waitFor(t, "the later study at Riverside", 20*time.Second, func() bool { return shared(later.StudyUID).State == api.SharedAvailable })
	if s := shared(later.StudyUID); s.Scope != api.ScopePatient {
		t.Errorf("scope %q", s.Scope)
	}
	mustRun(t, riverside, "fetch", "--study", later.StudyUID, "--no-progress")
	if s := shared(other.StudyUID); s.StudyUID != "" {
		t.Fatal("another patient's study reached Riverside")
	}

	// A grant for one named user: the node's admin may not fetch under it.
	mustRun(t, stMary, "grant", "--to", "Riverside", "--study", other.StudyUID, "--user", "dr.jones")
	waitFor(t, "the named-user grant at Riverside", 20*time.Second, func() bool { return shared(other.StudyUID).User == "dr.jones" })
	b, err := riverside.Run("fetch", "--study", other.StudyUID, "--no-progress")
	if err == nil || !strings.Contains(err.Error()+string(b), "another user") {
		t.Fatalf("admin fetch under a grant for dr.jones: %v\n%s", err, b)
	}
	// dr.jones herself may: the holder named her by her user name.
	var tok api.TokenIssued
	mustRun(t, riverside, "user", "add", "dr.jones", "--role", "clinician")
	mustJSON(t, riverside, &tok, "token", "add", "--user", "dr.jones")
	riverside.Env = append(riverside.Env, "PACSNET_TOKEN="+tok.Secret)
	defer func() { riverside.Env = riverside.Env[:len(riverside.Env)-1] }()
	if b, err := riverside.Run("fetch", "--study", other.StudyUID, "--no-progress"); err != nil {
		t.Fatalf("dr.jones's fetch under the grant naming her: %v\n%s", err, b)
	}
}
