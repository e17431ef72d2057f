package dicomio_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
)

// TestRawRoundTrip takes the dataset out of the same MR image in its
// three encodings and checks that each is detected, wrapped in a meta
// group, and that the result re-parses to the same instance.
func TestRawRoundTrip(t *testing.T) {
	cases := []struct {
		file, ts string
	}{
		{"mr_explicit-le__MR_small.dcm", dicomio.ExplicitVRLittleEndian},
		{"mr_implicit-le__MR_small_implicit.dcm", dicomio.ImplicitVRLittleEndian},
		{"mr_explicit-be__MR_small_bigendian.dcm", dicomio.ExplicitVRBigEndian},
		{"rtstruct_raw-dataset_implicit_undef-len-sq__rtstruct.dcm", dicomio.ImplicitVRLittleEndian},
		{"rtplan_raw-dataset_no-meta_explicit-le__ExplVR_LitEndNoMeta.dcm", dicomio.ExplicitVRLittleEndian},
		{"rtplan_raw-dataset_no-meta_explicit-be__ExplVR_BigEndNoMeta.dcm", dicomio.ExplicitVRBigEndian},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			var dataset []byte
			var want *dicomio.Instance
			if strings.HasPrefix(c.file, "mr_") {
				full := readCorpus(t, c.file)
				var err error
				if want, err = dicomio.Parse(full, dicomio.Limits{}); err != nil {
					t.Fatal(err)
				}
				dataset = datasetOf(t, c.file)
			} else {
				dataset = readCorpus(t, c.file)
			}
			inst, err := dicomio.Parse(dataset, dicomio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !inst.Raw || inst.TransferSyntaxUID != c.ts {
				t.Fatalf("Raw %v, transfer syntax %s; want raw %s", inst.Raw, inst.TransferSyntaxUID, c.ts)
			}
			if want != nil && (inst.SOPInstanceUID != want.SOPInstanceUID || inst.PatientName != want.PatientName ||
				inst.StudyDate != want.StudyDate || inst.Modality != want.Modality || inst.SeriesNumber != want.SeriesNumber) {
				t.Fatalf("raw parse differs from Part-10 parse:\n%+v\n%+v", inst, want)
			}
			if !bytes.HasSuffix(inst.Data, dataset) {
				t.Fatalf("dataset was not kept byte for byte")
			}
			meta := inst.Data[132 : len(inst.Data)-len(dataset)]
			for _, want := range []string{dicomio.ImplementationClassUID, "PACSNET_1", c.ts, inst.SOPClassUID, inst.SOPInstanceUID} {
				if !bytes.Contains(meta, []byte(want)) {
					t.Errorf("meta group lacks %q", want)
				}
			}
			again, err := dicomio.Parse(inst.Data, dicomio.Limits{})
			if err != nil {
				t.Fatalf("re-parse: %v", err)
			}
			if again.Raw || again.Digest != inst.Digest || !bytes.Equal(again.Data, inst.Data) ||
				again.SOPInstanceUID != inst.SOPInstanceUID || again.TransferSyntaxUID != c.ts {
				t.Fatalf("normalization is not idempotent")
			}
			if len(again.Warnings) != len(inst.Warnings) {
				t.Errorf("warnings differ: %q vs %q", again.Warnings, inst.Warnings)
			}
		})
	}
}

// TestMissingPreamble: a Part-10 file without its preamble, or without
// preamble and DICM, normalizes to the same bytes as the complete file.
func TestMissingPreamble(t *testing.T) {
	full := readCorpus(t, "mr_explicit-le__MR_small.dcm")
	want, err := dicomio.Parse(full, dicomio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"no preamble":          full[128:],
		"no preamble nor DICM": full[132:],
	} {
		t.Run(name, func(t *testing.T) {
			inst, err := dicomio.Parse(in, dicomio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if inst.Raw || inst.Digest != want.Digest || !bytes.Equal(inst.Data, want.Data) {
				t.Fatalf("not normalized to the complete file")
			}
			if !containsAny(inst.Warnings, "preamble") {
				t.Fatalf("no warning: %q", inst.Warnings)
			}
		})
	}
}

func TestPreambleZeroed(t *testing.T) {
	in := part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).required().b)
	inst, err := dicomio.Parse(in, dicomio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if in[0] != 0xA5 {
		t.Fatal("input modified")
	}
	if !bytes.Equal(inst.Data[:128], make([]byte, 128)) || !bytes.Equal(inst.Data[128:], in[128:]) {
		t.Fatal("Data is not the input with a zeroed preamble")
	}
	// Read owns its buffer and may zero it in place; the result is the same.
	rinst, err := dicomio.Read(bytes.NewReader(in), dicomio.Limits{})
	if err != nil || !bytes.Equal(rinst.Data, inst.Data) || rinst.Digest != inst.Digest {
		t.Fatalf("Read differs from Parse: %v", err)
	}
	if inst.PatientName != secretName || inst.PatientID != secretID || inst.Modality != "OT" {
		t.Fatalf("attributes: %+v", inst)
	}
}

