package exchange

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// TestGater checks that only partners get a stream through, and that the
// set is read at run time.
func TestGater(t *testing.T) {
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) {
			sk, sid := newKey(t)
			pk, pid := newKey(t)
			sk2, strangerID := newKey(t)
			serverP := newPartners(pid)
			server := newHost(t, transport, sk, serverP)
			partner := newHost(t, transport, pk, newPartners(sid))
			// The stranger considers us a partner, so only our gater
			// stands in its way.
			stranger := newHost(t, transport, sk2, newPartners(sid))

			var calls atomic.Int64
			newService(t, server, ServiceConfig{Manifests: manifestFunc(func(context.Context, peer.ID, []byte) error {
				calls.Add(1)
				return nil
			})})
			partnerSvc := newService(t, partner, ServiceConfig{})
			strangerSvc := newService(t, stranger, ServiceConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			server.Peerstore().AddAddrs(pid, partner.Addrs(), time.Hour)
			server.Peerstore().AddAddrs(strangerID, stranger.Addrs(), time.Hour)

			t.Run("stranger cannot open a stream", func(t *testing.T) {
				// Connect may well return nil: the refusal comes after
				// the handshake (NOTES.md).
				_ = stranger.Connect(ctx, peer.AddrInfo{ID: sid, Addrs: server.Addrs()})
				if st, err := stranger.NewStream(ctx, sid, ManifestProtocol); err == nil {
					_ = st.Reset()
					t.Fatal("NewStream from a stranger succeeded")
				}
				if err := strangerSvc.PushManifest(ctx, sid, []byte("m")); err == nil {
					t.Fatal("PushManifest from a stranger succeeded")
				}
				if n := calls.Load(); n != 0 {
					t.Fatalf("handler ran %d times for a stranger", n)
				}
			})
			t.Run("we do not dial a stranger", func(t *testing.T) {
				if err := server.Connect(ctx, peer.AddrInfo{ID: strangerID, Addrs: stranger.Addrs()}); err == nil {
					t.Fatal("Connect to a stranger succeeded")
				}
			})
			t.Run("partner can", func(t *testing.T) {
				connect(t, partner, server)
				if err := partnerSvc.PushManifest(ctx, sid, []byte("m")); err != nil {
					t.Fatalf("PushManifest from a partner: %v", err)
				}
				if n := calls.Load(); n != 1 {
					t.Fatalf("handler ran %d times, want 1", n)
				}
			})
			t.Run("removed partner is refused", func(t *testing.T) {
				serverP.remove(pid)
				// Open connections outlive the removal; the node closes
				// them.
				if err := server.Network().ClosePeer(pid); err != nil {
					t.Fatal(err)
				}
				_ = partner.Network().ClosePeer(sid)
				_ = partner.Connect(ctx, peer.AddrInfo{ID: sid, Addrs: server.Addrs()})
				if err := partnerSvc.PushManifest(ctx, sid, []byte("m")); err == nil {
					t.Fatal("PushManifest from a removed partner succeeded")
				}
				if n := calls.Load(); n != 1 {
					t.Fatalf("handler ran %d times, want still 1", n)
				}
			})
			t.Run("re-added partner is admitted", func(t *testing.T) {
				serverP.add(pid)
				_ = partner.Network().ClosePeer(sid)
				connect(t, partner, server)
				if err := partnerSvc.PushManifest(ctx, sid, []byte("m")); err != nil {
					t.Fatalf("PushManifest after re-adding: %v", err)
				}
			})
		})
	}
}

func TestNewHostConfig(t *testing.T) {
	ed, _ := newKey(t)
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  HostConfig
		ok   bool
	}{
		{"ok, dial only", HostConfig{Key: ed, Partners: newPartners()}, true},
		{"no key", HostConfig{Partners: newPartners()}, false},
		{"not ed25519", HostConfig{Key: secp, Partners: newPartners()}, false},
		{"no partners", HostConfig{Key: ed}, false},
		{"negative limit", HostConfig{Key: ed, Partners: newPartners(), Limits: Limits{Streams: -1}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewHost(tt.cfg)
			if h != nil {
				defer h.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("NewHost: %v, want ok %v", err, tt.ok)
			}
			if tt.ok && len(h.Addrs()) != 0 {
				t.Errorf("host without ListenAddrs listens on %v", h.Addrs())
			}
		})
	}
}

