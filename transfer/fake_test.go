package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// testData is a study's blocks as the fakes serve them.
type testData struct {
	blocks  []Block
	content func(Block) []byte
	verify  func(Block, []byte) error
	corrupt func(Block) []byte // wrong bytes of the right size
}

func (d testData) bytes() int64 {
	var n int64
	for _, b := range d.blocks {
		n += int64(b.Size)
	}
	return n
}

// virtualData is n blocks of size bytes that share one buffer, so that a
// "2 GB study" costs no memory: a block verifies when it is that buffer's
// bytes (marked at both ends), which is cheap; wrong bytes are a copy with
// the marks cleared.
func virtualData(n, size int) testData {
	good := bytes.Repeat([]byte{0x5a}, size)
	bad := make([]byte, size)
	d := testData{
		content: func(b Block) []byte { return good[:b.Size] },
		corrupt: func(b Block) []byte { return bad[:b.Size] },
		verify: func(b Block, data []byte) error {
			if len(data) != b.Size || data[0] != 0x5a || data[len(data)-1] != 0x5a {
				return errors.New("marks do not match")
			}
			return nil
		},
	}
	for i := range n {
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], uint64(i))
		d.blocks = append(d.blocks, Block{CID: sumCID(k[:]), Size: size})
	}
	return d
}

// realData is n blocks of random bytes keyed by their real CIDs (raw,
// SHA2-256), checked by recomputing the CID: what the node will do.
func realData(t testing.TB, n, size int) testData {
	byCID := map[cid.Cid][]byte{}
	d := testData{
		content: func(b Block) []byte { return byCID[b.CID] },
		corrupt: func(b Block) []byte {
			c := bytes.Clone(byCID[b.CID])
			c[len(c)/2] ^= 1
			return c
		},
		verify: func(b Block, data []byte) error {
			if got := sumCID(data); !got.Equals(b.CID) {
				return fmt.Errorf("bytes hash to %s", got)
			}
			return nil
		},
	}
	for range n {
		data := make([]byte, size)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		c := sumCID(data)
		byCID[c] = data
		d.blocks = append(d.blocks, Block{CID: c, Size: size})
	}
	return d
}

