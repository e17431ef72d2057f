package dicomweb

// TEMPORARY stand-in until the dw-parse branch lands. Not for commit.

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/suyashkumar/dicom/pkg/tag"
)

type Level int

const (
	LevelStudy Level = iota + 1
	LevelSeries
	LevelInstance
)

type Query struct {
	Level       Level
	Identifier  dicomio.Dataset
	IncludeAll  bool
	Limit       int
	Offset      int
	Fuzzy       bool
	Unsupported []string
	Extra       url.Values
}

type QueryError struct{ Param, Msg string }

func (e *QueryError) Error() string { return e.Param + ": " + e.Msg }

func lookup(k string) (uint32, string, bool) {
	if len(k) == 8 {
		if v, err := strconv.ParseUint(k, 16, 32); err == nil {
			t := uint32(v)
			vr, ok := vrOf(t)
			return t, vr, ok
		}
	}
	info, err := tag.FindByKeyword(k)
	if err != nil {
		return 0, "", false
	}
	return uint32(info.Tag.Group)<<16 | uint32(info.Tag.Element), info.VRs[0], true
}

func ParseQuery(level Level, raw string, allowExtra ...string) (*Query, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, &QueryError{"query", "malformed"}
	}
	q := &Query{Level: level, Extra: url.Values{}}
	for k, vals := range v {
		switch k {
		case "limit", "offset":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 0 {
				return nil, &QueryError{k, "must be a non-negative integer"}
			}
			if k == "limit" {
				q.Limit = n
			} else {
				q.Offset = n
			}
		case "fuzzymatching":
			q.Fuzzy = vals[0] == "true"
			if q.Fuzzy {
				q.Unsupported = append(q.Unsupported, k)
			}
		case "includefield":
			for _, f := range vals {
				for _, x := range strings.Split(f, ",") {
					if x == "all" {
						q.IncludeAll = true
						continue
					}
					t, vr, ok := lookup(x)
					if !ok {
						return nil, &QueryError{k, "unknown attribute"}
					}
					if !q.Identifier.Has(t) {
						q.Identifier = append(q.Identifier, dicomio.Element{Tag: t, VR: vr})
					}
				}
			}
		default:
			isExtra := false
			for _, e := range allowExtra {
				if e == k {
					isExtra = true
				}
			}
			if isExtra {
				q.Extra[k] = vals
				continue
			}
			t, vr, ok := lookup(k)
			if !ok {
				return nil, &QueryError{k, "unknown parameter"}
			}
			val := strings.Join(vals, `\`)
			if vr == "UI" {
				val = strings.ReplaceAll(val, ",", `\`)
			}
			if vr == "DA" {
				for _, p := range strings.Split(val, "-") {
					if p != "" && len(p) != 8 {
						return nil, &QueryError{k, "not a date YYYYMMDD"}
					}
				}
			}
			q.Identifier = slicesDel(q.Identifier, t)
			q.Identifier = append(q.Identifier, dicomio.Element{Tag: t, VR: vr, Value: []byte(val)})
		}
	}
	sortDataset(q.Identifier)
	return q, nil
}

func slicesDel(ds dicomio.Dataset, t uint32) dicomio.Dataset {
	out := ds[:0]
	for _, e := range ds {
		if e.Tag != t {
			out = append(out, e)
		}
	}
	return out
}

var ErrPartTooLarge = errors.New("part too large")

type PartReader struct {
	mr  *multipart.Reader
	max int64
}

func NewPartReader(contentType string, body io.Reader, want string, maxPart int64) (*PartReader, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/related" || params["boundary"] == "" {
		return nil, fmt.Errorf("Content-Type must be multipart/related; type=%q", want)
	}
	if t := params["type"]; t != "" && t != want {
		return nil, fmt.Errorf("type must be %q", want)
	}
	return &PartReader{mr: multipart.NewReader(body, params["boundary"]), max: maxPart}, nil
}

type limited struct {
	r io.Reader
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, ErrPartTooLarge
	}
	return n, err
}

func (r *PartReader) Next() (string, io.Reader, error) {
	p, err := r.mr.NextRawPart()
	if err != nil {
		return "", nil, err
	}
	return p.Header.Get("Content-Type"), &limited{p, r.max}, nil
}

type PartWriter struct {
	mw  *multipart.Writer
	typ string
}

func NewPartWriter(w io.Writer, typ string) *PartWriter {
	return &PartWriter{multipart.NewWriter(w), typ}
}
func (p *PartWriter) ContentType() string {
	return `multipart/related; type="` + p.typ + `"; boundary=` + p.mw.Boundary()
}
func (p *PartWriter) Part(ct string, h map[string]string) (io.Writer, error) {
	hd := map[string][]string{"Content-Type": {ct}}
	for k, v := range h {
		hd[k] = []string{v}
	}
	return p.mw.CreatePart(hd)
}
func (p *PartWriter) Close() error { return p.mw.Close() }

type MediaRange struct {
	Type   string
	Params map[string]string
	Q      float64
}

func ParseAccept(h string) ([]MediaRange, error) {
	var out []MediaRange
	for _, part := range strings.Split(h, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("Accept %q is malformed", part)
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			q, _ = strconv.ParseFloat(s, 64)
		}
		out = append(out, MediaRange{mt, params, q})
	}
	return out, nil
}
