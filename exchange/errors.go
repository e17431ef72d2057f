package exchange

import (
	"context"
	"errors"
	"strconv"
)

// Code is the one byte a peer learns about the outcome of a request. It is
// the only error information that crosses the wire: handlers' error texts
// never do.
type Code uint8

// Wire codes. Their numeric values are part of the protocols and never
// change; new codes are only appended.
const (
	CodeOK          Code = 0 // success
	CodeBadRequest  Code = 1 // malformed request
	CodeDenied      Code = 2 // the peer may not have this (no live grant, not a partner)
	CodeNotFound    Code = 3 // the peer does not hold this block
	CodeTooLarge    Code = 4 // a frame exceeded its size cap
	CodeRejected    Code = 5 // the manifest failed verification or decryption
	CodeUnavailable Code = 6 // temporarily unable to serve (shutting down, out of resources); retry later
	CodeInternal    Code = 7 // anything else; details stay in the serving side's log
)

// Sentinel errors. A [*RemoteError] matches, with [errors.Is], the first
// sentinel listed for its code in codeTable; handlers' errors are mapped
// onto codes by the same table.
var (
	// ErrDenied means the peer may not have what it asked for. An
	// [Authorizer] or [ManifestHandler] returns an error wrapping it to
	// refuse; the requesting side then gets a [*RemoteError] matching it.
	ErrDenied = errors.New("denied")

	// ErrNotFound means the remote peer does not hold a requested block.
	// It is what a [*RemoteError] with [CodeNotFound] matches.
	ErrNotFound = errors.New("not found")

	// ErrRejected means the receiver of a manifest could not verify or
	// decrypt it. A [ManifestHandler] returns an error wrapping it; the
	// pushing side gets a [*RemoteError] matching it, and should not
	// retry the same bytes.
	ErrRejected = errors.New("manifest rejected")

	// ErrBlockNotFound is the [BlockStore] contract for an absent block:
	// GetBlock returns an error wrapping it, and the peer is told
	// [CodeNotFound]. It never comes back from the wire (see ErrNotFound).
	ErrBlockNotFound = errors.New("block not found")

	// ErrBadBlock means a peer sent a block whose multihash does not match
	// the CID it was requested under. The block is dropped before the
	// caller sees it; the peer is faulty or hostile.
	ErrBadBlock = errors.New("block does not match its cid")

	// ErrBadRequest means a request was malformed: locally (invalid
	// arguments, nothing is sent) or as judged by the peer.
	ErrBadRequest = errors.New("bad request")

	// ErrTooLarge means a frame exceeded its size cap: one we were about
	// to send (nothing is sent), one a peer announced (nothing was
	// allocated), or one the peer refused with [CodeTooLarge].
	ErrTooLarge = errors.New("frame too large")

	// ErrUnavailable means the peer could not serve the request for now
	// (shutting down, resource limits); the request may be retried later.
	// A handler may return an error wrapping it; context errors are
	// reported the same way.
	ErrUnavailable = errors.New("unavailable")
)

// codeTable is the one mapping between local errors and wire codes.
// Handlers' errors map onto the first row (in this order) one of whose
// errors they wrap, so that an error wrapping both ErrDenied and
// ErrBlockNotFound says "denied" and does not reveal that the block
// exists; anything unmatched is CodeInternal. A RemoteError unwraps to
// the first error of its row.
var codeTable = []struct {
	code Code
	name string
	errs []error
}{
	{CodeOK, "ok", nil},
	{CodeDenied, "denied", []error{ErrDenied}},
	{CodeRejected, "rejected", []error{ErrRejected}},
	{CodeBadRequest, "bad request", []error{ErrBadRequest}},
	{CodeNotFound, "not found", []error{ErrNotFound, ErrBlockNotFound}},
	{CodeTooLarge, "too large", []error{ErrTooLarge}},
	{CodeUnavailable, "unavailable", []error{ErrUnavailable, context.Canceled, context.DeadlineExceeded}},
	{CodeInternal, "internal error", nil},
}

// codeOf maps a handler's error onto the code sent to the peer.
func codeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	for _, row := range codeTable {
		for _, e := range row.errs {
			if errors.Is(err, e) {
				return row.code
			}
		}
	}
	return CodeInternal
}

// String returns the code's name as used in [RemoteError.Error].
func (c Code) String() string {
	for _, row := range codeTable {
		if row.code == c {
			return row.name
		}
	}
	return "code " + strconv.Itoa(int(c))
}

// RemoteError is a refusal received from a peer: the peer answered, with
// Code. Callers test for the reason with errors.Is against the sentinels
// (errors.Is(err, ErrDenied)) or read Code with errors.As.
type RemoteError struct {
	Code Code
}

// Error returns, for example, "peer refused: denied".
func (e *RemoteError) Error() string {
	return "peer refused: " + e.Code.String()
}

// Unwrap returns the sentinel for e.Code ([ErrDenied] for [CodeDenied],
// ...), or nil for codes that have none ([CodeInternal], unknown codes).
func (e *RemoteError) Unwrap() error {
	for _, row := range codeTable {
		if row.code == e.Code && len(row.errs) > 0 {
			return row.errs[0]
		}
	}
	return nil
}
