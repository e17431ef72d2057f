package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/cmd/internal/facility"
	"github.com/pacsnet/pacsnet/crypto"
)

// buildBinary builds cmd/pacsnet once for the end-to-end tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pacsnet")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cluster is the set of facilities of one test; all are stopped at the end.
type cluster struct {
	t    *testing.T
	bin  string
	dir  string
	facs []*facility.Facility
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, bin: buildBinary(t), dir: t.TempDir()}
	t.Cleanup(func() {
		for _, f := range c.facs {
			if f.PID() != 0 {
				if err := f.Stop(); err != nil {
					t.Errorf("stop %s: %v", f.Name, err)
				}
			}
			if t.Failed() {
				t.Logf("--- log of %s:\n%s", f.Name, readTail(f.LogPath(), 4000))
			}
		}
	})
	return c
}

func (c *cluster) facility(name string, extra ...string) *facility.Facility {
	c.t.Helper()
	f := facility.New(c.bin, c.dir, name)
	f.Extra = extra
	c.facs = append(c.facs, f)
	if err := f.Init(); err != nil {
		c.t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		c.t.Fatal(err)
	}
	return f
}

func readTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// partnered starts St Mary and Riverside in c and makes them partners.
func partnered(t *testing.T, c *cluster) (stMary, riverside *facility.Facility) {
	t.Helper()
	stMary, riverside = c.facility("St Mary"), c.facility("Riverside")
	if err := facility.Partner(stMary, riverside); err != nil {
		t.Fatal(err)
	}
	return stMary, riverside
}

