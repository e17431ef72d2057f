// Command pacsnet-demo is `make demo`: three facilities as separate
// `pacsnet serve` processes on loopback. St Mary imports a generated CT and
// the parse-ok files of the real test corpus, grants the CT to Riverside,
// Riverside receives the manifest, fetches, exports and verifies every
// instance's SHA-256; a clinician Riverside's admin adds reads the study
// over DICOMweb (QIDO-RS, WADO-RS metadata, instances, a rendered slice);
// Northgate, a partner without a grant, is refused and
// the refusal is in St Mary's audit log; then St Mary grants a second CT to
// Riverside and revokes the grant while Riverside fetches it, and the rest
// of the study is refused; last, St Mary grants Northgate a patient's
// studies and a study of the patient imported afterwards follows on its
// own; a clinician at Riverside finds a patient's study at St Mary by
// federated search, asks for it, is approved and fetches it, and an
// emergency request is granted at once and reviewed; St Mary's audit
// chain is verified against a signed checkpoint kept off the node. It
// exits 0 only if all of it held, and stops
// every process it started. On SIGINT or SIGTERM it stops them too, removes
// its temporary homes (unless --keep) and exits 130 or 143.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/cmd/internal/facility"
)

// errInterrupted is the cause of the demo's context when a signal ends it.
var errInterrupted = errors.New("interrupted")

func main() {
	bin := flag.String("bin", "bin/pacsnet", "the pacsnet binary")
	corpus := flag.String("corpus", "testdata/dicom", "the real DICOM test corpus (with MANIFEST.tsv)")
	slices := flag.Int("slices", 200, "CT slices to generate")
	uploadRate := flag.Int64("upload-rate", 16_000_000, "St Mary's cap on bytes/s served to partners (its WAN uplink)")
	keep := flag.Bool("keep", false, "keep the temporary homes")
	serve := flag.Bool("serve", false, "after the demo, keep the three nodes running (their web apps open) until Ctrl-C")
	flag.Parse()

	// The first SIGINT or SIGTERM cancels ctx: the CLI command running
	// gets SIGTERM, run returns, and every serve process is stopped below.
	// Later signals are swallowed until then; stopping is bounded (Stop
	// kills after 20 s).
	ctx, cancel := context.WithCancelCause(context.Background())
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	var sig os.Signal // written by the watcher, read after watched is closed
	finished, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case sig = <-sigc:
			fmt.Fprintf(os.Stderr, "\n%s: stopping every process the demo started\n", sigName(sig))
			cancel(errInterrupted)
		case <-finished:
		}
	}()

	d := &demo{ctx: ctx, bin: *bin, corpus: *corpus, slices: *slices, uploadRate: *uploadRate}
	err := d.run()
	if err == nil && *serve {
		fmt.Println("\nDEMO OK: every step held. The nodes keep running; open a web app below. Ctrl-C stops them.")
		if d.webNote != "" {
			fmt.Println("  " + d.webNote)
		}
		<-ctx.Done()
		sig = nil // the interrupt ends the serving, not the demo
	}
	stopped := d.stopAll()
	close(finished)
	<-watched
	cancel(nil)
	what := "no temporary homes yet"
	if *keep && d.dir != "" {
		fmt.Printf("homes kept in %s\n", d.dir)
		what = "homes kept in " + d.dir
	} else if d.dir != "" {
		what = "removed " + d.dir
		if rerr := os.RemoveAll(d.dir); rerr != nil {
			fmt.Fprintf(os.Stderr, "remove %s: %v\n", d.dir, rerr)
			what = "could not remove " + d.dir
		}
	}
	if sig != nil {
		fmt.Fprintf(os.Stderr, "\ndemo interrupted (%s): stopped %s; %s\n", sigName(sig), stopped, what)
		os.Exit(128 + int(sig.(syscall.Signal)))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nDEMO FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\nDEMO OK: every step held.")
}

func sigName(s os.Signal) string {
	if s == syscall.SIGINT {
		return "SIGINT"
	}
	return "SIGTERM"
}

type demo struct {
	ctx              context.Context // ends on SIGINT or SIGTERM
	bin, corpus, dir string
	slices           int
	uploadRate       int64
	facs             []*facility.Facility
	rows             [][]string
	notes            []string // printed under the summary table
	webNote          string   // where the web app is and how to sign in
}

func step(f string, a ...any) { fmt.Printf("\n== "+f+"\n", a...) }

// stopAll stops every serve process the demo started, by PID, and says
// which.
func (d *demo) stopAll() string {
	var stopped []string
	for _, f := range d.facs {
		if pid := f.PID(); pid != 0 {
			if err := f.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "stop %s (pid %d): %v\n", f.Name, pid, err)
			}
			stopped = append(stopped, fmt.Sprintf("%s (pid %d)", f.Name, pid))
		}
	}
	if len(stopped) == 0 {
		return "no process was running"
	}
	return strings.Join(stopped, ", ")
}

// cli runs a pacsnet command at f under the demo's context.
func (d *demo) cli(f *facility.Facility, args ...string) ([]byte, error) {
	return f.RunContext(d.ctx, nil, args...)
}

// json runs a pacsnet command with --json at f under the demo's context.
func (d *demo) json(f *facility.Facility, v any, args ...string) error {
	return f.JSONContext(d.ctx, v, args...)
}

// sleep waits for dur or until the demo is interrupted.
func (d *demo) sleep(dur time.Duration) error {
	select {
	case <-d.ctx.Done():
		return context.Cause(d.ctx)
	case <-time.After(dur):
		return nil
	}
}

