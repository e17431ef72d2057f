package transfer

import (
	"testing"
	"time"
)

// TestEstimator feeds the window estimator the samples of a source whose
// link is full (it delivers at the link's rate the whole time) and checks
// the window it settles on: twice the bandwidth-delay product (the round
// trip as measured includes one block's transfer), between floor and cap.
func TestEstimator(t *testing.T) {
	const (
		lo    = 256 * kib
		hi    = 16 * mib
		block = 256 * kib
	)
	tests := []struct {
		name  string
		rate  float64 // the link's bytes per second
		rtt   time.Duration
		queue int64 // bytes queued ahead of every request after the first
	}{
		{"1 Gbit/s, 50 ms", 125e6, 50 * time.Millisecond, 0},
		// Queueing ahead of a request does not read as a longer round
		// trip, so the window does not grow without end.
		{"1 Gbit/s, 50 ms, full pipe", 125e6, 50 * time.Millisecond, 12e6},
		{"100 Mbit/s, 10 ms", 12.5e6, 10 * time.Millisecond, 0},
		{"100 Mbit/s, 80 ms", 12.5e6, 80 * time.Millisecond, 2e6},
		{"10 Gbit/s, 80 ms: capped", 1.25e9, 80 * time.Millisecond, 0},
		{"1 MB/s: a block's own transfer dominates the round trip", 1e6, 20 * time.Millisecond, 0},
		{"in memory", 5e9, time.Microsecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEstimator(lo, hi)
			now := time.Unix(0, 0)
			secs := func(n int64) time.Duration { return time.Duration(float64(n) / tt.rate * float64(time.Second)) }
			for i := range 200 {
				q := tt.queue
				if i == 0 {
					q = 0
				}
				now = now.Add(tt.rtt/4 + time.Microsecond)
				for k := int64(1); k <= 4; k++ {
					// The link is busy throughout: what arrived since the
					// request was sent is the link's rate times the wait.
					elapsed := tt.rtt + secs(q+k*block)
					sent := max(int64(tt.rate*elapsed.Seconds()), k*block)
					e.sample(now, k == 1, sent-block, sent, elapsed)
				}
			}
			want := min(max(int64(2*(tt.rate*tt.rtt.Seconds()+block)), lo), hi)
			t.Logf("rate %.1f MB/s, rtt %v, window %.2f MB, want %.2f MB", e.rate/1e6, e.rtt, float64(e.window)/1e6, float64(want)/1e6)
			if d := float64(e.window-want) / float64(want); d < -0.05 || d > 0.05 {
				t.Errorf("window %d, want %d ± 5%%", e.window, want)
			}
			if e.growing {
				t.Errorf("still in startup after 200 steady requests")
			}
		})
	}
}

// TestEstimatorStartup: while the window is what limits the source, each
// round trip's samples show the window's rate, and the window grows by the startup gain per round trip (the engine, whose samples
// trail the window, sees about 2).
func TestEstimatorStartup(t *testing.T) {
	e := newEstimator(256*kib, 64*mib)
	const rtt = 50 * time.Millisecond
	now := time.Unix(0, 0)
	prev := e.window
	for round := range 5 {
		// The whole window arrives within one round trip of being sent.
		now = now.Add(rtt)
		e.sample(now, true, 0, e.window, rtt)
		t.Logf("round %d: window %d KiB", round, e.window/kib)
		if e.window < prev*18/10 {
			t.Errorf("round %d: window %d after %d: grows by less than 1.8", round, e.window, prev)
		}
		prev = e.window
	}
}
