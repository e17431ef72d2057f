package exchange

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPushManifest(t *testing.T) {
	secret := "patient Jane Doe 1970-01-01" // must never reach the pusher
	tests := []struct {
		name       string
		handlerErr error
		size       int
		wantCode   Code // CodeOK: success
		wantErr    error
		wantCall   bool
	}{
		{name: "stored", size: 4 << 10, wantCall: true},
		{name: "max size", size: MaxManifestSize, wantCall: true},
		{name: "rejected", size: 100, handlerErr: fmt.Errorf("verify manifest for %s: %w", secret, ErrRejected), wantCode: CodeRejected, wantErr: ErrRejected, wantCall: true},
		{name: "denied", size: 100, handlerErr: fmt.Errorf("check sender: %w", ErrDenied), wantCode: CodeDenied, wantErr: ErrDenied, wantCall: true},
		{name: "internal", size: 100, handlerErr: errors.New("store " + secret + ": disk full"), wantCode: CodeInternal, wantCall: true},
		{name: "empty", size: 0, wantErr: ErrBadRequest},
		{name: "too large", size: MaxManifestSize + 1, wantErr: ErrTooLarge},
	}
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) {
			p := newPair(t, transport)
			var (
				mu     sync.Mutex
				calls  int
				gotMsg []byte
				from   peer.ID
				retErr error
			)
			newService(t, p.server, ServiceConfig{Manifests: manifestFunc(func(_ context.Context, f peer.ID, sealed []byte) error {
				mu.Lock()
				defer mu.Unlock()
				calls++
				gotMsg, from = sealed, f
				return retErr
			})})
			client := newService(t, p.client, ServiceConfig{})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					mu.Lock()
					calls, gotMsg, retErr = 0, nil, tt.handlerErr
					mu.Unlock()
					msg := make([]byte, tt.size)
					_, _ = rand.Read(msg)
					err := client.PushManifest(context.Background(), p.serverID, msg)
					mu.Lock()
					defer mu.Unlock()
					if (calls == 1) != tt.wantCall {
						t.Fatalf("handler called %d times, want called: %v", calls, tt.wantCall)
					}
					if tt.wantCall && (!bytes.Equal(gotMsg, msg) || from != p.clientID) {
						t.Errorf("handler got %d bytes from %s, want the %d bytes sent from %s", len(gotMsg), from, len(msg), p.clientID)
					}
					if tt.wantCode == CodeOK && tt.wantErr == nil {
						if err != nil {
							t.Fatalf("PushManifest: %v", err)
						}
						return
					}
					if err == nil {
						t.Fatal("PushManifest succeeded, want an error")
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("PushManifest: %v, want errors.Is %v", err, tt.wantErr)
					}
					var re *RemoteError
					if tt.wantCode != CodeOK && (!errors.As(err, &re) || re.Code != tt.wantCode) {
						t.Errorf("PushManifest: %v, want a RemoteError with code %v", err, tt.wantCode)
					}
					if strings.Contains(err.Error(), "Jane") {
						t.Errorf("handler's error text reached the peer: %v", err)
					}
				})
			}
		})
	}
}

func TestFetchBlocks(t *testing.T) {
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) {
			p := newPair(t, transport)
			// Three requests' worth, including empty and maximal blocks.
			sizes := make([]int, 260)
			for i := range sizes {
				sizes[i] = i * 97 % 70000
			}
			sizes[5] = MaxBlockSize
			cids, store := randomBlocks(t, 2*MaxBlocksPerRequest+7, sizes...)
			var authCalls atomic.Int64
			newService(t, p.server, ServiceConfig{Blocks: store, Auth: authFunc(func(_ context.Context, from peer.ID, grant string, _ cid.Cid) error {
				authCalls.Add(1)
				if from != p.clientID || grant != "grant-1" {
					return fmt.Errorf("authorize: wrong peer or grant: %w", ErrDenied)
				}
				return nil
			})})
			client := newService(t, p.client, ServiceConfig{})
			i := 0
			err := client.FetchBlocks(context.Background(), p.serverID, "grant-1", cids, func(c cid.Cid, data []byte) error {
				if i >= len(cids) || c != cids[i] {
					t.Fatalf("block %d: got %s, want %s", i, c, cids[i])
				}
				if !bytes.Equal(data, store.m[c]) {
					t.Fatalf("block %d: data differs", i)
				}
				i++
				return nil
			})
			if err != nil {
				t.Fatalf("FetchBlocks: %v", err)
			}
			if i != len(cids) {
				t.Fatalf("got %d blocks, want %d", i, len(cids))
			}
			if n := authCalls.Load(); n != int64(len(cids)) {
				t.Errorf("Authorizer called %d times, want once per block (%d)", n, len(cids))
			}
		})
	}
}