func mustRun(t *testing.T, f *facility.Facility, args ...string) []byte {
	t.Helper()
	out, err := f.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustJSON(t *testing.T, f *facility.Facility, v any, args ...string) {
	t.Helper()
	if err := f.JSON(v, args...); err != nil {
		t.Fatal(err)
	}
}

// exitCode returns the exit status of a failed command, 0 on success.
func exitCode(err error) int {
	var ee *facility.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if err != nil {
		return -1
	}
	return 0
}

func peerID(t *testing.T, f *facility.Facility) string {
	t.Helper()
	var st api.Status
	mustJSON(t, f, &st, "status")
	return st.PeerID
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func sharedState(t *testing.T, f *facility.Facility, study string) string {
	return sharedStudy(t, f, study).State
}

// sharedStudy is f's `shared` row of study (zero if none).
func sharedStudy(t *testing.T, f *facility.Facility, study string) api.SharedStudy {
	t.Helper()
	var ss []api.SharedStudy
	mustJSON(t, f, &ss, "shared")
	for _, s := range ss {
		if s.StudyUID == study {
			return s
		}
	}
	return api.SharedStudy{}
}

func auditEntries(t *testing.T, f *facility.Facility) []api.AuditEntry {
	var es []api.AuditEntry
	mustJSON(t, f, &es, "audit")
	return es
}

func normalizedSum(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= 132 && string(b[128:132]) == "DICM" {
		clear(b[:128])
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// corpusOutcomes reads testdata/dicom/MANIFEST.tsv: file → expected outcome.
func corpusOutcomes(t *testing.T) map[string]string {
	f, err := os.Open("../../testdata/dicom/MANIFEST.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		cols := strings.Split(sc.Text(), "\t")
		if i > 0 && len(cols) >= 7 {
			m[cols[0]] = cols[6]
		}
	}
	return m
}

// TestEndToEnd drives real `pacsnet serve` processes through the CLI:
// init, invites, import, grant, manifest delivery, fetch across a crash and
// restart of the holder, bit-exact export, refusals (non-granted partner,
// non-partner peer at the gater, revoked grant), resume, audit verify and
// tamper detection, key file permissions.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	c := newCluster(t)
	stMary := c.facility("St Mary")
	riverside := c.facility("Riverside")
	northgate := c.facility("Northgate")
	outsider := c.facility("Outsider")
	for _, pair := range [][2]*facility.Facility{{stMary, riverside}, {stMary, northgate}} {
		if err := facility.Partner(pair[0], pair[1]); err != nil {
			t.Fatal(err)
		}
	}
	// The outsider knows St Mary's invite, but St Mary never admitted it.
	var inv api.Invite
	mustJSON(t, stMary, &inv, "invite")
	mustRun(t, outsider, "peer", "add", inv.Invite)

	var peers []api.Partner
	mustJSON(t, stMary, &peers, "peers")
	if len(peers) != 2 || peers[0].Name != "Northgate" || peers[1].Name != "Riverside" {
		t.Fatalf("St Mary's peers = %+v, want Northgate and Riverside", peers)
	}

	// Studies: two small generated CTs (one to fetch, one to revoke mid-fetch).
	ctDir, ct2Dir := filepath.Join(c.dir, "ct"), filepath.Join(c.dir, "ct2")
	var syn, syn2 api.SynthResult
	mustJSON(t, stMary, &syn, "synth", "--out", ctDir, "--slices", "24", "--size", "256", "--seed", "7")
	mustJSON(t, stMary, &syn2, "synth", "--out", ct2Dir, "--slices", "24", "--size", "256", "--seed", "8")

	t.Run("import", func(t *testing.T) {
		var imp api.ImportReport
		mustJSON(t, stMary, &imp, "import", ctDir, ct2Dir)
		if imp.Summary[api.OutcomeStored] != 48 {
			t.Fatalf("import summary %v, want 48 stored", imp.Summary)
		}
		// The whole real corpus: every file gets the outcome MANIFEST.tsv names.
		out, err := stMary.Run("import", "--json", "../../testdata/dicom")
		if exitCode(err) != 1 {
			t.Fatalf("importing the corpus (with broken files) exited %d, want 1", exitCode(err))
		}
		if err := facility.DecodeJSON(out, &imp); err != nil {
			t.Fatalf("import --json output: %v", err)
		}
		// The archive files every parse-ok file or says exactly why not:
		// the corpus holds one MR image in five transfer syntaxes (one
		// instance: the first encoding stored is kept, the others are
		// duplicates), a doctored copy of a JPEG 2000 file under the
		// original's SOP Instance UID (a conflict: nothing is
		// overwritten), and two files without the UIDs an archive files by.
		want := corpusOutcomes(t)
		if len(imp.Results) != len(want) {
			t.Errorf("import reported %d files, MANIFEST.tsv lists %d", len(imp.Results), len(want))
		}
		storedPerSOP := map[string]int{}
		unfileable := 0
		for _, r := range imp.Results {
			name := filepath.Base(r.Path)
			if r.Outcome == api.OutcomeStored {
				storedPerSOP[r.SOPInstanceUID]++
			}
			switch exp := want[name]; exp {
			case "parse-ok", "parse-ok-as-raw-dataset":
				switch {
				case r.Outcome == api.OutcomeStored && r.SOPInstanceUID != "":
				case r.Outcome == api.OutcomeDuplicate && len(r.Warnings) == 1 && strings.Contains(r.Warnings[0], "transfer syntax"):
				case r.Outcome == api.OutcomeConflict && (strings.Contains(name, "JPEG2000-embedded-sequence-delimiter") || strings.Contains(name, "nm_jpeg2000-lossy")):
				case r.Outcome == api.OutcomeRejected && r.Code == "missing-attribute":
					unfileable++
				default:
					t.Errorf("%s: outcome %s (%s)", name, r.Outcome, r.Error)
				}
			case "must-reject-with-clear-error":
				if r.Outcome != api.OutcomeRejected || len(r.Error) < 20 {
					t.Errorf("%s: outcome %s error %q, want a clear rejection", name, r.Outcome, r.Error)
				}
			case "lenient-ok-or-clear-reject":
				if r.Outcome != api.OutcomeStored && (r.Outcome != api.OutcomeRejected || r.Error == "") {
					t.Errorf("%s: outcome %s error %q", name, r.Outcome, r.Error)
				}
			default:
				t.Errorf("%s: not in MANIFEST.tsv", r.Path)
			}
		}
		// Human output shows the warnings, one line each under the file.
		out, err = stMary.Run("import", "../../testdata/dicom/mr_implicit-le__MR_small_implicit.dcm", "../../testdata/dicom/mr_explicit-le__MR_small.dcm")
		if err != nil {
			t.Fatalf("import again: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`(?m)^duplicate +\S+\n +warning: the same instance is already stored in transfer syntax `).Match(out) {
			t.Errorf("import's human output shows no warning:\n%s", out)
		}
		if unfileable != 2 {
			t.Errorf("%d parse-ok files refused for missing UIDs, want 2 (priv_SQ, UN_sequence)", unfileable)
		}
		for sop, n := range storedPerSOP {
			if n != 1 {
				t.Errorf("SOP Instance UID %s stored %d times", sop, n)
			}
		}
		// Importing again is idempotent.
		imp = api.ImportReport{}
		mustJSON(t, stMary, &imp, "import", ctDir)
		if imp.Summary[api.OutcomeDuplicate] != 24 {
			t.Errorf("re-import summary %v, want 24 duplicate", imp.Summary)
		}
		// A different instance under an existing SOP Instance UID is a conflict.
		files, _ := filepath.Glob(filepath.Join(ctDir, "*.dcm"))
		b, err := os.ReadFile(files[3])
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)-1] ^= 0xff // one pixel byte
		changed := filepath.Join(c.dir, "changed.dcm")
		os.WriteFile(changed, b, 0o644)
		out, err = stMary.Run("import", "--json", changed)
		if exitCode(err) != 1 {
			t.Fatalf("conflicting import exited %d, want 1", exitCode(err))
		}
		imp = api.ImportReport{}
		if err := facility.DecodeJSON(out, &imp); err != nil {
			t.Fatal(err)
		}
		if len(imp.Results) != 1 || imp.Results[0].Outcome != api.OutcomeConflict {
			t.Fatalf("conflicting import: %+v, want conflict", imp.Results)
		}
	})

	var grant api.Grant
	t.Run("grant and manifest delivery", func(t *testing.T) {
		mustJSON(t, stMary, &grant, "grant", "--to", "Riverside", "--study", syn.StudyUID, "--expires", "2h")
		if grant.Grantee.PeerID != peerID(t, riverside) {
			t.Fatalf("grant names %+v, want Riverside", grant.Grantee)
		}
		waitFor(t, "the manifest at Riverside", 30*time.Second, func() bool { return sharedState(t, riverside, syn.StudyUID) == api.SharedAvailable })
		if s := sharedState(t, northgate, syn.StudyUID); s != "" {
			t.Fatalf("Northgate sees the study (%s): it was not granted", s)
		}
		// Granting a study this node does not hold is a clear 4xx.
		_, err := stMary.Run("grant", "--to", "Riverside", "--study", "1.2.3.4.5")
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "no study") {
			t.Fatalf("grant of an unknown study: %v", err)
		}
	})

	t.Run("fetch survives a crash and restart of the holder", func(t *testing.T) {
		// Slow St Mary's uploads so that the fetch is surely mid-way when
		// St Mary is killed.
		stMary.Stop()
		stMary.Extra = []string{"--upload-rate", "400000"}
		if err := stMary.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		type result struct {
			out []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			out, err := riverside.RunContext(ctx, nil, "fetch", "--json", "--study", syn.StudyUID, "--from", "St Mary")
			done <- result{out, err}
		}()
		waitFor(t, "the first fetched instances", 60*time.Second, func() bool {
			var ss []api.Study
			mustJSON(t, riverside, &ss, "studies")
			return len(ss) == 1 && ss[0].Instances >= 2
		})
		stMary.Kill()
		time.Sleep(1500 * time.Millisecond)
		stMary.Extra = nil
		if err := stMary.Start(); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("fetch across the restart: %v", r.err)
		}
		var fo api.FetchReport
		if err := facility.DecodeJSON(r.out, &fo); err != nil {
			t.Fatal(err)
		}
		if fo.Fetch.State != api.FetchDone || fo.Fetch.InstancesDone != 24 {
			t.Fatalf("fetch ended %+v", fo.Fetch)
		}
		if fo.Fetch.Attempts < 2 {
			t.Errorf("fetch attempts = %d: the holder's crash should have forced a retry", fo.Fetch.Attempts)
		}
		if fo.BytesFetched != fo.Fetch.Bytes {
			t.Errorf("fetched %d bytes for a study of %d: blocks were fetched twice", fo.BytesFetched, fo.Fetch.Bytes)
		}
	})

	t.Run("fetch again resumes: nothing is fetched twice", func(t *testing.T) {
		var fo api.FetchReport
		mustJSON(t, riverside, &fo, "fetch", "--study", syn.StudyUID)
		if fo.BytesFetched != 0 || fo.Fetch.BytesResumed != fo.Fetch.Bytes {
			t.Fatalf("second fetch moved %d bytes (resumed %d of %d), want 0", fo.BytesFetched, fo.Fetch.BytesResumed, fo.Fetch.Bytes)
		}
	})

	t.Run("export is bit-exact", func(t *testing.T) {
		orig := map[string]string{}
		files, _ := filepath.Glob(filepath.Join(ctDir, "*.dcm"))
		for _, f := range files {
			orig[normalizedSum(t, f)] = f
		}
		out := filepath.Join(c.dir, "export")
		var exp api.ExportResult
		mustJSON(t, riverside, &exp, "export", "--study", syn.StudyUID, "--out", out)
		if len(exp.Files) != 24 {
			t.Fatalf("exported %d files, want 24", len(exp.Files))
		}
		for _, f := range exp.Files {
			sum := normalizedSum(t, f.Path)
			if _, ok := orig[sum]; !ok || sum != f.SHA256 {
				t.Errorf("%s: SHA-256 %s matches no original", f.Path, sum)
			}
			if strings.Contains(f.Path, "SYNTH") || strings.Contains(f.Path, "SYN-") {
				t.Errorf("%s: file name carries patient data", f.Path)
			}
		}
		dcmdump, err := exec.LookPath("dcmdump")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("dcmdump (dcmtk) is not installed; `make deps` installs it")
			}
			t.Skip("dcmdump not installed")
		}
		for _, f := range exp.Files[:3] {
			if out, err := exec.Command(dcmdump, "-q", f.Path).CombinedOutput(); err != nil || bytes.Contains(out, []byte("E: ")) {
				t.Errorf("dcmdump %s: %v\n%s", f.Path, err, out)
			}
		}
	})

	t.Run("a partner without a grant is refused and audited", func(t *testing.T) {
		_, err := northgate.Run("fetch", "--study", syn.StudyUID, "--from", "St Mary", "--no-progress")
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "has not shared that study") {
			t.Fatalf("Northgate's fetch: %v, want a refusal", err)
		}
		ng := peerID(t, northgate)
		found := false
		for _, e := range auditEntries(t, stMary) {
			if e.Action == api.ActFetchDenied && e.Peer != nil && e.Peer.PeerID == ng && e.StudyUID == syn.StudyUID && e.Decision == api.DecisionDeny {
				found = true
			}
		}
		if !found {
			t.Fatal("St Mary's audit log does not hold Northgate's refused fetch")
		}
	})

	t.Run("a non-partner is refused at the connection gater", func(t *testing.T) {
		before := len(auditEntries(t, stMary))
		_, err := outsider.Run("fetch", "--study", syn.StudyUID, "--from", "St Mary", "--no-progress")
		if exitCode(err) != 1 {
			t.Fatalf("outsider's fetch: %v, want failure", err)
		}
		out := peerID(t, outsider)
		for _, e := range auditEntries(t, stMary)[before:] {
			if e.Peer != nil && e.Peer.PeerID == out {
				t.Fatalf("the outsider reached St Mary's protocols (audit %+v); the gater must refuse it first", e)
			}
		}
	})

	t.Run("revoke mid-fetch: the holder refuses the next block", func(t *testing.T) {
		stMary.Stop()
		stMary.Extra = []string{"--upload-rate", "300000"}
		if err := stMary.Start(); err != nil {
			t.Fatal(err)
		}
		var g2 api.Grant
		mustJSON(t, stMary, &g2, "grant", "--to", "Riverside", "--study", syn2.StudyUID)
		waitFor(t, "the second manifest", 30*time.Second, func() bool { return sharedState(t, riverside, syn2.StudyUID) == api.SharedAvailable })
		done := make(chan error, 1)
		go func() {
			_, err := riverside.Run("fetch", "--study", syn2.StudyUID, "--no-progress")
			done <- err
		}()
		waitFor(t, "the first instances of the second study", 60*time.Second, func() bool {
			var ss []api.Study
			mustJSON(t, riverside, &ss, "studies")
			for _, s := range ss {
				if s.StudyUID == syn2.StudyUID && s.Instances >= 1 {
					return true
				}
			}
			return false
		})
		// Ctrl-C on a second `fetch` following the same running fetch stops
		// following it (the node goes on) and exits 130, as a shell reports
		// an interrupt, not 1 as for a failure.
		follow := exec.Command(riverside.Bin, "--home", riverside.Home, "fetch", "--study", syn2.StudyUID, "--no-progress")
		follow.Env = append(os.Environ(), riverside.Env...)
		var followErr bytes.Buffer
		follow.Stderr = &followErr
		if err := follow.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // past its start: the fetch is being followed
		follow.Process.Signal(syscall.SIGINT)
		follow.Wait()
		if code := follow.ProcessState.ExitCode(); code != 130 || !strings.Contains(followErr.String(), "stopped following the fetch") {
			t.Errorf("Ctrl-C on fetch: exit %d, stderr %q; want 130 and a word on what goes on", code, followErr.String())
		}
		mustRun(t, stMary, "revoke", g2.GrantID, "--reason", "sent-in-error")
		err := <-done
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "refused the transfer") {
			t.Fatalf("fetch after revocation: %v, want refused", err)
		}
		rv := peerID(t, riverside)
		found := false
		for _, e := range auditEntries(t, stMary) {
			if e.Action == api.ActFetchDenied && e.Peer != nil && e.Peer.PeerID == rv && e.GrantID == g2.GrantID && e.Reason == "revoked" {
				found = true
			}
		}
		if !found {
			t.Error("St Mary's audit log has no refusal for the revoked grant")
		}
		waitFor(t, "the revocation manifest at Riverside", 30*time.Second, func() bool { return sharedState(t, riverside, syn2.StudyUID) == api.SharedRevoked })
		var gs []api.Grant
		mustJSON(t, stMary, &gs, "grants")
		for _, g := range gs {
			if g.GrantID == g2.GrantID && g.State != api.GrantRevoked {
				t.Errorf("grant state %s, want revoked", g.State)
			}
		}
	})

	t.Run("audit verify passes and detects an edited entry", func(t *testing.T) {
		out := mustRun(t, stMary, "audit", "--verify")
		if !strings.Contains(string(out), "OK") {
			t.Fatalf("audit --verify: %s", out)
		}
		if err := stMary.Stop(); err != nil {
			t.Fatal(err)
		}
		// A stopped node's home verifies without starting it (issue 6, #16).
		if out := mustRun(t, stMary, "audit", "--verify"); !strings.Contains(string(out), "audit log OK") {
			t.Fatalf("audit --verify on the stopped home: %s", out)
		}
		tamperAudit(t, stMary.Home, 3)
		if _, err := stMary.Run("audit", "--verify"); exitCode(err) != 1 || !strings.Contains(err.Error(), "entry 3") {
			t.Fatalf("audit --verify of the stopped home after tampering with entry 3: %v, want exit 1 naming entry 3", err)
		}
		stMary.Extra = nil
		if err := stMary.Start(); err != nil {
			t.Fatal(err)
		}
		_, err := stMary.Run("audit", "--verify")
		if exitCode(err) != 1 || !strings.Contains(err.Error(), "3") {
			t.Fatalf("audit --verify after tampering with entry 3: %v, want exit 1 naming entry 3", err)
		}
	})

	t.Run("key files readable by others are refused", func(t *testing.T) {
		if err := northgate.Stop(); err != nil {
			t.Fatal(err)
		}
		key := filepath.Join(northgate.Home, "keys", "node.key")
		if err := os.Chmod(key, 0o644); err != nil {
			t.Fatal(err)
		}
		err := northgate.Start()
		if err == nil || !strings.Contains(err.Error(), "node.key") {
			t.Fatalf("serve with a 0644 key file: %v, want a refusal naming the file", err)
		}
		os.Chmod(key, 0o600)
		if err := northgate.Start(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		for _, args := range [][]string{{"grant"}, {"frobnicate"}, {"import"}, {"studies", "--bogus"}} {
			if _, err := stMary.Run(args...); exitCode(err) != 2 {
				t.Errorf("pacsnet %v: exit %d, want 2", args, exitCode(err))
			}
		}
	})
}

// tamperAudit edits the reason of audit entry seq directly in the stopped
// node's encrypted archive, as an attacker with the keys and disk would.
func tamperAudit(t *testing.T, home string, seq uint64) {
	t.Helper()
	id, err := crypto.LoadIdentity(filepath.Join(home, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := crypto.ReadKeyFile(filepath.Join(home, "keys", "archive.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := crypto.Decrypt(wrapped, id.Box)
	if err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(home, "archive")).WithEncryptionKey(key).WithIndexCacheSize(16 << 20).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k := []byte(fmt.Sprintf("audit/%020d", seq))
	err = db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		var e map[string]any
		if err := it.Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
			return err
		}
		e["reason"] = "edited"
		b, _ := json.Marshal(e)
		return txn.Set(k, b)
	})
	if err != nil {
		t.Fatal(err)
	}
}
