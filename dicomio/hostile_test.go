package dicomio_test

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/dicomio"
)

// allocDuring returns the bytes allocated while f runs.
func allocDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func wantCode(t *testing.T, err error, code dicomio.ErrorCode) *dicomio.Error {
	t.Helper()
	var e *dicomio.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *dicomio.Error with code %v, got %v", code, err)
	}
	if e.Code != code {
		t.Fatalf("code %v, want %v: %v", e.Code, code, err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("error leaks patient data: %v", err)
	}
	return e
}

func TestHugeDeclaredLength(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		tag  uint32
	}{
		{"explicit LE element", part10(dicomio.ExplicitVRLittleEndian,
			newDS(true, false).required().header(0x00420011, "OB", 0xFFFFFFF0).raw(1, 2, 3, 4).b), 0x00420011},
		{"explicit BE element", part10(dicomio.ExplicitVRBigEndian,
			newDS(true, true).required().header(0x00420011, "OB", 0xFFFFFFF0).raw(1, 2, 3, 4).b), 0x00420011},
		{"implicit element", part10(dicomio.ImplicitVRLittleEndian,
			newDS(false, false).required().header(0x00420011, "", 0xFFFFFF00).raw(1, 2, 3, 4).b), 0x00420011},
		{"bare implicit dataset", newDS(false, false).required().header(0x00420011, "", 0x7FFFFFFF).raw(1, 2).b, 0x00420011},
		{"item", part10(dicomio.ExplicitVRLittleEndian,
			newDS(true, false).required().undefSQ(0x0040A730).item(0xFFFFFF00).raw(1, 2, 3, 4).b), 0xFFFEE000},
		{"defined-length sequence", part10(dicomio.ExplicitVRLittleEndian,
			newDS(true, false).required().header(0x0040A730, "SQ", 0xFFFFFF00).item(8).raw(1, 2, 3, 4).b), 0x0040A730},
		{"pixel fragment", part10("1.2.840.10008.1.2.4.50",
			newDS(true, false).required().undefPixels("OB").item(0).item(0xFFFFFFF0).raw(0xFF, 0xD8).b), 0xFFFEE000},
		{"meta element", part10(dicomio.ExplicitVRLittleEndian, nil)[:132+12+80], 0},
	}
	// Make the last case's meta element lie: rewrite the group's first
	// long-form element (0002,0001 OB) length.
	meta := cases[len(cases)-1].data
	copy(meta[132+12+8:], []byte{0xF0, 0xFF, 0xFF, 0x7F})
	cases[len(cases)-1].tag = 0x00020001

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := allocDuring(func() { _, err = dicomio.Parse(c.data, dicomio.Limits{}) })
			e := wantCode(t, err, dicomio.ErrCodeTruncated)
			if e.Tag != c.tag {
				t.Errorf("tag %08X, want %08X", e.Tag, c.tag)
			}
			if !strings.Contains(e.Msg, "declares") || e.Offset <= 0 {
				t.Errorf("imprecise error: %v (offset %d)", err, e.Offset)
			}
			if n > 1<<20 {
				t.Errorf("parsing %d bytes allocated %d bytes", len(c.data), n)
			}
		})
	}
}

// deepSQ nests n undefined-length sequences (each with one
// undefined-length item) and closes them all properly.
func deepSQ(explicit bool, n int) []byte {
	d := newDS(explicit, false).required()
	for i := 0; i < n; i++ {
		d.undefSQ(0x0040A730).item(0xFFFFFFFF)
	}
	d.str(0x0040A010, "CS", "CONTAINS")
	for i := 0; i < n; i++ {
		d.itemDelim().seqDelim()
	}
	return d.b
}

