package dicomweb

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

const corpusDir = "../../testdata/dicom"

func TestFrameMediaType(t *testing.T) {
	for ts, want := range map[string]string{
		"1.2.840.10008.1.2":       OctetStream,
		"1.2.840.10008.1.2.1":     OctetStream,
		"1.2.840.10008.1.2.2":     OctetStream,
		"1.2.840.10008.1.2.1.99":  OctetStream,
		"1.2.840.10008.1.2.4.50":  "image/jpeg",
		"1.2.840.10008.1.2.4.51":  "image/jpeg",
		"1.2.840.10008.1.2.4.57":  "image/jpeg",
		"1.2.840.10008.1.2.4.70":  "image/jpeg",
		"1.2.840.10008.1.2.4.80":  "image/jls",
		"1.2.840.10008.1.2.4.81":  "image/jls",
		"1.2.840.10008.1.2.4.90":  "image/jp2",
		"1.2.840.10008.1.2.4.91":  "image/jp2",
		"1.2.840.10008.1.2.4.92":  "image/jpx",
		"1.2.840.10008.1.2.4.201": "image/jphc",
		"1.2.840.10008.1.2.5":     "image/dicom-rle",
		"1.2.840.10008.1.2.4.102": "video/mp4",
		"1.2.840.10008.1.2.4.94":  "", // JPIP referenced: no frames of its own
		"1.2.3":                   "",
	} {
		got, ok := FrameMediaType(ts)
		if got != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", ts, got, ok, want)
		}
	}
}

// native builds a description of one native frame of cols x rows pixels
// whose bytes are b.
func native(photometric string, cols, rows, spp, bitsAllocated, bitsStored, signed int, b []byte) *dicomio.Description {
	d := &dicomio.Description{
		TransferSyntax: dicomio.ExplicitVRLittleEndian,
		Pixel: &dicomio.PixelData{
			Rows: rows, Columns: cols, SamplesPerPixel: spp, BitsAllocated: bitsAllocated, BitsStored: bitsStored,
			HighBit: bitsStored - 1, PixelRepresentation: signed, NumberOfFrames: 1, Photometric: photometric,
			RescaleSlope: 1, Frames: [][]dicomio.Range{{{Off: 0, Len: int64(len(b))}}},
		},
	}
	rawBytes[d.Pixel] = b
	return d
}

// rawBytes keeps the frame bytes each test description was made from.
var rawBytes = map[*dicomio.PixelData][]byte{}

func u16s(v ...uint16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, x)
	}
	return b
}

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	return img
}

func greys(t *testing.T, img image.Image) []uint8 {
	t.Helper()
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("image is %T, not grey", img)
	}
	return g.Pix
}

