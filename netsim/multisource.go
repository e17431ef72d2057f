package netsim

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// MultisourcePlan is what the seed decides for the multisource scenario.
type MultisourcePlan struct {
	Holders   []int    `json:"holders"` // the numbers of facilities holding the study, one run each
	Images    int      `json:"images"`
	StudySeed int64    `json:"study_seed"`
	Link      LinkSpec `json:"link"` // every link's: runs differ only in their holders
}

// PlanMultisource draws the multisource plan: holder counts 1, 2, 4, …
// up to cfg.Nodes (default 8), one study, one link spec for every link.
func PlanMultisource(cfg Config) MultisourcePlan {
	most := orDefault(cfg.Nodes, 8)
	r := rng(cfg.Seed, "multisource")
	p := MultisourcePlan{Images: orDefault(cfg.MaxImages, 150), StudySeed: r.Int64N(1 << 40), Link: wanLink(r)}
	for c := 1; c <= most; c *= 2 {
		p.Holders = append(p.Holders, c)
	}
	if p.Holders[len(p.Holders)-1] != most {
		p.Holders = append(p.Holders, most)
	}
	return p
}

// MultisourceReport is the multisource scenario's outcome.
type MultisourceReport struct {
	Scenario  string           `json:"scenario"`
	Seed      uint64           `json:"seed"`
	Images    int              `json:"images"`
	ImageSize int              `json:"image_size"`
	Link      LinkSpec         `json:"link"`
	Runs      []MultisourceRun `json:"runs"`
	Note      string           `json:"note,omitempty"`
	Elapsed   time.Duration    `json:"elapsed_ns"`
}

// MultisourceRun is one fetch of the study by a facility partnered with
// every holder. Sources is how many holders the fetch actually took
// blocks from, as its status reports them.
type MultisourceRun struct {
	Holders  int           `json:"holders"`
	Sources  int           `json:"sources"`
	Verified int           `json:"verified"`
	Bytes    int64         `json:"bytes"`
	First    time.Duration `json:"first_instance_ns"`
	Total    time.Duration `json:"total_ns"`
	Ideal    time.Duration `json:"ideal_ns"` // the study over one link's bandwidth, plus a round trip
	Speedup  float64       `json:"speedup"`  // the first run's time over this run's
}

// Multisource grows the set of facilities holding one study: the origin
// imports it, and for each run more facilities (granted by the origin)
// fetch it until the run's number hold it; then a new facility,
// partnered with all of them and granted by the origin, fetches it.
//
// Today the fetcher asks only the study's origin (secondary holders
// serving blocks are not built yet), so every run uses one source and the
// report says so. The secondary holders are real (they hold the
// ciphertext and are the requester's partners): when the fetcher asks
// several holders, the runs show it with no change here.
func Multisource(ctx context.Context, cfg Config) (*MultisourceReport, error) {
	start := time.Now()
	plan := PlanMultisource(cfg)
	size := orDefault(cfg.ImageSize, 256)
	dir, err := mkdirTemp(cfg.Dir, "netsim-multisource-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sim := NewSim(dir, cfg.Logger)
	sim.OnDisk = true // real-sized images: see Sim.OnDisk
	defer sim.Close()
	most := plan.Holders[len(plan.Holders)-1]
	holders, err := sim.AddNodes("Holder", most)
	if err != nil {
		return nil, err
	}
	requesters, err := sim.AddNodes("Requester", len(plan.Holders))
	if err != nil {
		return nil, err
	}
	origin := holders[0]
	study, _, err := ImportCT(ctx, origin, synth.CTOptions{Slices: plan.Images, Rows: size, Cols: size, Seed: plan.StudySeed})
	if err != nil {
		return nil, err
	}
	// grantFetch has the origin grant the study to nd, partnered with
	// the holders given, and nd fetch it.
	grantFetch := func(nd *Node, partners []*Node) (fetchTimes, int, error) {
		for _, h := range partners {
			if err := sim.Link(nd, h, plan.Link); err != nil {
				return fetchTimes{}, 0, err
			}
			if err := sim.Partner(ctx, nd, h); err != nil {
				return fetchTimes{}, 0, err
			}
		}
		if _, _, err := origin.API.Grant(ctx, api.GrantRequest{To: nd.ID.String(), StudyUID: study}); err != nil {
			return fetchTimes{}, 0, fmt.Errorf("%s grants to %s: %w", origin.Name, nd.Name, err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := waitShared(wctx, nd, origin.ID, study, 10*time.Millisecond); err != nil {
			return fetchTimes{}, 0, err
		}
		for _, h := range partners { // no saved-up burst: see Sim.Link
			if err := sim.Link(nd, h, plan.Link); err != nil {
				return fetchTimes{}, 0, err
			}
		}
		ft, err := fetch(ctx, nd, study)
		if err != nil {
			return ft, 0, err
		}
		nv, err := verify(ctx, nd, origin, study)
		return ft, nv, err
	}

	rep := &MultisourceReport{Scenario: "multisource", Seed: cfg.Seed, Images: plan.Images, ImageSize: size, Link: plan.Link}
	held := 1
	for i, want := range plan.Holders {
		for ; held < want; held++ {
			if _, _, err := grantFetch(holders[held], holders[:1]); err != nil {
				return nil, err
			}
		}
		ft, nv, err := grantFetch(requesters[i], holders[:want])
		if err != nil {
			return nil, err
		}
		sources := 0
		for _, s := range ft.job.Sources {
			if s.Bytes > 0 {
				sources++
			}
		}
		run := MultisourceRun{
			Holders: want, Sources: max(sources, 1), Verified: nv, Bytes: ft.job.Bytes, First: ft.first, Total: ft.total,
			Ideal: time.Duration(float64(ft.job.Bytes)/float64(plan.Link.Bandwidth)*float64(time.Second)) + plan.Link.RTT,
		}
		if len(rep.Runs) > 0 {
			run.Speedup = float64(rep.Runs[0].Total) / float64(run.Total)
		} else {
			run.Speedup = 1
		}
		rep.Runs = append(rep.Runs, run)
		if run.Sources < run.Holders && rep.Note == "" {
			rep.Note = fmt.Sprintf("secondary holders not supported yet: %d source used", run.Sources)
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, sim.Close()
}

// WriteTable prints one line per number of holders.
func (r *MultisourceReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "multisource: one study of %d images (%dx%d), seed %d, every link %s RTT %.0f Mbit/s (%s)\n",
		r.Images, r.ImageSize, r.ImageSize, r.Seed, ms(r.Link.RTT), r.Link.Mbps(), r.Elapsed.Round(time.Millisecond))
	tw := newTable(w, "holders", "sources used", "size", "first image", "complete", "ideal (1 link)", "speed-up")
	for _, x := range r.Runs {
		row(tw, x.Holders, x.Sources, mb(x.Bytes), ms(x.First), ms(x.Total), ms(x.Ideal), fmt.Sprintf("%.2f", x.Speedup))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Note != "" {
		_, err := fmt.Fprintln(w, r.Note)
		return err
	}
	return nil
}