func (d *demo) run() error {
	var err error
	if d.dir, err = os.MkdirTemp("", "pacsnet-demo-"); err != nil {
		return err
	}
	step("Three facilities on loopback, each its own `pacsnet serve` process (homes in %s)", d.dir)
	stMary := facility.New(d.bin, d.dir, "St Mary")
	riverside := facility.New(d.bin, d.dir, "Riverside")
	northgate := facility.New(d.bin, d.dir, "Northgate")
	for _, f := range []*facility.Facility{stMary, riverside, northgate} {
		d.facs = append(d.facs, f)
		if _, err := d.cli(f, "init", "--name", f.Name); err != nil {
			return err
		}
		if f == riverside {
			// Riverside serves the studies it fetched to St Mary's other
			// grantees, as a secondary holder (off by default).
			if err := editConfig(f, "[exchange]\n", "serve_as_secondary = false", "serve_as_secondary = true"); err != nil {
				return err
			}
		}
		if f == stMary {
			// St Mary lets Riverside search it for a patient's studies and
			// grants Riverside's emergency requests at once (break-glass).
			cfg := filepath.Join(f.Home, "config.toml")
			b, err := os.ReadFile(cfg)
			if err != nil {
				return err
			}
			b = []byte(strings.Replace(string(b), "[requests]\n", "[requests]\n  query_partners = [\"Riverside\"]\n  emergency_partners = [\"Riverside\"]\n", 1))
			if err := os.WriteFile(cfg, b, 0o600); err != nil {
				return err
			}
		}
		if err := f.StartContext(d.ctx); err != nil {
			return err
		}
		var st api.Status
		if err := d.json(f, &st, "status"); err != nil {
			return err
		}
		fmt.Printf("  %-10s pid %-7d api http://%s  peer %s\n", f.Name, f.PID(), f.HTTPAddr, st.PeerID)
	}

	step("Partners: St Mary <-> Riverside, St Mary <-> Northgate and Riverside <-> Northgate exchange signed invites")
	if err := facility.PartnerContext(d.ctx, stMary, riverside); err != nil {
		return err
	}
	if err := facility.PartnerContext(d.ctx, stMary, northgate); err != nil {
		return err
	}
	if err := facility.PartnerContext(d.ctx, riverside, northgate); err != nil {
		return err
	}
	out, _ := d.cli(stMary, "peers")
	fmt.Print(indent(out))

	step("St Mary imports a generated %d-slice CT and the real corpus", d.slices)
	ctDir := filepath.Join(d.dir, "ct")
	var syn api.SynthResult
	if err := d.json(stMary, &syn, "synth", "--out", ctDir, "--slices", fmt.Sprint(d.slices)); err != nil {
		return err
	}
	corpusDir, corpusName, err := d.copyParseOK()
	if err != nil {
		return err
	}
	var imp, impCorpus api.ImportReport
	if err := d.json(stMary, &imp, "import", ctDir); err != nil {
		return err
	}
	if imp.Summary[api.OutcomeStored] != syn.Files {
		return fmt.Errorf("CT: %d of %d slices stored", imp.Summary[api.OutcomeStored], syn.Files)
	}
	// Every corpus file parses (dicomio's tests hold that); the archive
	// then files each one or says clearly why not: two files carry SOP
	// Class, Study and Series UIDs only inside sequences, not at the top
	// level, and cannot be filed; the corpus also holds the same
	// MR image in five transfer syntaxes (one instance: the first encoding
	// is kept) and a doctored copy of a JPEG 2000 file under the original's
	// SOP Instance UID (refused: nothing is overwritten).
	out, err = d.cli(stMary, "import", "--json", corpusDir) // exits 1 when any file was refused
	if jerr := facility.DecodeJSON(out, &impCorpus); jerr != nil {
		return fmt.Errorf("import --json: %w (%v)", jerr, err)
	}
	fmt.Println("  The corpus deliberately holds five encodings of one MR image and two of one RT plan (duplicates: the\n" +
		"  first stored is kept), a doctored copy under an existing UID (conflict) and two files without top-level\n" +
		"  SOP Class/Study/Series UIDs (refused, the first missing one named): the lines below are expected.")
	stored, counts := syn.Files, map[string]int{}
	for _, r := range impCorpus.Results {
		counts[r.Outcome]++
		switch {
		case r.Outcome == api.OutcomeStored:
			stored++
		case r.Outcome == api.OutcomeDuplicate:
			fmt.Printf("  duplicate  %s: %s\n", corpusName[r.Path], strings.Join(r.Warnings, "; "))
		case r.Outcome == api.OutcomeConflict, r.Outcome == api.OutcomeRejected && r.Code == "missing-attribute":
			fmt.Printf("  %-10s %s: %s\n", r.Outcome, corpusName[r.Path], r.Error)
		default:
			return fmt.Errorf("corpus file %s: %s %s", corpusName[r.Path], r.Outcome, r.Error)
		}
	}
	fmt.Printf("  stored %d CT slices and %d of %d corpus files (%.1f MB in %.2fs)\n", syn.Files, stored-syn.Files, len(corpusName),
		float64(imp.Bytes+impCorpus.Bytes)/1e6, imp.Seconds+impCorpus.Seconds)
	imp.Bytes += impCorpus.Bytes
	imp.Seconds += impCorpus.Seconds
	d.row("import at St Mary", stored, imp.Bytes, imp.Seconds)
	out, _ = d.cli(stMary, "studies")
	fmt.Print(indent(out))

	scanStudy, err := d.modalityStores(stMary)
	if err != nil {
		return err
	}

	step("St Mary grants the CT to Riverside (72h)")
	var gr api.Grant
	if err := d.json(stMary, &gr, "grant", "--to", "Riverside", "--study", syn.StudyUID, "--expires", "72h"); err != nil {
		return err
	}
	fmt.Printf("  grant %s, purpose %s, expires %s\n", gr.GrantID, gr.Purpose, gr.Expires.Format(time.RFC3339))

	step("Riverside receives the signed, encrypted manifest")
	start := time.Now()
	if err := d.waitShared(riverside, syn.StudyUID, api.SharedAvailable, 30*time.Second); err != nil {
		return err
	}
	fmt.Printf("  arrived after %.0f ms\n", time.Since(start).Seconds()*1000)
	out, _ = d.cli(riverside, "shared")
	fmt.Print(indent(out))

	step("Riverside fetches the study (blocks verified by the CIDs of the signed manifest; instances by SHA-256 when read)")
	t0 := time.Now()
	if _, err := riverside.RunContext(d.ctx, os.Stderr, "fetch", "--study", syn.StudyUID, "--from", "St Mary"); err != nil {
		return err
	}
	fetchSecs := time.Since(t0).Seconds()
	var ctBytes int64
	origSum, origRaw := map[string]string{}, map[string]string{}
	for _, r := range imp.Results {
		if strings.HasPrefix(r.Path, ctDir) {
			ctBytes += r.Size
			sum, raw, err := sha256s(r.Path)
			if err != nil {
				return err
			}
			origSum[r.SOPInstanceUID], origRaw[r.SOPInstanceUID] = sum, raw
		}
	}
	d.row("fetch St Mary -> Riverside", syn.Files, ctBytes, fetchSecs)

	step("Riverside exports the study and checks every file against the original")
	exportDir := filepath.Join(d.dir, "riverside-export")
	var exp api.ExportResult
	t0 = time.Now()
	if err := d.json(riverside, &exp, "export", "--study", syn.StudyUID, "--out", exportDir); err != nil {
		return err
	}
	d.row("export at Riverside", len(exp.Files), exp.Bytes, time.Since(t0).Seconds())
	if len(exp.Files) != syn.Files {
		return fmt.Errorf("exported %d files, want %d", len(exp.Files), syn.Files)
	}
	byteExact := 0
	for _, f := range exp.Files {
		sum, raw, err := sha256s(f.Path)
		if err != nil {
			return err
		}
		if want, ok := origSum[f.SOPInstanceUID]; !ok || sum != want {
			return fmt.Errorf("exported %s does not match the original", f.Path)
		}
		if raw == origRaw[f.SOPInstanceUID] {
			byteExact++
		}
	}
	// The archive keeps a file as stored: with its 128-byte preamble
	// zeroed (a preamble can carry anything, see docs/conformance.md).
	// The generated CT's preamble is zero already; say so only if checked.
	fmt.Printf("  %d of %d instances identical to the originals as stored (SHA-256 of the file with its 128-byte preamble zeroed", len(exp.Files), syn.Files)
	if byteExact == len(exp.Files) {
		fmt.Printf(";\n  the generated CT has a zero preamble, so here the files are byte-for-byte the originals)\n")
	} else {
		fmt.Printf(";\n  %d of them are byte-for-byte the originals, the others differed only in their preamble)\n", byteExact)
	}

	if err := d.viewerReads(riverside, syn.StudyUID, syn.Files, origSum); err != nil {
		return err
	}
	if err := d.webApp(riverside, syn.StudyUID, syn.Files); err != nil {
		return err
	}

	step("Northgate, a partner without a grant, tries to fetch the CT")
	_, err = d.cli(northgate, "fetch", "--study", syn.StudyUID, "--from", "St Mary", "--no-progress")
	var ee *facility.ExitError
	if err == nil {
		return fmt.Errorf("northgate's fetch succeeded; it must be refused")
	} else if !errors.As(err, &ee) || !strings.Contains(ee.Stderr, "has not shared that study") {
		return fmt.Errorf("northgate's fetch: %w; want a refusal", err)
	}
	fmt.Printf("  refused: %s\n", firstLine(ee.Stderr))
	var ngStatus api.Status
	if err := d.json(northgate, &ngStatus, "status"); err != nil {
		return err
	}
	var entries []api.AuditEntry
	if err := d.json(stMary, &entries, "audit"); err != nil {
		return err
	}
	found, reason := false, ""
	for _, e := range entries {
		if e.Action == api.ActFetchDenied && e.Peer != nil && e.Peer.PeerID == ngStatus.PeerID && e.StudyUID == syn.StudyUID {
			found, reason = true, e.Reason
			fmt.Printf("  St Mary's audit #%d: %s %s by Northgate, reason %q\n", e.Seq, e.Action, e.Decision, e.Reason)
		}
	}
	if !found {
		return fmt.Errorf("the refusal is not in St Mary's audit log")
	}
	d.notes = append(d.notes, fmt.Sprintf("Northgate (partner, no grant): refused, 0 of %d instances; audited as %q", syn.Files, reason))

	if err := d.workstationRetrieves(stMary, riverside, scanStudy); err != nil {
		return err
	}
	if err := d.revokeMidFetch(stMary, riverside); err != nil {
		return err
	}
	if err := d.patientGrant(stMary, northgate); err != nil {
		return err
	}
	if err := d.multiSource(stMary, northgate, syn.StudyUID, syn.Files, ctBytes); err != nil {
		return err
	}
	kept, err := d.checkpoint(stMary)
	if err != nil {
		return err
	}
	if err := d.accessRequests(stMary, riverside); err != nil {
		return err
	}

	step("St Mary's auditor checks the whole audit chain, its signed checkpoints, and the checkpoint kept off the node")
	out, err = d.cli(stMary, "audit", "--verify", "--against", kept)
	if err != nil {
		return err
	}
	fmt.Print(indent(out))

	step("Summary")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\tinstances\tMB\tseconds\tMB/s\t")
	for _, r := range d.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	tw.Flush()
	for _, n := range d.notes {
		fmt.Println("  " + n)
	}
	return nil
}

