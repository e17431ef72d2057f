package consent

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// rechain rewrites entries from..head of s as an attacker with the store
// (but not the node key) would: every hash recomputed, the head record
// moved, so that the chain alone looks intact.
func rechain(t *testing.T, s *MemStore, from, head uint64, edit func(*Entry)) {
	t.Helper()
	prev := zeroHash
	if from > 1 {
		prev = rawEntry(t, s, from-1).Hash
	}
	for seq := from; seq <= head; seq++ {
		e := rawEntry(t, s, seq)
		if edit != nil {
			edit(&e)
		}
		e.Prev = prev
		b := e.body(e.Peer.String())
		if e.Peer == "" {
			b = e.body("")
		}
		h, err := b.hash()
		if err != nil {
			t.Fatal(err)
		}
		e.Hash, prev = h, h
		putEntry(t, s, seq, e)
	}
	hv, _ := json.Marshal(headRecord{Seq: head, Hash: prev})
	if err := s.Commit([]KV{{Key: []byte(headKey), Value: hv}}); err != nil {
		t.Fatal(err)
	}
}

// truncate deletes entries after keep and moves the head record there.
func truncate(t *testing.T, s *MemStore, keep, head uint64) {
	t.Helper()
	for seq := keep + 1; seq <= head; seq++ {
		s.delete(string(auditKey(seq)))
	}
	hv, _ := json.Marshal(headRecord{Seq: keep, Hash: rawEntry(t, s, keep).Hash})
	if err := s.Commit([]KV{{Key: []byte(headKey), Value: hv}}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpoint(t *testing.T) {
	l, s := auditLedger(t, 5)
	c1, err := l.Checkpoint("auditor")
	if err != nil {
		t.Fatal(err)
	}
	if c1.Checkpoint.Index != 1 || c1.Checkpoint.Seq != 5 || c1.Checkpoint.Head != rawEntry(t, s, 5).Hash || c1.Checkpoint.Node != l.Self() {
		t.Fatalf("first checkpoint: %+v", c1.Checkpoint)
	}
	if err := c1.Verify(); err != nil {
		t.Fatal(err)
	}
	// Its own entry follows it in the chain and names it.
	e6 := rawEntry(t, s, 6)
	if e6.Action != ActAuditCheckpoint || e6.Actor != "auditor" || e6.Reason != "index=1 seq=5 head="+c1.Checkpoint.Head {
		t.Fatalf("checkpoint entry: %+v", e6)
	}
	// Idle: no new checkpoint, and none after a restart either.
	if c, err := l.Checkpoint(""); err != nil || c.Checkpoint.Index != 1 {
		t.Fatalf("idle checkpoint: %+v, %v", c, err)
	}
	l2 := newLedger(t, s, newClock())
	if c, err := l2.Checkpoint(""); err != nil || c.Checkpoint.Index != 1 {
		t.Fatalf("idle checkpoint after reopen: %+v, %v", c, err)
	}
	if _, err := l2.Record(Entry{Action: ActImport, Study: studyA}); err != nil {
		t.Fatal(err)
	}
	c2, err := l2.Checkpoint("")
	if err != nil || c2.Checkpoint.Index != 2 || c2.Checkpoint.Seq != 7 {
		t.Fatalf("second checkpoint: %+v, %v", c2, err)
	}
	res, err := l2.Verify()
	if err != nil || res.Entries != 8 || res.Checkpoints != 2 || res.Checkpoint == nil || res.Checkpoint.Index != 2 {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	if last, err := l2.LastCheckpoint(); err != nil || last.Checkpoint.Index != 2 {
		t.Fatalf("last checkpoint: %+v, %v", last, err)
	}
	// An empty log can be checkpointed too.
	empty, _ := auditLedger(t, 0)
	c0, err := empty.Checkpoint("")
	if err != nil || c0.Checkpoint.Seq != 0 || c0.Checkpoint.Head != zeroHash {
		t.Fatalf("empty log checkpoint: %+v, %v", c0, err)
	}
	if _, err := empty.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointDetectsTampering(t *testing.T) {
	// Ten entries, a checkpoint at 10 (its entry is 11), five more, a
	// checkpoint at 16 (entry 17), three more: 20 entries.
	setup := func(t *testing.T) (*MemStore, *SignedCheckpoint) {
		l, s := auditLedger(t, 10)
		if _, err := l.Checkpoint(""); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			l.Record(Entry{Action: ActImport, Study: studyA})
		}
		c2, err := l.Checkpoint("")
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			l.Record(Entry{Action: ActExport, Study: studyA})
		}
		return s, c2
	}
	tests := []struct {
		name     string
		tamper   func(t *testing.T, s *MemStore)
		external bool // verify with the second checkpoint kept elsewhere
		want     string
	}{
		{"intact", func(*testing.T, *MemStore) {}, true, ""},
		{"truncated behind a rewritten head", func(t *testing.T, s *MemStore) { truncate(t, s, 12, 20) },
			false, "truncated: the log ends at entry 12 but checkpoint 2"},
		{"truncated after the last checkpoint", func(t *testing.T, s *MemStore) { truncate(t, s, 18, 20) },
			false, ""}, // undetectable without a later checkpoint: the reason for the interval
		{"rechained from an entry a checkpoint signed", func(t *testing.T, s *MemStore) {
			rechain(t, s, 4, 20, func(e *Entry) {
				if e.Seq == 4 {
					e.Decision = DecisionDeny
				}
			})
		}, false, "entry 10: differs from what checkpoint 1 signed"},
		{"stored checkpoint deleted", func(t *testing.T, s *MemStore) { s.delete(string(checkpointKey(1))) },
			false, "checkpoint 1 missing (next stored is 2)"},
		{"stored checkpoint edited", func(t *testing.T, s *MemStore) {
			k := string(checkpointKey(2))
			s.Commit([]KV{{Key: []byte(k), Value: []byte(strings.Replace(string(s.m[k]), `"seq":16`, `"seq":13`, 1))}})
		}, false, "checkpoint 2: checkpoint: verify: bad signature"},
		{"truncated and every stored checkpoint deleted: the kept one tells", func(t *testing.T, s *MemStore) {
			truncate(t, s, 12, 20)
			s.delete(string(checkpointKey(1)))
			s.delete(string(checkpointKey(2)))
		}, true, "truncated: the log ends at entry 12 but checkpoint 2"},
		{"rechained and every stored checkpoint deleted: the kept one tells", func(t *testing.T, s *MemStore) {
			rechain(t, s, 14, 20, func(e *Entry) { e.Time = e.Time.Add(time.Hour) })
			s.delete(string(checkpointKey(1)))
			s.delete(string(checkpointKey(2)))
		}, true, "entry 16: differs from what checkpoint 2 signed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c2 := setup(t)
			tc.tamper(t, s)
			// A fresh ledger on the tampered store: the auditor verifying a
			// stopped node.
			l := newLedger(t, s, newClock())
			var given []*SignedCheckpoint
			if tc.external {
				given = append(given, c2)
			}
			_, err := l.Verify(given...)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("verify: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrAuditCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("verify: got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestVerifyRefusesForeignCheckpoint(t *testing.T) {
	other, _ := auditLedger(t, 3)
	// fixedKey(1) is newLedger's key; the other ledger must differ.
	other.signer = fixedKey(t, 9)
	other.self = peerOf(t, other.signer)
	c, err := other.Checkpoint("")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := auditLedger(t, 3)
	if _, err := l.Verify(c); !errors.Is(err, ErrAuditCorrupt) || !strings.Contains(err.Error(), "signed by another node") {
		t.Fatalf("foreign checkpoint: %v", err)
	}
}

func TestParseCheckpoint(t *testing.T) {
	l, _ := auditLedger(t, 2)
	c, err := l.Checkpoint("")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(c)
	if got, err := ParseCheckpoint(append(append([]byte("\n "), good...), '\n')); err != nil || got.Checkpoint != c.Checkpoint {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	edit := func(f func(*SignedCheckpoint)) []byte {
		var s SignedCheckpoint
		json.Unmarshal(good, &s)
		f(&s)
		b, _ := json.Marshal(&s)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "incomplete JSON"},
		{"not JSON", []byte("seq=5"), "malformed JSON at byte 1"},
		{"too long", []byte(strings.Repeat(" ", MaxCheckpointSize+1)), "more than 2048"},
		{"unknown field", []byte(strings.Replace(string(good), `"sig"`, `"x":1,"sig"`, 1)), "unknown field \"x\""},
		{"wrong type", []byte(strings.Replace(string(good), `"index":1`, `"index":"1"`, 1)), "field checkpoint.index has the wrong type"},
		{"trailing data", append(append([]byte{}, good...), []byte("{}")...), "trailing data"},
		{"index 0", edit(func(s *SignedCheckpoint) { s.Checkpoint.Index = 0 }), "index must be 1 or more"},
		{"bad head", edit(func(s *SignedCheckpoint) { s.Checkpoint.Head = "ABC" }), "head is not 64"},
		{"no time", edit(func(s *SignedCheckpoint) { s.Checkpoint.Time = time.Time{} }), "time missing"},
		{"control character", edit(func(s *SignedCheckpoint) { s.Checkpoint.Facility = "St\x1b[2J Mary" }), "control characters"},
		{"no node", edit(func(s *SignedCheckpoint) { s.Checkpoint.Node = "" }), "node is not a peer ID"},
		{"seq changed", edit(func(s *SignedCheckpoint) { s.Checkpoint.Seq++ }), "bad signature"},
		{"signature cut", edit(func(s *SignedCheckpoint) { s.Sig = s.Sig[:10] }), "signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCheckpoint(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	l, _ := auditLedger(f, 1)
	c, err := l.Checkpoint("")
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(c)
	f.Add(good)
	f.Add([]byte(`{"checkpoint":{},"sig":""}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseCheckpoint(b)
		if err != nil {
			if s != nil {
				t.Fatal("a refused checkpoint was returned")
			}
			return
		}
		if err := s.Verify(); err != nil {
			t.Fatalf("accepted checkpoint does not verify: %v", err)
		}
	})
}
