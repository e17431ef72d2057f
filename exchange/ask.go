package exchange

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxAskSize caps a signed message and its signed answer on AskProtocol:
// access requests, their status and decisions, patient queries and their
// minimal answers are all far smaller.
const MaxAskSize = 64 << 10

// askHandleTimeout bounds how long the handler may take to answer (it
// commits the request and its audit entry first).
const askHandleTimeout = 30 * time.Second

// AskHandler answers a partner's signed message (an access request, a
// request's status, a patient query; internal/wire says what each is).
// It returns the signed answer, or an error wrapping [ErrBadRequest] (the
// message is malformed, not signed by from, not for us, expired or a
// replay), [ErrDenied] (from may not ask this) or [ErrUnavailable]
// (rate-limited, try later). The error is mapped to a wire code and never
// sent as text. msg is not used by the Service after the call.
type AskHandler interface {
	HandleAsk(ctx context.Context, from peer.ID, msg []byte) ([]byte, error)
}

// Ask sends one signed message to p and returns p's signed answer as
// received (the caller verifies it). A refusal comes back as a
// [*RemoteError].
//
// Wire exchange on one stream: the client sends uvarint(len) | msg with
// 1 <= len <= MaxAskSize; the server answers a code byte and, if it is
// CodeOK, uvarint(len) | answer with 1 <= len <= MaxAskSize, and closes.
func (s *Service) Ask(ctx context.Context, p peer.ID, msg []byte) ([]byte, error) {
	switch {
	case len(msg) == 0:
		return nil, fmt.Errorf("ask: empty message: %w", ErrBadRequest)
	case len(msg) > MaxAskSize:
		return nil, fmt.Errorf("ask: %d bytes: %w", len(msg), ErrTooLarge)
	}
	st, err := s.h.NewStream(ctx, p, AskProtocol)
	if err != nil {
		return nil, fmt.Errorf("ask: open stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	ans, err := ask(st, msg)
	if err != nil {
		_ = st.Reset()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ask %s: %w", p, context.Cause(ctx))
		}
		return nil, fmt.Errorf("ask %s: %w", p, err)
	}
	_ = st.Close()
	return ans, nil
}

func ask(st network.Stream, msg []byte) ([]byte, error) {
	return roundTrip(st, msg, MaxAskSize, askHandleTimeout+idleTimeout, func(int) time.Duration { return idleTimeout })
}

func (s *Service) handleAsk(ctx context.Context, st network.Stream) {
	bw := bufio.NewWriterSize(st, 16)
	msg, release, ok := s.readFrame(st, bw, MaxAskSize, func(int) time.Duration { return requestTimeout }, "read ask")
	if !ok {
		return
	}
	defer release()
	hctx, cancel := context.WithTimeout(ctx, askHandleTimeout)
	ans, err := s.asks.HandleAsk(hctx, st.Conn().RemotePeer(), msg)
	cancel()
	switch {
	case err != nil:
	case len(ans) == 0:
		err = errors.New("ask handler returned an empty answer")
	case len(ans) > MaxAskSize:
		err = fmt.Errorf("ask handler returned %d bytes, more than MaxAskSize", len(ans))
	}
	if err != nil {
		code := codeOf(err)
		s.logOutcome("answer ask", st, code, err)
		s.reply(st, bw, code)
		return
	}
	answerFrame(st, ans, idleTimeout)
}
