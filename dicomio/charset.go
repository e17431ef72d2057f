package dicomio

import (
	"strings"
	"unicode/utf8"

	"github.com/suyashkumar/dicom/pkg/charset"
	"golang.org/x/text/encoding"
	xcharmap "golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// textDecoder turns PN/LO/SH values into UTF-8 according to Specific
// Character Set (0008,0005). Whatever the input, its output is valid
// UTF-8: undecodable bytes become U+FFFD (and a warning), never an error,
// because a name we cannot render must not make a valid image unstorable.
type textDecoder struct {
	mode   int
	single *encoding.Decoder // modeSingle
	g0     g0set             // modeISO2022: initial G0
	g1     g1set             // modeISO2022: initial G1
	warn   *warnings
}

const (
	modeDefault = iota // no (0008,0005): the default repertoire (ASCII)
	modeSingle         // one value without code extensions
	modeISO2022        // ISO 2022 code extensions (escape sequences)
	modeUTF8           // ISO_IR 192
	modeLossy          // unknown character set: sanitise only
)

type g0set uint8

const (
	g0ASCII   g0set = iota
	g0JIS0208       // ISO 2022 IR 87, two bytes per character
	g0JIS0212       // ISO 2022 IR 159, two bytes per character
)

type g1set struct {
	kind uint8             // g1None, g1Charmap, g1Katakana, g1KSX1001, g1GB2312
	cm   *xcharmap.Charmap // g1Charmap
}

const (
	g1None uint8 = iota
	g1Charmap
	g1Katakana
	g1KSX1001
	g1GB2312
)

// Single-byte G1 sets by ISO-IR number, and by the final byte of their
// "ESC - F" designation (PS3.3 C.12.1.1.2, PS3.5 6.1.2.5.3).
var (
	irCharmaps = map[string]*xcharmap.Charmap{
		"100": xcharmap.ISO8859_1, "101": xcharmap.ISO8859_2, "109": xcharmap.ISO8859_3,
		"110": xcharmap.ISO8859_4, "144": xcharmap.ISO8859_5, "127": xcharmap.ISO8859_6,
		"126": xcharmap.ISO8859_7, "138": xcharmap.ISO8859_8, "148": xcharmap.ISO8859_9,
		"166": xcharmap.Windows874, "203": xcharmap.ISO8859_15,
	}
	escCharmaps = map[byte]*xcharmap.Charmap{
		'A': xcharmap.ISO8859_1, 'B': xcharmap.ISO8859_2, 'C': xcharmap.ISO8859_3,
		'D': xcharmap.ISO8859_4, 'L': xcharmap.ISO8859_5, 'G': xcharmap.ISO8859_6,
		'F': xcharmap.ISO8859_7, 'H': xcharmap.ISO8859_8, 'M': xcharmap.ISO8859_9,
		'T': xcharmap.Windows874, 'b': xcharmap.ISO8859_15,
	}
)

// canonicalCharset maps common misspellings of defined terms (seen in real
// files: "ISO-IR 100", "ISO_IR100", "ISO 2022 IR87") onto the defined term.
// It returns the input unchanged when it does not recognise it.
func canonicalCharset(s string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	switch u {
	case "UTF-8", "UTF8":
		return "ISO_IR 192"
	case "ISO-8859-1", "ISO8859-1", "LATIN1":
		return "ISO_IR 100"
	}
	squash := strings.NewReplacer("_", "", "-", "", " ", "").Replace(u)
	if n, ok := strings.CutPrefix(squash, "ISO2022IR"); ok && isDigits(n) {
		return "ISO 2022 IR " + n
	}
	if n, ok := strings.CutPrefix(squash, "ISOIR"); ok && isDigits(n) {
		return "ISO_IR " + n
	}
	return s
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func newTextDecoder(raw []byte, warn *warnings) *textDecoder {
	d := &textDecoder{warn: warn}
	terms := strings.Split(string(trimPadding(raw, true)), `\`)
	for i := range terms {
		terms[i] = strings.TrimSpace(terms[i])
	}
	if len(terms) == 1 && terms[0] == "" {
		d.mode = modeDefault
		return d
	}
	for i, t := range terms {
		if c := canonicalCharset(t); c != t {
			warn.add("misspelled Specific Character Set term read as " + c)
			terms[i] = c
		}
	}
	if len(terms) == 1 && !strings.HasPrefix(terms[0], "ISO 2022") {
		name := terms[0]
		if name == "ISO_IR 192" {
			d.mode = modeUTF8
			return d
		}
		if dec := singleDecoder(name); dec != nil {
			d.mode, d.single = modeSingle, dec
			return d
		}
		warn.add("unknown Specific Character Set; text values sanitised as UTF-8")
		d.mode = modeLossy
		return d
	}
	if terms[0] == "ISO_IR 192" {
		warn.add("ISO_IR 192 with other character sets; text read as UTF-8")
		d.mode = modeUTF8
		return d
	}
	d.mode = modeISO2022
	first := strings.TrimPrefix(strings.TrimPrefix(terms[0], "ISO 2022 IR "), "ISO_IR ")
	switch first {
	case "", "6", "ISO 2022 IR 6":
	case "13":
		d.g1 = g1set{kind: g1Katakana}
	case "149":
		d.g1 = g1set{kind: g1KSX1001}
	case "58":
		d.g1 = g1set{kind: g1GB2312}
	default:
		if cm, ok := irCharmaps[first]; ok {
			d.g1 = g1set{kind: g1Charmap, cm: cm}
		} else {
			warn.add("unsupported first Specific Character Set value with code extensions; read as ASCII")
		}
	}
	return d
}

// singleDecoder asks suyashkumar/dicom's charset table for the decoder of
// one defined term; nil when it does not know the term. The library panics
// on some table inconsistencies, hence the recover.
func singleDecoder(name string) (dec *encoding.Decoder) {
	defer func() {
		if recover() != nil {
			dec = nil
		}
	}()
	cs, err := charset.ParseSpecificCharacterSet([]string{name})
	if err != nil || cs.Ideographic == nil {
		return nil
	}
	return cs.Ideographic
}

// decode converts one value. b has its padding already removed.
func (d *textDecoder) decode(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	switch d.mode {
	case modeDefault:
		if isASCII(b) {
			return string(b)
		}
		if utf8.Valid(b) {
			d.warn.add("non-ASCII text without Specific Character Set read as UTF-8")
			return string(b)
		}
		d.warn.add("non-ASCII text without Specific Character Set read as ISO_IR 100")
		return decodeWith(xcharmap.ISO8859_1.NewDecoder(), b, d.warn)
	case modeSingle:
		return decodeWith(d.single, b, d.warn)
	case modeISO2022:
		return d.decode2022(b)
	}
	if !utf8.Valid(b) {
		d.warn.add("invalid UTF-8 in a text value replaced")
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func decodeWith(dec *encoding.Decoder, b []byte, warn *warnings) (s string) {
	defer func() {
		if recover() != nil {
			warn.add("text value could not be decoded; sanitised")
			s = strings.ToValidUTF8(string(b), "\uFFFD")
		}
	}()
	out, err := dec.Bytes(b)
	if err != nil {
		warn.add("text value could not be decoded; sanitised")
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	if !utf8.Valid(out) {
		return strings.ToValidUTF8(string(out), "\uFFFD")
	}
	return string(out)
}

// decode2022 splits b at ISO 2022 escape sequences and decodes each run
// with the designated set. Multi-byte Japanese runs are re-encoded as
// EUC-JP (the same code points with the high bit set) so that one decoder
// serves both G0 and G1 Japanese sets.
func (d *textDecoder) decode2022(b []byte) string {
	var (
		out      strings.Builder
		g0       = d.g0
		g1       = d.g1
		pend     []byte
		pendKind uint8 // 0 none, 1 EUC-JP, 2 EUC-KR, 3 GBK
	)
	flush := func() {
		if len(pend) == 0 {
			return
		}
		var dec *encoding.Decoder
		switch pendKind {
		case 1:
			dec = japanese.EUCJP.NewDecoder()
		case 2:
			dec = korean.EUCKR.NewDecoder()
		default:
			dec = simplifiedchinese.GBK.NewDecoder()
		}
		out.WriteString(decodeWith(dec, pend, d.warn))
		pend = pend[:0]
	}
	add := func(kind uint8, bs ...byte) {
		if kind != pendKind {
			flush()
			pendKind = kind
		}
		pend = append(pend, bs...)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0x1B {
			flush()
			n := matchEscape(b[i:], &g0, &g1)
			if n == 0 {
				d.warn.add("unknown ISO 2022 escape sequence in a text value")
				out.WriteRune(utf8.RuneError)
				continue
			}
			i += n - 1
			continue
		}
		if c < 0x80 {
			if (g0 == g0JIS0208 || g0 == g0JIS0212) && c >= 0x21 && c <= 0x7E && i+1 < len(b) && b[i+1] >= 0x21 && b[i+1] <= 0x7E {
				if g0 == g0JIS0212 {
					add(1, 0x8F, c|0x80, b[i+1]|0x80)
				} else {
					add(1, c|0x80, b[i+1]|0x80)
				}
				i++
				continue
			}
			flush()
			out.WriteByte(c)
			continue
		}
		switch g1.kind {
		case g1Charmap:
			flush()
			out.WriteRune(g1.cm.DecodeByte(c))
		case g1Katakana:
			add(1, 0x8E, c)
		case g1KSX1001:
			add(2, c)
		case g1GB2312:
			add(3, c)
		default:
			flush()
			d.warn.add("8-bit byte in a text value with no G1 character set designated")
			out.WriteRune(utf8.RuneError)
		}
	}
	flush()
	return strings.ToValidUTF8(out.String(), "\uFFFD")
}

// matchEscape recognises the escape sequence at the start of b, updates
// the designations and returns its length, or 0 when it is unknown.
func matchEscape(b []byte, g0 *g0set, g1 *g1set) int {
	has := func(s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }
	switch {
	case has("\x1b(B"), has("\x1b(J"):
		*g0 = g0ASCII
		return 3
	case has("\x1b$B"):
		*g0 = g0JIS0208
		return 3
	case has("\x1b$(D"):
		*g0 = g0JIS0212
		return 4
	case has("\x1b)I"):
		*g1 = g1set{kind: g1Katakana}
		return 3
	case has("\x1b$)C"):
		*g1 = g1set{kind: g1KSX1001}
		return 4
	case has("\x1b$)A"):
		*g1 = g1set{kind: g1GB2312}
		return 4
	case len(b) >= 3 && b[1] == '-':
		if cm, ok := escCharmaps[b[2]]; ok {
			*g1 = g1set{kind: g1Charmap, cm: cm}
			return 3
		}
	}
	return 0
}
