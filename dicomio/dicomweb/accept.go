package dicomweb

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MediaRange is one media range of an Accept header (RFC 9110 12.5.1) as
// WADO-RS reads it (PS3.18 8.7): Type is type/subtype in lower case
// ("multipart/related", "application/dicom+json", "*/*"); Params its
// parameters by lower-case name, without q (type and transfer-syntax
// for multipart/related, e.g. type "application/dicom" and
// transfer-syntax "*"; the value of type in lower case, others as
// given); Q its weight, 1 when not given.
type MediaRange struct {
	Type   string
	Params map[string]string
	Q      float64
}

// Bounds on an Accept header.
const (
	maxAcceptLen    = 8 << 10
	maxAcceptRanges = 64
)

// ParseAccept parses an Accept header into its media ranges, highest
// weight first (in header order among equal weights). Ranges of weight 0
// (not acceptable) are kept. An empty header gives none (any type is
// acceptable). Parameter values may be quoted or not: clients send
// type=application/octet-stream unquoted although "/" needs quotes. A
// malformed header is an error (HTTP 400).
func ParseAccept(h string) ([]MediaRange, error) {
	if len(h) > maxAcceptLen {
		return nil, errors.New("parse accept: header too long")
	}
	var out []MediaRange
	p := &acceptParser{s: h}
	for {
		p.space()
		if p.done() {
			break
		}
		if p.peek() == ',' { // empty list elements are allowed (RFC 9110 5.6.1)
			p.i++
			continue
		}
		if len(out) == maxAcceptRanges {
			return nil, fmt.Errorf("parse accept: more than %d media ranges", maxAcceptRanges)
		}
		m, err := p.mediaRange()
		if err != nil {
			return nil, fmt.Errorf("parse accept: %w", err)
		}
		out = append(out, m)
		p.space()
		if !p.done() {
			if p.peek() != ',' {
				return nil, errors.New("parse accept: expected , between media ranges")
			}
			p.i++
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Q > out[j].Q })
	return out, nil
}

// Matches reports whether the range accepts the media type mt
// (type/subtype, parameters not compared): equal, type/* or */*.
func (m MediaRange) Matches(mt string) bool {
	mt = strings.ToLower(mt)
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	if m.Type == "*/*" || m.Type == mt {
		return true
	}
	if typ, ok := strings.CutSuffix(m.Type, "/*"); ok {
		return strings.HasPrefix(mt, typ+"/")
	}
	return false
}

type acceptParser struct {
	s string
	i int
}

func (p *acceptParser) done() bool { return p.i >= len(p.s) }
func (p *acceptParser) peek() byte { return p.s[p.i] }

func (p *acceptParser) space() {
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
}

// isTchar reports an RFC 9110 token character.
func isTchar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *acceptParser) token() string {
	start := p.i
	for !p.done() && isTchar(p.peek()) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *acceptParser) mediaRange() (MediaRange, error) {
	typ := p.token()
	if typ == "" || p.done() || p.peek() != '/' {
		return MediaRange{}, errors.New("malformed media range")
	}
	p.i++
	sub := p.token()
	if sub == "" || typ == "*" && sub != "*" {
		return MediaRange{}, errors.New("malformed media range")
	}
	m := MediaRange{Type: strings.ToLower(typ + "/" + sub), Q: 1}
	seenQ := false
	for {
		p.space()
		if p.done() || p.peek() == ',' {
			return m, nil
		}
		if p.peek() != ';' {
			return MediaRange{}, errors.New("malformed media range parameters")
		}
		p.i++
		p.space()
		if p.done() || p.peek() == ',' {
			return m, nil // a trailing ";" is tolerated
		}
		name := strings.ToLower(p.token())
		if name == "" || p.done() || p.peek() != '=' {
			return MediaRange{}, errors.New("malformed media range parameter")
		}
		p.i++
		val, err := p.value()
		if err != nil {
			return MediaRange{}, err
		}
		if name == "q" {
			if seenQ {
				return MediaRange{}, errors.New("q given twice")
			}
			seenQ = true
			q, err := parseQ(val)
			if err != nil {
				return MediaRange{}, err
			}
			m.Q = q
			continue
		}
		if _, dup := m.Params[name]; dup {
			return MediaRange{}, fmt.Errorf("parameter %s given twice", safeName(name))
		}
		if name == "type" {
			val = strings.ToLower(val)
		}
		if m.Params == nil {
			m.Params = map[string]string{}
		}
		m.Params[name] = val
	}
}

// value reads a parameter value: a quoted string, or (leniently) any
// run of visible characters up to ";", "," or white space.
func (p *acceptParser) value() (string, error) {
	if !p.done() && p.peek() == '"' {
		p.i++
		var b strings.Builder
		for !p.done() {
			c := p.peek()
			p.i++
			switch {
			case c == '"':
				return b.String(), nil
			case c == '\\':
				if p.done() {
					return "", errors.New("unterminated quoted string")
				}
				b.WriteByte(p.peek())
				p.i++
			case c < 0x20 && c != '\t' || c == 0x7F:
				return "", errors.New("control character in a quoted string")
			default:
				b.WriteByte(c)
			}
		}
		return "", errors.New("unterminated quoted string")
	}
	start := p.i
	for !p.done() {
		c := p.peek()
		if c == ';' || c == ',' || c == ' ' || c == '\t' {
			break
		}
		if c <= 0x20 || c >= 0x7F || c == '"' {
			return "", errors.New("malformed parameter value")
		}
		p.i++
	}
	if p.i == start {
		return "", errors.New("empty parameter value")
	}
	return p.s[start:p.i], nil
}

// parseQ reads a weight: 0 to 1 with at most three decimals.
func parseQ(s string) (float64, error) {
	ok := len(s) >= 1 && len(s) <= 5 && (s[0] == '0' || s[0] == '1')
	if ok && len(s) > 1 {
		ok = s[1] == '.' && allDigits(s[2:]) && (s[0] == '0' || strings.Trim(s[2:], "0") == "")
	}
	if !ok {
		return 0, errors.New("malformed q value")
	}
	q, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, errors.New("malformed q value")
	}
	return q, nil
}