func TestFetchBlocksRefused(t *testing.T) {
	cids, store := randomBlocks(t, 5, 1000)
	unknown := blockCID(t, []byte("not stored"))
	myErr := errors.New("caller's own error")
	tests := []struct {
		name      string
		auth      func(n int64) error // n: 1-based call count
		blocks    BlockStore
		cids      []cid.Cid
		got       error
		wantErr   error
		wantCode  Code
		wantGot   int
		wantAuths int64
	}{
		{
			name:      "revoked at third block",
			auth:      func(n int64) error { return denyFrom(n, 3) },
			blocks:    store,
			cids:      cids,
			wantErr:   ErrDenied,
			wantCode:  CodeDenied,
			wantGot:   2,
			wantAuths: 3,
		},
		{
			name:      "unknown cid",
			blocks:    store,
			cids:      []cid.Cid{cids[0], unknown, cids[1]},
			wantErr:   ErrNotFound,
			wantCode:  CodeNotFound,
			wantGot:   1,
			wantAuths: 2,
		},
		{
			name:      "authorizer fails",
			auth:      func(int64) error { return errors.New("ledger unreachable") },
			blocks:    store,
			cids:      cids,
			wantCode:  CodeInternal,
			wantAuths: 1,
		},
		{
			name:      "lying store",
			blocks:    lyingBlocks{data: []byte("not what you asked for")},
			cids:      cids,
			wantErr:   ErrBadBlock,
			wantAuths: -1, // the server does not know it lies and sends on
		},
		{
			name:      "callback error",
			blocks:    store,
			cids:      cids,
			got:       myErr,
			wantErr:   myErr,
			wantGot:   1,
			wantAuths: -1, // pipelined: the server may be ahead
		},
	}
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					p := newPair(t, transport)
					var auths atomic.Int64
					newService(t, p.server, ServiceConfig{Blocks: tt.blocks, Auth: authFunc(func(context.Context, peer.ID, string, cid.Cid) error {
						n := auths.Add(1)
						if tt.auth == nil {
							return nil
						}
						return tt.auth(n)
					})})
					client := newService(t, p.client, ServiceConfig{})
					gotCalls := 0
					err := client.FetchBlocks(context.Background(), p.serverID, "g", tt.cids, func(cid.Cid, []byte) error {
						gotCalls++
						return tt.got
					})
					if err == nil {
						t.Fatal("FetchBlocks succeeded, want an error")
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("FetchBlocks: %v, want errors.Is %v", err, tt.wantErr)
					}
					if tt.got != nil && err != tt.got {
						t.Errorf("FetchBlocks: %v, want the callback's error unchanged", err)
					}
					var re *RemoteError
					if tt.wantCode != CodeOK && (!errors.As(err, &re) || re.Code != tt.wantCode) {
						t.Errorf("FetchBlocks: %v, want a RemoteError with code %v", err, tt.wantCode)
					}
					if tt.wantErr == ErrBadBlock && errors.As(err, &re) {
						t.Errorf("FetchBlocks: %v: a bad block is our finding, not a refusal", err)
					}
					if gotCalls != tt.wantGot {
						t.Errorf("got called %d times, want %d", gotCalls, tt.wantGot)
					}
					if tt.wantAuths >= 0 {
						if n := auths.Load(); n != tt.wantAuths {
							t.Errorf("Authorizer called %d times, want %d", n, tt.wantAuths)
						}
					}
				})
			}
		})
	}
}

func denyFrom(n, from int64) error {
	if n >= from {
		return fmt.Errorf("grant revoked: %w", ErrDenied)
	}
	return nil
}

