package dicomio_test

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/pacsnet/pacsnet/dicomio"
)

// minBuffer is the smallest window ParseStream uses (smaller Buffers are
// raised to it): the corpus files slide through it many times.
const minBuffer = 4 << 10

// streamInput is one input of the equivalence table.
type streamInput struct {
	name string
	data []byte
	lim  dicomio.Limits
}

// streamInputs collects the corpus, variants of it and the inputs of the
// hostile and normalization tests.
func streamInputs(t testing.TB) []streamInput {
	t.Helper()
	var in []streamInput
	add := func(name string, data []byte, lim dicomio.Limits) {
		in = append(in, streamInput{name, data, lim})
	}
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.dcm"))
	if err != nil || len(files) < 30 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		add(name, data, dicomio.Limits{})
		if len(data) > 132 && string(data[128:132]) == "DICM" {
			add(name+"/no preamble", data[128:], dicomio.Limits{})
			add(name+"/no preamble nor DICM", data[132:], dicomio.Limits{})
			if gl := binary.LittleEndian.Uint32(data[140:]); binary.LittleEndian.Uint16(data[132:]) == 2 &&
				binary.LittleEndian.Uint16(data[134:]) == 0 && 144+int(gl) <= len(data) {
				add(name+"/bare dataset", data[144+int(gl):], dicomio.Limits{})
			}
		}
		add(name+"/MaxSize one short", data, dicomio.Limits{MaxSize: int64(len(data)) - 1})
		add(name+"/MaxElements 50", data, dicomio.Limits{MaxElements: 50})
		add(name+"/MaxDepth 1", data, dicomio.Limits{MaxDepth: 1})
	}
	for _, name := range []string{"mr_explicit-le__MR_small.dcm", "sr_nested-tree__test-SR.dcm", "ct_explicit-le_private-tags__CT_small.dcm"} {
		ds := datasetOf(t, name)
		add(name+"/deflated", part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, ds)), dicomio.Limits{})
		add(name+"/deflated, MaxInflated short", part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, ds)),
			dicomio.Limits{MaxInflated: int64(len(ds)) - 1})
		add(name+"/deflated with trailing bytes", append(part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, ds)), 1, 2, 3), dicomio.Limits{})
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(ds)
		zw.Close()
		add(name+"/zlib", part10(dicomio.DeflatedExplicitVRLittleEndian, z.Bytes()), dicomio.Limits{})
		add(name+"/zlib truncated", part10(dicomio.DeflatedExplicitVRLittleEndian, z.Bytes()[:z.Len()-2]), dicomio.Limits{})
	}
	for _, c := range hostileInputs(t) {
		add("hostile/"+c.name, c.data, c.lim)
	}
	return in
}

