package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// secondary is this facility as a secondary holder (issue 9): a study it
// fetched from its original holder H, under a grant of H's that names no
// user, it serves to H's other grantees, who present H's signed grant.
// The grant is checked offline (H's signature, grantee, scope, time, and
// the revocations H sent us), never by calling H. It also announces to H
// that it holds a study, and keeps H's revocations of grants to others.
// With exchange.serve_as_secondary off it does none of that, refuses
// every presented grant, and withdraws what it announced before.
type secondary struct {
	store    *store.Store
	partners *partners
	audit    *auditor
	clock    clock.Clock
	self     peer.ID
	on       bool                       // exchange.serve_as_secondary
	queue    func(Peer, Manifest) error // seals a manifest to a partner and queues it in the outbox (sharing.sealAndQueue)
	log      *slog.Logger
}

// Deny reasons of a secondary holder beyond consent's: codes, as in
// every audit entry.
const (
	secondaryOff        = "secondary-off"  // exchange.serve_as_secondary is off
	secondaryBadGrant   = "bad-grant"      // the presented grant does not decode or verify
	secondaryOwnGrant   = "own-grant"      // a grant we issued: ask on /pacsnet/blocks
	secondaryNotPartner = "unknown-issuer" // its issuer is not a partner of ours
	secondaryNotHeld    = "not-held"       // the block's study is not a copy we hold from the grant's issuer under a live grant to the facility
	secondaryOtherGrant = "grant-mismatch" // the request cites another grant than the one presented
)

