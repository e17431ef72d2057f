package exchange

import (
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// ClearDialBackoff forgets libp2p's dial backoff for p, so that the next
// dial is tried at once: callers that pace their own retries (the outbox,
// a fetch waiting for its holder) use it before each retry. Hosts without
// a swarm (mocknet) have no dial backoff, and nothing happens.
func ClearDialBackoff(h host.Host, p peer.ID) {
	if sw, ok := h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}
