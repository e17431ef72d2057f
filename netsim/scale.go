package netsim

import (
	"context"
	"fmt"
	"io"
	"time"
)

// DefaultSweep is the node counts the scale scenario runs by default.
var DefaultSweep = []int{50, 100, 200, 500, 1000}

// ScaleReport is the scale scenario's outcome: fanout at growing node
// counts, what a node costs at each, and the largest count that ran.
type ScaleReport struct {
	Scenario string       `json:"scenario"`
	Seed     uint64       `json:"seed"`
	Points   []ScalePoint `json:"points"`
	// Ceiling is the largest node count that ran to the end (every
	// manifest delivered); 0 if none did.
	Ceiling int           `json:"ceiling"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// ScalePoint is one node count's fanout run, or why it did not end.
type ScalePoint struct {
	Nodes  int           `json:"nodes"`
	Fanout *FanoutReport `json:"fanout,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// Scale runs fanout at each node count of cfg.Sweep (default
// DefaultSweep, smallest first) and stops at the first that fails. Each
// point runs through cfg.RunPoint: Fanout in this process by default.
// In one process the points' figures are not independent (memory a
// point freed is reused, and zeroed, by the next), so `pacsnet netsim
// --scenario scale` runs each point in a process of its own.
func Scale(ctx context.Context, cfg Config) (*ScaleReport, error) {
	start := time.Now()
	sweep := cfg.Sweep
	if len(sweep) == 0 {
		sweep = DefaultSweep
	}
	run := cfg.RunPoint
	if run == nil {
		run = func(ctx context.Context, c Config) (*FanoutReport, error) { return Fanout(ctx, c) }
	}
	rep := &ScaleReport{Scenario: "scale", Seed: cfg.Seed}
	for _, n := range sweep {
		c := cfg
		c.Nodes = n
		fr, err := run(ctx, c)
		pt := ScalePoint{Nodes: n, Fanout: fr}
		if err != nil {
			pt.Error = err.Error()
		}
		rep.Points = append(rep.Points, pt)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			break
		}
		rep.Ceiling = n
	}
	rep.Elapsed = time.Since(start)
	if rep.Ceiling == 0 {
		return rep, fmt.Errorf("not even %d nodes ran: %s", sweep[0], rep.Points[0].Error)
	}
	return rep, nil
}

// WriteTable prints one line per node count.
func (r *ScaleReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "scale: fanout at growing node counts, seed %d; ceiling %d nodes (%s)\n", r.Seed, r.Ceiling, r.Elapsed.Round(time.Millisecond))
	tw := newTable(w, "nodes", "delivered", "p50", "p99", "setup", "heap in use per node", "RSS per node", "peak RSS", "goroutines per node", "setup CPU per node", "idle CPU per node")
	for _, p := range r.Points {
		f := p.Fanout
		if f == nil {
			row(tw, p.Nodes, "failed: "+p.Error, "", "", "", "", "", "", "", "", "")
			continue
		}
		row(tw, p.Nodes, fmt.Sprintf("%d/%d", f.Delivered, f.Granted), ms(f.P50), ms(f.P99), f.Setup.Round(time.Second),
			mib(f.HeapPerNode), mib(f.RSSPerNode), mib(f.PeakRSS), fmt.Sprintf("%.0f", f.GoroutinesPerNode), ms(f.SetupCPUPerNode), fmt.Sprintf("%.2f%%", 100*f.IdleCPUPerNode))
	}
	return tw.Flush()
}
