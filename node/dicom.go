package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// DICOMConfig tunes the DICOM edge (the [dicom] section).
type DICOMConfig struct {
	// Disabled turns the DICOM listener off.
	Disabled bool `toml:"disabled"`

	// MaxAssociations bounds the associations served at once; more are
	// rejected (transient, local limit exceeded). Default 32.
	MaxAssociations int `toml:"max_associations"`

	// MaxAssociationsPerAE bounds one calling AE's associations at once.
	// Default 8.
	MaxAssociationsPerAE int `toml:"max_associations_per_ae"`

	// MaxPDU is the largest P-DATA-TF PDU accepted (announced to peers);
	// memory per association is a few times this. Default 1 MiB.
	MaxPDU uint32 `toml:"max_pdu"`

	// IdleTimeout ends an association from which nothing arrived for this
	// long while no operation runs. Default 5m.
	IdleTimeout Duration `toml:"idle_timeout"`

	// ARTIMTimeout bounds the wait for an association request after a
	// connection opens, and for a release answer. 0 means 30s.
	ARTIMTimeout Duration `toml:"artim_timeout"`

	// AEs are application entities known from the config file, besides
	// those added with `pacsnet ae add`.
	AEs []AEConfig `toml:"ae"`

	// TLSAddr is where the DICOM TLS listener (PS3.15 B.12/B.13: TLS 1.2
	// or later, AEAD suites only) accepts associations; empty: none.
	// It needs TLSCert and TLSKey.
	TLSAddr string `toml:"tls_addr,omitempty"`

	// TLSCert and TLSKey are PEM files (relative to the home, or
	// absolute): the node's certificate chain and private key, for the
	// TLS listener and for associations it opens to AEs marked tls. The
	// key file must not be accessible by group or others (0600).
	TLSCert string `toml:"tls_cert,omitempty"`
	TLSKey  string `toml:"tls_key,omitempty"`

	// TLSClientCA is a PEM file of CA certificates; when set, the TLS
	// listener requires a client certificate signed by one of them.
	TLSClientCA string `toml:"tls_client_ca,omitempty"`

	// TLSCA is a PEM file of CA certificates that sign the certificates of
	// AEs the node connects to with TLS; empty: the system's roots.
	TLSCA string `toml:"tls_ca,omitempty"`

	// ForwardTo is the title of a known AE (the local PACS) to which every
	// study fetched from a partner is sent once the fetch completes,
	// retried until the AE stored every instance; empty: off.
	ForwardTo string `toml:"forward_to,omitempty"`
}

// AEConfig is a known application entity written in the config file.
type AEConfig struct {
	Title           string `toml:"title"`
	Host            string `toml:"host"`
	Port            int    `toml:"port"`
	RestrictAddress bool   `toml:"restrict_address"`
	TLS             bool   `toml:"tls"` // reach it with DICOM TLS (sending, C-MOVE)
}

