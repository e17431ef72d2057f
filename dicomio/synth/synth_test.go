package synth_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

func validUID(u string) bool {
	if len(u) == 0 || len(u) > 64 || !strings.HasPrefix(u, "2.25.") {
		return false
	}
	for _, comp := range strings.Split(u, ".") {
		if comp == "" || (len(comp) > 1 && comp[0] == '0') || strings.Trim(comp, "0123456789") != "" {
			return false
		}
	}
	return true
}

// TestCTValidates checks every file with our own validator: it must be
// accepted without warnings and normalize to itself.
func TestCTValidates(t *testing.T) {
	opts := synth.CTOptions{Slices: 24, Rows: 128, Cols: 96, Seed: 7}
	study, files, err := synth.CT(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != opts.Slices || !validUID(study) {
		t.Fatalf("%d files, study UID %q", len(files), study)
	}
	sops := map[string]bool{}
	var seriesUID string
	for i, f := range files {
		if want := fmt.Sprintf("CT%06d.dcm", i+1); f.Name != want {
			t.Fatalf("file %d named %q, want %q", i, f.Name, want)
		}
		inst, err := dicomio.Parse(f.Data, dicomio.Limits{})
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if len(inst.Warnings) > 0 {
			t.Errorf("%s: warnings %q", f.Name, inst.Warnings)
		}
		if !bytes.Equal(inst.Data, f.Data) {
			t.Fatalf("%s does not normalize to itself", f.Name)
		}
		if inst.Raw || inst.TransferSyntaxUID != dicomio.ExplicitVRLittleEndian || inst.SOPClassUID != "1.2.840.10008.5.1.4.1.1.2" {
			t.Fatalf("%s: %+v", f.Name, inst)
		}
		if inst.StudyInstanceUID != study || !validUID(inst.SeriesInstanceUID) || !validUID(inst.SOPInstanceUID) {
			t.Fatalf("%s: UIDs %q %q %q", f.Name, inst.StudyInstanceUID, inst.SeriesInstanceUID, inst.SOPInstanceUID)
		}
		if seriesUID == "" {
			seriesUID = inst.SeriesInstanceUID
		}
		if inst.SeriesInstanceUID != seriesUID || inst.SeriesInstanceUID == study {
			t.Fatalf("%s: series UID %q", f.Name, inst.SeriesInstanceUID)
		}
		if sops[inst.SOPInstanceUID] || inst.SOPInstanceUID == study || inst.SOPInstanceUID == seriesUID {
			t.Fatalf("%s: SOP Instance UID not unique", f.Name)
		}
		sops[inst.SOPInstanceUID] = true
		if inst.InstanceNumber != i+1 || inst.SeriesNumber != 1 || inst.Modality != "CT" ||
			inst.PatientName != "SYNTHETIC^CT" || !strings.HasPrefix(inst.PatientID, "SYN-") ||
			len(inst.StudyDate) != 8 || len(inst.StudyTime) != 6 {
			t.Fatalf("%s: attributes %+v", f.Name, inst)
		}
	}
}

func find(t *testing.T, ds dicom.Dataset, tg tag.Tag) []string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		t.Fatalf("no %v: %v", tg, err)
	}
	switch v := e.Value.GetValue().(type) {
	case []string:
		return v
	case []int:
		out := make([]string, len(v))
		for i, n := range v {
			out[i] = strconv.Itoa(n)
		}
		return out
	}
	t.Fatalf("%v has value type %T", tg, e.Value.GetValue())
	return nil
}

