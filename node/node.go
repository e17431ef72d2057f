package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/exchange"
)

// Node is one facility's running pacsnet node: archive, consent ledger,
// libp2p services, outbox, fetches and the local HTTP API.
type Node struct {
	cfg  Config
	home string
	log  *slog.Logger
	now  func() time.Time

	keys     *keys
	arch     *archive
	ledger   *consent.Ledger
	host     host.Host
	ex       *exchange.Service
	partners *partnerSet
	outbox   *outbox
	fetches  *fetcher

	commitMu sync.Mutex // serialises commits that update study records

	keyMu    sync.Mutex
	keyCache map[string]*crypto.StudyKey

	auditMu   sync.Mutex
	auditSeen map[string]time.Time // dedupe of per-block authorization audit entries

	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	httpLn net.Listener
	http   *http.Server
}

// Options are the parts of a node that tests and simulations swap.
type Options struct {
	Logger *slog.Logger     // default: discard
	Now    func() time.Time // default: time.Now
}

// Open loads the home's keys (refusing key files readable by others),
// opens the encrypted archive and the consent ledger and starts the libp2p
// host and protocol services. Serve starts the HTTP API and the outbox.
func Open(home string, cfg Config, opts Options) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	n := &Node{
		cfg: cfg, home: home, log: opts.Logger, now: opts.Now,
		partners: newPartnerSet(), fetches: &fetcher{jobs: map[string]*fetchJob{}},
		keyCache: map[string]*crypto.StudyKey{}, auditSeen: map[string]time.Time{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.keys, err = loadKeys(home); err != nil {
		return nil, err
	}
	if n.arch, err = openArchive(filepath.Join(home, archiveDir), n.keys.archiveKey, n.log); err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("open archive: another pacsnet process is serving this home (%s)", home)
		}
		return nil, err
	}
	if n.ledger, err = consent.Open(n.arch, n.keys.id.Sign, n.now); err != nil {
		return nil, fmt.Errorf("open consent ledger: %w", err)
	}
	if err := scanJSON(n.arch, pfxPeer, func(_ []byte, p *Peer) error { n.partners.add(*p); return nil }); err != nil {
		return nil, fmt.Errorf("load peers: %w", err)
	}
	var addrs []multiaddr.Multiaddr
	for _, s := range cfg.P2PAddrs {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	if n.host, err = exchange.NewHost(exchange.HostConfig{Key: n.keys.id.Sign, ListenAddrs: addrs, Partners: n.partners}); err != nil {
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	for _, p := range n.partners.list() {
		n.addPeerAddrs(p)
	}
	n.ex = exchange.NewService(n.host, exchange.ServiceConfig{
		Auth: n, Blocks: n.arch, Manifests: n, Source: n,
		Logger: n.log, UploadRate: cfg.Exchange.UploadRate,
	})
	n.outbox = &outbox{arch: n.arch, push: n.ex, audit: n.audit, log: n.log, now: n.now, wake: make(chan struct{}, 1), timeout: 30 * time.Second,
		redial: func(p peer.ID) {
			if sw, ok := n.host.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(p)
			}
		}}
	return n, nil
}

// ID is the node's libp2p peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Config returns the node's configuration.
func (n *Node) Config() Config { return n.cfg }

// P2PAddrs are the addresses the libp2p host listens on.
func (n *Node) P2PAddrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// Start begins serving: the HTTP API on cfg.HTTPAddr and the outbox. It
// returns once the API listens.
func (n *Node) Start() error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	n.httpLn = ln
	n.http = &http.Server{Handler: n.apiHandler(), ReadHeaderTimeout: 10 * time.Second}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.outbox.Run(n.ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.arch.runGC(n.ctx, valueLogGCInterval)
	}()
	return nil
}

// HTTPAddr is the address the API listens on, once started.
func (n *Node) HTTPAddr() string {
	if n.httpLn == nil {
		return ""
	}
	return n.httpLn.Addr().String()
}

// Close stops everything the node started and waits for it.
func (n *Node) Close() error {
	n.cancel()
	if n.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.http.Shutdown(ctx)
		cancel()
	}
	if n.fetches != nil {
		n.fetches.wg.Wait()
	}
	n.wg.Wait()
	if n.ex != nil {
		n.ex.Close()
	}
	if n.host != nil {
		n.host.Close()
	}
	var err error
	if n.arch != nil {
		err = n.arch.Close()
	}
	return err
}

// audit records an entry; a failure to audit is logged loudly (the entry
// itself carries no patient data).
func (n *Node) audit(e consent.Entry) {
	if e.Actor == "" {
		e.Actor = "system"
	}
	rec, err := n.ledger.Record(e)
	if err != nil {
		n.log.Error("audit write failed", "action", e.Action, "err", err)
		return
	}
	// The log line names the event, never the study or patient: the audit
	// log (encrypted at rest) keeps those, and an admin's free-text
	// revocation reason, which could name a patient, too.
	reason := e.Reason
	if e.Action == consent.ActRevoke {
		reason = "(in the audit log)"
	}
	n.log.Info(e.Action, "audit", rec.Seq, "actor", e.Actor, "peer", e.Peer, "decision", e.Decision, "reason", reason)
}