// hostileInputs rebuilds the inputs of hostile_test.go and
// normalize_test.go.
func hostileInputs(t testing.TB) []streamInput {
	le := func() *ds { return newDS(true, false).required() }
	var in []streamInput
	add := func(name string, data []byte, lim dicomio.Limits) {
		in = append(in, streamInput{name, data, lim})
	}
	def := dicomio.Limits{}

	add("huge explicit LE", part10(dicomio.ExplicitVRLittleEndian, le().header(0x00420011, "OB", 0xFFFFFFF0).raw(1, 2, 3, 4).b), def)
	add("huge explicit BE", part10(dicomio.ExplicitVRBigEndian, newDS(true, true).required().header(0x00420011, "OB", 0xFFFFFFF0).raw(1, 2, 3, 4).b), def)
	add("huge implicit", part10(dicomio.ImplicitVRLittleEndian, newDS(false, false).required().header(0x00420011, "", 0xFFFFFF00).raw(1, 2, 3, 4).b), def)
	add("huge bare implicit", newDS(false, false).required().header(0x00420011, "", 0x7FFFFFFF).raw(1, 2).b, def)
	add("huge item", part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).item(0xFFFFFF00).raw(1, 2, 3, 4).b), def)
	add("huge defined sequence", part10(dicomio.ExplicitVRLittleEndian, le().header(0x0040A730, "SQ", 0xFFFFFF00).item(8).raw(1, 2, 3, 4).b), def)
	add("huge fragment", part10("1.2.840.10008.1.2.4.50", le().undefPixels("OB").item(0).item(0xFFFFFFF0).raw(0xFF, 0xD8).b), def)
	meta := part10(dicomio.ExplicitVRLittleEndian, nil)[:132+12+80]
	copy(meta[132+12+8:], []byte{0xF0, 0xFF, 0xFF, 0x7F})
	add("huge meta element", meta, def)

	for _, n := range []int{20, 10_000} {
		for _, lim := range []dicomio.Limits{def, {MaxDepth: n}} {
			sfx := fmt.Sprintf(" %d MaxDepth %d", n, lim.MaxDepth)
			add("deep explicit"+sfx, part10(dicomio.ExplicitVRLittleEndian, deepSQ(true, n)), lim)
			add("deep implicit"+sfx, part10(dicomio.ImplicitVRLittleEndian, deepSQ(false, n)), lim)
			add("deep bare implicit"+sfx, deepSQ(false, n), lim)
			add("deep bare explicit"+sfx, deepSQ(true, n), lim)
		}
	}
	inner := newDS(true, false).str(0x0040A010, "CS", "CONTAINS").b
	for i := 0; i < 40; i++ {
		it := newDS(true, false).item(uint32(len(inner))).raw(inner...).b
		inner = newDS(true, false).header(0x0040A730, "SQ", uint32(len(it))).raw(it...).b
	}
	nested := part10(dicomio.ExplicitVRLittleEndian, append(le().b, inner...))
	add("defined-length nesting", nested, def)
	add("defined-length nesting MaxDepth 40", nested, dicomio.Limits{MaxDepth: 40})
	add("defined-length nesting bare", append(le().b, inner...), dicomio.Limits{MaxDepth: 40})

	dataset := le().bytes(0x7FE00010, "OW", make([]byte, 4096)).b
	good := part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, dataset))
	add("deflated", good, def)
	add("deflated truncated", good[:len(good)-10], def)
	bad := bytes.Clone(good)
	for i := len(bad) - 40; i < len(bad); i++ {
		bad[i] ^= 0x5A
	}
	add("deflated garbage", bad, def)
	add("deflated structural error", part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, le().header(0x7FE00010, "OW", 8192).raw(1, 2).b)), def)
	add("deflate bomb", part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, make([]byte, 8<<20))), dicomio.Limits{MaxInflated: 1 << 20})
	add("deflated zeros", part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, append(le().b, make([]byte, 3<<20)...))), def)
	add("deflated zeros then garbage", part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, append(append(le().b, make([]byte, 3<<20)...), 1, 2, 3))), def)
	add("deflated empty", part10(dicomio.DeflatedExplicitVRLittleEndian, nil), def)
	add("deflated one byte", part10(dicomio.DeflatedExplicitVRLittleEndian, []byte{0x78}), def)

	many := le()
	for i := 0; i < 1000; i++ {
		many.str(0x00290010, "LO", "x")
	}
	add("too many elements", part10(dicomio.ExplicitVRLittleEndian, many.b), dicomio.Limits{MaxElements: 100})
	add("many elements", part10(dicomio.ExplicitVRLittleEndian, many.b), def)

	for _, ts := range []string{"1.2.3.4.5.6", "", "1.2.840.10008.1.2.1\\1.2", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5",
		strings.Repeat("1.", 700) + "1", strings.Repeat(" ", 1100) + "1.2.840.10008.1.2.1" + strings.Repeat("\x00", 700)} {
		add("transfer syntax "+ts[:min(len(ts), 30)], part10(ts, le().undefPixels("OB").item(0).item(4).raw(1, 2, 3, 4).seqDelim().b), def)
	}

	structural := map[string][]byte{
		"item outside sequence":        part10(dicomio.ExplicitVRLittleEndian, le().item(0).b),
		"element in sequence":          part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).str(0x00080018, "UI", "1.2").b),
		"missing sequence delimiter":   part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).item(0).b),
		"missing item delimiter":       part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).item(0xFFFFFFFF).str(0x0040A010, "CS", "X").b),
		"item longer than sequence":    part10(dicomio.ExplicitVRLittleEndian, le().header(0x0040A730, "SQ", 16).item(20).raw(make([]byte, 20)...).b),
		"item longer than sequence 2":  part10(dicomio.ExplicitVRLittleEndian, le().header(0x0040A730, "SQ", 16).item(20).raw(make([]byte, 8)...).b),
		"element longer than its item": part10(dicomio.ExplicitVRLittleEndian, le().header(0x0040A730, "SQ", 24).item(16).header(0x0040A010, "CS", 12).raw(make([]byte, 12)...).b),
		"undefined-length fragment":    part10("1.2.840.10008.1.2.4.50", le().undefPixels("OB").item(0).item(0xFFFFFFFF).b),
		"pixel data without delimiter": part10("1.2.840.10008.1.2.4.50", le().undefPixels("OB").item(0).item(2).raw(1, 2).b),
		"undefined-length string":      part10(dicomio.ExplicitVRLittleEndian, le().header(0x00081030, "LO", 0xFFFF).b),
		"undefined-length UT":          part10(dicomio.ExplicitVRLittleEndian, le().header(0x00204000, "UT", 0xFFFFFFFF).b),
		"unknown VR":                   part10(dicomio.ExplicitVRLittleEndian, le().header(0x00204000, "QQ", 2).raw(0, 0).b),
		"short trailing bytes":         part10(dicomio.ExplicitVRLittleEndian, le().raw(1, 2, 3).b),
		"empty undefined sequence":     part10(dicomio.ExplicitVRLittleEndian, le().undefSQ(0x0040A730).seqDelim().b),
		"sequence ends at the end":     part10(dicomio.ExplicitVRLittleEndian, le().header(0x0040A730, "SQ", 12).item(20).raw(make([]byte, 4)...).b),
		"zero padding":                 part10(dicomio.ExplicitVRLittleEndian, le().raw(make([]byte, 13)...).b),
		"zero padding 5":               part10(dicomio.ExplicitVRLittleEndian, le().raw(make([]byte, 5)...).b),
		"odd length":                   part10(dicomio.ExplicitVRLittleEndian, le().bytes(0x00291010, "OB", []byte{1, 2, 3}).b),
		"out of order":                 part10(dicomio.ExplicitVRLittleEndian, le().str(0x00080020, "DA", "20240101").b),
		"duplicate":                    part10(dicomio.ExplicitVRLittleEndian, le().str(0x0020000E, "UI", "1.2.3").b),
		"CP-246": part10(dicomio.ExplicitVRBigEndian, func() []byte {
			d := newDS(true, true).required().header(0x00291010, "UN", 0xFFFFFFFF)
			in := newDS(false, false).item(0xFFFFFFFF).str(0x00080100, "", "T-1234").itemDelim().seqDelim()
			return d.raw(in.b...).b
		}()),
		"leading zero UID": part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).
			str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").str(0x00080018, "UI", "1.02.3").
			str(0x0020000D, "UI", "1.2.3").str(0x0020000E, "UI", "1.2.4").b),
		"encapsulated in native": part10(dicomio.ExplicitVRLittleEndian, le().undefPixels("OB").item(0).seqDelim().b),
		"short native pixels": part10(dicomio.ExplicitVRLittleEndian, le().bytes(0x00280010, "US", []byte{4, 0}).
			bytes(0x00280011, "US", []byte{4, 0}).bytes(0x00280100, "US", []byte{16, 0}).bytes(0x7FE00010, "OW", make([]byte, 30)).b),
		"overlong value": part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").str(0x00080018, "UI", "1.2.3").
			header(0x00100010, "PN", 4000).raw(bytes.Repeat([]byte("A"), 4000)...).
			str(0x0020000D, "UI", "1.2.3.5").str(0x0020000E, "UI", "1.2.3.6").b),
		"overlong padded UID": part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").
			str(0x00080018, "UI", strings.Repeat(" ", 3000)+"1.2.3"+strings.Repeat("\x00", 3000)).
			str(0x0020000D, "UI", "1.2.3.5").str(0x0020000E, "UI", "1.2.3.6").b),
		"overlong blank UID": part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").
			str(0x00080018, "UI", strings.Repeat(" \x00", 3000)).str(0x0020000D, "UI", "1.2.3.5").str(0x0020000E, "UI", "1.2.3.6").b),
		"overlong bad UID": part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").
			str(0x00080018, "UI", strings.Repeat(" ", 3000)+"1.2/3"+strings.Repeat(" ", 3000)).str(0x0020000D, "UI", "1.2.3.5").str(0x0020000E, "UI", "1.2.3.6").b),
		"overlong long UID": part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").
			str(0x00080018, "UI", strings.Repeat("1.", 3000)).str(0x0020000D, "UI", "1.2.3.5").str(0x0020000E, "UI", "1.2.3.6").b),
		"overlong sequence attribute": part10(dicomio.ExplicitVRLittleEndian, newDS(true, false).str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7").
			header(0x00080018, "SQ", 2016).item(2008).bytes(0x00291010, "OB", make([]byte, 1996)).
			str(0x0020000D, "UI", "1.2.3.5").str(0x0020000E, "UI", "1.2.3.6").b),
	}
	for name, data := range structural {
		add(name, data, def)
	}

	uids := []uint32{0x00080016, 0x00080018, 0x0020000D, 0x0020000E}
	for _, tg := range uids {
		for _, val := range []string{"", "  \x00", strings.Repeat("1.", 32) + "1", "1.2.3 4", "1.2\\1.3", "1.2.3\x00\x00", "1.2.3.4 ", "-"} {
			d := newDS(true, false)
			for _, u := range uids {
				v := "1.2.3.4"
				if u == tg {
					v = val
				}
				d.str(u, "UI", v)
			}
			add(fmt.Sprintf("UID %08X %q", tg, val), part10(dicomio.ExplicitVRLittleEndian, d.b), def)
			add(fmt.Sprintf("bare UID %08X %q", tg, val), d.b, def)
		}
	}

	zr := append(newDS(false, false).required().b, make([]byte, 4<<20)...)
	add("zero run", part10(dicomio.ImplicitVRLittleEndian, append(zr, 1, 2, 3)), def)
	add("zero run trailing", part10(dicomio.ImplicitVRLittleEndian, zr), def)
	add("zero run explicit", part10(dicomio.ExplicitVRLittleEndian, append(append(le().b, make([]byte, 1<<20)...), 1)), def)
	add("zero run bare", append(bytes.Clone(zr), 9), def)
	add("zero run then elements", part10(dicomio.ImplicitVRLittleEndian,
		append(bytes.Clone(zr), newDS(false, false).str(0x00291010, "", "x").b...)), def)

	add("group 2 in bare implicit", newDS(false, false).str(0x00020010, "UI", "1.2.840.10008.1.2.4.50").required().b, def)
	add("group 2 in bare explicit", newDS(true, false).str(0x00020010, "UI", "1.2.840.10008.1.2.4.50").required().b, def)
	noGL := part10(dicomio.ExplicitVRLittleEndian, le().b)
	add("meta without group length", append(noGL[:132:132], noGL[144:]...), def)
	wrongGL := part10(dicomio.ExplicitVRLittleEndian, le().b)
	wrongGL[140] += 2
	add("meta with wrong group length", wrongGL, def)
	implicitMeta := part10(dicomio.ExplicitVRLittleEndian, le().b)
	copy(implicitMeta[136:], []byte{4, 0, 0, 0})
	add("implicit meta", implicitMeta, def)
	for _, c := range []struct{ file, declared string }{
		{"mr_explicit-le__MR_small.dcm", dicomio.ImplicitVRLittleEndian},
		{"mr_explicit-le__MR_small.dcm", dicomio.ExplicitVRBigEndian},
		{"mr_implicit-le__MR_small_implicit.dcm", dicomio.ExplicitVRLittleEndian},
		{"mr_explicit-be__MR_small_bigendian.dcm", dicomio.ExplicitVRLittleEndian},
	} {
		add("mismatch "+c.file+" as "+c.declared, part10(c.declared, datasetOf(t, c.file)), def)
	}
	add("empty", nil, def)
	add("one byte", []byte{0}, def)
	add("DICM only", []byte("DICM"), def)
	add("preamble only", make([]byte, 132), def)
	return in
}

