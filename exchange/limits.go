package exchange

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Limits are the host-wide (resource manager "system" scope) limits. The
// narrower scopes (transient, per peer, per connection, per protocol) are
// derived from them with go-libp2p's scaling rules, except that a single
// stream may hold a whole manifest. Limits are fixed: they do not scale
// with the machine the node happens to run on, so that a node behaves the
// same wherever it is deployed.
//
// A zero field takes its value from [DefaultLimits].
type Limits struct {
	// Conns is the most open connections, inbound and outbound together.
	Conns int
	// ConnsInbound is the most connections that partners opened to us.
	ConnsInbound int
	// Streams is the most open streams, inbound and outbound together.
	Streams int
	// StreamsInbound is the most streams that partners opened to us.
	StreamsInbound int
	// Memory is the most bytes that the libp2p stack (muxer windows,
	// frames being received) may hold.
	Memory int64
	// FD is the most file descriptors (sockets) the host may use.
	FD int
}

// DefaultLimits returns the limits used for zero fields of [Limits]. They
// are sized for a federation of tens to a few hundred facilities, each
// with a TCP and a QUIC connection and a handful of concurrent transfers:
//
//   - Conns 256, ConnsInbound 128: two connections per partner with room
//     for dial races and reconnects.
//   - Streams 2048, StreamsInbound 1024: a transfer is one stream, a
//     manifest push is one short-lived stream.
//   - Memory 512 MiB: muxer windows grow to 16 MiB per busy stream and a
//     manifest being received holds up to [MaxManifestSize]; a hospital
//     server can afford this, and beyond it new streams wait or fail
//     rather than exhaust the machine.
//   - FD 512: one per connection, listeners and some slack.
func DefaultLimits() Limits {
	return Limits{
		Conns:          256,
		ConnsInbound:   128,
		Streams:        2048,
		StreamsInbound: 1024,
		Memory:         512 << 20,
		FD:             512,
	}
}

// withDefaults fills zero fields from DefaultLimits and rejects negative
// ones, which rcmgr would read as "unlimited" or "block all".
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits()
	fill := func(name string, v *int, def int) error {
		switch {
		case *v < 0:
			return fmt.Errorf("limit %s is negative: %d", name, *v)
		case *v == 0:
			*v = def
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"Conns", &l.Conns, d.Conns},
		{"ConnsInbound", &l.ConnsInbound, d.ConnsInbound},
		{"Streams", &l.Streams, d.Streams},
		{"StreamsInbound", &l.StreamsInbound, d.StreamsInbound},
		{"FD", &l.FD, d.FD},
	} {
		if err := fill(f.name, f.v, f.def); err != nil {
			return l, err
		}
	}
	switch {
	case l.Memory < 0:
		return l, fmt.Errorf("limit Memory is negative: %d", l.Memory)
	case l.Memory == 0:
		l.Memory = d.Memory
	}
	return l, nil
}

// streamMemory is what one stream may reserve: a whole manifest frame
// with room to spare. rcmgr's own default (16 MiB) is smaller than
// MaxManifestSize, so a maximal manifest could never be received.
const streamMemory = MaxManifestSize + 4<<20

// blockFetchMemory is what one fetch's block streams reserve at most at
// once: a block is reserved from when it is read off a stream until got
// returns, so only blocks requested and not yet taken are ever reserved.
// The node's transfer engine keeps at most 32 MiB of a fetch in flight,
// spread over the several streams (some 4 to 16) it opens to a holder;
// each stream reads at most fetchAhead+2 blocks ahead.
const blockFetchMemory = 32 << 20

// peerMemory is what one partner's streams of one protocol (or of the
// exchange service) may reserve together: three maximal manifests, and
// two fetches from it at once at the engine's full budget. (It was three
// manifests and 16 MiB while a fetch was one stream of fetchAhead
// blocks; with several streams a second fetch from the same holder
// could fail a reservation.)
const peerMemory = 3*MaxManifestSize + 2*blockFetchMemory

// serviceMemory is what the exchange's streams to and from all partners
// may reserve together: eight fetches at their full budget, half of the
// default Memory. rcmgr's scaled default (128 MiB) held four.
const serviceMemory = 8 * blockFetchMemory

// limitConfig turns l (with defaults applied) into the fixed rcmgr
// configuration.
func (l Limits) limitConfig() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	// Keeps libp2p's own protocols (identify, ping) in their small budgets.
	libp2p.SetDefaultServiceLimits(&scaling)
	base := scaling.Scale(l.Memory, l.FD)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:           rcmgr.LimitVal(l.Conns),
			ConnsInbound:    rcmgr.LimitVal(l.ConnsInbound),
			ConnsOutbound:   rcmgr.LimitVal(l.Conns),
			Streams:         rcmgr.LimitVal(l.Streams),
			StreamsInbound:  rcmgr.LimitVal(l.StreamsInbound),
			StreamsOutbound: rcmgr.LimitVal(l.Streams),
			Memory:          rcmgr.LimitVal64(l.Memory),
			FD:              rcmgr.LimitVal(l.FD),
		},
		Stream: rcmgr.ResourceLimits{
			Memory: rcmgr.LimitVal64(streamMemory),
		},
		Service: map[string]rcmgr.ResourceLimits{
			ServiceName: {Memory: rcmgr.LimitVal64(serviceMemory)},
		},
		// rcmgr's per-peer defaults for a service and for a protocol
		// (about 16 MiB) would let a partner have only one maximal
		// manifest in flight; allow a few, next to block transfers.
		// Their stream counts (rcmgr's: 66 inbound, 132 outbound per
		// partner and protocol) leave room for the engine's streams.
		ServicePeerDefault: rcmgr.ResourceLimits{
			Memory: rcmgr.LimitVal64(peerMemory),
		},
		ProtocolPeerDefault: rcmgr.ResourceLimits{
			Memory: rcmgr.LimitVal64(peerMemory),
		},
	}
	return partial.Build(base)
}
