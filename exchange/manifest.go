package exchange

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PushManifest sends one sealed manifest to p and waits for p's verdict.
// It returns nil only when p's ManifestHandler returned nil, that is when
// p stored the manifest durably; a refusal comes back as a [*RemoteError]
// (errors.Is(err, ErrRejected) when p could not verify or decrypt it).
// Any other error leaves it unknown whether p stored the manifest;
// pushing the same manifest again must be harmless.
//
// Wire exchange on one stream: the client sends uvarint(len) | sealed,
// with 1 <= len <= MaxManifestSize; the server reads exactly len bytes,
// answers one code byte and closes.
func (s *Service) PushManifest(ctx context.Context, p peer.ID, sealed []byte) error {
	switch {
	case len(sealed) == 0:
		return fmt.Errorf("push manifest: empty: %w", ErrBadRequest)
	case len(sealed) > MaxManifestSize:
		return fmt.Errorf("push manifest: %d bytes: %w", len(sealed), ErrTooLarge)
	}
	st, err := s.h.NewStream(ctx, p, ManifestProtocol)
	if err != nil {
		return fmt.Errorf("push manifest: open stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if err := pushManifest(st, sealed); err != nil {
		_ = st.Reset()
		if ctx.Err() != nil {
			return fmt.Errorf("push manifest to %s: %w", p, context.Cause(ctx))
		}
		return fmt.Errorf("push manifest to %s: %w", p, err)
	}
	_ = st.Close()
	return nil
}

func pushManifest(st network.Stream, sealed []byte) error {
	if err := st.Scope().SetService(ServiceName); err != nil {
		return fmt.Errorf("attach stream: %w", err)
	}
	// The peer answers only after storing the manifest, or early when it
	// refuses before reading it all (out of resources). An early answer
	// arrives while we are still writing, and the muxer would leave our
	// write blocked on a window the peer never reopens; reading the
	// answer concurrently lets a refusal end the write. The reader is
	// always waited for.
	_ = st.SetReadDeadline(time.Now().Add(transferTimeout(len(sealed)) + manifestHandleTimeout + idleTimeout))
	type answer struct {
		code Code
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(st, b[:])
		if err == nil && Code(b[0]) != CodeOK {
			_ = st.Reset() // ends a write still in progress
		}
		answered <- answer{Code(b[0]), err}
	}()
	_ = st.SetWriteDeadline(time.Now().Add(transferTimeout(len(sealed))))
	hdr := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64), uint64(len(sealed)))
	_, werr := st.Write(hdr)
	if werr == nil {
		_, werr = st.Write(sealed)
	}
	if werr != nil {
		_ = st.Reset() // ends the reader if no answer came
	}
	a := <-answered
	switch {
	case a.err == nil && a.code != CodeOK:
		// A refusal explains a failed write too.
		return &RemoteError{Code: a.code}
	case werr != nil:
		return fmt.Errorf("send: %w", werr)
	case a.err != nil:
		return fmt.Errorf("read reply: %w", a.err)
	}
	return nil
}

func (s *Service) handleManifest(ctx context.Context, st network.Stream) {
	bw := bufio.NewWriterSize(st, 16)
	sealed, release, ok := s.readFrame(st, bw, MaxManifestSize, transferTimeout, "receive manifest")
	if !ok {
		return
	}
	defer release()
	hctx, cancel := context.WithTimeout(ctx, manifestHandleTimeout)
	err := s.manifests.HandleManifest(hctx, st.Conn().RemotePeer(), sealed)
	cancel()
	code := codeOf(err)
	s.logOutcome("handle manifest", st, code, err)
	s.reply(st, bw, code)
}

// readFrame reads a handler's one request frame of 1..max bytes, its
// memory reserved in the stream's scope (release gives it back), within
// body(len) once the length is known; ok is false when the handler must
// stop (refusals are answered, a vanished peer reset).
func (s *Service) readFrame(st network.Stream, bw *bufio.Writer, max int, body func(int) time.Duration, what string) (frame []byte, release func(), ok bool) {
	br := bufio.NewReaderSize(st, 16)
	n, ok := s.readRequestLen(st, br, bw, max, what)
	if !ok {
		return nil, nil, false
	}
	if err := st.Scope().ReserveMemory(n, network.ReservationPriorityAlways); err != nil {
		s.logOutcome(what, st, CodeUnavailable, err)
		s.reply(st, bw, CodeUnavailable)
		return nil, nil, false
	}
	_ = st.SetReadDeadline(time.Now().Add(body(n)))
	frame = make([]byte, n)
	if _, err := io.ReadFull(br, frame); err != nil {
		// The peer went away or is too slow; there is nobody to tell.
		st.Scope().ReleaseMemory(n)
		_ = st.Reset()
		return nil, nil, false
	}
	return frame, func() { st.Scope().ReleaseMemory(n) }, true
}

// readRequestLen reads the length prefix of a handler's one request frame
// and answers a malformed, empty or oversized one itself (nothing is
// allocated for it); ok is false when the handler must stop.
func (s *Service) readRequestLen(st network.Stream, br *bufio.Reader, bw *bufio.Writer, max int, what string) (n int, ok bool) {
	_ = st.SetReadDeadline(time.Now().Add(requestTimeout))
	n, err := readLen(br, max)
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrBadRequest):
		s.logOutcome(what, st, codeOf(err), err)
		s.reply(st, bw, codeOf(err))
		return 0, false
	case err != nil:
		_ = st.Reset()
		return 0, false
	case n == 0:
		s.logOutcome(what, st, CodeBadRequest, errors.New("empty frame"))
		s.reply(st, bw, CodeBadRequest)
		return 0, false
	}
	return n, true
}
