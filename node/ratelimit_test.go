package node

import (
	"context"
	"errors"
	"testing"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
)

// A partner without a grant that floods the holder with manifest pulls
// (issue 6, item 11) is rate-limited, and its denials cost a handful of
// audit entries whose counts add up to every refused request: the fact
// that denials happened, and how many, is never dropped.
func TestDenialFloodIsRateLimitedAndAggregated(t *testing.T) {
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) {
		c.Exchange.PeerRequestRate, c.Exchange.PeerRequestBurst = 1, 20
	}})
	c := newNode(t, "Gamma")
	link(t, a, c)
	study, _ := importCT(t, a, 11, 1)
	before := len(auditLog(t, a))

	const pulls = 300
	var denied, limited int
	for range pulls {
		_, err := c.ex.PullManifest(context.Background(), a.ID(), study)
		switch {
		case errors.Is(err, exchange.ErrDenied):
			denied++
		case errors.Is(err, exchange.ErrUnavailable):
			limited++
		default:
			t.Fatalf("pull without a grant: %v", err)
		}
	}
	if denied < 20 || denied > 30 || limited < pulls-30 {
		t.Fatalf("%d denied, %d rate-limited of %d pulls; want the burst of 20 (plus a few per second) denied, the rest limited", denied, limited, pulls)
	}

	// Closing the holder writes the counts still being aggregated.
	a = a.restart(nil)
	log := auditLog(t, a)
	counts := map[string]uint64{}
	var entries int
	for _, e := range log[before:] {
		if e.Peer != c.ID() || e.Decision != consent.DecisionDeny {
			continue
		}
		entries++
		n := e.Count
		if n == 0 {
			n = 1
		}
		counts[e.Reason] += n
		if e.PeerName != "Gamma" {
			t.Errorf("entry %d names the partner %q, want Gamma", e.Seq, e.PeerName)
		}
	}
	if counts["no-grant"] != uint64(denied) || counts["rate-limited"] != uint64(limited) {
		t.Errorf("audited %v, want no-grant %d and rate-limited %d", counts, denied, limited)
	}
	if entries > 6 {
		t.Errorf("%d audit entries for %d refused pulls; want them aggregated", entries, pulls)
	}
}

// Denials of one kind are counted for a minute after the first, then
// written as one entry with the count; other kinds are counted apart.
func TestAuditorAggregatesDenials(t *testing.T) {
	clk := &testClock{}
	a := newNode(t, "Alpha", nodeSetup{clock: clk})
	c := newNode(t, "Gamma")
	link(t, a, c)
	before := len(auditLog(t, a))
	for range 10 {
		a.audit.Deny(consent.Entry{Peer: c.ID(), Action: consent.ActFetchDenied, Reason: "no-grant"})
	}
	a.audit.Deny(consent.Entry{Peer: c.ID(), Action: consent.ActManifestRejected, Reason: "open"})
	a.audit.flushDenials(false) // nothing: the minute is not over
	if got := len(auditLog(t, a)) - before; got != 2 {
		t.Fatalf("%d entries before the minute ends, want the first of each kind (2)", got)
	}
	clk.Advance(denyWindow)
	a.audit.flushDenials(false)
	es := auditLog(t, a)[before:]
	if len(es) != 3 || es[2].Count != 9 || es[2].Reason != "no-grant" || es[2].Study != "" {
		t.Fatalf("after the minute: %+v, want a third entry counting the 9 further no-grant denials", es)
	}
	// A denial after the window starts a new count.
	a.audit.Deny(consent.Entry{Peer: c.ID(), Action: consent.ActFetchDenied, Reason: "no-grant"})
	if got := len(auditLog(t, a)) - before; got != 4 {
		t.Fatalf("%d entries, want the new first denial recorded", got)
	}
}
