package node

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/internal/store"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	libp2ptest "github.com/libp2p/go-libp2p/core/test"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
)

// deliverTimeout bounds waits for an outbox delivery. A first delivery
// takes milliseconds; after a partner was down, libp2p's dial backoff of
// that partner (5 s and more, see TestOutboxRetriesUntilGranteeIsBack)
// comes on top.
const deliverTimeout = 20 * time.Second

func TestGrantDeliversManifest(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	study, files := importCT(t, a, 1, 5)

	g := grant(t, a, b, study)
	if g.Grant.Issuer != a.ID() || g.Grant.Grantee != b.ID() || len(g.Grant.Studies) != 1 || g.Grant.Studies[0] != study {
		t.Fatalf("grant: %+v", g.Grant)
	}
	if ttl := g.Grant.Expires.Sub(g.Grant.NotBefore); ttl != a.cfg.Exchange.DefaultGrantTTL.Duration {
		t.Errorf("grant lifetime %s, want the default %s", ttl, a.cfg.Exchange.DefaultGrantTTL)
	}
	s := waitShared(t, b, a, study, "available", 1, deliverTimeout)
	var size int64
	for _, f := range files {
		size += int64(len(normalized(t, f.Data)))
	}
	if s.Instances != len(files) || s.Bytes != size || s.GrantID != g.Grant.ID || s.IssuerName != "Alpha" ||
		!s.Expires.Equal(g.Grant.Expires) || s.Fetched || s.Study.UID != study || s.Study.PatientName == "" {
		t.Errorf("shared study: %+v; want %d instances, %d bytes, grant %s", s, len(files), size, g.Grant.ID)
	}
	waitFor(t, deliverTimeout, "the outbox to empty", func() bool {
		items, err := a.outbox.Pending()
		return err == nil && len(items) == 0
	})

	requireAudit(t, a, consent.Entry{Action: consent.ActGrant, Peer: b.ID(), GrantID: g.Grant.ID, Actor: "admin"})
	waitAudit(t, a, consent.Entry{Action: consent.ActManifestSent, Peer: b.ID(), Study: study, GrantID: g.Grant.ID, Reason: wire.KindStudy})
	waitAudit(t, b, consent.Entry{Action: consent.ActManifestReceived, Peer: a.ID(), Study: study, GrantID: g.Grant.ID, Reason: wire.KindStudy})
	requireAudit(t, a, consent.Entry{Action: consent.ActPeerAdded, Peer: b.ID()})

	// A grant on a study received from a partner is refused: only the
	// holder of the original may grant it.
	if st := fetchWait(t, b, study, 20*time.Second); st.State != FetchDone {
		t.Fatalf("fetch: %+v", st)
	}
	if _, err := b.Grant(context.Background(), GrantRequest{To: a.ID().String(), Study: study}); !errors.Is(err, consent.ErrInvalidRequest) {
		t.Errorf("grantee re-grants a fetched study: %v", err)
	}
	if s, _ := sharedStudy(t, b, a, study); !s.Fetched {
		t.Errorf("shared study after the fetch: %+v, want fetched", s)
	}

	// Revoke: the revocation manifest reaches the grantee, which forgets
	// the key and refuses to fetch.
	if _, err := a.Revoke(g.Grant.ID, "treatment-ended", "admin"); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, "revoked", 2, deliverTimeout)
	rec, ok, err := b.store.SharedFor(a.ID(), study)
	if err != nil || !ok || rec.Manifest.StudyKey != "" || len(rec.Manifest.Instances) != len(files) {
		t.Errorf("revoked shared record: ok=%v err=%v key kept=%v instances=%d", ok, err, rec.Manifest.StudyKey != "", len(rec.Manifest.Instances))
	}
	requireAudit(t, a, consent.Entry{Action: consent.ActRevoke, GrantID: g.Grant.ID, Actor: "admin"})
	waitAudit(t, a, consent.Entry{Action: consent.ActManifestSent, Peer: b.ID(), GrantID: g.Grant.ID, Reason: wire.KindRevocation})
	waitAudit(t, b, consent.Entry{Action: consent.ActManifestReceived, Peer: a.ID(), GrantID: g.Grant.ID, Reason: wire.KindRevocation})
	if _, err := b.StartFetch(context.Background(), FetchRequest{Study: study}); !errors.Is(err, exchange.ErrDenied) {
		t.Errorf("fetch after revocation: %v, want ErrDenied", err)
	}
}

