package exchange

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/multiformats/go-multiaddr"
)

// Partners answers whether a peer is an admitted partner facility. The set
// changes at run time; IsPartner is called for every connection attempt,
// from libp2p's goroutines, so it must be fast and safe for concurrent use.
type Partners interface {
	IsPartner(peer.ID) bool
}

// HostConfig configures [NewHost].
type HostConfig struct {
	// Key is the facility's libp2p identity; it must be Ed25519.
	Key crypto.PrivKey
	// ListenAddrs are the addresses to listen on, for example
	// /ip4/127.0.0.1/tcp/4801 and /ip4/127.0.0.1/udp/4801/quic-v1. Empty
	// means the host only dials: it never falls back to libp2p's
	// all-interfaces defaults. Every address must be listened on or
	// NewHost fails; port 0 takes a free port.
	ListenAddrs []multiaddr.Multiaddr
	// Partners decides who may connect, in either direction. Required.
	Partners Partners
	// Limits are the resource-manager limits; zero fields take their
	// value from DefaultLimits.
	Limits Limits
}

// NewHost builds the libp2p host a pacsnet node runs: TCP and QUIC
// transports; Noise (preferred) and TLS security; yamux; a connection
// gater that admits only [Partners] on inbound and outbound connections;
// a resource manager with fixed [Limits]. There is no relay, NAT port
// mapping, mDNS or hole punching, and no metrics are registered globally.
//
// NewHost fails, naming the address, when any of cfg.ListenAddrs cannot be
// listened on, typically because another node holds the port; ports are
// never shared with another process (no SO_REUSEPORT).
//
// Membership is decided on both sides, but only the accepting side's
// decision is reliable: when a remote gater refuses us, our Connect may
// still return nil (the refusal comes after the security handshake), and
// the connection dies right after. Callers must not read admission from
// Connect.
//
// Removing a partner refuses its next connections; connections already
// open stay open until closed (host.Network().ClosePeer).
//
// The caller closes the host.
func NewHost(cfg HostConfig) (host.Host, error) {
	if cfg.Key == nil {
		return nil, errors.New("new host: no key")
	}
	if t := cfg.Key.Type(); t != crypto.Ed25519 {
		return nil, fmt.Errorf("new host: key type %v, want Ed25519", t)
	}
	if cfg.Partners == nil {
		return nil, errors.New("new host: no partners")
	}
	limits, err := cfg.Limits.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new host: %w", err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.limitConfig()), rcmgr.WithMetricsDisabled())
	if err != nil {
		return nil, fmt.Errorf("new host: resource manager: %w", err)
	}
	// libp2p.ListenAddrs is not used: libp2p fails only when no address
	// at all can be listened on, logging and dropping the others, and on
	// that failure it leaks the host's goroutines. A node half bound (TCP
	// up, QUIC port taken) would look healthy and be unreachable over the
	// other transport, so each address is listened on here and any
	// failure is fatal.
	h, err := libp2p.New(
		libp2p.Identity(cfg.Key),
		libp2p.NoListenAddrs,
		// With SO_REUSEPORT (libp2p's default) a second node binds the
		// same TCP port as a running one and the kernel splits inbound
		// connections between them. QUIC needs no option: quicreuse binds
		// its UDP sockets without SO_REUSEPORT, and its own "reuseport"
		// only shares a listening socket with this host's dials.
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.Transport(quic.NewTransport),
		// TLS first, as libp2p's defaults: Go's TLS 1.3 picks AES-GCM on
		// CPUs with AES instructions, twice the speed of the
		// ChaCha20-Poly1305 that Noise uses (a tenth of a fetch's CPU).
		// Noise is still accepted and offered second.
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(gater{cfg.Partners}),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirst)),
		libp2p.UserAgent("pacsnet"),
	)
	if err != nil {
		// libp2p closes rm only on some of its error paths; a second
		// Close is harmless.
		rm.Close()
		return nil, fmt.Errorf("new host: %w", err)
	}
	if err := listen(h.Network(), cfg.ListenAddrs); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("new host: %w", err)
	}
	return h, nil
}

// listen listens on every address in addrs, or fails. The host's
// addresses are updated as each listener starts (basichost's
// addrsManager does so synchronously on the swarm's Listen event).
func listen(n network.Network, addrs []multiaddr.Multiaddr) error {
	// The swarm's AddListenAddr returns the listener's own error (such
	// as "bind: address already in use"); Network.Listen wraps it in
	// "failed to listen on any addresses".
	add := func(a multiaddr.Multiaddr) error { return n.Listen(a) }
	if s, ok := n.(interface {
		AddListenAddr(multiaddr.Multiaddr) error
	}); ok {
		add = s.AddListenAddr
	}
	for _, a := range addrs {
		if err := add(a); err != nil {
			return fmt.Errorf("listen on %s: %w", a, err)
		}
	}
	// A transport could accept an address and listen on another one;
	// what is advertised must be what was asked for.
	if missing := unbound(addrs, n.ListenAddresses()); len(missing) > 0 {
		return fmt.Errorf("listen on %s: not bound (address in use?)", missing[0])
	}
	return nil
}

// quicDelay is how long a dial waits for TCP before it also tries QUIC.
const quicDelay = 250 * time.Millisecond

// tcpFirst ranks a partner's addresses TCP first, QUIC quicDelay later.
// libp2p's default prefers QUIC, but where the host's UDP buffers are
// below what quic-go asks for (net.core.rmem_max, 4 MiB on Debian's
// defaults against 7.5 MB wanted) QUIC moved blocks at a third of TCP's
// rate in our benchmarks (docs/performance.md), so QUIC is the fallback for
// networks that block TCP rather than the first choice.
func tcpFirst(addrs []multiaddr.Multiaddr) []network.AddrDelay {
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		d := time.Duration(0)
		if _, err := a.ValueForProtocol(multiaddr.P_QUIC_V1); err == nil {
			d = quicDelay
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	return out
}

// gater admits only partners. The peer is unknown until the security
// handshake, so inbound connections are judged in InterceptSecured;
// outbound ones are refused before dialling.
type gater struct {
	partners Partners
}

func (g gater) InterceptPeerDial(p peer.ID) bool { return g.partners.IsPartner(p) }

func (g gater) InterceptAddrDial(p peer.ID, _ multiaddr.Multiaddr) bool {
	return g.partners.IsPartner(p)
}

func (g gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.partners.IsPartner(p)
}

func (g gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// unbound returns the addresses in want that no listener in have serves.
// A listener serves an address when it has the same protocols with the
// same values, except that a port 0 in want matches any port.
func unbound(want, have []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	var missing []multiaddr.Multiaddr
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h multiaddr.Multiaddr) bool { return serves(h, w) }) {
			missing = append(missing, w)
		}
	}
	return missing
}

func serves(have, want multiaddr.Multiaddr) bool {
	if len(have) != len(want) {
		return false
	}
	for i, w := range want {
		h := have[i]
		if h.Code() != w.Code() {
			return false
		}
		if (w.Code() == multiaddr.P_TCP || w.Code() == multiaddr.P_UDP) && w.Value() == "0" {
			continue
		}
		if !bytes.Equal(h.RawValue(), w.RawValue()) {
			return false
		}
	}
	return true
}
