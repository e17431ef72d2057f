package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/node/clock"
)

// reasonRateLimited is the audit reason of a request refused because its
// partner exceeded its rate.
const reasonRateLimited = "rate-limited"

// peerLimiter is a token bucket per partner (golang.org/x/time/rate, on
// the node's clock). Only partners get past the connection gater, so the
// table is as small as the partner list; it is cleared if it ever grows
// past maxLimiters.
type peerLimiter struct {
	clock clock.Clock
	limit rate.Limit
	burst int

	mu sync.Mutex
	m  map[peer.ID]*rate.Limiter
}

const maxLimiters = 4096

func newPeerLimiter(c clock.Clock, perSecond float64, burst int) *peerLimiter {
	return &peerLimiter{clock: c, limit: rate.Limit(perSecond), burst: burst, m: map[peer.ID]*rate.Limiter{}}
}

func (l *peerLimiter) allow(p peer.ID) bool {
	l.mu.Lock()
	lim := l.m[p]
	if lim == nil {
		if len(l.m) >= maxLimiters {
			clear(l.m)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[p] = lim
	}
	l.mu.Unlock()
	return lim.AllowN(l.clock.Now(), 1)
}

// errRateLimited tells the partner "unavailable, retry later": its
// outbox and fetcher back off, which is what a flood should cause.
var errRateLimited = fmt.Errorf("%w: rate limited", exchange.ErrUnavailable)

// The exchange adapters below put a partner's rate limit in front of the
// rooms that answer it. A refusal is audited through auditor.Deny, so a
// flood costs one entry a minute with its count.

type limitedAuthorizer struct {
	exchange.Authorizer
	lim   *peerLimiter
	audit *auditor
}

func (a limitedAuthorizer) AuthorizeBlock(ctx context.Context, p peer.ID, grantID string, c cid.Cid) error {
	if !a.lim.allow(p) {
		a.audit.Deny(consent.Entry{Peer: p, Action: consent.ActFetchDenied, Reason: reasonRateLimited})
		return errRateLimited
	}
	return a.Authorizer.AuthorizeBlock(ctx, p, grantID, c)
}

// limitedPresenter puts the partner's block rate limit in front of the
// blocks a secondary holder serves, as limitedAuthorizer does for ours.
type limitedPresenter struct {
	exchange.GrantPresenter
	lim   *peerLimiter
	audit *auditor
}

func (l limitedPresenter) PresentGrant(ctx context.Context, p peer.ID, signed []byte) (exchange.Authorizer, error) {
	a, err := l.GrantPresenter.PresentGrant(ctx, p, signed)
	if err != nil {
		return nil, err
	}
	return limitedAuthorizer{a, l.lim, l.audit}, nil
}

type limitedSource struct {
	exchange.ManifestSource
	lim   *peerLimiter
	audit *auditor
}

func (s limitedSource) ManifestFor(ctx context.Context, p peer.ID, study string) ([]byte, error) {
	if !s.lim.allow(p) {
		s.audit.Deny(consent.Entry{Peer: p, Action: consent.ActFetchDenied, Reason: reasonRateLimited})
		return nil, errRateLimited
	}
	return s.ManifestSource.ManifestFor(ctx, p, study)
}

type limitedHandler struct {
	exchange.ManifestHandler
	lim   *peerLimiter
	audit *auditor
}

func (h limitedHandler) HandleManifest(ctx context.Context, from peer.ID, sealed []byte) error {
	if !h.lim.allow(from) {
		h.audit.Deny(consent.Entry{Peer: from, Action: consent.ActManifestRejected, Reason: reasonRateLimited})
		return errRateLimited
	}
	return h.ManifestHandler.HandleManifest(ctx, from, sealed)
}

type limitedAsks struct {
	exchange.AskHandler
	lim   *peerLimiter
	audit *auditor
}

func (h limitedAsks) HandleAsk(ctx context.Context, from peer.ID, msg []byte) ([]byte, error) {
	if !h.lim.allow(from) {
		h.audit.Deny(consent.Entry{Peer: from, Action: api.ActAskRefused, Reason: reasonRateLimited})
		return nil, errRateLimited
	}
	return h.AskHandler.HandleAsk(ctx, from, msg)
}

var (
	_ exchange.AskHandler      = limitedAsks{}
	_ exchange.Authorizer      = limitedAuthorizer{}
	_ exchange.GrantPresenter  = limitedPresenter{}
	_ exchange.ManifestSource  = limitedSource{}
	_ exchange.ManifestHandler = limitedHandler{}
)
