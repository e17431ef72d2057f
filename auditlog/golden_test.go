package auditlog

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pacsnet/pacsnet/consent"
)

var update = flag.Bool("update", false, "rewrite testdata/*.xml")

// TestDICOMXMLGolden keeps examples of the messages in testdata, for
// review and for comparison with what an audit repository expects.
func TestDICOMXMLGolden(t *testing.T) {
	p, err := peer.Decode("12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf")
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2026, 12, 4, 10, 11, 12, 345678000, time.UTC)
	src := Source{Facility: "General Hospital", NodeID: "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo", Host: "pacs.general.example", AppName: "pacsnet"}
	for name, e := range map[string]consent.Entry{
		"fetch-completed": {Seq: 41, Actor: "alice", Peer: p, PeerName: "St. Mary", Action: consent.ActFetchCompleted,
			Study: "1.2.826.0.1.3680043.8.498.1", GrantID: "g-7f3a", Decision: consent.DecisionAllow},
		"fetch-denied": {Seq: 42, Actor: consent.ActorSystem, Peer: p, PeerName: "St. Mary", Action: consent.ActFetchDenied,
			Study: "1.2.826.0.1.3680043.8.498.1", Decision: consent.DecisionDeny, Reason: "no-grant", Count: 5},
		"login": {Seq: 43, Actor: "carol", Action: "login", Reason: "session=s-19 from=127.0.0.1"},
	} {
		t.Run(name, func(t *testing.T) {
			e.Time = when
			got, err := DICOMXML(e, src)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join("testdata", name+".xml")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (go test -run Golden -update):\n%s", file, got)
			}
		})
	}
}