func TestDeepNesting(t *testing.T) {
	const depth = 10_000
	cases := []struct {
		name string
		data []byte
	}{
		{"explicit part10", part10(dicomio.ExplicitVRLittleEndian, deepSQ(true, depth))},
		{"implicit part10", part10(dicomio.ImplicitVRLittleEndian, deepSQ(false, depth))},
		{"bare implicit", deepSQ(false, depth)},
		{"bare explicit", deepSQ(true, depth)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := allocDuring(func() { _, err = dicomio.Parse(c.data, dicomio.Limits{}) })
			e := wantCode(t, err, dicomio.ErrCodeTooDeep)
			if e.Tag != 0x0040A730 || !strings.Contains(e.Msg, "16 levels") {
				t.Errorf("imprecise error: %v", err)
			}
			if n > 4*uint64(len(c.data))+(1<<20) {
				t.Errorf("parsing %d bytes allocated %d bytes", len(c.data), n)
			}
		})
	}
	t.Run("within a raised limit", func(t *testing.T) {
		// The walker keeps its own stack: 10,000 levels cost heap, not
		// goroutine stack.
		inst, err := dicomio.Parse(cases[0].data, dicomio.Limits{MaxDepth: depth})
		if err != nil {
			t.Fatalf("Parse with MaxDepth %d: %v", depth, err)
		}
		if inst.SOPInstanceUID != testSOP {
			t.Fatalf("SOP Instance UID %q", inst.SOPInstanceUID)
		}
		_, err = dicomio.Parse(cases[0].data, dicomio.Limits{MaxDepth: depth - 1})
		wantCode(t, err, dicomio.ErrCodeTooDeep)
	})
	t.Run("defined-length sequences", func(t *testing.T) {
		// Nest defined-length SQ/items from the inside out.
		inner := newDS(true, false).str(0x0040A010, "CS", "CONTAINS").b
		for i := 0; i < 40; i++ {
			it := newDS(true, false).item(uint32(len(inner))).raw(inner...).b
			inner = newDS(true, false).header(0x0040A730, "SQ", uint32(len(it))).raw(it...).b
		}
		data := part10(dicomio.ExplicitVRLittleEndian, append(newDS(true, false).required().b, inner...))
		_, err := dicomio.Parse(data, dicomio.Limits{})
		wantCode(t, err, dicomio.ErrCodeTooDeep)
		if _, err := dicomio.Parse(data, dicomio.Limits{MaxDepth: 40}); err != nil {
			t.Fatalf("Parse with MaxDepth 40: %v", err)
		}
	})
}

func deflate(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeflated(t *testing.T) {
	dataset := newDS(true, false).required().bytes(0x7FE00010, "OW", make([]byte, 4096)).b
	good := part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, dataset))

	t.Run("valid", func(t *testing.T) {
		inst, err := dicomio.Parse(good, dicomio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if inst.SOPInstanceUID != testSOP || inst.PatientName != secretName || !bytes.Equal(inst.Data[128:], good[128:]) {
			t.Fatalf("bad instance %+v", inst)
		}
	})
	t.Run("zlib header", func(t *testing.T) {
		var buf bytes.Buffer
		zw := zlib.NewWriter(&buf)
		zw.Write(dataset)
		zw.Close()
		inst, err := dicomio.Parse(part10(dicomio.DeflatedExplicitVRLittleEndian, buf.Bytes()), dicomio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !containsAny(inst.Warnings, "zlib header") {
			t.Fatalf("no warning: %q", inst.Warnings)
		}
	})
	t.Run("truncated stream", func(t *testing.T) {
		_, err := dicomio.Parse(good[:len(good)-10], dicomio.Limits{})
		wantCode(t, err, dicomio.ErrCodeTruncated)
	})
	t.Run("garbage stream", func(t *testing.T) {
		bad := append([]byte(nil), good...)
		for i := len(bad) - 40; i < len(bad); i++ {
			bad[i] ^= 0x5A
		}
		_, err := dicomio.Parse(bad, dicomio.Limits{})
		if err == nil {
			t.Fatal("corrupt deflate stream accepted")
		}
	})
	t.Run("structural error inside", func(t *testing.T) {
		cut := newDS(true, false).required().header(0x7FE00010, "OW", 8192).raw(1, 2).b
		_, err := dicomio.Parse(part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, cut)), dicomio.Limits{})
		e := wantCode(t, err, dicomio.ErrCodeTruncated)
		if !strings.Contains(e.Msg, "inflated dataset") {
			t.Fatalf("message does not say where: %v", err)
		}
	})
	t.Run("bomb", func(t *testing.T) {
		const limit = 1 << 20
		bomb := part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, make([]byte, 8<<20)))
		if len(bomb) > 1<<20 {
			t.Fatalf("bomb is %d bytes", len(bomb))
		}
		var err error
		start := time.Now()
		n := allocDuring(func() { _, err = dicomio.Parse(bomb, dicomio.Limits{MaxInflated: limit}) })
		e := wantCode(t, err, dicomio.ErrCodeTooLarge)
		if !strings.Contains(e.Msg, "MaxInflated") {
			t.Errorf("message does not name the limit: %v", err)
		}
		if n > 4*limit+uint64(len(bomb)) {
			t.Errorf("bomb allocated %d bytes with MaxInflated %d", n, limit)
		}
		t.Logf("%d-byte bomb refused in %v after allocating %d bytes", len(bomb), time.Since(start), n)
	})
}

