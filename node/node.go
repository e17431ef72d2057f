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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/pacsnet/pacsnet/auditlog"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/durable"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
	"github.com/pacsnet/pacsnet/web"
)

// Node is one facility's running pacsnet node. It owns the wiring and
// the lifetime of its rooms: the archive (store), the consent ledger and
// auditor, the partner registry, ingest, sharing (grants → manifests →
// outbox), the inbox of partners' manifests, the fetcher, the exchange
// adapters and the local HTTP API. docs/architecture.md draws them.
type Node struct {
	cfg   Config
	home  string
	log   *slog.Logger
	clock clock.Clock

	keys    *keys
	space   *space // the free-space guard of the archive's disk
	store   *store.Store
	ledger  *consent.Ledger
	host    host.Host
	ownHost bool // the node made the host and closes it
	ex      *exchange.Service

	audit     *auditor
	keyring   *keyring
	partners  *partners
	ingest    *ingester
	archive   *archive
	sharing   *sharing
	secondary *secondary
	requests  *requests
	asks      *asks
	search    *search
	shipper   *auditlog.Shipper // the audit stream to a syslog collector; nil when off
	inbox     *inbox
	outbox    *outbox
	fetcher   *fetcher
	aes       *aeRegistry
	dicom     *dicomEdge
	sends     *sends
	forward   *forwarder
	dicomweb  *dicomwebRoom
	users     *users
	web       *web.Server // the web app: login form, session cookie, assets

	ctx    context.Context // lives until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	httpLn net.Listener
	conns  *connLimiter // bounds the API's connections
	http   *http.Server
}

// Options are the parts of a node that tests and simulations swap; the
// zero value is what `pacsnet serve` runs.
type Options struct {
	// Logger receives the node's log, tagged by Open with the facility's
	// name. Default: discard.
	Logger *slog.Logger
	// Clock is the node's time (grant expiry, outbox and fetch retries,
	// value-log GC). Default: the system clock.
	Clock clock.Clock
	// Host is the libp2p host to use instead of one built from the
	// config's addresses (e.g. a mocknet peer). The caller keeps it: Close
	// does not close it.
	Host host.Host
	// InMemory runs the archive in Badger's in-memory mode: nothing of it
	// is written to the home (simulations, tests).
	InMemory bool
}

