package exchange

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxPresentedGrantSize caps the signed grant a requester presents on
// [SecondaryBlocksProtocol]. A grant naming the most studies a grant may
// name (1,000 UIDs of up to 64 characters) encodes to about 70 KB.
const MaxPresentedGrantSize = 128 << 10

// GrantPresenter is a secondary holder's check of a grant that a
// requester presents: a grant signed by another facility (the study's
// original holder) to the requester. PresentGrant verifies what can be
// verified once per stream (the grant's form and signature, who signed it,
// whether this node serves as a secondary at all) and returns the
// [Authorizer] that then decides every block of the stream under that
// grant, so that expiry and a revocation that arrives meanwhile take
// effect at the next block. To refuse, it returns an error wrapping
// [ErrDenied] (or [ErrBadRequest] for a grant that does not decode); the
// error is mapped to a wire code and never sent as text.
type GrantPresenter interface {
	PresentGrant(ctx context.Context, p peer.ID, signed []byte) (Authorizer, error)
}

// FetchBlocksPresenting is [Service.FetchBlocks] from a secondary holder:
// a facility that is not the grant's issuer but holds the same ciphertext
// blocks. The signed grant (its issuer's signature, as the grantee
// received it) goes first on the stream; grant is its ID, cited in every
// request as usual. Errors are those of FetchBlocks; a refused grant comes
// back as a [*RemoteError] for the first block.
//
// Wire exchange on one stream of [SecondaryBlocksProtocol]: the client
// sends uvarint(len) | signed grant, 1 <= len <= MaxPresentedGrantSize,
// then block requests exactly as on [BlocksProtocol]; the server answers
// exactly as on BlocksProtocol, and refuses the grant by answering a
// single non-OK code before any block, then closing.
func (s *Service) FetchBlocksPresenting(ctx context.Context, p peer.ID, signed []byte, grant string, cids []cid.Cid, got func(c cid.Cid, data []byte) error) error {
	switch {
	case len(signed) == 0:
		return fmt.Errorf("fetch blocks: empty grant: %w", ErrBadRequest)
	case len(signed) > MaxPresentedGrantSize:
		return fmt.Errorf("fetch blocks: grant of %d bytes: %w", len(signed), ErrTooLarge)
	}
	if err := checkFetch(grant, cids); err != nil {
		return fmt.Errorf("fetch blocks: %w", err)
	}
	if len(cids) == 0 {
		return nil
	}
	return s.fetchOver(ctx, p, SecondaryBlocksProtocol, appendGrantFrame(nil, signed), grant, cids, got)
}

// appendGrantFrame appends uvarint(len(signed)) | signed to dst.
func appendGrantFrame(dst, signed []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(signed)))
	return append(dst, signed...)
}

// readGrantFrame reads the presented grant that opens a
// SecondaryBlocksProtocol stream: a minimal uvarint length of 1 to
// MaxPresentedGrantSize, then that many bytes. Errors wrap ErrBadRequest
// or ErrTooLarge when the frame is malformed; nothing is allocated for a
// length beyond the cap.
func readGrantFrame(br *bufio.Reader) ([]byte, error) {
	n, err := readLen(br, MaxPresentedGrantSize)
	switch {
	case err != nil:
		return nil, err
	case n == 0:
		return nil, fmt.Errorf("read presented grant: empty: %w", ErrBadRequest)
	}
	signed := make([]byte, n)
	if _, err := io.ReadFull(br, signed); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read presented grant: %w", err)
	}
	return signed, nil
}

func (s *Service) handleSecondaryBlocks(ctx context.Context, st network.Stream) {
	br := bufio.NewReaderSize(st, 4096)
	bw := bufio.NewWriterSize(idleStream{st}, 64<<10)
	// The whole grant frame, not just its length, must arrive within the
	// request deadline: a peer cannot hold the handler by trickling it.
	_ = st.SetReadDeadline(time.Now().Add(requestTimeout))
	if err := st.Scope().ReserveMemory(MaxPresentedGrantSize, network.ReservationPriorityAlways); err != nil {
		s.logOutcome("read presented grant", st, CodeUnavailable, err)
		s.reply(st, bw, CodeUnavailable)
		return
	}
	signed, err := readGrantFrame(br)
	st.Scope().ReleaseMemory(MaxPresentedGrantSize)
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrTooLarge):
		s.logOutcome("read presented grant", st, codeOf(err), err)
		s.reply(st, bw, codeOf(err))
		return
	case err != nil:
		_ = st.Reset()
		return
	}
	auth, err := s.secondary.PresentGrant(ctx, st.Conn().RemotePeer(), signed)
	if err != nil {
		s.logOutcome("check presented grant", st, codeOf(err), err)
		s.reply(st, bw, codeOf(err))
		return
	}
	s.serveRequests(ctx, st, br, bw, auth)
}