// auditOnce records e unless the same (peer, grant, action) was recorded
// within the last window: block requests come by the hundred per fetch.
//
// A request citing a grant we never issued is keyed without the grant ID,
// so that a peer inventing IDs cannot turn each request into an audit
// commit, and the dedupe table is pruned so it cannot grow without bound.
func (n *Node) auditOnce(e consent.Entry, window time.Duration) {
	grant := e.GrantID
	if _, ok := n.ledger.Get(grant); !ok {
		grant = "(unknown)"
	}
	k := string(e.Peer) + "|" + e.Actor + "|" + grant + "|" + e.Study + "|" + e.Action + "|" + e.Reason
	now := n.now()
	n.auditMu.Lock()
	last, ok := n.auditSeen[k]
	if ok && now.Sub(last) < window {
		n.auditMu.Unlock()
		return
	}
	if len(n.auditSeen) >= maxAuditSeen {
		for key, t := range n.auditSeen {
			if now.Sub(t) >= auditDedupeMax {
				delete(n.auditSeen, key)
			}
		}
	}
	n.auditSeen[k] = now
	n.auditMu.Unlock()
	n.audit(e)
}

// Bounds of the authorization-audit dedupe table: entries older than the
// longest window are dropped once it holds maxAuditSeen keys.
const (
	maxAuditSeen   = 4096
	auditDedupeMax = 10 * time.Minute
)

// AuthorizeBlock implements exchange.Authorizer. It runs for every block a
// partner asks for: the block must belong to a study that a live grant,
// issued by us to that very peer and cited by the request, covers.
func (n *Node) AuthorizeBlock(_ context.Context, p peer.ID, grantID string, c cid.Cid) error {
	study, err := n.arch.blockStudy(c)
	if err != nil {
		if errors.Is(err, exchange.ErrBlockNotFound) {
			// Only a peer holding a grant of ours learns that a block is
			// absent; others are simply refused.
			if st, ok := n.ledger.Get(grantID); ok && st.Grant.Grantee == p {
				return err
			}
			n.auditOnce(consent.Entry{Peer: p, Action: consent.ActFetchDenied, GrantID: grantID, Decision: "deny", Reason: "no-grant"}, time.Minute)
			return fmt.Errorf("%w: no grant", exchange.ErrDenied)
		}
		return err
	}
	if err := n.ledger.Check(p, grantID, study, consent.ActionFetch); err != nil {
		n.auditOnce(consent.Entry{Peer: p, Action: consent.ActFetchDenied, Study: study, GrantID: grantID, Decision: "deny", Reason: denyReason(err)}, time.Minute)
		return fmt.Errorf("%w: %s", exchange.ErrDenied, denyReason(err))
	}
	n.auditOnce(consent.Entry{Peer: p, Action: consent.ActFetchAllowed, Study: study, GrantID: grantID, Decision: "allow"}, 10*time.Minute)
	return nil
}

func denyReason(err error) string {
	for _, r := range []struct {
		err    error
		reason string
	}{
		{consent.ErrNoGrant, "no-grant"},
		{consent.ErrWrongGrantee, "wrong-grantee"},
		{consent.ErrOutOfScope, "out-of-scope"},
		{consent.ErrExpired, "expired"},
		{consent.ErrNotYetValid, "not-yet-valid"},
		{consent.ErrRevoked, "revoked"},
		{consent.ErrActionNotGranted, "action-not-granted"},
	} {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "denied"
}

// ManifestFor implements exchange.ManifestSource: a partner asks for the
// manifest of a study (a pull, e.g. a specialist who knows the study
// exists). It is answered only under a live grant to that partner.
func (n *Node) ManifestFor(_ context.Context, p peer.ID, study string) ([]byte, error) {
	live := n.liveGrants(p, study)
	if len(live) == 0 {
		n.audit(consent.Entry{Peer: p, Action: consent.ActFetchDenied, Study: study, Decision: "deny", Reason: "no-grant"})
		return nil, fmt.Errorf("%w: no grant", exchange.ErrDenied)
	}
	grant := &live[len(live)-1] // the newest
	pr, ok := n.partners.get(p)
	if !ok {
		return nil, exchange.ErrDenied
	}
	sr, ok, err := n.study(study)
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: study", exchange.ErrNotFound)
	}
	sk, err := n.studyKey(sr.StudyInfo, "", "", false)
	if err != nil {
		return nil, err
	}
	insts, err := n.instances(study)
	if err != nil {
		return nil, err
	}
	m := Manifest{Kind: KindStudy, Grant: grant, Study: sr.StudyInfo, StudyKey: sk.String(), Instances: insts}
	var sealed []byte
	err = n.arch.update(func(txn *badger.Txn) error {
		var err error
		sealed, err = n.sealManifest(txn, pr, &m)
		return err
	})
	if err != nil {
		return nil, err
	}
	n.audit(consent.Entry{Peer: p, Action: consent.ActManifestSent, Study: study, GrantID: grant.Grant.ID, Reason: "pull"})
	return sealed, nil
}