// Open loads the home's keys (refusing key files readable by others),
// opens the encrypted archive and the consent ledger, starts the libp2p
// host and protocol services and wires the node's rooms together. Start
// (or Run) serves the HTTP API and the outbox.
func Open(home string, cfg Config, opts Options) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	n := &Node{cfg: cfg, home: home, log: opts.Logger.With("facility", cfg.Name), clock: opts.Clock}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	warnings, err := CheckHome(home)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		n.log.Warn(w)
	}
	if n.keys, err = loadKeys(home); err != nil {
		return nil, err
	}
	n.space = newSpace(archiveSpaceDir(home), int64(cfg.Archive.MinFree), opts.InMemory)
	if n.space.readOnly {
		n.log.Warn("the archive's disk is nearly full: opening the archive read-only; studies can be listed, read and exported, every write (import, fetch, grant, audit) is refused until space is freed and the node restarted",
			"free", fmtBytes(n.space.startFree), "needed", fmtBytes(n.space.floor()), "archive.min_free", fmtBytes(n.space.minFree))
	}
	n.store, err = store.Open(store.Options{
		Dir: filepath.Join(home, archiveDir), InMemory: opts.InMemory, Key: n.keys.archiveKey,
		ValueLogFileSize: valueLogFileSize, Logger: n.log, ReadOnly: n.space.readOnly, Guard: n.space.write,
	})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("open archive: another pacsnet process is serving this home (%s)", home)
	}
	if err != nil && n.space.readOnly {
		return nil, fmt.Errorf("open archive read-only (its disk has %s free): %w", fmtBytes(n.space.startFree), err)
	}
	if err != nil {
		return nil, err
	}
	if n.ledger, err = consent.Open(n.store, n.keys.id.Sign, n.clock.Now); err != nil {
		return nil, fmt.Errorf("open consent ledger: %w", err)
	}
	n.ledger.SetFacility(cfg.Name) // every audit entry names the facility (issue 8)
	n.audit = newAuditor(n.ledger, n.log, n.clock, cfg.Audit.CheckpointInterval.Duration)
	if !opts.InMemory {
		n.audit.spool.Store(&auditSpool{path: filepath.Join(home, auditSpoolFile)})
		if !n.space.readOnly {
			n.audit.drainSpool() // what a full disk kept back, first
		}
	}
	if n.shipper, err = newAuditShipper(home, cfg.Audit.Syslog, n); err != nil {
		return nil, err
	}
	if n.shipper != nil {
		n.audit.notify = n.shipper.Notify
	}
	n.keyring = newKeyring(n.store, n.keys.id, n.clock)
	if n.users, err = newUsers(n.store, n.audit, n.clock, cfg.Users, n.log); err != nil {
		return nil, err
	}
	n.web = web.New(cfg.Name, webSessions{n.users}, n.log)
	if n.partners, err = newPartners(n.store, n.keys.id, cfg.Name, n.audit, n.clock); err != nil {
		return nil, err
	}
	if opts.Host != nil {
		n.host = opts.Host
	} else {
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
		n.ownHost = true
	}
	n.partners.attach(n.host)
	// Audit entries name the partner as it is called when they are written.
	n.ledger.SetPeerNamer(func(p peer.ID) string {
		pr, _ := n.partners.Get(p)
		return pr.Name
	})
	redial := func(p peer.ID) { exchange.ClearDialBackoff(n.host, p) }

	n.ingest = newIngester(n.store, n.keyring, n.clock, cfg.Archive)
	n.ingest.space = n.space
	n.archive = &archive{store: n.store, keys: n.keyring, audit: n.audit}
	n.inbox = &inbox{store: n.store, partners: n.partners, id: n.keys.id, self: n.host.ID(), audit: n.audit, clock: n.clock, log: n.log}
	n.outbox = &outbox{store: n.store, audit: n.audit, log: n.log, clock: n.clock,
		wake: make(chan struct{}, 1), timeout: 30 * time.Second, redial: redial}
	n.partners.added = n.outbox.kick
	n.partners.onConnect(n.outbox.reconnected)
	n.sharing = &sharing{store: n.store, ledger: n.ledger, partners: n.partners, keys: n.keyring, outbox: n.outbox,
		audit: n.audit, clock: n.clock, id: n.keys.id, self: n.host.ID(), name: cfg.Name, ttl: cfg.Exchange,
		log: n.log, wake: make(chan struct{}, 1)}
	n.ingest.stored = n.sharing.studyChanged
	n.ledger.SetStudyPatient(n.sharing.studyPatient)
	// Each partner's requests are rate-limited in front of the rooms that
	// answer them: manifests (pulls and pushes share a bucket) and blocks.
	manifestLim := newPeerLimiter(n.clock, cfg.Exchange.PeerRequestRate, cfg.Exchange.PeerRequestBurst)
	blockLim := newPeerLimiter(n.clock, cfg.Exchange.PeerBlockRate, cfg.Exchange.PeerBlockBurst)
	askLim := newPeerLimiter(n.clock, cfg.Exchange.PeerRequestRate, cfg.Exchange.PeerRequestBurst)
	n.asks = &asks{partners: n.partners, id: n.keys.id, audit: n.audit, clock: n.clock}
	n.requests = &requests{store: n.store, book: consent.NewRequestBook(n.ledger), partners: n.partners, sharing: n.sharing, asks: n.asks,
		audit: n.audit, clock: n.clock, cfg: cfg.Requests, ttl: cfg.Exchange}
	n.asks.handle(wire.KindAccessRequest, n.requests.answerRequest)
	n.asks.handle(wire.KindRequestStatus, n.requests.answerStatus)
	n.search = &search{asks: n.asks, partners: n.partners, sharing: n.sharing, inbox: n.inbox, audit: n.audit,
		cfg: cfg.Requests, lim: newPeerLimiter(n.clock, queryRate, queryBurst)}
	n.asks.handle(wire.KindPatientQuery, n.search.answerQuery)
	n.asks.handle(wire.KindHolders, n.sharing.answerHolders)
	n.secondary = &secondary{store: n.store, partners: n.partners, audit: n.audit, clock: n.clock, self: n.host.ID(),
		on: cfg.Exchange.ServeAsSecondary, queue: n.sharing.sealAndQueue, log: n.log}
	n.inbox.holderNotice, n.inbox.foreignRevocation = n.sharing.holderNotice, n.secondary.revoked
	if !n.secondary.on && !n.space.readOnly {
		n.secondary.withdrawAll() // queued in the outbox, delivered once the node runs
	}
	n.ex = exchange.NewService(n.host, exchange.ServiceConfig{
		Auth:      limitedAuthorizer{&blockAuthorizer{store: n.store, ledger: n.ledger, audit: n.audit}, blockLim, n.audit},
		Blocks:    blockSource{n.store},
		Secondary: limitedPresenter{n.secondary, blockLim, n.audit},
		Manifests: limitedHandler{n.inbox, manifestLim, n.audit},
		Source:    limitedSource{n.sharing, manifestLim, n.audit},
		Asks:      limitedAsks{n.asks, askLim, n.audit},
		Logger:    n.log, UploadRate: cfg.Exchange.UploadRate,
	})
	n.outbox.push = n.ex
	n.asks.ex = n.ex
	n.fetcher = &fetcher{store: n.store, keys: n.keyring, ex: n.ex, inbox: n.inbox, partners: n.partners, audit: n.audit,
		clock: n.clock, id: n.keys.id, retryFor: cfg.Exchange.FetchRetryFor.Duration, redial: redial, ctx: n.ctx,
		jobs: map[string]*fetchJob{}, space: n.space, log: n.log}
	if n.aes, err = newAERegistry(n.store, cfg.DICOM.AEs, n.audit, n.clock); err != nil {
		return nil, err
	}
	n.dicom = &dicomEdge{cfg: cfg.DICOM, aet: cfg.AETitle, addr: cfg.DICOMAddr, home: home, aes: n.aes, ingest: n.ingest,
		commit: &committer{store: n.store, audit: n.audit}, audit: n.audit, log: n.log,
		query:  &queryRoom{archive: n.archive, inbox: n.inbox, aet: cfg.AETitle},
		sender: &sender{aet: cfg.AETitle, archive: n.archive, limits: dimse.Limits{MaxPDU: cfg.DICOM.MaxPDU}, log: n.log},
		fetch:  n.fetcher}
	n.dicom.sender.dial = n.dicom.dialer
	n.dicom.commit.report = n.dicom.reportOnNewAssociation
	n.sends = &sends{sender: n.dicom.sender, aes: n.aes, audit: n.audit, clock: n.clock, ctx: n.ctx, jobs: map[string]*SendStatus{}}
	n.forward = newForwarder(cfg.DICOM.ForwardTo, n.store, n.archive, n.dicom.sender, n.aes, n.audit, n.log, n.clock)
	n.fetcher.fetched = n.forward.enqueue
	n.fetcher.asks, n.fetcher.announce = n.asks, n.secondary.fetched
	n.dicomweb = &dicomwebRoom{query: n.dicom.query, archive: n.archive, inbox: n.inbox, ingest: n.ingest, audit: n.audit,
		maxPart: cfg.Archive.MaxInstanceSize, cors: cfg.HTTP.CORSOrigins}
	if to := cfg.DICOM.ForwardTo; to != "" {
		if _, ok := n.aes.Get(to); !ok {
			n.log.Warn("dicom.forward_to names no known AE: fetched studies wait in the forward queue until it is added with pacsnet ae add", "forward_to", to)
		}
	}
	return n, nil
}

