package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"

	"github.com/pacsnet/pacsnet/internal/uid"
)

// Manifest is the payload of a sealed manifest (internal/wire).
type Manifest = wire.Manifest

// GrantRequest is what an admin asks for with `pacsnet grant`: studies
// (Study and Studies together), or a patient.
type GrantRequest struct {
	To        string           // partner peer ID or name
	Study     string           // Study Instance UID
	Studies   []string         // more Study Instance UIDs
	Patient   *consent.Patient // instead of studies: the patient's studies here, now and later
	NotBefore time.Time        // zero: now
	Expires   time.Duration    // from NotBefore; 0: config exchange.default_grant_ttl
	Purpose   string
	User      string // a named user at the grantee
	Actor     string
}

// studies returns the request's studies, Study first, without duplicates.
func (r *GrantRequest) studies() []string {
	var out []string
	for _, u := range append([]string{r.Study}, r.Studies...) {
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// sharing turns grants into manifests: it signs grants and revocations in
// the consent ledger, seals study and revocation manifests to the grantee
// and queues them in the durable outbox; it answers partners' pulls under
// a live grant; and it ends partnerships.
type sharing struct {
	store    *store.Store
	ledger   *consent.Ledger
	partners *partners
	keys     *keyring
	outbox   *outbox
	audit    *auditor
	clock    clock.Clock
	id       *crypto.Identity
	self     peer.ID
	name     string
	ttl      ExchangeConfig
	log      *slog.Logger

	mu    sync.Mutex
	dirty map[string]time.Time // granted studies that gained instances: study → last change
	wake  chan struct{}
}

// studyGrown quiet period: a modality sends a series instance by
// instance; the partner gets one new manifest version once they stop.
const studyGrownQuiet = 2 * time.Second

// studyChanged notes that a study gained an instance. Granted studies get
// a new manifest version (with every instance) for each partner holding a
// live grant, once no instance arrived for studyGrownQuiet.
func (s *sharing) studyChanged(study string) {
	s.mu.Lock()
	if s.dirty == nil {
		s.dirty = map[string]time.Time{}
	}
	s.dirty[study] = s.clock.Now()
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run re-issues the manifests of granted studies that gained instances.
// It starts with the granted studies that changed after their grant: a
// change noted just before a restart is not lost (a partner may get a
// version with nothing new).
func (s *sharing) Run(ctx context.Context) {
	for _, st := range s.ledger.Grants() {
		if st.State != consent.StateActive {
			continue
		}
		for _, sr := range s.coveredStudies(&st.Grant) {
			if sr.Updated.After(st.Grant.Created) {
				s.studyChanged(sr.UID)
			}
		}
	}
	for {
		t := s.clock.NewTimer(studyGrownQuiet / 2)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
			t.Stop()
		case <-t.C():
		}
		s.reissueQuiet()
	}
}

func (s *sharing) reissueQuiet() {
	now := s.clock.Now()
	var due []string
	s.mu.Lock()
	for study, at := range s.dirty {
		if now.Sub(at) >= studyGrownQuiet {
			due = append(due, study)
			delete(s.dirty, study)
		}
	}
	s.mu.Unlock()
	for _, study := range due {
		if err := s.reissue(study); err != nil {
			s.log.Warn("re-issue the manifests of a granted study", "err", err)
		}
	}
}

// reissue queues a new version of study's manifest for every partner
// holding a live grant for it, under its newest live grant.
func (s *sharing) reissue(study string) error {
	sr, ok, err := s.store.Study(study)
	if err != nil || !ok || sr.Origin != "" {
		return err
	}
	for _, p := range s.partners.List() {
		live := s.liveGrants(p.ID, study)
		if len(live) == 0 {
			continue
		}
		if err := s.issueStudyManifest(p, sr, &live[len(live)-1]); err != nil {
			return err
		}
	}
	return nil
}

// Grant gives a partner access to studies held here, or to a patient's:
// the grant is signed and committed with its audit entry, then a manifest
// carrying each study's key is sealed to the partner and queued in the
// durable outbox. A patient grant may cover no study yet: the patient's
// studies that arrive later are sent to the partner as they come.
func (s *sharing) Grant(_ context.Context, req GrantRequest) (*consent.SignedGrant, error) {
	p, err := s.partners.Resolve(req.To)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", consent.ErrInvalidRequest, err)
	}
	uids := req.studies()
	var studies []store.Study
	switch {
	case req.Patient != nil && len(uids) > 0:
		return nil, fmt.Errorf("%w: a grant names studies or a patient, not both", consent.ErrInvalidRequest)
	case req.Patient != nil:
		if studies, err = s.patientStudies(*req.Patient); err != nil {
			return nil, err
		}
	case len(uids) == 0:
		return nil, fmt.Errorf("%w: name the studies or the patient to grant", consent.ErrInvalidRequest)
	}
	for _, u := range uids {
		sr, ok, err := s.store.Study(u)
		if err != nil {
			return nil, err
		}
		if !ok || sr.Instances == 0 {
			return nil, fmt.Errorf("%w: no study with that UID is held here", consent.ErrInvalidRequest)
		}
		if sr.Origin != "" {
			return nil, fmt.Errorf("%w: the study was received from %s; only the facility that holds the original may grant it", consent.ErrInvalidRequest, sr.OriginName)
		}
		studies = append(studies, sr)
	}
	ttl := req.Expires
	if ttl == 0 {
		ttl = s.ttl.DefaultGrantTTL.Duration
	}
	if ttl > s.ttl.MaxGrantTTL.Duration {
		return nil, fmt.Errorf("%w: a grant may last at most %s (config exchange.max_grant_ttl)", consent.ErrInvalidRequest, api.FormatDuration(s.ttl.MaxGrantTTL.Duration))
	}
	purpose := consent.Purpose(req.Purpose)
	switch purpose {
	case "":
		purpose = consent.PurposeTreatment
	case consent.PurposeResearch:
		// A research grant promises de-identified copies; until the PS3.15
		// Basic Profile is applied on the way out, refuse rather than
		// disclose identified data under that label.
		return nil, fmt.Errorf("%w: research-deidentified grants need de-identification (PS3.15 Basic Profile), which this build does not do yet", consent.ErrInvalidRequest)
	}
	now := s.clock.Now()
	nb := req.NotBefore
	if nb.IsZero() || nb.Before(now) {
		nb = now
	}
	if nb.Sub(now) > s.ttl.MaxGrantTTL.Duration {
		return nil, fmt.Errorf("%w: a grant may start at most %s from now (config exchange.max_grant_ttl)", consent.ErrInvalidRequest, api.FormatDuration(s.ttl.MaxGrantTTL.Duration))
	}
	g, err := s.ledger.Grant(consent.GrantRequest{
		Grantee:     p.ID,
		GranteeUser: req.User,
		Studies:     uids,
		Patient:     req.Patient,
		Purpose:     purpose,
		NotBefore:   nb,
		Expires:     nb.Add(ttl),
		Actor:       req.Actor,
	})
	if err != nil {
		return nil, err
	}
	for _, sr := range studies {
		if err := s.issueStudyManifest(p, sr, g); err != nil {
			return g, fmt.Errorf("grant %s stored, but a manifest was not queued: %w", g.Grant.ID, err)
		}
	}
	return g, nil
}

// patientStudies returns the studies held here as our own (not copies
// fetched from partners) of a patient, matched exactly on Patient ID and
// Issuer of Patient ID, oldest first.
func (s *sharing) patientStudies(pt consent.Patient) ([]store.Study, error) {
	all, err := s.store.Studies()
	if err != nil {
		return nil, err
	}
	var out []store.Study
	for _, sr := range all {
		if sr.Origin == "" && sr.Instances > 0 && sr.PatientID != "" && sr.PatientID == pt.ID && sr.IssuerOfPatientID == pt.Issuer {
			out = append(out, sr)
		}
	}
	slices.SortFunc(out, func(a, b store.Study) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// coveredStudies returns the studies held here that a grant covers now:
// those it names, or its patient's.
func (s *sharing) coveredStudies(g *consent.Grant) []store.Study {
	if g.Patient != nil {
		out, err := s.patientStudies(*g.Patient)
		if err != nil {
			s.log.Warn("list a patient's studies", "grant", g.ID, "err", err)
		}
		return out
	}
	var out []store.Study
	for _, u := range g.Studies {
		if sr, ok, err := s.store.Study(u); err == nil && ok {
			out = append(out, sr)
		}
	}
	return out
}

// studyPatient is the ledger's consent.StudyPatient: a study's patient,
// for our own studies only.
func (s *sharing) studyPatient(study string) (consent.Patient, bool) {
	sr, ok, err := s.store.Study(study)
	if err != nil || !ok || sr.Origin != "" || sr.Instances == 0 {
		return consent.Patient{}, false
	}
	return consent.Patient{ID: sr.PatientID, Issuer: sr.IssuerOfPatientID}, true
}

// LiveGrants counts the live grants that give the partner named by to
// access to the study: an admin granting again, or revoking one of
// several, should know.
func (s *sharing) LiveGrants(to, study string) int {
	p, err := s.partners.Resolve(to)
	if err != nil {
		return 0
	}
	return len(s.liveGrants(p.ID, study))
}

// liveGrants returns the grants that let peer p fetch study now, oldest
// first.
func (s *sharing) liveGrants(p peer.ID, study string) []consent.SignedGrant {
	var out []consent.SignedGrant
	for _, st := range s.ledger.GrantsFor(p) {
		if s.ledger.Check(p, st.Grant.ID, study, consent.ActionFetch) == nil {
			out = append(out, st.SignedGrant)
		}
	}
	return out
}

// Revoke revokes a grant; a revocation manifest is queued to the grantee,
// and the same signed revocation to the secondary holders of the studies
// it covers.
// From the moment Revoke returns, the grantee's block requests are refused.
func (s *sharing) Revoke(id, reason, actor string) (*consent.SignedRevocation, error) {
	rv, err := s.ledger.Revoke(id, reason, actor)
	if err != nil {
		return nil, err
	}
	st, ok := s.ledger.Get(id)
	if !ok {
		return rv, nil
	}
	s.tellHolders(st, rv)
	p, ok := s.partners.Get(st.Grant.Grantee)
	if !ok {
		return rv, nil
	}
	for _, sr := range s.coveredStudies(&st.Grant) {
		study := sr.UID
		m := Manifest{Kind: wire.KindRevocation, Grant: &st.SignedGrant, Revocation: rv, Study: sr.Study}
		if err := s.sealAndQueue(p, m); err != nil {
			return rv, fmt.Errorf("revocation stored, but its manifest was not queued: %w", err)
		}
		// Another live grant still covers the study (the revoked one no
		// longer counts): the grantee keeps it.
		if others := s.liveGrants(p.ID, study); len(others) > 0 {
			if err := s.issueStudyManifest(p, sr, &others[0]); err != nil {
				return rv, fmt.Errorf("revocation stored, but the manifest of the remaining grant was not queued: %w", err)
			}
		}
	}
	return rv, nil
}

// PartnerRemoval is what removing a partner did.
type PartnerRemoval struct {
	Peer
	RevokedGrants, Delivered, Undelivered int
}

// RemovePartner ends a partnership. The partner is told first: its live
// grants are revoked and the revocation manifests (with anything still
// queued for it) are pushed to it at once, waiting at most
// exchange.farewell_timeout. Then manifests still queued for it are
// dropped, its connections closed, the gater refuses it, and the
// manifests it shared with this facility are forgotten (they could never
// be fetched again). Audited, with the partner's name.
func (s *sharing) RemovePartner(ctx context.Context, idOrName, actor string) (PartnerRemoval, error) {
	p, err := s.partners.Resolve(idOrName)
	if err != nil {
		return PartnerRemoval{}, fmt.Errorf("%w: %v", consent.ErrInvalidRequest, err)
	}
	res := PartnerRemoval{Peer: p}
	var revoked []consent.GrantStatus
	for _, st := range s.ledger.GrantsFor(p.ID) {
		if st.State == consent.StateActive || st.State == consent.StatePending {
			if _, err := s.ledger.Revoke(st.Grant.ID, string(consent.RevokePartnerRemoved), actor); err != nil {
				return res, fmt.Errorf("revoke grant %s: %w", st.Grant.ID, err)
			}
			revoked = append(revoked, st)
		}
	}
	res.RevokedGrants = len(revoked)
	for _, st := range revoked {
		now, _ := s.ledger.Get(st.Grant.ID)
		s.tellHolders(now, now.Revocation)
		for _, sr := range s.coveredStudies(&st.Grant) {
			m := Manifest{Kind: wire.KindRevocation, Grant: &now.SignedGrant, Revocation: now.Revocation, Study: sr.Study}
			if err := s.sealAndQueue(p, m); err != nil {
				s.log.Warn("revocation manifest for a removed partner not queued", "peer", p.ID, "err", err)
			}
		}
	}
	wait := s.ttl.FarewellTimeout.Duration
	fctx, cancel := context.WithTimeout(ctx, wait)
	res.Delivered, res.Undelivered = s.outbox.deliverNow(fctx, p.ID)
	cancel()
	if err := s.partners.forget(p); err != nil {
		return res, err
	}
	s.audit.Record(consent.Entry{Actor: actor, Peer: p.ID, PeerName: p.Name, Action: consent.ActPeerRemoved,
		Reason: fmt.Sprintf("revoked=%d delivered=%d undelivered=%d", res.RevokedGrants, res.Delivered, res.Undelivered)})
	return res, nil
}

func (s *sharing) studyManifest(sr store.Study, g *consent.SignedGrant) (Manifest, error) {
	sk, err := s.keys.Key(sr.UID)
	if err != nil {
		return Manifest{}, err
	}
	insts, err := s.store.Instances(sr.UID)
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Kind: wire.KindStudy, Grant: g, Study: sr.Study, StudyKey: sk.String(), Instances: insts}, nil
}

func (s *sharing) issueStudyManifest(p Peer, sr store.Study, g *consent.SignedGrant) error {
	m, err := s.studyManifest(sr, g)
	if err != nil {
		return err
	}
	return s.sealAndQueue(p, m)
}

// sealAndQueue seals a manifest for p and queues it in the outbox, in one
// transaction that also numbers it.
func (s *sharing) sealAndQueue(p Peer, m Manifest) error {
	defer s.outbox.kick()
	var grantID string
	if m.Grant != nil {
		grantID = m.Grant.Grant.ID
	}
	return s.store.QueueManifest(m.Study.UID, func(version uint64) (store.OutboxItem, error) {
		sealed, err := s.seal(p, &m, version)
		if err != nil {
			return store.OutboxItem{}, err
		}
		return store.OutboxItem{
			Peer: p.ID, Kind: m.Kind, Study: m.Study.UID, GrantID: grantID,
			Version: m.Version, Sealed: sealed, Created: m.Issued,
		}, nil
	})
}

// seal stamps m (format, issuer, time, version), signs it and encrypts it
// to p.
func (s *sharing) seal(p Peer, m *Manifest, version uint64) ([]byte, error) {
	rcp, err := age.ParseHybridRecipient(p.Recipient)
	if err != nil {
		return nil, fmt.Errorf("partner recipient: %w", err)
	}
	m.Format = wire.ManifestFormat
	m.Issuer = s.self
	m.IssuerName = s.name
	m.Issued = s.clock.Now().UTC()
	m.Version = version
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sealed, err := crypto.Seal(s.id.Sign, crypto.DomainManifest, payload, rcp)
	if err != nil {
		return nil, fmt.Errorf("seal manifest: %w", err)
	}
	return sealed, nil
}

// ManifestFor implements exchange.ManifestSource: a partner asks for the
// manifest of a study (a pull, e.g. a specialist who knows the study
// exists). It is answered only under a live grant to that partner.
func (s *sharing) ManifestFor(_ context.Context, p peer.ID, study string) ([]byte, error) {
	live := s.liveGrants(p, study)
	if len(live) == 0 {
		// Aggregated (auditor.Deny): a partner without a grant must not be
		// able to flood the audit log. The study is the peer's choice:
		// kept only when it is a UID at all.
		e := consent.Entry{Peer: p, Action: consent.ActFetchDenied, Reason: string(consent.ReasonNoGrant)}
		if uid.Valid(study) {
			e.Study = study
		}
		s.audit.Deny(e)
		return nil, fmt.Errorf("%w: no grant", exchange.ErrDenied)
	}
	grant := &live[len(live)-1] // the newest
	pr, ok := s.partners.Get(p)
	if !ok {
		return nil, exchange.ErrDenied
	}
	sr, ok, err := s.store.Study(study)
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: study", exchange.ErrNotFound)
	}
	m, err := s.studyManifest(sr, grant)
	if err != nil {
		return nil, err
	}
	version, err := s.store.NextManifestVersion(study)
	if err != nil {
		return nil, err
	}
	sealed, err := s.seal(pr, &m, version)
	if err != nil {
		return nil, err
	}
	s.audit.Record(consent.Entry{Peer: p, Action: consent.ActManifestSent, Study: study, GrantID: grant.Grant.ID, Reason: "pull"})
	return sealed, nil
}

// granted queues the manifests of a grant the ledger signed outside Grant
// (an approved access request, a break-glass grant): one per study it
// covers now; the patient's later studies follow through studyChanged.
func (s *sharing) granted(g *consent.SignedGrant) {
	p, ok := s.partners.Get(g.Grant.Grantee)
	if !ok {
		return
	}
	for _, sr := range s.coveredStudies(&g.Grant) {
		if err := s.issueStudyManifest(p, sr, g); err != nil {
			s.log.Warn("queue a manifest of a granted request", "grant", g.Grant.ID, "err", err)
		}
	}
}
