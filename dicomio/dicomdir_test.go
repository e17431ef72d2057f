package dicomio

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func dirEntries() []DirEntry {
	mk := func(pat, study, series string, n int) DirEntry {
		return DirEntry{FileID: []string{"DICOM", "S" + series, "I" + string(rune('0'+n))}, PatientID: pat, PatientName: "Müller^" + pat,
			StudyUID: "1.2." + study, StudyDate: "20260101", SeriesUID: "1.2." + study + "." + series, Modality: "CT", SeriesNumber: 1,
			SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.2." + study + "." + series + "." + string(rune('0'+n)),
			TransferSyntaxUID: ExplicitVRLittleEndian, InstanceNumber: n}
	}
	return []DirEntry{mk("P1", "1", "1", 1), mk("P1", "1", "1", 2), mk("P1", "1", "2", 1), mk("P1", "2", "1", 1), mk("P2", "3", "1", 1)}
}

// The records' offsets link the hierarchy: each next points at a sibling
// record of the same type, each lower at a record of the level below,
// and the root offsets at the first and last PATIENT.
func TestDICOMDIROffsets(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteDICOMDIR(&buf, "TEST", "2.25.1", dirEntries()); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	seq := bytes.Index(b, []byte{0x04, 0x00, 0x20, 0x12, 'S', 'Q'})
	if seq < 0 {
		t.Fatal("no directory record sequence")
	}
	ul := func(at int) int { return int(binary.LittleEndian.Uint32(b[at:])) }
	first, last := ul(seq-12-10-12+8), ul(seq-12-10+8)
	types := map[int]string{}
	type rec struct{ next, lower int }
	recs := map[int]rec{}
	for pos := seq + 12; pos < len(b); {
		n := ul(pos + 4)
		item := b[pos+8 : pos+8+n]
		typ := strings.TrimSpace(string(item[34+8 : 34+8+int(binary.LittleEndian.Uint16(item[34+6:]))]))
		types[pos] = typ
		recs[pos] = rec{next: ul(pos + 8 + 8), lower: ul(pos + 8 + 12 + 10 + 8)}
		pos += 8 + n
	}
	if len(types) != 2+3+4+5 {
		t.Fatalf("%d records", len(types))
	}
	if types[first] != "PATIENT" || types[last] != "PATIENT" || first == last {
		t.Errorf("root offsets %d %d: %s %s", first, last, types[first], types[last])
	}
	below := map[string]string{"PATIENT": "STUDY", "STUDY": "SERIES", "SERIES": "IMAGE"}
	for at, r := range recs {
		if r.next != 0 && types[r.next] != types[at] {
			t.Errorf("%s at %d: next %d is %q", types[at], at, r.next, types[r.next])
		}
		if want := below[types[at]]; want != "" && types[r.lower] != want || want == "" && r.lower != 0 {
			t.Errorf("%s at %d: lower %d is %q", types[at], at, r.lower, types[r.lower])
		}
	}
	if _, err := exec.LookPath("dcmdump"); err == nil {
		p := filepath.Join(t.TempDir(), "DICOMDIR")
		os.WriteFile(p, b, 0o644)
		out, err := exec.Command("dcmdump", "-dc", p).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("W: ")) || bytes.Contains(out, []byte("E: ")) || !bytes.Contains(out, []byte("Müller")) {
			t.Errorf("dcmdump: %v\n%s", err, out)
		}
	}
}

func TestDICOMDIRFileIDs(t *testing.T) {
	for _, id := range [][]string{nil, {"dicom"}, {"TOOLONGNAME"}, {""}, {"A/B"}, {"1", "2", "3", "4", "5", "6", "7", "8", "9"}} {
		e := dirEntries()[:1]
		e[0].FileID = id
		if err := WriteDICOMDIR(&bytes.Buffer{}, "X", "2.25.1", e); err == nil {
			t.Errorf("file ID %q accepted", id)
		}
	}
}
