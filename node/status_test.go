package node

import (
	"context"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// Status says which partners are online and when an offline one was last
// seen, what waits in the outbox for each, the archive's size and the
// free disk; peers' reachability follows connections (issue 6, #17).
func TestStatusReportsReachabilityAndOutbox(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	s := a.apiServer()

	st, err := s.statusReport()
	if err != nil {
		t.Fatal(err)
	}
	if st.Health != api.HealthOK || st.DiskTotal == 0 || st.DiskFree == 0 || len(st.PartnerStates) != 1 || st.Fetches == nil {
		t.Fatalf("status of a fresh node: %+v", st)
	}
	if p := st.PartnerStates[0]; p.Name != "Beta" || p.Online || !p.LastSeen.IsZero() {
		t.Errorf("a partner never connected: %+v, want offline, never seen", p)
	}

	// A grant queues a manifest; its delivery connects the two.
	study, _ := importCT(t, a, 1, 2)
	grant(t, a, b, study)
	waitShared(t, b, a, study, SharedAvailable, 0, 10*time.Second)
	// Beta may hold the manifest a moment before Alpha hears its
	// acknowledgement and empties the outbox: wait for both.
	waitFor(t, 10*time.Second, "Beta online at Alpha, outbox empty", func() bool {
		st, _ = s.statusReport()
		return st.PartnersOnline == 1 && st.PartnerStates[0].Online && st.Outbox == 0
	})
	if st.ArchiveBytes < 0 || st.PartnerStates[0].Outbox != 0 {
		t.Errorf("status after delivery: %+v", st)
	}

	// Beta goes away: offline, last seen when its connection closed; a
	// second grant waits in the outbox, counted for Beta.
	before := time.Now().UTC()
	b.stop()
	waitFor(t, 10*time.Second, "Beta offline at Alpha", func() bool {
		online, last := a.partners.Seen(b.ID())
		return !online && !last.Before(before.Add(-time.Second))
	})
	if _, err := a.Grant(context.Background(), GrantRequest{To: "Beta", Study: study, Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	st, err = s.statusReport()
	if err != nil {
		t.Fatal(err)
	}
	if p := st.PartnerStates[0]; p.Online || p.LastSeen.IsZero() || p.Outbox != 1 || st.PartnersOnline != 0 || st.Outbox != 1 {
		t.Errorf("status with Beta down: %+v", st)
	}
}
