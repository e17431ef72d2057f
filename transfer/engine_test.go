package transfer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// link describes a fake source for a table.
type link struct {
	rate     float64 // bytes per second; 0: no limit
	rtt      time.Duration
	perBlock time.Duration
	failAt   int
	stallAt  int
	badAt    int
}

func fakes(clk Clock, d testData, m *meter, links ...link) ([]Source, []*fake) {
	var srcs []Source
	var fs []*fake
	for i, l := range links {
		f := &fake{id: fmt.Sprintf("s%d", i), clk: clk, data: d, rate: l.rate, rtt: l.rtt, perBlock: l.perBlock,
			failAt: l.failAt, stallAt: l.stallAt, badAt: l.badAt, meter: m}
		srcs = append(srcs, f)
		fs = append(fs, f)
	}
	return srcs, fs
}

func plan(d testData, s *sink) Plan { return Plan{Blocks: d.blocks, Verify: d.verify, Sink: s} }

// TestFetch: whatever the sources do, the sink takes every block once,
// verified, and the result says which sources were dropped and why.
func TestFetch(t *testing.T) {
	tests := []struct {
		name    string
		real    bool // real CIDs, checked by hashing
		blocks  int
		size    int
		links   []link
		opts    Options
		dropped map[string]error // source → the error it was dropped with
	}{
		{name: "one source", blocks: 64, size: 64 * kib, links: []link{{}}},
		{name: "one source over 10 ms", blocks: 64, size: 64 * kib, links: []link{{rate: 64 * mib, rtt: 10 * time.Millisecond}}},
		{name: "one source, real CIDs, blocks larger than the window", real: true, blocks: 16, size: 1 * mib, links: []link{{}}},
		{name: "three sources", real: true, blocks: 96, size: 32 * kib, links: []link{{}, {rtt: time.Millisecond}, {perBlock: time.Millisecond}}},
		{
			name: "a source dies mid-way, the others finish", blocks: 128, size: 64 * kib,
			links:   []link{{rate: 32 * mib, failAt: 10}, {rate: 16 * mib}, {rate: 8 * mib}},
			dropped: map[string]error{"s0": errors.New("connection reset")},
		},
		{
			name: "a source goes silent mid-way, the others finish", blocks: 128, size: 64 * kib,
			links:   []link{{rate: 64 * mib, stallAt: 10}, {rate: 16 * mib}},
			opts:    Options{StallTimeout: 100 * time.Millisecond},
			dropped: map[string]error{"s0": ErrStalled},
		},
		{
			name: "a source sends wrong bytes, the others finish", real: true, blocks: 96, size: 32 * kib,
			links:   []link{{rate: 32 * mib}, {rate: 32 * mib, badAt: 5}, {rate: 16 * mib}},
			dropped: map[string]error{"s1": ErrCorrupt},
		},
		{
			name: "small window, small requests", blocks: 100, size: 10 * kib,
			links: []link{{rate: 16 * mib, rtt: 2 * time.Millisecond}, {}},
			opts:  Options{InitialWindow: 10 * kib, MaxWindow: 40 * kib, MaxRequestBlocks: 2, MaxInFlight: 50 * kib},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := virtualData(tt.blocks, tt.size)
			if tt.real {
				d = realData(t, tt.blocks, tt.size)
			}
			s := newSink(d)
			srcs, _ := fakes(SystemClock(), d, nil, tt.links...)
			res, err := Fetch(context.Background(), plan(d, s), srcs, tt.opts)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			s.check(t, d.blocks)
			if res.Blocks != len(d.blocks) || res.Bytes != d.bytes() || len(res.Missing) != 0 {
				t.Errorf("result: %d blocks, %d bytes, %d missing; want %d, %d, 0", res.Blocks, res.Bytes, len(res.Missing), len(d.blocks), d.bytes())
			}
			var share float64
			for _, sr := range res.Sources {
				share += sr.Share
				want, drop := tt.dropped[sr.ID]
				switch {
				case !drop && sr.State != StateActive:
					t.Errorf("source %s dropped: %v", sr.ID, sr.Err)
				case drop && sr.State == StateActive:
					t.Errorf("source %s not dropped", sr.ID)
				case drop && !errors.Is(sr.Err, want) && !strings.Contains(fmt.Sprint(sr.Err), want.Error()):
					t.Errorf("source %s dropped with %v, want %v", sr.ID, sr.Err, want)
				}
			}
			if share < 0.999 || share > 1.001 {
				t.Errorf("shares add up to %f", share)
			}
			if got := len(res.Dropped()); got != len(tt.dropped) {
				t.Errorf("%d sources dropped, want %d", got, len(tt.dropped))
			}
			t.Logf("%s in %v, peak in flight %d KiB, %d KiB duplicates", fmtBytes(res.Bytes), res.Duration, res.PeakInFlight/kib, res.Duplicates/kib)
		})
	}
}

func fmtBytes(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/mib) }
