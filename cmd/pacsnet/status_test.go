package main

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// The human status shows health with its reasons, archive and disk,
// each partner's reachability and outbox, and the fetches in progress.
func TestStatusHumanOutput(t *testing.T) {
	seen := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	st := api.Status{Name: "St Mary", AETitle: "STMARY", PeerID: "12D3KooWx", HTTP: "127.0.0.1:7480", P2P: []string{"/ip4/127.0.0.1/tcp/4801"},
		Partners: 2, Outbox: 2, Health: api.HealthDegraded, Problems: []string{"the archive's disk is almost full: 0.5 GB free of 100.0 GB"},
		ArchiveBytes: 12_300_000, DiskFree: 500_000_000, DiskTotal: 100_000_000_000, PartnersOnline: 1,
		PartnerStates: []api.PartnerStatus{
			{PartnerRef: api.PartnerRef{PeerID: "a", Name: "Riverside"}, Online: true, LastSeen: seen},
			{PartnerRef: api.PartnerRef{PeerID: "b", Name: "North\x1b[2J"}, LastSeen: seen, Outbox: 2, LastError: "dial backoff"},
		},
		Fetches: []api.FetchJob{{StudyUID: "2.25.1", Holder: api.PartnerRef{Name: "Riverside"}, State: api.FetchWaiting, Instances: 300,
			InstancesDone: 134, Bytes: 150e6, BytesDone: 67e6, Started: seen}},
	}
	var b bytes.Buffer
	if err := printStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, re := range []string{
		`(?m)^health    degraded\n +the archive's disk is almost full: 0\.5 GB free of 100\.0 GB$`,
		`(?m)^archive   12\.3 MB on disk; 500\.0 MB free of 100\.0 GB$`,
		`(?m)^partners  2 \(1 online\)$`,
		`(?m)^outbox    2$`,
		`(?m)^PARTNER +REACHABLE +LAST SEEN +OUTBOX +LAST ERROR$`,
		`(?m)^Riverside +online +now +0 *$`,
		`(?m)^North\\x1b\[2J +offline +2030-01-02 \d\d:04:05 \S+ +2 +dial backoff$`,
		`(?m)^2\.25\.1 +Riverside +waiting +134/300 +67\.0/150\.0 `,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("no match for %s in:\n%s", re, out)
		}
	}
	if bytes.ContainsRune(b.Bytes(), 0x1b) {
		t.Errorf("control characters reach the terminal:\n%q", out)
	}
}

// The human status shows the forward queue (dicom.forward_to) with the
// last error, escaped, and leaves the line out when forwarding is off.
func TestStatusShowsForwards(t *testing.T) {
	st := api.Status{Name: "Riverside", AETitle: "RIVERSIDE", Health: api.HealthOK,
		ForwardTo: "PACS", ForwardsPending: 2, ForwardLastError: "forward to PACS: associate\x1b[2J refused"}
	var b bytes.Buffer
	if err := printStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	re := `(?m)^forwards  2 waiting to be sent to PACS \(last error: forward to PACS: associate\\x1b\[2J refused\)$`
	if !regexp.MustCompile(re).MatchString(b.String()) {
		t.Errorf("no match for %s in:\n%s", re, b.String())
	}
	if bytes.ContainsRune(b.Bytes(), 0x1b) {
		t.Errorf("control characters reach the terminal:\n%q", b.String())
	}
	b.Reset()
	st.ForwardTo, st.ForwardsPending, st.ForwardLastError = "", 0, ""
	printStatus(&b, st)
	if bytes.Contains(b.Bytes(), []byte("forwards")) {
		t.Errorf("forwarding off, yet a forwards line:\n%s", b.String())
	}
}
