package dicomio_test

import (
	"bytes"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

const tagPixelData = 0x7FE00010

// describeCorpus parses a corpus file as the archive would and describes
// the stored bytes.
func describeCorpus(t *testing.T, name string, bulkMin int) (*dicomio.Description, []byte) {
	t.Helper()
	inst, err := dicomio.Parse(readCorpus(t, name), dicomio.Limits{})
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	d, err := dicomio.Describe(inst.Data, bulkMin)
	if err != nil {
		t.Fatalf("describe %s: %v", name, err)
	}
	return d, inst.Data
}

// checkSorted checks that every level of ds is in strictly ascending tag
// order and that only top-level elements are bulk.
func checkSorted(t *testing.T, ds dicomio.Dataset, top bool) {
	t.Helper()
	for i, el := range ds {
		if i > 0 && el.Tag <= ds[i-1].Tag {
			t.Fatalf("(%08X) follows (%08X)", el.Tag, ds[i-1].Tag)
		}
		if !top && el.BulkLen != 0 {
			t.Fatalf("nested (%08X) is bulk", el.Tag)
		}
		for _, it := range el.Items {
			checkSorted(t, it, false)
		}
	}
}

// Every corpus file Parse accepts describes, in its stored form; the
// others do not make Describe panic.
func TestDescribeCorpus(t *testing.T) {
	frames := map[string]int{
		"us_multiframe-8_jpeg-baseline_bad-charset-term__IM00001.fragmented_no_bot_jpeg_baseline.50.dcm": 8,
		"ct_multiframe-2_jpeg-lossless-p14_frags-no-bot__CT0012.fragmented_no_bot_jpeg_lossless.57.dcm":  2,
		"mr_explicit-le__MR_small.dcm":                1,
		"mr_rle-lossless__MR_small_RLE.dcm":           1,
		"sc-rgb_jpeg-baseline__SC_rgb_jpeg_dcmtk.dcm": 1,
		"nm_jpeg2000-lossy__JPEG2000.dcm":             1,
		"seg_undef-len-sq__liver_1frame.dcm":          1,
		"ot_deflated-explicit-le__image_dfl.dcm":      1,
	}
	for _, row := range readManifest(t) {
		t.Run(row.file, func(t *testing.T) {
			b := readCorpus(t, row.file)
			inst, err := dicomio.Parse(b, dicomio.Limits{})
			if err != nil {
				if d, err := dicomio.Describe(b, 64); err == nil && d == nil {
					t.Fatal("nil description without an error")
				}
				return
			}
			d, err := dicomio.Describe(inst.Data, 64)
			if err != nil {
				t.Fatalf("describe: %v", err)
			}
			if err := checkMessage(err); err != "" {
				t.Fatal(err)
			}
			if d.TransferSyntax != inst.TransferSyntaxUID {
				t.Errorf("transfer syntax %s, want %s", d.TransferSyntax, inst.TransferSyntaxUID)
			}
			checkSorted(t, d.Dataset, true)
			if inst.SOPInstanceUID != "" && d.Dataset.String(0x00080018) != inst.SOPInstanceUID {
				t.Errorf("SOP Instance UID differs from Parse's")
			}
			for tg, r := range d.Bulk {
				el := d.Dataset.Find(tg)
				if el == nil || el.Value != nil || el.BulkLen != r.Len || r.Len <= 0 {
					t.Errorf("bulk (%08X): element %+v, range %+v", tg, el, r)
				}
				if d.Bytes(inst.Data, r) == nil {
					t.Errorf("bulk (%08X): range %+v outside the instance", tg, r)
				}
			}
			for _, el := range d.Dataset {
				if el.BulkLen == 0 && el.VR != "SQ" && len(el.Value) > 64 && el.Tag != tagPixelData {
					switch el.VR {
					case "OB", "OD", "OF", "OL", "OV", "OW", "UN":
						t.Errorf("(%08X) %s of %d bytes inline", el.Tag, el.VR, len(el.Value))
					}
				}
			}
			if (d.Pixel != nil) != d.Dataset.Has(tagPixelData) {
				t.Fatalf("Pixel %v, but Pixel Data present: %v", d.Pixel != nil, d.Dataset.Has(tagPixelData))
			}
			if d.Pixel == nil {
				return
			}
			if _, ok := d.Bulk[tagPixelData]; !ok {
				t.Error("pixel data not in Bulk")
			}
			if want, ok := frames[row.file]; ok && len(d.Pixel.Frames) != want {
				t.Errorf("%d frames, want %d", len(d.Pixel.Frames), want)
			}
			for i := range d.Pixel.Frames {
				if _, err := d.FrameData(inst.Data, i+1); err != nil {
					t.Errorf("frame %d: %v", i+1, err)
				}
			}
		})
	}
}

func checkMessage(err error) string {
	if err == nil {
		return ""
	}
	if m := err.Error(); m != strings.ToLower(m[:1])+m[1:] {
		return "error not lowercase: " + m
	}
	return ""
}

// The big endian and implicit VR copies of MR_small describe like the
// explicit little endian one: the same pixels, values little endian,
// as DecodeDataset reads them.
func TestDescribeByteOrder(t *testing.T) {
	le, leData := describeCorpus(t, "mr_explicit-le__MR_small.dcm", 64)
	be, beData := describeCorpus(t, "mr_explicit-be__MR_small_bigendian.dcm", 64)
	im, imData := describeCorpus(t, "mr_implicit-le__MR_small_implicit.dcm", 64)
	want, err := le.FrameData(leData, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 64*64*2 {
		t.Fatalf("frame of %d bytes", len(want))
	}
	for name, c := range map[string]struct {
		d *dicomio.Description
		b []byte
	}{"big endian": {be, beData}, "implicit": {im, imData}} {
		got, err := c.d.FrameData(c.b, 1)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: frame differs from explicit little endian (%v)", name, err)
		}
		for _, tg := range []uint32{0x00280010, 0x00280011, 0x00280100, 0x00280030, 0x00200032} {
			a, b := le.Dataset.Find(tg), c.d.Dataset.Find(tg)
			if a == nil || b == nil || !bytes.Equal(a.Value, b.Value) || a.VR != b.VR {
				t.Errorf("%s: (%08X) %+v, want %+v", name, tg, b, a)
			}
		}
		if vr := c.d.Dataset.Find(tagPixelData).VR; vr != "OW" {
			t.Errorf("%s: pixel data VR %s", name, vr)
		}
	}
	if be.Pixel.Rows != 64 || be.Pixel.BitsAllocated != 16 || be.Pixel.PixelRepresentation != 1 {
		t.Errorf("big endian pixel module %+v", be.Pixel)
	}
	// DecodeDataset's reading of the big endian data set, pixel data aside.
	ref, err := dicomio.DecodeDataset(dataSetBytes(t, beData), dicomio.ExplicitVRBigEndian)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range ref {
		if r.Tag == tagPixelData {
			continue
		}
		el := be.Dataset.Find(r.Tag)
		if el == nil || el.VR != r.VR || !bytes.Equal(el.Value, r.Value) || len(el.Items) != len(r.Items) {
			t.Errorf("(%08X): %+v, DecodeDataset %+v", r.Tag, el, r)
		}
		n++
	}
	if n != len(be.Dataset)-1 {
		t.Errorf("%d elements besides pixel data, DecodeDataset %d", len(be.Dataset)-1, n)
	}
	// Signed pixels: the big endian copy's SS Smallest Image Pixel Value.
	if el := im.Dataset.Find(0x00280106); el != nil && el.VR != "SS" {
		t.Errorf("implicit (0028,0106) VR %s with signed pixels, want SS", el.VR)
	}
}

func dataSetBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	v, err := dicomio.DataSetOf(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// dcmdumpFragments lists the lengths of the items of a file's
// encapsulated pixel data as DCMTK reads them (Basic Offset Table first).
func dcmdumpFragments(t *testing.T, path string) []int64 {
	t.Helper()
	if _, err := exec.LookPath("dcmdump"); err != nil {
		t.Skip("dcmdump (DCMTK) is not installed")
	}
	out, err := exec.Command("dcmdump", "+P", "7fe0,0010", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dcmdump: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`\(fffe,e000\) pi .*# *(\d+), 1 Item`)
	var lens []int64
	for _, line := range strings.Split(string(out), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			lens = append(lens, n)
		}
	}
	return lens
}

// Encapsulated frames: the fragments (as dcmdump lists them) grouped by
// frame, each frame a whole JPEG stream.
func TestDescribeEncapsulatedFrames(t *testing.T) {
	for _, c := range []struct {
		file   string
		frames int
		jpeg   bool
	}{
		{"us_multiframe-8_jpeg-baseline_bad-charset-term__IM00001.fragmented_no_bot_jpeg_baseline.50.dcm", 8, true},
		{"ct_multiframe-2_jpeg-lossless-p14_frags-no-bot__CT0012.fragmented_no_bot_jpeg_lossless.57.dcm", 2, true},
		{"sc-rgb_jpeg-baseline__SC_rgb_jpeg_dcmtk.dcm", 1, true},
		{"nm_jpeg2000-lossy__JPEG2000.dcm", 1, false},
		{"mr_rle-lossless__MR_small_RLE.dcm", 1, false},
	} {
		t.Run(c.file, func(t *testing.T) {
			d, data := describeCorpus(t, c.file, 1024)
			p := d.Pixel
			if p == nil || !p.Encapsulated || len(p.Frames) != c.frames || p.NumberOfFrames != c.frames {
				t.Fatalf("pixel %+v", p)
			}
			var lens []int64
			for _, f := range p.Frames {
				for _, r := range f {
					lens = append(lens, r.Len)
				}
			}
			dump := dcmdumpFragments(t, filepath.Join(corpusDir, c.file))
			if len(dump) < 1 || !slicesEqual(dump[1:], lens) {
				t.Errorf("fragment lengths %v, dcmdump %v", lens, dump)
			}
			for i := range p.Frames {
				f, err := d.FrameData(data, i+1)
				if err != nil {
					t.Fatal(err)
				}
				if c.jpeg && (f[0] != 0xFF || f[1] != 0xD8 || !bytes.Contains(f[len(f)-4:], []byte{0xFF, 0xD9})) {
					t.Errorf("frame %d is not one JPEG stream: % X ... % X", i+1, f[:4], f[len(f)-4:])
				}
			}
		})
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// encapsulated builds an instance whose pixel data has the given
// fragments after a Basic Offset Table bot, with EOT offsets when eot is
// not nil.
func encapsulated(nframes int, bot []uint32, eot []uint64, frags ...[]byte) []byte {
	d := newDS(true, false).required()
	d.bytes(0x00280008, "IS", []byte(strconv.Itoa(nframes)+" "))
	d.bytes(0x00280010, "US", binary.LittleEndian.AppendUint16(nil, 2))
	d.bytes(0x00280011, "US", binary.LittleEndian.AppendUint16(nil, 2))
	if eot != nil {
		var v, l []byte
		for _, o := range eot {
			v = binary.LittleEndian.AppendUint64(v, o)
			l = binary.LittleEndian.AppendUint64(l, 0)
		}
		d.bytes(0x7FE00001, "OV", v)
		d.bytes(0x7FE00002, "OV", l)
	}
	d.undefPixels("OB")
	var bv []byte
	for _, o := range bot {
		bv = binary.LittleEndian.AppendUint32(bv, o)
	}
	d.item(uint32(len(bv))).raw(bv...)
	for _, f := range frags {
		d.item(uint32(len(f))).raw(f...)
	}
	d.seqDelim()
	return part10("1.2.840.10008.1.2.4.90", d.b)
}

func TestDescribeOffsetTables(t *testing.T) {
	f := [][]byte{{1, 1}, {2, 2, 2, 2}, {3, 3}, {4, 4, 4, 4, 4, 4}, {5, 5}}
	// Item headers at 0, 10, 22, 32, 46 from the first fragment's.
	for _, c := range []struct {
		name string
		in   []byte
		want [][]int // fragment indexes per frame
	}{
		{"basic offset table", encapsulated(3, []uint32{0, 22, 46}, nil, f...), [][]int{{0, 1}, {2, 3}, {4}}},
		{"extended offset table", encapsulated(2, nil, []uint64{0, 32}, f...), [][]int{{0, 1, 2}, {3, 4}}},
		{"one fragment a frame", encapsulated(5, nil, nil, f...), [][]int{{0}, {1}, {2}, {3}, {4}}},
		{"one frame", encapsulated(1, nil, nil, f...), [][]int{{0, 1, 2, 3, 4}}},
		{"offsets off a fragment", encapsulated(2, []uint32{0, 5}, nil, f...), nil},
		{"no rule fits", encapsulated(2, nil, nil, f...), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			inst, err := dicomio.Parse(c.in, dicomio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			d, err := dicomio.Describe(inst.Data, 1024)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == nil {
				if d.Pixel.Frames != nil {
					t.Fatalf("frames %v", d.Pixel.Frames)
				}
				if _, err := d.FrameData(inst.Data, 1); err == nil {
					t.Fatal("FrameData without frames")
				}
				return
			}
			if len(d.Pixel.Frames) != len(c.want) {
				t.Fatalf("%d frames, want %d", len(d.Pixel.Frames), len(c.want))
			}
			for i, idx := range c.want {
				var want []byte
				for _, j := range idx {
					want = append(want, f[j]...)
				}
				got, err := d.FrameData(inst.Data, i+1)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("frame %d: %v (%v), want %v", i+1, got, err, want)
				}
			}
		})
	}
}

// Long binary values go to Bulk at the top level only; nested ones and
// short ones stay inline.
func TestDescribeBulkMin(t *testing.T) {
	d := newDS(true, false).required()
	d.bytes(0x00091010, "OB", make([]byte, 100))
	d.bytes(0x00091011, "UN", make([]byte, 10))
	d.undefSQ(0x00400275).item(0xFFFFFFFF).bytes(0x00091012, "OB", make([]byte, 100)).itemDelim().seqDelim()
	in := part10(dicomio.ExplicitVRLittleEndian, d.b)
	for _, c := range []struct {
		min  int
		bulk bool
	}{{64, true}, {100, false}, {0, true}} {
		desc, err := dicomio.Describe(in, c.min)
		if err != nil {
			t.Fatal(err)
		}
		el := desc.Dataset.Find(0x00091010)
		_, inBulk := desc.Bulk[0x00091010]
		if inBulk != c.bulk || (el.BulkLen == 100) != c.bulk || (el.Value == nil) != c.bulk {
			t.Errorf("bulkMin %d: %+v in bulk %v", c.min, el, inBulk)
		}
		if c.bulk {
			v, err := desc.BulkValue(in, 0x00091010)
			if err != nil || len(v) != 100 {
				t.Errorf("bulk value %d bytes, %v", len(v), err)
			}
		}
		sq := desc.Dataset.Find(0x00400275)
		if sq == nil || len(sq.Items) != 1 || len(sq.Items[0].Find(0x00091012).Value) != 100 {
			t.Errorf("bulkMin %d: nested value not inline: %+v", c.min, sq)
		}
		if un := desc.Dataset.Find(0x00091011); (un.BulkLen != 0) != (c.min < 10) {
			t.Errorf("bulkMin %d: UN %+v", c.min, un)
		}
	}
}

// A deflated instance is described from its inflated data set.
func TestDescribeDeflated(t *testing.T) {
	d, data := describeCorpus(t, "ot_deflated-explicit-le__image_dfl.dcm", 64)
	if d.Inflated == nil || d.Pixel == nil || len(d.Pixel.Frames) != 1 {
		t.Fatalf("deflated: inflated %d bytes, pixel %+v", len(d.Inflated), d.Pixel)
	}
	f, err := d.FrameData(data, 1)
	p := d.Pixel
	if err != nil || len(f) != p.Rows*p.Columns*p.SamplesPerPixel*p.BitsAllocated/8 {
		t.Fatalf("frame of %d bytes (%v), pixel %+v", len(f), err, p)
	}
}

// The generated CT: one native 16-bit frame, its window and rescale.
func TestDescribeSynthCT(t *testing.T) {
	_, files, err := synth.CT(synth.CTOptions{Slices: 2, Rows: 48, Cols: 40, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := dicomio.Parse(files[1].Data, dicomio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dicomio.Describe(inst.Data, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p := d.Pixel
	if p == nil || p.Encapsulated || p.Rows != 48 || p.Columns != 40 || p.BitsAllocated != 16 || p.BitsStored != 12 ||
		p.HighBit != 11 || p.NumberOfFrames != 1 || p.Photometric != "MONOCHROME2" || p.RescaleIntercept != -1024 ||
		p.RescaleSlope != 1 || len(p.WindowCenter) != 1 || p.WindowCenter[0] != 40 || p.WindowWidth[0] != 400 {
		t.Fatalf("pixel %+v", p)
	}
	r := p.Frames[0][0]
	if r.Len != 48*40*2 || d.Bulk[tagPixelData] != r {
		t.Fatalf("frame range %+v, bulk %+v", r, d.Bulk[tagPixelData])
	}
	f, _ := d.FrameData(inst.Data, 1)
	if !bytes.Equal(f, inst.Data[len(inst.Data)-48*40*2:]) {
		t.Error("frame is not the file's last 3840 bytes")
	}
}

// Hostile and broken inputs give clear errors.
func TestDescribeErrors(t *testing.T) {
	good := part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).required().b)
	deep := part10(dicomio.ExplicitVRLittleEndian, deepSQ(true, 40))
	for name, c := range map[string]struct {
		in  []byte
		msg string
	}{
		"empty":      {nil, "not a Part-10 file"},
		"truncated":  {good[:len(good)-3], "declares"},
		"deep":       {deep, "nests deeper than 16"},
		"unknown ts": {part10("1.2.3.4", newDS(true, false).required().b), "transfer syntax 1.2.3.4 is not supported"},
		"bad vr":     {part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).raw(8, 0, 0x16, 0, 'z', 'z', 2, 0, 1, 2).b), "no valid VR"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := dicomio.Describe(c.in, 64)
			if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "describe instance: ") {
				t.Fatalf("error %v, want %q", err, c.msg)
			}
			if strings.Contains(err.Error(), secretName) {
				t.Fatal("patient data in the error")
			}
		})
	}
}

