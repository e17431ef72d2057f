package node

import (
	"log/slog"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/node/clock"
)

// auditor records audit entries in the ledger and logs each one without
// patient data. It is the only writer of the node's audit entries.
type auditor struct {
	ledger *consent.Ledger
	log    *slog.Logger
	clock  clock.Clock

	mu   sync.Mutex
	seen map[string]time.Time // dedupe of repeated entries (per-block authorizations, instance reads)
}

func newAuditor(l *consent.Ledger, log *slog.Logger, c clock.Clock) *auditor {
	return &auditor{ledger: l, log: log, clock: c, seen: map[string]time.Time{}}
}

// Record writes an entry; a failure to audit is logged loudly (the entry
// itself carries no patient data).
func (a *auditor) Record(e consent.Entry) {
	if e.Actor == "" {
		e.Actor = consent.ActorSystem
	}
	rec, err := a.ledger.Record(e)
	if err != nil {
		a.log.Error("audit write failed", "action", e.Action, "err", err)
		return
	}
	// The log line names the event, never the study or patient: the audit
	// log (encrypted at rest) keeps those, and an admin's free-text
	// revocation reason, which could name a patient, too.
	reason := e.Reason
	if e.Action == consent.ActRevoke {
		reason = "(in the audit log)"
	}
	a.log.Info(e.Action, "audit", rec.Seq, "actor", e.Actor, "peer", e.Peer, "decision", e.Decision, "reason", reason)
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
func (a *auditor) Once(e consent.Entry, window time.Duration) {
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
		return
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
	a.Record(e)
}
