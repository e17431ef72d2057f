package exchange

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

func TestReadLen(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want int
		err  error
	}{
		{"zero", []byte{0}, 10, 0, nil},
		{"one byte", []byte{127}, 127, 127, nil},
		{"two bytes", []byte{0x80, 0x01}, 1000, 128, nil},
		{"at cap", binary.AppendUvarint(nil, MaxBlockSize), MaxBlockSize, MaxBlockSize, nil},
		{"over cap", binary.AppendUvarint(nil, MaxBlockSize+1), MaxBlockSize, 0, ErrTooLarge},
		{"2^64-1", binary.AppendUvarint(nil, 1<<64-1), MaxBlockSize, 0, ErrTooLarge},
		{"non-minimal", []byte{0x81, 0x00}, 1000, 0, ErrBadRequest},
		{"overflow", bytes.Repeat([]byte{0xff}, 11), 1000, 0, ErrBadRequest},
		{"empty", nil, 10, 0, io.EOF},
		{"truncated", []byte{0x80}, 10, 0, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readLen(bytes.NewReader(tt.in), tt.max)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("readLen = %d, %v; want error %v", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("readLen = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// TestOversizeFrameNotAllocated checks that a frame announcing a huge
// length is refused before anything of that size is allocated.
func TestOversizeFrameNotAllocated(t *testing.T) {
	tests := []struct {
		name string
		read func(r *bufio.Reader) error
	}{
		{"block request", func(r *bufio.Reader) error { _, err := readBlockRequest(r); return err }},
		{"manifest", func(r *bufio.Reader) error { _, err := readLen(r, MaxManifestSize); return err }},
		{"block", func(r *bufio.Reader) error { _, err := readLen(r, MaxBlockSize); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := binary.AppendUvarint(nil, 1<<40) // 1 TiB
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 100 {
				err := tt.read(bufio.NewReaderSize(bytes.NewReader(frame), 16))
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("read: %v, want ErrTooLarge", err)
				}
			}
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Fatalf("refusing 100 oversize frames allocated %d bytes", d)
			}
		})
	}
}

func testCIDs(t testing.TB) []cid.Cid {
	t.Helper()
	var out []cid.Cid
	for _, mh := range []uint64{multihash.SHA2_256, multihash.SHA2_512, multihash.SHA3_256, multihash.BLAKE3} {
		for _, codec := range []uint64{cid.Raw, cid.DagProtobuf} {
			c, err := cid.Prefix{Version: 1, Codec: codec, MhType: mh, MhLength: -1}.Sum([]byte(fmt.Sprint(mh, codec)))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
	}
	v0, err := cid.Prefix{Version: 0, Codec: cid.DagProtobuf, MhType: multihash.SHA2_256, MhLength: -1}.Sum([]byte("v0"))
	if err != nil {
		t.Fatal(err)
	}
	return append(out, v0)
}

func TestBlockRequestRoundTrip(t *testing.T) {
	cids := testCIDs(t)
	many := make([]cid.Cid, MaxBlocksPerRequest)
	for i := range many {
		many[i] = cids[i%len(cids)]
	}
	tests := []struct {
		name  string
		grant string
		cids  []cid.Cid
	}{
		{"one", "grant-1", cids[:1]},
		{"all kinds", "g", cids},
		{"empty grant", "", cids[:2]},
		{"max", strings.Repeat("g", MaxGrantSize), many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkFetch(tt.grant, tt.cids); err != nil {
				t.Fatal(err)
			}
			frame := appendBlockRequest(nil, tt.grant, tt.cids)
			if len(frame) > maxRequestSize+binary.MaxVarintLen64 {
				t.Fatalf("frame of %d bytes exceeds the cap", len(frame))
			}
			req, err := readBlockRequest(bufio.NewReader(bytes.NewReader(frame)))
			if err != nil {
				t.Fatalf("readBlockRequest: %v", err)
			}
			if req.grant != tt.grant || len(req.cids) != len(tt.cids) {
				t.Fatalf("got grant %q and %d cids", req.grant, len(req.cids))
			}
			for i := range req.cids {
				if !req.cids[i].Equals(tt.cids[i]) {
					t.Fatalf("cid %d: %s, want %s", i, req.cids[i], tt.cids[i])
				}
			}
		})
	}
}

func TestVerifyBlock(t *testing.T) {
	for _, c := range testCIDs(t) {
		p := c.Prefix()
		data := []byte(fmt.Sprint(p.MhType, p.Codec))
		if c.Version() == 0 {
			data = []byte("v0")
		}
		t.Run(c.String(), func(t *testing.T) {
			if err := verifyBlock(c, data); err != nil {
				t.Errorf("verifyBlock(good): %v", err)
			}
			if err := verifyBlock(c, append(data, 0)); !errors.Is(err, ErrBadBlock) {
				t.Errorf("verifyBlock(bad): %v, want ErrBadBlock", err)
			}
		})
	}
}

// FuzzBlockRequest checks that hostile request bodies never panic and that
// every accepted body has exactly one encoding: parse, encode, same bytes.
func FuzzBlockRequest(f *testing.F) {
	cids := testCIDs(f)
	for _, seed := range [][]cid.Cid{cids[:1], cids} {
		frame := appendBlockRequest(nil, "grant", seed)
		_, n := binary.Uvarint(frame)
		f.Add(frame[n:])
	}
	f.Add([]byte{0, 1, 0})
	f.Add([]byte{0x81, 0x00})
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > maxRequestSize {
			return
		}
		req, err := parseBlockRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("parse error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		frame := appendBlockRequest(nil, req.grant, req.cids)
		_, n := binary.Uvarint(frame)
		if !bytes.Equal(frame[n:], body) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", frame[n:], body)
		}
	})
}

