package exchange

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

type sourceFunc func(ctx context.Context, p peer.ID, study string) ([]byte, error)

func (f sourceFunc) ManifestFor(ctx context.Context, p peer.ID, study string) ([]byte, error) {
	return f(ctx, p, study)
}

func TestPullManifest(t *testing.T) {
	manifest := make([]byte, 100<<10)
	_, _ = rand.Read(manifest)
	const study = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
	tests := []struct {
		name     string
		study    string
		reply    []byte
		replyErr error
		wantCode Code
		wantErr  error
	}{
		{name: "granted", study: study, reply: manifest},
		{name: "max size", study: study, reply: make([]byte, MaxManifestSize)},
		{name: "no grant", study: study, replyErr: fmt.Errorf("no grant: %w", ErrDenied), wantCode: CodeDenied, wantErr: ErrDenied},
		{name: "unknown study", study: "1.2.3", replyErr: fmt.Errorf("study: %w", ErrNotFound), wantCode: CodeNotFound, wantErr: ErrNotFound},
		{name: "source fails", study: study, replyErr: errors.New("seal for Jane Doe: boom"), wantCode: CodeInternal},
		{name: "source too large", study: study, reply: make([]byte, MaxManifestSize+1), wantCode: CodeInternal},
		{name: "source empty", study: study, reply: []byte{}, wantCode: CodeInternal},
		{name: "empty study", study: "", wantErr: ErrBadRequest},
		{name: "long study", study: strings.Repeat("1", MaxStudySize+1), wantErr: ErrBadRequest},
	}
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) {
			p := newPair(t, transport)
			var cur struct {
				sync.Mutex
				reply []byte
				err   error
				study string
				from  peer.ID
			}
			newService(t, p.server, ServiceConfig{Source: sourceFunc(func(_ context.Context, from peer.ID, s string) ([]byte, error) {
				cur.Lock()
				defer cur.Unlock()
				cur.study, cur.from = s, from
				return cur.reply, cur.err
			})})
			client := newService(t, p.client, ServiceConfig{})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cur.Lock()
					cur.reply, cur.err, cur.study, cur.from = tt.reply, tt.replyErr, "", ""
					cur.Unlock()
					got, err := client.PullManifest(context.Background(), p.serverID, tt.study)
					cur.Lock()
					defer cur.Unlock()
					if tt.wantCode == CodeOK && tt.wantErr == nil {
						if err != nil {
							t.Fatalf("PullManifest: %v", err)
						}
						if !bytes.Equal(got, tt.reply) || cur.study != tt.study || cur.from != p.clientID {
							t.Fatalf("got %d bytes for %q from %s; want %d bytes for %q from %s", len(got), cur.study, cur.from, len(tt.reply), tt.study, p.clientID)
						}
						return
					}
					if err == nil {
						t.Fatal("PullManifest succeeded, want an error")
					}
					if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
						t.Errorf("PullManifest: %v, want errors.Is %v", err, tt.wantErr)
					}
					var re *RemoteError
					if tt.wantCode != CodeOK && (!errors.As(err, &re) || re.Code != tt.wantCode) {
						t.Errorf("PullManifest: %v, want a RemoteError with code %v", err, tt.wantCode)
					}
					if strings.Contains(err.Error(), "Jane") {
						t.Errorf("source's error text reached the peer: %v", err)
					}
				})
			}
		})
	}
}
