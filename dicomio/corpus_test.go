package dicomio_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
)

const corpusDir = "../testdata/dicom"

type corpusRow struct {
	file, outcome string
}

func readManifest(t testing.TB) []corpusRow {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "MANIFEST.tsv"))
	if err != nil {
		t.Fatalf("open manifest: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var rows []corpusRow
	col := map[string]int{}
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if len(col) == 0 {
			for i, name := range fields {
				col[name] = i
			}
			if _, ok := col["file"]; !ok {
				t.Fatalf("manifest has no file column")
			}
			if _, ok := col["expected_outcome"]; !ok {
				t.Fatalf("manifest has no expected_outcome column")
			}
			continue
		}
		if len(fields) <= col["expected_outcome"] || fields[col["file"]] == "" {
			continue
		}
		rows = append(rows, corpusRow{file: fields[col["file"]], outcome: fields[col["expected_outcome"]]})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read manifest: %v", err)
	}
	if len(rows) < 30 {
		t.Fatalf("manifest lists only %d files", len(rows))
	}
	return rows
}

// corpusDecision is what this package does with a file where the corpus
// allows more than one outcome, and the kind of rejection it must give
// for every must-reject file.
type corpusDecision struct {
	code    dicomio.ErrorCode // expected rejection; 0 means the file must parse
	msg     string            // substring the error message or a warning must contain
	tag     uint32            // expected Error.Tag when non-zero
	reasons string
	// unstorable: the file parses, but Storable reports a missing
	// required UID (tag): an archive cannot file it under a study.
	unstorable bool
}

var corpusDecisions = map[string]corpusDecision{
	// must-reject-with-clear-error
	"BROKEN_raw-dataset-stray-leading-byte__no_meta.dcm": {code: dicomio.ErrCodeNotDICOM, msg: "not a DICOM file"},
	"BROKEN_truncated-pixeldata__MR_truncated.dcm": {code: dicomio.ErrCodeTruncated, tag: 0x7FE00010,
		msg: "element (7FE0,0010) at offset 1488 declares 8192 bytes but 8130 remain"},
	"BROKEN_truncated-mid-element__rtplan_truncated.dcm": {code: dicomio.ErrCodeTruncated, msg: "declares"},
	"BROKEN_j2k-multiframe-missing-seq-delimiter__emri_small_jpeg_2k_lossless_too_short.dcm": {code: dicomio.ErrCodeTruncated, tag: 0x7FE00010,
		msg: "ends without its delimitation item"},

	// lenient-ok-or-clear-reject: our choices
	"BROKEN_meta-missing-transfer-syntax__meta_missing_tsyntax.dcm": {code: dicomio.ErrCodeMalformed, tag: 0x00020010,
		msg: "file meta lacks Transfer Syntax UID (0002,0010)"},
	"BROKEN_ts-says-explicit-data-is-implicit__SC_rgb_jpeg.dcm": {code: dicomio.ErrCodeMalformed,
		msg: "does not match its transfer syntax 1.2.840.10008.1.2.4.50 (explicit VR little endian): it is encoded as implicit VR little endian"},
	"BROKEN_invalid-IS-number-of-frames__badVR.dcm": {msg: "Number of Frames (0028,0008) is not a valid IS"},
	// The meta without group length is accepted (warning); the dataset is
	// a stub without any of the required UIDs, so it parses but cannot be
	// stored.
	"meta-no-group-length__no_meta_group_length.dcm": {unstorable: true, tag: 0x00080016},

	// Labelled parse-ok, and they parse (their private undefined-length SQ
	// and CP-246 UN sequence walk cleanly), but they have no SOP Class UID
	// in the dataset (priv_SQ no Study/Series UID either): Storable
	// refuses them, which is what the node does on import.
	"private-sq-undef-len_implicit__priv_SQ.dcm":  {unstorable: true, tag: 0x00080016},
	"private-sq-vr-un-undef-len__UN_sequence.dcm": {unstorable: true, tag: 0x00080016},
	// A UID that is a hex digest: accepted with a warning (dcmtk and
	// pydicom accept it too).
	"odd_sequence-implicit-inside-explicit-UN__bad_sequence.dcm":                                     {msg: "SOP Instance UID (0008,0018) is not a valid UID"},
	"us_multiframe-8_jpeg-baseline_bad-charset-term__IM00001.fragmented_no_bot_jpeg_baseline.50.dcm": {msg: "misspelled Specific Character Set"},
}

// parseBoth runs Parse and Read (through a reader that hides its length,
// and through one that does not) and checks they agree.
func parseBoth(t *testing.T, data []byte) (*dicomio.Instance, error) {
	t.Helper()
	before := sha256.Sum256(data)
	inst, err := dicomio.Parse(data, dicomio.Limits{})
	if sha256.Sum256(data) != before {
		t.Fatalf("Parse modified its input")
	}
	for _, r := range []struct {
		name string
		r    io.Reader
	}{
		{"bytes.Reader", bytes.NewReader(data)},
		{"plain reader", io.MultiReader(bytes.NewReader(data))},
	} {
		rinst, rerr := dicomio.Read(r.r, dicomio.Limits{})
		switch {
		case (err == nil) != (rerr == nil):
			t.Fatalf("Read(%s) = %v, Parse = %v", r.name, rerr, err)
		case err != nil:
			if rerr.Error() != err.Error() {
				t.Fatalf("Read(%s) error %q, Parse error %q", r.name, rerr, err)
			}
		default:
			if rinst.Digest != inst.Digest || !bytes.Equal(rinst.Data, inst.Data) || rinst.SOPInstanceUID != inst.SOPInstanceUID {
				t.Fatalf("Read(%s) and Parse disagree", r.name)
			}
		}
	}
	return inst, err
}

