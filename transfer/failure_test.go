package transfer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestBoundedMemory: a 2 GiB study from four sources far faster than the
// sink never has more than MaxInFlight bytes requested or waiting for the
// sink, as the fakes and the sink count them from outside, and as the
// engine counts them itself.
func TestBoundedMemory(t *testing.T) {
	const maxInFlight = 8 * mib
	d := virtualData(2048, 1*mib) // 2 GiB of 1 MiB blocks, as pacsnet cuts them
	m := newMeter()
	s := newSink(d)
	s.meter = m
	s.onPut = func(n int) {
		if n%16 == 0 {
			time.Sleep(time.Millisecond) // a synced batch write now and then
		}
	}
	srcs, _ := fakes(SystemClock(), d, m, link{}, link{}, link{rtt: time.Millisecond}, link{perBlock: 100 * time.Microsecond})
	res, err := Fetch(context.Background(), plan(d, s), srcs, Options{MaxInFlight: maxInFlight})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	t.Logf("%s in %v; peak %d KiB (meter) %d KiB (engine) of %d KiB", fmtBytes(res.Bytes), res.Duration, m.peak/kib, res.PeakInFlight/kib, maxInFlight/kib)
	if m.peak > maxInFlight || res.PeakInFlight > maxInFlight {
		t.Errorf("peak in flight %d (meter) %d (engine), above %d", m.peak, res.PeakInFlight, maxInFlight)
	}
	if m.cur != 0 {
		t.Errorf("meter ends at %d bytes, want 0", m.cur)
	}
}

// TestOversizeBlock: a block larger than MaxInFlight is still fetched,
// alone.
func TestOversizeBlock(t *testing.T) {
	d := virtualData(4, 2*mib)
	m := newMeter()
	s := newSink(d)
	s.meter = m
	srcs, _ := fakes(SystemClock(), d, m, link{}, link{})
	res, err := Fetch(context.Background(), plan(d, s), srcs, Options{MaxInFlight: 1 * mib})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	if m.peak > 2*mib {
		t.Errorf("peak %d: more than the one oversize block in flight", m.peak)
	}
	_ = res
}

// TestAllSourcesFail: when every source fails the error names each and
// why; what reached the sink stays there, and a second run with the
// missing blocks fetches only those.
func TestAllSourcesFail(t *testing.T) {
	d := virtualData(100, 64*kib)
	s := newSink(d)
	srcs, _ := fakes(SystemClock(), d, nil,
		link{rate: 16 * mib, failAt: 20},
		link{rate: 16 * mib, badAt: 15},
		link{rate: 16 * mib, stallAt: 10})
	res, err := Fetch(context.Background(), plan(d, s), srcs, Options{StallTimeout: 50 * time.Millisecond})
	var se *SourcesError
	if !errors.As(err, &se) || !errors.Is(err, ErrAllFailed) {
		t.Fatalf("Fetch: %v, want a *SourcesError matching ErrAllFailed", err)
	}
	t.Log(err)
	for _, want := range []error{ErrCorrupt, ErrStalled} {
		if !errors.Is(err, want) {
			t.Errorf("error does not match %v", want)
		}
	}
	if !strings.Contains(err.Error(), "s0: connection reset") {
		t.Errorf("error does not name s0 and why: %v", err)
	}
	states := []State{StateFailed, StateCorrupt, StateStalled}
	for i, sr := range res.Sources {
		if sr.State != states[i] {
			t.Errorf("%s: %v, want %v", sr.ID, sr.State, states[i])
		}
	}
	if res.Blocks == 0 || len(res.Missing) == 0 || res.Blocks+len(res.Missing) != len(d.blocks) || se.Missing != len(res.Missing) {
		t.Fatalf("%d blocks delivered, %d missing (error says %d), of %d", res.Blocks, len(res.Missing), se.Missing, len(d.blocks))
	}
	s.mu.Lock()
	if len(s.puts) != res.Blocks {
		t.Errorf("sink took %d blocks, result says %d", len(s.puts), res.Blocks)
	}
	for _, b := range res.Missing {
		if s.puts[b.CID] != 0 {
			t.Errorf("block %s listed missing but the sink has it", b.CID)
		}
	}
	s.mu.Unlock()

	// Resume with the rest.
	srcs, fs := fakes(SystemClock(), d, nil, link{rate: 64 * mib})
	p := plan(d, s)
	p.Blocks = res.Missing
	res2, err := Fetch(context.Background(), p, srcs, Options{})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	s.check(t, d.blocks)
	if res2.Blocks != len(res.Missing) || fs[0].sent != len(res.Missing) {
		t.Errorf("resume delivered %d blocks, source sent %d; want %d", res2.Blocks, fs[0].sent, len(res.Missing))
	}
}

