package dicomweb

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Level is the level of a QIDO-RS search: the resource the URL names
// (/studies, .../series, .../instances).
type Level int

// QIDO-RS search levels.
const (
	LevelStudy Level = iota + 1
	LevelSeries
	LevelInstance
)

func (l Level) String() string {
	switch l {
	case LevelStudy:
		return "STUDY"
	case LevelSeries:
		return "SERIES"
	case LevelInstance:
		return "IMAGE"
	}
	return "Level(" + strconv.Itoa(int(l)) + ")"
}

// Query is a parsed QIDO-RS query string (PS3.18 8.3.4).
type Query struct {
	Level Level
	// Identifier is a C-FIND-style identifier: the matching keys with
	// their values in the DICOM encoding (a list joined with `\`,
	// wildcards * and ?, ranges "a-b", "-b", "a-" as given, PN as given)
	// and every requested return key as an empty element, in tag order,
	// each with its dictionary VR. Specific Character Set (0008,0005) is
	// ISO_IR 192 when a value is not ASCII (query values are UTF-8). It
	// holds neither Query/Retrieve Level nor the keys of the URL's path.
	Identifier dicomio.Dataset
	IncludeAll bool // includefield=all
	Limit      int  // 0: none given
	Offset     int
	Fuzzy      bool // fuzzymatching=true
	// Unsupported names the parameters accepted but ignored, for a
	// Warning header (fuzzymatching, emptyvaluematching and
	// multiplevaluematching when true).
	Unsupported []string
	// Extra holds the parameters the caller declared its own (allowExtra).
	Extra url.Values
}

// QueryError is a query string ParseQuery refuses (HTTP 400). Param is
// the parameter's name (printable ASCII, at most 64 bytes); Msg never
// holds a parameter's value.
type QueryError struct{ Param, Msg string }

func (e *QueryError) Error() string {
	if e.Param == "" {
		return "query: " + e.Msg
	}
	return fmt.Sprintf("query parameter %q: %s", e.Param, e.Msg)
}

// Bounds on a query string: a search names a few dozen attributes.
const (
	MaxQueryLen    = 64 << 10
	MaxQueryParams = 200
	maxLimit       = 1<<31 - 1
)

// Attributes a client may not match on: the server sets them.
const (
	tagSpecificCharset = 0x00080005
	tagQRLevel         = 0x00080052
)

func qerr(param, format string, args ...any) *QueryError {
	return &QueryError{Param: safeName(param), Msg: fmt.Sprintf(format, args...)}
}

// safeName is a parameter name fit for an error and a log: printable
// ASCII, at most 64 bytes.
func safeName(s string) string {
	b := []byte(s)
	if len(b) > 64 {
		b = append(b[:61:61], "..."...)
	}
	for i, c := range b {
		if c < 0x20 || c >= 0x7F {
			b[i] = '?'
		}
	}
	return string(b)
}