func TestTooManyElements(t *testing.T) {
	d := newDS(true, false).required()
	for i := 0; i < 1000; i++ {
		d.str(0x00290010+uint32(i%200)*0, "LO", "x") // a private creator, repeated
	}
	_, err := dicomio.Parse(part10(dicomio.ExplicitVRLittleEndian, d.b), dicomio.Limits{MaxElements: 100})
	e := wantCode(t, err, dicomio.ErrCodeTooLarge)
	if !strings.Contains(e.Msg, "MaxElements") {
		t.Fatalf("message does not name the limit: %v", err)
	}
	if _, err := dicomio.Parse(part10(dicomio.ExplicitVRLittleEndian, d.b), dicomio.Limits{}); err != nil {
		t.Fatalf("default limits: %v", err)
	}
}

func TestMaxSize(t *testing.T) {
	data := readCorpus(t, "mr_explicit-le__MR_small.dcm")
	lim := dicomio.Limits{MaxSize: int64(len(data)) - 1}
	_, err := dicomio.Parse(data, lim)
	wantCode(t, err, dicomio.ErrCodeTooLarge)

	cr := &countingReader{r: io.MultiReader(bytes.NewReader(data), zeros{})}
	_, err = dicomio.Read(cr, dicomio.Limits{MaxSize: 1 << 20})
	wantCode(t, err, dicomio.ErrCodeTooLarge)
	if cr.n > 1<<20+1 {
		t.Fatalf("Read consumed %d bytes with MaxSize %d", cr.n, 1<<20)
	}
	if _, err := dicomio.Read(bytes.NewReader(data), dicomio.Limits{MaxSize: int64(len(data))}); err != nil {
		t.Fatalf("exactly MaxSize: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	data := readCorpus(t, "mr_explicit-le__MR_small.dcm")
	_, err := dicomio.Read(io.MultiReader(bytes.NewReader(data[:100]), errReader{boom}), dicomio.Limits{})
	e := wantCode(t, err, dicomio.ErrCodeIO)
	if !errors.Is(err, boom) || e.Offset != 100 {
		t.Fatalf("error %v does not wrap the reader's error at offset 100 (offset %d)", err, e.Offset)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestTruncateEverywhere cuts valid instances at every byte offset.
func TestTruncateEverywhere(t *testing.T) {
	inputs := map[string][]byte{
		"secret explicit": part10(dicomio.ExplicitVRLittleEndian,
			newDS(true, false).required().undefSQ(0x0040A730).item(0xFFFFFFFF).str(0x0040A010, "CS", "CONTAINS").itemDelim().seqDelim().
				bytes(0x7FE00010, "OW", make([]byte, 64)).b),
		"secret implicit bare": newDS(false, false).required().undefSQ(0x0040A730).item(0xFFFFFFFF).str(0x0040A010, "", "CONTAINS").
			itemDelim().seqDelim().bytes(0x7FE00010, "", make([]byte, 64)).b,
	}
	for _, name := range []string{
		"mr_explicit-le__MR_small.dcm",
		"mr_implicit-le__MR_small_implicit.dcm",
		"mr_explicit-be__MR_small_bigendian.dcm",
		"rtstruct_raw-dataset_implicit_undef-len-sq__rtstruct.dcm",
		"sr_nested-tree__test-SR.dcm",
		"nm_jpeg2000-lossy__JPEG2000.dcm",
		"ot_deflated-explicit-le__image_dfl.dcm",
		"private-sq-vr-un-undef-len__UN_sequence.dcm",
	} {
		inputs[name] = readCorpus(t, name)
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			full, ferr := dicomio.Parse(data, dicomio.Limits{})
			var ok, failed int
			for cut := 0; cut < len(data); cut++ {
				if strings.Contains(name, "deflated") && cut > 600 && cut < len(data)-300 && cut%17 != 0 {
					// Each cut re-inflates the whole stream; inside the
					// stream a sample of offsets is as good as all of them.
					continue
				}
				inst, err := dicomio.Parse(data[:cut], dicomio.Limits{})
				if err != nil {
					var e *dicomio.Error
					if !errors.As(err, &e) || e.Code == dicomio.ErrCodeInternal || e.Msg == "" {
						t.Fatalf("cut at %d: %v", cut, err)
					}
					if strings.Contains(err.Error(), "SECRET") {
						t.Fatalf("cut at %d: error leaks patient data: %v", cut, err)
					}
					failed++
					continue
				}
				// A cut on an element boundary may leave a valid instance,
				// but never a storable one without its required attributes.
				if serr := inst.Storable(); serr == nil && (inst.SOPClassUID == "" || inst.SOPInstanceUID == "" || inst.StudyInstanceUID == "" || inst.SeriesInstanceUID == "") {
					t.Fatalf("cut at %d: storable without required attributes", cut)
				} else if serr != nil {
					if dicomio.CodeOf(serr) != dicomio.ErrCodeMissingAttribute {
						t.Fatalf("cut at %d: Storable = %v", cut, serr)
					}
					failed++ // parsed, but refused for storage
					continue
				}
				if ferr == nil && inst.SOPInstanceUID != full.SOPInstanceUID {
					t.Fatalf("cut at %d: SOP Instance UID changed", cut)
				}
				ok++
			}
			t.Logf("%d cuts rejected, %d accepted at element boundaries", failed, ok)
		})
	}
}

func TestUnknownTransferSyntax(t *testing.T) {
	dataset := newDS(true, false).required().b
	for _, ts := range []string{"1.2.3.4.5.6", "1.2.840.10008.1.2.4.9999", "", "1.2.840.10008.1.2.1\\1.2"} {
		_, err := dicomio.Parse(part10(ts, dataset), dicomio.Limits{})
		code := dicomio.ErrCodeUnsupported
		if ts == "" {
			code = dicomio.ErrCodeMalformed
		}
		e := wantCode(t, err, code)
		if e.Tag != 0x00020010 {
			t.Errorf("%q: tag %08X", ts, e.Tag)
		}
	}
	// Every standard encapsulated syntax is accepted.
	for _, ts := range []string{
		"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
		"1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.100",
		"1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.107", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
		"1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.98",
	} {
		data := part10(ts, newDS(true, false).required().undefPixels("OB").item(0).item(4).raw(1, 2, 3, 4).seqDelim().b)
		inst, err := dicomio.Parse(data, dicomio.Limits{})
		if err != nil {
			t.Errorf("%s: %v", ts, err)
			continue
		}
		if inst.TransferSyntaxUID != ts {
			t.Errorf("%s: TransferSyntaxUID %q", ts, inst.TransferSyntaxUID)
		}
	}
}

func TestStructuralErrors(t *testing.T) {
	le := func() *ds { return newDS(true, false).required() }
	cases := []struct {
		name string
		data []byte
		code dicomio.ErrorCode
		msg  string
	}{
		{"item outside sequence", part10(dicomio.ExplicitVRLittleEndian, le().item(0).b), dicomio.ErrCodeMalformed, "unexpected (FFFE,E000)"},
		{"element in sequence", part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).str(0x00080018, "UI", "1.2").b),
			dicomio.ErrCodeMalformed, "expected an item"},
		{"missing sequence delimiter", part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).item(0).b),
			dicomio.ErrCodeTruncated, "sequence (0040,A730) starting at offset"},
		{"missing item delimiter", part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).item(0xFFFFFFFF).str(0x0040A010, "CS", "X").b),
			dicomio.ErrCodeTruncated, "item starting at offset"},
		{"item longer than its sequence", part10(dicomio.ExplicitVRLittleEndian, le().header(0x0040A730, "SQ", 16).item(20).raw(make([]byte, 20)...).b),
			dicomio.ErrCodeMalformed, "enclosing sequence (0040,A730)"},
		{"element longer than its item", part10(dicomio.ExplicitVRLittleEndian,
			le().header(0x0040A730, "SQ", 24).item(16).header(0x0040A010, "CS", 12).raw(make([]byte, 12)...).b),
			dicomio.ErrCodeMalformed, "enclosing item"},
		{"undefined-length fragment", part10("1.2.840.10008.1.2.4.50", le().undefPixels("OB").item(0).item(0xFFFFFFFF).b),
			dicomio.ErrCodeMalformed, "fragment at offset"},
		{"pixel data without delimiter", part10("1.2.840.10008.1.2.4.50", le().undefPixels("OB").item(0).item(2).raw(1, 2).b),
			dicomio.ErrCodeTruncated, "pixel data (7FE0,0010)"},
		{"undefined-length string", part10(dicomio.ExplicitVRLittleEndian, le().header(0x00081030, "LO", 0xFFFF).b),
			dicomio.ErrCodeTruncated, "declares 65535 bytes"},
		{"undefined-length UT", part10(dicomio.ExplicitVRLittleEndian, le().header(0x00204000, "UT", 0xFFFFFFFF).b),
			dicomio.ErrCodeMalformed, "has VR UT and undefined length"},
		{"unknown VR", part10(dicomio.ExplicitVRLittleEndian, le().header(0x00204000, "QQ", 2).raw(0, 0).b),
			dicomio.ErrCodeMalformed, `unknown VR "QQ"`},
		{"short trailing bytes", part10(dicomio.ExplicitVRLittleEndian, le().raw(1, 2, 3).b),
			dicomio.ErrCodeTruncated, "needs 8 bytes but 3 remain"},
		{"empty undefined-length sequence", part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).seqDelim().b),
			0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := dicomio.Parse(c.data, dicomio.Limits{})
			if c.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := wantCode(t, err, c.code)
			if !strings.Contains(e.Msg, c.msg) {
				t.Fatalf("message %q lacks %q", e.Msg, c.msg)
			}
		})
	}
}

