package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// States of a study a partner shared with us: the api package's.
const (
	SharedAvailable = api.SharedAvailable
	SharedRevoked   = api.SharedRevoked
	SharedExpired   = api.SharedExpired // computed: the grant's expiry has passed
	SharedPending   = api.SharedPending // computed: the grant starts later
)

// SharedStudy is one study a partner shared with us (from its manifest).
type SharedStudy struct {
	Issuer     peer.ID
	IssuerName string
	Study      StudyInfo
	State      string
	GrantID    string
	Expires    time.Time
	User       string // the grant names a user here
	Scope      string // api.ScopeStudy or api.ScopePatient
	Version    uint64
	Instances  int
	Bytes      int64
	Received   time.Time
	Fetched    bool // every instance is in the local archive
}

// inbox receives the manifests partners push or we pull, and lists what
// partners shared with us.
type inbox struct {
	store    *store.Store
	partners *partners
	id       *crypto.Identity
	self     peer.ID
	audit    *auditor
	clock    clock.Clock
	log      *slog.Logger

	// Multi-source notices, which change no shared study: a grantee
	// tells us (its grant's issuer) that it holds a study or no longer
	// serves it (sharing), and
	// a holder tells us (a secondary holder) that a grant it gave a third
	// facility is revoked (secondary).
	holderNotice      func(from peer.ID, m *Manifest) error
	foreignRevocation func(from peer.ID, m *Manifest) error
}

// HandleManifest implements exchange.ManifestHandler: a partner pushed a
// sealed manifest. It is opened with our age identity, its signature must
// be by the pushing partner, its grant must be signed by that partner and
// name us. Anything else is rejected (exchange.ErrRejected) and logged
// without patient data.
func (in *inbox) HandleManifest(_ context.Context, from peer.ID, sealed []byte) error {
	err := in.receive(from, sealed)
	if err != nil {
		// Only the reason code: the error may quote bytes the peer sent.
		reason := string(wire.ReasonOf(err))
		in.log.Warn("manifest rejected", "peer", from, "reason", reason)
		in.audit.Deny(consent.Entry{Peer: from, Action: consent.ActManifestRejected, Reason: reason})
		return fmt.Errorf("%w: %v", exchange.ErrRejected, err)
	}
	return nil
}

func (in *inbox) receive(from peer.ID, sealed []byte) error {
	if !in.partners.IsPartner(from) {
		return &wire.Error{Reason: wire.ReasonNotPartner, Msg: "sender is not a partner facility"}
	}
	payload, signer, err := crypto.Open(sealed, in.id.Box, crypto.DomainManifest, exchange.MaxManifestSize)
	if err != nil {
		return &wire.Error{Reason: wire.ReasonOpen, Err: err}
	}
	if signer != from {
		return &wire.Error{Reason: wire.ReasonWrongSigner, Msg: "manifest is signed by another facility than the sender"}
	}
	m, err := wire.ParseManifest(payload)
	if err != nil {
		return err
	}
	if err := m.CheckParties(signer, in.self); err != nil {
		return err
	}
	if m.Kind == wire.KindHolder || m.Kind == wire.KindHolderWithdrawn || m.Kind == wire.KindHolderRevocation {
		handle := in.holderNotice
		if m.Kind == wire.KindHolderRevocation {
			handle = in.foreignRevocation
		}
		if handle == nil {
			return &wire.Error{Reason: wire.ReasonMalformed, Msg: "multi-source notices are not handled here"}
		}
		if err := handle(from, m); err != nil {
			return err
		}
		in.audit.Record(consent.Entry{Peer: from, Action: consent.ActManifestReceived, Study: m.Study.UID, GrantID: m.Grant.Grant.ID, Reason: m.Kind})
		return nil
	}
	g := m.Grant.Grant
	stale := false
	_, err = in.store.UpdateShared(from, m.Study.UID, func(prev store.Shared, found bool) (store.Shared, bool, error) {
		if found && prev.Manifest.Version >= m.Version {
			stale = true // a retry of a delivered manifest, or an old one: keep the newer
			return prev, false, nil
		}
		var grants []store.SharedGrant
		if found {
			grants = append(grants, prev.AllGrants()...)
		}
		if m.Kind == wire.KindRevocation {
			// The revocation ends that grant only: another live grant
			// for the study keeps the access, the key and what the last
			// study manifest listed.
			known := false
			for i := range grants {
				if grants[i].Grant.Grant.ID == g.ID {
					grants[i].Revoked, known = true, true
				}
			}
			if !known {
				grants = append(grants, store.SharedGrant{Grant: *m.Grant, Revoked: true})
			}
			rec := store.Shared{Manifest: *m, State: SharedRevoked, Received: in.clock.Now().UTC(), Grants: grants}
			if found {
				rec.Manifest.Instances = prev.Manifest.Instances
				if anyUnrevoked(grants) {
					rec.Manifest, rec.Key, rec.State = prev.Manifest, prev.Key, SharedAvailable
					rec.Manifest.Version = m.Version
				}
			}
			if rec.State == SharedRevoked {
				rec.Key, rec.Manifest.StudyKey = nil, "" // forget the key once no grant is left
			}
			return rec, true, nil
		}
		known := false
		for _, sg := range grants {
			known = known || sg.Grant.Grant.ID == g.ID
		}
		if !known {
			grants = append(grants, store.SharedGrant{Grant: *m.Grant})
		}
		rec := store.Shared{Manifest: *m, State: SharedAvailable, Received: in.clock.Now().UTC(), Grants: grants}
		if m.StudyKey != "" {
			w, err := crypto.Encrypt([]byte(m.StudyKey), in.id.Recipient())
			if err != nil {
				return rec, false, err
			}
			rec.Key, rec.Manifest.StudyKey = w, ""
		}
		return rec, true, nil
	})
	if err != nil {
		return &wire.Error{Reason: wire.ReasonStoreFailed, Err: err}
	}
	if !stale {
		in.audit.Record(consent.Entry{Peer: from, Action: consent.ActManifestReceived, Study: m.Study.UID, GrantID: g.ID, Reason: m.Kind})
	}
	return nil
}

