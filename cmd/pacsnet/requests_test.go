package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/cmd/internal/facility"
)

// Federated search and access requests through the CLI (issue 8):
// Riverside's clinician finds a patient's study at St Mary, asks St Mary for
// the patient's studies → St Mary's admin approves → the manifest
// arrives → Riverside fetches; a request denied; an emergency request
// granted at once by break-glass → reviewed.
func TestAccessRequestsCLI(t *testing.T) {
	c := newCluster(t)
	stMary, riverside := partneredWithRequests(t, c, `emergency_partners = ["Riverside"]`, `query_partners = ["Riverside"]`)
	var syn api.SynthResult
	mustJSON(t, stMary, &syn, "synth", "--out", filepath.Join(t.TempDir(), "ct"), "--slices", "2", "--size", "32", "--patient-id", "MRN-9")
	mustRun(t, stMary, "import", syn.Dir)

	// A clinician at Riverside asks.
	var tok api.TokenIssued
	mustRun(t, riverside, "user", "add", "dr.jones", "--role", "clinician")
	mustJSON(t, riverside, &tok, "token", "add", "--user", "dr.jones")
	asJones := func(args ...string) ([]byte, error) {
		env := riverside.Env
		riverside.Env = append(append([]string{}, env...), "PACSNET_TOKEN="+tok.Secret)
		defer func() { riverside.Env = env }()
		return riverside.Run(args...)
	}
	mustUnmarshal := func(t *testing.T, b []byte, v any) {
		t.Helper()
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
	}
	// She searches the partners for the patient first.
	out, err := asJones("search", "--patient-id", "MRN-9")
	if err != nil || !strings.Contains(string(out), syn.StudyUID) || !strings.Contains(string(out), "pacsnet request") {
		t.Fatalf("search: %s %v", out, err)
	}
	out, _ = asJones("search", "--patient-id", "MRN-404", "--partner", "St Mary")
	if !strings.Contains(string(out), "no studies found") {
		t.Errorf("search for nobody: %s", out)
	}
	out, err = asJones("request", "--to", "St Mary", "--patient-id", "MRN-9", "--birth-date", "19700102",
		"--reason", "referral", "--note", "please, prior CT", "--json")
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	var r api.AccessRequest
	mustUnmarshal(t, out, &r)
	if r.State != api.RequestPending || !strings.HasPrefix(r.User, "u-") {
		t.Fatalf("request: %+v", r)
	}
	// St Mary's admin sees it, with the patient's one study here.
	list := string(mustRun(t, stMary, "requests"))
	if !strings.Contains(list, r.RequestID[:12]) || !strings.Contains(list, "STUDIES HERE") || !strings.Contains(list, "pending") {
		t.Fatalf("requests at St Mary:\n%s", list)
	}
	if out := string(mustRun(t, stMary, "status")); !strings.Contains(out, "requests  1 waiting for a decision") {
		t.Errorf("status does not say a request waits:\n%s", out)
	}
	if !strings.Contains(list, "please, prior CT") {
		t.Errorf("the note is not shown to St Mary's admin:\n%s", list)
	}
	mustRun(t, stMary, "approve", r.RequestID[:8], "--expires", "3h")
	mustRun(t, stMary, "erase-note", r.RequestID[:8])
	var theirsNow api.RequestLists
	mustJSON(t, stMary, &theirsNow, "requests")
	if len(theirsNow.Incoming) != 1 || theirsNow.Incoming[0].Note != "" || theirsNow.Incoming[0].State != api.RequestApproved {
		t.Errorf("after erase-note: %+v", theirsNow.Incoming)
	}
	var lists api.RequestLists
	out, err = asJones("requests", "--json")
	if err != nil {
		t.Fatal(err)
	}
	mustUnmarshal(t, out, &lists)
	if len(lists.Incoming) != 0 || len(lists.Outgoing) != 1 || lists.Outgoing[0].State != api.RequestApproved {
		t.Fatalf("the clinician's requests: %+v", lists)
	}
	shared := func() api.SharedStudy { return sharedStudy(t, riverside, syn.StudyUID) }
	waitFor(t, "the study at Riverside", 20*time.Second, func() bool { return shared().State == api.SharedAvailable })
	if s := shared(); s.User != r.User {
		t.Errorf("the grant is not the clinician's: %+v", s)
	}
	if _, err := asJones("fetch", "--study", syn.StudyUID, "--no-progress"); err != nil {
		t.Fatalf("the clinician's fetch: %v", err)
	}

	// Denied.
	out, _ = asJones("request", "--to", "St Mary", "--patient-id", "MRN-404", "--reason", "follow-up", "--json")
	mustUnmarshal(t, out, &r)
	if _, err := stMary.Run("deny", r.RequestID, "--reason", "not my patient"); exitCode(err) != 2 {
		t.Errorf("deny with free text: %v", err)
	}
	mustRun(t, stMary, "deny", r.RequestID, "--reason", "not-our-patient")
	out, _ = asJones("requests", "--mine")
	if !strings.Contains(string(out), "denied: not-our-patient") {
		t.Errorf("denied, as the clinician sees it:\n%s", out)
	}

	// Emergency: granted at once, then reviewed.
	out, err = asJones("request", "--to", "St Mary", "--patient-id", "MRN-9", "--reason", "emergency-care", "--emergency")
	if err != nil || !strings.Contains(string(out), "granted at once") {
		t.Fatalf("emergency request: %s %v", out, err)
	}
	var theirs api.RequestLists
	mustJSON(t, stMary, &theirs, "requests", "--emergency")
	if len(theirs.Incoming) != 1 || theirs.Incoming[0].DecidedBy != "system" {
		t.Fatalf("emergency requests: %+v", theirs.Incoming)
	}
	if !strings.Contains(string(mustRun(t, stMary, "requests", "--emergency")), "TO REVIEW") {
		t.Error("the emergency access is not marked for review")
	}
	mustRun(t, stMary, "review", theirs.Incoming[0].RequestID, "--outcome", "justified")
	var es []api.AuditEntry
	mustJSON(t, stMary, &es, "audit", "--action", "emergency-reviewed")
	if len(es) != 1 || es[0].Actor != "admin" {
		t.Errorf("review entry: %+v", es)
	}
	// A clinician may not see or decide partners' requests.
	if _, err := asJones("approve", r.RequestID); exitCode(err) != 1 || !strings.Contains(err.Error(), "admin") {
		t.Errorf("a clinician approving: %v", err)
	}
}

// partneredWithRequests starts St Mary with lines added to its
// [requests] table (e.g. query_partners), then Riverside, and makes them
// partners.
func partneredWithRequests(t *testing.T, c *cluster, lines ...string) (stMary, riverside *facility.Facility) {
	t.Helper()
	stMary = facility.New(c.bin, c.dir, "St Mary")
	c.facs = append(c.facs, stMary)
	if err := stMary.Init(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(stMary.Home, "config.toml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "[requests]\n") {
		t.Fatal("config has no [requests] table: update the test")
	}
	add := ""
	for _, l := range lines {
		add += "  " + l + "\n"
	}
	cfg = []byte(strings.Replace(string(cfg), "[requests]\n", "[requests]\n"+add, 1))
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := stMary.Start(); err != nil {
		t.Fatal(err)
	}
	riverside = c.facility("Riverside")
	if err := facility.Partner(stMary, riverside); err != nil {
		t.Fatal(err)
	}
	return stMary, riverside
}
