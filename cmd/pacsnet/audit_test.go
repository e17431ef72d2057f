package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// The audit trail a privacy officer reads (issue 6, #16): a grant entry
// says which study and until when; a revocation reason is a code, and a
// sentence that could name a patient is refused before anything is
// written; entries keep a partner's name after it is removed; the log can
// be filtered by time, partner, study and action.
func TestAuditTrail(t *testing.T) {
	stMary, _ := partnered(t, newCluster(t))
	var syn api.SynthResult
	dir := filepath.Join(t.TempDir(), "ct")
	mustJSON(t, stMary, &syn, "synth", "--out", dir, "--slices", "2", "--size", "32")
	mustRun(t, stMary, "import", dir)
	var g api.Grant
	mustJSON(t, stMary, &g, "grant", "--to", "Riverside", "--study", syn.StudyUID, "--expires", "3d")

	if _, err := stMary.Run("revoke", g.GrantID, "--reason", "patient withdrew consent, MRN 12345"); exitCode(err) != 2 ||
		!strings.Contains(err.Error(), "consent-withdrawn") {
		t.Fatalf("revoke with a free-text reason: %v, want exit 2 listing the codes", err)
	}
	mustRun(t, stMary, "revoke", g.GrantID, "--reason", "consent-withdrawn")
	mustRun(t, stMary, "peer", "remove", "Riverside")

	var es []api.AuditEntry
	mustJSON(t, stMary, &es, "audit", "--peer", "Riverside")
	actions := map[string]api.AuditEntry{}
	for _, e := range es {
		if e.Peer == nil || e.Peer.Name != "Riverside" {
			t.Errorf("entry %d (%s) does not name Riverside after its removal: %+v", e.Seq, e.Action, e.Peer)
		}
		if strings.Contains(e.Reason, "MRN") {
			t.Errorf("entry %d keeps free text: %q", e.Seq, e.Reason)
		}
		actions[e.Action] = e
	}
	for _, a := range []string{api.ActPeerAdded, api.ActGrant, api.ActRevoke, api.ActPeerRemoved} {
		if _, ok := actions[a]; !ok {
			t.Errorf("audit --peer Riverside lacks a %s entry: %+v", a, es)
		}
	}
	gr := actions[api.ActGrant]
	if gr.StudyUID != syn.StudyUID || gr.Expires == nil || gr.Expires.Sub(time.Now()) < 71*time.Hour {
		t.Errorf("grant entry %+v: want the study and an expiry 3 days ahead", gr)
	}
	if rv := actions[api.ActRevoke]; rv.Reason != "consent-withdrawn" {
		t.Errorf("revoke entry reason %q", rv.Reason)
	}

	mustJSON(t, stMary, &es, "audit", "--action", "grant")
	if len(es) != 1 || es[0].GrantID != g.GrantID {
		t.Errorf("audit --action grant: %+v", es)
	}
	mustJSON(t, stMary, &es, "audit", "--study", syn.StudyUID, "--action", "import")
	if len(es) == 0 {
		t.Errorf("audit --study --action import: none")
	}
	mustJSON(t, stMary, &es, "audit", "--since", "1h")
	if len(es) < 5 {
		t.Errorf("audit --since 1h: %d entries", len(es))
	}
	mustJSON(t, stMary, &es, "audit", "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if len(es) != 0 {
		t.Errorf("audit --since an hour ahead: %d entries", len(es))
	}
	out := mustRun(t, stMary, "audit", "--action", "grant")
	if !strings.Contains(string(out), "until ") || !strings.Contains(string(out), "Riverside") {
		t.Errorf("audit table: %s", out)
	}
	for _, args := range [][]string{{"audit", "--since", "yesterday"}, {"audit", "--action", "frobnicate"}, {"audit", "--verify", "--peer", "x"}} {
		if _, err := stMary.Run(args...); exitCode(err) != 2 {
			t.Errorf("pacsnet %v: exit %d, want 2", args, exitCode(err))
		}
	}
}