// Known stored values through mask, sign, rescale and window come out as
// the grey levels PS3.3 C.11.2.1.2 gives.
func TestRenderMonochrome(t *testing.T) {
	exact := func(c, w float64) *Window { return &Window{Center: c, Width: w, Function: "LINEAR_EXACT"} }
	for _, c := range []struct {
		name   string
		d      *dicomio.Description
		adjust func(*dicomio.PixelData)
		win    *Window
		want   []uint8
	}{
		// Bits above BitsStored are not part of the value (0xF064 is 100).
		{"12 of 16 bits, masked", native("MONOCHROME2", 4, 1, 1, 16, 12, 0, u16s(0, 0xF064, 200, 150)), nil,
			exact(100, 200), []uint8{0, 128, 255, 191}},
		{"MONOCHROME1 inverted", native("MONOCHROME1", 4, 1, 1, 16, 12, 0, u16s(0, 0xF064, 200, 150)), nil,
			exact(100, 200), []uint8{255, 127, 0, 64}},
		{"rescale", native("MONOCHROME2", 2, 1, 1, 16, 16, 0, u16s(75, 125)),
			func(p *dicomio.PixelData) { p.RescaleSlope, p.RescaleIntercept = 2, -100 }, exact(100, 200), []uint8{64, 191}},
		{"signed 16", native("MONOCHROME2", 3, 1, 1, 16, 16, 1, u16s(0xFFFF, 0x8000, 0x7FFF)), nil,
			exact(-1, 2), []uint8{128, 0, 255}},
		{"signed 12 in 16", native("MONOCHROME2", 3, 1, 1, 16, 12, 1, u16s(0x0FFF, 0x0800, 0x07FF)), nil,
			exact(0, 4096), []uint8{127, 0, 255}},
		{"8 bit", native("MONOCHROME2", 3, 1, 1, 8, 8, 0, []byte{10, 20, 30}), nil, exact(20, 20), []uint8{0, 128, 255}},
		// LINEAR (C.11.2.1.2.1) with the synthetic CT's window 40/400 on
		// modality values -160, 40, 239, 240.
		{"linear", native("MONOCHROME2", 4, 1, 1, 16, 12, 0, u16s(864, 1064, 1263, 1264)),
			func(p *dicomio.PixelData) { p.RescaleIntercept = -1024 }, &Window{Center: 40, Width: 400}, []uint8{0, 128, 255, 255}},
		// The data set's window when none is asked for.
		{"data set window", native("MONOCHROME2", 3, 1, 1, 16, 16, 0, u16s(0, 100, 200)),
			func(p *dicomio.PixelData) {
				p.WindowCenter, p.WindowWidth, p.VOILUTFunction = []float64{100, 7}, []float64{200, 9}, "LINEAR_EXACT"
			}, nil, []uint8{0, 128, 255}},
		// Neither: the frame's minimum to maximum.
		{"min max", native("MONOCHROME2", 3, 1, 1, 16, 16, 0, u16s(1000, 1500, 2000)), nil, nil, []uint8{0, 128, 255}},
		{"sigmoid", native("MONOCHROME2", 1, 1, 1, 8, 8, 0, []byte{50}), nil, &Window{Center: 50, Width: 10, Function: "sigmoid"}, []uint8{128}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.adjust != nil {
				c.adjust(c.d.Pixel)
			}
			raw := rawBytes[c.d.Pixel]
			out, err := Render(c.d, raw, 1, MediaPNG, RenderParams{Window: c.win})
			if err != nil {
				t.Fatal(err)
			}
			if got := greys(t, decodePNG(t, out)); !bytes.Equal(got, c.want) {
				t.Errorf("greys %v, want %v", got, c.want)
			}
		})
	}
}

func TestRenderRGB(t *testing.T) {
	inter := []byte{255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30}
	planar := []byte{255, 0, 0, 10, 0, 255, 0, 20, 0, 0, 255, 30}
	for cfg, b := range map[int][]byte{0: inter, 1: planar} {
		d := native("RGB", 2, 2, 3, 8, 8, 0, b)
		d.Pixel.PlanarConfiguration = cfg
		out, err := Render(d, b, 1, MediaPNG, RenderParams{})
		if err != nil {
			t.Fatal(err)
		}
		img := decodePNG(t, out)
		want := [][3]uint32{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}}
		for i, w := range want {
			r, g, bl, _ := img.At(i%2, i/2).RGBA()
			if [3]uint32{r >> 8, g >> 8, bl >> 8} != w {
				t.Errorf("planar %d pixel %d: %d %d %d, want %v", cfg, i, r>>8, g>>8, bl>>8, w)
			}
		}
	}
}

func TestRenderViewport(t *testing.T) {
	b := u16s(0, 100, 200, 300, 0, 100, 200, 300) // 4 x 2
	d := native("MONOCHROME2", 4, 2, 1, 16, 16, 0, b)
	for _, c := range []struct{ vw, vh, w, h int }{
		{2, 2, 2, 1}, {8, 8, 8, 4}, {0, 1, 2, 1}, {3, 0, 3, 2}, {4, 2, 4, 2}, {1000, 1, 2, 1},
	} {
		out, err := Render(d, b, 1, MediaPNG, RenderParams{ViewportW: c.vw, ViewportH: c.vh})
		if err != nil {
			t.Fatal(err)
		}
		if r := decodePNG(t, out).Bounds(); r.Dx() != c.w || r.Dy() != c.h {
			t.Errorf("viewport %dx%d: %dx%d, want %dx%d", c.vw, c.vh, r.Dx(), r.Dy(), c.w, c.h)
		}
	}
	// Halving averages pairs: 0,100 -> 50 of 0..300.
	out, _ := Render(d, b, 1, MediaPNG, RenderParams{ViewportW: 2, ViewportH: 2, Window: &Window{Center: 150, Width: 300, Function: "LINEAR_EXACT"}})
	if g := greys(t, decodePNG(t, out)); g[0] != 43 || g[1] != 213 {
		t.Errorf("halved greys %v, want [43 213]", g)
	}
	out, err := Render(d, b, 1, MediaJPEG, RenderParams{ViewportW: 8, Quality: 50})
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(out)); err != nil || cfg.Width != 8 || cfg.Height != 4 {
		t.Errorf("JPEG %+v %v", cfg, err)
	}
}