// chunkReader returns reads of varying size, as a network would.
type chunkReader struct {
	r   io.Reader
	rnd *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if n := 1 + c.rnd.IntN(c.max); len(p) > n {
		p = p[:n]
	}
	return c.r.Read(p)
}

// readers are the shapes of input ParseStream is run over.
var readers = []struct {
	name string
	make func(data []byte, seed uint64) io.Reader
}{
	{"plain", func(b []byte, _ uint64) io.Reader { return io.MultiReader(bytes.NewReader(b)) }},
	{"chunks", func(b []byte, seed uint64) io.Reader {
		return &chunkReader{r: bytes.NewReader(b), rnd: rand.New(rand.NewPCG(seed, 1)), max: 5000}
	}},
	{"bytes", func(b []byte, _ uint64) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
	{"data+EOF", func(b []byte, _ uint64) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
}

// isOverflow reports an error of ParseStream's own: more than Buffer
// bytes would have had to be held. Parse, holding everything, may go on.
func isOverflow(err error) bool {
	var e *dicomio.Error
	return errors.As(err, &e) && e.Code == dicomio.ErrCodeTooLarge && strings.Contains(e.Msg, "(limit Buffer)")
}

// streamDiff runs ParseStream over r (which reads data) and returns how
// its result differs from Parse's, or "" when they agree. When Buffer is
// small, an overflow error is accepted in place of Parse's result.
func streamDiff(data []byte, r io.Reader, lim dicomio.Limits) string {
	want, werr := dicomio.Parse(data, lim)
	var out bytes.Buffer
	got, gerr := dicomio.ParseStream(r, &out, lim)
	if gerr != nil && lim.Buffer != 0 && isOverflow(gerr) {
		return ""
	}
	switch {
	case werr != nil && gerr != nil:
		var we, ge *dicomio.Error
		if !errors.As(gerr, &ge) {
			return fmt.Sprintf("ParseStream error %T is not *dicomio.Error", gerr)
		}
		errors.As(werr, &we)
		if ge.Code != we.Code || ge.Tag != we.Tag || ge.Offset != we.Offset || ge.Msg != we.Msg {
			return fmt.Sprintf("ParseStream error\n\t%v (tag %08X, offset %d)\nParse error\n\t%v (tag %08X, offset %d)",
				gerr, ge.Tag, ge.Offset, werr, we.Tag, we.Offset)
		}
		return ""
	case werr != nil:
		return fmt.Sprintf("ParseStream succeeded, Parse failed: %v", werr)
	case gerr != nil:
		return fmt.Sprintf("ParseStream failed: %v; Parse succeeded", gerr)
	}
	if got.Data != nil {
		return "ParseStream set Data"
	}
	if !bytes.Equal(out.Bytes(), want.Data) {
		return fmt.Sprintf("output differs from Parse's Data (%d bytes, want %d)", out.Len(), len(want.Data))
	}
	if got.Digest != sha256.Sum256(out.Bytes()) {
		return "Digest is not the SHA-256 of the output"
	}
	if s1, s2 := fmt.Sprint(got.Storable()), fmt.Sprint(want.Storable()); s1 != s2 {
		return fmt.Sprintf("Storable %s, Parse's %s", s1, s2)
	}
	w := *want
	w.Data = nil
	if !reflect.DeepEqual(*got, w) {
		return fmt.Sprintf("instance\n\t%+v\nParse's\n\t%+v", *got, w)
	}
	return ""
}

// TestParseStreamCorpus: ParseStream agrees with Parse on every corpus
// file, variants of them and the hostile inputs, whatever the shape of
// the reads and the size of the window.
func TestParseStreamCorpus(t *testing.T) {
	for i, in := range streamInputs(t) {
		t.Run(in.name, func(t *testing.T) {
			for ri, rd := range readers {
				if rd.name == "bytes" && len(in.data) > 32<<10 {
					continue // slow, and nothing the chunks do not cover
				}
				if raceEnabled && (ri+i)%len(readers) != 0 {
					continue // one reader per input, in turn
				}
				for _, buf := range []int{0, minBuffer} {
					lim := in.lim
					lim.Buffer = buf
					if d := streamDiff(in.data, rd.make(in.data, uint64(ri)), lim); d != "" {
						t.Fatalf("reader %s, Buffer %d: %s", rd.name, buf, d)
					}
				}
			}
		})
	}
}

// TestParseStreamTruncated cuts inputs at many offsets: the stream ends
// where Parse's data does, inside values, headers and deferred checks.
func TestParseStreamTruncated(t *testing.T) {
	inputs := map[string][]byte{
		"nested explicit": part10(dicomio.ExplicitVRLittleEndian,
			newDS(true, false).required().undefSQ(0x0040A730).item(0xFFFFFFFF).str(0x0040A010, "CS", "CONTAINS").itemDelim().seqDelim().
				header(0x0040A731, "SQ", 32).item(24).str(0x0040A010, "CS", "CONTAINS").str(0x0040A011, "CS", "X").
				bytes(0x7FE00010, "OW", make([]byte, 64)).b),
		"nested implicit bare": newDS(false, false).required().undefSQ(0x0040A730).item(0xFFFFFFFF).str(0x0040A010, "", "CONTAINS").
			itemDelim().seqDelim().bytes(0x7FE00010, "", make([]byte, 64)).b,
		"deflated": part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, newDS(true, false).required().bytes(0x7FE00010, "OW", make([]byte, 512)).b)),
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
		"seg_undef-len-sq__liver_1frame.dcm",
	} {
		inputs[name] = readCorpus(t, name)
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			cuts := 600
			if raceEnabled {
				cuts = 60
			}
			step := max(1, len(data)/cuts)
			for cut := 0; cut <= len(data); cut++ {
				if cut%step != 0 && (cut > 300 && cut < len(data)-300 || raceEnabled) {
					continue
				}
				rd := readers[cut%len(readers)]
				lim := dicomio.Limits{}
				if cut%3 == 0 {
					lim.Buffer = minBuffer
				}
				if d := streamDiff(data[:cut], rd.make(data[:cut], uint64(cut)), lim); d != "" {
					t.Fatalf("cut at %d, reader %s, Buffer %d: %s", cut, rd.name, lim.Buffer, d)
				}
			}
		})
	}
}

