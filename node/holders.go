package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// The original holder's side of multi-source fetching (issue 9), part of
// the sharing room: it records the partners that announce they hold one
// of our studies, lists them to our other grantees of the study, and
// sends them our revocations of grants covering it.

// holderNotice records a partner's announcement that it holds one of our
// studies, or forgets it when the partner withdraws it (a holder or
// holder-withdrawn manifest, already opened and checked by the inbox:
// signed by the grantee, the grant ours to it). The grant must be one we
// hold, naming no user, and live for the study; the partner is listed
// only while it stays so.
func (s *sharing) holderNotice(from peer.ID, m *Manifest) error {
	g := m.Grant.Grant
	st, ok := s.ledger.Get(g.ID)
	if m.Kind == wire.KindHolderWithdrawn {
		// A withdrawal needs only to be the grantee's: its grant may have
		// ended meanwhile.
		if !ok || st.Grant.Grantee != from {
			return &wire.Error{Reason: wire.ReasonBadGrant, Msg: "holder withdrawal under a grant we did not give the sender's facility"}
		}
		if err := s.store.DeleteHolder(m.Study.UID, from); err != nil {
			return &wire.Error{Reason: wire.ReasonStoreFailed, Err: err}
		}
		return nil
	}
	switch {
	case !ok || st.Grant.Grantee != from || st.Grant.GranteeUser != "":
		return &wire.Error{Reason: wire.ReasonBadGrant, Msg: "holder notice under a grant we did not give the sender's facility"}
	case s.ledger.Check(from, g.ID, m.Study.UID, consent.ActionFetch) != nil:
		return &wire.Error{Reason: wire.ReasonBadGrant, Msg: "holder notice under a grant that is not live for the study"}
	}
	if sr, ok, err := s.store.Study(m.Study.UID); err != nil {
		return &wire.Error{Reason: wire.ReasonStoreFailed, Err: err}
	} else if !ok || sr.Origin != "" {
		return &wire.Error{Reason: wire.ReasonBadGrant, Msg: "holder notice for a study that is not ours"}
	}
	if err := s.store.PutHolder(m.Study.UID, store.Holder{Peer: from, GrantID: g.ID, Since: s.clock.Now().UTC()}); err != nil {
		return &wire.Error{Reason: wire.ReasonStoreFailed, Err: err}
	}
	return nil
}

// liveHolders lists the secondary holders of one of our studies that we
// may name to a grantee: partners whose own grant for the study is still
// live, other than the grantee itself, at most wire.MaxHolders.
func (s *sharing) liveHolders(study string, except peer.ID) []peer.ID {
	hs, err := s.store.Holders(study)
	if err != nil {
		s.log.Warn("list a study's holders", "err", err)
		return nil
	}
	var out []peer.ID
	for _, h := range hs {
		if h.Peer == except || !s.partners.IsPartner(h.Peer) || s.ledger.Check(h.Peer, h.GrantID, study, consent.ActionFetch) != nil {
			continue
		}
		if out = append(out, h.Peer); len(out) == wire.MaxHolders {
			break
		}
	}
	return out
}

// answerHolders answers a grantee's question at the start of a fetch:
// which other facilities hold the study. Only a partner holding a live
// grant for the study is answered; the disclosure (it learns that those
// facilities hold the study) is audited once per partner and study in
// ten minutes.
func (s *sharing) answerHolders(_ context.Context, from peer.ID, e *wire.Envelope) (any, string, error) {
	var q wire.HoldersQuery
	if err := e.DecodeBody(&q); err != nil {
		return nil, "malformed", err
	}
	if err := q.Validate(); err != nil {
		return nil, "malformed", err
	}
	if len(s.liveGrants(from, q.Study)) == 0 {
		return nil, string(consent.ReasonNoGrant), exchange.ErrDenied
	}
	ans := wire.HoldersAnswer{Holders: s.liveHolders(q.Study, from)}
	if len(ans.Holders) > 0 {
		s.audit.Once(consent.Entry{Peer: from, Action: api.ActHoldersListed, Study: q.Study, Reason: holdersReason(ans.Holders)}, 10*time.Minute)
	}
	return ans, "", nil
}

func holdersReason(hs []peer.ID) string {
	r := "holders="
	for i, h := range hs {
		if i > 0 {
			r += ","
		}
		r += h.String()
	}
	return r
}

// tellHolders queues our revocation of a grant to every secondary holder
// of the studies it covers (other than its grantee, who gets the
// revocation manifest itself), so that they refuse blocks under it.
func (s *sharing) tellHolders(st consent.GrantStatus, rv *consent.SignedRevocation) {
	if rv == nil {
		return
	}
	for _, sr := range s.coveredStudies(&st.Grant) {
		hs, err := s.store.Holders(sr.UID)
		if err != nil {
			s.log.Warn("list a study's holders", "err", err)
			continue
		}
		for _, h := range hs {
			p, ok := s.partners.Get(h.Peer)
			if h.Peer == st.Grant.Grantee || !ok {
				continue
			}
			m := Manifest{Kind: wire.KindHolderRevocation, Grant: &st.SignedGrant, Revocation: rv, Study: sr.Study}
			if err := s.sealAndQueue(p, m); err != nil {
				s.log.Warn("queue a revocation for a secondary holder", "peer", h.Peer, "err", err)
			}
		}
	}
}
