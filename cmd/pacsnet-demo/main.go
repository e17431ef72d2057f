// Command pacsnet-demo is `make demo`: three facilities as separate
// `pacsnet serve` processes on loopback. St Mary imports a generated CT and
// the parse-ok files of the real test corpus, grants the CT to Riverside,
// Riverside receives the manifest, fetches, exports and verifies every
// instance's SHA-256; Northgate, a partner without a grant, is refused and
// the refusal is in St Mary's audit log. It exits 0 only if all of it held,
// and stops every process it started.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pacsnet/pacsnet/cmd/internal/facility"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/node"
)

func main() {
	bin := flag.String("bin", "bin/pacsnet", "the pacsnet binary")
	corpus := flag.String("corpus", "testdata/dicom", "the real DICOM test corpus (with MANIFEST.tsv)")
	slices := flag.Int("slices", 200, "CT slices to generate")
	keep := flag.Bool("keep", false, "keep the temporary homes")
	flag.Parse()
	d := &demo{bin: *bin, corpus: *corpus, slices: *slices}
	err := d.run()
	d.stopAll()
	if *keep {
		fmt.Printf("homes kept in %s\n", d.dir)
	} else if d.dir != "" {
		os.RemoveAll(d.dir)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nDEMO FAILED: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\nDEMO OK: every step held.")
}

type demo struct {
	bin, corpus, dir string
	slices           int
	facs             []*facility.Facility
	rows             [][]string
}

func step(f string, a ...any) { fmt.Printf("\n== "+f+"\n", a...) }

func (d *demo) stopAll() {
	for _, f := range d.facs {
		if pid := f.PID(); pid != 0 {
			if err := f.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "stop %s (pid %d): %v\n", f.Name, pid, err)
			}
		}
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
		if err := f.Init(); err != nil {
			return err
		}
		if err := f.Start(); err != nil {
			return err
		}
		var st node.Status
		if err := getStatus(f, &st); err != nil {
			return err
		}
		fmt.Printf("  %-10s pid %-7d api http://%s  peer %s\n", f.Name, f.PID(), f.HTTPAddr, st.PeerID)
	}

	step("Partners: St Mary <-> Riverside and St Mary <-> Northgate exchange signed invites")
	if err := facility.Partner(stMary, riverside); err != nil {
		return err
	}
	if err := facility.Partner(stMary, northgate); err != nil {
		return err
	}
	out, _ := stMary.Run("peers")
	fmt.Print(indent(out))

	step("St Mary imports a generated %d-slice CT and the real corpus", d.slices)
	ctDir := filepath.Join(d.dir, "ct")
	var syn struct {
		Study string `json:"study"`
		Files int    `json:"files"`
	}
	if err := stMary.JSON(&syn, "synth", "--out", ctDir, "--slices", fmt.Sprint(d.slices)); err != nil {
		return err
	}
	corpusDir, corpusName, err := d.copyParseOK()
	if err != nil {
		return err
	}
	var imp, impCorpus importOut
	if err := stMary.JSON(&imp, "import", ctDir); err != nil {
		return err
	}
	if imp.Summary[node.OutcomeStored] != syn.Files {
		return fmt.Errorf("CT: %d of %d slices stored", imp.Summary[node.OutcomeStored], syn.Files)
	}
	// Every corpus file parses (dicomio's tests hold that); the archive
	// then files each one or says clearly why not: a file without Study or
	// Series Instance UID cannot be filed; the corpus also holds the same
	// MR image in five transfer syntaxes (one instance: the first encoding
	// is kept) and a doctored copy of a JPEG 2000 file under the original's
	// SOP Instance UID (refused: nothing is overwritten).
	out, _ = stMary.Run("import", "--json", corpusDir) // exits 1 when any file was refused
	if err := json.Unmarshal(out, &impCorpus); err != nil {
		return fmt.Errorf("import --json: %w", err)
	}
	stored, counts := syn.Files, map[string]int{}
	for _, r := range impCorpus.Results {
		counts[r.Outcome]++
		switch {
		case r.Outcome == node.OutcomeStored:
			stored++
		case r.Outcome == node.OutcomeDuplicate:
			fmt.Printf("  duplicate  %s: %s\n", corpusName[r.Path], strings.Join(r.Warnings, "; "))
		case r.Outcome == node.OutcomeConflict, r.Outcome == node.OutcomeRejected && r.Code == "missing-attribute":
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
	out, _ = stMary.Run("studies")
	fmt.Print(indent(out))

	step("St Mary grants the CT to Riverside (72h)")
	var sg consent.SignedGrant
	if err := stMary.JSON(&sg, "grant", "--to", "Riverside", "--study", syn.Study, "--expires", "72h"); err != nil {
		return err
	}
	fmt.Printf("  grant %s, purpose %s, expires %s\n", sg.Grant.ID, sg.Grant.Purpose, sg.Grant.Expires.Format(time.RFC3339))

	step("Riverside receives the signed, encrypted manifest")
	start := time.Now()
	if err := waitShared(riverside, syn.Study, 30*time.Second); err != nil {
		return err
	}
	fmt.Printf("  arrived after %.0f ms\n", time.Since(start).Seconds()*1000)
	out, _ = riverside.Run("shared")
	fmt.Print(indent(out))

	step("Riverside fetches the study (blocks verified by CID, instances by SHA-256)")
	t0 := time.Now()
	if _, err := riverside.RunContext(context.Background(), os.Stderr, "fetch", "--study", syn.Study, "--from", "St Mary"); err != nil {
		return err
	}
	fetchSecs := time.Since(t0).Seconds()
	var ctBytes int64
	origSum := map[string]string{}
	for _, r := range imp.Results {
		if strings.HasPrefix(r.Path, ctDir) {
			ctBytes += r.Size
			sum, err := normalizedSHA256(r.Path)
			if err != nil {
				return err
			}
			origSum[r.SOP] = sum
		}
	}
	d.row("fetch St Mary -> Riverside", syn.Files, ctBytes, fetchSecs)

	step("Riverside exports the study and checks every file against the original")
	exportDir := filepath.Join(d.dir, "riverside-export")
	var exp struct {
		Files []struct {
			Path string `json:"path"`
			SOP  string `json:"sop_instance_uid"`
		} `json:"files"`
		Bytes int64 `json:"bytes"`
	}
	t0 = time.Now()
	if err := riverside.JSON(&exp, "export", "--study", syn.Study, "--out", exportDir); err != nil {
		return err
	}
	d.row("export at Riverside", len(exp.Files), exp.Bytes, time.Since(t0).Seconds())
	if len(exp.Files) != syn.Files {
		return fmt.Errorf("exported %d files, want %d", len(exp.Files), syn.Files)
	}
	for _, f := range exp.Files {
		sum, err := normalizedSHA256(f.Path)
		if err != nil {
			return err
		}
		if want, ok := origSum[f.SOP]; !ok || sum != want {
			return fmt.Errorf("exported %s does not match the original", f.Path)
		}
	}
	fmt.Printf("  %d of %d instances bit-identical to the originals (SHA-256)\n", len(exp.Files), syn.Files)

	step("Northgate, a partner without a grant, tries to fetch the CT")
	_, err = northgate.Run("fetch", "--study", syn.Study, "--from", "St Mary", "--no-progress")
	if err == nil {
		return fmt.Errorf("northgate's fetch succeeded; it must be refused")
	}
	fmt.Printf("  refused: %s\n", firstLine(err.(*facility.ExitError).Stderr))
	var ngStatus node.Status
	if err := getStatus(northgate, &ngStatus); err != nil {
		return err
	}
	var entries []consent.Entry
	if err := stMary.JSON(&entries, "audit"); err != nil {
		return err
	}
	found := false
	for _, e := range entries {
		if e.Action == consent.ActFetchDenied && e.Peer.String() == ngStatus.PeerID && e.Study == syn.Study {
			found = true
			fmt.Printf("  St Mary's audit #%d: %s %s by Northgate, reason %q\n", e.Seq, e.Action, e.Decision, e.Reason)
		}
	}
	if !found {
		return fmt.Errorf("the refusal is not in St Mary's audit log")
	}
	out, err = stMary.Run("audit", "--verify")
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
	return nil
}

func (d *demo) row(name string, n int, bytes int64, secs float64) {
	d.rows = append(d.rows, []string{name, fmt.Sprint(n), fmt.Sprintf("%.1f", float64(bytes)/1e6), fmt.Sprintf("%.2f", secs), fmt.Sprintf("%.1f", float64(bytes)/1e6/secs)})
}

// importOut is `pacsnet import --json`.
type importOut struct {
	Results []struct {
		Path     string   `json:"path"`
		Outcome  string   `json:"outcome"`
		Size     int64    `json:"size"`
		SOP      string   `json:"sop_instance_uid"`
		Code     string   `json:"code"`
		Error    string   `json:"error"`
		Warnings []string `json:"warnings"`
	} `json:"results"`
	Summary map[string]int `json:"summary"`
	Bytes   int64          `json:"bytes"`
	Seconds float64        `json:"seconds"`
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

func getStatus(f *facility.Facility, st *node.Status) error {
	ri, err := node.ReadRunInfo(f.Home)
	if err != nil {
		return err
	}
	st.PeerID = ri.PeerID.String()
	st.Name = ri.Name
	return nil
}

func waitShared(f *facility.Facility, study string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		var ss []node.SharedStudy
		if err := f.JSON(&ss, "shared"); err != nil {
			return err
		}
		for _, s := range ss {
			if s.Study.UID == study && s.State == "available" {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: manifest for the study did not arrive in %s", f.Name, d)
}

// normalizedSHA256 is the SHA-256 of a Part-10 file with its preamble
// zeroed, as the archive stores it.
func normalizedSHA256(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if len(b) >= 132 && string(b[128:132]) == "DICM" {
		clear(b[:128])
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
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
