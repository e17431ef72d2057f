package uid

import (
	"errors"
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		in      string
		kind    Kind
		problem Problem
	}{
		{"1.2.840.10008.1.2.1", Conformant, 0},
		{"0", Conformant, 0},
		{"1.0.2", Conformant, 0},
		{"1.02.3", LeadingZero, 0},
		{"dccc9599087131742838cc1162a630fea87ba9bf61ac09bfda90d4adfa5ddaed", Letters, 0},
		{"1.2.3a", Letters, 0},
		{strings.Repeat("1", 64), Conformant, 0},
		{"", 0, Empty},
		{strings.Repeat("1", 65), 0, TooLong},
		{".", 0, EmptyComponent},
		{"..", 0, EmptyComponent},
		{"1..2", 0, EmptyComponent},
		{".1.2", 0, EmptyComponent},
		{"1.2.", 0, EmptyComponent},
		{"1.2/3", 0, BadCharacter},
		{"1.2 3", 0, BadCharacter},
		{"1.2\\3", 0, BadCharacter},
		{"1.2\x1b[2J", 0, BadCharacter},
		{"1.2-3", 0, BadCharacter},
		{"1.2%2F", 0, BadCharacter},
		{"1.2é", 0, BadCharacter},
	} {
		kind, err := Check(tc.in)
		var e *Error
		switch {
		case tc.problem == 0 && err != nil:
			t.Errorf("Check(%q): %v, want accepted", tc.in, err)
		case tc.problem != 0 && (!errors.As(err, &e) || e.Problem != tc.problem):
			t.Errorf("Check(%q) = %v, want problem %d", tc.in, err, tc.problem)
		case tc.problem == 0 && kind != tc.kind:
			t.Errorf("Check(%q) kind %d, want %d", tc.in, kind, tc.kind)
		}
		if err != nil && strings.Contains(err.Error(), tc.in) && tc.in != "" {
			t.Errorf("Check(%q): the error quotes the value: %v", tc.in, err)
		}
	}
}

// Every accepted UID is a path segment the HTTP router and the file system
// take as it is.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"1.2.3", "..", "a.b", "1..2", "1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !Valid(s) {
			return
		}
		if url.PathEscape(s) != s || path.Clean("/"+s) != "/"+s || s == "." || s == ".." || len(s) > MaxLen {
			t.Fatalf("accepted %q is not a plain path segment", s)
		}
	})
}
