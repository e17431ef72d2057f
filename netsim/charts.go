package netsim

import "time"

// The charts of each report (Charter); multisource's are its own.

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Charts: the throughput each fetch reached against its link's
// bandwidth, and its time over the ideal against the link's RTT.
func (r *RegionalReport) Charts() []Chart {
	tput := Series{Label: "fetch (study over its time to complete)"}
	ideal := Series{Label: "ideal (study over bandwidth, plus an RTT)", Style: Points}
	ratio := Series{Label: "fetch"}
	lo, hi := 0.0, 0.0
	for _, f := range r.Fetches {
		mbps := f.Link.Mbps()
		tput.X = append(tput.X, mbps)
		tput.Y = append(tput.Y, float64(f.Bytes)*8/1e6/f.Total.Seconds())
		ideal.X = append(ideal.X, mbps)
		ideal.Y = append(ideal.Y, float64(f.Bytes)*8/1e6/f.Ideal.Seconds())
		ratio.X = append(ratio.X, msf(f.Link.RTT))
		ratio.Y = append(ratio.Y, f.Ratio)
		if lo == 0 || mbps < lo {
			lo = mbps
		}
		hi = max(hi, mbps)
	}
	return []Chart{
		{Name: "throughput", Title: "regional: fetch throughput against the link", X: "link bandwidth (Mbit/s)", Y: "throughput (Mbit/s)",
			Series: []Series{tput, ideal, Diagonal("link bandwidth", lo, hi)}},
		{Name: "ratio-rtt", Title: "regional: time to complete over the ideal, by RTT", X: "RTT (ms)", Y: "complete / ideal", Legend: TopRight,
			Series: []Series{ratio, {Label: "ideal", X: []float64{0, 80}, Y: []float64{1, 1}, Style: Line}}},
	}
}

// Charts: the delivery latency's distribution.
func (r *FanoutReport) Charts() []Chart {
	return []Chart{{Name: "latency-cdf", Title: "fanout: manifest delivery latency", X: "from the grant to the manifest stored (ms)", Y: "fraction of partners", Legend: BottomRight,
		Series: []Series{CDF("partners", r.Latencies)}}}
}

// Charts: delivery latency after the heal (cut-off partners) and from
// each op (connected partners).
func (r *PartitionReport) Charts() []Chart {
	return []Chart{{Name: "latency-cdf", Title: "partition: manifest delivery latency", X: "latency (ms)", Y: "fraction of manifests", Legend: BottomRight,
		Series: []Series{CDF("cut off: from the heal", r.AfterHeal), CDF("connected: from the op", r.Control)}}}
}

// Charts: time over ideal plus downtime, per fetch.
func (r *ChurnReport) Charts() []Chart {
	s := Series{Label: "fetch with its holder down"}
	hi := 0.0
	for _, f := range r.Fetches {
		s.X = append(s.X, msf(f.Ideal))
		s.Y = append(s.Y, msf(f.Total))
		hi = max(hi, msf(f.Ideal), msf(f.Total))
	}
	return []Chart{{Name: "complete", Title: "churn: time to complete against ideal + downtime", X: "ideal + downtime (ms)", Y: "complete (ms)",
		Series: []Series{s, Diagonal("ideal + downtime", 0, hi)}}}
}

// Charts: memory and CPU per node against the node count.
func (r *ScaleReport) Charts() []Chart {
	heap := Series{Label: "Go heap in use per node", Style: LinePoints}
	res := Series{Label: "RSS growth per node", Style: LinePoints}
	peak := Series{Label: "peak RSS over nodes", Style: LinePoints}
	setup := Series{Label: "setup wall time per node", Style: LinePoints}
	cpu := Series{Label: "setup CPU time per node", Style: LinePoints}
	const mi = 1 << 20
	var ticks []float64
	for _, p := range r.Points {
		f := p.Fanout
		if f == nil {
			continue
		}
		n := float64(p.Nodes)
		ticks = append(ticks, n)
		heap.X, heap.Y = append(heap.X, n), append(heap.Y, float64(f.HeapPerNode)/mi)
		res.X, res.Y = append(res.X, n), append(res.Y, float64(f.RSSPerNode)/mi)
		peak.X, peak.Y = append(peak.X, n), append(peak.Y, float64(f.PeakRSS)/mi/n)
		setup.X, setup.Y = append(setup.X, n), append(setup.Y, msf(f.Setup)/n)
		cpu.X, cpu.Y = append(cpu.X, n), append(cpu.Y, msf(f.SetupCPUPerNode))
	}
	return []Chart{
		{Name: "memory", Title: "scale: memory per node", X: "nodes", Y: "MiB per node", LogX: true, XTicks: ticks, Legend: MiddleRight, Series: []Series{heap, res, peak}},
		{Name: "setup", Title: "scale: cost of adding a node", X: "nodes", Y: "ms per node", LogX: true, XTicks: ticks, Legend: TopLeft, Series: []Series{setup, cpu}},
	}
}
