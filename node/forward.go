package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// ForwardItem is a study queued for sending to dicom.forward_to.
type ForwardItem = store.ForwardItem

const actDICOMForward = api.ActDICOMForward

// Retries of a forward: from forwardMinBackoff, doubling, to
// forwardMaxBackoff. Variables so tests can make them short; a forwarder
// reads them when it is made.
var (
	forwardMinBackoff = 5 * time.Second
	forwardMaxBackoff = 10 * time.Minute
)

// forwarder sends every study fetched from a partner to the AE
// dicom.forward_to names (the local PACS), retrying with backoff until
// the AE stored every instance. Items live in the archive (forward/), so
// a restart loses nothing; they are sent in the order queued.
type forwarder struct {
	store   *store.Store
	archive *archive
	sender  *sender
	aes     *aeRegistry
	audit   *auditor
	log     *slog.Logger
	clock   clock.Clock
	to      string // dicom.forward_to; empty: off
	wake    chan struct{}

	minBackoff, maxBackoff time.Duration

	mu sync.Mutex // serializes the read-modify-write of items (enqueue and delivery)
}

func newForwarder(to string, st *store.Store, ar *archive, s *sender, aes *aeRegistry, audit *auditor, log *slog.Logger, c clock.Clock) *forwarder {
	return &forwarder{store: st, archive: ar, sender: s, aes: aes, audit: audit, log: log, clock: c, to: to,
		wake: make(chan struct{}, 1), minBackoff: forwardMinBackoff, maxBackoff: forwardMaxBackoff}
}

func (f *forwarder) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// enqueue queues study for the configured AE, once: a study already
// queued is marked to be sent again (a fetch that completes while it is
// being sent may have brought instances that send did not include).
func (f *forwarder) enqueue(study string) {
	if f.to == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	items, err := f.store.Forwards()
	if err != nil {
		f.log.Error("forward: read queue", "err", err)
		return
	}
	it := ForwardItem{Study: study, AE: f.to, Created: f.clock.Now().UTC(), Next: f.clock.Now().UTC()}
	for _, q := range items {
		if q.Study == study && q.AE == f.to {
			it = q
			break
		}
	}
	it.Queued++
	if _, err := f.store.PutForward(it); err != nil {
		f.log.Error("forward: queue a fetched study", "ae", f.to, "err", err)
		return
	}
	f.kick()
}

// Pending lists the queued items in order.
func (f *forwarder) Pending() ([]ForwardItem, error) { return f.store.Forwards() }

// Run delivers until ctx is done.
func (f *forwarder) Run(ctx context.Context) {
	f.dropStale()
	t := f.clock.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-t.C():
		}
		next := f.deliverDue(ctx)
		wait := next.Sub(f.clock.Now())
		if next.IsZero() || wait > f.maxBackoff {
			wait = f.maxBackoff
		}
		t.Stop()
		t.Reset(max(wait, 10*time.Millisecond))
	}
}

// drop removes an item that cannot be delivered.
func (f *forwarder) drop(it ForwardItem, why string) {
	if err := f.store.DeleteForward(it.Seq); err != nil {
		f.log.Error("forward: drop item", "err", err)
		return
	}
	f.log.Warn("forward dropped: "+why, "study", it.Study, "ae", printableAE(it.AE), "forward_to", printableAE(f.to))
}

// dropStale removes items queued for an AE that dicom.forward_to no
// longer names: the admin turned forwarding off or pointed it elsewhere.
func (f *forwarder) dropStale() {
	f.mu.Lock()
	defer f.mu.Unlock()
	items, err := f.store.Forwards()
	if err != nil {
		f.log.Error("forward: read queue", "err", err)
		return
	}
	for _, it := range items {
		if it.AE == f.to {
			continue
		}
		f.drop(it, "dicom.forward_to no longer names its AE")
	}
}

// deliverDue sends the items that are due, in order, stopping at the
// first that fails to reach the AE (they all go to the same AE); one the
// AE refused waits for its retry without holding up the others. It
// returns when the earliest remaining item is next due (zero when none).
func (f *forwarder) deliverDue(ctx context.Context) time.Time {
	items, err := f.store.Forwards()
	if err != nil {
		f.log.Error("forward: read queue", "err", err)
		return f.clock.Now().Add(f.maxBackoff)
	}
	var next time.Time
	for _, it := range items {
		if ctx.Err() != nil {
			return next
		}
		if it.AE != f.to {
			continue
		}
		if f.clock.Now().Before(it.Next) {
			next = earliest(next, it.Next)
			if it.Refused {
				continue
			}
			return next // keep the order while the AE cannot be reached
		}
		sent, err := f.deliver(ctx, it)
		if ctx.Err() != nil {
			return next
		}
		if errors.Is(err, errStudyNotFound) {
			f.drop(it, "the study is no longer held")
			continue
		}
		if err == nil {
			f.done(it, sent)
			continue
		}
		next = earliest(next, f.failed(it, err))
		if errors.As(err, new(*refusedError)) {
			continue // the AE is up: try the next studies
		}
		return next
	}
	return next
}

