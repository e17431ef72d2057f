package dimse

import (
	"strings"
)

// Match reports whether a record's value(s) of an attribute match a C-FIND
// key of that attribute (PS3.4 C.2.2.2): universal matching (an empty
// key), single value matching (exact; for PN, case-insensitive),
// wildcard matching (* and ?, for text VRs), list of UID matching (UI
// values separated by backslashes), and range matching (DA, TM, DT:
// "a-b", "-b", "a-"). An attribute with several values matches when one of
// them does. A value the record lacks matches only universal keys.
func Match(vr, key string, values []string) bool {
	key = strings.TrimRight(strings.TrimLeft(key, " "), " \x00")
	if key == "" || key == "*" {
		return true
	}
	for _, v := range values {
		if matchOne(vr, key, strings.TrimRight(strings.TrimLeft(v, " "), " \x00")) {
			return true
		}
	}
	return false
}

func matchOne(vr, key, v string) bool {
	switch vr {
	case "AE", "AS", "CS", "DS", "IS":
		// Multiple value matching (PS3.4 C.2.2.2.8; QIDO-RS lists): a
		// backslash cannot be part of these values, so a key of several
		// values matches any of them.
		if strings.Contains(key, `\`) {
			for _, k := range strings.Split(key, `\`) {
				if k = strings.TrimSpace(k); k != "" && matchOne(vr, k, v) {
					return true
				}
			}
			return false
		}
	}
	switch vr {
	case "UI":
		for _, k := range strings.Split(key, `\`) {
			if k == v {
				return true
			}
		}
		return false
	case "DA", "TM", "DT":
		if lo, hi, isRange := strings.Cut(key, "-"); isRange && (vr != "DT" || strings.Count(key, "-") == 1) {
			return inRange(vr, lo, hi, v)
		}
		for _, k := range strings.Split(key, `\`) {
			if norm(vr, k, false) == norm(vr, v, false) {
				return true
			}
		}
		return false
	case "AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT":
		fold := vr == "PN"
		if strings.ContainsAny(key, "*?") {
			return wildcard(key, v, fold)
		}
		if fold {
			return strings.EqualFold(key, v)
		}
		return key == v
	}
	return key == v
}

// inRange compares normalized values: a missing lower bound is the
// earliest, a missing upper bound the latest.
func inRange(vr, lo, hi, v string) bool {
	if v == "" {
		return false
	}
	nv := norm(vr, v, false)
	if lo != "" && nv < norm(vr, lo, false) {
		return false
	}
	if hi != "" && nv > norm(vr, hi, true) {
		return false
	}
	return true
}

// norm makes dates and times comparable as strings: DA YYYYMMDD (the
// legacy YYYY.MM.DD too), TM HHMMSS.FFFFFF, DT both; components a value
// leaves out are the start of the period, or its end for an upper bound.
func norm(vr, s string, upper bool) string {
	s = strings.ReplaceAll(s, ".", "·") // keep the fraction point apart from legacy date dots
	if vr == "DA" {
		s = strings.ReplaceAll(s, "·", "")
		return pad(s, "00000101", "99991231", upper)
	}
	s = strings.ReplaceAll(s, "·", ".")
	if i := strings.IndexAny(s, "+-"); i > 0 && vr == "DT" {
		s = s[:i] // offsets from UTC are ignored
	}
	if vr == "TM" {
		s = strings.ReplaceAll(s, ":", "")
		return pad(s, "000000.000000", "235959.999999", upper)
	}
	return pad(s, "00000101000000.000000", "99991231235959.999999", upper)
}

func pad(s, low, high string, upper bool) string {
	if len(s) >= len(low) {
		return s[:len(low)]
	}
	if upper {
		return s + high[len(s):]
	}
	return s + low[len(s):]
}

// wildcard matches * (any run) and ? (one character), iteratively.
func wildcard(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToUpper(pattern), strings.ToUpper(s)
	}
	p, v := []rune(pattern), []rune(s)
	pi, vi, star, mark := 0, 0, -1, 0
	for vi < len(v) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == v[vi]):
			pi++
			vi++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, vi
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