// Shared lists the studies partners shared with this facility.
func (in *inbox) Shared() ([]SharedStudy, error) { return in.SharedFor(nil) }

// SharedFor lists the shared studies whose grants keep accepts (all of
// them when keep is nil), e.g. those a user may see (reader.mayList).
func (in *inbox) SharedFor(keep func([]store.SharedGrant) bool) ([]SharedStudy, error) {
	recs, err := in.store.SharedAll()
	if err != nil {
		return nil, err
	}
	var out []SharedStudy
	for _, r := range recs {
		if keep != nil && !keep(r.AllGrants()) {
			continue
		}
		s := SharedStudy{
			Issuer: r.Manifest.Issuer, IssuerName: r.Manifest.IssuerName, Study: r.Manifest.Study,
			State: r.State, Version: r.Manifest.Version, Instances: len(r.Manifest.Instances), Received: r.Received, Scope: api.ScopeStudy,
		}
		// The state is that of the best grant: available while any grant
		// is live (its expiry the latest), expired when every unrevoked
		// one has run out, revoked when all were revoked.
		if g, live := bestGrant(r.AllGrants(), in.clock.Now()); g != nil {
			s.GrantID, s.Expires, s.User, s.Scope = g.Grant.ID, g.Grant.Expires, g.Grant.GranteeUser, api.ScopeStudy
			if g.Grant.Patient != nil {
				s.Scope = api.ScopePatient
			}
			switch {
			case live:
				s.State = SharedAvailable
			case r.State == SharedRevoked || lastToEndRevoked(r.AllGrants()):
				s.State = SharedRevoked
			case in.clock.Now().Before(g.Grant.NotBefore):
				s.State = SharedPending
			default:
				s.State = SharedExpired
			}
		}
		for _, i := range r.Manifest.Instances {
			s.Bytes += i.Size
		}
		if sr, ok, err := in.store.Study(s.Study.UID); err == nil && ok && sr.Instances >= s.Instances {
			s.Fetched = true
		}
		out = append(out, s)
	}
	return out, nil
}

// ErrNotShared is returned when no partner shared the study with us.
var ErrNotShared = errors.New("no partner facility has shared that study with this facility")

// lastToEndRevoked reports whether the grant that would have lasted
// longest was revoked: with none live, the study is shown revoked (the
// holder ended the access) rather than expired.
func lastToEndRevoked(gs []store.SharedGrant) bool {
	var last *store.SharedGrant
	for i := range gs {
		if last == nil || gs[i].Grant.Grant.Expires.After(last.Grant.Grant.Expires) {
			last = &gs[i]
		}
	}
	return last != nil && last.Revoked
}

func anyUnrevoked(gs []store.SharedGrant) bool {
	for _, g := range gs {
		if !g.Revoked {
			return true
		}
	}
	return false
}

// bestGrant picks the grant a fetch uses: among the unrevoked ones, a
// live one (not before its not-before, before its expiry) with the latest
// expiry; if none is live, the unrevoked one that expired last (live is
// false); if all were revoked, the newest (live false).
func bestGrant(gs []store.SharedGrant, now time.Time) (*consent.SignedGrant, bool) {
	var best, lastExpired *consent.SignedGrant
	for i := range gs {
		g := &gs[i].Grant
		if gs[i].Revoked {
			continue
		}
		if !now.Before(g.Grant.NotBefore) && now.Before(g.Grant.Expires) {
			if best == nil || g.Grant.Expires.After(best.Grant.Expires) {
				best = g
			}
		} else if lastExpired == nil || g.Grant.Expires.After(lastExpired.Grant.Expires) {
			lastExpired = g
		}
	}
	switch {
	case best != nil:
		return best, true
	case lastExpired != nil:
		return lastExpired, false
	case len(gs) > 0:
		return &gs[len(gs)-1].Grant, false
	}
	return nil, false
}