func TestRenderRefuses(t *testing.T) {
	b := u16s(1, 2)
	d := native("MONOCHROME2", 2, 1, 1, 16, 16, 0, b)
	for name, c := range map[string]struct {
		d     *dicomio.Description
		frame int
		mt    string
		p     RenderParams
		want  error
		msg   string
	}{
		"gif":        {d, 1, "image/gif", RenderParams{}, ErrCannotRender, "image/gif"},
		"frame 0":    {d, 0, MediaPNG, RenderParams{}, ErrNoSuchFrame, "frame 0 is not in 1..1"},
		"frame 2":    {d, 2, MediaPNG, RenderParams{}, ErrNoSuchFrame, "frame 2"},
		"function":   {d, 1, MediaPNG, RenderParams{Window: &Window{Center: 1, Width: 2, Function: "GAMMA"}}, ErrCannotRender, "GAMMA"},
		"width 0":    {d, 1, MediaPNG, RenderParams{Window: &Window{Center: 1, Width: 0}}, ErrCannotRender, "window width 0"},
		"huge":       {native("MONOCHROME2", 10000, 10000, 1, 16, 16, 0, b), 1, MediaPNG, RenderParams{}, ErrCannotRender, "64-Mpixel"},
		"palette":    {native("PALETTE COLOR", 2, 1, 1, 16, 16, 0, b), 1, MediaPNG, RenderParams{}, ErrCannotRender, "PALETTE COLOR"},
		"32 bit":     {native("MONOCHROME2", 1, 1, 1, 32, 32, 0, []byte{1, 2, 3, 4}), 1, MediaPNG, RenderParams{}, ErrCannotRender, "32 bits"},
		"viewport":   {d, 1, MediaPNG, RenderParams{ViewportW: 1 << 20}, ErrCannotRender, "viewport"},
		"no pixels":  {&dicomio.Description{TransferSyntax: dicomio.ExplicitVRLittleEndian}, 1, MediaPNG, RenderParams{}, ErrCannotRender, "no pixel data"},
		"j2k":        {withTS(native("MONOCHROME2", 2, 1, 1, 16, 16, 0, b), "1.2.840.10008.1.2.4.90"), 1, MediaPNG, RenderParams{}, ErrCannotRender, "JPEG 2000"},
		"rle":        {withTS(native("MONOCHROME2", 2, 1, 1, 16, 16, 0, b), "1.2.840.10008.1.2.5"), 1, MediaPNG, RenderParams{}, ErrCannotRender, "RLE"},
		"jpeg-ls":    {withTS(native("MONOCHROME2", 2, 1, 1, 16, 16, 0, b), "1.2.840.10008.1.2.4.80"), 1, MediaPNG, RenderParams{}, ErrCannotRender, "JPEG-LS"},
		"12-bit":     {withTS(native("MONOCHROME2", 2, 1, 1, 16, 16, 0, b), "1.2.840.10008.1.2.4.51"), 1, MediaPNG, RenderParams{}, ErrCannotRender, "12-bit JPEG"},
		"lossless":   {withTS(native("MONOCHROME2", 2, 1, 1, 16, 16, 0, b), "1.2.840.10008.1.2.4.70"), 1, MediaPNG, RenderParams{}, ErrCannotRender, "lossless JPEG"},
		"not a jpeg": {withTS(native("MONOCHROME2", 2, 1, 1, 8, 8, 0, b), jpegBaseline), 1, MediaPNG, RenderParams{}, ErrCannotRender, "not a JPEG stream"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Render(c.d, b, c.frame, c.mt, c.p)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %v, want %v with %q", err, c.want, c.msg)
			}
			if m := err.Error(); strings.ToLower(m[:1]) != m[:1] {
				t.Errorf("error not lowercase: %s", m)
			}
		})
	}
}

func withTS(d *dicomio.Description, ts string) *dicomio.Description {
	d.TransferSyntax = ts
	return d
}

