package netsim

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pacsnet/pacsnet/api"
)

// ChurnReport is the churn scenario's outcome.
type ChurnReport struct {
	Scenario  string        `json:"scenario"`
	Seed      uint64        `json:"seed"`
	Hospitals int           `json:"hospitals"`
	ImageSize int           `json:"image_size"`
	Downtime  time.Duration `json:"downtime_ns"`
	Fetches   []ChurnFetch  `json:"fetches"`
	Elapsed   time.Duration `json:"elapsed_ns"`
}

// ChurnFetch is one fetch whose holder went down during it. Interrupted
// says whether the fetch was still running when the holder stopped.
type ChurnFetch struct {
	Holder      string        `json:"holder"`
	Specialist  string        `json:"specialist"`
	Images      int           `json:"images"`
	Verified    int           `json:"verified"`
	Bytes       int64         `json:"bytes"`
	Link        LinkSpec      `json:"link"`
	StoppedAt   time.Duration `json:"stopped_at_ns"` // after the fetch started
	Interrupted bool          `json:"interrupted"`
	Attempts    int           `json:"attempts"`
	Total       time.Duration `json:"total_ns"`
	Ideal       time.Duration `json:"ideal_ns"` // as regional's, plus the downtime
}

// Churn is regional with the holders going down: each fetch's holder is
// stopped (Sim.Stop: closed, links cut) a third of the fetch's ideal time
// after it starts, and restarted (Sim.Restart) cfg.Downtime later
// (default 1 s). Every fetch must complete, verified. Archives are on
// disk: a restarted node keeps what it held. Default 8 hospitals.
func Churn(ctx context.Context, cfg Config) (*ChurnReport, error) {
	start := time.Now()
	plan := planFetches(cfg, "churn", 8)
	size := orDefault(cfg.ImageSize, 256)
	down := time.Second
	if cfg.Downtime > 0 {
		down = cfg.Downtime
	}
	sim, done, err := openSim(cfg, "churn", true) // real-sized images: see Sim.OnDisk
	if err != nil {
		return nil, err
	}
	defer done()
	nodes, err := sim.AddNodes("Hospital", plan.Hospitals)
	if err != nil {
		return nil, err
	}
	rep := &ChurnReport{Scenario: "churn", Seed: cfg.Seed, Hospitals: plan.Hospitals, ImageSize: size, Downtime: down}
	partnered := map[[2]int]bool{}
	for _, pf := range plan.Fetches {
		h, s := nodes[pf.Holder], nodes[pf.Specialist]
		study, bytesIn, err := sim.share(ctx, h, s, pf, size, partnered)
		if err != nil {
			return nil, err
		}
		if err := sim.Link(h, s, pf.Link); err != nil {
			return nil, err
		}
		// The plaintext size stands in for the ciphertext's until the
		// fetch reports it: only the moment of the stop depends on it.
		stopAt := time.Duration(float64(bytesIn)/float64(pf.Link.Bandwidth)*float64(time.Second)+float64(pf.Link.RTT)) / 3
		t0 := time.Now()
		job, err := s.API.StartFetch(ctx, api.FetchRequest{StudyUID: study})
		if err != nil {
			return nil, fmt.Errorf("fetch at %s: %w", s.Name, err)
		}
		time.Sleep(time.Until(t0.Add(stopAt)))
		cur, err := s.API.Fetch(ctx, job.FetchID)
		if err != nil {
			return nil, err
		}
		if err := sim.Stop(h); err != nil {
			return nil, err
		}
		time.Sleep(down)
		if err := sim.Restart(h); err != nil {
			return nil, err
		}
		ft, err := pollFetch(ctx, s, job, t0)
		if err != nil {
			return nil, err
		}
		nv, err := verify(ctx, s, h, study)
		if err != nil {
			return nil, err
		}
		rep.Fetches = append(rep.Fetches, ChurnFetch{
			Holder: h.Name, Specialist: s.Name, Images: pf.Images, Verified: nv, Bytes: ft.job.Bytes, Link: pf.Link,
			StoppedAt: stopAt, Interrupted: cur.State != api.FetchDone, Attempts: ft.job.Attempts, Total: ft.total,
			Ideal: time.Duration(float64(ft.job.Bytes)/float64(pf.Link.Bandwidth)*float64(time.Second)) + pf.Link.RTT + down,
		})
	}
	rep.Elapsed = time.Since(start)
	return rep, sim.Close()
}

// WriteTable prints one line per fetch.
func (r *ChurnReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "churn: %d hospitals, seed %d, each holder down %s during its fetch, %dx%d images (%s)\n",
		r.Hospitals, r.Seed, r.Downtime, r.ImageSize, r.ImageSize, r.Elapsed.Round(time.Millisecond))
	tw := newTable(w, "holder", "specialist", "images", "size", "RTT", "Mbit/s", "stopped at", "mid-fetch", "attempts", "complete", "ideal+down", "verified")
	for _, f := range r.Fetches {
		row(tw, f.Holder, f.Specialist, f.Images, mb(f.Bytes), ms(f.Link.RTT), fmt.Sprintf("%.0f", f.Link.Mbps()),
			ms(f.StoppedAt), yesNo(f.Interrupted), f.Attempts, ms(f.Total), ms(f.Ideal), fmt.Sprintf("%d/%d", f.Verified, f.Images))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