func TestLenientAcceptances(t *testing.T) {
	le := func() *ds { return newDS(true, false).required() }
	cases := []struct {
		name string
		data []byte
		warn string
	}{
		{"zero padding", part10(dicomio.ExplicitVRLittleEndian, le().raw(make([]byte, 13)...).b), "zero padding"},
		{"odd length", part10(dicomio.ExplicitVRLittleEndian, le().bytes(0x00291010, "OB", []byte{1, 2, 3}).b), "odd value length"},
		{"out of order", part10(dicomio.ExplicitVRLittleEndian, le().str(0x00080020, "DA", "20240101").b), "ascending tag order"},
		{"duplicate", part10(dicomio.ExplicitVRLittleEndian, le().str(0x0020000E, "UI", "1.2.3").b), "duplicate element (0020,000E)"},
		{"CP-246", part10(dicomio.ExplicitVRBigEndian, func() []byte {
			d := newDS(true, true).required().header(0x00291010, "UN", 0xFFFFFFFF)
			in := newDS(false, false).item(0xFFFFFFFF).str(0x00080100, "", "T-1234").itemDelim().seqDelim()
			return d.raw(in.b...).b
		}()), "CP-246"},
		{"leading zero UID", part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).
			str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").str(0x00080018, "UI", "1.02.3").
			str(0x0020000D, "UI", "1.2.3").str(0x0020000E, "UI", "1.2.4").b), "leading zero"},
		{"encapsulated in native", part10(dicomio.ExplicitVRLittleEndian, le().undefPixels("OB").item(0).seqDelim().b),
			"encapsulated Pixel Data"},
		{"short native pixels", part10(dicomio.ExplicitVRLittleEndian, le().bytes(0x00280010, "US", []byte{4, 0}).
			bytes(0x00280011, "US", []byte{4, 0}).bytes(0x00280100, "US", []byte{16, 0}).bytes(0x7FE00010, "OW", make([]byte, 30)).b),
			"shorter than Rows"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inst, err := dicomio.Parse(c.data, dicomio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !containsAny(inst.Warnings, c.warn) {
				t.Fatalf("warnings %q lack %q", inst.Warnings, c.warn)
			}
			for _, w := range inst.Warnings {
				if strings.Contains(w, "SECRET") {
					t.Fatalf("warning leaks patient data: %q", w)
				}
			}
		})
	}
}

