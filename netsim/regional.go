package netsim

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// RegionalPlan is what the seed decides for the regional scenario before
// any node runs.
type RegionalPlan struct {
	Hospitals int
	Fetches   []PlannedFetch
}

// PlannedFetch is one study a hospital holds and grants to a specialist's
// hospital, which fetches it over their link.
type PlannedFetch struct {
	Holder     int      `json:"holder"`     // index of the holding hospital
	Specialist int      `json:"specialist"` // index of the fetching hospital
	Images     int      `json:"images"`
	StudySeed  int64    `json:"study_seed"`
	Link       LinkSpec `json:"link"`
}

// PlanRegional draws the regional scenario's plan from cfg.Seed: distinct
// holder and specialist hospitals, each pair's WAN link, each study's
// size. It starts nothing.
func PlanRegional(cfg Config) RegionalPlan {
	p := planFetches(cfg, "regional", 20)
	for i := range p.Fetches {
		p.Fetches[i].Link.Jitter, p.Fetches[i].Link.Loss = cfg.Jitter, cfg.Loss
	}
	return p
}

// planFetches draws hospitals (cfg.Nodes, default nodes), pairs of them
// and their links, and study sizes, from the seed and the scenario's name.
func planFetches(cfg Config, scenario string, nodes int) RegionalPlan {
	n := max(2, orDefault(cfg.Nodes, nodes))
	nf := orDefault(cfg.Fetches, max(1, n/4))
	lo, hi := orDefault(cfg.MinImages, 50), orDefault(cfg.MaxImages, 400)
	hi = max(hi, lo)
	r := rng(cfg.Seed, scenario)
	p := RegionalPlan{Hospitals: n}
	seen := map[[2]int]bool{}
	for len(p.Fetches) < nf {
		h := r.IntN(n)
		s := r.IntN(n - 1)
		if s >= h {
			s++
		}
		pair := [2]int{min(h, s), max(h, s)}
		if seen[pair] && len(seen) < n*(n-1)/2 {
			continue // one study per pair of hospitals while pairs last
		}
		seen[pair] = true
		f := PlannedFetch{
			Holder: h, Specialist: s,
			Images:    lo + r.IntN(hi-lo+1),
			StudySeed: r.Int64N(1 << 40),
			Link:      wanLink(r),
		}
		// A fixed link replaces the drawn one after the draw, so the
		// rest of the plan is the seed's either way.
		if cfg.RTT > 0 {
			f.Link.RTT = cfg.RTT
		}
		if cfg.Mbps > 0 {
			f.Link.Bandwidth = int64(cfg.Mbps * 1e6 / 8)
		}
		p.Fetches = append(p.Fetches, f)
	}
	return p
}

// RegionalReport is the regional scenario's outcome.
type RegionalReport struct {
	Scenario  string          `json:"scenario"`
	Seed      uint64          `json:"seed"`
	Hospitals int             `json:"hospitals"`
	ImageSize int             `json:"image_size"`
	Jitter    time.Duration   `json:"jitter_ns,omitempty"`
	Loss      float64         `json:"loss,omitempty"`
	Fetches   []RegionalFetch `json:"fetches"`
	Elapsed   time.Duration   `json:"elapsed_ns"`
}

// RegionalFetch is one fetch's figures. Ideal is the study's ciphertext
// over the link's bandwidth plus one round trip; Ratio is Total / Ideal.
type RegionalFetch struct {
	Holder     string        `json:"holder"`
	Specialist string        `json:"specialist"`
	Images     int           `json:"images"`
	Verified   int           `json:"verified"` // instances the specialist holds with the holder's digests
	Bytes      int64         `json:"bytes"`    // ciphertext of the study's blocks
	Link       LinkSpec      `json:"link"`
	First      time.Duration `json:"first_instance_ns"`
	Total      time.Duration `json:"total_ns"`
	Ideal      time.Duration `json:"ideal_ns"`
	Ratio      float64       `json:"ratio"`
	// Impaired is what the link's jitter and loss did during the fetch
	// (with Config.Jitter or Loss).
	Impaired *ImpairStats `json:"impaired,omitempty"`
}