func (c DICOMConfig) validate() error {
	if c.MaxAssociations < 1 || c.MaxAssociationsPerAE < 1 {
		return errors.New("config: dicom.max_associations and max_associations_per_ae must be at least 1")
	}
	if c.MaxPDU < 4096 || c.MaxPDU > 64<<20 {
		return errors.New("config: dicom.max_pdu must be 4 KiB to 64 MiB")
	}
	if c.IdleTimeout.Duration < time.Second {
		return errors.New("config: dicom.idle_timeout must be at least 1s")
	}
	if c.ARTIMTimeout.Duration != 0 && (c.ARTIMTimeout.Duration < 100*time.Millisecond || c.ARTIMTimeout.Duration > 10*time.Minute) {
		return errors.New("config: dicom.artim_timeout must be 100ms to 10m (0: 30s)")
	}
	if c.TLSAddr != "" {
		if host, port, err := net.SplitHostPort(c.TLSAddr); err != nil || !validPort(port) ||
			(host != "" && host != "localhost" && !validIP(host)) {
			return fmt.Errorf("config: dicom.tls_addr %q: want host:port", c.TLSAddr)
		}
		if c.TLSCert == "" || c.TLSKey == "" {
			return errors.New("config: dicom.tls_addr needs dicom.tls_cert and dicom.tls_key")
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("config: dicom.tls_cert and dicom.tls_key go together")
	}
	if c.ForwardTo != "" {
		if err := validateAE(c.ForwardTo); err != nil {
			return fmt.Errorf("config: dicom.forward_to: %w", err)
		}
		if c.ForwardTo != strings.TrimSpace(c.ForwardTo) {
			return errors.New("config: dicom.forward_to: leading or trailing spaces are not significant in DICOM; leave them out")
		}
	}
	seen := map[string]bool{}
	for _, ae := range c.AEs {
		if err := checkAE(AE{Title: ae.Title, Host: ae.Host, Port: ae.Port}); err != nil {
			return fmt.Errorf("config: dicom.ae %q: %w", ae.Title, err)
		}
		if seen[ae.Title] {
			return fmt.Errorf("config: dicom.ae %q is listed twice", ae.Title)
		}
		seen[ae.Title] = true
	}
	return nil
}

// AE is a known application entity.
type AE = store.AE

func checkAE(ae AE) error {
	if err := validateAE(ae.Title); err != nil {
		return fmt.Errorf("AE title: %w", err)
	}
	if ae.Title != strings.TrimSpace(ae.Title) {
		return errors.New("AE title: leading or trailing spaces are not significant in DICOM; leave them out")
	}
	if ae.Host == "" || len(ae.Host) > 253 || strings.ContainsAny(ae.Host, " /\\\x00") {
		return errors.New("host: want a host name or IP address")
	}
	if ae.Port < 1 || ae.Port > 65535 {
		return errors.New("port: want 1-65535")
	}
	return nil
}

// aeRegistry holds the known application entities: the allowlist of
// calling AEs, and where C-MOVE and sending reach them. Those of the
// config file are read-only here; those added through the API live in
// the archive.
type aeRegistry struct {
	store  *store.Store
	config []AEConfig
	audit  *auditor
	clock  clock.Clock

	mu sync.RWMutex
	m  map[string]AE
}

func newAERegistry(s *store.Store, cfg []AEConfig, a *auditor, c clock.Clock) (*aeRegistry, error) {
	r := &aeRegistry{store: s, config: cfg, audit: a, clock: c, m: map[string]AE{}}
	stored, err := s.AEs()
	if err != nil {
		return nil, fmt.Errorf("load application entities: %w", err)
	}
	for _, ae := range stored {
		r.m[ae.Title] = ae
	}
	for _, ae := range cfg {
		r.m[ae.Title] = AE{Title: ae.Title, Host: ae.Host, Port: ae.Port, RestrictAddress: ae.RestrictAddress, TLS: ae.TLS}
	}
	return r, nil
}

// Get returns a known AE by title (exact, case-sensitive as DICOM says).
func (r *aeRegistry) Get(title string) (AE, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ae, ok := r.m[title]
	return ae, ok
}

// List returns the known AEs by title.
func (r *aeRegistry) List() []AE {
	r.mu.RLock()
	out := make([]AE, 0, len(r.m))
	for _, ae := range r.m {
		out = append(out, ae)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Title < out[j].Title })
	return out
}

func (r *aeRegistry) inConfig(title string) bool {
	for _, ae := range r.config {
		if ae.Title == title {
			return true
		}
	}
	return false
}

// errAE is a refused AE change (a bad request).
type errAE struct{ msg string }

func (e *errAE) Error() string { return e.msg }

// Add stores (or updates) an AE and audits it.
func (r *aeRegistry) Add(ae AE, actor string) (AE, error) {
	if err := checkAE(ae); err != nil {
		return AE{}, &errAE{err.Error()}
	}
	if r.inConfig(ae.Title) {
		return AE{}, &errAE{fmt.Sprintf("AE %q is defined in config.toml; change it there", ae.Title)}
	}
	ae.Added = r.clock.Now().UTC()
	if err := r.store.PutAE(ae); err != nil {
		return AE{}, fmt.Errorf("store AE: %w", err)
	}
	r.mu.Lock()
	r.m[ae.Title] = ae
	r.mu.Unlock()
	r.audit.Record(consent.Entry{Actor: actor, Action: actAEAdded, Reason: "ae"})
	return ae, nil
}