// TestStallOnFakeClock: the stall timeout runs on the clock it is given:
// a silent source is dropped when the fake clock passes StallTimeout,
// not before.
func TestStallOnFakeClock(t *testing.T) {
	clk := newFakeClock()
	d := virtualData(10, 64*kib)
	s := newSink(d)
	two := make(chan struct{})
	s.onPut = func(n int) {
		if n == 2 {
			close(two)
		}
	}
	srcs, _ := fakes(clk, d, nil, link{stallAt: 3})
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Fetch(context.Background(), plan(d, s), srcs, Options{Clock: clk, StallTimeout: time.Minute})
		done <- outcome{res, err}
	}()
	<-two
	// Real time passes; fake time does not: the source is not dropped.
	select {
	case o := <-done:
		t.Fatalf("Fetch returned before the clock moved: %v", o.err)
	case <-time.After(50 * time.Millisecond):
	}
	clk.Advance(59 * time.Second)
	select {
	case o := <-done:
		t.Fatalf("Fetch returned before StallTimeout: %v", o.err)
	case <-time.After(20 * time.Millisecond):
	}
	var o outcome
	for o.res.Sources == nil {
		clk.Advance(time.Second)
		select {
		case o = <-done:
		case <-time.After(5 * time.Millisecond):
		}
	}
	if !errors.Is(o.err, ErrStalled) || !errors.Is(o.err, ErrAllFailed) {
		t.Fatalf("Fetch: %v, want ErrStalled and ErrAllFailed", o.err)
	}
	if o.res.Blocks != 2 || len(o.res.Missing) != 8 || o.res.Sources[0].State != StateStalled {
		t.Errorf("%d blocks, %d missing, source %v; want 2, 8, stalled", o.res.Blocks, len(o.res.Missing), o.res.Sources[0].State)
	}
}

// TestCancel: cancelling the context stops every request and the sink at
// once, and leaves no goroutine behind.
func TestCancel(t *testing.T) {
	defer goleak.VerifyNone(t)
	d := virtualData(1000, 64*kib)
	s := newSink(d)
	ctx, cancel := context.WithCancel(context.Background())
	s.onPut = func(n int) {
		if n == 10 {
			cancel()
		}
	}
	srcs, _ := fakes(SystemClock(), d, nil, link{rate: 8 * mib}, link{rate: 8 * mib, rtt: 5 * time.Millisecond}, link{stallAt: 5})
	start := time.Now()
	res, err := Fetch(ctx, plan(d, s), srcs, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v to stop", d)
	}
	if res.Blocks < 10 || res.Blocks+len(res.Missing) != len(d.blocks) {
		t.Errorf("%d delivered, %d missing, of %d", res.Blocks, len(res.Missing), len(d.blocks))
	}
	for _, sr := range res.Sources {
		if sr.State != StateActive && sr.ID != "s2" {
			t.Errorf("%s dropped (%v): cancelling is not the source's fault", sr.ID, sr.Err)
		}
	}
}

