package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
)

// asker is what the asks room needs of the exchange.
type asker interface {
	Ask(ctx context.Context, p peer.ID, msg []byte) ([]byte, error)
}

// Bounds of signed asks.
const (
	askLifetime     = 2 * time.Minute  // a signed message's validity
	askTimeout      = 10 * time.Second // one exchange with a partner
	maxReplayNonces = 100000           // nonces remembered (each until its message expires)
)

// askHandler answers one kind of signed message: the answer's body, or an
// error wrapping an exchange sentinel (and an audit reason code for a
// refusal the partner caused).
type askHandler func(ctx context.Context, from peer.ID, e *wire.Envelope) (answer any, refusal string, err error)

// asks is the signed-message desk: it opens partners' signed messages
// (wire.OpenAsk: sender, recipient, signature, lifetime), refuses replayed
// nonces from a bounded table, hands each kind to the room that answers it
// (requests, search) and signs the answer; and it asks partners on behalf
// of those rooms, checking their signed answers. Refusals are audited,
// aggregated, as ask-refused with a code.
type asks struct {
	ex       asker
	partners *partners
	id       *crypto.Identity
	audit    *auditor
	clock    clock.Clock
	handlers map[string]askHandler

	mu     sync.Mutex
	nonces map[string]time.Time // seen nonces → when their message expires
}

// handle registers the room answering one kind (during node.Open).
func (a *asks) handle(kind string, h askHandler) {
	if a.handlers == nil {
		a.handlers = map[string]askHandler{}
	}
	a.handlers[kind] = h
}

// seen records a message's nonce; fresh is false for a nonce seen before
// (a replay); full is true when the table holds only live nonces.
func (a *asks) seen(nonce string, expires time.Time) (fresh bool, full bool) {
	now := a.clock.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nonces == nil {
		a.nonces = map[string]time.Time{}
	}
	if _, ok := a.nonces[nonce]; ok {
		return false, false
	}
	if len(a.nonces) >= maxReplayNonces {
		for n, exp := range a.nonces {
			if !now.Before(exp) {
				delete(a.nonces, n)
			}
		}
		if len(a.nonces) >= maxReplayNonces {
			return false, true
		}
	}
	a.nonces[nonce] = expires
	return true, false
}

// HandleAsk implements exchange.AskHandler.
func (a *asks) HandleAsk(ctx context.Context, from peer.ID, msg []byte) ([]byte, error) {
	refuse := func(code string, err error) ([]byte, error) {
		a.audit.Deny(consent.Entry{Peer: from, Action: api.ActAskRefused, Reason: code})
		return nil, err
	}
	if !a.partners.IsPartner(from) {
		return refuse("not-partner", fmt.Errorf("not a partner: %w", exchange.ErrDenied))
	}
	now := a.clock.Now()
	e, err := wire.OpenAsk(msg, from, a.id.PeerID(), now)
	if err != nil {
		return refuse("malformed", fmt.Errorf("%w: %w", err, exchange.ErrBadRequest))
	}
	h := a.handlers[e.Kind]
	if h == nil {
		return refuse("malformed", fmt.Errorf("a %s is not a question: %w", e.Kind, exchange.ErrBadRequest))
	}
	fresh, full := a.seen(e.Nonce, e.Expires)
	switch {
	case full:
		return nil, fmt.Errorf("too many messages in flight: %w", exchange.ErrUnavailable)
	case !fresh:
		return refuse("replay", fmt.Errorf("replayed message: %w", exchange.ErrBadRequest))
	}
	body, code, err := h(ctx, from, e)
	if err != nil {
		if code != "" {
			return refuse(code, err)
		}
		return nil, err
	}
	ans, _, err := wire.SealAsk(a.id.Sign, from, wire.KindAnswer, e.Nonce, body, now, askLifetime)
	return ans, err
}

// ask sends a signed message to a partner and opens its signed answer
// into v. It returns the answer as received (the partner's proof).
func (a *asks) ask(ctx context.Context, to peer.ID, kind string, body, v any) ([]byte, error) {
	if a.ex == nil {
		return nil, errors.New("the exchange is not running")
	}
	msg, sent, err := wire.SealAsk(a.id.Sign, to, kind, "", body, a.clock.Now(), askLifetime)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	ans, err := a.ex.Ask(ctx, to, msg)
	if err != nil {
		return nil, err
	}
	e, err := wire.OpenAsk(ans, to, a.id.PeerID(), a.clock.Now())
	if err != nil {
		return nil, fmt.Errorf("the partner's answer: %w", err)
	}
	if e.Kind != wire.KindAnswer || e.InReplyTo != sent.Nonce {
		return nil, errors.New("the partner's answer does not answer our message")
	}
	if err := e.DecodeBody(v); err != nil {
		return nil, fmt.Errorf("the partner's answer: %w", err)
	}
	return ans, nil
}

// askSentence says why a partner could not be asked, in words a clinician
// can act on; the raw error stays in the log.
func askSentence(err error, partner string) string {
	var re *exchange.RemoteError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, wire.ErrBadAsk):
		return partner + " sent an answer that does not verify (tell its administrators)"
	case errors.As(err, &re):
		switch re.Code {
		case exchange.CodeUnavailable:
			return partner + " is busy or limits how often it is asked: try again in a minute"
		case exchange.CodeDenied:
			return partner + " refused: it no longer counts this facility as a partner"
		case exchange.CodeBadRequest:
			return partner + " refused the message (are the two clocks more than 2 minutes apart?)"
		case exchange.CodeNotFound:
			return partner + " does not know this request"
		}
		return partner + " failed to answer (its log says why)"
	}
	switch transportProblem(err) {
	case noConnection:
		return "cannot connect to " + partner + ": it is not running, not reachable from here, or no longer counts this facility as a partner"
	case noAnswer:
		return partner + " did not answer in time"
	}
	return partner + " could not be asked: " + err.Error()
}
