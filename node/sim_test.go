package node

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/node/clock"
)

// simNode opens a node of a simulation: its libp2p host is a mocknet peer
// with the node's own key, its archive is in memory, and its time is the
// fake clock's.
func simNode(t *testing.T, mn mocknet.Mocknet, c clock.Clock, name string, ip string) *tnode {
	t.Helper()
	home := t.TempDir()
	if _, err := Init(home, InitOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	id, err := crypto.LoadIdentity(filepath.Join(home, keysDir))
	if err != nil {
		t.Fatal(err)
	}
	h, err := mn.AddPeer(id.Sign, multiaddr.StringCast("/ip4/"+ip+"/tcp/4001"))
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, name, home, cfg, Options{Logger: testLogger(t, name), Clock: c, Host: h, InMemory: true})
}

// Two real nodes exchange a study over go-libp2p's mocknet, with their
// archives in Badger's in-memory mode and time on a fake clock: the seams
// netsim builds on. The grant expires when the fake clock says so.
func TestSimulatedExchange(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	fc := clock.NewFake(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	a := simNode(t, mn, fc, "Alpha", "10.0.0.1")
	b := simNode(t, mn, fc, "Beta", "10.0.0.2")
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	link(t, a, b)
	if a.onlyLoopbackP2P() {
		t.Error("a node on 10.0.0.1 says its invite names only loopback addresses")
	}

	study, files := importCT(t, a, 7, 6)
	g := grant(t, a, b, study)
	if !g.Grant.Expires.Equal(fc.Now().Add(a.cfg.Exchange.DefaultGrantTTL.Duration)) {
		t.Errorf("grant expires %s: not on the fake clock", g.Grant.Expires)
	}
	waitShared(t, b, a, study, SharedAvailable, 1, deliverTimeout)
	st := fetchWait(t, b, study, 20*time.Second)
	if st.State != FetchDone || st.InstancesDone != len(files) {
		t.Fatalf("fetch: %+v", st)
	}
	insts, err := b.Instances(study)
	if err != nil || len(insts) != len(files) {
		t.Fatalf("instances at the grantee: %d, %v", len(insts), err)
	}
	for _, in := range insts {
		got, _, err := b.InstanceData(study, in.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := a.InstanceData(study, in.SOPInstanceUID)
		if !bytes.Equal(got, want) {
			t.Errorf("instance %s differs", in.SOPInstanceUID)
		}
	}
	// Nothing of the archives touched the homes' disks.
	for _, n := range []*tnode{a, b} {
		if _, err := os.Stat(filepath.Join(n.home, archiveDir)); !os.IsNotExist(err) {
			t.Errorf("%s: archive directory exists in memory mode: %v", n.name, err)
		}
	}

	// Three days later on the fake clock the grant has expired: the
	// grantee lists it so and refuses to fetch, without anyone waiting.
	fc.Advance(a.cfg.Exchange.DefaultGrantTTL.Duration + time.Minute)
	if s, _ := sharedStudy(t, b, a, study); s.State != SharedExpired {
		t.Errorf("after expiry: state %q, want expired", s.State)
	}
	if _, err := b.StartFetch(context.Background(), FetchRequest{Study: study}); err == nil {
		t.Error("fetch under an expired grant was started")
	}
	requireAudit(t, b, consent.Entry{Action: consent.ActFetchCompleted, Peer: a.ID(), Study: study})
	requireAudit(t, a, consent.Entry{Action: consent.ActFetchAllowed, Peer: b.ID(), Study: study})
}