func TestCodes(t *testing.T) {
	tests := []struct {
		err  error
		want Code
	}{
		{nil, CodeOK},
		{fmt.Errorf("check: %w", ErrDenied), CodeDenied},
		{fmt.Errorf("get: %w", ErrBlockNotFound), CodeNotFound},
		{ErrNotFound, CodeNotFound},
		{fmt.Errorf("open: %w", ErrRejected), CodeRejected},
		{ErrBadRequest, CodeBadRequest},
		{ErrTooLarge, CodeTooLarge},
		{ErrUnavailable, CodeUnavailable},
		{fmt.Errorf("store: %w", contextCanceled()), CodeUnavailable},
		{errors.New("disk on fire"), CodeInternal},
		// Denial wins: a peer without a grant must not learn the block
		// is absent.
		{errors.Join(ErrBlockNotFound, ErrDenied), CodeDenied},
		// A refusal relayed from another peer keeps its meaning.
		{&RemoteError{Code: CodeDenied}, CodeDenied},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := codeOf(tt.err); got != tt.want {
				t.Errorf("codeOf = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRemoteError(t *testing.T) {
	tests := []struct {
		code  Code
		msg   string
		is    error
		isNot []error
	}{
		{CodeDenied, "peer refused: denied", ErrDenied, []error{ErrNotFound, ErrRejected}},
		{CodeNotFound, "peer refused: not found", ErrNotFound, []error{ErrBlockNotFound, ErrDenied}},
		{CodeRejected, "peer refused: rejected", ErrRejected, []error{ErrDenied}},
		{CodeBadRequest, "peer refused: bad request", ErrBadRequest, nil},
		{CodeTooLarge, "peer refused: too large", ErrTooLarge, nil},
		{CodeUnavailable, "peer refused: unavailable", ErrUnavailable, []error{contextCanceled()}},
		{CodeInternal, "peer refused: internal error", nil, []error{ErrDenied, ErrNotFound}},
		{Code(200), "peer refused: code 200", nil, []error{ErrDenied}},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			err := fmt.Errorf("fetch: %w", &RemoteError{Code: tt.code})
			if got := (&RemoteError{Code: tt.code}).Error(); got != tt.msg {
				t.Errorf("Error() = %q, want %q", got, tt.msg)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			for _, e := range tt.isNot {
				if errors.Is(err, e) {
					t.Errorf("errors.Is(%v, %v) = true", err, e)
				}
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tt.code {
				t.Errorf("errors.As did not find code %v", tt.code)
			}
		})
	}
}

func contextCanceled() error { return context.Canceled }