// patientGrant: St Mary grants Northgate one patient's studies for a
// second opinion; a new study of that patient arriving at St Mary later
// reaches Northgate on its own, and Northgate fetches both.
func (d *demo) patientGrant(stMary, northgate *facility.Facility) error {
	const patient = "DEMO-MRN-4711"
	step("St Mary grants Northgate a patient's studies (second opinion, 7d); a new study of the patient arrives later and follows")
	synthImport := func(name string, seed int) (api.SynthResult, error) {
		var syn api.SynthResult
		dir := filepath.Join(d.dir, "patient-"+name)
		if err := d.json(stMary, &syn, "synth", "--out", dir, "--slices", "4", "--size", "128", "--seed", strconv.Itoa(seed), "--patient-id", patient); err != nil {
			return syn, err
		}
		_, err := d.cli(stMary, "import", dir)
		return syn, err
	}
	prior, err := synthImport("prior", 4711)
	if err != nil {
		return err
	}
	var gr api.Grant
	if err := d.json(stMary, &gr, "grant", "--to", "Northgate", "--patient", patient, "--purpose", "second-opinion", "--expires", "7d"); err != nil {
		return err
	}
	fmt.Printf("  grant %s: patient scope, purpose %s, expires %s\n", gr.GrantID, gr.Purpose, gr.Expires.Format(time.RFC3339))
	if err := d.waitShared(northgate, prior.StudyUID, api.SharedAvailable, 30*time.Second); err != nil {
		return err
	}
	fmt.Println("  Northgate lists the prior study")
	later, err := synthImport("later", 4712)
	if err != nil {
		return err
	}
	fmt.Println("  St Mary imports a new study of the same patient (no new grant)")
	if err := d.waitShared(northgate, later.StudyUID, api.SharedAvailable, 30*time.Second); err != nil {
		return err
	}
	fmt.Println("  Northgate lists the new study under the same patient grant")
	for _, st := range []string{prior.StudyUID, later.StudyUID} {
		if _, err := d.cli(northgate, "fetch", "--study", st, "--no-progress"); err != nil {
			return err
		}
	}
	fmt.Println("  Northgate fetched both (every block checked against the patient's grant)")
	d.notes = append(d.notes, "Northgate, patient grant: the prior and a study that arrived after the grant both reached it and were fetched")
	return nil
}