// TestTransferSyntaxMismatch declares each MR dataset with the wrong
// transfer syntax: the error must say what the data really are.
func TestTransferSyntaxMismatch(t *testing.T) {
	cases := []struct {
		file, declared, actual string
	}{
		{"mr_explicit-le__MR_small.dcm", dicomio.ImplicitVRLittleEndian, "explicit VR little endian"},
		{"mr_explicit-le__MR_small.dcm", dicomio.ExplicitVRBigEndian, "explicit VR little endian"},
		{"mr_implicit-le__MR_small_implicit.dcm", dicomio.ExplicitVRLittleEndian, "implicit VR little endian"},
		{"mr_explicit-be__MR_small_bigendian.dcm", dicomio.ExplicitVRLittleEndian, "explicit VR big endian"},
	}
	for _, c := range cases {
		t.Run(c.file+" as "+c.declared, func(t *testing.T) {
			_, err := dicomio.Parse(part10(c.declared, datasetOf(t, c.file)), dicomio.Limits{})
			e := wantCode(t, err, dicomio.ErrCodeMalformed)
			if !strings.Contains(e.Msg, "does not match its transfer syntax "+c.declared) || !strings.Contains(e.Msg, "encoded as "+c.actual) {
				t.Fatalf("message %q does not name the mismatch", e.Msg)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := dicomio.Parse(readCorpus(t, "BROKEN_truncated-pixeldata__MR_truncated.dcm"), dicomio.Limits{})
	const want = "dicom: truncated: element (7FE0,0010) at offset 1488 declares 8192 bytes but 8130 remain"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	e := err.(*dicomio.Error)
	if e.Tag != 0x7FE00010 || e.Offset != 1488 || dicomio.CodeOf(err) != dicomio.ErrCodeTruncated {
		t.Fatalf("fields: %+v", e)
	}
	for code, s := range map[dicomio.ErrorCode]string{
		dicomio.ErrCodeTruncated: "truncated", dicomio.ErrCodeMalformed: "malformed", dicomio.ErrCodeUnsupported: "unsupported",
		dicomio.ErrCodeMissingAttribute: "missing attribute", dicomio.ErrCodeTooLarge: "too large", dicomio.ErrCodeTooDeep: "too deep",
		dicomio.ErrCodeInternal: "internal error", dicomio.ErrCodeIO: "read error", dicomio.ErrorCode(99): "ErrorCode(99)",
	} {
		if code.String() != s {
			t.Errorf("%d.String() = %q, want %q", int(code), code.String(), s)
		}
	}
}

func TestMetaQuirks(t *testing.T) {
	dataset := newDS(true, false).required().b
	t.Run("no group length", func(t *testing.T) {
		in := part10(dicomio.ExplicitVRLittleEndian, dataset)
		in = append(in[:132:132], in[144:]...) // drop (0002,0000)
		inst, err := dicomio.Parse(in, dicomio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !containsAny(inst.Warnings, "no group length") {
			t.Fatalf("warnings %q", inst.Warnings)
		}
	})
	t.Run("wrong group length", func(t *testing.T) {
		in := part10(dicomio.ExplicitVRLittleEndian, dataset)
		in[140] += 2
		inst, err := dicomio.Parse(in, dicomio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !containsAny(inst.Warnings, "group length (0002,0000) disagrees") {
			t.Fatalf("warnings %q", inst.Warnings)
		}
	})
	t.Run("SOP instance differs", func(t *testing.T) {
		d := newDS(true, false).str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").str(0x00080018, "UI", "1.2.3").
			str(0x0020000D, "UI", "1.2.3.5").str(0x0020000E, "UI", "1.2.3.6")
		inst, err := dicomio.Parse(part10(dicomio.ExplicitVRLittleEndian, d.b), dicomio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !containsAny(inst.Warnings, "(0002,0003) differs") {
			t.Fatalf("warnings %q", inst.Warnings)
		}
	})
	t.Run("implicit meta", func(t *testing.T) {
		in := part10(dicomio.ExplicitVRLittleEndian, dataset)
		copy(in[136:], []byte{4, 0, 0, 0}) // (0002,0000) without VR
		_, err := dicomio.Parse(in, dicomio.Limits{})
		e := wantCode(t, err, dicomio.ErrCodeMalformed)
		if !strings.Contains(e.Msg, "not explicit VR little endian") {
			t.Fatalf("message %q", e.Msg)
		}
	})
}

func TestIndexAttributes(t *testing.T) {
	d := newDS(true, false).
		str(0x00080005, "CS", "ISO_IR 192").
		str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2").
		str(0x00080018, "UI", "1.2.3.4").
		str(0x00080020, "DA", "20240229").
		str(0x00080030, "TM", "101530.25").
		str(0x00080050, "SH", " ACC-1").
		str(0x00080060, "CS", "CT").
		str(0x00081030, "LO", "CT THORAX  ").
		str(0x0008103E, "LO", "AXIAL").
		str(0x00100010, "PN", "Müller^Jörg").
		str(0x00100020, "LO", "PID-7").
		str(0x00100021, "LO", "HOSP").
		str(0x00100030, "DA", "19700101").
		str(0x00100040, "CS", "M").
		str(0x0020000D, "UI", "1.2.3.5").
		str(0x0020000E, "UI", "1.2.3.6").
		str(0x00200010, "SH", "S1").
		str(0x00200011, "IS", " +3 ").
		str(0x00200013, "IS", "-12").
		str(0x00280008, "IS", "99999999999")
	inst, err := dicomio.Parse(part10(dicomio.ExplicitVRLittleEndian, d.b), dicomio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := dicomio.Instance{
		SpecificCharacterSet: "ISO_IR 192", SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SOPInstanceUID: "1.2.3.4",
		StudyDate: "20240229", StudyTime: "101530.25", AccessionNumber: "ACC-1", Modality: "CT",
		StudyDescription: "CT THORAX", SeriesDescription: "AXIAL", PatientName: "Müller^Jörg", PatientID: "PID-7",
		IssuerOfPatientID: "HOSP", PatientBirthDate: "19700101", PatientSex: "M", StudyInstanceUID: "1.2.3.5",
		SeriesInstanceUID: "1.2.3.6", StudyID: "S1", SeriesNumber: 3, InstanceNumber: -12, NumberOfFrames: 0,
		TransferSyntaxUID: dicomio.ExplicitVRLittleEndian,
	}
	got := *inst
	got.Data, got.Digest, got.Warnings = nil, [32]byte{}, nil
	if got.SpecificCharacterSet != want.SpecificCharacterSet || got.PatientName != want.PatientName ||
		got.StudyDescription != want.StudyDescription || got.AccessionNumber != want.AccessionNumber ||
		got.SeriesNumber != want.SeriesNumber || got.InstanceNumber != want.InstanceNumber ||
		got.NumberOfFrames != want.NumberOfFrames || got.StudyTime != want.StudyTime || got.PatientSex != want.PatientSex ||
		got.IssuerOfPatientID != want.IssuerOfPatientID || got.StudyID != want.StudyID || got.PatientBirthDate != want.PatientBirthDate ||
		got.SeriesDescription != want.SeriesDescription || got.PatientID != want.PatientID || got.StudyDate != want.StudyDate {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if !containsAny(inst.Warnings, "Number of Frames (0028,0008) is not a valid IS") {
		t.Fatalf("warnings %q", inst.Warnings)
	}

	t.Run("overlong value", func(t *testing.T) {
		d := newDS(true, false).str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").str(0x00080018, "UI", "1.2.3").
			header(0x00100010, "PN", 4000).raw(bytes.Repeat([]byte("A"), 4000)...).
			str(0x0020000D, "UI", "1.2.3.5").str(0x0020000E, "UI", "1.2.3.6")
		_, err := dicomio.Parse(part10(dicomio.ExplicitVRLittleEndian, d.b), dicomio.Limits{})
		e := wantCode(t, err, dicomio.ErrCodeMalformed)
		if e.Tag != 0x00100010 || strings.Contains(e.Msg, "AAAA") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestNormalizedWithDcmdump has DCMTK read the Part-10 files made from
// bare datasets: another reader must accept the meta group we write. CI
// installs dcmtk and sets CI; there a missing dcmdump fails.
func TestNormalizedWithDcmdump(t *testing.T) {
	bin, err := exec.LookPath("dcmdump")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but dcmdump is not on PATH: %v", err)
		}
		t.Skip("dcmdump not on PATH")
	}
	for _, name := range []string{
		"rtstruct_raw-dataset_implicit_undef-len-sq__rtstruct.dcm",
		"rtplan_raw-dataset_no-meta_explicit-le__ExplVR_LitEndNoMeta.dcm",
		"rtplan_raw-dataset_no-meta_explicit-be__ExplVR_BigEndNoMeta.dcm",
	} {
		inst, err := dicomio.Parse(readCorpus(t, name), dicomio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "norm.dcm")
		if err := os.WriteFile(p, inst.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-E", p).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("E: ")) || bytes.Contains(out, []byte("W: ")) {
			t.Fatalf("%s: dcmdump: %v\n%s", name, err, out)
		}
		if !bytes.Contains(out, []byte("(0002,0012) UI ["+dicomio.ImplementationClassUID+"]")) {
			t.Fatalf("%s: dcmdump does not show our meta group:\n%s", name, out)
		}
	}
}

func TestParseDataset(t *testing.T) {
	cases := []struct {
		file, ts string
	}{
		{"mr_explicit-le__MR_small.dcm", dicomio.ExplicitVRLittleEndian},
		{"mr_implicit-le__MR_small_implicit.dcm", dicomio.ImplicitVRLittleEndian},
		{"mr_explicit-be__MR_small_bigendian.dcm", dicomio.ExplicitVRBigEndian},
		{"mr_jpeg2000-lossless__MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			want, err := dicomio.Parse(readCorpus(t, c.file), dicomio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			dataset := datasetOf(t, c.file)
			inst, err := dicomio.ParseDataset(dataset, c.ts+"\x00", dicomio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !inst.Raw || inst.TransferSyntaxUID != c.ts || inst.SOPInstanceUID != want.SOPInstanceUID ||
				inst.PatientName != want.PatientName || !bytes.HasSuffix(inst.Data, dataset) {
				t.Fatalf("got %+v", inst)
			}
			again, err := dicomio.Parse(inst.Data, dicomio.Limits{})
			if err != nil || again.Digest != inst.Digest || again.TransferSyntaxUID != c.ts {
				t.Fatalf("re-parse: %v", err)
			}
		})
	}
	t.Run("deflated", func(t *testing.T) {
		dataset := deflate(t, datasetOf(t, "mr_explicit-le__MR_small.dcm"))
		inst, err := dicomio.ParseDataset(dataset, dicomio.DeflatedExplicitVRLittleEndian, dicomio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		again, err := dicomio.Parse(inst.Data, dicomio.Limits{})
		if err != nil || again.Digest != inst.Digest || again.SOPInstanceUID != inst.SOPInstanceUID || again.Raw {
			t.Fatalf("re-parse: %v", err)
		}
		_, err = dicomio.ParseDataset(dataset[:len(dataset)/2], dicomio.DeflatedExplicitVRLittleEndian, dicomio.Limits{})
		wantCode(t, err, dicomio.ErrCodeTruncated)
	})
	t.Run("wrong transfer syntax", func(t *testing.T) {
		_, err := dicomio.ParseDataset(datasetOf(t, "mr_implicit-le__MR_small_implicit.dcm"), dicomio.ExplicitVRLittleEndian, dicomio.Limits{})
		e := wantCode(t, err, dicomio.ErrCodeMalformed)
		if !strings.Contains(e.Msg, "encoded as implicit VR little endian") {
			t.Fatalf("message %q", e.Msg)
		}
	})
	t.Run("unknown transfer syntax", func(t *testing.T) {
		_, err := dicomio.ParseDataset(datasetOf(t, "mr_explicit-le__MR_small.dcm"), "1.2.3", dicomio.Limits{})
		wantCode(t, err, dicomio.ErrCodeUnsupported)
	})
}

// TestGroup2InDataset: a bare dataset that carries group 0002 elements
// (some SCUs send them) is wrapped, and the result still parses with the
// meta group we wrote.
func TestGroup2InDataset(t *testing.T) {
	for _, c := range []struct {
		name     string
		explicit bool
		ts       string
	}{
		{"implicit", false, dicomio.ImplicitVRLittleEndian},
		{"explicit", true, dicomio.ExplicitVRLittleEndian},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := newDS(c.explicit, false).str(0x00020010, "UI", "1.2.840.10008.1.2.4.50").required()
			inst, err := dicomio.ParseDataset(d.b, c.ts, dicomio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !containsAny(inst.Warnings, "group 0002") {
				t.Errorf("warnings %q", inst.Warnings)
			}
			again, err := dicomio.Parse(inst.Data, dicomio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if again.TransferSyntaxUID != c.ts || again.Digest != inst.Digest || again.SOPInstanceUID != testSOP {
				t.Fatalf("re-parse: TS %s", again.TransferSyntaxUID)
			}
		})
	}
}