func TestLimitsDefaults(t *testing.T) {
	d := DefaultLimits()
	tests := []struct {
		name string
		in   Limits
		want Limits
		ok   bool
	}{
		{"zero", Limits{}, d, true},
		{"partial", Limits{Conns: 10, Memory: 1 << 30}, Limits{Conns: 10, ConnsInbound: d.ConnsInbound, Streams: d.Streams, StreamsInbound: d.StreamsInbound, Memory: 1 << 30, FD: d.FD}, true},
		{"negative memory", Limits{Memory: -1}, Limits{}, false},
		{"negative fd", Limits{FD: -1}, Limits{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.withDefaults()
			if (err == nil) != tt.ok {
				t.Fatalf("withDefaults: %v, want ok %v", err, tt.ok)
			}
			if tt.ok && got != tt.want {
				t.Errorf("withDefaults = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestLimitsApplied checks that the resource manager enforces Limits: a
// host allowed one inbound stream refuses a second concurrent one.
func TestLimitsApplied(t *testing.T) {
	sk, sid := newKey(t)
	ck, cid := newKey(t)
	server, err := NewHost(HostConfig{Key: sk, ListenAddrs: []multiaddr.Multiaddr{loopback(t, "tcp")}, Partners: newPartners(cid), Limits: Limits{StreamsInbound: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client := newHost(t, "tcp", ck, newPartners(sid))
	connect(t, client, server)
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	srv := NewService(server, ServiceConfig{Manifests: manifestFunc(func(context.Context, peer.ID, []byte) error {
		entered <- struct{}{}
		<-release
		return nil
	})})
	defer srv.Close()
	cs := newService(t, client, ServiceConfig{})
	first := make(chan error, 1)
	go func() { first <- cs.PushManifest(context.Background(), sid, []byte("a")) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = cs.PushManifest(ctx, sid, []byte("b"))
	close(release)
	if err == nil {
		t.Error("second concurrent stream admitted with StreamsInbound 1")
	}
	if err := <-first; err != nil {
		t.Errorf("first push: %v", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Error("second stream hung instead of being refused")
	}
}

// TestEarlyRefusal checks that a receiver short of memory refuses a large
// manifest before reading it, and that the refusal ends the pusher's write
// at once instead of leaving it blocked until its deadline.
func TestEarlyRefusal(t *testing.T) {
	sk, sid := newKey(t)
	ck, cid := newKey(t)
	server, err := NewHost(HostConfig{Key: sk, ListenAddrs: []multiaddr.Multiaddr{loopback(t, "tcp")}, Partners: newPartners(cid), Limits: Limits{Memory: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client := newHost(t, "tcp", ck, newPartners(sid))
	connect(t, client, server)
	srv := NewService(server, ServiceConfig{Manifests: manifestFunc(func(context.Context, peer.ID, []byte) error {
		t.Error("handler called")
		return nil
	})})
	defer srv.Close()
	cs := newService(t, client, ServiceConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = cs.PushManifest(ctx, sid, make([]byte, MaxManifestSize))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("PushManifest: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusal took %v", d)
	}
}

// TestTCPFirst: TCP addresses are dialled at once, QUIC ones only after
// quicDelay, whatever order they come in.
func TestTCPFirst(t *testing.T) {
	in := []string{"/ip4/127.0.0.1/udp/4801/quic-v1", "/ip4/127.0.0.1/tcp/4801", "/ip6/::1/udp/4801/quic-v1", "/ip6/::1/tcp/4801"}
	var addrs []multiaddr.Multiaddr
	for _, s := range in {
		addrs = append(addrs, multiaddr.StringCast(s))
	}
	got := tcpFirst(addrs)
	if len(got) != len(in) {
		t.Fatalf("ranked %d addresses, want %d", len(got), len(in))
	}
	for _, ad := range got {
		_, quic := ad.Addr.ValueForProtocol(multiaddr.P_QUIC_V1)
		if want := map[bool]time.Duration{true: 0, false: quicDelay}[quic != nil]; ad.Delay != want {
			t.Errorf("%s: delay %s, want %s", ad.Addr, ad.Delay, want)
		}
	}
}

// TestListenAddrInUse: a node started on addresses another node already
// holds must fail, naming the address, rather than start half-bound or
// share a TCP port through SO_REUSEPORT. The other transport listens on
// port 0 so that libp2p itself has one working address and does not fail
// on its own.
func TestListenAddrInUse(t *testing.T) {
	tests := []struct {
		name      string
		taken     string // transport whose port the second host reuses
		alongside string // transport the second host also listens on, port 0
	}{
		{"tcp", "tcp", "quic"},
		{"quic", "quic", "tcp"},
		{"tcp alone", "tcp", ""},
		{"quic alone", "quic", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k1, _ := newKey(t)
			first := newHost(t, tt.taken, k1, newPartners())
			taken := first.Network().ListenAddresses()
			if len(taken) != 1 {
				t.Fatalf("first host listens on %v, want one address", taken)
			}
			addrs := []multiaddr.Multiaddr{taken[0]}
			if tt.alongside != "" {
				addrs = append(addrs, loopback(t, tt.alongside))
			}
			k2, _ := newKey(t)
			h, err := NewHost(HostConfig{Key: k2, ListenAddrs: addrs, Partners: newPartners()})
			if err == nil {
				got := h.Network().ListenAddresses()
				_ = h.Close()
				t.Fatalf("second host on %s started, listening on %v", taken[0], got)
			}
			if !strings.Contains(err.Error(), "listen on "+taken[0].String()+":") {
				t.Errorf("error %q does not name %s", err, taken[0])
			}
			t.Log(err)
		})
	}
}

// TestListenAddrsBound: every configured address is listened on, port 0
// ones on a port of their own.
func TestListenAddrsBound(t *testing.T) {
	k, _ := newKey(t)
	want := []multiaddr.Multiaddr{loopback(t, "tcp"), loopback(t, "quic")}
	h, err := NewHost(HostConfig{Key: k, ListenAddrs: want, Partners: newPartners()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	have := h.Network().ListenAddresses()
	if len(have) != len(want) {
		t.Fatalf("listening on %v, want %d addresses", have, len(want))
	}
	if missing := unbound(want, have); len(missing) != 0 {
		t.Errorf("unbound(%v, %v) = %v", want, have, missing)
	}
	for _, a := range have {
		if strings.Contains(a.String(), "/0") {
			t.Errorf("listener %s has port 0", a)
		}
	}
}

func TestUnbound(t *testing.T) {
	tests := []struct {
		name string
		want string
		have []string
		ok   bool
	}{
		{"exact tcp", "/ip4/127.0.0.1/tcp/4801", []string{"/ip4/127.0.0.1/tcp/4801"}, true},
		{"exact quic", "/ip4/127.0.0.1/udp/4801/quic-v1", []string{"/ip4/127.0.0.1/tcp/4801", "/ip4/127.0.0.1/udp/4801/quic-v1"}, true},
		{"port 0", "/ip4/127.0.0.1/tcp/0", []string{"/ip4/127.0.0.1/tcp/39211"}, true},
		{"quic port 0", "/ip4/127.0.0.1/udp/0/quic-v1", []string{"/ip4/127.0.0.1/udp/39211/quic-v1"}, true},
		{"any ip4", "/ip4/0.0.0.0/tcp/4801", []string{"/ip4/0.0.0.0/tcp/4801"}, true},
		{"ip6", "/ip6/::1/udp/4801/quic-v1", []string{"/ip6/::1/udp/4801/quic-v1"}, true},
		{"nothing", "/ip4/127.0.0.1/tcp/4801", nil, false},
		{"other port", "/ip4/127.0.0.1/tcp/4801", []string{"/ip4/127.0.0.1/tcp/4802"}, false},
		{"other ip", "/ip4/127.0.0.1/tcp/4801", []string{"/ip4/127.0.0.2/tcp/4801"}, false},
		{"any is not loopback", "/ip4/127.0.0.1/tcp/4801", []string{"/ip4/0.0.0.0/tcp/4801"}, false},
		{"tcp is not udp", "/ip4/127.0.0.1/tcp/4801", []string{"/ip4/127.0.0.1/udp/4801/quic-v1"}, false},
		{"udp without quic", "/ip4/127.0.0.1/udp/4801/quic-v1", []string{"/ip4/127.0.0.1/udp/4801"}, false},
		{"ip4 is not ip6", "/ip4/127.0.0.1/tcp/4801", []string{"/ip6/::1/tcp/4801"}, false},
		{"port 0 wrong transport", "/ip4/127.0.0.1/udp/0/quic-v1", []string{"/ip4/127.0.0.1/tcp/39211"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := multiaddr.StringCast(tt.want)
			var have []multiaddr.Multiaddr
			for _, s := range tt.have {
				have = append(have, multiaddr.StringCast(s))
			}
			missing := unbound([]multiaddr.Multiaddr{want}, have)
			if ok := len(missing) == 0; ok != tt.ok {
				t.Errorf("unbound(%s, %v) = %v, want bound %v", want, have, missing, tt.ok)
			}
		})
	}
}

// TestListenAgain: without SO_REUSEPORT a node restarted on its fixed
// ports must still bind them while its old connections sit in TIME_WAIT
// (Go sets SO_REUSEADDR on TCP listeners).
func TestListenAgain(t *testing.T) {
	sk, sid := newKey(t)
	ck, cid := newKey(t)
	server, err := NewHost(HostConfig{Key: sk, ListenAddrs: []multiaddr.Multiaddr{loopback(t, "tcp"), loopback(t, "quic")}, Partners: newPartners(cid)})
	if err != nil {
		t.Fatal(err)
	}
	addrs := server.Network().ListenAddresses()
	client := newHost(t, "tcp", ck, newPartners(sid))
	connect(t, client, server)
	// The server closes first, so its side of the connection is the one
	// left in TIME_WAIT.
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := NewHost(HostConfig{Key: sk, ListenAddrs: addrs, Partners: newPartners(cid)})
	if err != nil {
		t.Fatalf("restart on %v: %v", addrs, err)
	}
	defer again.Close()
	_ = client.Network().ClosePeer(sid)
	connect(t, client, again)
}