// multiSource: St Mary grants the CT Riverside fetched to Northgate too;
// Riverside serves as a secondary holder (it announced itself to St Mary
// after its fetch), so Northgate fetches from both at once, Riverside
// checking St Mary's signed grant offline for every block.
func (d *demo) multiSource(stMary, northgate *facility.Facility, study string, files int, size int64) error {
	step("St Mary grants the CT to Northgate too; Northgate fetches it from St Mary and Riverside at once (Riverside checks St Mary's signed grant itself)")
	if _, err := d.cli(stMary, "grant", "--to", "Northgate", "--study", study, "--expires", "24h"); err != nil {
		return err
	}
	if err := d.waitShared(northgate, study, api.SharedAvailable, 30*time.Second); err != nil {
		return err
	}
	out, err := d.cli(northgate, "fetch", "--study", study, "--from", "St Mary", "--no-progress", "--json")
	if err != nil {
		return err
	}
	var fo api.FetchReport
	if err := facility.DecodeJSON(out, &fo); err != nil {
		return fmt.Errorf("fetch --json: %w", err)
	}
	if fo.Fetch.InstancesDone != files {
		return fmt.Errorf("northgate fetched %d of %d instances", fo.Fetch.InstancesDone, files)
	}
	var parts []string
	fromRiverside := false
	for _, src := range fo.Fetch.Sources {
		parts = append(parts, fmt.Sprintf("%s %.1f MB", src.Holder.Name, float64(src.Bytes)/1e6))
		if src.Holder.Name == "Riverside" {
			fromRiverside = true
		}
	}
	if !fromRiverside {
		return fmt.Errorf("northgate's fetch did not list Riverside as a holder (sources: %s)", strings.Join(parts, ", "))
	}
	// St Mary still serves partners at most d.uploadRate (its WAN
	// uplink, since the revocation step): the engine favours the faster
	// source, so Riverside carries most of it.
	why := ""
	if d.uploadRate > 0 {
		why = fmt.Sprintf(" (St Mary's uplink capped at %.0f MB/s, Riverside's not: the faster source carries more)", float64(d.uploadRate)/1e6)
	}
	fmt.Printf("  %d instances verified in %.2fs; blocks from: %s%s\n", files, fo.Seconds, strings.Join(parts, ", "), why)
	d.row("fetch St Mary + Riverside -> Northgate", files, size, fo.Seconds)
	d.notes = append(d.notes, "Northgate fetched the CT from St Mary and Riverside at once: "+strings.Join(parts, ", ")+why)
	return nil
}

// editConfig replaces old with new in f's config.toml, in the section
// that begins with section.
func editConfig(f *facility.Facility, section, old, new string) error {
	path := filepath.Join(f.Home, "config.toml")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i := strings.Index(s, section)
	j := strings.Index(s[max(i, 0):], old)
	if i < 0 || j < 0 {
		return fmt.Errorf("%s's config.toml has no %q in %q", f.Name, old, strings.TrimSpace(section))
	}
	s = s[:i+j] + new + s[i+j+len(old):]
	return os.WriteFile(path, []byte(s), 0o600)
}

// checkpoint has St Mary sign a checkpoint of its audit log, kept outside
// its home (as an auditor would keep it elsewhere), for the final verify.
func (d *demo) checkpoint(stMary *facility.Facility) (string, error) {
	step("St Mary's auditor has the node sign a checkpoint of its audit log and keeps it off the node")
	out, err := d.cli(stMary, "audit", "--checkpoint")
	if err != nil {
		return "", err
	}
	var cp api.SignedAuditCheckpoint
	if err := json.Unmarshal(out, &cp); err != nil {
		return "", err
	}
	kept := filepath.Join(d.dir, "st-mary-checkpoint.json")
	if err := os.WriteFile(kept, out, 0o600); err != nil {
		return "", err
	}
	fmt.Printf("  checkpoint #%d: %d entries, head %s…, signed by %s…; saved to %s\n",
		cp.Checkpoint.Index, cp.Checkpoint.Seq, cp.Checkpoint.Head[:16], cp.Checkpoint.Node[:16], kept)
	return kept, nil
}

