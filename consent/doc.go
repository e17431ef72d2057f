// Package consent decides who may fetch what, and writes down every
// decision: grants, revocations and the hash-chained audit log.
//
// It is a deterministic state machine. Time comes in through a now
// function, randomness (grant IDs) from crypto/rand, storage through the
// two-method [Store] interface; it starts no goroutines and opens no
// connections. Given the same store contents, clock and requests, it makes
// the same decisions and writes the same audit log, which is what the
// golden tests check.
//
// # Grants and revocations
//
// The data-holding facility issues a [Grant] with [Ledger.Grant] and
// withdraws it with [Ledger.Revoke]. Both are signed with the facility's
// libp2p key (domains [crypto.DomainGrant] and [crypto.DomainRevocation]),
// so the grantee, or anyone holding the facility's peer ID, can check them
// with [SignedGrant.Verify] and [SignedRevocation.Verify]. [Ledger.Check]
// is the per-request authorization decision; it is in-memory and
// lock-light because the node calls it on every block request.
//
// # Audit log
//
// Every grant, revocation and every [Ledger.Record] call appends an
// [Entry]. Entries are numbered from 1 without gaps. Each carries the hash
// of the previous one (Prev; the first entry's Prev is 64 zeros) and its
// own Hash: hex SHA-256 over "pacsnet-audit-v1\x00" followed by the JSON
// encoding of every field except Hash, in struct order, with the time in
// UTC (RFC 3339, nanoseconds). [Ledger.Verify] re-reads the log from the
// store and checks every hash and link. The chain makes the log
// tamper-evident against anyone who cannot also rewrite every later entry
// and the head record; signed checkpoints, which would also stop someone
// holding the store, are not implemented yet.
//
// A grant or revocation and its audit entry are written in one
// [Store.Commit], and so is each audit entry with the head record, so a
// crash can never leave a grant without its audit entry or a hole in the
// chain.
//
// # Store layout
//
//	consent/grant/<id>       JSON SignedGrant (id: 32 lowercase hex digits)
//	consent/revocation/<id>  JSON SignedRevocation, keyed by the grant ID
//	consent/audit-head       JSON {"seq":N,"hash":"…"}: the last entry, so
//	                         Open need not read the whole log
//	audit/<%020d seq>        JSON Entry
//
// # Errors
//
// [Ledger.Check] returns nil or exactly one of the decision sentinels
// ([ErrNoGrant], [ErrWrongGrantee], [ErrRevoked], [ErrNotYetValid],
// [ErrExpired], [ErrOutOfScope], [ErrActionNotGranted]), wrapped with the
// grant ID only. Errors never contain study UIDs, patient data or dates.
// [ReasonOf] maps a decision onto the short [DenyReason] code that audit
// entries and logs carry ([ReasonNoGrant], …, [ReasonDenied]).
//
// # Imports
//
// consent imports only pacsnet's crypto package (to sign and verify). It
// must not import node, exchange, dicomio or cmd, nor any network,
// storage or logging package: the node plugs in storage (Badger) and
// decides what to log. The layering test in internal/deptest enforces
// this.
package consent