func TestFetchBlocksBadArguments(t *testing.T) {
	p := newPair(t, "tcp")
	client := newService(t, p.client, ServiceConfig{})
	good, _ := randomBlocks(t, 1, 10)
	sha1, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x11, MhLength: -1}.Sum([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	identity, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x00, MhLength: -1}.Sum([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		grant string
		cids  []cid.Cid
	}{
		{"grant too long", strings.Repeat("g", MaxGrantSize+1), good},
		{"undefined cid", "g", []cid.Cid{cid.Undef}},
		{"weak hash", "g", []cid.Cid{sha1}},
		{"identity hash", "g", []cid.Cid{identity}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := client.FetchBlocks(context.Background(), p.serverID, tt.grant, tt.cids, func(cid.Cid, []byte) error {
				t.Error("got called")
				return nil
			})
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("FetchBlocks: %v, want ErrBadRequest", err)
			}
		})
	}
	t.Run("no cids", func(t *testing.T) {
		// No server runs BlocksProtocol: success means no stream was opened.
		if err := client.FetchBlocks(context.Background(), p.serverID, "g", nil, nil); err != nil {
			t.Errorf("FetchBlocks with no CIDs: %v", err)
		}
	})
}

func TestFetchBlocksCanceled(t *testing.T) {
	p := newPair(t, "tcp")
	cids, store := randomBlocks(t, 50, 64<<10)
	newService(t, p.server, ServiceConfig{Blocks: store, Auth: allowAll()})
	client := newService(t, p.client, ServiceConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err := client.FetchBlocks(ctx, p.serverID, "g", cids, func(cid.Cid, []byte) error {
		n++
		if n == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("FetchBlocks: %v, want context.Canceled", err)
	}
	if n >= len(cids) {
		t.Fatal("cancellation did not stop the transfer")
	}
}

// TestUploadRate checks that the limiter is applied: at 1 MB/s, 3 MB
// cannot arrive in less than 2 s (the burst is only rateChunk).
func TestUploadRate(t *testing.T) {
	t.Parallel()
	p := newPair(t, "tcp")
	cids, store := randomBlocks(t, 3, 1_000_000)
	newService(t, p.server, ServiceConfig{Blocks: store, Auth: allowAll(), UploadRate: 1_000_000})
	client := newService(t, p.client, ServiceConfig{})
	start := time.Now()
	if err := client.FetchBlocks(context.Background(), p.serverID, "g", cids, func(cid.Cid, []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("3 MB at 1 MB/s took %v, want at least 2s", d)
	}
}

// rawStream opens a stream to the server's protocol for tests that play a
// hostile client.
func rawStream(t *testing.T, p *pair, proto string) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.client.NewStream(ctx, p.serverID, BlocksProtocol)
	if proto == string(ManifestProtocol) {
		st, err = p.client.NewStream(ctx, p.serverID, ManifestProtocol)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Reset() })
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	return st
}

// TestHostileClient plays a client that sends frames no honest client
// sends; the server must answer with the right code and not call its
// handlers.
func TestHostileClient(t *testing.T) {
	bigLen := func(n uint64) []byte { return binary.AppendUvarint(nil, n) }
	tests := []struct {
		name  string
		proto string
		send  []byte
		want  Code
	}{
		{"manifest over cap", string(ManifestProtocol), bigLen(MaxManifestSize + 1), CodeTooLarge},
		{"manifest length 2^63", string(ManifestProtocol), bigLen(1 << 63), CodeTooLarge},
		{"manifest empty", string(ManifestProtocol), bigLen(0), CodeBadRequest},
		{"manifest varint overlong", string(ManifestProtocol), []byte{0x81, 0x80, 0x80, 0x00}, CodeBadRequest},
		{"manifest varint endless", string(ManifestProtocol), bytes.Repeat([]byte{0xff}, 11), CodeBadRequest},
		{"request over cap", string(BlocksProtocol), bigLen(maxRequestSize + 1), CodeTooLarge},
		{"request garbage", string(BlocksProtocol), append(bigLen(3), 1, 2, 3), CodeBadRequest},
		{"request no cids", string(BlocksProtocol), append(bigLen(2), 0, 0), CodeBadRequest},
		{"request too many cids", string(BlocksProtocol), append(bigLen(3), 0, 0x81, 0x02), CodeBadRequest},
		{"presented grant over cap", string(SecondaryBlocksProtocol), bigLen(MaxPresentedGrantSize + 1), CodeTooLarge},
		{"presented grant empty", string(SecondaryBlocksProtocol), bigLen(0), CodeBadRequest},
		{"presented grant varint overlong", string(SecondaryBlocksProtocol), []byte{0x80, 0x00}, CodeBadRequest},
	}
	p := newPair(t, "tcp")
	var calls atomic.Int64
	newService(t, p.server, ServiceConfig{
		Manifests: manifestFunc(func(context.Context, peer.ID, []byte) error { calls.Add(1); return nil }),
		Auth:      authFunc(func(context.Context, peer.ID, string, cid.Cid) error { calls.Add(1); return nil }),
		Blocks:    &memBlocks{},
		Secondary: presenterFunc(func(context.Context, peer.ID, []byte) (Authorizer, error) { calls.Add(1); return allowAll(), nil }),
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := rawStream(t, p, tt.proto)
			if _, err := st.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			// The body is never sent: the answer must come from the
			// length alone.
			reply, err := io.ReadAll(st)
			if err != nil {
				t.Fatalf("read reply: %v", err)
			}
			if len(reply) != 1 || Code(reply[0]) != tt.want {
				t.Fatalf("reply %v, want the single code %v", reply, tt.want)
			}
			if n := calls.Load(); n != 0 {
				t.Fatalf("handlers called %d times", n)
			}
		})
	}
}

