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

// DenyReason is the short code an audit entry or a log line carries for a
// refused request: never patient data, and stable, because audit logs
// already written hold these values.
type DenyReason string

// Deny reasons, one per decision sentinel of [Ledger.Check], and
// [ReasonDenied] for any other error.
const (
	ReasonNoGrant          DenyReason = "no-grant"
	ReasonWrongGrantee     DenyReason = "wrong-grantee"
	ReasonOutOfScope       DenyReason = "out-of-scope"
	ReasonExpired          DenyReason = "expired"
	ReasonNotYetValid      DenyReason = "not-yet-valid"
	ReasonRevoked          DenyReason = "revoked"
	ReasonActionNotGranted DenyReason = "action-not-granted"
	ReasonDenied           DenyReason = "denied"
)

// denyReasons is the one table from decision sentinels to reasons.
var denyReasons = []struct {
	err    error
	reason DenyReason
}{
	{ErrNoGrant, ReasonNoGrant},
	{ErrWrongGrantee, ReasonWrongGrantee},
	{ErrOutOfScope, ReasonOutOfScope},
	{ErrExpired, ReasonExpired},
	{ErrNotYetValid, ReasonNotYetValid},
	{ErrRevoked, ReasonRevoked},
	{ErrActionNotGranted, ReasonActionNotGranted},
}

// ReasonOf returns the reason for a refusal by [Ledger.Check]: the reason
// of the first decision sentinel err wraps (errors.Is), or [ReasonDenied]
// for any other error, including nil.
func ReasonOf(err error) DenyReason {
	for _, r := range denyReasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return ReasonDenied
}