// accessRequests: a clinician at Riverside finds a patient's study at St
// Mary by federated search, asks for the patient's studies, St Mary's
// admin approves, and she fetches it; then an emergency request is
// granted at once by break-glass and St Mary's admin reviews it.
func (d *demo) accessRequests(stMary, riverside *facility.Facility) error {
	const patient = "DEMO-MRN-5150"
	step("Riverside's clinician Dr Okafor searches the partners for patient %s, asks St Mary for the patient's studies, St Mary approves, she fetches", patient)
	var syn api.SynthResult
	dir := filepath.Join(d.dir, "patient-okafor")
	if err := d.json(stMary, &syn, "synth", "--out", dir, "--slices", "4", "--size", "128", "--seed", "5150", "--patient-id", patient); err != nil {
		return err
	}
	if _, err := d.cli(stMary, "import", dir); err != nil {
		return err
	}
	if _, err := d.cli(riverside, "user", "add", "dr.okafor", "--role", "clinician"); err != nil {
		return err
	}
	var issued api.TokenIssued
	if err := d.json(riverside, &issued, "token", "add", "--user", "dr.okafor", "--expires", "8h"); err != nil {
		return err
	}
	env := riverside.Env
	riverside.Env = append(append([]string{}, env...), "PACSNET_TOKEN="+issued.Secret)
	defer func() { riverside.Env = env }()

	var found []api.PatientSearchResult
	if err := d.json(riverside, &found, "search", "--patient-id", patient); err != nil {
		return err
	}
	n := 0
	for _, r := range found {
		for _, s := range r.Studies {
			if s.StudyUID == syn.StudyUID {
				n++
				fmt.Printf("  search: %s holds a %s study of %s, %d images (study %s)\n", r.Holder.Name, strings.Join(s.Modalities, ","), s.StudyDate, s.Instances, s.StudyUID)
			}
		}
	}
	if n != 1 {
		return fmt.Errorf("federated search found the patient's study %d times, want once: %+v", n, found)
	}
	var req api.AccessRequest
	if err := d.json(riverside, &req, "request", "--to", "St Mary", "--patient-id", patient, "--reason", "referral",
		"--note", "referred for a second read of the prior CT"); err != nil {
		return err
	}
	fmt.Printf("  Dr Okafor's request %s…: %s (signed by Riverside; the note stays out of both audit chains)\n", req.RequestID[:12], req.State)
	out, err := d.cli(stMary, "requests")
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	if _, err := d.cli(stMary, "approve", req.RequestID[:12], "--expires", "3d"); err != nil {
		return err
	}
	var lists api.RequestLists
	if err := d.json(riverside, &lists, "requests", "--mine"); err != nil {
		return err
	}
	if len(lists.Outgoing) == 0 || lists.Outgoing[0].State != api.RequestApproved {
		return fmt.Errorf("Riverside's view of its request: %+v", lists.Outgoing)
	}
	fmt.Printf("  St Mary approved: grant %s to Dr Okafor only, until %s\n", lists.Outgoing[0].GrantID, lists.Outgoing[0].Expires.Format(time.RFC3339))
	if err := d.waitShared(riverside, syn.StudyUID, api.SharedAvailable, 30*time.Second); err != nil {
		return err
	}
	if _, err := d.cli(riverside, "fetch", "--study", syn.StudyUID, "--no-progress"); err != nil {
		return err
	}
	fmt.Println("  Dr Okafor fetched the study (the grant names her: Riverside's other users may not fetch under it)")

	step("At night, Dr Okafor asks St Mary for emergency access: granted at once (break-glass, 4h), reviewed by St Mary's admin next morning")
	var em api.AccessRequest
	if err := d.json(riverside, &em, "request", "--to", "St Mary", "--patient-id", patient, "--reason", "emergency-care", "--emergency"); err != nil {
		return err
	}
	if em.State != api.RequestApproved || em.Expires == nil {
		return fmt.Errorf("emergency request: %+v", em)
	}
	fmt.Printf("  granted at once: grant %s until %s, marked emergency\n", em.GrantID, em.Expires.Format(time.RFC3339))
	out, err = d.cli(stMary, "requests", "--emergency")
	if err != nil {
		return err
	}
	fmt.Print(indent(out))
	if _, err := d.cli(stMary, "review", em.RequestID, "--outcome", "justified"); err != nil {
		return err
	}
	fmt.Println("  St Mary's admin recorded the review: justified (audited as emergency-reviewed)")
	d.notes = append(d.notes, "Riverside's clinician found a patient's study by federated search, asked, was approved and fetched it; an emergency request was granted at once and reviewed")
	return nil
}

