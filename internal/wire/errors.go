package wire

import "errors"

// Reason is the short, stable code of a manifest rejection. Audit entries
// record it, and a node may log it; it never holds patient data or bytes
// the peer sent.
type Reason string

// Reasons a manifest is rejected. [ParseManifest] and
// [Manifest.CheckParties] return the ones about the manifest itself; the
// others are for the receiving node to use, so that every rejection the
// audit log records has a code from this one list.
const (
	ReasonNotPartner    Reason = "not-partner"    // the sender is not a partner facility
	ReasonOpen          Reason = "open"           // the sealed envelope does not open (crypto.Open)
	ReasonWrongSigner   Reason = "wrong-signer"   // the envelope is signed by another facility than the sender
	ReasonMalformed     Reason = "malformed"      // the payload does not decode, or its structure is wrong
	ReasonFormat        Reason = "format"         // an unsupported manifest format version
	ReasonWrongIssuer   Reason = "wrong-issuer"   // the issuer field names another facility than the signer
	ReasonBadGrant      Reason = "bad-grant"      // the grant does not verify, or is not from the sender to us for this study
	ReasonBadRevocation Reason = "bad-revocation" // the revocation is missing, does not verify or does not match the grant
	ReasonStoreFailed   Reason = "store-failed"   // a local failure storing an acceptable manifest

	// ReasonUnknown is what [ReasonOf] returns for an error that is not an
	// [*Error]: its text might quote the peer, so it never becomes a
	// reason.
	ReasonUnknown Reason = "unknown"
)

// Error is a rejection with its [Reason]. Msg is a fixed text that never
// quotes bytes the peer sent; Err, if set, is the underlying cause (for
// [ReasonOpen] and [ReasonStoreFailed]) and is matched by errors.Is and
// errors.As.
type Error struct {
	Reason Reason
	Msg    string
	Err    error
}

// Error returns "reason: msg", or "reason: msg: err" with a cause, or
// "reason: err" with a cause and no Msg.
func (e *Error) Error() string {
	s := string(e.Reason)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason of the first [*Error] in err's chain; ""
// for nil and [ReasonUnknown] for an error without one.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonUnknown
}

func reject(r Reason, msg string) error { return &Error{Reason: r, Msg: msg} }