// TestParseStreamReaderErrors: a failing reader gives ErrCodeIO as Read
// does, and an input too long is refused as soon as MaxSize+1 bytes have
// arrived, before anything wrong in it.
func TestParseStreamReaderErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	data := readCorpus(t, "mr_explicit-le__MR_small.dcm")
	for _, n := range []int{0, 1, 100, 131, 132, 500, len(data) - 1, len(data)} {
		_, err := dicomio.ParseStream(io.MultiReader(bytes.NewReader(data[:n]), errReader{boom}), io.Discard, dicomio.Limits{})
		e := wantCode(t, err, dicomio.ErrCodeIO)
		if !errors.Is(err, boom) || e.Offset != int64(n) || strings.Contains(err.Error(), "fire") {
			t.Fatalf("cut %d: error %v (offset %d)", n, err, e.Offset)
		}
		_, rerr := dicomio.Read(io.MultiReader(bytes.NewReader(data[:n]), errReader{boom}), dicomio.Limits{})
		if rerr.Error() != err.Error() {
			t.Fatalf("cut %d: ParseStream %v, Read %v", n, err, rerr)
		}
	}

	cr := &countingReader{r: io.MultiReader(bytes.NewReader(data), zeros{})}
	_, err := dicomio.ParseStream(cr, io.Discard, dicomio.Limits{MaxSize: 1 << 20})
	wantCode(t, err, dicomio.ErrCodeTooLarge)
	if cr.n > 1<<20+1 {
		t.Fatalf("read %d bytes with MaxSize %d", cr.n, 1<<20)
	}
	// A structural error early in the input does not hide the size.
	broken := bytes.Clone(data)
	broken[400] ^= 0xFF
	_, err = dicomio.ParseStream(io.MultiReader(bytes.NewReader(broken), zeros{}), io.Discard, dicomio.Limits{MaxSize: 1 << 20})
	wantCode(t, err, dicomio.ErrCodeTooLarge)

	// A failing writer.
	_, err = dicomio.ParseStream(bytes.NewReader(data), errWriter{boom}, dicomio.Limits{})
	if e := wantCode(t, err, dicomio.ErrCodeIO); !errors.Is(err, boom) || e.Offset != 0 {
		t.Fatalf("failing writer: %v", err)
	}
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }

