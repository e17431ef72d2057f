package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// The tests in this package run several real nodes in one process, each
// with its own home, Badger archive, libp2p host (TCP on 127.0.0.1, free
// port) and local API. They run one after the other: every node is closed
// by its test, and TestMain checks that nothing is left running.

// testClock is a clock that follows real time plus an offset the test
// moves forward (grant expiry without waiting).
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// NewTimer makes a real timer: the test clock only shifts what Now says.
func (c *testClock) NewTimer(d time.Duration) clock.Timer { return clock.Real().NewTimer(d) }

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// tnode is a running node of a test, closed (once) when the test ends or
// when the test stops it; closing checks the audit chain first.
type tnode struct {
	*Node
	t    *testing.T
	name string
	home string
	opts Options
	once sync.Once
}

// nodeSetup tweaks a node's config and options before it opens.
type nodeSetup struct {
	cfg   func(*Config)
	clock *testClock
}

// newNode initialises a home in a temporary directory and starts a node
// listening on free loopback ports.
func newNode(t *testing.T, name string, setup ...nodeSetup) *tnode {
	t.Helper()
	home := t.TempDir()
	if _, err := Init(home, InitOptions{Name: name}); err != nil {
		t.Fatalf("init %s: %v", name, err)
	}
	cfg, err := LoadConfig(home)
	if err != nil {
		t.Fatalf("load config of %s: %v", name, err)
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.DICOMAddr = "127.0.0.1:0"
	cfg.Exchange.FetchRetryFor = Duration{2 * time.Second}
	opts := Options{Logger: testLogger(t, name)}
	for _, s := range setup {
		if s.cfg != nil {
			s.cfg(&cfg)
		}
		if s.clock != nil {
			opts.Clock = s.clock
		}
	}
	return startNode(t, name, home, cfg, opts)
}

func startNode(t *testing.T, name, home string, cfg Config, opts Options) *tnode {
	t.Helper()
	n, err := Open(home, cfg, opts)
	// A node reopened on its former port may find it taken for a moment:
	// the kernel hands freed ephemeral ports to other processes' outgoing
	// connections (other test packages run at the same time).
	for try := 0; err != nil && strings.Contains(err.Error(), "address already in use") && try < 20; try++ {
		time.Sleep(100 * time.Millisecond)
		n, err = Open(home, cfg, opts)
	}
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	tn := &tnode{Node: n, t: t, name: name, home: home, opts: opts}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(tn.stop)
	return tn
}

// The rooms' entry points under the names the tests were written with.
func (tn *tnode) Import(ctx context.Context, data []byte) ImportResult {
	return tn.ingest.Import(ctx, data)
}
func (tn *tnode) Shared() ([]SharedStudy, error) { return tn.inbox.Shared() }
func (tn *tnode) Grant(ctx context.Context, req GrantRequest) (*consent.SignedGrant, error) {
	return tn.sharing.Grant(ctx, req)
}
func (tn *tnode) Revoke(id, reason, actor string) (*consent.SignedRevocation, error) {
	return tn.sharing.Revoke(id, reason, actor)
}
func (tn *tnode) RemovePeer(idOrName, actor string) (Peer, error) {
	r, err := tn.sharing.RemovePartner(context.Background(), idOrName, actor)
	return r.Peer, err
}
func (tn *tnode) LiveGrants(to, study string) int { return tn.sharing.LiveGrants(to, study) }
func (tn *tnode) StartFetch(ctx context.Context, req FetchRequest) (FetchStatus, error) {
	return tn.fetcher.Start(ctx, req)
}
func (tn *tnode) FetchStatus(id string) (FetchStatus, bool)      { return tn.fetcher.Status(id) }
func (tn *tnode) Instances(study string) ([]InstanceInfo, error) { return tn.archive.Instances(study) }
func (tn *tnode) Studies() ([]Study, error)                      { return tn.archive.Studies() }
func (tn *tnode) InstanceData(study, sop string) ([]byte, InstanceInfo, error) {
	return tn.archive.InstanceData(study, sop)
}
func (tn *tnode) Invite() (string, error)                    { return tn.partners.Invite() }
func (tn *tnode) AddPeer(invite, actor string) (Peer, error) { return tn.partners.Add(invite, actor) }
func (tn *tnode) Peers() []Peer                              { return tn.partners.List() }
func (tn *tnode) resolvePeer(s string) (Peer, error)         { return tn.partners.Resolve(s) }
func (tn *tnode) ManifestFor(ctx context.Context, p peer.ID, study string) ([]byte, error) {
	return tn.sharing.ManifestFor(ctx, p, study)
}
func (tn *tnode) HandleManifest(ctx context.Context, from peer.ID, sealed []byte) error {
	return tn.inbox.HandleManifest(ctx, from, sealed)
}

// stop verifies the audit chain and closes the node; later calls do
// nothing.
func (tn *tnode) stop() {
	tn.once.Do(func() {
		if _, err := tn.ledger.Verify(); err != nil {
			tn.t.Errorf("%s: audit log does not verify: %v", tn.name, err)
		}
		if err := tn.Node.Close(); err != nil {
			tn.t.Errorf("close %s: %v", tn.name, err)
		}
	})
}

// restart stops the node and opens its home again on the same libp2p
// address (partners keep dialling the address of its invite), with cfg
// changed by mod.
func (tn *tnode) restart(mod func(*Config)) *tnode {
	tn.t.Helper()
	var addrs []string
	for _, a := range tn.host.Network().ListenAddresses() {
		addrs = append(addrs, a.String())
	}
	cfg := tn.cfg
	tn.stop()
	cfg.P2PAddrs = addrs
	if mod != nil {
		mod(&cfg)
	}
	return startNode(tn.t, tn.name, tn.home, cfg, tn.opts)
}

// reopen opens a stopped node's home again on the given libp2p
// addresses.
func (tn *tnode) reopen(addrs []string, mod func(*Config)) *tnode {
	tn.t.Helper()
	cfg := tn.cfg
	cfg.P2PAddrs = addrs
	if mod != nil {
		mod(&cfg)
	}
	return startNode(tn.t, tn.name, tn.home, cfg, tn.opts)
}

func (tn *tnode) listenAddrs() []string {
	var addrs []string
	for _, a := range tn.host.Network().ListenAddresses() {
		addrs = append(addrs, a.String())
	}
	return addrs
}

// testLogger writes the node's warnings and errors to the test log.
func testLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", name)
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// link makes a and b partners of each other.
func link(t *testing.T, a, b *tnode) {
	t.Helper()
	addPeer(t, a, b)
	addPeer(t, b, a)
}

// addPeer admits other as a partner of n (one direction only).
func addPeer(t *testing.T, n, other *tnode) {
	t.Helper()
	inv, err := other.Invite()
	if err != nil {
		t.Fatalf("invite of %s: %v", other.name, err)
	}
	if _, err := n.AddPeer(inv, "admin"); err != nil {
		t.Fatalf("%s adds %s: %v", n.name, other.name, err)
	}
}

// ctStudy makes a small synthetic CT study.
func ctStudy(t *testing.T, seed int64, slices int, patient string) (string, []synth.File) {
	t.Helper()
	return ctStudyOf(t, synth.CTOptions{Slices: slices, Seed: seed, PatientName: patient})
}

// ctStudyOf makes a small synthetic CT study (64×64 unless o says).
func ctStudyOf(t *testing.T, o synth.CTOptions) (string, []synth.File) {
	t.Helper()
	if o.Rows == 0 {
		o.Rows, o.Cols = 64, 64
	}
	study, files, err := synth.CT(o)
	if err != nil {
		t.Fatal(err)
	}
	return study, files
}

// importFiles imports files and requires each to be stored.
func importFiles(t *testing.T, n *tnode, files []synth.File) []ImportResult {
	t.Helper()
	var out []ImportResult
	for _, f := range files {
		r := n.Import(context.Background(), f.Data)
		if r.Outcome != OutcomeStored {
			t.Fatalf("%s: import %s: %+v", n.name, f.Name, r)
		}
		out = append(out, r)
	}
	return out
}

// importCT makes and imports a synthetic study.
func importCT(t *testing.T, n *tnode, seed int64, slices int) (string, []synth.File) {
	t.Helper()
	study, files := ctStudy(t, seed, slices, "")
	importFiles(t, n, files)
	return study, files
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sharedStudy returns what n lists as shared by issuer for study.
func sharedStudy(t *testing.T, n *tnode, issuer *tnode, study string) (SharedStudy, bool) {
	t.Helper()
	list, err := n.Shared()
	if err != nil {
		t.Fatalf("%s: shared: %v", n.name, err)
	}
	for _, s := range list {
		if s.Issuer == issuer.ID() && s.Study.UID == study {
			return s, true
		}
	}
	return SharedStudy{}, false
}

// waitShared waits until n lists study as shared by issuer in state and
// with a manifest version of at least minVersion.
func waitShared(t *testing.T, n, issuer *tnode, study, state string, minVersion uint64, timeout time.Duration) SharedStudy {
	t.Helper()
	var s SharedStudy
	waitFor(t, timeout, n.name+" to list the study shared by "+issuer.name+" as "+state, func() bool {
		var ok bool
		s, ok = sharedStudy(t, n, issuer, study)
		return ok && s.State == state && s.Version >= minVersion
	})
	return s
}

// grant grants study to the grantee with the default lifetime.
func grant(t *testing.T, holder, grantee *tnode, study string) *consent.SignedGrant {
	t.Helper()
	g, err := holder.Grant(context.Background(), GrantRequest{To: grantee.ID().String(), Study: study, Actor: "admin"})
	if err != nil {
		t.Fatalf("%s grants to %s: %v", holder.name, grantee.name, err)
	}
	return g
}

// fetchWait starts a fetch and waits for it to end.
func fetchWait(t *testing.T, n *tnode, study string, timeout time.Duration) FetchStatus {
	t.Helper()
	st, err := n.StartFetch(context.Background(), FetchRequest{Study: study, Actor: "admin"})
	if err != nil {
		t.Fatalf("%s: start fetch: %v", n.name, err)
	}
	return waitFetch(t, n, st.ID, timeout)
}

func waitFetch(t *testing.T, n *tnode, id string, timeout time.Duration) FetchStatus {
	t.Helper()
	var st FetchStatus
	waitFor(t, timeout, n.name+" to finish fetch "+id, func() bool {
		var ok bool
		st, ok = n.FetchStatus(id)
		if !ok {
			t.Fatalf("%s: fetch %s unknown", n.name, id)
		}
		return st.State == FetchDone || st.State == FetchFailed
	})
	return st
}

// auditLog reads n's whole audit log.
func auditLog(t *testing.T, n *tnode) []consent.Entry {
	t.Helper()
	var out []consent.Entry
	var after uint64
	for {
		page, err := n.ledger.Entries(after, consent.MaxEntriesLimit)
		if err != nil {
			t.Fatalf("%s: audit entries: %v", n.name, err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

// findAudit returns the entries of n's audit log that match every
// non-empty field of want (Action, Peer, Study, GrantID, Decision,
// Reason, Actor).
func findAudit(t *testing.T, n *tnode, want consent.Entry) []consent.Entry {
	t.Helper()
	var out []consent.Entry
	for _, e := range auditLog(t, n) {
		if (want.Action == "" || e.Action == want.Action) &&
			(want.Peer == "" || e.Peer == want.Peer) &&
			(want.Study == "" || e.Study == want.Study) &&
			(want.GrantID == "" || e.GrantID == want.GrantID) &&
			(want.Decision == "" || e.Decision == want.Decision) &&
			(want.Reason == "" || e.Reason == want.Reason) &&
			(want.Actor == "" || e.Actor == want.Actor) {
			out = append(out, e)
		}
	}
	return out
}

// requireAudit fails unless n's audit log has an entry matching want.
func requireAudit(t *testing.T, n *tnode, want consent.Entry) consent.Entry {
	t.Helper()
	got := findAudit(t, n, want)
	if len(got) == 0 {
		var acts []string
		for _, e := range auditLog(t, n) {
			p := e.Peer.String()
			acts = append(acts, e.Action+"/"+e.Reason+"/"+p[max(0, len(p)-6):])
		}
		t.Fatalf("%s: no audit entry like %+v; log: %v", n.name, want, acts)
	}
	return got[len(got)-1]
}

// waitAudit waits until n's audit log has an entry matching want: some
// entries are written just after the event a test can observe (the
// outbox audits a delivery after the partner acknowledged it).
func waitAudit(t *testing.T, n *tnode, want consent.Entry) consent.Entry {
	t.Helper()
	waitFor(t, 5*time.Second, n.name+" to audit "+want.Action+"/"+want.Reason, func() bool {
		return len(findAudit(t, n, want)) > 0
	})
	return requireAudit(t, n, want)
}

// studyCIDs lists the block CIDs of a study held by n, in instance order.
func studyCIDs(t *testing.T, n *tnode, study string) []cid.Cid {
	t.Helper()
	insts, err := n.Instances(study)
	if err != nil {
		t.Fatalf("%s: instances: %v", n.name, err)
	}
	var out []cid.Cid
	for _, in := range insts {
		for _, b := range in.Blocks {
			out = append(out, cid.MustParse(b.CID))
		}
	}
	return out
}

// scanArchive calls fn for every key and value version in n's archive.
func scanArchive(t *testing.T, n *tnode, fn func(key, value []byte)) {
	t.Helper()
	if err := n.store.ScanRaw(fn); err != nil {
		t.Fatalf("%s: scan archive: %v", n.name, err)
	}
}

// printableKey shows a key's prefix readably (CID bytes are binary).
func printableKey(k []byte) string { return store.PrintableKey(k) }

// setRecord overwrites a record of n's archive with v's JSON (tests that
// corrupt what is stored).
func setRecord(n *tnode, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return n.store.SetRaw(key, b)
}

// The archive's key prefixes, for tests that look at raw keys.
const (
	pfxBlock    = store.PrefixBlock
	pfxBlockIdx = store.PrefixBlockIdx
	pfxStudy    = store.PrefixStudy
	pfxInstance = store.PrefixInstance
	pfxSOP      = store.PrefixSOP
	pfxPeer     = store.PrefixPeer
	pfxShared   = store.PrefixShared
	pfxOutbox   = store.PrefixOutbox
)
