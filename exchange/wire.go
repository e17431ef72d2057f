package exchange

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/multiformats/go-multihash"
)

// Size caps. Every length read from the wire is checked against its cap
// before anything is allocated for it.
const (
	// MaxBlockSize is the largest block accepted on the wire: blocks are
	// at most 1 MiB of age ciphertext, plus room for age's overhead.
	MaxBlockSize = 1<<20 + 4096

	// MaxManifestSize is the largest sealed manifest accepted.
	MaxManifestSize = 16 << 20

	// MaxBlocksPerRequest is the most CIDs in one block request.
	// [Service.FetchBlocks] splits longer lists.
	MaxBlocksPerRequest = 256

	// MaxGrantSize is the longest grant reference a request may cite.
	MaxGrantSize = 4096

	// maxCIDSize bounds one CID's binary form: a CIDv1 with a 512-bit
	// digest is 68 bytes.
	maxCIDSize = 128

	// maxRequestSize bounds a block request body: the grant and the CIDs,
	// each with its uvarint length (2 bytes for lengths below 16384).
	maxRequestSize = 2 + MaxGrantSize + 2 + MaxBlocksPerRequest*(2+maxCIDSize)
)

// Timeouts. Reads and writes of bulk data use idle deadlines (no progress
// for idleTimeout fails the stream) so that slow WAN links and UploadRate
// work; small frames that a peer controls use absolute deadlines so a
// peer cannot hold a handler by trickling bytes.
const (
	// idleTimeout is how long one read or write may make no progress.
	idleTimeout = 30 * time.Second
	// requestTimeout is how long a server waits for a complete block
	// request, counted from when it starts waiting.
	requestTimeout = 30 * time.Second
	// manifestHandleTimeout bounds ManifestHandler.HandleManifest.
	manifestHandleTimeout = 2 * time.Minute
	// minTransferRate is the slowest link a manifest is expected to cross
	// in time: the deadline for a frame of n bytes is
	// idleTimeout + n/minTransferRate.
	minTransferRate = 64 << 10
)

// transferTimeout is the absolute deadline for moving n bytes.
func transferTimeout(n int) time.Duration {
	return idleTimeout + time.Duration(n)*time.Second/minTransferRate
}

// errFrameTooLarge is returned when a peer announces a frame beyond its
// cap; nothing has been allocated for it.
var errFrameTooLarge = fmt.Errorf("read frame: %w", ErrTooLarge)

// readLen reads a uvarint length and checks it against max before the
// caller allocates anything. Non-minimal encodings are refused so that
// every message has exactly one encoding.
func readLen(r io.ByteReader, max int) (int, error) {
	var buf [binary.MaxVarintLen64]byte
	var x uint64
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		buf[i] = b
		if b < 0x80 {
			var n int
			x, n = binary.Uvarint(buf[:i+1])
			if n <= 0 || n != uvarintLen(x) {
				return 0, fmt.Errorf("read frame length: %w", ErrBadRequest)
			}
			break
		}
		if i == binary.MaxVarintLen64-1 {
			return 0, fmt.Errorf("read frame length: %w", ErrBadRequest)
		}
	}
	if x > uint64(max) {
		return 0, errFrameTooLarge
	}
	return int(x), nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// blockRequest is the body of a BlocksProtocol request frame:
//
//	uvarint len(grant) | grant | uvarint n | n × (uvarint len(cid) | cid)
//
// with 1 <= n <= MaxBlocksPerRequest, len(grant) <= MaxGrantSize and
// 1 <= len(cid) <= maxCIDSize. Every uvarint is minimally encoded.
type blockRequest struct {
	grant string
	cids  []cid.Cid
}

// appendBlockRequest appends the framed request (uvarint body length,
// then the body) to dst. The arguments must have passed checkFetch.
func appendBlockRequest(dst []byte, grant string, cids []cid.Cid) []byte {
	size := uvarintLen(uint64(len(grant))) + len(grant) + uvarintLen(uint64(len(cids)))
	for _, c := range cids {
		n := c.ByteLen()
		size += uvarintLen(uint64(n)) + n
	}
	dst = binary.AppendUvarint(dst, uint64(size))
	dst = binary.AppendUvarint(dst, uint64(len(grant)))
	dst = append(dst, grant...)
	dst = binary.AppendUvarint(dst, uint64(len(cids)))
	for _, c := range cids {
		dst = binary.AppendUvarint(dst, uint64(c.ByteLen()))
		dst = append(dst, c.KeyString()...)
	}
	return dst
}

