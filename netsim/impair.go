package netsim

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Jitter and loss are what mocknet lacks. Its links delay every write
// by a fixed latency plus what the rate limiter says, and a stream
// delivers one write at a time: a write is handed over only once the
// previous one has arrived. A link's options cannot vary per write
// without emptying its rate limiter's account (SetOptions resets it, so
// changing the latency often would let a busy link run faster than its
// bandwidth). So the impairments sit one level up, in a wrapper of the
// host each node is given: every stream the node opens or accepts is
// wrapped, and each write on a link with Jitter or Loss is held back
// before it enters mocknet's stream. Like mocknet's own latency, the
// hold-up delays the rest of that stream (a stream is in order, as a
// TCP connection is), not the other streams on the link. Only the
// node's protocols are impaired (they use NewStream and
// SetStreamHandler); libp2p's own identify is not.

// segment is the TCP payload a loss is counted in (an Ethernet MTU).
const segment = 1460

// minRTO is Linux's smallest retransmission timeout: a lost segment
// that fast retransmit does not recover stalls its connection this long
// at least.
const minRTO = 200 * time.Millisecond

// impairment is one link's jitter and loss, drawn from its own PCG
// stream: the sequence of draws is fixed by the seed and the link's
// nodes; which write gets which draw depends on the scheduling.
type impairment struct {
	spec LinkSpec

	mu     sync.Mutex
	r      *rand.Rand
	writes int64
	held   time.Duration // jitter added in all
	stalls int64         // writes that lost a segment
}

// delay draws the hold-up of one write of n bytes: uniform jitter in
// [0, Jitter], plus one retransmission timeout (max(minRTO, RTT)) if
// any of its segments is lost.
func (im *impairment) delay(n int) time.Duration {
	im.mu.Lock()
	defer im.mu.Unlock()
	j, l := im.r.Float64(), im.r.Float64()
	d := time.Duration(j * float64(im.spec.Jitter))
	im.writes++
	im.held += d
	if im.spec.Loss > 0 {
		segs := float64((n + segment - 1) / segment)
		if l < 1-math.Pow(1-im.spec.Loss, segs) {
			d += max(minRTO, im.spec.RTT)
			im.stalls++
		}
	}
	return d
}

// ImpairStats is what a link's impairments did.
type ImpairStats struct {
	Writes int64         `json:"writes"` // writes on the link's streams
	Jitter time.Duration `json:"jitter_ns"`
	Stalls int64         `json:"stalls"` // writes held back a retransmission timeout
}

// Impairments reports what jitter and loss did on the link between a
// and b since it was first given them.
func (s *Sim) Impairments(a, b *Node) ImpairStats {
	s.imu.RLock()
	im := s.impaired[pairOf(a, b)]
	s.imu.RUnlock()
	if im == nil {
		return ImpairStats{}
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	return ImpairStats{Writes: im.writes, Jitter: im.held, Stalls: im.stalls}
}

// setImpairment records a link's jitter and loss (none: removes them),
// keeping the link's random stream across changes of its spec.
func (s *Sim) setImpairment(a, b *Node, spec LinkSpec) {
	key := pairOf(a, b)
	s.imu.Lock()
	defer s.imu.Unlock()
	if spec.Jitter <= 0 && spec.Loss <= 0 {
		delete(s.impaired, key)
		return
	}
	if im := s.impaired[key]; im != nil {
		im.mu.Lock()
		im.spec = spec
		im.mu.Unlock()
		return
	}
	if s.impaired == nil {
		s.impaired = map[[2]peer.ID]*impairment{}
	}
	lo, hi := min(a.idx, b.idx), max(a.idx, b.idx)
	s.impaired[key] = &impairment{spec: spec, r: rand.New(rand.NewPCG(s.Seed, uint64(lo)<<32|uint64(hi)))}
}

func (s *Sim) impairmentOf(key [2]peer.ID) *impairment {
	s.imu.RLock()
	defer s.imu.RUnlock()
	return s.impaired[key]
}

// impairedHost is the host a node is given: mocknet's, with the streams
// of the node's protocols wrapped.
type impairedHost struct {
	host.Host
	sim *Sim
}

func (h impairedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	st, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return h.sim.wrapStream(st), nil
}

func (h impairedHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(st network.Stream) { handler(h.sim.wrapStream(st)) })
}

func (h impairedHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(st network.Stream) { handler(h.sim.wrapStream(st)) })
}

func (s *Sim) wrapStream(st network.Stream) network.Stream {
	c := st.Conn()
	a, b := c.LocalPeer(), c.RemotePeer()
	if b < a {
		a, b = b, a
	}
	return &impairedStream{Stream: st, sim: s, key: [2]peer.ID{a, b}}
}

// impairedStream holds each write back as its link's impairment says.
// The link is looked up on every write: jitter and loss given to a link
// later apply to the streams already open on it.
type impairedStream struct {
	network.Stream
	sim *Sim
	key [2]peer.ID
}

func (st *impairedStream) Write(p []byte) (int, error) {
	if im := st.sim.impairmentOf(st.key); im != nil {
		if d := im.delay(len(p)); d > 0 {
			time.Sleep(d)
		}
	}
	return st.Stream.Write(p)
}