// Regional runs hospitals on WAN links: each planned holder imports a
// synthetic CT and grants it to its specialist's hospital (`pacsnet
// grant`), which waits for the manifest and fetches it (`pacsnet fetch`).
// Fetches run one after the other, so that each has its link and the
// machine's cores to itself.
func Regional(ctx context.Context, cfg Config) (*RegionalReport, error) {
	start := time.Now()
	plan := PlanRegional(cfg)
	size := orDefault(cfg.ImageSize, 256)
	sim, done, err := openSim(cfg, "regional", true) // real-sized images: see Sim.OnDisk
	if err != nil {
		return nil, err
	}
	defer done()
	sim.Seed = cfg.Seed
	nodes, err := sim.AddNodes("Hospital", plan.Hospitals)
	if err != nil {
		return nil, err
	}
	rep := &RegionalReport{Scenario: "regional", Seed: cfg.Seed, Hospitals: plan.Hospitals, ImageSize: size, Jitter: cfg.Jitter, Loss: cfg.Loss}
	partnered := map[[2]int]bool{}
	for _, pf := range plan.Fetches {
		h, s := nodes[pf.Holder], nodes[pf.Specialist]
		study, _, err := sim.share(ctx, h, s, pf, size, partnered)
		if err != nil {
			return nil, err
		}
		if err := sim.Link(h, s, pf.Link); err != nil { // no saved-up burst: see Link
			return nil, err
		}
		im0 := sim.Impairments(h, s)
		ft, err := fetch(ctx, s, study)
		if err != nil {
			return nil, err
		}
		var imp *ImpairStats
		if pf.Link.Jitter > 0 || pf.Link.Loss > 0 {
			im := sim.Impairments(h, s)
			imp = &ImpairStats{Writes: im.Writes - im0.Writes, Jitter: im.Jitter - im0.Jitter, Stalls: im.Stalls - im0.Stalls}
		}
		nv, err := verify(ctx, s, h, study)
		if err != nil {
			return nil, err
		}
		ideal := time.Duration(float64(ft.job.Bytes)/float64(pf.Link.Bandwidth)*float64(time.Second)) + pf.Link.RTT
		rep.Fetches = append(rep.Fetches, RegionalFetch{
			Holder: h.Name, Specialist: s.Name, Images: pf.Images, Verified: nv,
			Bytes: ft.job.Bytes, Link: pf.Link, First: ft.first, Total: ft.total,
			Ideal: ideal, Ratio: float64(ft.total) / float64(ideal), Impaired: imp,
		})
	}
	rep.Elapsed = time.Since(start)
	return rep, sim.Close()
}

// WriteTable prints one line per fetch.
func (r *RegionalReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "regional: %d hospitals, seed %d, %d fetches one after the other, %dx%d images (%s)\n",
		r.Hospitals, r.Seed, len(r.Fetches), r.ImageSize, r.ImageSize, r.Elapsed.Round(time.Millisecond))
	if r.Jitter > 0 || r.Loss > 0 {
		fmt.Fprintf(w, "every link impaired: jitter up to %s per write, %.3g%% of segments lost (each loss holds its stream back max(200 ms, RTT))\n", r.Jitter, 100*r.Loss)
	}
	cols := []string{"holder", "specialist", "images", "size", "RTT", "Mbit/s", "first image", "complete", "ideal", "ratio"}
	if r.Jitter > 0 || r.Loss > 0 {
		cols = append(cols, "writes", "jitter added", "loss stalls")
	}
	tw := newTable(w, cols...)
	for _, f := range r.Fetches {
		cells := []any{f.Holder, f.Specialist, f.Images, mb(f.Bytes), ms(f.Link.RTT), fmt.Sprintf("%.0f", f.Link.Mbps()),
			ms(f.First), ms(f.Total), ms(f.Ideal), fmt.Sprintf("%.2f", f.Ratio)}
		if im := f.Impaired; im != nil {
			cells = append(cells, im.Writes, ms(im.Jitter), im.Stalls)
		}
		row(tw, cells...)
	}
	return tw.Flush()
}

// share links holder and specialist as pf says, partners them once, has
// the holder import pf's CT and grant it, and waits until the specialist
// holds the manifest. It returns the study and its plaintext bytes.
func (sim *Sim) share(ctx context.Context, h, s *Node, pf PlannedFetch, size int, partnered map[[2]int]bool) (string, int64, error) {
	if err := sim.Link(h, s, pf.Link); err != nil {
		return "", 0, err
	}
	if pair := [2]int{min(pf.Holder, pf.Specialist), max(pf.Holder, pf.Specialist)}; !partnered[pair] {
		if err := sim.Partner(ctx, h, s); err != nil {
			return "", 0, err
		}
		partnered[pair] = true
	}
	study, bytesIn, err := ImportCT(ctx, h, synth.CTOptions{Slices: pf.Images, Rows: size, Cols: size, Seed: pf.StudySeed})
	if err != nil {
		return "", 0, err
	}
	if _, _, err := h.API.Grant(ctx, api.GrantRequest{To: s.ID.String(), StudyUID: study}); err != nil {
		return "", 0, fmt.Errorf("%s grants to %s: %w", h.Name, s.Name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := waitShared(wctx, s, h.ID, study, 10*time.Millisecond); err != nil {
		return "", 0, err
	}
	return study, bytesIn, nil
}