// describeFile parses a corpus file as the archive stores it and
// describes it.
func describeFile(t *testing.T, path string) (*dicomio.Description, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := dicomio.Parse(b, dicomio.Limits{})
	if err != nil {
		return nil, nil
	}
	d, err := dicomio.Describe(inst.Data, 1024)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	return d, inst.Data
}

// Every corpus image renders, or is refused with ErrCannotRender for a
// reason that names it; rendered ones have the frame's size.
func TestRenderCorpus(t *testing.T) {
	cannot := map[string]string{
		"ct_multiframe-2_jpeg-lossless-p14_frags-no-bot__CT0012.fragmented_no_bot_jpeg_lossless.57.dcm": "lossless JPEG",
		"ct_vr-un-everywhere_j2k__explicit_VR-UN.dcm":                                                   "JPEG 2000",
		"mr_jpeg2000-lossless__MR_small_jp2klossless.dcm":                                               "JPEG 2000",
		"nm_jpeg2000-lossy__JPEG2000.dcm":                                                               "JPEG 2000",
		"odd_pixeldata-contains-delimiter-bytes__JPEG2000-embedded-sequence-delimiter.dcm":              "JPEG 2000",
		"mr_rle-lossless__MR_small_RLE.dcm":                                                             "RLE",
		"nm_jpeg-lossless-sv1__JPEG-LL.dcm":                                                             "lossless JPEG",
		"odd_sequence-implicit-inside-explicit-UN__bad_sequence.dcm":                                    "lossless JPEG",
		"seg_undef-len-sq__liver_1frame.dcm":                                                            "1 bits allocated",
		"BROKEN_invalid-IS-number-of-frames__badVR.dcm":                                                 "32 bits allocated",
	}
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.dcm"))
	rendered := 0
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			d, data := describeFile(t, path)
			if d == nil || d.Pixel == nil {
				return
			}
			for _, mt := range []string{MediaPNG, MediaJPEG} {
				out, err := Render(d, data, d.Pixel.NumberOfFrames, mt, RenderParams{})
				if want, ok := cannot[name]; ok {
					if !errors.Is(err, ErrCannotRender) || !strings.Contains(err.Error(), want) {
						t.Fatalf("%s: %v, want ErrCannotRender naming %q", mt, err, want)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", mt, err)
				}
				var r image.Rectangle
				if mt == MediaPNG {
					r = decodePNG(t, out).Bounds()
				} else {
					cfg, err := jpeg.DecodeConfig(bytes.NewReader(out))
					if err != nil {
						t.Fatalf("not a JPEG: %v", err)
					}
					r = image.Rect(0, 0, cfg.Width, cfg.Height)
				}
				if r.Dx() != d.Pixel.Columns || r.Dy() != d.Pixel.Rows {
					t.Errorf("%s of %dx%d, frame %dx%d", mt, r.Dx(), r.Dy(), d.Pixel.Columns, d.Pixel.Rows)
				}
				rendered++
			}
		})
	}
	if rendered < 12 {
		t.Errorf("only %d renderings", rendered)
	}
}

// JPEG baseline: passed through when nothing is asked of it, decoded and
// re-encoded otherwise.
func TestRenderJPEGBaseline(t *testing.T) {
	d, data := describeFile(t, filepath.Join(corpusDir, "us_multiframe-8_jpeg-baseline_bad-charset-term__IM00001.fragmented_no_bot_jpeg_baseline.50.dcm"))
	frame, err := d.FrameData(data, 8)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Render(d, data, 8, MediaJPEG, RenderParams{})
	if err != nil || !bytes.Equal(out, frame) {
		t.Fatalf("frame 8 not passed through (%v)", err)
	}
	want, err := jpeg.Decode(bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	out, err = Render(d, data, 8, MediaPNG, RenderParams{})
	if err != nil {
		t.Fatal(err)
	}
	got := decodePNG(t, out)
	for _, pt := range []image.Point{{0, 0}, {160, 120}, {319, 239}, {100, 50}} {
		r1, g1, b1, _ := got.At(pt.X, pt.Y).RGBA()
		r2, g2, b2, _ := want.At(pt.X, pt.Y).RGBA()
		if r1>>8 != r2>>8 || g1>>8 != g2>>8 || b1>>8 != b2>>8 {
			t.Errorf("pixel %v: %d %d %d, JPEG %d %d %d", pt, r1>>8, g1>>8, b1>>8, r2>>8, g2>>8, b2>>8)
		}
	}
	out, err = Render(d, data, 1, MediaJPEG, RenderParams{ViewportW: 160})
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(out)); err != nil || cfg.Width != 160 || cfg.Height != 120 {
		t.Errorf("viewport 160: %+v %v", cfg, err)
	}
}

