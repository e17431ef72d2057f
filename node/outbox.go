package node

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// OutboxItem is a queued manifest.
type OutboxItem = store.OutboxItem

// pusher delivers one sealed manifest; *exchange.Service is one.
type pusher interface {
	PushManifest(ctx context.Context, p peer.ID, sealed []byte) error
}

// outbox delivers queued manifests in order per partner, retrying with
// backoff until each is acknowledged. Items live in the archive, so a
// restart of either side loses nothing.
type outbox struct {
	store   *store.Store
	push    pusher
	audit   *auditor
	log     *slog.Logger
	clock   clock.Clock
	wake    chan struct{}
	timeout time.Duration
	redial  func(peer.ID) // forgets libp2p's dial backoff: the outbox paces its own retries

	nowMu   sync.Mutex
	now     map[peer.ID]bool      // partners seen connecting: their items are due at once
	nowLast map[peer.ID]time.Time // when each last did: a partner connecting again and again wakes the outbox once a second at most
}

const (
	outboxMinBackoff = 500 * time.Millisecond
	outboxMaxBackoff = 30 * time.Second
)

// reconnected makes a partner's items due at once: a connection from or
// to it just opened (it came back online, a partition healed), so there
// is no reason to wait out the backoff of its last failed delivery (up to
// 30 s). An item whose delivery then fails backs off as before.
func (o *outbox) reconnected(p peer.ID) {
	now := o.clock.Now()
	o.nowMu.Lock()
	if o.now == nil {
		o.now, o.nowLast = map[peer.ID]bool{}, map[peer.ID]time.Time{}
	}
	if now.Sub(o.nowLast[p]) < time.Second {
		o.nowMu.Unlock()
		return
	}
	if len(o.nowLast) > 4096 {
		clear(o.nowLast) // partners only (the gater admits no one else); a bound all the same
	}
	o.now[p], o.nowLast[p] = true, now
	o.nowMu.Unlock()
	o.kick()
}

// takeNow reports (once) whether p connected since its items were last
// tried.
func (o *outbox) takeNow(p peer.ID) bool {
	o.nowMu.Lock()
	defer o.nowMu.Unlock()
	now := o.now[p]
	delete(o.now, p)
	return now
}

func (o *outbox) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx is done.
func (o *outbox) Run(ctx context.Context) {
	t := o.clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		case <-t.C():
		}
		next := o.deliverDue(ctx)
		wait := next.Sub(o.clock.Now())
		if next.IsZero() || wait > outboxMaxBackoff {
			wait = outboxMaxBackoff
		}
		t.Stop()
		t.Reset(max(wait, 10*time.Millisecond))
	}
}

// Pending lists the queued items in order.
func (o *outbox) Pending() ([]OutboxItem, error) { return o.store.Outbox() }

// outboxParallel bounds the partners delivered to at once: one slow or
// unreachable partner must not hold up the others (a grant to 50
// partners goes out in parallel), and a node with many partners does
// not open a stream to each at the same moment.
const outboxParallel = 16

// deliverDue tries every item that is due, in order per partner and
// partners in parallel; it returns when the earliest remaining item is
// next due (zero when none). It returns after every delivery it started
// has ended.
func (o *outbox) deliverDue(ctx context.Context) time.Time {
	items, err := o.store.Outbox()
	if err != nil {
		o.log.Error("outbox: read queue", "err", err)
		return o.clock.Now().Add(outboxMaxBackoff)
	}
	var order []peer.ID
	byPeer := map[peer.ID][]OutboxItem{}
	for _, it := range items {
		if _, ok := byPeer[it.Peer]; !ok {
			order = append(order, it.Peer)
		}
		byPeer[it.Peer] = append(byPeer[it.Peer], it)
	}
	var (
		mu   sync.Mutex
		next time.Time
		wg   sync.WaitGroup
		sem  = make(chan struct{}, outboxParallel)
	)
	for _, p := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func(queue []OutboxItem) {
			defer func() { <-sem; wg.Done() }()
			if n := o.deliverQueue(ctx, queue); !n.IsZero() {
				mu.Lock()
				next = earliest(next, n)
				mu.Unlock()
			}
		}(byPeer[p])
	}
	wg.Wait()
	return next
}

// deliverQueue delivers one partner's due items in order, stopping at the
// first that is not due or fails; it returns when that one is next due.
func (o *outbox) deliverQueue(ctx context.Context, queue []OutboxItem) time.Time {
	urgent := len(queue) > 0 && o.takeNow(queue[0].Peer)
	for _, it := range queue {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if !urgent && o.clock.Now().Before(it.Next) {
			return it.Next
		}
		if it.Attempts > 0 && o.redial != nil {
			o.redial(it.Peer)
		}
		sealed, err := o.store.OutboxSealed(it)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, o.timeout)
			err = o.push.PushManifest(pctx, it.Peer, sealed)
			cancel()
		}
		if err == nil {
			if err := o.store.DeleteOutbox(it.Seq); err != nil {
				o.log.Error("outbox: remove delivered item", "err", err)
			}
			o.audit.Record(consent.Entry{Peer: it.Peer, Action: consent.ActManifestSent, Study: it.Study, GrantID: it.GrantID, Reason: it.Kind})
			o.log.Info("manifest delivered", "peer", it.Peer, "kind", it.Kind, "version", it.Version, "attempts", it.Attempts+1)
			continue
		}
		if ctx.Err() != nil {
			return time.Time{}
		}
		it.Attempts++
		backoff := min(outboxMinBackoff<<min(it.Attempts-1, 10), outboxMaxBackoff)
		it.Next = o.clock.Now().Add(backoff)
		it.LastErr = deliverySentence(err)
		if errors.Is(err, exchange.ErrRejected) {
			// The partner opened it and refused: retrying will not help
			// unless something changes on its side (e.g. it adds us as a
			// partner), so retry slowly.
			it.Next = o.clock.Now().Add(outboxMaxBackoff)
		}
		if it.Attempts == 1 || it.Attempts%10 == 0 {
			o.log.Info("manifest delivery pending", "peer", it.Peer, "attempts", it.Attempts, "err", err)
		}
		if err := o.store.PutOutbox(it); err != nil {
			o.log.Error("outbox: update item", "err", err)
		}
		return it.Next
	}
	return time.Time{}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// deliverNow pushes what is queued for p at once, in order, whatever its
// backoff, until ctx ends or a push fails (removing a partner tells it
// first). It reports what was delivered and what is still queued for p.
func (o *outbox) deliverNow(ctx context.Context, p peer.ID) (delivered, pending int) {
	items, err := o.store.Outbox()
	if err != nil {
		o.log.Error("outbox: read queue", "err", err)
		return 0, 0
	}
	failed := false
	for _, it := range items {
		if it.Peer != p {
			continue
		}
		if failed || ctx.Err() != nil {
			pending++
			continue
		}
		if o.redial != nil {
			o.redial(p)
		}
		sealed, err := o.store.OutboxSealed(it)
		if err == nil {
			err = o.push.PushManifest(ctx, p, sealed)
		}
		if err != nil {
			o.log.Info("manifest not delivered before the partner was removed", "peer", p, "err", err)
			failed = true
			pending++
			continue
		}
		if err := o.store.DeleteOutbox(it.Seq); err != nil {
			o.log.Error("outbox: remove delivered item", "err", err)
		}
		o.audit.Record(consent.Entry{Peer: p, Action: consent.ActManifestSent, Study: it.Study, GrantID: it.GrantID, Reason: it.Kind})
		delivered++
	}
	return delivered, pending
}