// Remove forgets an AE added through the API and returns it.
func (r *aeRegistry) Remove(title, actor string) (AE, error) {
	if r.inConfig(title) {
		return AE{}, &errAE{fmt.Sprintf("AE %q is defined in config.toml; remove it there", title)}
	}
	prev, _ := r.Get(title)
	found, err := r.store.RemoveAE(title)
	if err != nil {
		return AE{}, fmt.Errorf("remove AE: %w", err)
	}
	if !found {
		return AE{}, fmt.Errorf("%w: no AE is called %q", errAENotFound, title)
	}
	r.mu.Lock()
	delete(r.m, title)
	r.mu.Unlock()
	r.audit.Record(consent.Entry{Actor: actor, Action: actAERemoved, Reason: "ae"})
	return prev, nil
}

var errAENotFound = errors.New("unknown AE")

// Audit actions of the DICOM edge (the api package's).
const (
	actAEAdded             = api.ActAEAdded
	actAERemoved           = api.ActAERemoved
	actAssociationAccepted = api.ActAssociationAccepted
	actAssociationRejected = api.ActAssociationRejected
)

// admits reports whether an association from title at remote may proceed:
// the AE must be known and, if it is restricted, come from its host.
func (r *aeRegistry) admits(title string, remote net.Addr) bool {
	ae, ok := r.Get(title)
	if !ok {
		return false
	}
	if !ae.RestrictAddress {
		return true
	}
	host, _, err := net.SplitHostPort(remote.String())
	if err != nil {
		return false
	}
	ips, err := net.LookupHost(ae.Host)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		if ip == host {
			return true
		}
	}
	return false
}

// dicomEdge is the node's DICOM listener: associations from known AEs,
// C-ECHO, and C-STORE into the same durable ingest as import.
type dicomEdge struct {
	cfg    DICOMConfig
	aet    string
	addr   string
	aes    *aeRegistry
	ingest *ingester
	commit *committer
	audit  *auditor
	log    *slog.Logger
	query  *queryRoom
	sender *sender
	fetch  studyFetcher

	home string // relative TLS file names are under it

	ln    net.Listener
	tlsLn net.Listener
	tls   *tls.Config // the TLS listener's; nil: none
	wg    sync.WaitGroup
	mu    sync.Mutex
	total int
	perAE map[string]int
	conns map[net.Conn]struct{}
	// Connections not yet associated, in all and per source address: a
	// peer that connects and sends nothing holds one until ARTIM expires,
	// so their number is bounded apart from the associations'.
	pending       int
	pendingByHost map[string]int
}

// associations is the number of associations open now.
func (d *dicomEdge) associations() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}

// Bounds on connections waiting for their association request: in all, a
// multiple of max_associations; from one address, a few (a modality opens
// one association at a time, a busy PACS a handful).
const (
	pendingPerAssociation = 2
	maxPendingPerHost     = 16
)

// admitConn reserves a handshake slot for a new connection; false: too
// many are waiting already and the connection is to be closed.
func (d *dicomEdge) admitConn(conn net.Conn) (host string, ok bool) {
	host, _, _ = net.SplitHostPort(conn.RemoteAddr().String())
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending >= pendingPerAssociation*d.cfg.MaxAssociations || d.pendingByHost[host] >= maxPendingPerHost {
		return host, false
	}
	d.pending++
	d.pendingByHost[host]++
	return host, true
}

// handshakeDone frees the slot admitConn reserved.
func (d *dicomEdge) handshakeDone(host string) {
	d.mu.Lock()
	d.pending--
	if d.pendingByHost[host]--; d.pendingByHost[host] <= 0 {
		delete(d.pendingByHost, host)
	}
	d.mu.Unlock()
}