// The generated CT: a pixel whose modality value is the window centre
// comes out mid grey; the data set's window maps air to black.
func TestRenderSynthCT(t *testing.T) {
	_, files, err := synth.CT(synth.CTOptions{Slices: 1, Rows: 64, Cols: 64, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := dicomio.Parse(files[0].Data, dicomio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dicomio.Describe(inst.Data, 1024)
	if err != nil {
		t.Fatal(err)
	}
	frame, _ := d.FrameData(inst.Data, 1)
	x, y := 32, 32
	stored := binary.LittleEndian.Uint16(frame[2*(y*64+x):]) & 0x0FFF
	hu := float64(stored) - 1024
	out, err := Render(d, inst.Data, 1, MediaPNG, RenderParams{Window: &Window{Center: hu, Width: 100, Function: "LINEAR_EXACT"}})
	if err != nil {
		t.Fatal(err)
	}
	if g := greys(t, decodePNG(t, out))[y*64+x]; g != 128 {
		t.Errorf("pixel at the window centre: %d, want 128", g)
	}
	out, err = Render(d, inst.Data, 1, MediaPNG, RenderParams{})
	if err != nil {
		t.Fatal(err)
	}
	g := greys(t, decodePNG(t, out))
	for i := 0; i < len(frame)/2; i++ {
		v := float64(binary.LittleEndian.Uint16(frame[2*i:])&0x0FFF) - 1024
		if v <= 40-0.5-199.5 && g[i] != 0 {
			t.Fatalf("pixel %d of %g HU below the window: %d", i, v, g[i])
		}
		if v > 40-0.5+199.5 && g[i] != 255 {
			t.Fatalf("pixel %d of %g HU above the window: %d", i, v, g[i])
		}
	}
}

// Rendered greys agree with DCMTK's dcm2pnm (within rounding) for a
// signed MR with its window, a MONOCHROME1 CR with rescale and window,
// and a window given by hand.
func TestRenderAgreesWithDCMTK(t *testing.T) {
	if _, err := exec.LookPath("dcm2pnm"); err != nil {
		t.Skip("dcm2pnm (DCMTK) is not installed")
	}
	for _, c := range []struct {
		file string
		args []string
		win  *Window
	}{
		{"mr_explicit-le__MR_small.dcm", []string{"+Wi", "1"}, nil},
		{"mr_explicit-be__MR_small_bigendian.dcm", []string{"+Ww", "300", "900"}, &Window{Center: 300, Width: 900}},
		{"cr_small__6154.dcm", []string{"+Wi", "1"}, nil},
		{"ct_explicit-le_private-tags__CT_small.dcm", []string{"+Ww", "40", "400"}, &Window{Center: 40, Width: 400}},
	} {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join(corpusDir, c.file)
			outPath := filepath.Join(t.TempDir(), "ref.png")
			args := append(append([]string{"--write-png"}, c.args...), path, outPath)
			if out, err := exec.Command("dcm2pnm", args...).CombinedOutput(); err != nil {
				t.Fatalf("dcm2pnm: %v\n%s", err, out)
			}
			refB, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatal(err)
			}
			ref := greys(t, toGray(decodePNG(t, refB)))
			d, data := describeFile(t, path)
			out, err := Render(d, data, 1, MediaPNG, RenderParams{Window: c.win})
			if err != nil {
				t.Fatal(err)
			}
			got := greys(t, decodePNG(t, out))
			if len(got) != len(ref) {
				t.Fatalf("%d pixels, dcm2pnm %d", len(got), len(ref))
			}
			for i := range got {
				if diff := int(got[i]) - int(ref[i]); diff < -1 || diff > 1 {
					t.Fatalf("pixel %d: %d, dcm2pnm %d", i, got[i], ref[i])
				}
			}
		})
	}
}

func toGray(img image.Image) image.Image {
	if g, ok := img.(*image.Gray); ok {
		return g
	}
	g := image.NewGray(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			g.Set(x, y, img.At(x, y))
		}
	}
	return g
}

