package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
)

// outboxItem is a sealed manifest waiting for delivery. Items stay in the
// archive until the partner acknowledged them, so a restart of either side
// loses nothing.
type outboxItem struct {
	Seq      uint64    `json:"seq"`
	Peer     peer.ID   `json:"peer"`
	Kind     string    `json:"kind"`
	Study    string    `json:"study"`
	GrantID  string    `json:"grant,omitempty"`
	Version  uint64    `json:"version"`
	Sealed   []byte    `json:"sealed"`
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next"` // not before this time
	LastErr  string    `json:"last_error,omitempty"`
}

func outboxKey(seq uint64) string { return fmt.Sprintf("%s%020d", pfxOutbox, seq) }

// pusher delivers one sealed manifest; *exchange.Service is one.
type pusher interface {
	PushManifest(ctx context.Context, p peer.ID, sealed []byte) error
}

// outbox delivers queued manifests in order per partner, retrying with
// backoff until each is acknowledged.
type outbox struct {
	arch    *archive
	push    pusher
	audit   func(consent.Entry)
	log     *slog.Logger
	now     func() time.Time
	wake    chan struct{}
	timeout time.Duration
	redial  func(peer.ID) // forgets libp2p's dial backoff: the outbox paces its own retries
}

const (
	outboxMinBackoff = 500 * time.Millisecond
	outboxMaxBackoff = 30 * time.Second
)

func (o *outbox) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// enqueueTxn adds an item inside the caller's transaction; the caller
// kicks the outbox once the transaction is committed.
func (o *outbox) enqueueTxn(txn *badger.Txn, it outboxItem) error {
	seq, err := nextSeq(txn, keyOutSeq)
	if err != nil {
		return err
	}
	it.Seq = seq
	it.Next = it.Created
	return setJSON(txn, outboxKey(seq), it)
}

// Run delivers until ctx is done.
func (o *outbox) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.wake:
		case <-t.C:
		}
		next := o.deliverDue(ctx)
		wait := time.Until(next)
		if next.IsZero() || wait > outboxMaxBackoff {
			wait = outboxMaxBackoff
		}
		t.Reset(max(wait, 10*time.Millisecond))
	}
}

// pending lists the queued items in order.
func (o *outbox) pending() ([]outboxItem, error) {
	var items []outboxItem
	err := scanJSON(o.arch, pfxOutbox, func(_ []byte, it *outboxItem) error {
		items = append(items, *it)
		return nil
	})
	return items, err
}

// deliverDue tries every item that is due, in order per partner; it
// returns when the earliest remaining item is next due (zero when none).
func (o *outbox) deliverDue(ctx context.Context) time.Time {
	items, err := o.pending()
	if err != nil {
		o.log.Error("outbox: read queue", "err", err)
		return o.now().Add(outboxMaxBackoff)
	}
	blocked := map[peer.ID]bool{} // keep per-partner order: stop at the first failure
	var next time.Time
	for _, it := range items {
		if ctx.Err() != nil {
			return next
		}
		if blocked[it.Peer] {
			continue
		}
		if o.now().Before(it.Next) {
			blocked[it.Peer] = true
			next = earliest(next, it.Next)
			continue
		}
		if it.Attempts > 0 && o.redial != nil {
			o.redial(it.Peer)
		}
		pctx, cancel := context.WithTimeout(ctx, o.timeout)
		err := o.push.PushManifest(pctx, it.Peer, it.Sealed)
		cancel()
		if err == nil {
			if err := o.arch.update(func(txn *badger.Txn) error { return txn.Delete([]byte(outboxKey(it.Seq))) }); err != nil {
				o.log.Error("outbox: remove delivered item", "err", err)
			}
			o.audit(consent.Entry{Actor: "system", Peer: it.Peer, Action: consent.ActManifestSent, Study: it.Study, GrantID: it.GrantID, Reason: it.Kind})
			o.log.Info("manifest delivered", "peer", it.Peer, "kind", it.Kind, "version", it.Version, "attempts", it.Attempts+1)
			continue
		}
		blocked[it.Peer] = true
		if ctx.Err() != nil {
			return next
		}
		it.Attempts++
		backoff := min(outboxMinBackoff<<min(it.Attempts-1, 10), outboxMaxBackoff)
		it.Next = o.now().Add(backoff)
		it.LastErr = err.Error()
		if errors.Is(err, exchange.ErrRejected) {
			// The partner opened it and refused: retrying will not help
			// unless something changes on its side (e.g. it adds us as a
			// partner), so retry slowly.
			it.Next = o.now().Add(outboxMaxBackoff)
		}
		if it.Attempts == 1 || it.Attempts%10 == 0 {
			o.log.Info("manifest delivery pending", "peer", it.Peer, "attempts", it.Attempts, "err", err)
		}
		item := it
		if err := o.arch.update(func(txn *badger.Txn) error { return setJSON(txn, outboxKey(item.Seq), item) }); err != nil {
			o.log.Error("outbox: update item", "err", err)
		}
		next = earliest(next, it.Next)
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// OutboxItem is the API view of a queued manifest.
type OutboxItem struct {
	Seq      uint64    `json:"seq"`
	Peer     peer.ID   `json:"peer"`
	Kind     string    `json:"kind"`
	Study    string    `json:"study"`
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next"`
	LastErr  string    `json:"last_error,omitempty"`
}
