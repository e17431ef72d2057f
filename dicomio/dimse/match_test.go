package dimse

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		vr, key string
		values  []string
		want    bool
	}{
		{"PN", "", []string{"DOE^JOHN"}, true},
		{"PN", "", nil, true},
		{"PN", "*", []string{"X"}, true},
		{"PN", "DOE^JOHN", []string{"DOE^JOHN"}, true},
		{"PN", "doe^john", []string{"DOE^JOHN"}, true},
		{"LO", "abc", []string{"ABC"}, false},
		{"PN", "DOE*", []string{"DOE^JOHN"}, true},
		{"PN", "D?E*", []string{"DOE^JOHN"}, true},
		{"PN", "*JOHN", []string{"DOE^JOHN"}, true},
		{"PN", "*JANE", []string{"DOE^JOHN"}, false},
		{"PN", "DOE", nil, false},
		{"CS", "CT", []string{"MR", "CT"}, true},
		{"CS", "CT", []string{"MR"}, false},
		{"CS", "C?", []string{"CT"}, true},
		{"CS", `MR\CT`, []string{"CT"}, true},
		{"CS", `MR\PT`, []string{"CT", "SR"}, false},
		{"CS", `M?\PT`, []string{"MR"}, true},
		{"IS", `3\4`, []string{"4"}, true},
		{"UI", `1.2.3\1.2.4`, []string{"1.2.4"}, true},
		{"UI", `1.2.3\1.2.4`, []string{"1.2.5"}, false},
		{"UI", "1.2.*", []string{"1.2.5"}, false},
		{"DA", "20240101-20241231", []string{"20240615"}, true},
		{"DA", "20240101-20241231", []string{"20250101"}, false},
		{"DA", "-20240101", []string{"20231231"}, true},
		{"DA", "20240101-", []string{"20231231"}, false},
		{"DA", "20240101", []string{"20240101"}, true},
		{"DA", "2024.01.01", []string{"20240101"}, true},
		{"DA", "20240101-20240131", nil, false},
		{"TM", "080000-120000", []string{"113045.123"}, true},
		{"TM", "080000-12", []string{"125959"}, true},
		{"TM", "080000-12", []string{"130000"}, false},
		{"TM", "1130", []string{"113000"}, true},
		{"DT", "20240101-20240102", []string{"20240101235959"}, true},
	} {
		if got := Match(tc.vr, tc.key, tc.values); got != tc.want {
			t.Errorf("Match(%s, %q, %q) = %v", tc.vr, tc.key, tc.values, got)
		}
	}
}

func FuzzWildcard(f *testing.F) {
	f.Add("D*E?", "DOE^JOHN")
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 64 || len(s) > 64 {
			return
		}
		_ = wildcard(p, s, true)
		if !wildcard("*", s, false) || !wildcard(s, s, false) && !containsMeta(s) {
			t.Fatalf("%q does not match itself or *", s)
		}
	})
}

func containsMeta(s string) bool {
	for _, r := range s {
		if r == '*' || r == '?' {
			return true
		}
	}
	return false
}