// Render never panics on what Describe makes of mutated corpus images.
func TestRenderMutations(t *testing.T) {
	seed := uint64(0x2545F4914F6CDD1D)
	next := func(n int) int {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.dcm"))
	for _, path := range files {
		b, _ := os.ReadFile(path)
		inst, err := dicomio.Parse(b, dicomio.Limits{})
		if err != nil || len(inst.Data) > 100<<10 {
			continue
		}
		for i := 0; i < 30; i++ {
			m := bytes.Clone(inst.Data)
			for k := 0; k < 1+next(3); k++ {
				m[132+next(len(m)-132)] = byte(next(256))
			}
			d, err := dicomio.Describe(m, 64)
			if err != nil || d.Pixel == nil {
				continue
			}
			for _, mt := range []string{MediaPNG, MediaJPEG} {
				Render(d, m, 1, mt, RenderParams{ViewportW: 1 + next(64)})
			}
		}
	}
}

// Encapsulated Uncompressed holds native frames, one a fragment.
func TestRenderEncapsulatedUncompressed(t *testing.T) {
	b := []byte{0, 128, 255}
	d := withTS(native("MONOCHROME2", 3, 1, 1, 8, 8, 0, b), "1.2.840.10008.1.2.1.98")
	out, err := Render(d, b, 1, MediaPNG, RenderParams{Window: &Window{Center: 127.5, Width: 255, Function: "LINEAR_EXACT"}})
	if err != nil {
		t.Fatal(err)
	}
	if g := greys(t, decodePNG(t, out)); !bytes.Equal(g, b) {
		t.Errorf("greys %v, want %v", g, b)
	}
}

// The JSON of every described corpus instance is valid JSON, its Pixel
// Data a BulkDataURI of the value's length.
func TestJSONOfDescriptions(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*.dcm"))
	for _, path := range files {
		d, _ := describeFile(t, path)
		if d == nil {
			continue
		}
		sizes := map[uint32]int{}
		out, err := JSON(d.Dataset, func(tag uint32, size int) string {
			sizes[tag] = size
			return "https://node/bulk/" + strings.ToUpper(strconv.FormatUint(uint64(tag), 16))
		})
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(path), err)
		}
		if !json.Valid(out) {
			t.Fatalf("%s: invalid JSON", filepath.Base(path))
		}
		if d.Pixel != nil {
			if sizes[0x7FE00010] != int(d.Bulk[0x7FE00010].Len) || !bytes.Contains(out, []byte(`"7FE00010":{"vr":"O`)) ||
				!bytes.Contains(out, []byte(`"BulkDataURI":"https://node/bulk/7FE00010"`)) {
				t.Errorf("%s: pixel data bulk size %d, JSON without its BulkDataURI", filepath.Base(path), sizes[0x7FE00010])
			}
		}
	}
}

// A monochrome JPEG baseline frame goes through rescale, window and
// MONOCHROME1 inversion like a native one; a plain MONOCHROME2 one is
// passed through.
func TestRenderJPEGMonochrome(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range g.Pix {
		g.Pix[i] = 100
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, g, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	d := withTS(native("MONOCHROME2", 8, 8, 1, 8, 8, 0, b), jpegBaseline)
	d.Pixel.Encapsulated = true
	if out, err := Render(d, b, 1, MediaJPEG, RenderParams{}); err != nil || !bytes.Equal(out, b) {
		t.Fatalf("plain MONOCHROME2 JPEG not passed through (%v)", err)
	}
	win := &Window{Center: 100, Width: 200, Function: "LINEAR_EXACT"}
	for photometric, want := range map[string]uint8{"MONOCHROME2": 128, "MONOCHROME1": 127} {
		d.Pixel.Photometric = photometric
		out, err := Render(d, b, 1, MediaPNG, RenderParams{Window: win})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range greys(t, decodePNG(t, out)) {
			if v < want-1 || v > want+1 {
				t.Fatalf("%s: grey %d, want %d", photometric, v, want)
			}
		}
	}
	d.Pixel.Photometric = "MONOCHROME1"
	if out, err := Render(d, b, 1, MediaJPEG, RenderParams{}); err != nil || bytes.Equal(out, b) {
		t.Fatalf("MONOCHROME1 JPEG passed through uninverted (%v)", err)
	}
}

// RenderParams.Window takes a pointer to the anonymous struct as well.
var _ = RenderParams{Window: &struct {
	Center, Width float64
	Function      string
}{Center: 1, Width: 2}}
