package netsim

import (
	"context"
	"fmt"
	"io"
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
// partnered with all of them and granted by the origin, fetches it. The
// holders serve as secondaries (exchange.serve_as_secondary): each
// announces itself to the origin once its fetch completed, the origin
// lists them to the new facility at the start of its fetch, and the
// fetch takes blocks from every holder at once. Every link has the same
// spec, so with n holders the fetch can use n links' bandwidth.
func Multisource(ctx context.Context, cfg Config) (*MultisourceReport, error) {
	start := time.Now()
	plan := PlanMultisource(cfg)
	size := orDefault(cfg.ImageSize, 256)
	sim, done, err := openSim(cfg, "multisource", true) // real-sized images: see Sim.OnDisk
	if err != nil {
		return nil, err
	}
	defer done()
	most := plan.Holders[len(plan.Holders)-1]
	holders, err := sim.AddNodes("Holder", most)
	if err != nil {
		return nil, err
	}
	// The facilities that fetch from the origin serve as secondaries: the
	// option is read when a node opens, so they open again with it on.
	for _, h := range holders[1:] {
		if err := sim.Stop(h); err != nil {
			return nil, err
		}
		h.cfg.Exchange.ServeAsSecondary = true
		if err := sim.Restart(h); err != nil {
			return nil, err
		}
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
			// Connected before the clock starts, as partners that
			// exchange manifests are: the runs compare transfers, and a
			// holder first dialled mid-fetch would join a small study's
			// transfer only after the origin finished it.
			if _, err := sim.mn.ConnectPeers(nd.ID, h.ID); err != nil {
				return fetchTimes{}, 0, fmt.Errorf("connect %s and %s: %w", nd.Name, h.Name, err)
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
			// The origin lists a holder once its announcement (a
			// manifest through the holder's outbox) has arrived.
			if err := waitAnnounced(ctx, origin, holders[held], study); err != nil {
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
			rep.Note = fmt.Sprintf("with %d holders the fetch took blocks from %d: the engine gives a source work only while it keeps up", run.Holders, run.Sources)
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, sim.Close()
}

// waitAnnounced waits until origin's audit log records holder's notice
// that it holds study (manifest-received, reason holder).
func waitAnnounced(ctx context.Context, origin, holder *Node, study string) error {
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		es, _, err := origin.API.Audit(wctx, api.AuditQuery{Action: api.ActManifestReceived, Partner: holder.ID.String(), Study: study})
		if err != nil {
			return fmt.Errorf("%s's audit: %w", origin.Name, err)
		}
		for _, e := range es {
			if e.Reason == "holder" {
				return nil
			}
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%s never heard that %s holds the study: %w", origin.Name, holder.Name, wctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WriteTable prints one line per number of holders.
func (r *MultisourceReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "multisource: one study of %d images (%dx%d), seed %d, every link %s RTT %.0f Mbit/s (%s)\n",
		r.Images, r.ImageSize, r.ImageSize, r.Seed, ms(r.Link.RTT), r.Link.Mbps(), r.Elapsed.Round(time.Millisecond))
	fmt.Fprintln(w, "secondary holders serve the study (exchange.serve_as_secondary); speed-up is the 1-holder fetch time over the run's")
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
