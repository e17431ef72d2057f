package exchange

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// FetchBlocks asks p for the blocks, citing grant, and calls got for each
// block in the order of cids. Every block is verified against its CID
// (the multihash is recomputed) before got sees it; got may keep data. It
// returns on the first error: a [*RemoteError] when p refuses a block
// (errors.Is(err, ErrDenied), ErrNotFound, ...), an error wrapping
// [ErrBadBlock] when p sent a block that does not match, got's own error
// unchanged, or a transport error. Blocks handed to got before an error
// are good, so a caller resumes by fetching the remaining CIDs.
//
// got runs on the caller's goroutine, one block at a time, while up to
// four further blocks are read and verified ahead of it; the whole list
// goes over one stream, which measured as fast as several on loopback.
//
// CIDs must be defined, at most 128 bytes long, and use SHA2-256,
// SHA2-512, SHA3-256, SHA3-512 or BLAKE3; grant must be at most
// MaxGrantSize bytes. Otherwise nothing is sent and the error wraps
// ErrBadRequest.
//
// Wire exchange on one stream: the client sends block requests (see
// blockRequest; at most MaxBlocksPerRequest CIDs each), with at most two
// outstanding, and closes when done. For each CID of a request, in order,
// the server answers a code byte and, if the code is CodeOK, uvarint(len)
// and the block (len <= MaxBlockSize). After a non-OK code it closes the
// stream. It waits for the next request, or EOF, after the last block.
func (s *Service) FetchBlocks(ctx context.Context, p peer.ID, grant string, cids []cid.Cid, got func(c cid.Cid, data []byte) error) error {
	if err := checkFetch(grant, cids); err != nil {
		return fmt.Errorf("fetch blocks: %w", err)
	}
	if len(cids) == 0 {
		return nil
	}
	return s.fetchOver(ctx, p, BlocksProtocol, nil, grant, cids, got)
}

// fetchOver runs a block exchange on a new stream of protocol proto to p;
// preamble, if any, is written before the first request.
func (s *Service) fetchOver(ctx context.Context, p peer.ID, proto protocol.ID, preamble []byte, grant string, cids []cid.Cid, got func(c cid.Cid, data []byte) error) error {
	st, err := s.h.NewStream(ctx, p, proto)
	if err != nil {
		return fmt.Errorf("fetch blocks: open stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if err := fetchBlocks(st, preamble, grant, cids, got); err != nil {
		_ = st.Reset()
		var gotErr gotError
		if errors.As(err, &gotErr) {
			return gotErr.err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("fetch blocks from %s: %w", p, context.Cause(ctx))
		}
		return fmt.Errorf("fetch blocks from %s: %w", p, err)
	}
	_ = st.Close()
	return nil
}

func checkFetch(grant string, cids []cid.Cid) error {
	if len(grant) > MaxGrantSize {
		return fmt.Errorf("grant of %d bytes: %w", len(grant), ErrBadRequest)
	}
	for _, c := range cids {
		if err := checkCID(c); err != nil {
			return err
		}
	}
	return nil
}

// gotError carries the callback's error through fetchBlocks unchanged.
type gotError struct{ err error }

func (e gotError) Error() string { return e.err.Error() }

// fetchAhead is how many verified blocks the reader may hold ahead of
// got: reading and verifying the next blocks overlaps with got storing
// the last one. Each holds at most MaxBlockSize, reserved with the
// resource manager.
const fetchAhead = 4

// fetchedBlock is a verified block on its way to got.
type fetchedBlock struct {
	c    cid.Cid
	data []byte
}

// fetchBlocks runs the exchange on st: a reader goroutine (owned here,
// always waited for) sends requests, reads and verifies blocks, while
// this goroutine hands them to got in order.
func fetchBlocks(st network.Stream, preamble []byte, grant string, cids []cid.Cid, got func(cid.Cid, []byte) error) error {
	if err := st.Scope().SetService(ServiceName); err != nil {
		return fmt.Errorf("attach stream: %w", err)
	}
	var batches [][]cid.Cid
	for len(cids) > 0 {
		n := min(len(cids), MaxBlocksPerRequest)
		batches = append(batches, cids[:n])
		cids = cids[n:]
	}
	ready := make(chan fetchedBlock, fetchAhead)
	stop := make(chan struct{})
	done := make(chan struct{})
	var readErr error
	go func() {
		defer close(done)
		defer close(ready)
		readErr = readBlocks(st, preamble, grant, batches, ready, stop)
	}()
	for b := range ready {
		err := got(b.c, b.data)
		st.Scope().ReleaseMemory(len(b.data))
		if err != nil {
			close(stop)
			_ = st.Reset() // unblocks the reader if it is in a read
			for b := range ready {
				st.Scope().ReleaseMemory(len(b.data))
			}
			<-done
			return gotError{err}
		}
	}
	<-done
	return readErr
}

// errStopped ends the reader when got failed; it is never returned.
var errStopped = errors.New("stopped")

// readBlocks sends the requests, at most two outstanding, and reads the
// answers. Blocks go to ready verified, with their memory reserved.
func readBlocks(st network.Stream, preamble []byte, grant string, batches [][]cid.Cid, ready chan<- fetchedBlock, stop <-chan struct{}) error {
	w := idleStream{st}
	// A failed send of a pipelined request is not reported at once: the
	// peer may have refused a block of the previous request and closed,
	// and that refusal, still to be read, is the real answer.
	var sendErr error
	req := append([]byte(nil), preamble...) // the first write carries the preamble
	send := func(i int) {
		if i >= len(batches) || sendErr != nil {
			return
		}
		req = appendBlockRequest(req, grant, batches[i])
		_, sendErr = w.Write(req)
		req = req[:0]
	}
	send(0)
	if sendErr != nil {
		return fmt.Errorf("send request: %w", sendErr)
	}
	send(1)
	br := bufio.NewReaderSize(w, 64<<10)
	for i, batch := range batches {
		if i > 0 {
			send(i + 1)
		}
		for _, c := range batch {
			data, err := readBlock(st, br, c)
			if err != nil {
				return err
			}
			select {
			case ready <- fetchedBlock{c, data}:
			case <-stop:
				st.Scope().ReleaseMemory(len(data))
				return errStopped
			}
		}
	}
	return nil
}

// readBlock reads and verifies the server's answer for c. The returned
// block's memory is reserved in st's scope; the caller releases it.
func readBlock(st network.Stream, br *bufio.Reader, c cid.Cid) ([]byte, error) {
	code, err := br.ReadByte()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read block %s: %w", c, err)
	}
	if Code(code) != CodeOK {
		return nil, fmt.Errorf("block %s: %w", c, &RemoteError{Code: Code(code)})
	}
	n, err := readLen(br, MaxBlockSize)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read block %s: %w", c, err)
	}
	if err := st.Scope().ReserveMemory(n, network.ReservationPriorityAlways); err != nil {
		return nil, fmt.Errorf("read block %s: %w", c, err)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(br, data); err != nil {
		st.Scope().ReleaseMemory(n)
		return nil, fmt.Errorf("read block %s: %w", c, err)
	}
	if err := verifyBlock(c, data); err != nil {
		st.Scope().ReleaseMemory(n)
		return nil, err
	}
	return data, nil
}

