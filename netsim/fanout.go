package netsim

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// FanoutPlan is what the seed decides for the fanout scenario.
type FanoutPlan struct {
	Nodes     int        `json:"nodes"`
	Partners  []int      `json:"partners"` // indexes (1…Nodes-1) of the nodes granted, in grant order
	Links     []LinkSpec `json:"links"`    // the granting facility's link to node i+1
	StudySeed int64      `json:"study_seed"`
}

// PlanFanout draws the fanout plan: cfg.Nodes nodes (default 30), the
// first one's link to each other, and the partners it grants to
// (cfg.Partners, default min(50, Nodes-1)).
func PlanFanout(cfg Config) FanoutPlan {
	n := max(2, orDefault(cfg.Nodes, 30))
	k := min(orDefault(cfg.Partners, min(50, n-1)), n-1)
	r := rng(cfg.Seed, "fanout")
	p := FanoutPlan{Nodes: n, StudySeed: r.Int64N(1 << 40)}
	for range n - 1 {
		p.Links = append(p.Links, wanLink(r))
	}
	for _, i := range r.Perm(n - 1)[:k] {
		p.Partners = append(p.Partners, i+1)
	}
	return p
}

// FanoutReport is the fanout scenario's outcome.
type FanoutReport struct {
	Scenario  string          `json:"scenario"`
	Seed      uint64          `json:"seed"`
	Nodes     int             `json:"nodes"`
	Granted   int             `json:"granted"`
	Delivered int             `json:"delivered"`
	Latencies []time.Duration `json:"latencies_ns"` // per partner in grant order: from the grant request to the manifest stored in its inbox
	// InRTTs is the p50 and p99 of each latency over its link's round
	// trip: how many round trips a delivery takes.
	InRTTs [2]float64    `json:"in_rtts"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
	// HeapPerNode is the process's HeapInuse after a GC, less what it was
	// before the first node, over the nodes; GoroutinesPerNode likewise.
	HeapPerNode       uint64  `json:"heap_inuse_per_node"`
	RSSPerNode        uint64  `json:"rss_per_node,omitempty"` // the process's resident set likewise (Linux only)
	GoroutinesPerNode float64 `json:"goroutines_per_node"`
	PeakRSS           uint64  `json:"peak_rss,omitempty"` // the process's largest resident set (Linux only)
	// SetupCPUPerNode is the CPU time (user and system) the process
	// spent opening and partnering the nodes, over the nodes;
	// IdleCPUPerNode the cores one node keeps busy once everything is
	// delivered (CPU time over a second of idling, over the nodes).
	SetupCPUPerNode time.Duration `json:"setup_cpu_per_node_ns"`
	IdleCPUPerNode  float64       `json:"idle_cpu_per_node"`
	Granting        time.Duration `json:"granting_ns"` // issuing every grant, one after the other
	Setup           time.Duration `json:"setup_ns"`    // opening and partnering the nodes
	Elapsed         time.Duration `json:"elapsed_ns"`
}

// Fanout starts its nodes, partners the first with every other, and has
// it grant one patient (a small study) to its partners one after the
// other (`pacsnet grant --patient`). Each grantee's inbox is polled; the
// latency is from the grant request to the time the grantee says the
// manifest arrived (its Received, on the same real clock).
func Fanout(ctx context.Context, cfg Config) (*FanoutReport, error) {
	start := time.Now()
	plan := PlanFanout(cfg)
	dir, err := mkdirTemp(cfg.Dir, "netsim-fanout-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	rss0 := rss()
	cpu0 := cpuTime()

	sim := NewSim(dir, cfg.Logger)
	defer sim.Close()
	nodes, err := sim.AddNodes("Facility", plan.Nodes)
	if err != nil {
		return nil, err
	}
	granter := nodes[0]
	for i, nd := range nodes[1:] {
		if err := sim.Link(granter, nd, plan.Links[i]); err != nil {
			return nil, err
		}
		if err := sim.Partner(ctx, granter, nd); err != nil {
			return nil, err
		}
	}
	rep := &FanoutReport{Scenario: "fanout", Seed: cfg.Seed, Nodes: plan.Nodes, Granted: len(plan.Partners), Setup: time.Since(start),
		SetupCPUPerNode: (cpuTime() - cpu0) / time.Duration(plan.Nodes)}
	const patient = "NETSIM-FANOUT"
	study, _, err := ImportCT(ctx, granter, synth.CTOptions{Slices: 4, Rows: 64, Cols: 64, Seed: plan.StudySeed, PatientID: patient})
	if err != nil {
		return nil, err
	}

	grantStart := time.Now()
	issued := make([]time.Time, len(plan.Partners))
	for j, i := range plan.Partners {
		issued[j] = time.Now()
		if _, _, err := granter.API.Grant(ctx, api.GrantRequest{To: nodes[i].ID.String(), Patient: &api.GrantPatient{PatientID: patient}}); err != nil {
			return nil, fmt.Errorf("%s grants to %s: %w", granter.Name, nodes[i].Name, err)
		}
	}
	rep.Granting = time.Since(grantStart)
	rep.Latencies = make([]time.Duration, len(plan.Partners))
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	sem := make(chan struct{}, 8) // pollers at once: polling must not starve the nodes
	for j, i := range plan.Partners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := waitShared(wctx, nodes[i], granter.ID, study, 20*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			rep.Latencies[j] = s.Received.Sub(issued[j])
			rep.Delivered++
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d of %d manifests not delivered: %w", len(errs), len(plan.Partners), errs[0])
	}
	rep.P50, rep.P99, rep.Max = percentile(rep.Latencies, 50), percentile(rep.Latencies, 99), percentile(rep.Latencies, 100)
	// In round trips: as durations scaled by 1,000, to reuse percentile.
	rtts := make([]time.Duration, len(rep.Latencies))
	for j, i := range plan.Partners {
		rtts[j] = time.Duration(1000 * float64(rep.Latencies[j]) / float64(plan.Links[i-1].RTT))
	}
	rep.InRTTs = [2]float64{float64(percentile(rtts, 50)) / 1000, float64(percentile(rtts, 99)) / 1000}

	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	if m1.HeapInuse > m0.HeapInuse {
		rep.HeapPerNode = (m1.HeapInuse - m0.HeapInuse) / uint64(plan.Nodes)
	}
	if r := rss(); r > rss0 {
		rep.RSSPerNode = (r - rss0) / uint64(plan.Nodes)
	}
	rep.GoroutinesPerNode = float64(runtime.NumGoroutine()-g0) / float64(plan.Nodes)
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(time.Second)
	rep.IdleCPUPerNode = float64(cpuTime()-c0) / float64(time.Since(t0)) / float64(plan.Nodes)
	rep.PeakRSS = peakRSS()
	rep.Elapsed = time.Since(start)
	return rep, sim.Close()
}

// WriteTable prints the delivery latencies and the cost of a node.
func (r *FanoutReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "fanout: %d nodes, seed %d, one facility grants a patient to %d partners (setup %s, %s in all)\n",
		r.Nodes, r.Seed, r.Granted, r.Setup.Round(time.Millisecond), r.Elapsed.Round(time.Millisecond))
	tw := newTable(w, "delivered", "grants issued in", "p50", "p99", "max", "p50, p99 in RTTs", "heap in use per node", "RSS per node", "peak RSS", "goroutines per node", "setup CPU per node", "idle CPU per node")
	row(tw, fmt.Sprintf("%d/%d", r.Delivered, r.Granted), ms(r.Granting), ms(r.P50), ms(r.P99), ms(r.Max), fmt.Sprintf("%.1f, %.1f", r.InRTTs[0], r.InRTTs[1]),
		mib(r.HeapPerNode), mib(r.RSSPerNode), mib(r.PeakRSS), fmt.Sprintf("%.0f", r.GoroutinesPerNode), ms(r.SetupCPUPerNode), fmt.Sprintf("%.2f%%", 100*r.IdleCPUPerNode))
	return tw.Flush()
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
