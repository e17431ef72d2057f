package exchange

import (
	"bufio"
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// Authorizer decides, for every single block request, whether peer p may
// have block c under the grant it cites. It is called again for each block
// of a transfer, so a revocation stops the transfer at the next block.
// To refuse, return an error wrapping [ErrDenied] (or [ErrBadRequest] for
// a malformed grant reference); any other error is reported to the peer
// as [CodeInternal].
type Authorizer interface {
	AuthorizeBlock(ctx context.Context, p peer.ID, grant string, c cid.Cid) error
}

// BlockStore gives the ciphertext block for c; it returns an error
// wrapping [ErrBlockNotFound] when absent. The returned slice is only read,
// and not after the call that sends it returns.
type BlockStore interface {
	GetBlock(ctx context.Context, c cid.Cid) ([]byte, error)
}

// BlockAppender is a BlockStore that can also append a block to a buffer
// the caller gives (its errors are GetBlock's). The server then reads
// every block it sends into buffers it reuses, instead of allocating and
// dropping a megabyte per block: less work for the garbage collector and
// a smaller resident set on a holder serving several fetches.
type BlockAppender interface {
	AppendBlock(ctx context.Context, dst []byte, c cid.Cid) ([]byte, error)
}

// ManifestHandler takes a sealed (signed, then encrypted) manifest pushed
// by a peer. It returns only once the manifest is stored durably, or with
// an error: wrapping [ErrRejected] when the manifest fails verification or
// decryption, [ErrDenied] when the peer may not send manifests;
// anything else is reported as [CodeInternal]. The error is mapped to a
// wire code and never sent as text. sealed is not used by the Service
// after the call.
type ManifestHandler interface {
	HandleManifest(ctx context.Context, from peer.ID, sealed []byte) error
}

// ManifestSource answers a partner's request for the manifest of a study
// (a pull). It returns the sealed manifest, or an error wrapping
// [ErrDenied] when p holds no live grant for the study (also when the
// study does not exist, unless p may learn that: then [ErrNotFound]).
// The error is mapped to a wire code and never sent as text.
type ManifestSource interface {
	ManifestFor(ctx context.Context, p peer.ID, study string) ([]byte, error)
}

// ServiceConfig configures [NewService].
type ServiceConfig struct {
	// Auth and Blocks serve BlocksProtocol; if either is nil the protocol
	// is not served (the node can still fetch).
	Auth   Authorizer
	Blocks BlockStore
	// Secondary checks grants presented on SecondaryBlocksProtocol; if it
	// (or Blocks) is nil, that protocol is not served (the node can still
	// fetch from secondary holders).
	Secondary GrantPresenter
	// Manifests receives pushed manifests; if nil, ManifestProtocol is
	// not served (the node can still push).
	Manifests ManifestHandler
	// Source answers manifest pulls; if nil, ManifestPullProtocol is not
	// served (the node can still pull).
	Source ManifestSource
	// Asks answers partners' signed messages; if nil, AskProtocol is not
	// served (the node can still ask).
	Asks AskHandler
	// Logger receives refusals (debug) and internal errors (warn); nil
	// discards.
	Logger *slog.Logger
	// UploadRate caps, in bytes per second, the block bytes served to all
	// peers together (hospital WAN links; also lets tests slow a transfer
	// down). 0 or less means unlimited.
	UploadRate int64
}

// rateChunk is the granularity of UploadRate: block data is released in
// pieces of at most this size, and it is also the limiter's burst.
const rateChunk = 32 << 10

// Service speaks ManifestProtocol and BlocksProtocol on a host: it serves
// peers' requests through the handlers in its config and makes requests
// of its own. Its methods are safe for concurrent use.
type Service struct {
	h         host.Host
	auth      Authorizer
	blocks    BlockStore
	manifests ManifestHandler
	source    ManifestSource
	asks      AskHandler
	secondary GrantPresenter
	log       *slog.Logger
	limiter   *rate.Limiter // nil: unlimited

	// ctx is canceled by Close; handlers' contexts derive from it, and
	// its cancellation resets their streams.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup // stream handlers in flight
}

// NewService registers the stream handlers of the protocols that cfg can
// serve on h. Close the Service before closing h.
func NewService(h host.Host, cfg ServiceConfig) *Service {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		h:         h,
		auth:      cfg.Auth,
		blocks:    cfg.Blocks,
		manifests: cfg.Manifests,
		source:    cfg.Source,
		asks:      cfg.Asks,
		secondary: cfg.Secondary,
		log:       log.With("component", "exchange"),
		ctx:       ctx,
		cancel:    cancel,
	}
	if cfg.UploadRate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.UploadRate), rateChunk)
	}
	if s.manifests != nil {
		h.SetStreamHandler(ManifestProtocol, s.serve(s.handleManifest))
	}
	if s.source != nil {
		h.SetStreamHandler(ManifestPullProtocol, s.serve(s.handlePull))
	}
	if s.auth != nil && s.blocks != nil {
		h.SetStreamHandler(BlocksProtocol, s.serve(s.handleBlocks))
	}
	if s.secondary != nil && s.blocks != nil {
		h.SetStreamHandler(SecondaryBlocksProtocol, s.serve(s.handleSecondaryBlocks))
	}
	if s.asks != nil {
		h.SetStreamHandler(AskProtocol, s.serve(s.handleAsk))
	}
	return s
}

// Close removes the stream handlers, cancels the handlers in flight
// (their contexts end and their streams are reset) and waits for them to
// return. It does not close the host. Requests made with PushManifest and
// FetchBlocks are governed by their own contexts.
func (s *Service) Close() error {
	s.h.RemoveStreamHandler(ManifestProtocol)
	s.h.RemoveStreamHandler(ManifestPullProtocol)
	s.h.RemoveStreamHandler(BlocksProtocol)
	s.h.RemoveStreamHandler(AskProtocol)
	s.h.RemoveStreamHandler(SecondaryBlocksProtocol)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.running.Wait()
	return nil
}

// serve wraps a protocol handler so that Close can account for it.
func (s *Service) serve(handle func(ctx context.Context, st network.Stream)) network.StreamHandler {
	return func(st network.Stream) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = st.Reset()
			return
		}
		s.running.Add(1)
		s.mu.Unlock()
		defer s.running.Done()

		// Close must never wait on a peer: resetting unblocks any read or
		// write the handler is stuck in.
		stop := context.AfterFunc(s.ctx, func() { _ = st.Reset() })
		defer stop()
		if err := st.Scope().SetService(ServiceName); err != nil {
			s.log.Debug("attach stream to service", "protocol", st.Protocol(), "peer", st.Conn().RemotePeer(), "err", err)
			_ = st.Reset()
			return
		}
		handle(s.ctx, st)
	}
}

// reply ends a stream with a final code: the peer reads the code, then
// EOF.
func (s *Service) reply(st network.Stream, bw *bufio.Writer, code Code) {
	_ = st.SetWriteDeadline(time.Now().Add(idleTimeout))
	if err := bw.WriteByte(byte(code)); err != nil {
		_ = st.Reset()
		return
	}
	if err := bw.Flush(); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

// logOutcome logs why a request was refused, at a level that matches who
// is at fault. The error is a local one and stays local.
func (s *Service) logOutcome(msg string, st network.Stream, code Code, err error, attrs ...any) {
	if code == CodeOK {
		return
	}
	attrs = append(attrs, "protocol", st.Protocol(), "peer", st.Conn().RemotePeer(), "code", code.String(), "err", err)
	if code == CodeInternal {
		s.log.Warn(msg, attrs...)
		return
	}
	s.log.Debug(msg, attrs...)
}