func (d *dicomEdge) acceptor() *dimse.Acceptor {
	return &dimse.Acceptor{
		AETitle: d.aet,
		Limits:  dimse.Limits{MaxPDU: d.cfg.MaxPDU, Idle: d.cfg.IdleTimeout.Duration, ARTIM: d.cfg.ARTIMTimeout.Duration},
		Admit:   d.admit,
		Supports: func(as string) (bool, bool) {
			switch {
			case as == dimse.Verification, as == dimse.StorageCommitment:
				return true, false
			case dimse.IsStorage(as):
				return true, true
			case as == dimse.PatientRootFind || as == dimse.StudyRootFind || as == dimse.PatientRootMove ||
				as == dimse.StudyRootMove || as == dimse.PatientRootGet || as == dimse.StudyRootGet:
				return true, false
			}
			return false, false
		},
	}
}

// admit checks the calling AE against the known AEs and the limits; a
// refusal is audited (the AE title is not patient data).
func (d *dicomEdge) admit(rq *dimse.AssociateRQ, remote net.Addr) *dimse.AssociateRJ {
	if !d.aes.admits(rq.CallingAE, remote) {
		d.audit.Deny(consent.Entry{Action: actAssociationRejected, Reason: "unknown-calling-ae"})
		d.log.Warn("DICOM association rejected: calling AE not known", "calling_ae", printableAE(rq.CallingAE), "remote", remote.String())
		return &dimse.AssociateRJ{Result: dimse.RejectPermanent, Source: dimse.RejectSourceUser, Reason: dimse.RejectCallingAE}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.total >= d.cfg.MaxAssociations || d.perAE[rq.CallingAE] >= d.cfg.MaxAssociationsPerAE {
		d.log.Warn("DICOM association rejected: limit reached", "calling_ae", rq.CallingAE, "associations", d.total)
		return &dimse.AssociateRJ{Result: dimse.RejectTransient, Source: dimse.RejectSourcePresentation, Reason: dimse.RejectLocalLimit}
	}
	d.total++
	d.perAE[rq.CallingAE]++
	return nil
}

func (d *dicomEdge) release(calling string) {
	d.mu.Lock()
	d.total--
	if d.perAE[calling]--; d.perAE[calling] <= 0 {
		delete(d.perAE, calling)
	}
	d.mu.Unlock()
}

// printableAE makes an AE title from the network fit for a log line.
func printableAE(s string) string { return asciiOnly(s, '?') }

// asciiOnly replaces every character outside printable ASCII with r.
func asciiOnly(s string, r rune) string {
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c > 0x7e {
			return r
		}
		return c
	}, s)
}

// Start listens on the configured address, and on the TLS address when
// one is configured.
func (d *dicomEdge) Start(ctx context.Context) error {
	d.perAE = map[string]int{}
	d.conns = map[net.Conn]struct{}{}
	d.pendingByHost = map[string]int{}
	if d.cfg.TLSAddr != "" {
		cfg, err := d.serverTLS()
		if err != nil {
			return err
		}
		d.tls = cfg
	}
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		return fmt.Errorf("listen dicom: %w", err)
	}
	d.ln = ln
	if d.tls != nil {
		if d.tlsLn, err = net.Listen("tcp", d.cfg.TLSAddr); err != nil {
			ln.Close()
			return fmt.Errorf("listen dicom tls: %w", err)
		}
		d.serve(ctx, d.tlsLn, d.tls)
	}
	d.serve(ctx, ln, nil)
	return nil
}

// serve accepts connections on ln (TLS ones when tlsCfg is set) until it
// is closed.
func (d *dicomEdge) serve(ctx context.Context, ln net.Listener, tlsCfg *tls.Config) {
	ac := d.acceptor()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				d.log.Warn("dicom accept", "err", err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			host, ok := d.admitConn(conn)
			if !ok {
				d.log.Warn("DICOM connection refused: too many connections wait for their association request", "remote", conn.RemoteAddr().String())
				conn.Close()
				continue
			}
			d.mu.Lock()
			d.conns[conn] = struct{}{}
			d.mu.Unlock()
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer func() {
					d.mu.Lock()
					delete(d.conns, conn)
					d.mu.Unlock()
				}()
				if tlsCfg != nil {
					// The TLS handshake counts against ARTIM too: a client
					// that stalls in it holds a pending slot no longer.
					tc := tls.Server(conn, tlsCfg)
					hctx, cancel := context.WithTimeout(ctx, d.artim())
					err := tc.HandshakeContext(hctx)
					cancel()
					if err != nil {
						d.handshakeDone(host)
						d.log.Info("DICOM TLS handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
						conn.Close()
						return
					}
					conn = tc
				}
				d.serveConn(ctx, ac, conn, func() { d.handshakeDone(host) })
			}()
		}
	}()
}