func TestCorpus(t *testing.T) {
	rows := readManifest(t)
	seen := map[string]bool{}
	for _, row := range rows {
		seen[row.file] = true
		t.Run(row.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, row.file))
			if err != nil {
				t.Fatal(err)
			}
			dec, hasDec := corpusDecisions[row.file]
			if row.outcome == "must-reject-with-clear-error" && (!hasDec || dec.code == 0) {
				t.Fatalf("no expected rejection kind recorded for a must-reject file")
			}
			inst, err := parseBoth(t, data)
			wantReject := hasDec && dec.code != 0
			switch row.outcome {
			case "parse-ok", "parse-ok-as-raw-dataset":
				if !wantReject {
					if err != nil {
						t.Fatalf("want success, got %v", err)
					}
					checkInstance(t, data, inst, row.outcome == "parse-ok-as-raw-dataset")
				}
			case "must-reject-with-clear-error":
				if err == nil {
					t.Fatalf("want rejection, got success (warnings %q)", inst.Warnings)
				}
			case "lenient-ok-or-clear-reject":
				if err == nil {
					checkInstance(t, data, inst, false)
				}
			default:
				t.Fatalf("unknown expected_outcome %q", row.outcome)
			}
			if wantReject {
				checkRejection(t, err, dec)
				return
			}
			if err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if dec.msg != "" && !containsAny(inst.Warnings, dec.msg) {
				t.Errorf("warnings %q lack %q", inst.Warnings, dec.msg)
			}
			serr := inst.Storable()
			if !dec.unstorable {
				if serr != nil {
					t.Fatalf("Storable: %v", serr)
				}
				return
			}
			var e *dicomio.Error
			if !errors.As(serr, &e) || e.Code != dicomio.ErrCodeMissingAttribute || e.Tag != dec.tag {
				t.Fatalf("Storable = %v, want a missing attribute (%08X)", serr, dec.tag)
			}
		})
	}
	for name := range corpusDecisions {
		if !seen[name] {
			t.Errorf("decision for %s, which the manifest does not list", name)
		}
	}
}

func checkRejection(t *testing.T, err error, dec corpusDecision) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %v, got success", dec.code)
	}
	var e *dicomio.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not *dicomio.Error", err)
	}
	if e.Code != dec.code {
		t.Fatalf("code %v, want %v (%v)", e.Code, dec.code, err)
	}
	if strings.TrimSpace(e.Msg) == "" {
		t.Fatalf("empty message")
	}
	if want := "dicom: " + dec.code.String() + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q does not start with %q", err, want)
	}
	if dec.msg != "" && !strings.Contains(e.Msg, dec.msg) {
		t.Fatalf("message %q lacks %q", e.Msg, dec.msg)
	}
	if dec.tag != 0 && e.Tag != dec.tag {
		t.Fatalf("tag %08X, want %08X (%v)", e.Tag, dec.tag, err)
	}
	if e.Code == dicomio.ErrCodeTruncated && e.Offset < 0 {
		t.Fatalf("truncation without an offset: %v", err)
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// checkInstance checks the normalization contract on a successful parse.
func checkInstance(t *testing.T, input []byte, inst *dicomio.Instance, raw bool) {
	t.Helper()
	if inst.Storable() == nil && (inst.SOPInstanceUID == "" || inst.SOPClassUID == "" || inst.StudyInstanceUID == "" || inst.SeriesInstanceUID == "") {
		t.Fatalf("empty required UID in a storable instance: %+v", inst)
	}
	if inst.Digest != sha256.Sum256(inst.Data) {
		t.Fatalf("Digest is not sha256(Data)")
	}
	if inst.Raw != raw {
		t.Fatalf("Raw = %v, want %v", inst.Raw, raw)
	}
	if !bytes.Equal(inst.Data[:128], make([]byte, 128)) || string(inst.Data[128:132]) != "DICM" {
		t.Fatalf("Data does not start with a zero preamble and DICM")
	}
	if raw {
		if !bytes.HasSuffix(inst.Data, input) {
			t.Fatalf("raw Data does not end with the input")
		}
		again, err := dicomio.Parse(inst.Data, dicomio.Limits{})
		if err != nil {
			t.Fatalf("normalized raw dataset does not re-parse: %v", err)
		}
		if again.Raw || again.TransferSyntaxUID != inst.TransferSyntaxUID || again.SOPInstanceUID != inst.SOPInstanceUID ||
			again.Digest != inst.Digest {
			t.Fatalf("re-parse of normalized raw dataset differs: %+v", again)
		}
		return
	}
	if len(inst.Data) != len(input) || !bytes.Equal(inst.Data[128:], input[128:]) {
		t.Fatalf("Data is not the input with its preamble zeroed")
	}
	if &inst.Data[0] == &input[0] {
		t.Fatalf("Parse returned the caller's slice")
	}
}