// ParseQuery parses the query string of a QIDO-RS search at a level.
// Attributes are named by keyword (PatientName) or tag (00100010);
// sequence paths (a.b) are refused. A UID attribute may be given a list
// of values, comma separated or by repeating the parameter, meaning any
// of them (PS3.18 8.3.4.1); so may the attributes of VR AE, AS, CS, DA,
// DS, DT, IS and TM, whose values cannot hold a comma. Text attributes
// (PN, LO, SH, ...) keep commas as given and may not be repeated.
// includefield may repeat and hold comma lists; limit and offset are
// non-negative integers. Parameter names listed in allowExtra are
// collected into Query.Extra unchecked. Any other parameter, an unknown
// attribute, a malformed date, time or range, a value too long for its
// VR or a control character is a *QueryError.
func ParseQuery(level Level, rawQuery string, allowExtra ...string) (*Query, error) {
	if level < LevelStudy || level > LevelInstance {
		return nil, fmt.Errorf("parse query: invalid level %d", int(level))
	}
	if len(rawQuery) > MaxQueryLen {
		return nil, qerr("", "query string longer than %d bytes", MaxQueryLen)
	}
	q := &Query{Level: level}
	type match struct {
		name   string
		vr     string
		values []string
	}
	matches := map[uint32]*match{}
	returns := map[uint32]string{}
	seen := map[string]bool{}
	once := func(name string) error {
		if seen[name] {
			return qerr(name, "given more than once")
		}
		seen[name] = true
		return nil
	}
	n := 0
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if pair == "" {
			continue
		}
		if n++; n > MaxQueryParams {
			return nil, qerr("", "more than %d parameters", MaxQueryParams)
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil {
			return nil, qerr(rawName, "malformed percent-encoding in the name")
		}
		if err2 != nil {
			return nil, qerr(name, "malformed percent-encoding in the value")
		}
		if name == "" {
			return nil, qerr("", "a parameter has no name")
		}
		if !utf8.ValidString(name) || hasControl(name) {
			return nil, qerr(name, "name holds a control character or invalid UTF-8")
		}
		if isExtra(name, allowExtra) {
			if q.Extra == nil {
				q.Extra = url.Values{}
			}
			q.Extra.Add(name, value)
			continue
		}
		if !utf8.ValidString(value) {
			return nil, qerr(name, "value is not valid UTF-8")
		}
		if hasControl(value) {
			return nil, qerr(name, "value holds a control character")
		}
		switch name {
		case "includefield":
			for _, f := range strings.Split(value, ",") {
				f = strings.TrimSpace(f)
				if f == "all" {
					q.IncludeAll = true
					continue
				}
				t, vr, err := attribute(name, f)
				if err != nil {
					return nil, err
				}
				returns[t] = vr
			}
		case "limit", "offset":
			if err := once(name); err != nil {
				return nil, err
			}
			v, err := uintParam(name, value)
			if err != nil {
				return nil, err
			}
			if name == "limit" {
				q.Limit = v
			} else {
				q.Offset = v
			}
		case "fuzzymatching", "emptyvaluematching", "multiplevaluematching":
			if err := once(name); err != nil {
				return nil, err
			}
			switch value {
			case "true":
				q.Unsupported = append(q.Unsupported, name)
				if name == "fuzzymatching" {
					q.Fuzzy = true
				}
			case "false":
			default:
				return nil, qerr(name, "must be true or false")
			}
		default:
			t, vr, err := attribute(name, name)
			if err != nil {
				return nil, err
			}
			if t == tagSpecificCharset || t == tagQRLevel {
				return nil, qerr(name, "is set by the server, not a matching key")
			}
			vals, err := matchValues(name, vr, value)
			if err != nil {
				return nil, err
			}
			if m := matches[t]; m != nil {
				if !listVR(vr) || len(m.values) == 1 && m.values[0] == "" || len(vals) == 1 && vals[0] == "" {
					return nil, qerr(name, "given more than once")
				}
				if isRange(vr, m.values) || isRange(vr, vals) {
					return nil, qerr(name, "a range cannot be part of a list")
				}
				m.values = append(m.values, vals...)
				continue
			}
			matches[t] = &match{name: name, vr: vr, values: vals}
		}
	}
	ascii := true
	for t, m := range matches {
		v := strings.Join(m.values, `\`)
		if len(v) > 0xFFFE {
			return nil, qerr(m.name, "value too long")
		}
		for i := 0; i < len(v); i++ {
			if v[i] >= 0x80 {
				ascii = false
			}
		}
		q.Identifier.Set(t, m.vr, v)
	}
	for t, vr := range returns {
		if !q.Identifier.Has(t) {
			q.Identifier.SetBytes(t, vr, nil)
		}
	}
	if !ascii {
		q.Identifier.Set(tagSpecificCharset, "CS", "ISO_IR 192")
	}
	return q, nil
}

func isExtra(name string, allow []string) bool {
	for _, a := range allow {
		if a == name {
			return true
		}
	}
	return false
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7F || r >= 0x80 && r < 0xA0 {
			return true
		}
	}
	return false
}

func uintParam(name, v string) (int, error) {
	if v == "" || len(v) > 10 || strings.Trim(v, "0123456789") != "" {
		return 0, qerr(name, "must be a non-negative integer")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > maxLimit {
		return 0, qerr(name, "must be at most %d", maxLimit)
	}
	return int(n), nil
}

// attribute resolves a keyword or an 8-digit tag to its tag and
// dictionary VR (the first where the dictionary lists several).
func attribute(param, id string) (uint32, string, error) {
	if id == "" {
		return 0, "", qerr(param, "names no attribute")
	}
	if strings.Contains(id, ".") {
		return 0, "", qerr(param, "sequence paths (attribute.attribute) are not supported")
	}
	var info tag.Info
	var err error
	if len(id) == 8 && isHex(id) {
		v, _ := strconv.ParseUint(id, 16, 32)
		t := uint32(v)
		if t>>16%2 == 1 {
			return 0, "", qerr(param, "private attributes are not supported")
		}
		if t&0xFFFF == 0 {
			return 0, "", qerr(param, "group lengths are not attributes to search")
		}
		info, err = tag.Find(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)})
	} else {
		if !isKeyword(id) {
			return 0, "", qerr(param, "is neither a DICOM keyword nor an 8-digit tag")
		}
		if c, ok := keywords.Load(id); ok {
			a := c.(attr)
			return a.tag, a.vr, nil
		}
		info, err = tag.FindByKeyword(id) // a walk of the whole dictionary
		if err == nil && info.Keyword != id {
			err = errors.New("matched a name, not a keyword")
		}
	}
	if err != nil || len(info.VRs) == 0 {
		return 0, "", qerr(param, "unknown attribute %s", safeName(id))
	}
	vr := info.VRs[0]
	switch vr {
	case "xs", "US or SS", "US or SS or OW":
		vr = "US"
	case "ox", "OB or OW":
		vr = "OB"
	}
	if len(vr) != 2 {
		vr = "UN"
	}
	if info.Keyword == id {
		keywords.Store(id, attr{info.Tag.Uint32(), vr})
	}
	return info.Tag.Uint32(), vr, nil
}

// keywords caches the keywords found in the dictionary (bounded by its
// size), which tag.FindByKeyword finds by a walk of it.
var keywords sync.Map // string → attr

type attr struct {
	tag uint32
	vr  string
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isKeyword(s string) bool {
	if len(s) > 64 || s == "" || !('A' <= s[0] && s[0] <= 'Z' || 'a' <= s[0] && s[0] <= 'z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// listVR reports whether values of vr cannot hold a comma, so that a
// comma in a query value separates a list.
func listVR(vr string) bool {
	switch vr {
	case "UI", "AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM":
		return true
	}
	return false
}

// maxLen is the longest value of a VR (PS3.5 6.2), 0 for no bound
// beyond the query's.
var maxLen = map[string]int{
	"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12,
	"LO": 64, "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UI": 64,
}

// matchValues checks a matching key's value and splits it into a list.
func matchValues(name, vr, value string) ([]string, error) {
	switch vr {
	case "SQ":
		return nil, qerr(name, "sequence matching is not supported; use includefield")
	case "OB", "OD", "OF", "OL", "OV", "OW", "UN", "AT", "FL", "FD", "SL", "SS", "SV", "UL", "US", "UV":
		return nil, qerr(name, "matching on a binary attribute (VR %s) is not supported; use includefield", vr)
	}
	if value == "" {
		return []string{""}, nil // universal matching: a return key
	}
	vals := []string{value}
	if listVR(vr) {
		vals = strings.Split(value, ",")
	}
	for _, v := range vals {
		if v == "" {
			return nil, qerr(name, "empty value in a list")
		}
		if err := checkValue(name, vr, v, len(vals) > 1); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

func checkValue(name, vr, v string, inList bool) error {
	switch vr {
	case "DA", "TM", "DT":
		lo, hi, rng := cutRange(vr, v)
		if !rng {
			if !validDate(vr, v) {
				return qerr(name, "malformed %s", vrWhat[vr])
			}
			return nil
		}
		if inList {
			return qerr(name, "a range cannot be part of a list")
		}
		if lo == "" && hi == "" {
			return qerr(name, "a range needs at least one bound")
		}
		if lo != "" && !validDate(vr, lo) || hi != "" && !validDate(vr, hi) {
			return qerr(name, "malformed %s range", vrWhat[vr])
		}
		return nil
	case "UI":
		if len(v) > 64 || strings.Trim(v, "0123456789.") != "" || v[0] == '.' || v[len(v)-1] == '.' || strings.Contains(v, "..") {
			return qerr(name, "malformed UID")
		}
		return nil
	case "IS":
		if _, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32); err != nil || len(v) > 12 {
			return qerr(name, "malformed integer string")
		}
		return nil
	case "DS":
		if _, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil || len(v) > 16 || strings.ContainsAny(v, "xXpP_nN") {
			return qerr(name, "malformed decimal string")
		}
		return nil
	case "AS":
		if len(v) != 4 || strings.Trim(v[:3], "0123456789") != "" || !strings.Contains("DWMY", v[3:]) {
			return qerr(name, "malformed age string (nnnD, nnnW, nnnM or nnnY)")
		}
		return nil
	case "PN":
		groups := strings.Split(v, "=")
		if len(groups) > 3 {
			return qerr(name, "more than three component groups")
		}
		for _, g := range groups {
			if len(g) > 64 {
				return qerr(name, "component group longer than 64 characters")
			}
			if strings.Count(g, "^") > 4 {
				return qerr(name, "more than five name components")
			}
		}
		return nil
	}
	if m := maxLen[vr]; m > 0 {
		for _, part := range strings.Split(v, `\`) {
			if utf8.RuneCountInString(part) > m {
				return qerr(name, "value longer than %d characters (VR %s)", m, vr)
			}
		}
	}
	return nil
}

var vrWhat = map[string]string{"DA": "date (YYYYMMDD)", "TM": "time (HHMMSS.FFFFFF)", "DT": "date-time (YYYYMMDDHHMMSS.FFFFFF&ZZXX)"}

// cutRange splits a range "a-b", "-b" or "a-". A DT value holds a range
// when it has exactly one hyphen, as the query room reads it; a DT with
// a negative UTC offset is then a single value.
func cutRange(vr, v string) (lo, hi string, ok bool) {
	if vr == "DT" && strings.Count(v, "-") != 1 {
		return "", "", false
	}
	return strings.Cut(v, "-")
}

func isRange(vr string, vals []string) bool {
	if vr != "DA" && vr != "TM" && vr != "DT" {
		return false
	}
	for _, v := range vals {
		if _, _, ok := cutRange(vr, v); ok {
			return true
		}
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validDate(vr, v string) bool {
	switch vr {
	case "DA":
		if len(v) != 8 || !allDigits(v) {
			return false
		}
		_, err := time.Parse("20060102", v)
		return err == nil
	case "TM":
		return validTime(v)
	}
	// DT: YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]
	if i := strings.IndexAny(v, "+-"); i >= 0 {
		off := v[i+1:]
		if len(off) != 4 || !allDigits(off) {
			return false
		}
		if h, m := atoi2(off[:2]), atoi2(off[2:]); h > 14 || m > 59 {
			return false
		}
		v = v[:i]
	}
	date, clock := v, ""
	if len(v) > 8 {
		date, clock = v[:8], v[8:]
	}
	switch len(date) {
	case 4, 6, 8:
	default:
		return false
	}
	if !allDigits(date) {
		return false
	}
	if len(date) >= 6 {
		if _, err := time.Parse("20060102", (date + "01")[:8]); err != nil {
			return false
		}
	}
	if clock == "" {
		return true
	}
	if len(date) != 8 {
		return false
	}
	return validTime(clock)
}

// validTime checks HH[MM[SS[.F{1,6}]]].
func validTime(v string) bool {
	hms, frac, hasFrac := strings.Cut(v, ".")
	if hasFrac && (len(hms) != 6 || frac == "" || len(frac) > 6 || !allDigits(frac)) {
		return false
	}
	switch len(hms) {
	case 2, 4, 6:
	default:
		return false
	}
	if !allDigits(hms) || atoi2(hms[:2]) > 23 {
		return false
	}
	if len(hms) >= 4 && atoi2(hms[2:4]) > 59 {
		return false
	}
	if len(hms) == 6 && atoi2(hms[4:6]) > 60 {
		return false
	}
	return true
}

func atoi2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }
