package dicomweb

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type part struct {
	ct   string
	body string
}

// readAll reads every part of a body.
func readAll(t testing.TB, contentType string, body io.Reader, want string, maxPart int64) ([]part, error) {
	t.Helper()
	r, err := NewPartReader(contentType, body, want, maxPart)
	if err != nil {
		return nil, err
	}
	var out []part
	for {
		ct, p, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return out, err
		}
		out = append(out, part{ct, string(b)})
	}
}

func TestPartWriterReader(t *testing.T) {
	var buf bytes.Buffer
	w := NewPartWriter(&buf, "application/dicom")
	ct := w.ContentType()
	if !strings.HasPrefix(ct, `multipart/related; type="application/dicom"; boundary=`) {
		t.Fatalf("ContentType %q", ct)
	}
	bodies := []part{
		{"application/dicom", "DICM\x00\r\n--not a boundary\r\n"},
		{"application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50", strings.Repeat("x", 100000)},
		{"application/dicom", ""},
	}
	for i, p := range bodies {
		pw, err := w.Part(p.ct, map[string]string{"Content-Location": "/dicom-web/studies/1.2/series/3.4/instances/5." + string(rune('0'+i))})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, p.body)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "Content-Location: /dicom-web/studies/1.2/series/3.4/instances/5.1\r\n") {
		t.Error("no Content-Location header")
	}
	got, err := readAll(t, ct, iotest.OneByteReader(&buf), "application/dicom", 100000)
	if err != nil {
		t.Fatal(err)
	}
	bodies[1].ct = "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50"
	if len(got) != len(bodies) {
		t.Fatalf("%d parts, want %d", len(got), len(bodies))
	}
	for i := range got {
		if got[i] != bodies[i] {
			t.Errorf("part %d: %q (%d bytes), want %q (%d bytes)", i, got[i].ct, len(got[i].body), bodies[i].ct, len(bodies[i].body))
		}
	}
}

