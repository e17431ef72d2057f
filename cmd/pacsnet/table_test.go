package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/pacsnet/pacsnet/api"
)

// The study listings fit 100 columns whatever the values' lengths, keep
// each UID prefix typeable, and show everything with --wide.
func TestStudyListingsFitNarrowTerminals(t *testing.T) {
	attrs := func(uid, acc string) api.StudyAttributes {
		return api.StudyAttributes{StudyUID: uid, PatientID: "MRN-0000000000001234567", PatientName: "VERYLONGFAMILYNAME^GIVENNAME^MIDDLE",
			StudyDate: "20250102", Description: "CT THORAX ABDOMEN PELVIS WITH CONTRAST ARTERIAL AND VENOUS PHASE", AccessionNumber: acc,
			Modalities: []string{"CT", "SR", "KO"}}
	}
	uids := []string{"1.2.840.113619.2.55.3.604688119.969.1268071029.320", "1.2.840.113619.2.55.3.604688119.969.1268071029.321", "2.25.99"}
	var shared []api.SharedStudy
	var studies []api.Study
	for i, u := range uids {
		from := api.PartnerRef{PeerID: "12D3KooWabc", Name: "St Mary's University Hospital of the North"}
		shared = append(shared, api.SharedStudy{StudyAttributes: attrs(u, "ACC"+u[len(u)-2:]), Issuer: from, State: api.SharedAvailable,
			Instances: 1234, Bytes: 512e6, Expires: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Fetched: i == 0})
		studies = append(studies, api.Study{StudyAttributes: attrs(u, "ACC"), Origin: &from, Instances: 134, Expected: 300, Bytes: 99e6})
	}
	for _, wide := range []bool{false, true} {
		var a, b bytes.Buffer
		if err := printShared(&a, shared, wide); err != nil {
			t.Fatal(err)
		}
		if err := printStudies(&b, studies, wide); err != nil {
			t.Fatal(err)
		}
		for _, out := range []string{a.String(), b.String()} {
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if len(lines) != 4 {
				t.Fatalf("wide=%v: %d lines, want 4:\n%s", wide, len(lines), out)
			}
			for _, l := range lines {
				if n := utf8.RuneCountInString(l); !wide && n > narrowWidth {
					t.Errorf("a line of %d columns:\n%s", n, l)
				}
			}
			if wide != strings.Contains(out, uids[0]+" ") || wide != strings.Contains(out, "CONTRAST ARTERIAL AND VENOUS PHASE") {
				t.Errorf("wide=%v: whole UID or description not shown as it should be:\n%s", wide, out)
			}
			// The long common root needs 50 characters to tell the UIDs
			// apart: cut, but still a prefix; the short one is shown whole.
			if !wide && (!strings.Contains(out, "\n2.25.99 ") || !regexp.MustCompile(`(?m)^1\.2\.840\.113619\.2[0-9.]*… `).MatchString(out)) {
				t.Errorf("narrow UIDs:\n%s", out)
			}
		}
		if !wide && !strings.Contains(a.String(), " fetched ") {
			t.Errorf("a fetched study's state is not shown as fetched:\n%s", a.String())
		}
		if !strings.Contains(b.String(), "134/300") || wide && !strings.Contains(b.String(), "VERYLONGFAMILYNAME, GIVENNAME MIDDLE") {
			t.Errorf("partial count or patient name missing:\n%s", b.String())
		}
	}
}

func TestMatchStudy(t *testing.T) {
	cands := []studyCandidate{
		{StudyAttributes: api.StudyAttributes{StudyUID: "1.2.3.41", AccessionNumber: "A1", PatientID: "P1"}},
		{StudyAttributes: api.StudyAttributes{StudyUID: "1.2.3.42", AccessionNumber: "A2", PatientID: "P1"}},
		{StudyAttributes: api.StudyAttributes{StudyUID: "1.2.3.42", AccessionNumber: "A2", PatientID: "P1"}}, // an own copy and a partner's
		{StudyAttributes: api.StudyAttributes{StudyUID: "1.2.3.4", PatientID: "P2"}},
	}
	for _, tc := range []struct {
		name, uid string
		n         int
	}{
		{"1.2.3.4", "1.2.3.4", 1}, // exact, although a prefix of others
		{"1.2.3.41", "1.2.3.41", 1},
		{"1.2.3.42", "1.2.3.42", 1},
		{"1.2.3.4", "1.2.3.4", 1},
		{"1.2.3", "1.2.3", 3},
		{"A2", "1.2.3.42", 1},
		{"P2", "1.2.3.4", 1},
		{"P1", "P1", 2}, // one patient, two studies
		{"9.9", "9.9", 0},
		{"", "", 3}, // resolveStudy never asks for ""
	} {
		uid, m := matchStudy(cands, tc.name)
		if uid != tc.uid || len(m) != tc.n {
			t.Errorf("matchStudy(%q) = %q, %d matches; want %q, %d", tc.name, uid, len(m), tc.uid, tc.n)
		}
	}
}