func (d *dicomEdge) artim() time.Duration {
	if d.cfg.ARTIMTimeout.Duration > 0 {
		return d.cfg.ARTIMTimeout.Duration
	}
	return 30 * time.Second
}

// TLSAddr is the TLS listener's address ("" when there is none).
func (d *dicomEdge) TLSAddr() string {
	if d.tlsLn == nil {
		return ""
	}
	return d.tlsLn.Addr().String()
}

// Addr is the listener's address ("" before Start).
func (d *dicomEdge) Addr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

func (d *dicomEdge) serveConn(ctx context.Context, ac *dimse.Acceptor, conn net.Conn, handshakeDone func()) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	a, err := ac.Accept(conn)
	handshakeDone()
	if err != nil {
		var rj *dimse.RejectedError
		if !errors.As(err, &rj) {
			d.log.Info("DICOM association refused", "remote", conn.RemoteAddr().String(), "err", err)
		}
		return
	}
	defer d.release(a.CallingAE)
	d.audit.Once(consent.Entry{Actor: "ae:" + a.CallingAE, Action: actAssociationAccepted, Decision: consent.DecisionAllow}, 10*time.Minute)
	err = dimse.Serve(ctx, a, map[uint16]dimse.HandlerFunc{
		dimse.CStoreRQ:  d.cstore,
		dimse.NActionRQ: d.commit.naction,
		dimse.CFindRQ:   d.cfind,
		dimse.CMoveRQ:   d.cmove,
		dimse.CGetRQ:    d.cget,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		d.log.Info("DICOM association ended", "calling_ae", a.CallingAE, "err", err)
	}
}

