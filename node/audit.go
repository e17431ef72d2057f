package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/node/clock"
)

// AuditConfig sets how the audit trail is sealed.
type AuditConfig struct {
	// CheckpointInterval is how often the node signs the head of its audit
	// log with its key (a checkpoint), when anything was written since the
	// last one; it also signs one when it stops. Entries written since the
	// last checkpoint are what a truncation could remove undetected, so
	// keep it short. Default 15m; 1m to 24h.
	CheckpointInterval Duration `toml:"checkpoint_interval"`

	// Syslog streams every entry to a syslog collector (auditship.go).
	Syslog SyslogConfig `toml:"syslog"`
}

func defaultAuditConfig() AuditConfig {
	return AuditConfig{CheckpointInterval: Duration{15 * time.Minute}}
}

func (c AuditConfig) validate() error {
	if c.CheckpointInterval.Duration < time.Minute || c.CheckpointInterval.Duration > 24*time.Hour {
		return errors.New("config: audit.checkpoint_interval must be 1m to 24h")
	}
	return c.Syslog.validate()
}

// auditor records audit entries in the ledger and logs each one without
// patient data. It is the only writer of the node's audit entries, and
// signs the checkpoints.
type auditor struct {
	ledger    *consent.Ledger
	log       *slog.Logger
	clock     clock.Clock
	ckptEvery time.Duration              // 0: only when asked and at shutdown
	notify    func()                     // told of every entry written (the syslog stream); nil: nobody
	spool     atomic.Pointer[auditSpool] // where entries go while the archive takes no writes; nil: nowhere

	mu      sync.Mutex
	seen    map[string]time.Time // dedupe of repeated entries (per-block authorizations, instance reads)
	denials map[string]*denials  // repeated denials being counted (see Deny)
}

func newAuditor(l *consent.Ledger, log *slog.Logger, c clock.Clock, ckptEvery time.Duration) *auditor {
	return &auditor{ledger: l, log: log, clock: c, ckptEvery: ckptEvery, seen: map[string]time.Time{}, denials: map[string]*denials{}}
}

// Checkpoint signs the head of the audit log (see consent.Ledger.Checkpoint)
// and logs it when it is new: the log line is a copy of the checkpoint
// outside the archive (the node's log, and whatever collects it).
func (a *auditor) Checkpoint(actor string) (*consent.SignedCheckpoint, error) {
	before, _ := a.ledger.LastCheckpoint()
	sc, err := a.ledger.Checkpoint(actor)
	if err != nil {
		a.log.Error("audit checkpoint failed", "err", err)
		return nil, err
	}
	if c := sc.Checkpoint; before == nil || before.Checkpoint.Index != c.Index {
		a.log.Info(consent.ActAuditCheckpoint, "index", c.Index, "seq", c.Seq, "head", c.Head, "time", c.Time)
	}
	return sc, nil
}

// errAuditFailed is returned when an audit entry cannot be written: the
// action it was for must not happen (fail closed).
var errAuditFailed = errors.New("the audit trail cannot be written")

// Record writes an entry and logs it without patient data. A failure is
// logged loudly and returned wrapping errAuditFailed: callers about to
// disclose something (a read, a block, a retrieval) refuse it then.
func (a *auditor) Record(e consent.Entry) error {
	if e.Actor == "" {
		e.Actor = consent.ActorSystem
	}
	rec, err := a.ledger.Record(e)
	if sp := a.spool.Load(); err != nil && sp != nil && errors.As(err, new(*diskFullError)) {
		// The archive's disk takes no writes: the entry is kept in the
		// spool (synced) and joins the chain once it does.
		if serr := sp.add(e, a.clock.Now()); serr == nil {
			a.log.Warn("audit entry spooled: the archive's disk takes no writes", "action", e.Action, "actor", e.Actor)
			return nil
		} else {
			err = errors.Join(err, fmt.Errorf("audit spool: %w", serr))
		}
	}
	if err != nil {
		a.log.Error("audit write failed", "action", e.Action, "err", err)
		return &unavailableError{fmt.Errorf("%w: %w", errAuditFailed, err)}
	}
	// The log line names the event, never the study or patient: the audit
	// log (encrypted at rest) keeps those, and an admin's free-text
	// revocation reason, which could name a patient, too.
	reason := e.Reason
	if e.Action == consent.ActRevoke {
		reason = "(in the audit log)"
	}
	args := []any{"audit", rec.Seq, "actor", e.Actor, "peer", e.Peer, "decision", e.Decision, "reason", reason}
	if e.Count > 1 {
		args = append(args, "count", e.Count)
	}
	a.log.Info(e.Action, args...)
	if a.notify != nil {
		a.notify()
	}
	return nil
}

// Bounds of the dedupe table: entries older than the longest window are
// dropped once it holds maxAuditSeen keys, and if that frees nothing the
// table is cleared (at worst an entry is recorded twice).
const (
	maxAuditSeen   = 4096
	auditDedupeMax = 10 * time.Minute
)