// revokeMidFetch shares a second study with Riverside and revokes the
// grant as soon as Riverside holds part of it: St Mary checks the grant on
// every block request, so the rest must be refused and audited, and the
// signed revocation must reach Riverside.
func (d *demo) revokeMidFetch(stMary, riverside *facility.Facility) error {
	const slices = 60
	step("St Mary shares a second CT (%d slices) with Riverside, then revokes the grant mid-fetch", slices)
	ctDir := filepath.Join(d.dir, "ct2")
	var syn api.SynthResult
	if err := d.json(stMary, &syn, "synth", "--seed", "2", "--slices", fmt.Sprint(slices), "--out", ctDir); err != nil {
		return err
	}
	var imp api.ImportReport
	if err := d.json(stMary, &imp, "import", ctDir); err != nil {
		return err
	}
	if imp.Summary[api.OutcomeStored] != syn.Files {
		return fmt.Errorf("second CT: %d of %d slices stored", imp.Summary[api.OutcomeStored], syn.Files)
	}
	var gr api.Grant
	if err := d.json(stMary, &gr, "grant", "--to", "Riverside", "--study", syn.StudyUID, "--expires", "72h"); err != nil {
		return err
	}
	fmt.Printf("  imported %d slices (%.1f MB), grant %s to Riverside\n", syn.Files, float64(imp.Bytes)/1e6, gr.GrantID)
	// A hospital's WAN uplink rather than loopback's GB/s, so that the
	// revocation surely lands while the study is on its way.
	if err := stMary.Stop(); err != nil {
		return err
	}
	stMary.Extra = []string{"--upload-rate", fmt.Sprint(d.uploadRate)}
	if err := stMary.StartContext(d.ctx); err != nil {
		return err
	}
	fmt.Printf("  St Mary restarted serving partners at most %.0f MB/s (%.0f Mbit/s, --upload-rate), a hospital WAN uplink\n",
		float64(d.uploadRate)/1e6, float64(d.uploadRate)*8/1e6)
	if err := d.waitShared(riverside, syn.StudyUID, api.SharedAvailable, 30*time.Second); err != nil {
		return err
	}

	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := d.cli(riverside, "fetch", "--study", syn.StudyUID, "--from", "St Mary", "--no-progress", "--json")
		done <- result{out, err}
	}()
	// The goroutine ends with its command, which ends with the demo's
	// context at the latest: whatever happens below, wait for it.
	var r result
	waited := false
	wait := func() result {
		if !waited {
			r, waited = <-done, true
		}
		return r
	}
	defer wait()

	held := 0
	for held == 0 {
		select {
		case r := <-done:
			waited = true
			return fmt.Errorf("the fetch ended (%v) before Riverside held any instance; nothing to revoke mid-way (lower --upload-rate)", r.err)
		default:
		}
		var ss []api.Study
		if err := d.json(riverside, &ss, "studies"); err != nil {
			return err
		}
		for _, s := range ss {
			if s.StudyUID == syn.StudyUID {
				held = s.Instances
			}
		}
		if held == 0 {
			if time.Since(start) > 60*time.Second {
				return errors.New("riverside held no instance of the second study after 60s")
			}
			if err := d.sleep(20 * time.Millisecond); err != nil {
				return err
			}
		}
	}
	if held >= syn.Files {
		return fmt.Errorf("riverside already held all %d instances when it was seen: nothing to revoke mid-way (lower --upload-rate)", held)
	}
	revokeAt := time.Since(start)
	if _, err := d.cli(stMary, "revoke", gr.GrantID, "--reason", "treatment-ended"); err != nil {
		return err
	}
	fmt.Printf("  Riverside held %d of %d instances %.2fs into its fetch; St Mary revoked grant %s (%.2fs)\n",
		held, syn.Files, revokeAt.Seconds(), gr.GrantID, time.Since(start).Seconds())

	r = wait()
	var ee *facility.ExitError
	if r.err == nil {
		return errors.New("riverside's fetch completed after the revocation; the holder must refuse the remaining blocks")
	} else if !errors.As(r.err, &ee) || !strings.Contains(ee.Stderr, "refused the transfer") {
		return fmt.Errorf("riverside's fetch after the revocation: %w; want a refusal", r.err)
	}
	var fo api.FetchReport
	if err := facility.DecodeJSON(r.out, &fo); err != nil {
		return fmt.Errorf("fetch --json: %w", err)
	}
	got := fo.Fetch.InstancesDone
	if got >= syn.Files {
		return fmt.Errorf("riverside's fetch failed but reports all %d instances done", got)
	}
	fmt.Printf("  the fetch failed after %.2fs with %d of %d instances: %s\n", fo.Seconds, got, syn.Files, firstLine(ee.Stderr))

	var rvSt api.Status
	if err := d.json(riverside, &rvSt, "status"); err != nil {
		return err
	}
	var entries []api.AuditEntry
	if err := d.json(stMary, &entries, "audit"); err != nil {
		return err
	}
	denied := 0
	for _, e := range entries {
		if e.Action == api.ActFetchDenied && e.Peer != nil && e.Peer.PeerID == rvSt.PeerID && e.GrantID == gr.GrantID && e.Reason == "revoked" {
			if denied == 0 {
				fmt.Printf("  St Mary's audit #%d: %s %s by Riverside under grant %s, reason %q\n", e.Seq, e.Action, e.Decision, e.GrantID, e.Reason)
			}
			denied++
		}
	}
	if denied == 0 {
		return errors.New("st mary's audit log has no refusal with reason \"revoked\" for riverside's grant")
	}

	t0 := time.Now()
	if err := d.waitShared(riverside, syn.StudyUID, api.SharedRevoked, 10*time.Second); err != nil {
		return err
	}
	fmt.Printf("  Riverside's `shared` shows the study %q %.0f ms later (the signed revocation arrived)\n", "revoked", time.Since(t0).Seconds()*1000)
	var ss []api.Study
	if err := d.json(riverside, &ss, "studies"); err != nil {
		return err
	}
	heldNow := 0
	for _, s := range ss {
		if s.StudyUID == syn.StudyUID {
			heldNow = s.Instances
		}
	}
	if heldNow >= syn.Files {
		return fmt.Errorf("riverside holds all %d instances of the revoked study", heldNow)
	}
	fmt.Printf("  Riverside holds %d of %d instances: the other %d were refused\n", heldNow, syn.Files, syn.Files-heldNow)
	d.rowN("fetch 2nd CT, revoked mid-way", fmt.Sprintf("%d/%d", got, syn.Files), fo.Fetch.BytesDone, fo.Seconds)
	d.notes = append(d.notes, fmt.Sprintf("Riverside, grant revoked mid-fetch: %d of %d instances arrived before St Mary refused the next block, the other %d were refused; audited as %q",
		got, syn.Files, syn.Files-got, "revoked"))
	return nil
}

// modalityStores has a CT scanner (DCMTK's storescu, AE CT_SCANNER) send a
// study to St Mary by C-STORE over its DICOM port: the way modalities and
// PACS store to a node.
func (d *demo) modalityStores(stMary *facility.Facility) (string, error) {
	var st api.Status
	if err := d.json(stMary, &st, "status"); err != nil {
		return "", err
	}
	step("A CT scanner (DCMTK storescu, AE CT_SCANNER) sends a 20-slice CT to St Mary by C-STORE (AE %s at %s)", st.AETitle, st.DICOM)
	if _, err := d.cli(stMary, "ae", "add", "CT_SCANNER", "--host", "127.0.0.1", "--port", "4104"); err != nil {
		return "", err
	}
	dir := filepath.Join(d.dir, "scanner")
	var syn api.SynthResult
	if err := d.json(stMary, &syn, "synth", "--out", dir, "--slices", "20", "--seed", "7"); err != nil {
		return "", err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	var size int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			size += fi.Size()
		}
	}
	host, port, _ := strings.Cut(st.DICOM, ":")
	t0 := time.Now()
	// storescu as a scanner runs it, Nagle's algorithm on (DCMTK's
	// default): the node acknowledges each PDU at once, so it costs
	// nothing (docs/conformance.md, Association policies).
	cmd := exec.CommandContext(d.ctx, "storescu", append([]string{"-aet", "CT_SCANNER", "-aec", st.AETitle, host, port}, files...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("storescu: %v\n%s", err, out)
	}
	secs := time.Since(t0).Seconds()
	var studies []api.Study
	if err := d.json(stMary, &studies, "studies"); err != nil {
		return "", err
	}
	for _, s := range studies {
		if s.StudyUID == syn.StudyUID {
			if s.Instances != len(files) {
				return "", fmt.Errorf("C-STORE: St Mary holds %d of the %d instances sent", s.Instances, len(files))
			}
			fmt.Printf("  %d instances stored by C-STORE in %.2fs, each acknowledged only after its synced commit\n", len(files), secs)
			fmt.Printf("  (point a modality at AE %s, %s, after `pacsnet ae add` names it)\n", st.AETitle, st.DICOM)
			d.row("C-STORE into St Mary", len(files), size, secs)
			return syn.StudyUID, nil
		}
	}
	return "", errors.New("C-STORE: the scanner's study is not listed at St Mary")
}

