package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

const corpus = "../testdata/dicom"

func corpusFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpus, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// normalized is what the archive must keep of data: dicomio's normalized
// Part-10 bytes.
func normalized(t *testing.T, data []byte) []byte {
	t.Helper()
	in, err := dicomio.Parse(data, dicomio.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return in.Data
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// requireInstance checks that n serves exactly want for (study, sop).
func requireInstance(t *testing.T, n *tnode, study, sop string, want []byte) {
	t.Helper()
	got, rec, err := n.InstanceData(study, sop)
	if err != nil {
		t.Fatalf("%s: InstanceData %s: %v", n.name, sop, err)
	}
	if sha(got) != sha(want) || !bytes.Equal(got, want) {
		t.Fatalf("%s: InstanceData %s: %d bytes, sha256 %s; want %d bytes, sha256 %s", n.name, sop, len(got), sha(got), len(want), sha(want))
	}
	if rec.Digest != sha(want) || rec.Size != int64(len(want)) {
		t.Errorf("%s: instance record %s: digest %s size %d, want %s %d", n.name, sop, rec.Digest, rec.Size, sha(want), len(want))
	}
}

func TestImportOutcomes(t *testing.T) {
	n := newNode(t, "Alpha")
	ctx := context.Background()
	mrExplicit := corpusFile(t, "mr_explicit-le__MR_small.dcm")
	mrImplicit := corpusFile(t, "mr_implicit-le__MR_small_implicit.dcm")
	mrNorm := normalized(t, mrExplicit)
	if bytes.Equal(mrNorm, mrExplicit) {
		t.Fatal("test needs a file whose normalization changes bytes (non-zero preamble)")
	}
	study, files := ctStudy(t, 7, 3, "")
	ct := files[0].Data
	ctSOP := n.Import(ctx, ct)

	// conflict: same SOP Instance UID and transfer syntax, other bytes
	// (one pixel changed).
	tampered := slices.Clone(ct)
	tampered[len(tampered)-100] ^= 0xff

	type want struct {
		outcome string
		code    string
		warning string
		error   string // the start of the error message
	}
	steps := []struct {
		name string
		data []byte
		want want
	}{
		{"stored", mrExplicit, want{outcome: OutcomeStored}},
		{"duplicate same bytes", mrExplicit, want{outcome: OutcomeDuplicate}},
		{"duplicate normalized bytes", mrNorm, want{outcome: OutcomeDuplicate}},
		{"duplicate in another transfer syntax", mrImplicit, want{outcome: OutcomeDuplicate, warning: "transfer syntax 1.2.840.10008.1.2.1"}},
		{"conflict", tampered, want{outcome: OutcomeConflict}},
		{"rejected truncated", corpusFile(t, "BROKEN_truncated-pixeldata__MR_truncated.dcm"), want{outcome: OutcomeRejected, code: "truncated"}},
		{"rejected missing attribute", corpusFile(t, "private-sq-undef-len_implicit__priv_SQ.dcm"), want{outcome: OutcomeRejected, code: "missing-attribute"}},
		{"rejected garbage", []byte("this is not DICOM at all, just text"), want{outcome: OutcomeRejected, code: "not-dicom", error: "not a DICOM file: "}},
		{"rejected empty", nil, want{outcome: OutcomeRejected, code: "truncated"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := n.Import(ctx, s.data)
			if r.Outcome != s.want.outcome {
				t.Fatalf("outcome %q (%+v), want %q", r.Outcome, r, s.want.outcome)
			}
			if r.Code != s.want.code {
				t.Errorf("code %q, want %q", r.Code, s.want.code)
			}
			if s.want.outcome == OutcomeRejected && r.Error == "" {
				t.Error("rejection without an error message")
			}
			if s.want.error != "" && !strings.HasPrefix(r.Error, s.want.error) {
				t.Errorf("error %q, want it to start %q", r.Error, s.want.error)
			}
			if s.want.outcome == OutcomeConflict && !strings.Contains(r.Error, "conflict") {
				t.Errorf("conflict error %q", r.Error)
			}
			hasWarning := slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, s.want.warning) })
			if s.want.warning != "" && !hasWarning {
				t.Errorf("warnings %q, want one containing %q", r.Warnings, s.want.warning)
			}
			if s.want.warning == "" && len(r.Warnings) > 0 && s.want.outcome != OutcomeRejected {
				t.Errorf("unexpected warnings %q", r.Warnings)
			}
			if s.want.outcome != OutcomeRejected && (r.SOPInstanceUID == "" || r.Study == "" || len(r.Digest) != 64) {
				t.Errorf("result lacks UIDs or digest: %+v", r)
			}
			// Nothing stored is harmed, whatever came in.
			requireInstance(t, n, "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457", "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457", mrNorm)
			requireInstance(t, n, study, ctSOP.SOPInstanceUID, normalized(t, ct))
		})
	}

	t.Run("digest is of the normalized bytes", func(t *testing.T) {
		r := n.Import(ctx, mrExplicit)
		if r.Digest != sha(mrNorm) || r.Size != int64(len(mrNorm)) {
			t.Errorf("result digest %s size %d, want %s %d", r.Digest, r.Size, sha(mrNorm), len(mrNorm))
		}
		got, _, err := n.InstanceData(r.Study, r.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:128], make([]byte, 128)) || string(got[128:132]) != "DICM" {
			t.Error("stored instance does not start with a zero preamble and DICM")
		}
		if !bytes.Equal(got[128:], mrExplicit[128:]) {
			t.Error("stored instance differs from the input beyond the preamble")
		}
	})

	t.Run("index", func(t *testing.T) {
		studies, err := n.Studies()
		if err != nil {
			t.Fatal(err)
		}
		if len(studies) != 2 {
			t.Fatalf("%d studies, want 2: %+v", len(studies), studies)
		}
		for _, s := range studies {
			if s.Instances != 1 || s.Origin != "" {
				t.Errorf("study %s: %d instances, origin %q; want 1 instance imported here", s.UID, s.Instances, s.Origin)
			}
		}
		insts, err := n.Instances(study)
		if err != nil || len(insts) != 1 || insts[0].SOPInstanceUID != ctSOP.SOPInstanceUID || insts[0].TransferSyntaxUID != "1.2.840.10008.1.2.1" {
			t.Errorf("instances of the CT study: %+v, %v", insts, err)
		}
		if _, err := n.Instances("1.2.3.4.5.404"); err == nil {
			t.Error("Instances of an unknown study succeeded")
		}
		if _, _, err := n.InstanceData(study, "1.2.3.404"); err == nil {
			t.Error("InstanceData of an unknown instance succeeded")
		}
	})
}