// PresentGrant implements exchange.GrantPresenter: it checks what can be
// checked once per stream and returns the per-block authorizer.
func (s *secondary) PresentGrant(_ context.Context, p peer.ID, signed []byte) (exchange.Authorizer, error) {
	if !s.on {
		return nil, s.deny(p, "", "", "", secondaryOff)
	}
	var g consent.SignedGrant
	dec := json.NewDecoder(bytes.NewReader(signed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil || !atEOF(dec) {
		s.audit.Deny(consent.Entry{Peer: p, Action: consent.ActFetchDeniedSecondary, Reason: secondaryBadGrant})
		return nil, fmt.Errorf("presented grant does not decode: %w", exchange.ErrBadRequest)
	}
	issuer := g.Grant.Issuer
	if err := g.Verify(); err != nil {
		return nil, s.deny(p, "", g.Grant.ID, "", secondaryBadGrant)
	}
	switch {
	case issuer == s.self:
		return nil, s.deny(p, issuer, g.Grant.ID, "", secondaryOwnGrant)
	case !s.partners.IsPartner(issuer):
		return nil, s.deny(p, "", g.Grant.ID, "", secondaryNotPartner)
	case g.Grant.Grantee != p:
		return nil, s.deny(p, issuer, g.Grant.ID, "", string(consent.ReasonWrongGrantee))
	}
	return &presentedGrant{s: s, g: g, held: map[string]heldCopy{}}, nil
}

// atEOF reports whether dec has nothing but white space left.
func atEOF(dec *json.Decoder) bool {
	_, err := dec.Token()
	return err == io.EOF
}

// deny audits a refusal (aggregated) and returns the error for the wire.
func (s *secondary) deny(p, issuer peer.ID, grant, study, reason string) error {
	e := consent.Entry{Peer: p, Action: consent.ActFetchDeniedSecondary, GrantID: grant, Study: study, Reason: reason}
	if issuer != "" {
		e.Reason = "for=" + issuer.String() + " " + reason
	}
	s.audit.Deny(e)
	return fmt.Errorf("%w: %s", exchange.ErrDenied, reason)
}

// presentedGrant authorizes each block of one stream under the grant
// presented on it. A stream asks for the blocks of one study, so what
// does not change within a stream (the study's record and our own grant
// for it) is looked up once per study; expiry and revocation are checked
// for every block.
type presentedGrant struct {
	s *secondary
	g consent.SignedGrant

	mu   sync.Mutex
	held map[string]heldCopy // study → our copy, as looked up for this stream
}

// heldCopy is what a secondary needs of its copy of a study.
type heldCopy struct {
	ok                bool   // a copy of the grant issuer's, held under a live grant to the facility
	patientID, issuer string // the study's patient, for patient grants
}

func (a *presentedGrant) AuthorizeBlock(_ context.Context, p peer.ID, grantID string, c cid.Cid) error {
	s, g := a.s, &a.g.Grant
	if grantID != g.ID {
		return s.deny(p, g.Issuer, g.ID, "", secondaryOtherGrant)
	}
	study, err := s.store.BlockStudy(c)
	if errors.Is(err, store.ErrNotFound) {
		// The requester holds a grant of the study's holder: it may learn
		// that this secondary lacks a block, and ask another.
		return exchange.ErrBlockNotFound
	} else if err != nil {
		return err
	}
	hc, err := a.copyOf(study)
	if err != nil {
		return err
	}
	if !hc.ok {
		return s.deny(p, g.Issuer, g.ID, study, secondaryNotHeld)
	}
	revoked, err := s.store.ForeignRevoked(g.Issuer, g.ID)
	if err != nil {
		return err
	}
	if err := consent.CheckPresented(&a.g, p, study, hc.patientID, hc.issuer, consent.ActionFetch, s.clock.Now(), revoked); err != nil {
		return s.deny(p, g.Issuer, g.ID, study, string(consent.ReasonOf(err)))
	}
	// Fail closed, as the original holder does: a disclosure that cannot
	// be recorded is not made.
	e := consent.Entry{Peer: p, Action: consent.ActFetchServedSecondary, Study: study, GrantID: g.ID,
		Decision: consent.DecisionAllow, Reason: "for=" + g.Issuer.String()}
	if err := s.audit.Once(e, 10*time.Minute); err != nil {
		return fmt.Errorf("%w: %w", exchange.ErrUnavailable, err)
	}
	return nil
}

// copyOf looks up, once per stream and study, whether we hold study as a
// copy from the grant's issuer, under a live grant of the issuer's to
// this facility (one naming a user makes the copy that user's alone, and
// it is never served).
func (a *presentedGrant) copyOf(study string) (heldCopy, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if hc, ok := a.held[study]; ok {
		return hc, nil
	}
	hc, err := a.s.heldFrom(a.g.Grant.Issuer, study)
	if err != nil {
		return hc, err
	}
	a.held[study] = hc
	return hc, nil
}

// heldFrom reports whether study is held here as issuer's copy under a
// live, unrevoked grant to the facility.
func (s *secondary) heldFrom(issuer peer.ID, study string) (heldCopy, error) {
	sr, ok, err := s.store.Study(study)
	if err != nil || !ok || sr.Origin != issuer {
		return heldCopy{}, err
	}
	rec, ok, err := s.store.SharedFor(issuer, study)
	if err != nil || !ok {
		return heldCopy{}, err
	}
	if !facilityGrantLive(rec.AllGrants(), s.clock.Now()) {
		return heldCopy{}, nil
	}
	return heldCopy{ok: true, patientID: sr.PatientID, issuer: sr.IssuerOfPatientID}, nil
}

// facilityGrantLive reports whether one of the grants is live, unrevoked
// and names no user.
func facilityGrantLive(gs []store.SharedGrant, now time.Time) bool {
	for _, sg := range gs {
		g := &sg.Grant.Grant
		if !sg.Revoked && g.GranteeUser == "" && !now.Before(g.NotBefore) && now.Before(g.Expires) {
			return true
		}
	}
	return false
}

// fetched is the fetcher's news that a fetch of a partner's study
// completed under grant: if the grant names no user and we serve as a
// secondary, the study's holder is told (durably, through the outbox)
// that we hold it, so that it can list us to its other grantees.
func (s *secondary) fetched(m Manifest, g *consent.SignedGrant) {
	if !s.on || g == nil || g.Grant.GranteeUser != "" {
		return
	}
	p, ok := s.partners.Get(m.Issuer)
	if !ok {
		return
	}
	notice := Manifest{Kind: wire.KindHolder, Grant: g, Study: wire.Study{UID: m.Study.UID, PatientID: m.Study.PatientID, IssuerOfPatientID: m.Study.IssuerOfPatientID}}
	if err := s.queue(p, notice); err != nil {
		s.log.Warn("queue a holder notice", "peer", m.Issuer, "err", err)
		return
	}
	if err := s.store.PutAnnounced(store.Announced{Issuer: m.Issuer, Study: m.Study.UID, Grant: g.Grant.ID, At: s.clock.Now().UTC()}); err != nil {
		s.log.Warn("record a holder notice", "err", err)
	}
}

// withdrawAll runs when the node opens with serving off: every study it
// announced while serving is withdrawn (a holder-withdrawn manifest
// through the outbox), so that its holders stop listing this facility to
// their grantees.
func (s *secondary) withdrawAll() {
	all, err := s.store.AnnouncedAll()
	if err != nil {
		s.log.Warn("list the studies announced as a secondary holder", "err", err)
		return
	}
	for _, a := range all {
		if p, ok := s.partners.Get(a.Issuer); ok {
			if g := s.announcedGrant(a); g != nil {
				m := Manifest{Kind: wire.KindHolderWithdrawn, Grant: g, Study: wire.Study{UID: a.Study}}
				if sr, ok, err := s.store.Study(a.Study); err == nil && ok {
					m.Study.PatientID, m.Study.IssuerOfPatientID = sr.PatientID, sr.IssuerOfPatientID
				}
				if err := s.queue(p, m); err != nil {
					s.log.Warn("queue a holder withdrawal", "peer", a.Issuer, "err", err)
					continue
				}
			}
		}
		// With no partner or grant left, the holder lists us no longer
		// anyway (it lists only holders whose grant is live).
		if err := s.store.DeleteAnnounced(a.Issuer, a.Study); err != nil {
			s.log.Warn("forget a holder notice", "err", err)
		}
	}
}

// announcedGrant finds the grant an announcement carried.
func (s *secondary) announcedGrant(a store.Announced) *consent.SignedGrant {
	rec, ok, err := s.store.SharedFor(a.Issuer, a.Study)
	if err != nil || !ok {
		return nil
	}
	for _, sg := range rec.AllGrants() {
		if sg.Grant.Grant.ID == a.Grant {
			return &sg.Grant
		}
	}
	return nil
}

// revoked keeps a holder's revocation of a grant it gave another
// facility (a holder-revocation manifest, already verified by the inbox):
// blocks are refused under that grant from now on.
func (s *secondary) revoked(_ peer.ID, m *Manifest) error {
	return s.store.PutForeignRevocation(*m.Revocation)
}