func (s *Service) handleBlocks(ctx context.Context, st network.Stream) {
	br := bufio.NewReaderSize(st, 4096)
	bw := bufio.NewWriterSize(idleStream{st}, 64<<10)
	s.serveRequests(ctx, st, br, bw, s.auth)
}

// serveRequests answers block request frames on st until a clean end of
// stream, asking auth before every block.
func (s *Service) serveRequests(ctx context.Context, st network.Stream, br *bufio.Reader, bw *bufio.Writer, auth Authorizer) {
	p := st.Conn().RemotePeer()
	for {
		_ = st.SetReadDeadline(time.Now().Add(requestTimeout))
		req, err := readBlockRequest(br)
		switch {
		case isEOF(err):
			_ = st.Close()
			return
		case errors.Is(err, ErrBadRequest), errors.Is(err, ErrTooLarge):
			s.logOutcome("read block request", st, codeOf(err), err)
			s.reply(st, bw, codeOf(err))
			return
		case err != nil:
			_ = st.Reset()
			return
		}
		for _, c := range req.cids {
			code, err := s.serveBlock(ctx, bw, auth, p, req.grant, c)
			if err != nil {
				_ = st.Reset()
				return
			}
			if code != CodeOK {
				s.reply(st, bw, code)
				return
			}
		}
		if err := bw.Flush(); err != nil {
			_ = st.Reset()
			return
		}
	}
}

// sendBufs are the server's block buffers (BlockAppender).
var sendBufs = sync.Pool{New: func() any { b := make([]byte, 0, MaxBlockSize); return &b }}

// serveBlock writes the answer for one block to bw. It returns the code
// to end the stream with when the block is refused, or an error when the
// stream broke.
func (s *Service) serveBlock(ctx context.Context, bw *bufio.Writer, auth Authorizer, p peer.ID, grant string, c cid.Cid) (Code, error) {
	if err := auth.AuthorizeBlock(ctx, p, grant, c); err != nil {
		code := codeOf(err)
		s.logBlock("authorize block", p, c, code, err)
		return code, nil
	}
	var data []byte
	var err error
	if ba, ok := s.blocks.(BlockAppender); ok {
		buf := sendBufs.Get().(*[]byte)
		defer func() { *buf = data[:0]; sendBufs.Put(buf) }()
		data, err = ba.AppendBlock(ctx, (*buf)[:0], c)
	} else {
		data, err = s.blocks.GetBlock(ctx, c)
	}
	if err != nil {
		code := codeOf(err)
		s.logBlock("get block", p, c, code, err)
		return code, nil
	}
	if len(data) > MaxBlockSize {
		s.log.Warn("get block: block larger than MaxBlockSize", "cid", c, "size", len(data))
		return CodeInternal, nil
	}
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = byte(CodeOK)
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(data)))
	if _, err := bw.Write(hdr[:n]); err != nil {
		return 0, err
	}
	if s.limiter == nil {
		_, err := bw.Write(data)
		return CodeOK, err
	}
	for len(data) > 0 {
		n := min(len(data), rateChunk)
		if err := s.limiter.WaitN(ctx, n); err != nil {
			return 0, err
		}
		if _, err := bw.Write(data[:n]); err != nil {
			return 0, err
		}
		// Sent now, not when the buffer fills, so the peer sees the
		// shaped rate rather than bursts.
		if err := bw.Flush(); err != nil {
			return 0, err
		}
		data = data[n:]
	}
	return CodeOK, nil
}

// logBlock logs a refused block: at warn level when the fault is ours
// (CodeInternal), at debug level otherwise, since refusing peers is the
// Authorizer's job and it keeps its own audit trail.
func (s *Service) logBlock(msg string, p peer.ID, c cid.Cid, code Code, err error) {
	level := slog.LevelDebug
	if code == CodeInternal {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, msg, "peer", p, "cid", c, "code", code.String(), "err", err)
}