// FuzzDescribe: Describe never panics, its ranges lie within the input,
// and every frame it lists can be read.
func FuzzDescribe(f *testing.F) {
	for _, b := range corpusSeeds(f, 64<<10) {
		f.Add(b)
	}
	f.Add(encapsulated(3, []uint32{0, 22, 46}, nil, []byte{1, 1}, []byte{2, 2, 2, 2}, []byte{3, 3}, []byte{4, 4, 4, 4, 4, 4}, []byte{5, 5}))
	f.Add(part10(dicomio.ExplicitVRLittleEndian, deepSQ(true, 20)))
	f.Add(part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(f, newDS(true, false).required().b)))
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		d, err := dicomio.Describe(data, 32)
		if !bytes.Equal(orig, data) {
			t.Fatal("Describe modified its input")
		}
		if err != nil {
			if strings.Contains(err.Error(), "internal error") || !strings.HasPrefix(err.Error(), "describe instance: ") {
				t.Fatalf("bad error: %v", err)
			}
			return
		}
		for tg, r := range d.Bulk {
			if d.Bytes(data, r) == nil {
				t.Fatalf("bulk (%08X) range %+v outside the input", tg, r)
			}
		}
		if d.Pixel != nil {
			for i := range d.Pixel.Frames {
				if _, err := d.FrameData(data, i+1); err != nil {
					t.Fatalf("frame %d: %v", i+1, err)
				}
			}
		}
	})
}

