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

// Latency, jitter and loss sit in a wrapper of the host each node is
// given, not in mocknet. Mocknet delays every write by the link's
// latency plus what its rate limiter says, and a stream delivers one
// write at a time: a write is handed over only once the previous one has
// arrived, so a stream moved one write per one-way latency (a 128 KiB
// block every 25 ms is 5 MB/s, whatever the link's bandwidth), which is
// no network's behaviour and capped fast links at 20–50 MB/s. A link's
// options cannot vary per write either without emptying its rate
// limiter's account (SetOptions resets it). So mocknet's links carry
// the bandwidth only (latency 0), and every stream the node opens or
// accepts is wrapped: a write is queued at once (up to streamWindow
// bytes per stream, as a TCP send buffer holds them) and handed to
// mocknet's stream, in order, when its one-way latency (plus its jitter,
// plus a retransmission timeout if it lost a segment) has passed. Writes
// are in flight together, as on a TCP connection with a window; a
// hold-up delays the rest of its stream (a stream is in order), not the
// other streams on the link. Only the node's protocols are wrapped (they
// use NewStream and SetStreamHandler); libp2p's own identify crosses a
// link without its latency.

// streamWindow is how many bytes one stream may have written and not yet
// delivered: Linux's default largest TCP buffer (net.ipv4.tcp_rmem), a
// window that fills a 1 Gbit/s link at 50 ms.
const streamWindow = 6 << 20

// segment is the TCP payload a loss is counted in (an Ethernet MTU).
const segment = 1460

// minRTO is Linux's smallest retransmission timeout: a lost segment
// that fast retransmit does not recover stalls its connection this long
// at least.
const minRTO = 200 * time.Millisecond

// impairment is one link's latency, jitter and loss; the jitter and loss
// are drawn from the link's own PCG stream: the sequence of draws is
// fixed by the seed and the link's nodes; which write gets which draw
// depends on the scheduling.
type impairment struct {
	spec LinkSpec

	mu     sync.Mutex
	r      *rand.Rand
	writes int64
	held   time.Duration // jitter added in all
	stalls int64         // writes that lost a segment
}

// delay draws the hold-up of one write of n bytes: the one-way latency,
// uniform jitter in [0, Jitter], plus one retransmission timeout
// (max(minRTO, RTT)) if any of its segments is lost.
func (im *impairment) delay(n int) time.Duration {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.spec.Jitter <= 0 && im.spec.Loss <= 0 {
		im.writes++
		return im.spec.RTT / 2
	}
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
	return im.spec.RTT/2 + d
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

// setImpairment records a link's latency, jitter and loss, keeping the
// link's random stream across changes of its spec.
func (s *Sim) setImpairment(a, b *Node, spec LinkSpec) {
	key := pairOf(a, b)
	s.imu.Lock()
	defer s.imu.Unlock()
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
	is := &impairedStream{Stream: st, sim: s, key: [2]peer.ID{a, b}}
	is.cond = sync.NewCond(&is.mu)
	return is
}

// impairedStream queues each write and hands it to mocknet's stream when
// its link says it arrives (see the top of this file).
type impairedStream struct {
	network.Stream
	sim *Sim
	key [2]peer.ID

	mu      sync.Mutex
	cond    *sync.Cond    // the queue shrank, or the stream failed
	q       []queuedWrite // in order
	queued  int           // bytes in q
	last    time.Time     // when the last write queued arrives
	sending bool          // deliver runs
	err     error         // mocknet's stream failed, or Reset
}

type queuedWrite struct {
	p   []byte
	due time.Time
}

func (st *impairedStream) Write(p []byte) (int, error) {
	var d time.Duration
	if im := st.sim.impairmentOf(st.key); im != nil {
		d = im.delay(len(p))
	}
	due := time.Now().Add(d)
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.err == nil && st.queued > 0 && st.queued+len(p) > streamWindow {
		st.cond.Wait()
	}
	if st.err != nil {
		return 0, st.err
	}
	if due.Before(st.last) {
		due = st.last // in order: nothing overtakes what was written before it
	}
	st.last = due
	st.q = append(st.q, queuedWrite{p: append([]byte(nil), p...), due: due})
	st.queued += len(p)
	if !st.sending {
		st.sending = true
		go st.deliver()
	}
	return len(p), nil
}

// deliver hands the queued writes to mocknet's stream when they are due,
// and ends when the queue is empty.
func (st *impairedStream) deliver() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for len(st.q) > 0 && st.err == nil {
		w := st.q[0]
		st.mu.Unlock()
		if wait := time.Until(w.due); wait > 0 {
			time.Sleep(wait)
		}
		_, err := st.Stream.Write(w.p)
		st.mu.Lock()
		if err != nil && st.err == nil {
			st.err = err
		}
		if len(st.q) > 0 {
			st.q[0] = queuedWrite{}
			st.q = st.q[1:]
			st.queued -= len(w.p)
		}
		st.cond.Broadcast()
	}
	st.q, st.queued, st.sending = nil, 0, false
	st.cond.Broadcast()
}

// flush waits until every queued write was handed to mocknet's stream.
func (st *impairedStream) flush() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for st.sending {
		st.cond.Wait()
	}
	return st.err
}

func (st *impairedStream) Close() error {
	st.flush()
	return st.Stream.Close()
}

func (st *impairedStream) CloseWrite() error {
	st.flush()
	return st.Stream.CloseWrite()
}

func (st *impairedStream) Reset() error {
	st.mu.Lock()
	if st.err == nil {
		st.err = network.ErrReset
	}
	st.cond.Broadcast()
	st.mu.Unlock()
	return st.Stream.Reset()
}
