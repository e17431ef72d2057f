package consent

import (
	"encoding/json"
	"testing"
	"time"
)

func BenchmarkCheckAllowed(b *testing.B) {
	clock := newClock()
	l := newLedger(b, NewMemStore(), clock)
	bob := peerOf(b, fixedKey(b, 2))
	studies := make([]string, 500)
	for i := range studies {
		studies[i] = "1.2.3." + itoa(i)
	}
	var id string
	for range 200 { // a ledger with some grants in it
		g, err := l.Grant(GrantRequest{Grantee: bob, Studies: studies, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		id = g.Grant.ID
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Check(bob, id, studies[499], ActionFetch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkGrant500Studies(b *testing.B) {
	clock := newClock()
	l := newLedger(b, NewMemStore(), clock)
	bob := peerOf(b, fixedKey(b, 2))
	studies := make([]string, 500)
	for i := range studies {
		studies[i] = "1.2.3." + itoa(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Grant(GrantRequest{Grantee: bob, Studies: studies, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	clock := newClock()
	l := newLedger(b, NewMemStore(), clock)
	bob := peerOf(b, fixedKey(b, 2))
	e := Entry{Peer: bob, Action: ActFetchAllowed, Study: studyA, GrantID: "22301fb8d82978daf007b05614969f34", Decision: DecisionAllow}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Record(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify10k(b *testing.B) {
	clock := newClock()
	l := newLedger(b, NewMemStore(), clock)
	for range 10000 {
		if _, err := l.Record(Entry{Action: ActFetchAllowed, Decision: DecisionAllow}); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if _, err := l.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