func TestGrantRequests(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	c := newNode(t, "Gamma")
	link(t, a, b)
	study, _ := importCT(t, a, 1, 2)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  GrantRequest
	}{
		{"unknown study", GrantRequest{To: b.ID().String(), Study: "1.2.3.404"}},
		{"not a partner", GrantRequest{To: c.ID().String(), Study: study}},
		{"unknown name", GrantRequest{To: "Nobody", Study: study}},
		{"bad purpose", GrantRequest{To: "Beta", Study: study, Purpose: "curiosity"}},
		{"longer than max_grant_ttl", GrantRequest{To: "Beta", Study: study, Expires: 31 * 24 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := a.Grant(ctx, tc.req); !errors.Is(err, consent.ErrInvalidRequest) {
				t.Errorf("Grant: %v, want ErrInvalidRequest", err)
			}
		})
	}
	t.Run("the limit reads as people write it", func(t *testing.T) {
		_, err := a.Grant(ctx, GrantRequest{To: "Beta", Study: study, Expires: 31 * 24 * time.Hour})
		if err == nil || !strings.Contains(err.Error(), "at most 30d (config exchange.max_grant_ttl)") {
			t.Errorf("Grant: %v, want the limit as 30d", err)
		}
	})
	t.Run("by name, with purpose and lifetime", func(t *testing.T) {
		g, err := a.Grant(ctx, GrantRequest{To: "beta", Study: study, Expires: time.Hour, Purpose: string(consent.PurposeSecondOpinion), User: "dr.who"})
		if err != nil {
			t.Fatal(err)
		}
		if g.Grant.Grantee != b.ID() || g.Grant.Purpose != consent.PurposeSecondOpinion || g.Grant.GranteeUser != "dr.who" ||
			g.Grant.Expires.Sub(g.Grant.NotBefore) != time.Hour {
			t.Errorf("grant: %+v", g.Grant)
		}
	})
	// Nothing was queued for the refused requests.
	items, err := a.outbox.Pending()
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Peer != b.ID() {
			t.Errorf("outbox holds an item for %s", it.Peer)
		}
	}
	if g := findAudit(t, a, consent.Entry{Action: consent.ActGrant}); len(g) != 1 {
		t.Errorf("%d grant audit entries, want 1", len(g))
	}
}

// A facility that did not admit us as a partner never accepts our
// manifest: the connection is refused, the item stays queued, and the
// handler itself refuses a non-partner even if called.
func TestManifestToNonPartner(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	addPeer(t, a, b) // a admits b; b does not admit a
	study, _ := importCT(t, a, 1, 2)
	grant(t, a, b, study)

	var item store.OutboxItem
	waitFor(t, 10*time.Second, "a failed delivery attempt", func() bool {
		items, err := a.outbox.Pending()
		if err != nil || len(items) != 1 {
			return false
		}
		item = items[0]
		return item.Attempts >= 1 && item.LastErr != ""
	})
	if item.Peer != b.ID() || item.Kind != wire.KindStudy || item.Study != study {
		t.Errorf("queued item: %+v", item)
	}
	if s, err := b.Shared(); err != nil || len(s) != 0 {
		t.Errorf("non-partner's shared list: %+v, %v", s, err)
	}
	if e := findAudit(t, a, consent.Entry{Action: consent.ActManifestSent}); len(e) != 0 {
		t.Errorf("manifest audited as sent: %+v", e)
	}
	// Called directly (as if the gater let it through), the handler refuses.
	sealed, err := a.store.OutboxSealed(item)
	if err != nil {
		t.Fatal(err)
	}
	err = b.HandleManifest(context.Background(), a.ID(), sealed)
	if !errors.Is(err, exchange.ErrRejected) {
		t.Fatalf("HandleManifest from a non-partner: %v, want ErrRejected", err)
	}
	requireAudit(t, b, consent.Entry{Action: consent.ActManifestRejected, Peer: a.ID(), Decision: "deny", Reason: "not-partner"})
	if s, _ := b.Shared(); len(s) != 0 {
		t.Errorf("shared after a refused manifest: %+v", s)
	}

	// Once b admits a, the queued manifest is delivered.
	addPeer(t, b, a)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
}

