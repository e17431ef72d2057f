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
)

// SharedStudy is one study a partner shared with us (from its manifest).
type SharedStudy struct {
	Issuer     peer.ID
	IssuerName string
	Study      StudyInfo
	State      string
	GrantID    string
	Expires    time.Time
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
	g := m.Grant.Grant
	stale := false
	_, err = in.store.UpdateShared(from, m.Study.UID, func(prev store.Shared, found bool) (store.Shared, bool, error) {
		if found && prev.Manifest.Version >= m.Version {
			stale = true // a retry of a delivered manifest, or an old one: keep the newer
			return prev, false, nil
		}
		rec := store.Shared{Manifest: *m, State: SharedAvailable, Received: in.clock.Now().UTC()}
		if m.StudyKey != "" {
			w, err := crypto.Encrypt([]byte(m.StudyKey), in.id.Recipient())
			if err != nil {
				return rec, false, err
			}
			rec.Key, rec.Manifest.StudyKey = w, ""
		}
		if m.Kind == wire.KindRevocation {
			rec.State = SharedRevoked
			if found {
				rec.Manifest.Instances = prev.Manifest.Instances
			}
			rec.Key, rec.Manifest.StudyKey = nil, "" // forget the key of a revoked grant
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
func (in *inbox) Shared() ([]SharedStudy, error) {
	recs, err := in.store.SharedAll()
	if err != nil {
		return nil, err
	}
	var out []SharedStudy
	for _, r := range recs {
		s := SharedStudy{
			Issuer: r.Manifest.Issuer, IssuerName: r.Manifest.IssuerName, Study: r.Manifest.Study,
			State: r.State, Version: r.Manifest.Version, Instances: len(r.Manifest.Instances), Received: r.Received,
		}
		if r.Manifest.Grant != nil {
			s.GrantID = r.Manifest.Grant.Grant.ID
			s.Expires = r.Manifest.Grant.Grant.Expires
			if s.State == SharedAvailable && !in.clock.Now().Before(s.Expires) {
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