// multiframe is a Part-10 multi-frame instance of frames 512x512 16-bit
// frames generated as it is read: a header built by hand, then pixel data
// from a pattern, never held whole.
type multiframe struct {
	header  []byte
	pattern []byte
	n, size int64 // bytes produced, total
}

func newMultiframe(t testing.TB, frames int, ts string, explicit bool) *multiframe {
	t.Helper()
	const rows, cols = 512, 512
	pixels := uint32(rows * cols * 2 * frames)
	d := newDS(explicit, false).required().
		str(0x00280008, "IS", fmt.Sprint(frames)).
		bytes(0x00280010, "US", binary.LittleEndian.AppendUint16(nil, rows)).
		bytes(0x00280011, "US", binary.LittleEndian.AppendUint16(nil, cols)).
		bytes(0x00280100, "US", binary.LittleEndian.AppendUint16(nil, 16)).
		header(0x7FE00010, "OW", pixels)
	var h []byte
	if ts == "" {
		h = d.b
	} else {
		h = part10(ts, d.b)
		clear(h[:128])
	}
	m := &multiframe{header: h, pattern: make([]byte, 64<<10), size: int64(len(h)) + int64(pixels)}
	for i := range m.pattern {
		m.pattern[i] = byte(i*7 + i>>9)
	}
	return m
}

