package dicomio

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCharsetCorpus(t *testing.T) {
	cases := []struct {
		file, name string
	}{
		{"ot_charset-iso-ir-100-latin1__chrFren.dcm", "Buc^Jérôme"},
		{"ot_charset-iso-ir-192-utf8__chrX1.dcm", "Wang^XiaoDong=王^小東="},
		{"ot_charset-gb18030__chrX2.dcm", "Wang^XiaoDong=王^小东="},
		{"ot_charset-iso2022-ir87-japanese__chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("../testdata/dicom", c.file))
			if err != nil {
				t.Fatal(err)
			}
			inst, err := Parse(b, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if !utf8.ValidString(inst.PatientName) {
				t.Fatalf("PatientName is not valid UTF-8: %q", inst.PatientName)
			}
			if inst.PatientName != c.name {
				t.Fatalf("PatientName %q, want %q", inst.PatientName, c.name)
			}
			if len(inst.Warnings) != 0 {
				t.Fatalf("warnings %q", inst.Warnings)
			}
		})
	}
}

func TestDecodeText(t *testing.T) {
	cases := []struct {
		name, charset string
		in            []byte
		want          string
		warn          string
	}{
		{"ascii default", "", []byte("Doe^John"), "Doe^John", ""},
		{"utf8 without charset", "", []byte("Jérôme"), "Jérôme", "read as UTF-8"},
		{"latin1 without charset", "", []byte("J\xe9r\xf4me"), "Jérôme", "read as ISO_IR 100"},
		{"latin1", "ISO_IR 100", []byte("Buc^J\xe9r\xf4me"), "Buc^Jérôme", ""},
		{"misspelled latin1", "ISO-IR 100", []byte("Buc^J\xe9r\xf4me"), "Buc^Jérôme", "misspelled"},
		{"misspelled no space", "ISO_IR100", []byte("J\xe9r\xf4me"), "Jérôme", "misspelled"},
		{"latin2", "ISO_IR 101", []byte("\xa3\xf3d\xbc"), "Łódź", ""},
		{"cyrillic", "ISO_IR 144", []byte("\xbb\xd5\xdd\xd8\xdd"), "Ленин", ""},
		{"utf8", "ISO_IR 192", []byte("王^小東"), "王^小東", ""},
		{"invalid utf8", "ISO_IR 192", []byte("a\xffb"), "a\uFFFDb", "invalid UTF-8"},
		{"gb18030", "GB18030", []byte("Wang^XiaoDong=\xcd\xf5^\xd0\xa1\xb6\xab="), "Wang^XiaoDong=王^小东=", ""},
		{"unknown charset", "KLINGON", []byte("a\xffb"), "a\uFFFDb", "unknown Specific Character Set"},
		{"iso2022 japanese", `\ISO 2022 IR 87`,
			[]byte("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"),
			"Yamada^Tarou=山田^太郎=やまだ^たろう", ""},
		{"iso2022 katakana", `ISO 2022 IR 13\ISO 2022 IR 87`,
			[]byte("\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J"),
			"ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎", ""},
		{"iso2022 korean", `\ISO 2022 IR 149`,
			[]byte("Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7"),
			"Hong^Gildong=洪^吉洞", ""},
		{"iso2022 latin1 first", `ISO 2022 IR 100`, []byte("J\xe9r\xf4me"), "Jérôme", ""},
		{"iso2022 greek escape", `\ISO 2022 IR 126`, []byte("\x1b-F\xc4\xe9\xef\xed\xf5\xf3\xe9\xef\xf2"), "Διονυσιος", ""},
		{"iso2022 unknown escape", `\ISO 2022 IR 87`, []byte("a\x1b%Gb"), "a\uFFFD%Gb", "unknown ISO 2022 escape"},
		{"iso2022 no G1", `\ISO 2022 IR 87`, []byte("a\xe9"), "a\uFFFD", "no G1"},
		{"iso2022 truncated escape", `\ISO 2022 IR 87`, []byte("a\x1b$"), "a\uFFFD$", "unknown ISO 2022 escape"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := &warnings{}
			d := newTextDecoder([]byte(c.charset), w)
			got := d.decode(c.in)
			if got != c.want {
				t.Errorf("decode = %q, want %q", got, c.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("invalid UTF-8 %q", got)
			}
			found := c.warn == ""
			for _, m := range w.list {
				if c.warn != "" && strings.Contains(m, c.warn) {
					found = true
				}
			}
			if !found || (c.warn == "" && len(w.list) > 0) {
				t.Errorf("warnings %q, want %q", w.list, c.warn)
			}
		})
	}
}

func TestParseIS(t *testing.T) {
	cases := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1", 1, true}, {" 12 ", 12, true}, {"+7", 7, true}, {"-3", -3, true}, {"0001", 1, true},
		{"2147483647", 2147483647, true}, {"-2147483647", -2147483647, true},
		{"2147483648", 0, false}, {"1A", 0, false}, {"", 0, false}, {"-", 0, false}, {"1.0", 0, false},
		{"1\\2", 0, false}, {"1234567890123", 0, false}, {"12\x00", 12, true},
	}
	for _, c := range cases {
		got, ok := parseIS([]byte(c.in))
		if got != c.want || ok != c.ok {
			t.Errorf("parseIS(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
