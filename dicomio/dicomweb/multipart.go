package dicomweb

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// MediaTypeError is a Content-Type a service does not take (HTTP 415).
type MediaTypeError struct{ Msg string }

func (e *MediaTypeError) Error() string { return "content type: " + e.Msg }

var (
	// ErrPartTooLarge fails the reads of a part longer than the
	// PartReader's maxPart (HTTP 413).
	ErrPartTooLarge = errors.New("multipart part too large")
	// ErrMalformed is wrapped by the errors of a multipart body whose
	// framing or part headers are malformed (HTTP 400). Errors of the
	// underlying body (a network error, http.MaxBytesError) are returned
	// as they are, not wrapped.
	ErrMalformed = errors.New("malformed multipart body")
)

// PartReader reads the parts of a multipart/related body (a STOW-RS
// request), streaming: a part is read from the body as the caller reads
// it.
type PartReader struct {
	body    *bodyReader
	mr      *multipart.Reader
	def     string // a part's type when it has no Content-Type
	maxPart int64
	cur     *limitedPart
	parts   int
}

// bodyReader remembers the error of the underlying body so that it is
// told apart from a framing error of the multipart reader.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// NewPartReader reads body, whose Content-Type is contentType: it must be
// multipart/related with a boundary, and its type parameter, when
// present, must be want's media type (any, when want is ""). A part is
// at most maxPart bytes (no bound when maxPart <= 0). A wrong or
// malformed Content-Type is a *MediaTypeError.
func NewPartReader(contentType string, body io.Reader, want string, maxPart int64) (*PartReader, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, &MediaTypeError{"malformed Content-Type"}
	}
	if mt != "multipart/related" {
		return nil, &MediaTypeError{"want multipart/related, not " + safeName(mt)}
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, &MediaTypeError{"multipart/related without a boundary"}
	}
	if len(boundary) > 70 || strings.ContainsAny(boundary, "\r\n") {
		return nil, &MediaTypeError{"malformed boundary"}
	}
	def := want
	if typ, ok := params["type"]; ok {
		tmt, _, err := mime.ParseMediaType(typ)
		if err != nil {
			return nil, &MediaTypeError{"malformed type parameter"}
		}
		if want != "" {
			wmt, _, _ := mime.ParseMediaType(want)
			if tmt != wmt {
				return nil, &MediaTypeError{fmt.Sprintf("type %s, want %s", safeName(tmt), safeName(wmt))}
			}
		}
		def = typ
	}
	b := &bodyReader{r: body}
	return &PartReader{body: b, mr: multipart.NewReader(b, boundary), def: def, maxPart: maxPart}, nil
}

// Next returns the next part: its Content-Type (normalized by
// mime.FormatMediaType, parameters such as transfer-syntax kept; the
// body's type parameter when the part has none) and a reader of its
// bytes, valid until the next call. After the last part it returns
// io.EOF; a body without any part is malformed. A part longer than
// maxPart fails its reads with ErrPartTooLarge.
func (r *PartReader) Next() (string, io.Reader, error) {
	if r.cur != nil {
		r.cur.done = true
	}
	p, err := r.mr.NextRawPart()
	if err == io.EOF {
		if r.parts == 0 {
			return "", nil, fmt.Errorf("read multipart: %w: no parts", ErrMalformed)
		}
		return "", nil, io.EOF
	}
	if err != nil {
		return "", nil, r.wrap(err)
	}
	r.parts++
	ct := p.Header.Get("Content-Type")
	if ct == "" {
		ct = r.def
	}
	if ct == "" {
		return "", nil, fmt.Errorf("read multipart part %d: %w: no Content-Type", r.parts, ErrMalformed)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil, fmt.Errorf("read multipart part %d: %w: malformed Content-Type", r.parts, ErrMalformed)
	}
	ct = mime.FormatMediaType(mt, params)
	if ct == "" {
		return "", nil, fmt.Errorf("read multipart part %d: %w: malformed Content-Type", r.parts, ErrMalformed)
	}
	r.cur = &limitedPart{r: r, p: p, left: r.maxPart}
	return ct, r.cur, nil
}

// wrap tells a failure of the body from malformed framing.
func (r *PartReader) wrap(err error) error {
	if r.body.err != nil {
		return fmt.Errorf("read multipart: %w", r.body.err)
	}
	if errors.Is(err, ErrPartTooLarge) {
		return err
	}
	return fmt.Errorf("read multipart: %w: %v", ErrMalformed, err)
}

type limitedPart struct {
	r    *PartReader
	p    *multipart.Part
	left int64
	done bool
}

func (l *limitedPart) Read(b []byte) (int, error) {
	if l.done {
		return 0, errors.New("read multipart part: read after Next")
	}
	if l.r.maxPart > 0 {
		if l.left <= 0 {
			// One byte more tells a part of exactly maxPart from a longer one.
			var one [1]byte
			n, err := l.p.Read(one[:])
			if n > 0 {
				return 0, ErrPartTooLarge
			}
			if err == io.EOF {
				return 0, io.EOF
			}
			return 0, l.r.wrap(err)
		}
		if int64(len(b)) > l.left {
			b = b[:l.left]
		}
	}
	n, err := l.p.Read(b)
	l.left -= int64(n)
	if err != nil && err != io.EOF {
		err = l.r.wrap(err)
	}
	return n, err
}

// PartWriter writes a multipart/related body (a WADO-RS response),
// streaming each part to the underlying writer as it is written.
type PartWriter struct {
	mw  *multipart.Writer
	typ string
}

// NewPartWriter writes parts to w; typ is the type parameter of the
// body's Content-Type (e.g. application/dicom).
func NewPartWriter(w io.Writer, typ string) *PartWriter {
	return &PartWriter{mw: multipart.NewWriter(w), typ: typ}
}

// ContentType is the body's Content-Type:
// multipart/related; type="<typ>"; boundary=<boundary>.
func (p *PartWriter) ContentType() string {
	typ := p.typ
	if typ == "" || strings.ContainsAny(typ, "\"\\\r\n") {
		return mime.FormatMediaType("multipart/related", map[string]string{"boundary": p.mw.Boundary()})
	}
	return `multipart/related; type="` + typ + `"; boundary=` + p.mw.Boundary()
}

// Part starts the next part with its Content-Type and further headers
// (e.g. Content-Location); the part ends at the next Part or Close.
// Header names and values with line breaks or control characters are
// refused.
func (p *PartWriter) Part(contentType string, headers map[string]string) (io.Writer, error) {
	h := textproto.MIMEHeader{}
	if contentType != "" {
		if hasControl(contentType) {
			return nil, errors.New("write multipart part: control character in Content-Type")
		}
		h.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		if k == "" || hasControl(k) || hasControl(v) || strings.ContainsAny(k, ": ") {
			return nil, errors.New("write multipart part: malformed header")
		}
		h.Set(k, v)
	}
	w, err := p.mw.CreatePart(h)
	if err != nil {
		return nil, fmt.Errorf("write multipart part: %w", err)
	}
	return w, nil
}

// Close writes the closing boundary; it does not close the underlying
// writer.
func (p *PartWriter) Close() error {
	if err := p.mw.Close(); err != nil {
		return fmt.Errorf("write multipart: %w", err)
	}
	return nil
}