func (m *multiframe) Read(p []byte) (int, error) {
	if m.n >= m.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), m.size-m.n)]
	var n int
	if m.n < int64(len(m.header)) {
		n = copy(p, m.header[m.n:])
	} else {
		off := (m.n - int64(len(m.header))) % int64(len(m.pattern))
		n = copy(p, m.pattern[off:])
	}
	m.n += int64(n)
	return n, nil
}

// hashWriter hashes what ParseStream writes and counts it.
type hashWriter struct {
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// TestParseStreamMemory streams a 200 MB multi-frame instance (and a
// bare and a deflated one) and checks the bytes allocated meanwhile are a
// small fraction of it: the memory is bounded by Buffer, not the size.
func TestParseStreamMemory(t *testing.T) {
	const bound = 32 << 20
	cases := []struct {
		name   string
		frames int
		ts     string
	}{
		{"part10 200 MB", 400, dicomio.ExplicitVRLittleEndian},
		{"bare 50 MB", 100, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if raceEnabled {
				c.frames /= 8 // the allocation does not depend on the size; the race detector's time does
			}
			in := newMultiframe(t, c.frames, c.ts, true)
			out := &hashWriter{h: sha256.New()}
			var inst *dicomio.Instance
			var err error
			start := time.Now()
			n := allocDuring(func() { inst, err = dicomio.ParseStream(in, out, dicomio.Limits{}) })
			if err != nil {
				t.Fatal(err)
			}
			var sum [32]byte
			out.h.Sum(sum[:0])
			if inst.Digest != sum || inst.NumberOfFrames != c.frames || inst.SOPInstanceUID != testSOP || inst.Raw != (c.ts == "") {
				t.Fatalf("instance %+v", inst)
			}
			if c.ts != "" && out.n != in.size || c.ts == "" && out.n <= in.size {
				t.Fatalf("wrote %d bytes for %d read", out.n, in.size)
			}
			t.Logf("%d bytes streamed in %v, %d bytes allocated", in.size, time.Since(start), n)
			if n > bound {
				t.Fatalf("streaming %d bytes allocated %d bytes (bound %d)", in.size, n, bound)
			}
		})
	}
	t.Run("deflated 64 MB", func(t *testing.T) {
		size := 64 << 20
		if raceEnabled {
			size = 8 << 20
		}
		ds := append(newDS(true, false).required().header(0x7FE00010, "OW", uint32(size)).b, make([]byte, size)...)
		data := part10(dicomio.DeflatedExplicitVRLittleEndian, deflate(t, ds))
		ds = nil
		want, err := dicomio.Parse(data, dicomio.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		out := &hashWriter{h: sha256.New()}
		var inst *dicomio.Instance
		n := allocDuring(func() { inst, err = dicomio.ParseStream(bytes.NewReader(data), out, dicomio.Limits{}) })
		if err != nil {
			t.Fatal(err)
		}
		if inst.Digest != want.Digest {
			t.Fatal("digest differs from Parse's")
		}
		t.Logf("%d deflated bytes, %d inflated, %d bytes allocated", len(data), size, n)
		if n > bound {
			t.Fatalf("allocated %d bytes", n)
		}
	})
}

// FuzzParseStream: ParseStream agrees with Parse on any input (the same
// error, or the same output, digest and attributes), read in chunks of
// any size, with the default window and with the smallest one (where it
// may refuse what it cannot hold).
func FuzzParseStream(f *testing.F) {
	for _, b := range corpusSeeds(f, 64<<10) {
		f.Add(b, uint64(len(b)))
	}
	for _, c := range hostileInputs(f) {
		if len(c.data) < 64<<10 && c.lim == (dicomio.Limits{}) {
			f.Add(c.data, uint64(len(c.data)))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		lim := dicomio.Limits{MaxSize: 16 << 20, MaxInflated: 16 << 20, MaxDepth: int(seed%8) + 1}
		r := &chunkReader{r: bytes.NewReader(data), rnd: rand.New(rand.NewPCG(seed, 2)), max: 1 + int(seed>>8)%3000}
		if d := streamDiff(data, r, lim); d != "" {
			t.Fatal(d)
		}
		lim.Buffer = minBuffer
		r = &chunkReader{r: bytes.NewReader(data), rnd: rand.New(rand.NewPCG(seed, 3)), max: 1 + int(seed>>20)%700}
		if d := streamDiff(data, r, lim); d != "" {
			t.Fatalf("Buffer %d: %s", minBuffer, d)
		}
	})
}