func TestRequiredAttributes(t *testing.T) {
	uids := map[uint32]string{
		0x00080016: "1.2.840.10008.5.1.4.1.1.7",
		0x00080018: "1.2.3.4",
		0x0020000D: "1.2.3.5",
		0x0020000E: "1.2.3.6",
	}
	build := func(over uint32, val string, drop bool) []byte {
		d := newDS(true, false)
		for _, tg := range []uint32{0x00080016, 0x00080018, 0x0020000D, 0x0020000E} {
			v := uids[tg]
			if tg == over {
				if drop {
					continue
				}
				v = val
			}
			d.str(tg, "UI", v)
		}
		return part10(dicomio.ExplicitVRLittleEndian, d.b)
	}
	for tg := range uids {
		t.Run(fmtTag(tg), func(t *testing.T) {
			for _, c := range []struct {
				val  string
				drop bool
				code dicomio.ErrorCode
			}{
				{drop: true, code: dicomio.ErrCodeMissingAttribute},
				{val: "", code: dicomio.ErrCodeMissingAttribute},
				{val: "  \x00", code: dicomio.ErrCodeMissingAttribute},
				{val: strings.Repeat("1.", 32) + "1", code: dicomio.ErrCodeMalformed},
				{val: "1.2.3 4", code: dicomio.ErrCodeMalformed},
				{val: "1.2\\1.3", code: dicomio.ErrCodeMalformed},
				{val: "1.2/../3", code: dicomio.ErrCodeMalformed},
				{val: "1.2.3\x01", code: dicomio.ErrCodeMalformed},
				// One UID rule (internal/uid): what could not be granted,
				// fetched or named in a URL is not stored either.
				{val: "..", code: dicomio.ErrCodeMalformed},
				{val: ".", code: dicomio.ErrCodeMalformed},
				{val: "1..2", code: dicomio.ErrCodeMalformed},
				{val: "1.2.", code: dicomio.ErrCodeMalformed},
				{val: "dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed"},
				{val: "1.2.3\x00\x00"},
				{val: "1.2.3.4 "},
			} {
				inst, err := dicomio.Parse(build(tg, c.val, c.drop), dicomio.Limits{})
				if err == nil {
					// A sound file without a required UID parses; the
					// archive refuses it through Storable.
					err = inst.Storable()
				}
				if c.code == 0 {
					if err != nil {
						t.Errorf("%q: %v", c.val, err)
					}
					continue
				}
				e := wantCode(t, err, c.code)
				if e.Tag != tg {
					t.Errorf("%q: tag %08X, want %08X", c.val, e.Tag, tg)
				}
			}
		})
	}
}

func fmtTag(t uint32) string {
	const hex = "0123456789ABCDEF"
	b := []byte("(0000,0000)")
	for i := 0; i < 4; i++ {
		b[4-i] = hex[(t>>(16+4*i))&0xF]
		b[9-i] = hex[(t>>(4*i))&0xF]
	}
	return string(b)
}

// TestZeroRunNotQuadratic: a long run of zero bytes (each 8 of them an
// empty implicit (0000,0000) element) that is not trailing padding must
// be walked once, not rescanned at every element.
func TestZeroRunNotQuadratic(t *testing.T) {
	ds := append(newDS(false, false).required().b, make([]byte, 4<<20)...)
	ds = append(ds, 1, 2, 3)
	data := part10(dicomio.ImplicitVRLittleEndian, ds)
	start := time.Now()
	_, err := dicomio.Parse(data, dicomio.Limits{})
	wantCode(t, err, dicomio.ErrCodeTruncated)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	// The same run at the very end is padding.
	inst, err := dicomio.Parse(data[:len(data)-3], dicomio.Limits{})
	if err != nil || !containsAny(inst.Warnings, "zero padding") {
		t.Fatalf("trailing zeros: %v", err)
	}
}