// TestCTGeometry reads the files back with another reader
// (suyashkumar/dicom) and checks the series geometry.
func TestCTGeometry(t *testing.T) {
	_, files, err := synth.CT(synth.CTOptions{Slices: 6, Rows: 64, Cols: 80, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var frameOfRef string
	for i, f := range files {
		ds, err := dicom.Parse(bytes.NewReader(f.Data), int64(len(f.Data)), nil, dicom.SkipPixelData())
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		want := map[tag.Tag]string{
			tag.ImageOrientationPatient:   `1\0\0\0\1\0`,
			tag.Rows:                      "64",
			tag.Columns:                   "80",
			tag.BitsAllocated:             "16",
			tag.BitsStored:                "12",
			tag.HighBit:                   "11",
			tag.PixelRepresentation:       "0",
			tag.SamplesPerPixel:           "1",
			tag.PhotometricInterpretation: "MONOCHROME2",
			tag.RescaleIntercept:          "-1024",
			tag.RescaleSlope:              "1",
			tag.WindowCenter:              "40",
			tag.WindowWidth:               "400",
			tag.SliceThickness:            "1.25",
			tag.Modality:                  "CT",
			tag.Manufacturer:              "pacsnet synth",
			tag.InstanceNumber:            strconv.Itoa(i + 1),
		}
		for tg, v := range want {
			if got := strings.Join(find(t, ds, tg), `\`); got != v {
				t.Errorf("%s: %s = %q, want %q", f.Name, tag.DebugString(tg), got, v)
			}
		}
		pos := find(t, ds, tag.ImagePositionPatient)
		if len(pos) != 3 {
			t.Fatalf("%s: ImagePositionPatient %q", f.Name, pos)
		}
		z, err := strconv.ParseFloat(pos[2], 64)
		if err != nil || z != -1.25*float64(i) {
			t.Errorf("%s: z = %q, want %v", f.Name, pos[2], -1.25*float64(i))
		}
		if loc := find(t, ds, tag.SliceLocation); len(loc) != 1 || loc[0] != pos[2] {
			t.Errorf("%s: SliceLocation %q, z %q", f.Name, loc, pos[2])
		}
		ps := find(t, ds, tag.PixelSpacing)
		sp, err := strconv.ParseFloat(ps[0], 64)
		if err != nil || len(ps) != 2 || ps[0] != ps[1] || sp <= 0 || len(ps[0]) > 16 {
			t.Errorf("%s: PixelSpacing %q", f.Name, ps)
		}
		// The first pixel's x, y centre the field of view.
		x, _ := strconv.ParseFloat(pos[0], 64)
		if d := x + sp*79/2; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: x0 %v not centred (spacing %v)", f.Name, x, sp)
		}
		for _, p := range pos {
			if len(p) > 16 {
				t.Errorf("%s: DS %q longer than 16", f.Name, p)
			}
		}
		fr := find(t, ds, tag.FrameOfReferenceUID)[0]
		if !validUID(fr) || (frameOfRef != "" && fr != frameOfRef) {
			t.Errorf("%s: Frame of Reference UID %q", f.Name, fr)
		}
		frameOfRef = fr
	}
}

func pixels(t *testing.T, f synth.File, rows, cols int) []uint16 {
	t.Helper()
	raw := f.Data[len(f.Data)-2*rows*cols:]
	out := make([]uint16, rows*cols)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	return out
}

func TestCTPixels(t *testing.T) {
	const rows, cols = 128, 128
	_, files, err := synth.CT(synth.CTOptions{Slices: 10, Rows: rows, Cols: cols, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	var prev []uint16
	for _, f := range files {
		px := pixels(t, f, rows, cols)
		lo, hi := px[0], px[0]
		for _, v := range px {
			lo, hi = min(lo, v), max(hi, v)
		}
		if hi > 4095 {
			t.Fatalf("%s: value %d exceeds 12 bits", f.Name, hi)
		}
		// Air in the corner, soft tissue between the lungs, bone somewhere.
		corner := int(px[0]) - 1024
		centre := int(px[rows/2*cols+cols/2]) - 1024
		if corner > -950 || centre < -50 || centre > 150 || int(hi)-1024 < 500 {
			t.Errorf("%s: corner %d HU, centre %d HU, max %d HU", f.Name, corner, centre, int(hi)-1024)
		}
		if prev != nil {
			same := true
			for i := range px {
				if px[i] != prev[i] {
					same = false
					break
				}
			}
			if same {
				t.Errorf("%s: same pixels as the previous slice", f.Name)
			}
		}
		prev = px
	}
}

func TestCTDeterministic(t *testing.T) {
	opts := synth.CTOptions{Slices: 3, Rows: 32, Cols: 32, Seed: 42}
	s1, a, err := synth.CT(opts)
	if err != nil {
		t.Fatal(err)
	}
	s2, b, err := synth.CT(opts)
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 {
		t.Fatal("study UID differs for the same seed")
	}
	for i := range a {
		if !bytes.Equal(a[i].Data, b[i].Data) {
			t.Fatalf("slice %d differs for the same seed", i)
		}
	}
	opts.Seed = 43
	s3, c, err := synth.CT(opts)
	if err != nil {
		t.Fatal(err)
	}
	if s3 == s1 || bytes.Equal(c[0].Data, a[0].Data) {
		t.Fatal("another seed gives the same study")
	}
	opts.PatientName, opts.PatientID = "Doe^Jane", "MRN-1"
	_, d, err := synth.CT(opts)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := dicomio.Parse(d[0].Data, dicomio.Limits{})
	if err != nil || inst.PatientName != "Doe^Jane" || inst.PatientID != "MRN-1" {
		t.Fatalf("patient options not applied: %v %+v", err, inst)
	}
}

func TestCTOptionsInvalid(t *testing.T) {
	for _, o := range []synth.CTOptions{
		{Slices: -1}, {Rows: -5}, {Cols: 5000}, {Slices: 1_000_000},
		{PatientName: strings.Repeat("x", 65)}, {PatientID: `A\B`},
	} {
		if _, _, err := synth.CT(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestCTDefaults generates the default study: 200 slices of 512x512.
func TestCTDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 100 MiB")
	}
	start := time.Now()
	study, files, err := synth.CT(synth.CTOptions{Seed: 1})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 200 || len(files[0].Data) < 512*512*2 {
		t.Fatalf("%d files of %d bytes", len(files), len(files[0].Data))
	}
	limit := 5 * time.Second
	if raceEnabled {
		limit = 60 * time.Second
	}
	if elapsed > limit {
		t.Fatalf("generation took %v (limit %v)", elapsed, limit)
	}
	inst, err := dicomio.Parse(files[199].Data, dicomio.Limits{})
	if err != nil || inst.StudyInstanceUID != study || inst.InstanceNumber != 200 {
		t.Fatalf("last slice: %v", err)
	}
	t.Logf("200 slices of 512x512 (%d MiB) in %v", 200*len(files[0].Data)>>20, elapsed)
}

func TestWriteCT(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "study")
	opts := synth.CTOptions{Slices: 5, Rows: 64, Cols: 64, Seed: 5}
	study, paths, err := synth.WriteCT(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	study2, files, err := synth.CT(opts)
	if err != nil || study2 != study || len(paths) != len(files) {
		t.Fatalf("WriteCT and CT disagree: %v", err)
	}
	for i, p := range paths {
		if filepath.Dir(p) != dir || filepath.Base(p) != files[i].Name {
			t.Fatalf("path %q", p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v", p, fi.Mode())
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, files[i].Data) {
			t.Fatalf("%s: content differs: %v", p, err)
		}
	}
	// A file where the directory should be.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := synth.WriteCT(filepath.Join(blocker, "sub"), opts); err == nil {
		t.Fatal("WriteCT into a path under a file succeeded")
	}
}

// TestDcmdump runs DCMTK's dcmdump on a generated file when it is
// installed. CI installs dcmtk and sets CI: there a missing dcmdump fails.
func TestDcmdump(t *testing.T) {
	bin, err := exec.LookPath("dcmdump")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but dcmdump is not on PATH: %v", err)
		}
		t.Skip("dcmdump not on PATH")
	}
	_, paths, err := synth.WriteCT(t.TempDir(), synth.CTOptions{Slices: 1, Rows: 64, Cols: 64, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-E", paths[0]).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, out)
	}
	for _, want := range []string{"CTImageStorage", "LittleEndianExplicit", "MONOCHROME2", "(7fe0,0010) OW"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dcmdump output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "W: ") || strings.Contains(string(out), "E: ") {
		t.Errorf("dcmdump reports problems:\n%s", out)
	}
}

// TestDciodvfy checks a generated file against the CT Image IOD with
// dicom3tools when it is installed (CI does not promise it).
func TestDciodvfy(t *testing.T) {
	bin, err := exec.LookPath("dciodvfy")
	if err != nil {
		t.Skip("dciodvfy not on PATH")
	}
	_, paths, err := synth.WriteCT(t.TempDir(), synth.CTOptions{Slices: 2, Rows: 64, Cols: 64, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(bin, paths[1]).CombinedOutput()
	if !strings.Contains(string(out), "CTImage") || strings.Contains(string(out), "Error") || strings.Contains(string(out), "Warning") {
		t.Fatalf("dciodvfy:\n%s", out)
	}
}