// Once records e unless the same (peer, actor, grant, study, action,
// reason) was recorded within the last window: block requests come by the
// hundred per fetch.
//
// A request citing a grant we never issued is keyed without the grant ID,
// so that a peer inventing IDs cannot turn each request into an audit
// commit.
//
// An error means the entry could not be written (see Record); the key is
// then forgotten, so that the next attempt tries again.
func (a *auditor) Once(e consent.Entry, window time.Duration) error {
	grant := e.GrantID
	if _, ok := a.ledger.Get(grant); !ok {
		grant = "(unknown)"
	}
	k := string(e.Peer) + "|" + e.Actor + "|" + grant + "|" + e.Study + "|" + e.Action + "|" + e.Reason
	now := a.clock.Now()
	a.mu.Lock()
	last, ok := a.seen[k]
	if ok && now.Sub(last) < window {
		a.mu.Unlock()
		return nil
	}
	if len(a.seen) >= maxAuditSeen {
		for key, t := range a.seen {
			if now.Sub(t) >= auditDedupeMax {
				delete(a.seen, key)
			}
		}
		if len(a.seen) >= maxAuditSeen {
			clear(a.seen)
		}
	}
	a.seen[k] = now
	a.mu.Unlock()
	if err := a.Record(e); err != nil {
		a.mu.Lock()
		if a.seen[k] == now {
			delete(a.seen, k)
		}
		a.mu.Unlock()
		return err
	}
	return nil
}

// denyWindow is how long repeated denials of one kind are counted before
// their aggregate entry is written; maxDenialKinds bounds the kinds
// counted at once (more flushes them all early).
const (
	denyWindow     = time.Minute
	maxDenialKinds = 1024
)

// denials counts the denials of one kind (peer, action, reason) that
// followed the first, which was recorded in full.
type denials struct {
	first time.Time
	last  time.Time
	n     uint64
	e     consent.Entry
}

// Deny records a denial so that a partner sending thousands of refused
// requests costs a few audit commits, not thousands, while the fact and
// number of denials are never lost: the first of a kind (peer, action,
// reason) is recorded in full, those that follow within denyWindow are
// counted, and one entry with Count (and no study: a peer chooses what it
// asks for) is written when the window ends (by Run, or at the next
// denial of the kind, or on close).
func (a *auditor) Deny(e consent.Entry) {
	e.Decision = consent.DecisionDeny
	k := string(e.Peer) + "|" + e.Action + "|" + e.Reason
	now := a.clock.Now()
	var flush []consent.Entry
	a.mu.Lock()
	if d := a.denials[k]; d != nil && now.Sub(d.first) < denyWindow {
		d.n++
		d.last = now
		a.mu.Unlock()
		return
	}
	if d := a.denials[k]; d != nil && d.n > 0 {
		flush = append(flush, d.summary())
	}
	if len(a.denials) >= maxDenialKinds {
		flush = append(flush, a.takeLocked(func(*denials) bool { return true })...)
	}
	a.denials[k] = &denials{first: now, last: now, e: e}
	a.mu.Unlock()
	for _, s := range flush {
		a.Record(s)
	}
	a.Record(e)
}

func (d *denials) summary() consent.Entry {
	return consent.Entry{Actor: d.e.Actor, Peer: d.e.Peer, Action: d.e.Action, Decision: consent.DecisionDeny,
		Reason: d.e.Reason, Count: d.n}
}

// takeLocked removes the kinds pick selects and returns the aggregate
// entries of those that counted any denial. Called with mu held.
func (a *auditor) takeLocked(pick func(*denials) bool) []consent.Entry {
	var out []consent.Entry
	for k, d := range a.denials {
		if !pick(d) {
			continue
		}
		if d.n > 0 {
			out = append(out, d.summary())
		}
		delete(a.denials, k)
	}
	return out
}

// flushDenials writes the aggregate entries of the windows that ended, or
// of all of them.
func (a *auditor) flushDenials(all bool) {
	now := a.clock.Now()
	a.mu.Lock()
	out := a.takeLocked(func(d *denials) bool { return all || now.Sub(d.first) >= denyWindow })
	a.mu.Unlock()
	for _, e := range out {
		a.Record(e)
	}
}

// drainSpool moves spooled entries into the chain when the archive takes
// writes again.
func (a *auditor) drainSpool() {
	sp := a.spool.Load()
	if sp == nil {
		return
	}
	n, err := sp.drain(a.ledger)
	if n > 0 {
		a.log.Info("audit entries written while the archive took no writes are in the chain now", "entries", n)
	}
	if err != nil && !errors.As(err, new(*diskFullError)) {
		a.log.Error("audit spool", "err", err)
	}
}

// Run writes aggregated denials as their windows end, and those still
// being counted when ctx ends, and signs a checkpoint every ckptEvery (the
// node's Close signs the last one).
func (a *auditor) Run(ctx context.Context) {
	last := a.clock.Now()
	for {
		t := a.clock.NewTimer(denyWindow / 4)
		select {
		case <-ctx.Done():
			t.Stop()
			a.flushDenials(true)
			return
		case <-t.C():
			a.flushDenials(false)
			a.drainSpool()
			if now := a.clock.Now(); a.ckptEvery > 0 && now.Sub(last) >= a.ckptEvery {
				last = now
				a.Checkpoint(consent.ActorSystem)
			}
		}
	}
}