// TestHostileServer plays a server that announces a block larger than
// MaxBlockSize: the client must refuse it without reading it.
func TestHostileServer(t *testing.T) {
	p := newPair(t, "tcp")
	p.server.SetStreamHandler(BlocksProtocol, func(st network.Stream) {
		defer st.Close()
		if _, err := readBlockRequest(bufio.NewReader(st)); err != nil {
			t.Errorf("hostile server: read request: %v", err)
		}
		_, _ = st.Write(binary.AppendUvarint([]byte{byte(CodeOK)}, 1<<40))
	})
	client := newService(t, p.client, ServiceConfig{})
	cids, _ := randomBlocks(t, 1, 10)
	err := client.FetchBlocks(context.Background(), p.serverID, "g", cids, func(cid.Cid, []byte) error {
		t.Error("got called")
		return nil
	})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("FetchBlocks: %v, want ErrTooLarge", err)
	}
}

func TestCloseWaitsForHandlers(t *testing.T) {
	p := newPair(t, "tcp")
	entered := make(chan struct{})
	release := make(chan struct{})
	var sawCancel atomic.Bool
	srv := NewService(p.server, ServiceConfig{Manifests: manifestFunc(func(ctx context.Context, _ peer.ID, _ []byte) error {
		close(entered)
		<-ctx.Done() // Close cancels us...
		sawCancel.Store(true)
		<-release // ...but we take our time to return.
		return ctx.Err()
	})})
	client := newService(t, p.client, ServiceConfig{})
	pushed := make(chan error, 1)
	go func() { pushed <- client.PushManifest(context.Background(), p.serverID, []byte("m")) }()
	<-entered
	closed := make(chan struct{})
	go func() { _ = srv.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler was running")
	case <-time.After(200 * time.Millisecond):
	}
	if !sawCancel.Load() {
		t.Error("Close did not cancel the handler's context")
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the handler did")
	}
	if err := <-pushed; err == nil {
		t.Error("push succeeded although the receiver closed before storing")
	}
	// The handlers are gone.
	if err := client.PushManifest(context.Background(), p.serverID, []byte("m")); err == nil {
		t.Error("push succeeded after Close")
	}
}

// TestConcurrentMaxManifests checks that the resource limits let one
// partner have several maximal manifests in flight at once.
func TestConcurrentMaxManifests(t *testing.T) {
	p := newPair(t, "tcp")
	var wg sync.WaitGroup
	arrived := make(chan struct{}, 3)
	release := make(chan struct{})
	newService(t, p.server, ServiceConfig{Manifests: manifestFunc(func(ctx context.Context, _ peer.ID, _ []byte) error {
		arrived <- struct{}{}
		select { // hold every manifest's memory until all arrived
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})})
	client := newService(t, p.client, ServiceConfig{})
	msg := make([]byte, MaxManifestSize)
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- client.PushManifest(context.Background(), p.serverID, msg)
		}()
	}
	timeout := time.After(30 * time.Second)
	for range 3 {
		select {
		case <-arrived:
		case err := <-errs:
			t.Fatalf("a push ended before all arrived: %v", err)
		case <-timeout:
			t.Fatal("manifests did not arrive")
		}
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