// Mutated and truncated corpus instances never make Describe panic (a
// recovered panic is an "internal error"), and what it describes can be
// read: a deterministic stand-in for FuzzDescribe in every test run.
func TestDescribeMutations(t *testing.T) {
	seed := uint64(0x9E3779B97F4A7C15)
	next := func(n int) int {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	for _, row := range readManifest(t) {
		b := readCorpus(t, row.file)
		inst, err := dicomio.Parse(b, dicomio.Limits{})
		if err != nil || len(inst.Data) > 200<<10 {
			continue
		}
		for i := 0; i < 300; i++ {
			m := bytes.Clone(inst.Data)
			switch i % 3 {
			case 0:
				m = m[:132+next(len(m)-132)]
			default:
				for k := 0; k < 1+next(4); k++ {
					m[132+next(len(m)-132)] = byte(next(256))
				}
			}
			d, err := dicomio.Describe(m, 16)
			if err != nil {
				if strings.Contains(err.Error(), "internal error") {
					t.Fatalf("%s mutation %d: %v", row.file, i, err)
				}
				continue
			}
			for tg, r := range d.Bulk {
				if d.Bytes(m, r) == nil {
					t.Fatalf("%s mutation %d: bulk (%08X) outside", row.file, i, tg)
				}
			}
			if d.Pixel != nil {
				for f := range d.Pixel.Frames {
					if _, err := d.FrameData(m, f+1); err != nil {
						t.Fatalf("%s mutation %d: frame %d: %v", row.file, i, f+1, err)
					}
				}
			}
		}
	}
}

// In implicit VR a private creator is LO, as DCMTK reads it; other
// private elements stay UN, and a private undefined-length element is a
// sequence.
func TestDescribeImplicitPrivate(t *testing.T) {
	d, _ := describeCorpus(t, "private-sq-undef-len_implicit__priv_SQ.dcm", 64)
	if el := d.Dataset.Find(0x3F030010); el == nil || el.VR != "LO" || d.Dataset.String(0x3F030010) != "aaabbbccc MEDICAL SYSTEMS" {
		t.Errorf("private creator %+v", el)
	}
	n := 0
	for _, el := range d.Dataset {
		if el.Tag>>16 == 0x3F03 && el.Tag&0xFFFF >= 0x1000 {
			n++
			if el.VR != "SQ" && el.VR != "UN" {
				t.Errorf("private (%08X) VR %s", el.Tag, el.VR)
			}
		}
	}
	if n == 0 {
		t.Error("no private elements")
	}
}