// Close stops listening, aborts the associations and waits for them.
func (d *dicomEdge) Close() {
	if d.ln == nil {
		return
	}
	d.ln.Close()
	if d.tlsLn != nil {
		d.tlsLn.Close()
	}
	d.mu.Lock()
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// cstore stores one instance through the ingester: the answer is sent
// only after the commit is synced. The data set is prefixed with a file
// meta group naming the context's transfer syntax, so the ingester sees
// a Part-10 stream.
func (d *dicomEdge) cstore(ctx context.Context, a *dimse.Assoc, m *dimse.Message) error {
	cmd := m.Command
	rsp := &dimse.Command{Field: dimse.CStoreRSP, MessageIDBeingAnswered: cmd.MessageID,
		AffectedSOPClass: cmd.AffectedSOPClass, AffectedSOPInstance: cmd.AffectedSOPInstance}
	answer := func(status uint16, comment string) error {
		// Error Comment is an LO: at most 64 characters of the default
		// repertoire, or the peer cannot decode the answer.
		rsp.Status, rsp.ErrorComment = status, clip(comment, 64)
		return a.Send(m.Context.ID, rsp, nil)
	}
	if m.Data == nil {
		return answer(dimse.StatusCannotUnderstand, "C-STORE without a data set")
	}
	if cmd.AffectedSOPClass != m.Context.AbstractSyntax {
		m.Data.Discard()
		return answer(dimse.StatusIdentifierMismatch, "the SOP class differs from the presentation context's")
	}
	meta := fileMeta(cmd.AffectedSOPClass, cmd.AffectedSOPInstance, m.Context.TransferSyntax, a.CallingAE)
	// Waiting for an ingest slot is bounded: past it, too many instances
	// are in flight and the answer is A700 (the peer retries), before the
	// association's own idle timeout could end it.
	slotCtx, cancel := context.WithTimeout(ctx, d.slotWait())
	res := d.ingest.IngestAs(slotCtx, io.MultiReader(bytes.NewReader(meta), m.Data),
		&identity{SOPClass: cmd.AffectedSOPClass, SOPInstance: cmd.AffectedSOPInstance})
	cancel()
	// The ingester may stop reading at an error: the rest of the data set
	// still has to be taken off the association.
	if err := m.Data.Discard(); err != nil {
		return err
	}
	status, comment := storeStatus(res, cmd)
	if res.Outcome == OutcomeStored || res.Outcome == OutcomeDuplicate {
		d.audit.Once(consent.Entry{Actor: "ae:" + a.CallingAE, Action: consent.ActImport, Study: res.Study,
			Decision: consent.DecisionAllow, Reason: "c-store"}, 10*time.Minute)
	}
	return answer(status, comment)
}

// slotWait is how long a C-STORE waits for one of the ingester's slots.
func (d *dicomEdge) slotWait() time.Duration {
	return min(30*time.Second, d.cfg.IdleTimeout.Duration/2)
}

// storeStatus maps an ingest result onto a C-STORE status (PS3.4 B.2.3).
// Comments say what is wrong without quoting patient data.
func storeStatus(res ImportResult, cmd *dimse.Command) (uint16, string) {
	switch res.Outcome {
	case OutcomeStored:
		return dimse.StatusSuccess, ""
	case OutcomeDuplicate:
		if res.OtherSyntax {
			return dimse.StatusWarningCoercion, "already stored in another transfer syntax; that copy is kept"
		}
		return dimse.StatusSuccess, ""
	case OutcomeConflict:
		return dimse.StatusWarningCoercion, "other content is stored under this SOP Instance UID; kept"
	case OutcomeRejected:
		comment := clip(res.Error, 64)
		switch res.Code {
		case "too-large":
			return dimse.StatusOutOfResources, comment
		case "missing-attribute", "identity-mismatch":
			return dimse.StatusIdentifierMismatch, comment
		}
		return dimse.StatusCannotUnderstand, comment
	}
	switch res.Code {
	case "busy":
		return dimse.StatusOutOfResources, "too many instances in flight; try again later"
	case "insufficient-storage": // the archive's disk-full answer (api.CodeInsufficientStorage where it exists)
		return dimse.StatusOutOfResources, "the archive's disk is full; the instance was not stored"
	}
	return dimse.StatusOutOfResources, "the archive could not store the instance; try again later"
}

// clip fits s into an Error Comment: printable ASCII, at most n bytes.
func clip(s string, n int) string {
	s = asciiOnly(s, ' ')
	if len(s) > n {
		s = s[:n]
	}
	return s
}

// fileMeta is a Part-10 preamble and file meta group (PS3.10 7.1) for a
// data set received by C-STORE.
func fileMeta(sopClass, sopInstance, ts, sourceAE string) []byte {
	var ds dimse.Dataset
	ds.SetBytes(0x00020001, "OB", []byte{0, 1})
	ds.Set(0x00020002, "UI", sopClass)
	ds.Set(0x00020003, "UI", sopInstance)
	ds.Set(0x00020010, "UI", ts)
	ds.Set(0x00020012, "UI", dimse.ImplementationClassUID)
	ds.Set(0x00020013, "SH", dimse.ImplementationVersionName)
	ds.Set(0x00020016, "AE", sourceAE)
	body, _ := ds.Encode("1.2.840.10008.1.2.1")
	out := make([]byte, 128, 128+4+12+len(body))
	out = append(out, "DICM"...)
	out = append(out, 0x02, 0x00, 0x00, 0x00, 'U', 'L', 4, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

// readLimited reads a whole (small) data set, refusing more than n bytes.
func readLimited(r io.Reader, n int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(n)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > n {
		if d, ok := r.(*dimse.DataReader); ok {
			d.Discard()
		}
		return nil, fmt.Errorf("data set over %d bytes", n)
	}
	return b, nil
}