// A different instance whose SOP Instance UID is already stored in
// another study must not be stored (it would make the UID ambiguous).
func TestImportConflictAcrossStudies(t *testing.T) {
	n := newNode(t, "Alpha")
	ctx := context.Background()
	// The big-endian MR has the same UIDs as the little-endian one; the
	// same bytes under another Study Instance UID are simulated by
	// importing the explicit-LE file, then a copy whose Study Instance UID
	// value was changed in place (same length).
	mr := corpusFile(t, "mr_explicit-le__MR_small.dcm")
	if r := n.Import(ctx, mr); r.Outcome != OutcomeStored {
		t.Fatal(r)
	}
	oldStudy := []byte("1.3.6.1.4.1.5962.1.2.4.20040826185059.5457")
	i := bytes.Index(mr, oldStudy)
	if i < 0 {
		t.Fatal("study UID not found in the file")
	}
	other := slices.Clone(mr)
	copy(other[i:], "1.3.6.1.4.1.5962.1.2.4.20040826185059.5458")
	r := n.Import(ctx, other)
	if r.Outcome != OutcomeConflict || !strings.Contains(r.Error, "another study") {
		t.Fatalf("same SOP UID in another study: %+v", r)
	}
	if _, err := n.Instances("1.3.6.1.4.1.5962.1.2.4.20040826185059.5458"); err == nil {
		t.Error("the conflicting study was indexed")
	}
	requireInstance(t, n, string(oldStudy), "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457", normalized(t, mr))
}