// TestSinkFails: an error from the sink ends the transfer with that error.
func TestSinkFails(t *testing.T) {
	d := virtualData(100, 64*kib)
	s := newSink(d)
	s.failAt = 7
	srcs, _ := fakes(SystemClock(), d, nil, link{}, link{rate: 16 * mib})
	res, err := Fetch(context.Background(), plan(d, s), srcs, Options{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Fetch: %v, want the sink's error", err)
	}
	if res.Blocks != 6 || len(res.Missing) != 94 {
		t.Errorf("%d delivered, %d missing; want 6, 94", res.Blocks, len(res.Missing))
	}
}

// rogue sends a block it was not asked for.
type rogue struct{ d testData }

func (r rogue) ID() string { return "rogue" }
func (r rogue) Fetch(ctx context.Context, blocks []Block, got func(Block, []byte) error) error {
	other := r.d.blocks[len(r.d.blocks)-1]
	if blocks[0] == other {
		other = r.d.blocks[0]
	}
	return got(other, r.d.content(other))
}

// lazy answers nil without sending anything.
type lazy struct{}

func (lazy) ID() string { return "lazy" }
func (lazy) Fetch(ctx context.Context, blocks []Block, got func(Block, []byte) error) error {
	return nil
}

// checker found the bytes it received wrong itself, as exchange's
// FetchBlocks does (ErrBadBlock), and says so.
type checker struct{}

func (checker) ID() string { return "checker" }
func (checker) Fetch(ctx context.Context, blocks []Block, got func(Block, []byte) error) error {
	return fmt.Errorf("fetch blocks: %w: block %s does not match its CID", ErrCorrupt, blocks[0].CID)
}

// TestMisbehavingSource: a source that sends a block it was not asked
// for is dropped as corrupt, and so is one that reports bytes it checked
// as corrupt; one that ends a request without sending is dropped as
// failed; the good source finishes.
func TestMisbehavingSource(t *testing.T) {
	d := virtualData(50, 64*kib)
	s := newSink(d)
	good, _ := fakes(SystemClock(), d, nil, link{rate: 8 * mib})
	res, err := Fetch(context.Background(), plan(d, s), []Source{rogue{d}, lazy{}, checker{}, good[0]}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	if st := res.Sources[0]; st.State != StateCorrupt || !errors.Is(st.Err, ErrCorrupt) {
		t.Errorf("rogue: %v, %v", st.State, st.Err)
	}
	if st := res.Sources[1]; st.State != StateFailed {
		t.Errorf("lazy: %v, %v", st.State, st.Err)
	}
	if st := res.Sources[2]; st.State != StateCorrupt {
		t.Errorf("checker: %v, %v", st.State, st.Err)
	}
}

// TestProgress: reports come at most every ProgressEvery on the engine's
// clock (and once more at the end), count up, and end at the totals.
func TestProgress(t *testing.T) {
	d := virtualData(200, 64*kib)
	s := newSink(d)
	srcs, _ := fakes(SystemClock(), d, nil, link{rate: 32 * mib, rtt: 2 * time.Millisecond}, link{rate: 16 * mib})
	var ps []Progress
	var calls atomic.Int32
	const every = 40 * time.Millisecond
	_, err := Fetch(context.Background(), plan(d, s), srcs, Options{ProgressEvery: every, Progress: func(p Progress) {
		calls.Add(1)
		ps = append(ps, p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) < 4 {
		t.Fatalf("%d reports, want several", len(ps))
	}
	for i := 1; i < len(ps); i++ {
		a, b := ps[i-1], ps[i]
		if i < len(ps)-1 && b.Time.Sub(a.Time) < every {
			t.Errorf("reports %d and %d %v apart", i-1, i, b.Time.Sub(a.Time))
		}
		if b.BytesDone < a.BytesDone || b.BlocksDone < a.BlocksDone {
			t.Errorf("report %d went back", i)
		}
	}
	mid, last := ps[len(ps)/2], ps[len(ps)-1]
	if mid.Rate <= 0 || mid.ETA <= 0 || len(mid.Sources) != 2 || mid.Sources[0].Bytes == 0 {
		t.Errorf("mid-way report: %+v", mid)
	}
	if last.BlocksDone != 200 || last.BlocksTotal != 200 || last.BytesDone != d.bytes() || last.BytesTotal != d.bytes() {
		t.Errorf("last report: %d/%d blocks, %d/%d bytes", last.BlocksDone, last.BlocksTotal, last.BytesDone, last.BytesTotal)
	}
	t.Logf("%d reports; mid-way %.0f MiB/s, ETA %v", len(ps), mid.Rate/mib, mid.ETA)
}

// TestPlanErrors: a plan the engine cannot run is refused before
// anything starts.
func TestPlanErrors(t *testing.T) {
	d := virtualData(3, kib)
	s := newSink(d)
	srcs, _ := fakes(SystemClock(), d, nil, link{})
	tests := []struct {
		name string
		plan Plan
		srcs []Source
		want string
	}{
		{"no verify", Plan{Blocks: d.blocks, Sink: s}, srcs, "no Verify"},
		{"no sink", Plan{Blocks: d.blocks, Verify: d.verify}, srcs, "no Sink"},
		{"no sources", plan(d, s), nil, "no sources"},
		{"block twice", Plan{Blocks: append(d.blocks[:2:2], d.blocks[0]), Verify: d.verify, Sink: s}, srcs, "twice"},
		{"block without size", Plan{Blocks: []Block{{CID: d.blocks[0].CID}}, Verify: d.verify, Sink: s}, srcs, "without key or size"},
		{"block without key", Plan{Blocks: []Block{{Size: 1}}, Verify: d.verify, Sink: s}, srcs, "without key or size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Fetch(context.Background(), tt.plan, tt.srcs, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Fetch: %v, want an error with %q", err, tt.want)
			}
		})
	}
	// An empty plan is done at once, sources or not.
	if res, err := Fetch(context.Background(), Plan{Verify: d.verify, Sink: s}, nil, Options{}); err != nil || res.Blocks != 0 {
		t.Errorf("empty plan: %v, %+v", err, res)
	}
}