// archiveSpaceDir is the directory whose file system the free-space
// guard measures: the archive's, or the home's before the archive exists.
func archiveSpaceDir(home string) string {
	dir := filepath.Join(home, archiveDir)
	if _, err := os.Stat(dir); err != nil {
		return home
	}
	return dir
}

// valueLogFileSize bounds one value-log file (store.Options). A variable
// so a test can make GC reachable.
var valueLogFileSize int64 = 256 << 20

// valueLogGCInterval is how often the archive reclaims value-log space of
// deleted and overwritten values (delivered outbox items, rewritten
// records).
const valueLogGCInterval = 10 * time.Minute

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

// Start begins serving: the HTTP API on cfg.HTTPAddr, the outbox and the
// archive's value-log GC. It returns once the API listens.
func (n *Node) Start() error {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	n.httpLn = ln
	lim := n.cfg.HTTP
	n.conns = newConnLimiter(ln, lim.MaxConns, lim.MaxUnauthenticatedConns)
	n.http = &http.Server{
		Handler:           ioDeadlines(n.apiServer().handler(), lim.IOTimeout.Duration),
		ReadHeaderTimeout: lim.HeaderTimeout.Duration,
		IdleTimeout:       lim.IdleTimeout.Duration,
		ConnState:         n.conns.connState,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug), // refused and timed-out connections are routine
	}
	if !n.cfg.DICOM.Disabled {
		if err := n.dicom.Start(n.ctx); err != nil {
			ln.Close()
			return err
		}
	}
	n.wg.Add(5)
	go func() {
		defer n.wg.Done()
		n.audit.Run(n.ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.sharing.Run(n.ctx)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.requests.Run(n.ctx)
	}()
	if n.shipper != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.shipper.Run(n.ctx); err != nil && !errors.Is(err, context.Canceled) {
				n.log.Error("audit stream to the syslog collector stopped", "err", err)
			}
		}()
	}
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(n.conns); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.outbox.Run(n.ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.runGC(n.ctx)
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.forward.Run(n.ctx)
	}()
	return nil
}

