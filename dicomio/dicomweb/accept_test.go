package dicomweb

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseAccept(t *testing.T) {
	p := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name, h string
		want    []MediaRange
	}{
		{"dicomweb-client instance", `multipart/related; type="application/dicom"; transfer-syntax=*`,
			[]MediaRange{{"multipart/related", p("type", "application/dicom", "transfer-syntax", "*"), 1}}},
		{"OHIF frames, type unquoted", `multipart/related; type=application/octet-stream; transfer-syntax=*`,
			[]MediaRange{{"multipart/related", p("type", "application/octet-stream", "transfer-syntax", "*"), 1}}},
		{"OHIF metadata", "application/dicom+json", []MediaRange{{"application/dicom+json", nil, 1}}},
		{"dicomweb-client metadata", "application/dicom+json, application/json;q=0.9",
			[]MediaRange{{"application/dicom+json", nil, 1}, {"application/json", nil, 0.9}}},
		{"explicit transfer syntaxes with weights", `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50; q=0.5, multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`,
			[]MediaRange{
				{"multipart/related", p("type", "application/dicom", "transfer-syntax", "1.2.840.10008.1.2.1"), 1},
				{"multipart/related", p("type", "application/dicom", "transfer-syntax", "1.2.840.10008.1.2.4.50"), 0.5},
			}},
		{"rendered, browser style", "image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5",
			[]MediaRange{{"image/avif", nil, 1}, {"image/webp", nil, 1}, {"image/png", nil, 1}, {"image/*", nil, 0.8}, {"*/*", nil, 0.5}}},
		{"case and spaces", ` Multipart/Related ;TYPE="Application/DICOM" ; Q=1.000 , ,*/*;q=0`,
			[]MediaRange{{"multipart/related", p("type", "application/dicom"), 1}, {"*/*", nil, 0}}},
		{"empty", "", nil},
		{"quoted escapes", `text/plain; x="a\"b;c,d"`, []MediaRange{{"text/plain", p("x", `a"b;c,d`), 1}}},
		{"trailing semicolon", `application/dicom;`, []MediaRange{{"application/dicom", nil, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAccept(tc.h)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseAcceptErrors(t *testing.T) {
	for _, h := range []string{
		"application", "application/", "/json", "*/json", "a/b; q=2", "a/b; q=1.5", "a/b; q=0.1234",
		"a/b; q=x", "a/b; q=1; q=1", "a/b; x=1; x=2", `a/b; x="unterminated`, "a/b; x=", "a/b c/d",
		"a/b; =1", "a/b\x00", "a/b; x=\x01", strings.Repeat("a/b,", 65), strings.Repeat("a", maxAcceptLen+1),
	} {
		if got, err := ParseAccept(h); err == nil {
			t.Errorf("%q accepted: %+v", h, got)
		}
	}
}

func TestMediaRangeMatches(t *testing.T) {
	for _, tc := range []struct {
		rng, mt string
		want    bool
	}{
		{"*/*", "application/dicom", true},
		{"application/*", "application/dicom+json", true},
		{"application/*", "image/png", false},
		{"application/dicom+json", "Application/DICOM+JSON; charset=utf-8", true},
		{"application/json", "application/dicom+json", false},
		{"image/*", "imagex/png", false},
	} {
		rs, err := ParseAccept(tc.rng)
		if err != nil {
			t.Fatal(err)
		}
		if got := rs[0].Matches(tc.mt); got != tc.want {
			t.Errorf("%s matches %s: %v", tc.rng, tc.mt, got)
		}
	}
}

func FuzzParseAccept(f *testing.F) {
	for _, s := range []string{
		`multipart/related; type="application/dicom"; transfer-syntax=*`,
		`multipart/related; type=application/octet-stream; transfer-syntax=*`,
		"application/dicom+json, application/json;q=0.9", `text/plain; x="a\"b"`, "*/*;q=0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		rs, err := ParseAccept(h)
		if err != nil {
			return
		}
		for i, r := range rs {
			if r.Q < 0 || r.Q > 1 || !strings.Contains(r.Type, "/") || r.Type != strings.ToLower(r.Type) {
				t.Fatalf("range %+v", r)
			}
			if i > 0 && rs[i-1].Q < r.Q {
				t.Fatal("not in weight order")
			}
		}
	})
}