// errForwardUnknownAE: dicom.forward_to names no known AE.
var errForwardUnknownAE = errors.New("dicom.forward_to names no known AE; add it with pacsnet ae add")

// refusedError: the association worked but the AE did not store every
// instance (it refused some, or accepts no context for them). The study
// waits for its retry; the studies queued after it are not held up.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

// forwardStall ends an attempt during which the AE answered nothing for
// this long (a PACS that never answers a C-STORE would otherwise hold the
// queue forever). A variable for tests.
var forwardStall = 5 * time.Minute

// deliver sends the study's instances held now; it succeeds when the AE
// stored every one (success or warning statuses).
func (f *forwarder) deliver(ctx context.Context, it ForwardItem) (int, error) {
	ae, ok := f.aes.Get(it.AE)
	if !ok {
		return 0, fmt.Errorf("forward to %s: %w", printableAE(it.AE), errForwardUnknownAE)
	}
	// A copy a grant brought for one user is not the facility's to forward.
	if err := f.archive.gate(it.Study, reader{}); err != nil {
		return 0, &refusedError{fmt.Errorf("forward to %s: the study was granted to a user here, not to the facility; not forwarded", ae.Title)}
	}
	insts, err := f.archive.Instances(it.Study)
	if err != nil {
		return 0, fmt.Errorf("forward: list instances: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stalled := errors.New("the AE answered nothing for " + forwardStall.String())
	watchdog := time.AfterFunc(forwardStall, func() { cancel(stalled) })
	defer watchdog.Stop()
	t, err := f.sender.SendTo(ctx, ae, insts, "", 0, func(sendTally) bool {
		watchdog.Reset(forwardStall)
		return true
	})
	switch {
	case context.Cause(ctx) == stalled:
		return 0, fmt.Errorf("forward to %s: %w", ae.Title, stalled)
	case errors.Is(err, errNoSyntax):
		return 0, &refusedError{fmt.Errorf("forward to %s: %w", ae.Title, err)}
	case err != nil:
		return 0, fmt.Errorf("forward to %s: %w", ae.Title, err)
	case t.Failed > 0:
		return 0, &refusedError{fmt.Errorf("forward to %s: %d of %d instances not stored (refused, or no presentation context accepted)", ae.Title, t.Failed, len(insts))}
	}
	return len(insts), nil
}

// done removes a delivered item and audits it, unless a fetch queued the
// study again meanwhile: then it goes again.
func (f *forwarder) done(it ForwardItem, sent int) {
	f.mu.Lock()
	cur, ok := f.current(it.Seq)
	if ok && cur.Queued != it.Queued {
		cur.Attempts, cur.Next, cur.LastErr, cur.Refused = 0, f.clock.Now().UTC(), "", false
		if _, err := f.store.PutForward(cur); err != nil {
			f.log.Error("forward: update item", "err", err)
		}
	} else if err := f.store.DeleteForward(it.Seq); err != nil {
		f.log.Error("forward: remove delivered item", "err", err)
	}
	f.mu.Unlock()
	f.audit.Record(consent.Entry{Actor: api.ActorSystem, Action: actDICOMForward, Study: it.Study, Decision: consent.DecisionAllow, Reason: "to:" + it.AE})
	f.log.Info("study forwarded", "study", it.Study, "ae", it.AE, "instances", sent, "attempts", it.Attempts+1)
}

// failed records a failed attempt and returns when the item is next due.
func (f *forwarder) failed(it ForwardItem, err error) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.current(it.Seq)
	if !ok {
		return time.Time{}
	}
	cur.Attempts++
	cur.Next = f.clock.Now().Add(min(f.minBackoff<<min(cur.Attempts-1, 20), f.maxBackoff)).UTC()
	cur.LastErr = err.Error()
	cur.Refused = errors.As(err, new(*refusedError))
	switch {
	case errors.Is(err, errForwardUnknownAE):
		f.log.Warn("forward waiting: dicom.forward_to names no known AE; add it with pacsnet ae add", "forward_to", printableAE(it.AE), "study", it.Study, "attempts", cur.Attempts)
	case cur.Attempts == 1 || cur.Attempts%10 == 0:
		f.log.Warn("forward pending", "ae", printableAE(it.AE), "study", it.Study, "attempts", cur.Attempts, "next", cur.Next, "err", err)
	}
	if _, err := f.store.PutForward(cur); err != nil {
		f.log.Error("forward: update item", "err", err)
	}
	return cur.Next
}

// current reads item seq as stored now; f.mu is held.
func (f *forwarder) current(seq uint64) (ForwardItem, bool) {
	items, err := f.store.Forwards()
	if err != nil {
		f.log.Error("forward: read queue", "err", err)
		return ForwardItem{}, false
	}
	for _, it := range items {
		if it.Seq == seq {
			return it, true
		}
	}
	return ForwardItem{}, false
}