// The archive must hold instances only as age ciphertext: neither the
// patient's name nor the pixel data may be found in any Badger block
// (Badger's own AES encryption is below the API, so this checks ours).
// The study index (study/…) keeps the patient's name by design
// (docs/architecture.md: "study record: index attributes"); nothing else
// may.
func TestArchiveHoldsNoPlaintext(t *testing.T) {
	n := newNode(t, "Alpha")
	const patient = "QUUXLEY^ZEBEDIAH^PLAINTEXTCANARY"
	study, files := ctStudy(t, 11, 4, patient)
	importFiles(t, n, files)

	// A run of pixel bytes from the middle of every slice's Pixel Data
	// (the last element: 64x64x2 bytes); the phantom's noise makes them
	// distinctive.
	var runs [][]byte
	for _, f := range files {
		d := f.Data
		run := d[len(d)-4096 : len(d)-4096+48]
		if bytes.Count(run, run[:2]) == len(run)/2 {
			t.Fatal("pixel run is uniform; pick another")
		}
		runs = append(runs, run)
	}
	var blocks, values int
	scanArchive(t, n, func(k, v []byte) {
		values++
		if bytes.HasPrefix(k, []byte(pfxBlock)) {
			blocks++
		}
		for i, run := range runs {
			if bytes.Contains(v, run) || bytes.Contains(k, run) {
				t.Errorf("pixel data of slice %d in plaintext under %s", i, printableKey(k))
			}
		}
		if bytes.Contains(v, []byte(patient)) && !bytes.HasPrefix(k, []byte(pfxStudy)) {
			t.Errorf("patient name in plaintext under %s", printableKey(k))
		}
		if bytes.Contains(k, []byte("QUUXLEY")) {
			t.Errorf("patient name in key %s", printableKey(k))
		}
		if bytes.Contains(v, []byte("AGE-SECRET-KEY")) || bytes.Contains(v, []byte("PACSNET-STUDY-KEY")) {
			t.Errorf("an unwrapped secret key under %s", printableKey(k))
		}
	})
	if blocks < len(files) || values < 10 {
		t.Fatalf("scan saw %d values, %d blocks: the scan is not looking at the archive", values, blocks)
	}
	// The scan can find what it looks for: the decrypted instance holds
	// both.
	got, _, err := n.InstanceData(study, n.mustSOPs(t, study)[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte(patient)) || !slices.ContainsFunc(runs, func(r []byte) bool { return bytes.Contains(got, r) }) {
		t.Fatal("decrypted instance lacks the name or pixel run the scan looks for")
	}
}

func (tn *tnode) mustSOPs(t *testing.T, study string) []string {
	t.Helper()
	insts, err := tn.Instances(study)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range insts {
		out = append(out, in.SOPInstanceUID)
	}
	return out
}

// An instance larger than archive.max_instance_size is refused by Import
// (not only by the HTTP body limit).
func TestImportTooLarge(t *testing.T) {
	n := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.Archive.MaxInstanceSize = 4096 }})
	_, files := ctStudy(t, 3, 1, "")
	r := n.Import(context.Background(), files[0].Data)
	if r.Outcome != OutcomeRejected || r.Code != "too-large" {
		t.Errorf("import of %d bytes with a 4096-byte limit: %+v", len(files[0].Data), r)
	}
	if s, _ := n.Studies(); len(s) != 0 {
		t.Errorf("studies after a rejected import: %+v", s)
	}
}

