package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/transfer"
)

// fetchSentence says why a fetch from holder failed, or is waiting, in
// words a clinician can act on, in place of the layers' raw errors
// ("block bafk…: peer refused: denied"). The raw error stays in the log.
func fetchSentence(err error, holder string) string {
	var re *exchange.RemoteError
	var oe *otherOriginError
	var df *diskFullError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &oe):
		return oe.Error()
	case errors.As(err, &df):
		return "this node's disk is full: " + df.Error()
	case errors.Is(err, errIntegrity):
		return fmt.Sprintf("%s sent data that does not verify against its signed manifest; it was not kept (tell %s's administrators)", holder, holder)
	case errors.Is(err, exchange.ErrBadBlock):
		return fmt.Sprintf("%s sent a block that does not verify (%v); it was not kept (tell %s's administrators)", holder, exchange.ErrBadBlock, holder)
	case errors.Is(err, transfer.ErrCorrupt):
		return fmt.Sprintf("%s sent a block of another size than its signed manifest says; it was not kept (tell %s's administrators)", holder, holder)
	case errors.Is(err, errHolderUnreachable):
		return fmt.Sprintf("%s could not be reached for %s; what arrived is kept: run the same fetch again to resume", holder, retryText(err))
	case errors.Is(err, context.Canceled):
		return "the fetch was stopped; what arrived is kept: run it again to resume"
	case errors.As(err, &re):
		switch re.Code {
		case exchange.CodeDenied:
			return fmt.Sprintf("%s refused the transfer: its grant was revoked or has expired, or it no longer counts this facility as a partner (ask %s for a new grant)", holder, holder)
		case exchange.CodeNotFound:
			return fmt.Sprintf("%s no longer holds part of the study (it may have been deleted there)", holder)
		case exchange.CodeUnavailable:
			return fmt.Sprintf("%s is busy or shutting down", holder)
		case exchange.CodeRejected:
			return fmt.Sprintf("%s rejected this facility's request as malformed", holder)
		}
		return fmt.Sprintf("%s failed to serve the study (its log says why)", holder)
	}
	switch transportProblem(err) {
	case noConnection:
		return fmt.Sprintf("cannot connect to %s: it is not running, not reachable from here, or no longer counts this facility as a partner", holder)
	case noAnswer:
		return fmt.Sprintf("%s did not answer in time", holder)
	}
	return "the fetch failed on this node: " + err.Error()
}

// retryText is the retry period an errHolderUnreachable names, for the
// sentence (the error says "holder unreachable for 5m0s …").
func retryText(err error) string {
	s := err.Error()
	if _, rest, ok := strings.Cut(s, "holder unreachable for "); ok {
		if f := strings.Fields(rest); len(f) > 0 {
			return strings.TrimSuffix(f[0], "s") + "s (exchange.fetch_retry_for)"
		}
	}
	return "exchange.fetch_retry_for"
}

// sentenceError is an error shown as a sentence that still unwraps to
// the layers' error (for the API's error codes and the log).
type sentenceError struct {
	msg string
	err error
}

func (e *sentenceError) Error() string { return e.msg }
func (e *sentenceError) Unwrap() error { return e.err }

// deliverySentence says why a manifest did not reach a partner, for the
// outbox and status listings (the raw error is in the log).
func deliverySentence(err error) string {
	var re *exchange.RemoteError
	if errors.As(err, &re) {
		switch re.Code {
		case exchange.CodeRejected:
			return "the partner could not open or verify it (does it still list this facility as a partner, with its current keys?)"
		case exchange.CodeDenied:
			return "the partner refused it (it does not count this facility as a partner)"
		case exchange.CodeUnavailable:
			return "the partner is busy or shutting down"
		}
		return "the partner failed to take it (its log says why)"
	}
	switch transportProblem(err) {
	case noConnection:
		return "cannot connect to the partner: it is not running, or not reachable from here"
	case noAnswer:
		return "the partner did not answer in time"
	}
	return "delivery failed on this node: " + err.Error()
}

// What went wrong reaching a partner, as libp2p's errors (text only) say.
const (
	otherProblem = iota
	noConnection // no address, refused, the handshake or the gater failed
	noAnswer     // connected, but no answer in time
)

func transportProblem(err error) int {
	s := err.Error()
	switch {
	case strings.Contains(s, "no addresses"), strings.Contains(s, "connection refused"), strings.Contains(s, "dial"),
		strings.Contains(s, "failed to negotiate"), strings.Contains(s, "gater"):
		return noConnection
	case strings.Contains(s, "deadline exceeded"), strings.Contains(s, "timeout"):
		return noAnswer
	}
	return otherProblem
}