// runGC sweeps the blob log of what an earlier run's crash left in it,
// once, then runs the archive's value-log GC every valueLogGCInterval.
func (n *Node) runGC(ctx context.Context) {
	if freed, err := n.store.SweepBlobs(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("archive: sweep of the blob log", "err", err)
	} else if freed > 0 {
		n.log.Info("archive: freed the space an interrupted write left in the blob log", "bytes", freed)
	}
	for {
		t := n.clock.NewTimer(valueLogGCInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		if files := n.store.GC(ctx); files > 0 {
			n.log.Info("archive value-log GC", "files_rewritten", files)
		}
	}
}

// HTTPAddr is the address the API listens on, once started.
// DICOMAddr is the DICOM listener's address ("" when it is off or not
// started).
func (n *Node) DICOMAddr() string {
	if n.dicom == nil {
		return ""
	}
	return n.dicom.Addr()
}

func (n *Node) dicomDesc() string {
	if n.cfg.DICOM.Disabled {
		return "off"
	}
	if tlsAddr := n.DICOMTLSAddr(); tlsAddr != "" {
		return n.cfg.AETitle + "@" + n.DICOMAddr() + " tls@" + tlsAddr
	}
	return n.cfg.AETitle + "@" + n.DICOMAddr()
}

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
	if n.dicom != nil {
		n.dicom.Close()
	}
	if n.fetcher != nil {
		n.fetcher.wait()
	}
	if n.sends != nil {
		n.sends.wait()
	}
	if n.partners != nil {
		n.partners.detach()
	}
	n.wg.Wait()
	if n.ex != nil {
		n.ex.Close()
	}
	if n.audit != nil {
		n.audit.flushDenials(true) // never lose the count of denials (also when never started)
		if !n.space.readOnly {
			n.audit.Checkpoint(consent.ActorSystem) // seal the log as it is left
		}
	}
	if n.host != nil && n.ownHost {
		n.host.Close()
	}
	var err error
	if n.store != nil {
		err = n.store.Close()
	}
	return err
}