// TestPartReaderClients: bodies as STOW-RS clients write them.
func TestPartReaderClients(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		want           []part
	}{
		// dicomweb-client (JS): a CRLF before the first boundary, no CRLF after the last.
		{"dicomweb-client", `multipart/related; type="application/dicom"; boundary=0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1`,
			"\r\n--0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1\r\nContent-Type: application/dicom\r\n\r\nAAAA" +
				"\r\n--0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1\r\nContent-Type: application/dicom\r\n\r\nBB" +
				"\r\n--0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1--",
			[]part{{"application/dicom", "AAAA"}, {"application/dicom", "BB"}}},
		// A preamble, a quoted boundary, a transfer syntax on a part, type parameters in any case.
		{"preamble and transfer-syntax", `Multipart/Related; boundary="a b:c"; type="Application/DICOM"; start="<x>"`,
			"preamble\r\n--a b:c\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\nContent-ID: <x>\r\n\r\nX\r\n--a b:c--\r\nepilogue",
			[]part{{"application/dicom; transfer-syntax=1.2.840.10008.1.2.1", "X"}}},
		{"no part Content-Type", `multipart/related; type="application/dicom"; boundary=b`,
			"--b\r\n\r\nX\r\n--b--\r\n", []part{{"application/dicom", "X"}}},
		{"no type parameter", `multipart/related; boundary=b`,
			"--b\r\nContent-Type: application/dicom\r\n\r\nX\r\n--b--\r\n", []part{{"application/dicom", "X"}}},
		{"LF only", `multipart/related; boundary=b`,
			"--b\nContent-Type: application/dicom\n\nX\n--b--\n", []part{{"application/dicom", "X"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(t, tc.ct, strings.NewReader(tc.body), "application/dicom", 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("part %d: %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestPartReaderContentType(t *testing.T) {
	for _, ct := range []string{
		"", "application/dicom", "multipart/mixed; boundary=b", "multipart/related",
		"multipart/related; boundary=", `multipart/related; boundary="` + strings.Repeat("b", 71) + `"`,
		`multipart/related; type="application/dicom+json"; boundary=b`, `multipart/related; type="%%"; boundary=b`,
		"multipart/related; boundary=b; boundary=c", "multipart/related;;", "\x00",
	} {
		_, err := NewPartReader(ct, strings.NewReader(""), "application/dicom", 10)
		var me *MediaTypeError
		if !errors.As(err, &me) {
			t.Errorf("%q: got %v, want a *MediaTypeError", ct, err)
		}
	}
	// Any type when the caller wants none in particular.
	if _, err := NewPartReader(`multipart/related; type="application/dicom+json"; boundary=b`, strings.NewReader(""), "", 10); err != nil {
		t.Error(err)
	}
}

func TestPartReaderTooLarge(t *testing.T) {
	body := "--b\r\nContent-Type: application/dicom\r\n\r\n0123456789\r\n--b\r\nContent-Type: application/dicom\r\n\r\n01234567890\r\n--b--\r\n"
	r, err := NewPartReader("multipart/related; boundary=b", strings.NewReader(body), "application/dicom", 10)
	if err != nil {
		t.Fatal(err)
	}
	_, p, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(p); err != nil || string(b) != "0123456789" {
		t.Fatalf("part of exactly maxPart: %q, %v", b, err)
	}
	_, p, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(p); !errors.Is(err, ErrPartTooLarge) {
		t.Fatalf("part of maxPart+1: %v, want ErrPartTooLarge", err)
	}
	// The reader goes on past a part too large.
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last part: %v", err)
	}
	if _, err := p.Read(make([]byte, 1)); err == nil {
		t.Error("a part read after Next")
	}
}

func TestPartReaderMalformed(t *testing.T) {
	for name, body := range map[string]string{
		"empty":               "",
		"no boundary":         "just bytes\r\n",
		"closing only":        "--b--\r\n",
		"unterminated part":   "--b\r\nContent-Type: application/dicom\r\n\r\nXXXX",
		"unterminated header": "--b\r\nContent-Type: application/dicom",
		"bad part type":       "--b\r\nContent-Type: /\r\n\r\nX\r\n--b--",
		"bad header":          "--b\r\nno colon\r\n\r\nX\r\n--b--",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readAll(t, "multipart/related; boundary=b", strings.NewReader(body), "application/dicom", 100)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	t.Run("no type at all", func(t *testing.T) {
		_, err := readAll(t, "multipart/related; boundary=b", strings.NewReader("--b\r\n\r\nX\r\n--b--"), "", 100)
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	})
}

// TestPartReaderBodyError: a failure of the body is not a framing error.
func TestPartReaderBodyError(t *testing.T) {
	boom := errors.New("connection reset")
	for _, body := range []string{"--b\r\nContent-Type: application/dicom\r\n\r\nXX", "--b\r\nConte"} {
		r := io.MultiReader(strings.NewReader(body), iotest.ErrReader(boom))
		_, err := readAll(t, "multipart/related; boundary=b", r, "application/dicom", 100)
		if !errors.Is(err, boom) || errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v, want the body's error", body, err)
		}
	}
}

func TestPartWriterHeaders(t *testing.T) {
	w := NewPartWriter(io.Discard, "application/octet-stream")
	for _, h := range []map[string]string{
		{"Content-Location": "x\r\nSet-Cookie: a"}, {"Bad Name": "x"}, {"": "x"}, {"X\n": "y"},
	} {
		if _, err := w.Part("application/octet-stream", h); err == nil {
			t.Errorf("%q accepted", h)
		}
	}
	if _, err := w.Part("a/b\r\nX: y", nil); err == nil {
		t.Error("Content-Type with a line break accepted")
	}
	if ct := NewPartWriter(io.Discard, `a"b`).ContentType(); strings.Contains(ct, `a"b`) {
		t.Errorf("ContentType %q", ct)
	}
}

func FuzzMultipart(f *testing.F) {
	f.Add(`multipart/related; type="application/dicom"; boundary=b`, []byte("--b\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\nDICM\r\n--b\r\n\r\nX\r\n--b--\r\n"))
	f.Add(`multipart/related; boundary=b`, []byte("\r\n--b\r\nContent-Type: application/dicom\r\n\r\n0123456789abcdef\r\n--b--"))
	f.Add(`multipart/related; boundary="a b"`, []byte("pre\n--a b\n\nX\n--a b--"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		parts, err := readAll(t, ct, bytes.NewReader(body), "application/dicom", 16)
		var me *MediaTypeError
		if err != nil && !errors.As(err, &me) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrPartTooLarge) {
			t.Fatalf("unexpected error %v", err)
		}
		for _, p := range parts {
			if len(p.body) > 16 {
				t.Fatalf("a part of %d bytes passed maxPart", len(p.body))
			}
		}
		// What the writer writes, the reader reads back.
		var buf bytes.Buffer
		w := NewPartWriter(&buf, "application/dicom")
		chunks := bytes.SplitN(body, []byte{0}, 4)
		for _, c := range chunks {
			pw, err := w.Part("application/dicom", nil)
			if err != nil {
				t.Fatal(err)
			}
			pw.Write(c)
		}
		w.Close()
		back, err := readAll(t, w.ContentType(), &buf, "application/dicom", int64(len(body)))
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		if len(back) != len(chunks) {
			t.Fatalf("%d parts back, %d written", len(back), len(chunks))
		}
		for i, c := range chunks {
			if back[i].body != string(c) {
				t.Fatalf("part %d differs", i)
			}
		}
	})
}
