package exchange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

type askFunc func(ctx context.Context, p peer.ID, msg []byte) ([]byte, error)

func (f askFunc) HandleAsk(ctx context.Context, p peer.ID, msg []byte) ([]byte, error) {
	return f(ctx, p, msg)
}

func TestAsk(t *testing.T) {
	msg := bytes.Repeat([]byte("m"), 1000)
	tests := []struct {
		name     string
		msg      []byte
		reply    []byte
		replyErr error
		wantCode Code
		wantErr  error
	}{
		{name: "answered", msg: msg, reply: []byte(`{"signed":"answer"}`)},
		{name: "max sizes", msg: make([]byte, MaxAskSize), reply: make([]byte, MaxAskSize)},
		{name: "replay", msg: msg, replyErr: fmt.Errorf("nonce seen: %w", ErrBadRequest), wantCode: CodeBadRequest, wantErr: ErrBadRequest},
		{name: "not allowed", msg: msg, replyErr: fmt.Errorf("no queries from you: %w", ErrDenied), wantCode: CodeDenied, wantErr: ErrDenied},
		{name: "rate-limited", msg: msg, replyErr: fmt.Errorf("slow down: %w", ErrUnavailable), wantCode: CodeUnavailable, wantErr: ErrUnavailable},
		{name: "handler fails", msg: msg, replyErr: errors.New("patient Jane Doe: boom"), wantCode: CodeInternal},
		{name: "handler too large", msg: msg, reply: make([]byte, MaxAskSize+1), wantCode: CodeInternal},
		{name: "handler empty", msg: msg, reply: nil, wantCode: CodeInternal},
		{name: "empty message", msg: nil, wantErr: ErrBadRequest},
		{name: "message too large", msg: make([]byte, MaxAskSize+1), wantErr: ErrTooLarge},
	}
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) {
			p := newPair(t, transport)
			var cur struct {
				sync.Mutex
				reply []byte
				err   error
				got   []byte
				from  peer.ID
			}
			newService(t, p.server, ServiceConfig{Asks: askFunc(func(_ context.Context, from peer.ID, m []byte) ([]byte, error) {
				cur.Lock()
				defer cur.Unlock()
				cur.got, cur.from = bytes.Clone(m), from
				return cur.reply, cur.err
			})})
			client := newService(t, p.client, ServiceConfig{})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cur.Lock()
					cur.reply, cur.err, cur.got, cur.from = tt.reply, tt.replyErr, nil, ""
					cur.Unlock()
					got, err := client.Ask(context.Background(), p.serverID, tt.msg)
					cur.Lock()
					defer cur.Unlock()
					if tt.wantCode == CodeOK && tt.wantErr == nil {
						if err != nil {
							t.Fatalf("Ask: %v", err)
						}
						if !bytes.Equal(got, tt.reply) || !bytes.Equal(cur.got, tt.msg) || cur.from != p.clientID {
							t.Fatalf("got %d bytes; handler saw %d bytes from %s", len(got), len(cur.got), cur.from)
						}
						return
					}
					if err == nil {
						t.Fatal("Ask succeeded, want an error")
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("Ask: %v, want errors.Is %v", err, tt.wantErr)
					}
					var re *RemoteError
					if tt.wantCode != CodeOK && (!errors.As(err, &re) || re.Code != tt.wantCode) {
						t.Errorf("Ask: %v, want a RemoteError with code %v", err, tt.wantCode)
					}
					if strings.Contains(err.Error(), "Jane") {
						t.Errorf("handler's error text reached the peer: %v", err)
					}
				})
			}
		})
	}
}
