package transfer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestSourcesShare: with 1, 2, 4 or 8 sources of different speeds, all
// work at once, the faster ones deliver more, and the transfer takes
// close to the ideal time (size over the sum of the rates, plus a round
// trip).
func TestSourcesShare(t *testing.T) {
	const rtt = 5 * time.Millisecond
	tests := []struct {
		rates []float64 // MiB/s
	}{
		{[]float64{40}},
		{[]float64{40, 10}},
		{[]float64{40, 20, 10, 5}},
		{[]float64{40, 30, 20, 15, 10, 8, 5, 2}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d sources", len(tt.rates)), func(t *testing.T) {
			var links []link
			var sum float64
			for _, r := range tt.rates {
				links = append(links, link{rate: r * mib, rtt: rtt})
				sum += r * mib
			}
			d := virtualData(128, 128*kib) // 16 MiB
			s := newSink(d)
			srcs, _ := fakes(SystemClock(), d, nil, links...)
			res, err := Fetch(context.Background(), plan(d, s), srcs, Options{})
			if err != nil {
				t.Fatal(err)
			}
			s.check(t, d.blocks)
			ideal := time.Duration(float64(d.bytes())/sum*float64(time.Second)) + rtt
			t.Logf("%v, ideal %v (%.2f×), %d KiB duplicates", res.Duration.Round(time.Millisecond), ideal.Round(time.Millisecond),
				float64(res.Duration)/float64(ideal), res.Duplicates/kib)
			for i, sr := range res.Sources {
				t.Logf("  %s at %4.0f MiB/s: share %.3f (ideal %.3f)", sr.ID, tt.rates[i], sr.Share, tt.rates[i]*mib/sum)
			}
			// Generous: the machine is shared, and the real clock runs on.
			if limit := ideal*3/2 + 60*time.Millisecond; res.Duration > limit {
				t.Errorf("took %v, more than %v (ideal %v)", res.Duration, limit, ideal)
			}
			first, last := res.Sources[0], res.Sources[len(res.Sources)-1]
			if len(res.Sources) > 1 && first.Share <= last.Share {
				t.Errorf("the fastest source's share %.3f is not above the slowest's %.3f", first.Share, last.Share)
			}
			if ideal := tt.rates[0] * mib / sum; first.Share < ideal*0.7 {
				t.Errorf("the fastest source's share %.3f is far below its ideal %.3f", first.Share, ideal)
			}
		})
	}
}

// TestLongRoundTrip: over a 50 ms round trip the window grows from its
// 256 KiB start until the link is full: in the steady state the sink
// takes blocks at 80% of the link's rate or more. A fixed 256 KiB window
// would manage 5 MiB/s here.
func TestLongRoundTrip(t *testing.T) {
	const (
		rate = 100 * mib
		rtt  = 50 * time.Millisecond
		size = 256 * kib
	)
	d := virtualData(400, size) // 100 MiB: about 1 s
	s := newSink(d)
	srcs, fs := fakes(SystemClock(), d, nil, link{rate: rate, rtt: rtt})
	var windows []int64
	res, err := Fetch(context.Background(), plan(d, s), srcs, Options{
		ProgressEvery: 50 * time.Millisecond,
		Progress:      func(p Progress) { windows = append(windows, p.Sources[0].Window) },
	})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	steady := s.rateOfSecondHalf(size)
	sr := res.Sources[0]
	t.Logf("%v for %s (%.0f MiB/s overall), steady %.0f MiB/s of %d; measured rate %.0f MiB/s, RTT %v; windows (KiB) %v; %d requests at once",
		res.Duration.Round(time.Millisecond), fmtBytes(res.Bytes), float64(res.Bytes)/mib/res.Duration.Seconds(),
		steady/mib, rate/mib, sr.Rate/mib, sr.RTT.Round(time.Millisecond), kibs(windows), fs[0].max)
	if steady < 0.8*rate {
		t.Errorf("steady rate %.1f MiB/s, want at least 80%% of %d MiB/s", steady/mib, rate/mib)
	}
	if sr.RTT < rtt || sr.RTT > 2*rtt {
		t.Errorf("measured RTT %v, want about %v: queueing is not taken off", sr.RTT, rtt)
	}
}