// Hash functions a requested CID may use. The fetching side recomputes
// every block's digest, so a CID naming a weak or non-cryptographic hash
// (or the identity "hash") would let a peer choose what we accept.
var verifiableHashes = map[uint64]bool{
	multihash.SHA2_256: true,
	multihash.SHA2_512: true,
	multihash.SHA3_256: true,
	multihash.SHA3_512: true,
	multihash.BLAKE3:   true,
}

// checkCID reports whether c may be requested: defined, small enough, and
// verifiable.
func checkCID(c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("check cid: undefined: %w", ErrBadRequest)
	}
	if c.ByteLen() > maxCIDSize {
		return fmt.Errorf("check cid %s: longer than %d bytes: %w", c, maxCIDSize, ErrBadRequest)
	}
	if p := c.Prefix(); !verifiableHashes[p.MhType] {
		return fmt.Errorf("check cid %s: hash %#x not accepted: %w", c, p.MhType, ErrBadRequest)
	}
	return nil
}

// parseBlockRequest decodes a request body. It never allocates more than
// a small multiple of len(body), which the caller has capped.
func parseBlockRequest(body []byte) (blockRequest, error) {
	r := bytes.NewReader(body)
	bad := func(what string) (blockRequest, error) {
		return blockRequest{}, fmt.Errorf("parse block request: %s: %w", what, ErrBadRequest)
	}
	glen, err := readLen(r, MaxGrantSize)
	if err != nil {
		return bad("grant length")
	}
	if glen > r.Len() {
		return bad("grant truncated")
	}
	grant := make([]byte, glen)
	_, _ = r.Read(grant)
	n, err := readLen(r, MaxBlocksPerRequest)
	if err != nil || n == 0 {
		return bad("cid count")
	}
	cids := make([]cid.Cid, 0, n)
	for range n {
		clen, err := readLen(r, maxCIDSize)
		if err != nil || clen == 0 {
			return bad("cid length")
		}
		if clen > r.Len() {
			return bad("cid truncated")
		}
		raw := body[len(body)-r.Len():][:clen]
		_, _ = r.Seek(int64(clen), io.SeekCurrent)
		used, c, err := cid.CidFromBytes(raw)
		if err != nil || used != clen {
			return bad("cid")
		}
		cids = append(cids, c)
	}
	if r.Len() != 0 {
		return bad("trailing bytes")
	}
	return blockRequest{grant: string(grant), cids: cids}, nil
}

// readBlockRequest reads one framed request. It returns io.EOF, and only
// then, when the stream ended cleanly before a new frame began.
func readBlockRequest(br *bufio.Reader) (blockRequest, error) {
	n, err := readLen(br, maxRequestSize)
	if err != nil {
		return blockRequest{}, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return blockRequest{}, fmt.Errorf("read block request: %w", err)
	}
	return parseBlockRequest(body)
}

// verifyBlock recomputes data's multihash with c's hash function and
// compares it with c's.
func verifyBlock(c cid.Cid, data []byte) error {
	p := c.Prefix()
	sum, err := multihash.Sum(data, p.MhType, p.MhLength)
	if err != nil {
		return fmt.Errorf("verify block %s: %w", c, err)
	}
	if !bytes.Equal(sum, c.Hash()) {
		return fmt.Errorf("verify block %s: %w", c, ErrBadBlock)
	}
	return nil
}

// idleStream moves a stream's read and write deadlines forward on every
// call, so a transfer fails only when it stops making progress.
type idleStream struct {
	s network.Stream
}

func (i idleStream) Read(p []byte) (int, error) {
	if err := i.s.SetReadDeadline(time.Now().Add(idleTimeout)); err != nil {
		return 0, err
	}
	return i.s.Read(p)
}

func (i idleStream) Write(p []byte) (int, error) {
	if err := i.s.SetWriteDeadline(time.Now().Add(idleTimeout)); err != nil {
		return 0, err
	}
	return i.s.Write(p)
}

// isEOF reports a stream that ended cleanly at a frame boundary.
func isEOF(err error) bool { return errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) }