// study reads a study record.
func (n *Node) study(uid string) (studyRecord, bool, error) {
	var sr studyRecord
	var ok bool
	err := n.arch.db.View(func(txn *badger.Txn) error {
		var err error
		ok, err = getJSON(txn, pfxStudy+uid, &sr)
		return err
	})
	return sr, ok, err
}

// instances lists a study's instances in series and instance order.
func (n *Node) instances(study string) ([]InstanceInfo, error) {
	var out []InstanceInfo
	err := scanJSON(n.arch, pfxInstance+study+"/", func(_ []byte, r *InstanceInfo) error {
		out = append(out, *r)
		return nil
	})
	slices.SortStableFunc(out, func(a, b InstanceInfo) int {
		if a.SeriesNumber != b.SeriesNumber {
			return a.SeriesNumber - b.SeriesNumber
		}
		if a.Series != b.Series {
			return strings.Compare(a.Series, b.Series)
		}
		return a.InstanceNumber - b.InstanceNumber
	})
	return out, err
}

// Study is the API view of a study held here.
type Study struct {
	StudyInfo
	Origin     peer.ID   `json:"origin,omitempty"`
	OriginName string    `json:"origin_name,omitempty"`
	Instances  int       `json:"instances"`
	Expected   int       `json:"expected,omitempty"` // fetched studies: what the manifest lists
	Complete   bool      `json:"complete"`           // false while a fetched study lacks instances
	Bytes      int64     `json:"bytes"`
	Updated    time.Time `json:"updated"`
}

func (r *studyRecord) complete() bool { return r.Expected == 0 || r.Instances >= r.Expected }

// errIncomplete is returned when a partly fetched study is exported
// without asking for a partial export.
var errIncomplete = errors.New("study is incomplete")

// Studies lists the studies in the local archive.
func (n *Node) Studies() ([]Study, error) {
	var out []Study
	err := scanJSON(n.arch, pfxStudy, func(_ []byte, r *studyRecord) error {
		if r.Instances > 0 {
			out = append(out, Study{StudyInfo: r.StudyInfo, Origin: r.Origin, OriginName: r.OriginName,
				Instances: r.Instances, Expected: r.Expected, Complete: r.complete(), Bytes: r.Bytes, Updated: r.Updated})
		}
		return nil
	})
	return out, err
}

// Instances lists a local study's instances.
func (n *Node) Instances(study string) ([]InstanceInfo, error) {
	if _, ok, err := n.study(study); err != nil {
		return nil, err
	} else if !ok {
		return nil, errStudyNotFound
	}
	return n.instances(study)
}

// InstanceData returns one instance's Part-10 bytes, verified against its
// digest.
func (n *Node) InstanceData(study, sop string) ([]byte, InstanceInfo, error) {
	var rec InstanceInfo
	var ok bool
	err := n.arch.db.View(func(txn *badger.Txn) error {
		var err error
		ok, err = getJSON(txn, instKey(study, sop), &rec)
		return err
	})
	if err != nil {
		return nil, rec, err
	}
	if !ok {
		return nil, rec, errStudyNotFound
	}
	b, err := n.readInstance(rec)
	return b, rec, err
}

// writeRunInfo records where the running node's API listens, for the CLI.
func (n *Node) writeRunInfo() error {
	b, err := json.Marshal(RunInfo{API: "http://" + n.HTTPAddr(), PID: os.Getpid(), PeerID: n.host.ID(), P2P: n.P2PAddrs(), Name: n.cfg.Name})
	if err != nil {
		return err
	}
	return writeFileSync(filepath.Join(n.home, runDir, apiInfoFile), b, 0o600)
}

// RunInfo is HOME/run/api.json, written while the node serves.
type RunInfo struct {
	API    string   `json:"api"`
	PID    int      `json:"pid"`
	PeerID peer.ID  `json:"peer_id"`
	P2P    []string `json:"p2p"`
	Name   string   `json:"name"`
}

// ReadRunInfo reads HOME/run/api.json.
func ReadRunInfo(home string) (RunInfo, error) {
	var ri RunInfo
	path := filepath.Join(home, runDir, apiInfoFile)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ri, fmt.Errorf("no node is serving %s (start one with `pacsnet serve`)", home)
		}
		return ri, fmt.Errorf("read run info: %w", err)
	}
	if err := json.Unmarshal(b, &ri); err != nil {
		return ri, fmt.Errorf("read run info %s: %w", path, err)
	}
	return ri, nil
}