// A manifest sealed by one partner and pushed by another is rejected
// (wrong-signer) and audited; garbage is rejected with ErrRejected at the
// pusher; neither changes what the grantee holds.
func TestManifestRejections(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	c := newNode(t, "Gamma")
	link(t, a, b)
	link(t, c, b)
	study, _ := importCT(t, a, 1, 2)
	g := grant(t, a, b, study)
	before := waitShared(t, b, a, study, "available", 1, deliverTimeout)
	ctx := context.Background()

	// A valid manifest for b, sealed by a (the answer to a pull).
	sealed, err := a.ManifestFor(ctx, b.ID(), study)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("wrong signer", func(t *testing.T) {
		err := c.ex.PushManifest(ctx, b.ID(), sealed)
		if !errors.Is(err, exchange.ErrRejected) {
			t.Fatalf("push of a's manifest by c: %v, want ErrRejected", err)
		}
		requireAudit(t, b, consent.Entry{Action: consent.ActManifestRejected, Peer: c.ID(), Decision: "deny", Reason: "wrong-signer"})
		if s, _ := sharedStudy(t, b, a, study); s.Version != before.Version {
			t.Errorf("version after a rejected manifest: %d, want %d", s.Version, before.Version)
		}
		if _, ok := sharedStudy(t, b, c, study); ok {
			t.Error("the study is listed as shared by c")
		}
	})
	t.Run("garbage", func(t *testing.T) {
		if err := a.ex.PushManifest(ctx, b.ID(), nil); !errors.Is(err, exchange.ErrBadRequest) {
			t.Errorf("push of an empty manifest: %v, want a local ErrBadRequest", err)
		}
		for _, junk := range [][]byte{[]byte("garbage"), make([]byte, 10000)} {
			err := a.ex.PushManifest(ctx, b.ID(), junk)
			if !errors.Is(err, exchange.ErrRejected) {
				t.Errorf("push of %d bytes of garbage: %v, want ErrRejected", len(junk), err)
			}
		}
		requireAudit(t, b, consent.Entry{Action: consent.ActManifestRejected, Peer: a.ID(), Decision: "deny", Reason: "open"})
	})
	t.Run("sealed to another facility", func(t *testing.T) {
		// a's manifest for c (c has no grant: build it like a grant would)
		// pushed by a to b: b cannot open it.
		link(t, a, c)
		g2 := grant(t, a, c, study)
		waitShared(t, c, a, study, "available", 1, deliverTimeout)
		forC, err := a.ManifestFor(ctx, c.ID(), study)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.ex.PushManifest(ctx, b.ID(), forC); !errors.Is(err, exchange.ErrRejected) {
			t.Errorf("push of c's manifest to b: %v, want ErrRejected", err)
		}
		if _, err := a.Revoke(g2.Grant.ID, "", "admin"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the same bytes from the signer are accepted", func(t *testing.T) {
		if err := a.ex.PushManifest(ctx, b.ID(), sealed); err != nil {
			t.Fatalf("push by the signer: %v", err)
		}
		if s, _ := sharedStudy(t, b, a, study); s.Version <= before.Version || s.State != "available" {
			t.Errorf("shared after the pull manifest: %+v", s)
		}
		// A replay of an older version is acknowledged but changes nothing.
		now, _ := sharedStudy(t, b, a, study)
		if err := a.ex.PushManifest(ctx, b.ID(), sealed); err != nil {
			t.Fatalf("replay: %v", err)
		}
		if s, _ := sharedStudy(t, b, a, study); s.Version != now.Version || !s.Received.Equal(now.Received) {
			t.Errorf("replay changed the record: %+v", s)
		}
	})
	requireAudit(t, a, consent.Entry{Action: consent.ActManifestSent, Peer: b.ID(), GrantID: g.Grant.ID, Reason: "pull"})
}

// granteeDown starts partners Alpha, holding a study, and Beta, then
// stops Beta; reopen it on bAddrs.
func granteeDown(t *testing.T) (a, b *tnode, study string, bAddrs []string) {
	t.Helper()
	a = newNode(t, "Alpha")
	b = newNode(t, "Beta")
	link(t, a, b)
	study, _ = importCT(t, a, 1, 2)
	bAddrs = b.listenAddrs()
	b.stop()
	return a, b, study, bAddrs
}

// The outbox keeps a manifest whose grantee is down and delivers it when
// the grantee is back, also across a restart of the holder.
func TestOutboxRetriesUntilGranteeIsBack(t *testing.T) {
	a, b, study, bAddrs := granteeDown(t)
	g := grant(t, a, b, study)
	waitFor(t, 10*time.Second, "a failed delivery attempt", func() bool {
		items, err := a.outbox.Pending()
		return err == nil && len(items) == 1 && items[0].Attempts >= 1
	})
	// The API shows it.
	var out []api.OutboxItem
	if code := apiCall(t, a, "GET", "/api/v1/outbox", nil, &out); code != http.StatusOK {
		t.Fatalf("GET outbox: %d", code)
	}
	if len(out) != 1 || out[0].Peer.PeerID != b.ID().String() || out[0].Kind != wire.KindStudy || out[0].StudyUID != study || out[0].Attempts < 1 || out[0].LastError == "" {
		t.Fatalf("GET outbox: %+v", out)
	}
	var st api.Status
	apiCall(t, a, "GET", "/api/v1/status", nil, &st)
	if st.Outbox != 1 || st.Partners != 1 {
		t.Errorf("status: %+v", st)
	}

	start := time.Now()
	b = b.reopen(bAddrs, nil)
	s := waitShared(t, b, a, study, "available", 1, deliverTimeout)
	took := time.Since(start)
	t.Logf("delivered %s after the grantee came back", took.Round(time.Millisecond))
	// The grantee was down for well under a second, so the outbox had
	// made one or two attempts and its own next retry (0.5 s doubling) is
	// at most 2 s away. libp2p's dial backoff of the grantee (5 s + 1 s ×
	// tries², up to 5 min) must not delay it further: the outbox paces
	// its own retries, as fetch does.
	if took > 4*time.Second {
		t.Errorf("manifest delivered %s after the grantee came back; the outbox's next retry was at most 2 s away (libp2p dial backoff not cleared before the retry?)", took.Round(time.Millisecond))
	}
	if s.GrantID != g.Grant.ID {
		t.Errorf("shared: %+v", s)
	}
	waitFor(t, 5*time.Second, "the outbox to empty", func() bool {
		items, err := a.outbox.Pending()
		return err == nil && len(items) == 0
	})
	waitAudit(t, a, consent.Entry{Action: consent.ActManifestSent, Peer: b.ID(), GrantID: g.Grant.ID})
}

// A partner that comes back and connects gets what waits for it at once,
// not when the backoff of the last failed delivery runs out (seconds
// here; up to 30 s in a longer outage).
func TestOutboxDeliversWhenPartnerConnects(t *testing.T) {
	a, b, study, bAddrs := granteeDown(t)
	grant(t, a, b, study)
	var next time.Time
	waitFor(t, 30*time.Second, "a retry 1.5 s or more away", func() bool {
		items, err := a.outbox.Pending()
		if err == nil && len(items) == 1 && time.Until(items[0].Next) >= 1500*time.Millisecond {
			next = items[0].Next
			return true
		}
		return false
	})
	b = b.reopen(bAddrs, nil)
	// Beta reaches out (as a restarted partner does when it has
	// something to send, or to fetch).
	if err := b.host.Connect(context.Background(), peer.AddrInfo{ID: a.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	connected := time.Now()
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	took := time.Since(connected)
	t.Logf("delivered %s after Beta connected; the backoff's next retry was %s away", took.Round(time.Millisecond), time.Until(next).Round(time.Millisecond))
	if time.Now().After(next) {
		t.Errorf("delivered only after the backoff's retry (%s after Beta connected): the connection did not make the item due", took.Round(time.Millisecond))
	}
}

func TestOutboxSurvivesHolderRestart(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	study, _ := importCT(t, a, 1, 2)
	bAddrs := b.listenAddrs()
	b.stop()

	g := grant(t, a, b, study)
	waitFor(t, 10*time.Second, "a failed delivery attempt", func() bool {
		items, err := a.outbox.Pending()
		return err == nil && len(items) == 1 && items[0].Attempts >= 1
	})
	a = a.restart(nil)
	items, err := a.outbox.Pending()
	if err != nil || len(items) != 1 || items[0].GrantID != g.Grant.ID {
		t.Fatalf("outbox after the restart: %+v, %v", items, err)
	}
	// The sealed manifest waits in a file of its own, outside Badger.
	sealedFiles := func() []string {
		names, _ := filepath.Glob(filepath.Join(a.home, archiveDir, "outbox", "*"))
		return names
	}
	if f := sealedFiles(); len(f) != 1 || items[0].File != filepath.Base(f[0]) || len(items[0].Sealed) != 0 {
		t.Fatalf("outbox files %q for item %+v", f, items[0])
	}
	b = b.reopen(bAddrs, nil)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	waitAudit(t, a, consent.Entry{Action: consent.ActManifestSent, Peer: b.ID(), GrantID: g.Grant.ID})
	waitAudit(t, b, consent.Entry{Action: consent.ActManifestReceived, Peer: a.ID(), GrantID: g.Grant.ID})
	waitFor(t, 10*time.Second, "the delivered manifest's file to go", func() bool { return len(sealedFiles()) == 0 })
}

// Manifests to one partner are delivered in the order they were queued,
// so a revocation never overtakes the grant it revokes.
func TestOutboxKeepsOrderPerPartner(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	addPeer(t, a, b) // b refuses a's connections until it admits a
	study, _ := importCT(t, a, 1, 2)
	g := grant(t, a, b, study)
	if _, err := a.Revoke(g.Grant.ID, "", "admin"); err != nil {
		t.Fatal(err)
	}
	items, err := a.outbox.Pending()
	if err != nil || len(items) != 2 || items[0].Kind != wire.KindStudy || items[1].Kind != wire.KindRevocation || items[0].Version >= items[1].Version {
		t.Fatalf("queue: %+v, %v", items, err)
	}
	waitFor(t, 10*time.Second, "a failed delivery attempt", func() bool {
		items, err := a.outbox.Pending()
		return err == nil && len(items) == 2 && items[0].Attempts >= 1
	})
	if items, _ := a.outbox.Pending(); items[1].Attempts != 0 {
		t.Errorf("the second item was tried while the first was pending: %+v", items[1])
	}
	addPeer(t, b, a)
	waitShared(t, b, a, study, "revoked", 2, deliverTimeout)
	waitAudit(t, b, consent.Entry{Action: consent.ActManifestReceived, Peer: a.ID(), Reason: wire.KindRevocation})
	var got []string
	for _, e := range findAudit(t, b, consent.Entry{Action: consent.ActManifestReceived, Peer: a.ID()}) {
		got = append(got, e.Reason)
	}
	if strings.Join(got, ",") != "study,revocation" {
		t.Errorf("received in order %v", got)
	}
}

// apiCall calls n's local API with its token; out, if not nil, receives
// the decoded JSON body.
func apiCall(t *testing.T, n *tnode, method, path string, body []byte, out any) int {
	t.Helper()
	code, b := apiRaw(t, n, method, path, "Bearer "+n.keys.apiToken, body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return code
}

// Revoking one grant must not take a study away from a grantee that still
// holds another live grant for it (an admin extends access by granting
// again and revoking the old grant).
func TestRevokingOneOfTwoGrantsKeepsStudyAvailable(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	study, _ := importCT(t, a, 1, 2)
	old, err := a.Grant(context.Background(), GrantRequest{To: "Beta", Study: study, Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	extended, err := a.Grant(context.Background(), GrantRequest{To: "Beta", Study: study, Expires: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, "available", 2, deliverTimeout)
	if _, err := a.Revoke(old.Grant.ID, "policy", "admin"); err != nil {
		t.Fatal(err)
	}
	waitAudit(t, b, consent.Entry{Action: consent.ActManifestReceived, Peer: a.ID(), GrantID: old.Grant.ID, Reason: wire.KindRevocation})

	// The holder still serves the study to b under the extended grant.
	block := studyCIDs(t, a, study)[0]
	if _, err := fetchBlock(t, b, a, extended.Grant.ID, block); err != nil {
		t.Fatalf("block under the live grant: %v", err)
	}
	// So the grantee must (again, at the latest once the manifests queued
	// with the revocation arrived) list it as available, and fetch it.
	var s SharedStudy
	deadline := time.Now().Add(3 * time.Second)
	for {
		s, _ = sharedStudy(t, b, a, study)
		if s.State == "available" && s.GrantID == extended.Grant.ID || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.State != "available" || s.GrantID != extended.Grant.ID {
		t.Errorf("after revoking the superseded grant the grantee lists the study as %q under grant %s; want available under the live grant %s",
			s.State, s.GrantID, extended.Grant.ID)
	}
	st, err := b.StartFetch(context.Background(), FetchRequest{Study: study})
	if err != nil {
		t.Fatalf("fetch under the live grant refused by the grantee: %v", err)
	}
	if end := waitFetch(t, b, st.ID, 20*time.Second); end.State != FetchDone {
		t.Errorf("fetch under the live grant: %+v", end)
	}
}

// blockingPusher holds pushes to one partner until released and records
// the order of every push.
type blockingPusher struct {
	slow    peer.ID
	release chan struct{}
	mu      sync.Mutex
	pushed  []string
}

func (p *blockingPusher) PushManifest(ctx context.Context, to peer.ID, sealed []byte) error {
	if to == p.slow {
		select {
		case <-p.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	p.pushed = append(p.pushed, string(to)+"/"+string(sealed))
	p.mu.Unlock()
	return nil
}

func (p *blockingPusher) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.pushed)
}

// A partner that is slow to take its manifests does not hold up the
// others (a grant to many partners goes out in parallel), and each
// partner's manifests still go in order.
func TestOutboxDeliversPartnersInParallel(t *testing.T) {
	a := newNode(t, "Alpha")
	slow, err := libp2ptest.RandPeerID()
	if err != nil {
		t.Fatal(err)
	}
	fast, err := libp2ptest.RandPeerID()
	if err != nil {
		t.Fatal(err)
	}
	// An outbox of its own, over a store of its own: the node's own outbox
	// must not deliver these.
	key := make([]byte, 32)
	st, err := store.Open(store.Options{InMemory: true, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, it := range []store.OutboxItem{
		{Peer: slow, Sealed: []byte("s1")}, {Peer: fast, Sealed: []byte("f1")}, {Peer: slow, Sealed: []byte("s2")}, {Peer: fast, Sealed: []byte("f2")},
	} {
		it.Seq, it.Kind, it.Study = uint64(100+i), wire.KindStudy, "1.2.3"
		if err := st.PutOutbox(it); err != nil {
			t.Fatal(err)
		}
	}
	pp := &blockingPusher{slow: slow, release: make(chan struct{})}
	o := &outbox{store: st, audit: a.audit, log: a.log, clock: a.clock, push: pp, timeout: 30 * time.Second, wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() { o.deliverDue(context.Background()); close(done) }()
	waitFor(t, 10*time.Second, "the fast partner's manifests", func() bool { return len(pp.got()) == 2 })
	if got := pp.got(); got[0] != string(fast)+"/f1" || got[1] != string(fast)+"/f2" {
		t.Errorf("while the slow partner holds its push: %q", got)
	}
	close(pp.release)
	<-done
	if got := pp.got(); len(got) != 4 || got[2] != string(slow)+"/s1" || got[3] != string(slow)+"/s2" {
		t.Errorf("pushed %q", got)
	}
	if items, err := st.Outbox(); err != nil || len(items) != 0 {
		t.Errorf("%d items left in the outbox (%v)", len(items), err)
	}
}