// workstationRetrieves has a workstation at Riverside (DCMTK findscu,
// movescu, and storescp receiving) find and retrieve a study St Mary
// granted but Riverside has not fetched, through Riverside's DICOM port
// only: the node lists it NEARLINE, fetches it from St Mary on the
// C-MOVE, and delivers it.
func (d *demo) workstationRetrieves(stMary, riverside *facility.Facility, study string) error {
	var st api.Status
	if err := d.json(riverside, &st, "status"); err != nil {
		return err
	}
	step("A workstation at Riverside (DCMTK findscu/movescu) finds St Mary's scanner study and retrieves it through Riverside's DICOM port")
	if _, err := d.cli(stMary, "grant", "--to", "Riverside", "--study", study, "--expires", "24h"); err != nil {
		return err
	}
	if err := d.waitShared(riverside, study, api.SharedAvailable, 30*time.Second); err != nil {
		return err
	}
	port, err := facility.FreePort()
	if err != nil {
		return err
	}
	if _, err := d.cli(riverside, "ae", "add", "WORKSTATION", "--host", "127.0.0.1", "--port", fmt.Sprint(port)); err != nil {
		return err
	}
	recv := filepath.Join(d.dir, "workstation")
	os.MkdirAll(recv, 0o755)
	// The workstation's DCMTK tools at their defaults (Nagle on), like
	// the scanner's.
	scp := exec.Command("storescp", "-aet", "WORKSTATION", "-od", recv, "--accept-all", fmt.Sprint(port))
	if err := scp.Start(); err != nil {
		return fmt.Errorf("storescp: %w", err)
	}
	defer func() { scp.Process.Kill(); scp.Wait() }()
	host, dport, _ := strings.Cut(st.DICOM, ":")
	find := exec.CommandContext(d.ctx, "findscu", "-S", "-aet", "WORKSTATION", "-aec", st.AETitle,
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "-k", "InstanceAvailability", "-k", "PatientName",
		"-k", "NumberOfStudyRelatedInstances", host, dport)
	out, err := find.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "NEARLINE") {
		return fmt.Errorf("findscu: %v, want the study listed NEARLINE:\n%s", err, out)
	}
	fmt.Println("  findscu: Riverside lists St Mary's study NEARLINE (shared with us, not yet fetched), Retrieve AE " + st.AETitle)
	t0 := time.Now()
	move := exec.CommandContext(d.ctx, "movescu", "-S", "-aet", "WORKSTATION", "-aec", st.AETitle, "-aem", "WORKSTATION",
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, host, dport)
	if out, err := move.CombinedOutput(); err != nil {
		return fmt.Errorf("movescu: %v\n%s", err, out)
	}
	got, _ := filepath.Glob(filepath.Join(recv, "*"))
	if len(got) != 20 {
		return fmt.Errorf("the workstation received %d instances, want 20", len(got))
	}
	again := exec.CommandContext(d.ctx, "findscu", "-S", "-aet", "WORKSTATION", "-aec", st.AETitle,
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID="+study, "-k", "InstanceAvailability", host, dport)
	if out, err := again.CombinedOutput(); err != nil || !strings.Contains(string(out), "ONLINE") {
		return fmt.Errorf("findscu after the retrieve: %v, want ONLINE:\n%s", err, out)
	}
	fmt.Printf("  movescu: Riverside fetched the study from St Mary (grant checked per block) and sent the workstation all %d\n"+
		"  instances in %.2fs; findscu now lists it ONLINE\n", len(got), time.Since(t0).Seconds())
	d.notes = append(d.notes, fmt.Sprintf("Riverside's workstation: C-FIND found St Mary's study NEARLINE, C-MOVE delivered %d instances", len(got)))
	return nil
}

func (d *demo) row(name string, n int, bytes int64, secs float64) {
	d.rowN(name, fmt.Sprint(n), bytes, secs)
}

func (d *demo) rowN(name, n string, bytes int64, secs float64) {
	d.rows = append(d.rows, []string{name, n, fmt.Sprintf("%.1f", float64(bytes)/1e6), fmt.Sprintf("%.2f", secs), fmt.Sprintf("%.1f", float64(bytes)/1e6/secs)})
}

// copyParseOK copies the corpus files MANIFEST.tsv says must parse and
// returns the copies' paths mapped to the original names.
func (d *demo) copyParseOK() (string, map[string]string, error) {
	dst := filepath.Join(d.dir, "corpus")
	names := map[string]string{}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", nil, err
	}
	f, err := os.Open(filepath.Join(d.corpus, "MANIFEST.tsv"))
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for i := 0; sc.Scan(); i++ {
		cols := strings.Split(sc.Text(), "\t")
		if i == 0 || len(cols) < 7 {
			continue
		}
		if cols[6] != "parse-ok" && cols[6] != "parse-ok-as-raw-dataset" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d.corpus, cols[0]))
		if err != nil {
			return "", nil, err
		}
		path := filepath.Join(dst, fmt.Sprintf("%03d.dcm", n))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return "", nil, err
		}
		names[path] = cols[0]
		n++
	}
	return dst, names, sc.Err()
}

