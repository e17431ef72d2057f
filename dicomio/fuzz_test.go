package dicomio_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
)

// FuzzParse: Parse never panics (a recovered panic shows up as
// ErrCodeInternal, which fails here), and normalization is idempotent.
func FuzzParse(f *testing.F) {
	for _, b := range corpusSeeds(f, 0) {
		f.Add(b)
	}
	f.Add(deepSQ(false, 20))
	f.Add(part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(f, newDS(true, false).required().b)))

	lim := dicomio.Limits{MaxSize: 16 << 20, MaxInflated: 16 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		inst, err := dicomio.Parse(data, lim)
		if !bytes.Equal(orig, data) {
			t.Fatal("Parse modified its input")
		}
		if err != nil {
			e, ok := err.(*dicomio.Error)
			if !ok {
				t.Fatalf("error of type %T", err)
			}
			if e.Code == dicomio.ErrCodeInternal || e.Msg == "" {
				t.Fatalf("bad error: %v", err)
			}
			return
		}
		again, err := dicomio.Parse(inst.Data, lim)
		if err != nil {
			t.Fatalf("normalized instance does not parse: %v", err)
		}
		if again.SOPInstanceUID != inst.SOPInstanceUID || again.Digest != inst.Digest || !bytes.Equal(again.Data, inst.Data) {
			t.Fatalf("normalization is not idempotent")
		}
	})
}

// FuzzParseDataset: the same properties for bare datasets with a known
// transfer syntax (the C-STORE path).
func FuzzParseDataset(f *testing.F) {
	tsList := []string{
		dicomio.ExplicitVRLittleEndian, dicomio.ImplicitVRLittleEndian, dicomio.ExplicitVRBigEndian,
		dicomio.DeflatedExplicitVRLittleEndian, "1.2.840.10008.1.2.4.50",
	}
	for i, name := range []string{
		"mr_explicit-le__MR_small.dcm", "mr_implicit-le__MR_small_implicit.dcm", "mr_explicit-be__MR_small_bigendian.dcm",
	} {
		f.Add(datasetOf(f, name), uint8(i))
	}
	f.Add(deflate(f, datasetOf(f, "sr_nested-tree__test-SR.dcm")), uint8(3))
	f.Add(datasetOf(f, "sc-rgb_jpeg-baseline__SC_rgb_jpeg_dcmtk.dcm"), uint8(4))
	f.Add(readCorpus(f, "rtstruct_raw-dataset_implicit_undef-len-sq__rtstruct.dcm"), uint8(1))

	lim := dicomio.Limits{MaxSize: 16 << 20, MaxInflated: 16 << 20}
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		ts := tsList[int(which)%len(tsList)]
		inst, err := dicomio.ParseDataset(data, ts, lim)
		if err != nil {
			e, ok := err.(*dicomio.Error)
			if !ok || e.Code == dicomio.ErrCodeInternal || e.Msg == "" {
				t.Fatalf("bad error: %v", err)
			}
			return
		}
		again, err := dicomio.Parse(inst.Data, lim)
		if err != nil {
			t.Fatalf("normalized dataset does not parse: %v", err)
		}
		if again.SOPInstanceUID != inst.SOPInstanceUID || again.Digest != inst.Digest || again.TransferSyntaxUID != ts {
			t.Fatalf("normalization is not idempotent")
		}
	})
}

// corpusSeeds reads the test corpus's files, those under max bytes when
// max is positive: the seeds of the fuzz targets.
func corpusSeeds(f *testing.F, max int) [][]byte {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.dcm"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no corpus: %v", err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		if max <= 0 || len(b) < max {
			out = append(out, b)
		}
	}
	return out
}
