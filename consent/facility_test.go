package consent

import "testing"

// Entries written after SetFacility name the facility, grants included;
// entries written before keep their hash (the field is omitted when
// empty) and the whole log verifies.
func TestFacility(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	if _, err := l.Record(Entry{Action: ActImport, Actor: "u-1"}); err != nil {
		t.Fatal(err)
	}
	l.SetFacility("St Mary")
	bob := peerOf(t, fixedKey(t, 2))
	if _, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, Expires: t0.Add(3600e9)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(Entry{Action: ActExport, Actor: "u-1"}); err != nil {
		t.Fatal(err)
	}
	es, _ := l.Entries(0, 0)
	want := []string{"", "St Mary", "St Mary"}
	for i, e := range es {
		if e.Facility != want[i] {
			t.Errorf("entry %d: facility %q, want %q", e.Seq, e.Facility, want[i])
		}
		if h, _ := e.ComputeHash(); h != e.Hash {
			t.Errorf("entry %d: hash does not match", e.Seq)
		}
	}
	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
}
