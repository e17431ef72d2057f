package node

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Close in the middle of everything (a rate-limited upload, a running
// fetch, a pending outbox item) returns promptly and leaves no goroutine.
func TestCloseStopsEverything(t *testing.T) {
	before := goleak.IgnoreCurrent()
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.Exchange.UploadRate = 8 << 10 }})
	b := newNode(t, "Beta")
	c := newNode(t, "Gamma")
	link(t, a, b)
	link(t, a, c)
	study, _ := importCT(t, a, 1, 8)
	grant(t, a, b, study)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	st, err := b.StartFetch(context.Background(), FetchRequest{Study: study})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first blocks", func() bool {
		s, _ := b.FetchStatus(st.ID)
		return s.BytesDone > 0
	})
	c.stop()
	grant(t, a, c, study) // queued for a stopped partner
	if s, _ := b.FetchStatus(st.ID); s.State == FetchDone {
		t.Fatal("the fetch finished before the nodes were closed; slow the holder down")
	}

	for _, n := range []*tnode{b, a} {
		start := time.Now()
		n.stop()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("closing %s took %s", n.name, d)
		}
	}
	goleak.VerifyNone(t, before)
}
