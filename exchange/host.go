package exchange

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
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
	// all-interfaces defaults.
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
	listen := libp2p.NoListenAddrs
	if len(cfg.ListenAddrs) > 0 {
		listen = libp2p.ListenAddrs(cfg.ListenAddrs...)
	}
	h, err := libp2p.New(
		libp2p.Identity(cfg.Key),
		listen,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(gater{cfg.Partners}),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("pacsnet"),
	)
	if err != nil {
		// libp2p closes rm only on some of its error paths; a second
		// Close is harmless.
		rm.Close()
		return nil, fmt.Errorf("new host: %w", err)
	}
	return h, nil
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