func sumCID(data []byte) cid.Cid {
	h, err := mh.Sum(data, mh.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// fake is a source on a simulated link: bytes leave one after another at
// rate (a token bucket without burst, on the clock), each block perBlock
// later still, and arrive rtt/2 after they left; a request reaches the
// holder rtt/2 after it was sent. It can fail, go silent or send wrong
// bytes from its Nth block on (counted over all its requests, from 1).
type fake struct {
	id       string
	clk      Clock
	data     testData
	rate     float64 // bytes per second; 0: no limit
	rtt      time.Duration
	perBlock time.Duration
	failAt   int
	stallAt  int
	badAt    int
	meter    *meter

	mu       sync.Mutex
	linkFree time.Time
	sent     int
	cur, max int // requests in progress, and the most at once
}

func (f *fake) ID() string { return f.id }

func (f *fake) Fetch(ctx context.Context, blocks []Block, got func(Block, []byte) error) error {
	f.meter.request(blocks)
	handed := 0
	defer func() { f.meter.abandon(blocks[handed:]) }()

	now := f.clk.Now()
	at := make([]time.Time, len(blocks))
	took := make([]time.Duration, len(blocks)) // of the link, each block
	f.mu.Lock()
	f.cur++
	f.max = max(f.max, f.cur)
	arrive := now.Add(f.rtt / 2)
	for i, b := range blocks {
		start := arrive
		if f.linkFree.After(start) {
			start = f.linkFree
		}
		d := f.perBlock
		if f.rate > 0 {
			d += time.Duration(float64(b.Size) / f.rate * float64(time.Second))
		}
		f.linkFree = start.Add(d)
		took[i] = d
		at[i] = f.linkFree.Add(f.rtt / 2)
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.cur--
		f.mu.Unlock()
	}()

	for i, b := range blocks {
		if err := sleepUntil(ctx, f.clk, at[i]); err != nil {
			// A cancelled request frees the link of the blocks it will
			// not send, as a reset stream does.
			var unsent time.Duration
			for _, d := range took[i:] {
				unsent += d
			}
			f.mu.Lock()
			if f.linkFree = f.linkFree.Add(-unsent); f.linkFree.Before(f.clk.Now()) {
				f.linkFree = f.clk.Now()
			}
			f.mu.Unlock()
			return err
		}
		f.mu.Lock()
		f.sent++
		n := f.sent
		f.mu.Unlock()
		switch {
		case f.failAt > 0 && n >= f.failAt:
			return errors.New("connection reset")
		case f.stallAt > 0 && n >= f.stallAt:
			<-ctx.Done()
			return ctx.Err()
		}
		data := f.data.content(b)
		if f.badAt > 0 && n >= f.badAt {
			data = f.data.corrupt(b)
		}
		err := f.meter.hand(b, func() error { return got(b, data) })
		handed++
		if err != nil {
			return err
		}
	}
	return nil
}

func sleepUntil(ctx context.Context, clk Clock, at time.Time) error {
	d := at.Sub(clk.Now())
	if d <= 0 {
		return ctx.Err()
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// meter counts, from the outside, the bytes the engine may hold: asked of
// a fake and not yet handed over, or handed over, kept, and not yet given
// to the sink. A block's hand-over and the engine's decision to keep it
// happen under the meter's lock, so nothing is counted twice or missed.
type meter struct {
	mu        sync.Mutex
	cur, peak int64
	kept      map[cid.Cid]bool
}

func newMeter() *meter { return &meter{kept: map[cid.Cid]bool{}} }

func (m *meter) request(bs []Block) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range bs {
		m.cur += int64(b.Size)
	}
	m.peak = max(m.peak, m.cur)
}

func (m *meter) abandon(bs []Block) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range bs {
		m.cur -= int64(b.Size)
	}
}

func (m *meter) hand(b Block, got func() error) error {
	if m == nil {
		return got()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	err := got()
	if err == nil && !m.kept[b.CID] {
		m.kept[b.CID] = true // the engine holds it until the sink's Put
	} else {
		m.cur -= int64(b.Size)
	}
	return err
}

func (m *meter) put(b Block) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur -= int64(b.Size)
}

// sink records what it was given, checks it again, and can be slow or
// fail.
type sink struct {
	verify func(Block, []byte) error
	meter  *meter
	delay  time.Duration // per Put, real time
	failAt int           // the Nth Put fails
	onPut  func(n int)

	mu    sync.Mutex
	puts  map[cid.Cid]int
	n     int
	bytes int64
	bad   int
	times []time.Time // when each Put came, real time
}

func newSink(d testData) *sink { return &sink{verify: d.verify, puts: map[cid.Cid]int{}} }

func (s *sink) Put(ctx context.Context, b Block, data []byte) error {
	s.meter.put(b)
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	s.n++
	n := s.n
	if s.failAt > 0 && n >= s.failAt {
		s.mu.Unlock()
		return errors.New("disk full")
	}
	s.puts[b.CID]++
	s.bytes += int64(len(data))
	if s.verify(b, data) != nil {
		s.bad++
	}
	s.times = append(s.times, time.Now())
	s.mu.Unlock()
	if s.onPut != nil {
		s.onPut(n)
	}
	return nil
}

// check fails t unless the sink took each of want exactly once, all
// verified, and nothing else.
func (s *sink) check(t *testing.T, want []Block) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bad > 0 {
		t.Errorf("sink took %d blocks that do not verify", s.bad)
	}
	for _, b := range want {
		if n := s.puts[b.CID]; n != 1 {
			t.Errorf("sink took block %s %d times, want once", b.CID, n)
		}
	}
	if len(s.puts) != len(want) {
		t.Errorf("sink took %d blocks, want %d", len(s.puts), len(want))
	}
}

// rateOfSecondHalf is the rate at which the sink took the second half of
// the bytes: the steady state, after the windows grew.
func (s *sink) rateOfSecondHalf(blockSize int) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := append([]time.Time(nil), s.times...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	h := len(ts) / 2
	d := ts[len(ts)-1].Sub(ts[h])
	return float64((len(ts)-1-h)*blockSize) / d.Seconds()
}

// fakeClock moves only when told to; timers due by then fire.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.when.After(c.now) {
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	now := c.now
	c.mu.Unlock()
	for _, t := range due {
		t.fire(now)
	}
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

type fakeTimer struct {
	c    *fakeClock
	ch   chan time.Time
	when time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) fire(now time.Time) {
	select {
	case t.ch <- now:
	default:
	}
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	was := t.Stop()
	t.c.mu.Lock()
	t.when = t.c.now.Add(d)
	if d <= 0 {
		now := t.c.now
		t.c.mu.Unlock()
		t.fire(now)
		return was
	}
	t.c.timers = append(t.c.timers, t)
	t.c.mu.Unlock()
	return was
}
