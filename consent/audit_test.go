package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
)

// auditLedger returns a ledger whose log holds n Record entries.
func auditLedger(t testing.TB, n int) (*Ledger, *MemStore) {
	t.Helper()
	clock := newClock()
	s := NewMemStore()
	l := newLedger(t, s, clock)
	bob := peerOf(t, fixedKey(t, 2))
	for i := range n {
		clock.Advance(time.Second)
		if _, err := l.Record(Entry{Actor: "system", Peer: bob, Action: ActFetchAllowed, Study: studyA, Decision: DecisionAllow, Reason: fmt.Sprint("block ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	return l, s
}

func rawEntry(t *testing.T, s *MemStore, seq uint64) Entry {
	t.Helper()
	var e Entry
	if err := json.Unmarshal(s.m[string(auditKey(seq))], &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func putEntry(t *testing.T, s *MemStore, key uint64, e Entry) {
	t.Helper()
	v, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit([]KV{{Key: auditKey(key), Value: v}}); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyOK(t *testing.T) {
	l, _ := auditLedger(t, 0)
	res, err := l.Verify()
	if err != nil || res.Entries != 0 || res.Head != zeroHash {
		t.Fatalf("empty log: %+v, %v", res, err)
	}
	l, _ = auditLedger(t, 10)
	res, err = l.Verify()
	if err != nil {
		t.Fatal(err)
	}
	last, err := l.Entries(9, 1)
	if err != nil || len(last) != 1 {
		t.Fatal(err)
	}
	if res.Entries != 10 || res.Head != last[0].Hash {
		t.Fatalf("Verify = %+v, last entry %+v", res, last[0])
	}
	first, _ := l.Entries(0, 1)
	if first[0].Prev != zeroHash || first[0].Seq != 1 {
		t.Fatalf("first entry %+v", first[0])
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(t *testing.T, s *MemStore)
		wantSeq string // the error must name this entry
	}{
		{"edited field", func(t *testing.T, s *MemStore) {
			e := rawEntry(t, s, 4)
			e.Decision = DecisionDeny
			putEntry(t, s, 4, e)
		}, "entry 4:"},
		{"edited time", func(t *testing.T, s *MemStore) {
			e := rawEntry(t, s, 2)
			e.Time = e.Time.Add(time.Nanosecond)
			putEntry(t, s, 2, e)
		}, "entry 2:"},
		{"edited JSON bytes", func(t *testing.T, s *MemStore) {
			k := string(auditKey(6))
			s.Commit([]KV{{Key: []byte(k), Value: []byte(strings.Replace(string(s.m[k]), "block 5", "block 7", 1))}})
		}, "entry 6:"},
		{"deleted entry", func(t *testing.T, s *MemStore) { s.delete(string(auditKey(5))) }, "entry 5:"},
		{"deleted last entry", func(t *testing.T, s *MemStore) { s.delete(string(auditKey(10))) }, "entry 10:"},
		{"deleted last entry and head rewritten", func(t *testing.T, s *MemStore) {
			// The stored head now agrees, but this process knows better.
			e9 := rawEntry(t, s, 9)
			hv, _ := json.Marshal(headRecord{Seq: 9, Hash: e9.Hash})
			s.delete(string(auditKey(10)))
			s.Commit([]KV{{Key: []byte(headKey), Value: hv}})
		}, "entry 10:"},
		{"reordered pair", func(t *testing.T, s *MemStore) {
			e3, e4 := rawEntry(t, s, 3), rawEntry(t, s, 4)
			putEntry(t, s, 3, e4)
			putEntry(t, s, 4, e3)
		}, "entry 3:"},
		{"reordered pair renumbered", func(t *testing.T, s *MemStore) {
			e3, e4 := rawEntry(t, s, 3), rawEntry(t, s, 4)
			e3.Seq, e4.Seq = 4, 3
			putEntry(t, s, 3, e4)
			putEntry(t, s, 4, e3)
		}, "entry 3:"},
		{"forged hash recomputed", func(t *testing.T, s *MemStore) {
			e := rawEntry(t, s, 7)
			e.Decision = DecisionDeny
			e.Hash, _ = e.ComputeHash()
			putEntry(t, s, 7, e)
		}, "entry 8:"},
		{"forged last entry with head rewritten", func(t *testing.T, s *MemStore) {
			e := rawEntry(t, s, 10)
			e.Reason = "nothing to see"
			e.Hash, _ = e.ComputeHash()
			putEntry(t, s, 10, e)
			hv, _ := json.Marshal(headRecord{Seq: 10, Hash: e.Hash})
			s.Commit([]KV{{Key: []byte(headKey), Value: hv}})
		}, "entry 10:"},
		{"undecodable entry", func(t *testing.T, s *MemStore) {
			s.Commit([]KV{{Key: auditKey(1), Value: []byte("not json")}})
		}, "entry 1:"},
		{"head record deleted", func(t *testing.T, s *MemStore) { s.delete(headKey) }, "no head record"},
		{"bogus key", func(t *testing.T, s *MemStore) {
			s.Commit([]KV{{Key: []byte("audit/x"), Value: []byte("{}")}})
		}, "malformed key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, s := auditLedger(t, 10)
			if _, err := l.Verify(); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			tt.tamper(t, s)
			_, err := l.Verify()
			if !errors.Is(err, ErrAuditCorrupt) {
				t.Fatalf("err = %v, want ErrAuditCorrupt", err)
			}
			if !strings.Contains(err.Error(), tt.wantSeq) {
				t.Errorf("error %q does not name %q", err, tt.wantSeq)
			}
		})
	}
}

func TestEntries(t *testing.T) {
	l, _ := auditLedger(t, 25)
	tests := []struct {
		after      uint64
		limit      int
		first, len int
	}{
		{0, 0, 1, 25},
		{0, 10, 1, 10},
		{10, 10, 11, 10},
		{20, 10, 21, 5},
		{25, 10, 0, 0},
		{1 << 62, 10, 0, 0},
		{^uint64(0), 10, 0, 0},
		{0, MaxEntriesLimit + 5, 1, 25},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.after, "/", tt.limit), func(t *testing.T) {
			got, err := l.Entries(tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.len {
				t.Fatalf("%d entries, want %d", len(got), tt.len)
			}
			for i, e := range got {
				if e.Seq != uint64(tt.first+i) {
					t.Fatalf("entry %d has seq %d", i, e.Seq)
				}
			}
		})
	}
}

func TestRecordFieldHandling(t *testing.T) {
	l, _ := auditLedger(t, 0)
	bob := peerOf(t, fixedKey(t, 2))
	bad := []struct {
		name string
		e    Entry
	}{
		{"no action", Entry{}},
		{"action with spaces", Entry{Action: "fetch allowed"}},
		{"action too long", Entry{Action: strings.Repeat("a", 65)}},
		{"unknown decision", Entry{Action: ActFetchDenied, Decision: "maybe"}},
		{"garbage peer", Entry{Action: ActFetchDenied, Peer: "garbage"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Record(tt.e); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
	t.Run("caller's seq, time, prev and hash are ignored", func(t *testing.T) {
		e, err := l.Record(Entry{Seq: 99, Time: t0.Add(time.Hour), Prev: "x", Hash: "y", Action: ActImport})
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != 1 || !e.Time.Equal(t0) || e.Prev != zeroHash || e.Hash == "y" || e.Actor != ActorSystem {
			t.Fatalf("stored %+v", e)
		}
	})
	t.Run("any valid peer ID is recorded", func(t *testing.T) {
		p := ecdsaPeer(t)
		e, err := l.Record(Entry{Action: ActFetchDenied, Peer: p})
		if err != nil || e.Peer != p {
			t.Fatalf("Record with an ECDSA peer: %v", err)
		}
	})
	t.Run("hostile text is kept, cleaned and cut", func(t *testing.T) {
		e, err := l.Record(Entry{Action: ActFetchDenied, Peer: bob, Study: strings.Repeat("9", 500) + "\x00\n", Reason: "bad\xffutf8\x1b[31m" + strings.Repeat("é", 1000), GrantID: strings.Repeat("z", 100)})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{e.Study, e.Reason, e.GrantID} {
			if !utf8.ValidString(f) || strings.ContainsAny(f, "\x00\n\x1b") {
				t.Errorf("field not cleaned: %q", f)
			}
		}
		if len(e.Study) > maxStudyFieldLen || len(e.Reason) > maxReasonLen || len(e.GrantID) > maxGrantFieldLen {
			t.Errorf("fields not cut: %d %d %d", len(e.Study), len(e.Reason), len(e.GrantID))
		}
		stored, err := l.Entries(e.Seq-1, 1)
		if err != nil || stored[0] != e {
			t.Fatalf("stored entry differs from the returned one: %v", err)
		}
		if _, err := l.Verify(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRecordConcurrent(t *testing.T) {
	l, _ := auditLedger(t, 0)
	bob := peerOf(t, fixedKey(t, 2))
	const workers, per = 8, 200
	var wg sync.WaitGroup
	seqs := make(chan uint64, workers*per)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				e, err := l.Record(Entry{Peer: bob, Action: ActFetchAllowed, Decision: DecisionAllow, Reason: fmt.Sprint(w, "/", i)})
				if err != nil {
					errs <- err
					return
				}
				seqs <- e.Seq
			}
		}()
	}
	// Readers run alongside the writers.
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Verify(); err != nil {
				errs <- fmt.Errorf("concurrent Verify: %w", err)
				return
			}
			if _, err := l.Entries(0, 50); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	close(seqs)
	seen := make(map[uint64]bool)
	for s := range seqs {
		if seen[s] {
			t.Fatalf("seq %d handed out twice", s)
		}
		seen[s] = true
	}
	res, err := l.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != workers*per || len(seen) != workers*per {
		t.Fatalf("Verify: %d entries, %d distinct seqs; want %d", res.Entries, len(seen), workers*per)
	}
}

// flakyStore fails the next Commit on demand, after optionally applying it
// (the worst case: the write landed but the caller was told it failed).
type flakyStore struct {
	*MemStore
	fail, apply bool
}

func (f *flakyStore) Commit(kvs []KV) error {
	if f.fail {
		f.fail = false
		if f.apply {
			f.MemStore.Commit(kvs)
		}
		return errors.New("disk on fire")
	}
	return f.MemStore.Commit(kvs)
}

func TestCommitFailure(t *testing.T) {
	for _, apply := range []bool{false, true} {
		t.Run(fmt.Sprint("applied=", apply), func(t *testing.T) {
			clock := newClock()
			s := &flakyStore{MemStore: NewMemStore()}
			l := newLedger(t, s, clock)
			bob := peerOf(t, fixedKey(t, 2))
			if _, err := l.Record(Entry{Action: ActImport}); err != nil {
				t.Fatal(err)
			}
			s.fail, s.apply = true, apply
			if _, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)}); err == nil {
				t.Fatal("Grant succeeded despite the failed commit")
			}
			if len(l.Grants()) != 0 {
				t.Fatal("a grant whose commit failed is visible")
			}
			// The next write resynchronises with whatever the store holds.
			e, err := l.Record(Entry{Action: ActExport})
			if err != nil {
				t.Fatal(err)
			}
			want := uint64(2)
			if apply {
				want = 3
			}
			if e.Seq != want {
				t.Fatalf("seq after failed commit = %d, want %d", e.Seq, want)
			}
			if _, err := l.Verify(); err != nil {
				t.Fatal(err)
			}
			if got := len(l.Grants()); got != map[bool]int{false: 0, true: 1}[apply] {
				t.Fatalf("%d grants after resync", got)
			}
		})
	}
}

func TestFirstAt(t *testing.T) {
	l, _ := auditLedger(t, 10) // entries 1..10, one second apart from t0
	first, err := l.Entries(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	start := first[0].Time
	for _, tc := range []struct {
		at   time.Time
		want uint64
	}{
		{start.Add(-time.Hour), 1},
		{start, 1},
		{start.Add(500 * time.Millisecond), 2},
		{start.Add(4 * time.Second), 5},
		{start.Add(9 * time.Second), 10},
		{start.Add(time.Hour), 11},
	} {
		if got, err := l.FirstAt(tc.at); err != nil || got != tc.want {
			t.Errorf("FirstAt(start%+v) = %d, %v; want %d", tc.at.Sub(start), got, err, tc.want)
		}
	}
	if l.Head() != 10 {
		t.Errorf("Head() = %d", l.Head())
	}
}

// A grant's entry says what was granted and until when; the partner's
// name and an aggregated count are kept in the chain too, and an entry
// without them hashes exactly as before they existed.
func TestEntryNewFields(t *testing.T) {
	l, _ := auditLedger(t, 0)
	e, err := l.Record(Entry{Action: ActFetchDenied, Peer: peerOf(t, fixedKey(t, 2)), PeerName: "River\x1bside", Count: 42, Decision: DecisionDeny, Reason: "no-grant"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(e.PeerName, 0x1b) {
		t.Errorf("peer name %q kept a control character", e.PeerName)
	}
	if e.Count != 42 {
		t.Errorf("count %d", e.Count)
	}
	if _, err := l.Verify(); err != nil {
		t.Fatal(err)
	}
	plain := Entry{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Actor: "admin", Action: ActImport, Prev: zeroHash}
	h, err := plain.ComputeHash()
	if err != nil {
		t.Fatal(err)
	}
	// The encoding hashed for an entry without the new fields is unchanged:
	// logs written before they existed still verify.
	body := `{"seq":1,"time":"2026-01-02T03:04:05Z","actor":"admin","action":"import","prev":"` + zeroHash + `"}`
	sum := sha256.Sum256([]byte(hashPrefix + body))
	if h != hex.EncodeToString(sum[:]) {
		t.Errorf("hash of an entry without the new fields changed")
	}
}

// Entries about a peer are named with the namer's answer at write time,
// grants and revocations included.
func TestPeerNamer(t *testing.T) {
	clock := newClock()
	l := newLedger(t, NewMemStore(), clock)
	bob := peerOf(t, fixedKey(t, 2))
	l.SetPeerNamer(func(p peer.ID) string {
		if p == bob {
			return "Riverside"
		}
		return ""
	})
	g, err := l.Grant(GrantRequest{Grantee: bob, Studies: []string{studyA}, Purpose: PurposeTreatment, Expires: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Revoke(g.Grant.ID, "", "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Record(Entry{Action: ActPeerRemoved, Peer: bob, PeerName: "Riverside General"}); err != nil {
		t.Fatal(err)
	}
	es, _ := l.Entries(0, 0)
	want := []string{"Riverside", "Riverside", "Riverside General"}
	for i, e := range es {
		if e.PeerName != want[i] {
			t.Errorf("entry %d (%s): peer name %q, want %q", e.Seq, e.Action, e.PeerName, want[i])
		}
	}
	if es[0].Study != studyA || !es[0].Expires.Equal(t0.Add(time.Hour)) || es[1].Reason != "unspecified" {
		t.Errorf("grant entry %+v / revoke entry %+v", es[0], es[1])
	}
}
