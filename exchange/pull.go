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

// MaxStudySize is the longest study reference a pull may name (a DICOM
// UID is at most 64 bytes).
const MaxStudySize = 256

// PullManifest asks p for the sealed manifest of study. p answers only
// under a live grant to us; a refusal comes back as a [*RemoteError]
// (errors.Is(err, ErrDenied) or ErrNotFound). The manifest is returned as
// received: the caller verifies and decrypts it.
//
// Wire exchange on one stream: the client sends uvarint(len) | study,
// with 1 <= len <= MaxStudySize; the server answers a code byte and, if it
// is CodeOK, uvarint(len) | sealed with 1 <= len <= MaxManifestSize, and
// closes.
func (s *Service) PullManifest(ctx context.Context, p peer.ID, study string) ([]byte, error) {
	if len(study) == 0 || len(study) > MaxStudySize {
		return nil, fmt.Errorf("pull manifest: study reference of %d bytes: %w", len(study), ErrBadRequest)
	}
	st, err := s.h.NewStream(ctx, p, ManifestPullProtocol)
	if err != nil {
		return nil, fmt.Errorf("pull manifest: open stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	sealed, err := pullManifest(st, study)
	if err != nil {
		_ = st.Reset()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pull manifest from %s: %w", p, context.Cause(ctx))
		}
		return nil, fmt.Errorf("pull manifest from %s: %w", p, err)
	}
	_ = st.Close()
	return sealed, nil
}

func pullManifest(st network.Stream, study string) ([]byte, error) {
	// The peer may have to seal the manifest first.
	return roundTrip(st, []byte(study), MaxManifestSize, manifestHandleTimeout+idleTimeout, transferTimeout)
}

// roundTrip is the client side of a one-frame question: it sends
// uvarint(len) | req, reads the answer's code within wait and, after
// CodeOK, one frame of 1..max bytes within body(len).
func roundTrip(st network.Stream, req []byte, max int, wait time.Duration, body func(int) time.Duration) ([]byte, error) {
	if err := st.Scope().SetService(ServiceName); err != nil {
		return nil, fmt.Errorf("attach stream: %w", err)
	}
	_ = st.SetWriteDeadline(time.Now().Add(idleTimeout))
	frame := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(req)), uint64(len(req)))
	if _, err := st.Write(append(frame, req...)); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	_ = st.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReaderSize(st, 16)
	code, err := br.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if c := Code(code); c != CodeOK {
		return nil, &RemoteError{Code: c}
	}
	n, err := readLen(br, max)
	switch {
	case err != nil:
		return nil, fmt.Errorf("read reply: %w", err)
	case n == 0:
		return nil, fmt.Errorf("read reply: empty answer: %w", ErrBadRequest)
	}
	if err := st.Scope().ReserveMemory(n, network.ReservationPriorityAlways); err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	defer st.Scope().ReleaseMemory(n)
	_ = st.SetReadDeadline(time.Now().Add(body(n)))
	ans := make([]byte, n)
	if _, err := io.ReadFull(br, ans); err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	return ans, nil
}

// answerFrame ends a stream with CodeOK and one frame of data, written
// within deadline.
func answerFrame(st network.Stream, data []byte, deadline time.Duration) {
	_ = st.SetWriteDeadline(time.Now().Add(deadline))
	hdr := binary.AppendUvarint([]byte{byte(CodeOK)}, uint64(len(data)))
	if _, err := st.Write(hdr); err != nil {
		_ = st.Reset()
		return
	}
	if _, err := st.Write(data); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (s *Service) handlePull(ctx context.Context, st network.Stream) {
	bw := bufio.NewWriterSize(st, 16)
	br := bufio.NewReaderSize(st, 16)
	n, ok := s.readRequestLen(st, br, bw, MaxStudySize, "read manifest pull")
	if !ok {
		return
	}
	study := make([]byte, n)
	if _, err := io.ReadFull(br, study); err != nil {
		_ = st.Reset()
		return
	}
	hctx, cancel := context.WithTimeout(ctx, manifestHandleTimeout)
	sealed, err := s.source.ManifestFor(hctx, st.Conn().RemotePeer(), string(study))
	cancel()
	switch {
	case err != nil:
	case len(sealed) == 0:
		err = errors.New("manifest source returned an empty manifest")
	case len(sealed) > MaxManifestSize:
		err = fmt.Errorf("manifest source returned %d bytes, more than MaxManifestSize", len(sealed))
	}
	if err != nil {
		code := codeOf(err)
		// The study reference is not logged: it names a patient's study.
		s.logOutcome("answer manifest pull", st, code, err)
		s.reply(st, bw, code)
		return
	}
	answerFrame(st, sealed, transferTimeout(len(sealed)))
}