// Signed checkpoints through the CLI (issue 8): an auditor keeps one off
// the node and verifies against it, on the running node and on the
// stopped one; a damaged or foreign checkpoint file gets a clear error.
func TestAuditCheckpointCLI(t *testing.T) {
	c := newCluster(t)
	stMary := c.facility("St Mary")
	var syn api.SynthResult
	mustJSON(t, stMary, &syn, "synth", "--out", filepath.Join(t.TempDir(), "ct"), "--slices", "2", "--size", "32")
	mustRun(t, stMary, "import", syn.Dir)

	out := mustRun(t, stMary, "audit", "--checkpoint")
	var cp api.SignedAuditCheckpoint
	if err := json.Unmarshal(out, &cp); err != nil || cp.Checkpoint.Index != 1 || cp.Checkpoint.Seq == 0 || len(cp.Sig) == 0 {
		t.Fatalf("audit --checkpoint: %s (%v)", out, err)
	}
	kept := filepath.Join(t.TempDir(), "checkpoint.json")
	if err := os.WriteFile(kept, out, 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, stMary, "audit", "--verify", "--against", kept)
	for _, want := range []string{"audit log OK: ", "1 signed checkpoints stored; the latest checked (#1", "checked against 1 checkpoint files"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("audit --verify --against: %s, want %q", out, want)
		}
	}
	// Export for a SIEM: DICOM audit messages in syslog lines.
	exp := string(mustRun(t, stMary, "audit", "--export", "syslog-dicom", "--action", "import"))
	if n := strings.Count(exp, "\n"); n != 1 || !strings.Contains(exp, "<AuditMessage>") || !strings.Contains(exp, "DICOM+RFC3881") {
		t.Errorf("audit --export syslog-dicom: %d lines: %.300s", n, exp)
	}
	if _, err := stMary.Run("audit", "--export", "csv"); exitCode(err) != 2 {
		t.Errorf("audit --export csv: %v", err)
	}
	var es []api.AuditEntry
	mustJSON(t, stMary, &es, "audit", "--action", "audit-checkpoint")
	if len(es) != 1 || es[0].Actor != "admin" {
		t.Errorf("checkpoint entries: %+v", es)
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(strings.Replace(string(out), "1", "2", 1)), 0o600)
	forged := strings.Replace(string(mustRun(t, stMary, "audit", "--checkpoint")), `"seq": `, `"seq": 1`, 1)
	forgedFile := filepath.Join(t.TempDir(), "forged.json")
	os.WriteFile(forgedFile, []byte(forged), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"audit", "--verify", "--against", bad}, 1, "not a checkpoint written by pacsnet audit --checkpoint"},
		{[]string{"audit", "--verify", "--against", forgedFile}, 1, "bad signature"},
		{[]string{"audit", "--verify", "--against", filepath.Join(t.TempDir(), "none")}, 1, "no such file"},
		{[]string{"audit", "--against", kept}, 2, "--against goes with --verify"},
		{[]string{"audit", "--checkpoint", "--verify"}, 2, "--checkpoint takes no other flag"},
	} {
		_, err := stMary.Run(tc.args...)
		if exitCode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pacsnet %v: exit %d, %v; want %d and %q", tc.args, exitCode(err), err, tc.code, tc.want)
		}
	}

	// Stopping signs a checkpoint of what was written since; the stopped
	// node verifies offline against the one kept.
	mustJSON(t, stMary, &syn, "synth", "--out", filepath.Join(t.TempDir(), "ct2"), "--slices", "1", "--size", "32", "--seed", "2")
	mustRun(t, stMary, "import", syn.Dir)
	if err := stMary.Stop(); err != nil {
		t.Fatal(err)
	}
	var v api.AuditVerify
	mustJSON(t, stMary, &v, "audit", "--verify", "--against", kept)
	if !v.OK || v.Checkpoints < 2 || v.Checkpoint == nil || v.Checkpoint.Seq+1 != v.Entries {
		t.Errorf("offline verify: %+v", v)
	}
}