// waitShared waits until f's `shared` lists the study in state.
func (d *demo) waitShared(f *facility.Facility, study, state string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var ss []api.SharedStudy
		if err := d.json(f, &ss, "shared"); err != nil {
			return err
		}
		for _, s := range ss {
			if s.StudyUID == study && s.State == state {
				return nil
			}
		}
		if err := d.sleep(50 * time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s: the study is not %q in `shared` after %s", f.Name, state, timeout)
}

// sha256s returns the SHA-256 of a Part-10 file with its preamble zeroed,
// as the archive stores it, and of the file as it is.
func sha256s(path string) (normalized, raw string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	r := sha256.Sum256(b)
	if len(b) >= 132 && string(b[128:132]) == "DICM" {
		clear(b[:128])
	}
	n := sha256.Sum256(b)
	return hex.EncodeToString(n[:]), hex.EncodeToString(r[:]), nil
}

func indent(b []byte) string {
	var sb strings.Builder
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		sb.WriteString("  " + l + "\n")
	}
	return sb.String()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// viewerReads is what a viewer at Riverside does over DICOMweb with the
// study it fetched: QIDO-RS finds it, WADO-RS gives its metadata (what
// OHIF asks for first), every instance (checked against the originals)
// and a rendered slice.
func (d *demo) viewerReads(riverside *facility.Facility, study string, n int, origSum map[string]string) error {
	step("Riverside's admin adds a clinician, Dr Chen; her viewer reads the fetched CT over DICOMweb (QIDO-RS, WADO-RS)")
	var added api.UserPassword
	if err := d.json(riverside, &added, "user", "add", "dr.chen", "--role", "clinician"); err != nil {
		return err
	}
	var issued api.TokenIssued
	if err := d.json(riverside, &issued, "token", "add", "--user", "dr.chen", "--expires", "8h"); err != nil {
		return err
	}
	tok := issued.Secret
	fmt.Printf("  user dr.chen (%s, clinician) with an API token valid 8h; the node keeps only its SHA-256\n", added.Account.UserID)
	base := "http://" + riverside.HTTPAddr + api.DICOMwebRoot
	get := func(path, accept string) (*http.Response, []byte, float64, error) {
		req, err := http.NewRequestWithContext(d.ctx, "GET", base+path, nil)
		if err != nil {
			return nil, nil, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, firstLine(string(b)))
		}
		return resp, b, time.Since(t0).Seconds(), err
	}
	_, b, _, err := get("/studies?StudyInstanceUID="+study, "application/dicom+json")
	if err != nil {
		return err
	}
	var found []map[string]struct {
		Value []any `json:"Value"`
	}
	if err := json.Unmarshal(b, &found); err != nil || len(found) != 1 {
		return fmt.Errorf("QIDO-RS found %d studies (%v), want 1", len(found), err)
	}
	fmt.Printf("  QIDO-RS  GET /dicom-web/studies?StudyInstanceUID=…: 1 study, %v instances, %v\n",
		fmt.Sprint(found[0]["00201208"].Value...), fmt.Sprint(found[0]["00080056"].Value...))
	_, b, secs, err := get("/studies/"+study+"/metadata", "")
	if err != nil {
		return err
	}
	var meta []json.RawMessage
	if err := json.Unmarshal(b, &meta); err != nil || len(meta) != n {
		return fmt.Errorf("WADO-RS metadata: %d instances (%v), want %d", len(meta), err, n)
	}
	fmt.Printf("  WADO-RS  GET …/studies/{study}/metadata: %d instances in %.2f s\n", len(meta), secs)
	resp, b, secs, err := get("/studies/"+study, `multipart/related; type="application/dicom"; transfer-syntax=*`)
	if err != nil {
		return err
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
	want := map[string]bool{}
	for _, sum := range origSum {
		want[sum] = true
	}
	same := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("WADO-RS study: %w", err)
		}
		data, err := io.ReadAll(p)
		if err != nil || len(data) < 132 {
			return fmt.Errorf("WADO-RS study: a part of %d bytes: %v", len(data), err)
		}
		clear(data[:128])
		if sum := sha256.Sum256(data); want[hex.EncodeToString(sum[:])] {
			same++
		}
	}
	if same != n {
		return fmt.Errorf("WADO-RS study: %d of %d instances match the originals", same, n)
	}
	d.row("WADO-RS study at Riverside", n, int64(len(b)), secs)
	fmt.Printf("  WADO-RS  GET …/studies/{study}: %d instances, every one identical to St Mary's original (SHA-256)\n", same)
	var m0 map[string]struct {
		Value []any `json:"Value"`
	}
	json.Unmarshal(meta[len(meta)/2], &m0)
	series, sop := fmt.Sprint(m0["0020000E"].Value...), fmt.Sprint(m0["00080018"].Value...)
	_, png, _, err := get("/studies/"+study+"/series/"+series+"/instances/"+sop+"/rendered?window=40,400", "image/png")
	if err != nil {
		return err
	}
	out := filepath.Join(d.dir, "riverside-slice.png")
	if err := os.WriteFile(out, png, 0o600); err != nil {
		return err
	}
	fmt.Printf("  WADO-RS  GET …/instances/{sop}/rendered?window=40,400: a %d-byte PNG (%s)\n", len(png), out)
	var entries []api.AuditEntry
	if err := d.json(riverside, &entries, "audit", "--action", api.ActInstanceRead, "--study", study); err != nil {
		return err
	}
	named := false
	for _, e := range entries {
		if e.Actor == added.Account.UserID {
			named = true
			fmt.Printf("  Riverside's audit #%d: %s of the study by %s (%s)\n", e.Seq, e.Action, e.Actor, e.Reason)
			break
		}
	}
	if !named {
		return fmt.Errorf("Riverside's audit does not name dr.chen's DICOMweb reads")
	}
	fmt.Printf("  A DICOMweb viewer (OHIF) points at %s with a user's token\n  (README: Viewing with OHIF; docs/screenshots/ohif-pacsnet.png)\n", base)
	return nil
}
