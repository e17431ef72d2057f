// Package uid is pacsnet's one rule for DICOM unique identifiers: what an
// instance may carry to be stored, what a grant, a manifest, an export and
// the API accept. One rule everywhere, so that whatever is stored can be
// granted, fetched, exported and named in a URL path.
//
// A UID is accepted when it is 1 to 64 characters of ASCII digits, letters
// and dots, with no empty component (so it neither starts nor ends with a
// dot, and "." and ".." are not UIDs). PS3.5 §9.1 allows digits only; real
// archives hold UIDs made of letters and digits (a hex digest, for one,
// that DCMTK and pydicom accept), so letters are accepted and reported
// (see [Check]). Every accepted UID is a safe file name and URL path
// segment without escaping.
//
// The package imports nothing but the standard library: dicomio,
// consent, wire, the node and the CLI all use it.
package uid

import "fmt"

// MaxLen is the longest UID, in bytes (PS3.5 §9.1).
const MaxLen = 64

// Kind says how far an accepted UID is from PS3.5 §9.1.
type Kind int

const (
	Conformant  Kind = iota // digits and dots as PS3.5 §9.1 says
	LeadingZero             // a component other than "0" starts with 0: accepted
	Letters                 // has letters: accepted, not a DICOM UID
)

// Problem says why a string is not a UID.
type Problem int

const (
	Empty          Problem = iota + 1 // no characters
	TooLong                           // over MaxLen
	BadCharacter                      // something other than a digit, letter or dot
	EmptyComponent                    // starts or ends with a dot, or has ".."
)

// Error is a refused UID. It never quotes the value: UIDs may come from
// patient data and the message may reach a log or a peer.
type Error struct {
	Problem Problem
	Len     int // the refused value's length
}

func (e *Error) Error() string {
	switch e.Problem {
	case Empty:
		return "UID is empty"
	case TooLong:
		return fmt.Sprintf("UID is %d characters long; a UID has at most %d", e.Len, MaxLen)
	case BadCharacter:
		return "UID contains characters other than digits, letters and dots"
	default:
		return "UID has an empty component (a leading, trailing or doubled dot)"
	}
}

// Check applies the rule. An accepted UID gets its Kind and a nil error; a
// refused one an *Error.
func Check(s string) (Kind, error) {
	if s == "" {
		return 0, &Error{Problem: Empty}
	}
	if len(s) > MaxLen {
		return 0, &Error{Problem: TooLong, Len: len(s)}
	}
	kind := Conformant
	start := true // at the start of a component
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if start {
				return 0, &Error{Problem: EmptyComponent, Len: len(s)}
			}
			start = true
			continue
		case c >= '0' && c <= '9':
			if start && c == '0' && i+1 < len(s) && s[i+1] != '.' && kind == Conformant {
				kind = LeadingZero
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			kind = Letters
		default:
			return 0, &Error{Problem: BadCharacter, Len: len(s)}
		}
		start = false
	}
	if start {
		return 0, &Error{Problem: EmptyComponent, Len: len(s)}
	}
	return kind, nil
}

// Valid reports whether s is accepted.
func Valid(s string) bool {
	_, err := Check(s)
	return err == nil
}