// Concurrent imports: of the same instance, exactly one is stored and no
// ciphertext of the others is left behind; of different instances of one
// new study, every one is counted.
func TestConcurrentImports(t *testing.T) {
	n := newNode(t, "Alpha")
	study, files := ctStudy(t, 5, 8, "")
	ctx := context.Background()

	results := make(chan ImportResult, 8)
	for range 8 {
		go func() { results <- n.Import(ctx, files[0].Data) }()
	}
	outcomes := map[string]int{}
	for range 8 {
		r := <-results
		outcomes[r.Outcome]++
	}
	if outcomes[OutcomeStored] != 1 || outcomes[OutcomeDuplicate] != 7 {
		t.Errorf("8 concurrent imports of one instance: %v, want 1 stored and 7 duplicates", outcomes)
	}

	for _, f := range files[1:] {
		go func() { results <- n.Import(ctx, f.Data) }()
	}
	for range files[1:] {
		if r := <-results; r.Outcome != OutcomeStored {
			t.Errorf("concurrent import: %+v", r)
		}
	}
	studies, err := n.Studies()
	if err != nil || len(studies) != 1 || studies[0].Instances != len(files) {
		t.Fatalf("studies: %+v, %v; want one with %d instances", studies, err, len(files))
	}
	var size int64
	for _, f := range files {
		size += int64(len(f.Data))
	}
	if studies[0].Bytes != size {
		t.Errorf("study bytes %d, want %d", studies[0].Bytes, size)
	}
	for _, f := range files {
		in, err := dicomio.Parse(f.Data, dicomio.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		requireInstance(t, n, study, in.SOPInstanceUID, in.Data)
	}
	// Every stored block belongs to an indexed instance.
	indexed := map[string]bool{}
	insts, _ := n.Instances(study)
	for _, in := range insts {
		for _, b := range in.Blocks {
			indexed[b.CID] = true
		}
	}
	var orphans int
	scanArchive(t, n, func(k, _ []byte) {
		if bytes.HasPrefix(k, []byte(pfxBlock)) && !indexed[strings.TrimPrefix(printableKey(k), pfxBlock)] {
			orphans++
		}
	})
	if orphans > 0 {
		t.Errorf("%d stored blocks belong to no instance (ciphertext of losing concurrent duplicates kept)", orphans)
	}
}

// A burst of concurrent imports into one study (a PACS pushing a series
// over many associations, or a parallel uploader) must store every
// instance: each import updates the same study record, and a Badger
// transaction conflict is a reason to retry, not a failure reported to
// the sender (OutcomeFailed, HTTP 500).
func TestManyConcurrentImportsOfOneStudy(t *testing.T) {
	n := newNode(t, "Alpha")
	_, files := ctStudy(t, 6, 128, "")
	results := make(chan ImportResult, len(files))
	for _, f := range files {
		go func() { results <- n.Import(context.Background(), f.Data) }()
	}
	failed := map[string]int{}
	for range files {
		if r := <-results; r.Outcome != OutcomeStored {
			failed[r.Outcome+": "+r.Error]++
		}
	}
	if len(failed) > 0 {
		t.Errorf("of %d concurrent imports into one study, some were not stored: %v", len(files), failed)
	}
	if s, err := n.Studies(); err != nil || len(s) != 1 || s[0].Instances != len(files)-sumCounts(failed) {
		t.Errorf("study counts %+v (err %v) do not match the stored instances", s, err)
	}
}

func sumCounts(m map[string]int) int {
	var s int
	for _, v := range m {
		s += v
	}
	return s
}

// blobAllocated is the disk space n's blob log takes (allocated blocks,
// so that ranges punched out do not count).
func blobAllocated(t *testing.T, n *tnode) int64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(n.home, archiveDir, "blobs", "*.blob"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range segs {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		total += st.Blocks * 512
	}
	return total
}

// An instance rejected at its last bytes (truncated), and the losers of
// concurrent imports of one instance, leave no ciphertext in the blob
// log: what they staged is punched out, so a sender cannot fill the disk
// with data that is never stored.
func TestRejectedInstanceLeavesNoCiphertext(t *testing.T) {
	n := newNode(t, "Alpha")
	if !store.PunchSupported(n.home) {
		t.Skip("this file system cannot punch holes")
	}
	_, files := ctStudyOf(t, synth.CTOptions{Slices: 2, Seed: 7, Rows: 512, Cols: 512})
	ctx := context.Background()
	if r := n.Import(ctx, files[0].Data); r.Outcome != OutcomeStored {
		t.Fatalf("import: %+v", r)
	}
	base := blobAllocated(t, n)

	data := files[1].Data
	if r := n.Import(ctx, data[:len(data)-1000]); r.Outcome != OutcomeRejected {
		t.Fatalf("truncated import: %+v", r)
	}
	if grew := blobAllocated(t, n) - base; grew > 16<<10 {
		t.Errorf("a rejected %d-byte instance left %d bytes in the blob log", len(data), grew)
	}

	results := make(chan ImportResult, 8)
	for range 8 {
		go func() { results <- n.Import(ctx, data) }()
	}
	stored := 0
	for range 8 {
		if r := <-results; r.Outcome == OutcomeStored {
			stored++
		}
	}
	if stored != 1 {
		t.Fatalf("%d of 8 concurrent imports stored", stored)
	}
	// The losers' pieces lay between the winner's: the file system's
	// blocks they share with it (4 KiB at each edge) stay.
	if grew := blobAllocated(t, n) - base; grew > int64(len(data))*3/2 {
		t.Errorf("8 concurrent imports of one %d-byte instance left %d bytes in the blob log", len(data), grew)
	}
}