// Run serves until ctx is done: it starts the API and the outbox, writes
// HOME/run/api.json for the CLI, logs one line with its addresses, and on
// cancellation removes the run file. The caller closes the node.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(); err != nil {
		return err
	}
	if err := n.writeRunInfo(); errors.Is(err, syscall.ENOSPC) {
		// A node on a full disk still serves reads and exports: the admin
		// reaches it at its configured address.
		n.log.Error("cannot write run/api.json, the disk is full: the CLI cannot find this node until space is freed and it is restarted",
			"http", "http://"+n.HTTPAddr())
	} else if err != nil {
		return fmt.Errorf("write run info: %w", err)
	}
	if !loopbackOnly(n.HTTPAddr()) {
		n.log.Warn("the local API listens on a non-loopback address: anyone who can reach it and holds the admin token controls this node; keep http_addr on 127.0.0.1 unless a firewall and TLS proxy guard it",
			"http", n.HTTPAddr())
	}
	n.log.Info("serving", "name", n.cfg.Name, "peer", n.host.ID().String(), "http", "http://"+n.HTTPAddr(),
		"p2p", strings.Join(n.P2PAddrs(), ","), "dicom", n.dicomDesc())
	<-ctx.Done()
	os.Remove(filepath.Join(n.home, runDir, apiInfoFile))
	return nil
}

// onlyLoopbackP2P reports whether every libp2p address the node listens
// on (and so every address its invite names) is a loopback one.
func (n *Node) onlyLoopbackP2P() bool {
	for _, a := range n.host.Addrs() {
		ip, err := manet.ToIP(a)
		if err != nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// loopbackOnly reports whether a listen address (host:port, as bound)
// reaches this machine only.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// writeRunInfo records where the running node's API listens, for the CLI.
func (n *Node) writeRunInfo() error {
	b, err := json.Marshal(RunInfo{API: "http://" + n.HTTPAddr(), PID: os.Getpid(), PeerID: n.host.ID(), P2P: n.P2PAddrs(), Name: n.cfg.Name})
	if err != nil {
		return err
	}
	// run/ is not part of a backup: a restored home may lack it.
	if err := os.MkdirAll(filepath.Join(n.home, runDir), 0o700); err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(n.home, runDir, apiInfoFile), b, 0o600)
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
//
// The CLI sends the admin token to the URL this file names, so it is
// refused when anyone but its owner could have written it: the home, run/
// or the file writable by group or others.
func ReadRunInfo(home string) (RunInfo, error) {
	var ri RunInfo
	path := filepath.Join(home, runDir, apiInfoFile)
	uid := os.Geteuid()
	for _, p := range []string{home, filepath.Join(home, runDir), path} {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if fi.Mode().Perm()&0o022 != 0 {
			return ri, fmt.Errorf("read run info: %s is writable by group or others (mode %04o), so the API address in it cannot be trusted; chmod go-w it", p, fi.Mode().Perm())
		}
		// Root may administer a node run by its service user; anyone else
		// trusts only their own files (or root's).
		if owner, ok := fileOwner(fi); ok && uid != 0 && owner != uid && owner != 0 {
			return ri, fmt.Errorf("read run info: %s is owned by uid %d, not by you (uid %d) or root, so the API address in it cannot be trusted", p, owner, uid)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, cerr := os.Stat(filepath.Join(home, "config.toml")); errors.Is(cerr, os.ErrNotExist) {
				return ri, noHomeError{home}
			}
			return ri, fmt.Errorf("no node is serving %s (start one with `pacsnet serve`)", home)
		}
		return ri, fmt.Errorf("read run info: %w", err)
	}
	if err := json.Unmarshal(b, &ri); err != nil {
		return ri, fmt.Errorf("read run info %s: %w", path, err)
	}
	return ri, nil
}