func kibs(ws []int64) []int64 {
	out := make([]int64, len(ws))
	for i, w := range ws {
		out[i] = w / kib
	}
	return out
}

// TestEndgame: when the queue is empty, an idle fast source fetches again
// the blocks a very slow one still owes, and the transfer does not wait
// for the slow one.
func TestEndgame(t *testing.T) {
	d := virtualData(64, 64*kib) // 4 MiB
	s := newSink(d)
	// The slow source would need 256 ms per 256 KiB window.
	srcs, _ := fakes(SystemClock(), d, nil, link{rate: 1 * mib, rtt: 2 * time.Millisecond}, link{rate: 64 * mib, rtt: 2 * time.Millisecond})
	res, err := Fetch(context.Background(), plan(d, s), srcs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	t.Logf("%v; slow share %.3f, %d KiB duplicates", res.Duration, res.Sources[0].Share, res.Duplicates/kib)
	if res.Duration > 200*time.Millisecond {
		t.Errorf("took %v: the transfer waited for the slow source", res.Duration)
	}
}

// TestSmallPlanSpread: a plan smaller than the sources' windows is spread
// over them (each request takes at most an equal share of the queue),
// not handed whole to the first source asked.
func TestSmallPlanSpread(t *testing.T) {
	d := virtualData(8, 128*kib) // 1 MiB
	s := newSink(d)
	srcs, _ := fakes(SystemClock(), d, nil, link{rate: 20 * mib, rtt: 5 * time.Millisecond}, link{rate: 20 * mib, rtt: 5 * time.Millisecond})
	res, err := Fetch(context.Background(), plan(d, s), srcs, Options{InitialWindow: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	for _, sr := range res.Sources {
		if sr.Bytes == 0 {
			t.Errorf("source %s delivered nothing: %+v", sr.ID, res.Sources)
		}
	}
}

// TestLaterSources: sources that come while the transfer runs
// (Options.Later) join it and take their share.
func TestLaterSources(t *testing.T) {
	d := virtualData(16, 128*kib) // 2 MiB, less than one window
	s := newSink(d)
	// 8 MiB/s: the first source alone would take 250 ms, long after the
	// second comes, however loaded the machine.
	srcs, _ := fakes(SystemClock(), d, nil, link{rate: 8 * mib, rtt: 5 * time.Millisecond}, link{rate: 8 * mib, rtt: 5 * time.Millisecond})
	later := make(chan []Source, 1)
	go func() {
		time.Sleep(10 * time.Millisecond) // the holders' answer, a round trip or two later
		later <- srcs[1:]
	}()
	res, err := Fetch(context.Background(), plan(d, s), srcs[:1], Options{InitialWindow: 4 << 20, Later: later})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	if len(res.Sources) != 2 || res.Sources[1].Source != srcs[1] {
		t.Fatalf("the later source is not in the result: %+v", res.Sources)
	}
	for _, sr := range res.Sources {
		if sr.Bytes == 0 {
			t.Errorf("source %s delivered nothing: %+v", sr.ID, res.Sources)
		}
	}
}

// TestLaterAsksAtOnce: until the other sources are known, the first asks
// for the whole of a plan up to Options.MaxWindow in its first round
// trip, whatever its window: a small study on a long, fast link is not
// held up by the window's growth.
func TestLaterAsksAtOnce(t *testing.T) {
	d := virtualData(64, 128*kib) // 8 MiB
	s := newSink(d)
	srcs, _ := fakes(SystemClock(), d, nil, link{rate: 200 * mib, rtt: 40 * time.Millisecond})
	later := make(chan []Source) // never answered: the transfer ends first
	res, err := Fetch(context.Background(), plan(d, s), srcs, Options{InitialWindow: 256 * kib, Later: later})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	if res.PeakInFlight < d.bytes() {
		t.Errorf("at most %d KiB in flight: the first round trip did not ask for the whole %d KiB", res.PeakInFlight/kib, d.bytes()/kib)
	}
}

// TestLaterNone: when no source comes (the channel is closed), the first
// source takes the rest; when it failed meanwhile, the transfer waits for
// the later ones rather than failing, and fails only once none came.
func TestLaterNone(t *testing.T) {
	d := virtualData(16, 128*kib)
	t.Run("closed", func(t *testing.T) {
		s := newSink(d)
		srcs, _ := fakes(SystemClock(), d, nil, link{rtt: 2 * time.Millisecond})
		later := make(chan []Source)
		go func() { time.Sleep(20 * time.Millisecond); close(later) }()
		res, err := Fetch(context.Background(), plan(d, s), srcs, Options{InitialWindow: 4 << 20, Later: later})
		if err != nil {
			t.Fatal(err)
		}
		s.check(t, d.blocks)
		if len(res.Sources) != 1 || res.Sources[0].Bytes != d.bytes() {
			t.Errorf("sources: %+v", res.Sources)
		}
	})
	t.Run("first fails", func(t *testing.T) {
		s := newSink(d)
		srcs, _ := fakes(SystemClock(), d, nil, link{rtt: 2 * time.Millisecond, failAt: 1}, link{rtt: 2 * time.Millisecond})
		later := make(chan []Source, 1)
		go func() { time.Sleep(50 * time.Millisecond); later <- srcs[1:] }()
		res, err := Fetch(context.Background(), plan(d, s), srcs[:1], Options{Later: later})
		if err != nil {
			t.Fatal(err)
		}
		s.check(t, d.blocks)
		if len(res.Sources) != 2 || res.Sources[0].State != StateFailed || res.Sources[1].Bytes != d.bytes() {
			t.Errorf("sources: %+v", res.Sources)
		}
	})
	t.Run("none come", func(t *testing.T) {
		s := newSink(d)
		srcs, _ := fakes(SystemClock(), d, nil, link{rtt: 2 * time.Millisecond, failAt: 1})
		later := make(chan []Source)
		go func() { time.Sleep(20 * time.Millisecond); close(later) }()
		res, err := Fetch(context.Background(), plan(d, s), srcs, Options{Later: later})
		if !errors.Is(err, ErrAllFailed) || len(res.Missing) != len(d.blocks) {
			t.Fatalf("err %v, %d missing", err, len(res.Missing))
		}
	})
}

// TestLaterRebalance: when sources join late, the requests the first
// source made beyond a fair share go back to the queue, to be shared
// with them, rather than keep a slow first source busy long after the
// others are done.
func TestLaterRebalance(t *testing.T) {
	d := virtualData(32, 128*kib) // 4 MiB
	s := newSink(d)
	srcs, _ := fakes(SystemClock(), d, nil, link{rate: 1 * mib, rtt: 10 * time.Millisecond},
		link{rate: 4 * mib, rtt: 10 * time.Millisecond}, link{rate: 4 * mib, rtt: 10 * time.Millisecond})
	later := make(chan []Source, 1)
	go func() { time.Sleep(20 * time.Millisecond); later <- srcs[1:] }()
	res, err := Fetch(context.Background(), plan(d, s), srcs[:1], Options{InitialWindow: 4 << 20, Later: later})
	if err != nil {
		t.Fatal(err)
	}
	s.check(t, d.blocks)
	// The first source asked for the whole plan before the others came;
	// it keeps a third of what was left when they came, at most.
	if first := res.Sources[0].Bytes; first >= 3*mib/2 {
		t.Errorf("the first source delivered %d KiB of %d: it kept what it asked for before the others came (%+v)", first/kib, d.bytes()/kib, res.Sources)
	}
	for _, sr := range res.Sources {
		if sr.State != StateActive {
			t.Errorf("source %s dropped: %v", sr.ID, sr.Err)
		}
	}
	t.Logf("%v, %d KiB duplicates", res.Duration, res.Duplicates/kib)
}
