package consent

import "errors"

// Decisions returned by [Ledger.Check]. Each is returned wrapped with the
// grant ID; use errors.Is. They map one-to-one onto wire error codes, so a
// peer learns why it was refused but nothing else.
var (
	ErrNoGrant          = errors.New("no such grant")                  // unknown ID, or a grant we did not issue
	ErrWrongGrantee     = errors.New("grant is for another peer")      // the requester is not the grantee
	ErrOutOfScope       = errors.New("study not covered by the grant") // study not in Grant.Studies
	ErrExpired          = errors.New("grant expired")                  // now >= Expires
	ErrNotYetValid      = errors.New("grant not yet valid")            // now < NotBefore
	ErrRevoked          = errors.New("grant revoked")                  // a revocation exists
	ErrActionNotGranted = errors.New("action not granted")             // action not in Grant.Actions
)

// ErrInvalidRequest is returned by [Ledger.Grant], [Ledger.Revoke] and
// [Ledger.Record] for argument problems: the state is unchanged and
// nothing was written. Revoking an unknown grant wraps both this and
// [ErrNoGrant].
var ErrInvalidRequest = errors.New("invalid request")

// ErrAuditCorrupt is returned (wrapped, naming the first bad sequence
// number and what is wrong) when the stored audit log does not verify.
var ErrAuditCorrupt = errors.New("audit log corrupt")
