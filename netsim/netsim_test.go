package netsim

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// TestMain fails the run if a scenario leaves a goroutine behind: Sim.Close
// closes every node, the mocknet and the API clients' connections.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The scenarios run small: their invariants (every fetch complete and
// verified, every manifest delivered), not their timings, are tested.

func TestNetsimRegional(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Dir: t.TempDir(), Seed: 7, Nodes: 4, Fetches: 2, MinImages: 20, MaxImages: 20, ImageSize: 128}
	rep, err := Regional(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	plan := PlanRegional(cfg)
	if len(rep.Fetches) != len(plan.Fetches) {
		t.Fatalf("%d fetches reported, %d planned", len(rep.Fetches), len(plan.Fetches))
	}
	for i, f := range rep.Fetches {
		if f.Verified != 20 || f.Images != 20 {
			t.Errorf("fetch %d: %d of %d instances verified", i, f.Verified, f.Images)
		}
		if f.Link != plan.Fetches[i].Link || f.Total <= 0 || f.First <= 0 || f.First > f.Total || f.Ideal <= f.Link.RTT || f.Bytes <= 0 {
			t.Errorf("fetch %d: %+v", i, f)
		}
	}
	checkReport(t, rep, "Hospital")
}

func TestNetsimMultisource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Multisource(ctx, Config{Dir: t.TempDir(), Seed: 7, Nodes: 2, MaxImages: 10, ImageSize: 128})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 2 || rep.Runs[0].Holders != 1 || rep.Runs[1].Holders != 2 {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	for _, r := range rep.Runs {
		if r.Verified != 10 || r.Sources < 1 || r.Total <= 0 {
			t.Errorf("run with %d holders: %+v", r.Holders, r)
		}
		// The fetch asks every holder; one that got no work (a small
		// study, a fast first source) is said in the note.
		if r.Sources < r.Holders && rep.Note == "" {
			t.Errorf("%d holders, %d sources, and no note", r.Holders, r.Sources)
		}
	}
	checkReport(t, rep, "secondary holders")
}

func TestNetsimFanout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Fanout(ctx, Config{Dir: t.TempDir(), Seed: 7, Nodes: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Granted != 9 || rep.Delivered != 9 || len(rep.Latencies) != 9 {
		t.Fatalf("granted %d, delivered %d, %d latencies", rep.Granted, rep.Delivered, len(rep.Latencies))
	}
	for i, l := range rep.Latencies {
		if l <= 0 {
			t.Errorf("partner %d: latency %s", i, l)
		}
	}
	if rep.P50 > rep.P99 || rep.P99 > rep.Max || rep.HeapPerNode == 0 || rep.GoroutinesPerNode <= 0 {
		t.Errorf("report: %+v", rep)
	}
	checkReport(t, rep, "fanout")
}

func TestNetsimChurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Churn(ctx, Config{Dir: t.TempDir(), Seed: 7, Nodes: 4, Fetches: 1, MinImages: 30, MaxImages: 30, ImageSize: 128, Downtime: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Fetches) != 1 || rep.Fetches[0].Verified != 30 {
		t.Fatalf("fetches: %+v", rep.Fetches)
	}
	checkReport(t, rep, "churn")
}

// The partition smoke run: two of three partners cut off while the
// origin grants, revokes, grants again, grants the patient and imports a
// new study of the patient; after healing every partner holds what the
// origin intended, its manifests the origin's, in order, none twice.
func TestNetsimPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Dir: t.TempDir(), Seed: 7, Nodes: 4, Fetches: 6, Downtime: time.Second}
	rep, err := Partition(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	plan := PlanPartition(cfg)
	if len(rep.Partners) != 3 || len(plan.Cut) != 1 {
		t.Fatalf("%d partners, %d cut off", len(rep.Partners), len(plan.Cut))
	}
	cut := 0
	for _, p := range rep.Partners {
		if !p.InOrder || p.Duplicates != 0 || p.Lost != 0 || !p.StateOK || p.Sent != p.Received || p.Received < p.Ops {
			t.Errorf("%+v", p)
		}
		if p.Cut {
			cut++
		}
	}
	if cut != 1 || len(rep.AfterHeal) == 0 || len(rep.Control) == 0 {
		t.Errorf("%d cut off, %d manifests after the heal, %d to connected partners", cut, len(rep.AfterHeal), len(rep.Control))
	}
	checkReport(t, rep, "after healing")
}

// The partition plan: every script starts with grant, revoke, grant of
// one study and grants the patient; the intent follows the ops.
func TestNetsimPlanPartition(t *testing.T) {
	p := PlanPartition(Config{Seed: 3, Nodes: 8})
	if len(p.Cut) != 3 || len(p.Ops) != 7*8+1 {
		t.Fatalf("cut %v, %d ops", p.Cut, len(p.Ops))
	}
	for i := 1; i < p.Nodes; i++ {
		var mine []PartitionOp
		patient := false
		for _, op := range p.Ops {
			if op.Partner == i {
				mine = append(mine, op)
				patient = patient || op.Target == patientTarget
			}
		}
		if mine[0].Kind != "grant" || mine[1].Kind != "revoke" || mine[2].Kind != "grant" || mine[0].Target != mine[2].Target || mine[1].Target != mine[0].Target || !patient {
			t.Errorf("node %d: %+v", i, mine)
		}
		if e := p.Expect[i][mine[2].Target]; e.State != api.SharedAvailable && !slices.ContainsFunc(mine[3:], func(op PartitionOp) bool { return op.Target == mine[2].Target }) {
			t.Errorf("node %d: %s granted again is %+v", i, mine[2].Target, e)
		}
	}
}

// Jitter and loss on every link: the fetch completes, verified, and the
// report says what they did.
func TestNetsimRegionalImpaired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{Dir: t.TempDir(), Seed: 7, Nodes: 3, Fetches: 1, MinImages: 20, MaxImages: 20, ImageSize: 128, Jitter: 2 * time.Millisecond, Loss: 0.001}
	rep, err := Regional(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Fetches[0]
	if f.Verified != 20 || f.Impaired == nil || f.Impaired.Writes == 0 || f.Impaired.Jitter <= 0 || f.Link.Jitter != cfg.Jitter || f.Link.Loss != cfg.Loss {
		t.Fatalf("%+v (%+v)", f, f.Impaired)
	}
	checkReport(t, rep, "loss stalls")
}

// A link's impairment draws are fixed by the seed and its nodes.
func TestNetsimImpairmentDeterministic(t *testing.T) {
	spec := LinkSpec{RTT: 40 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01}
	draws := func(seed uint64, a, b int) []time.Duration {
		s := &Sim{Seed: seed}
		s.setImpairment(&Node{ID: "a", idx: a}, &Node{ID: "b", idx: b}, spec)
		im := s.impairmentOf([2]peer.ID{"a", "b"})
		var out []time.Duration
		for range 200 {
			out = append(out, im.delay(64<<10))
		}
		return out
	}
	one := draws(1, 0, 1)
	if !slices.Equal(one, draws(1, 0, 1)) || slices.Equal(one, draws(2, 0, 1)) || slices.Equal(one, draws(1, 0, 2)) {
		t.Fatal("impairment draws are not fixed by the seed and the link")
	}
	stalls := 0
	for _, d := range one {
		if d < spec.RTT/2 {
			t.Fatalf("a write held back %s, less than the one-way latency", d)
		}
		if d -= spec.RTT / 2; d > spec.Jitter {
			stalls++
			if d < minRTO {
				t.Fatalf("a loss held a write back %s only", d)
			}
		}
	}
	// 1% of 45 segments: about 36% of 64 KiB writes lose one.
	if stalls < 40 || stalls > 110 {
		t.Errorf("%d of 200 writes stalled", stalls)
	}
}

// scale in one process at two small counts: every point runs, the
// ceiling is the last.
func TestNetsimScale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Scale(ctx, Config{Dir: t.TempDir(), Seed: 7, Sweep: []int{3, 6}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ceiling != 6 || len(rep.Points) != 2 || rep.Points[1].Fanout.Delivered != 5 || rep.Points[1].Fanout.PeakRSS == 0 {
		t.Fatalf("%+v", rep)
	}
	checkReport(t, rep, "ceiling 6")
}

// checkReport checks that a report prints a table naming want and
// marshals to JSON.
func checkReport(t *testing.T, rep Report, want string) {
	t.Helper()
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil || !strings.Contains(b.String(), want) {
		t.Errorf("table (%v):\n%s", err, b.String())
	}
	t.Logf("\n%s", b.String())
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
	dir := t.TempDir()
	if err := WriteMarkdown(rep, dir, "rep"); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "rep.md"))
	if err != nil || !strings.Contains(string(md), "|---:|") {
		t.Errorf("markdown (%v):\n%s", err, md)
	}
	if ch, ok := rep.(Charter); ok {
		for _, c := range ch.Charts() {
			png, err := os.ReadFile(filepath.Join(dir, "rep-"+c.Name+".png"))
			if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || !strings.Contains(string(md), "rep-"+c.Name+".png") {
				t.Errorf("chart %s: %v", c.Name, err)
			}
		}
	}
}

// The same seed gives the same plan; another seed another one.
func TestNetsimPlanDeterministic(t *testing.T) {
	for _, n := range []int{4, 20, 200} {
		cfg := Config{Seed: 42, Nodes: n}
		other := Config{Seed: 43, Nodes: n}
		plans := []struct {
			name string
			plan func(Config) any
		}{
			{"regional", func(c Config) any { return PlanRegional(c) }},
			{"multisource", func(c Config) any { return PlanMultisource(c) }},
			{"fanout", func(c Config) any { return PlanFanout(c) }},
			{"churn", func(c Config) any { return planFetches(c, "churn", 8) }},
			{"partition", func(c Config) any { return PlanPartition(c) }},
		}
		for _, p := range plans {
			a, b := p.plan(cfg), p.plan(cfg)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("%s, %d nodes: one seed, two plans:\n%+v\n%+v", p.name, n, a, b)
			}
			if reflect.DeepEqual(a, p.plan(other)) {
				t.Errorf("%s, %d nodes: seeds 42 and 43 give the same plan", p.name, n)
			}
		}
	}
	// Links stay in the ranges.
	for _, f := range PlanRegional(Config{Seed: 1, Nodes: 200, Fetches: 500}).Fetches {
		if f.Holder == f.Specialist || f.Link.RTT < 10*time.Millisecond || f.Link.RTT > 80*time.Millisecond ||
			f.Link.Mbps() < 100 || f.Link.Mbps() > 1000 || f.Images < 50 || f.Images > 400 {
			t.Fatalf("planned fetch out of range: %+v", f)
		}
	}
	if k := len(PlanFanout(Config{Seed: 1, Nodes: 200}).Partners); k != 50 {
		t.Errorf("fanout of 200 nodes grants to %d partners, want 50", k)
	}
}

// pair starts two on-disk nodes, partnered over a slow link (4 Mbit/s,
// 20 ms), the first holding a study of 40 images granted to the second,
// which has its manifest.
func pair(t *testing.T, ctx context.Context) (sim *Sim, holder, grantee *Node, study string) {
	t.Helper()
	sim = NewSim(t.TempDir(), nil)
	sim.OnDisk = true
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	nodes, err := sim.AddNodes("Site", 2)
	if err != nil {
		t.Fatal(err)
	}
	holder, grantee = nodes[0], nodes[1]
	if err := sim.Link(holder, grantee, LinkSpec{RTT: 20 * time.Millisecond, Bandwidth: 500_000}); err != nil {
		t.Fatal(err)
	}
	if err := sim.Partner(ctx, holder, grantee); err != nil {
		t.Fatal(err)
	}
	study, _, err = ImportCT(ctx, holder, synth.CTOptions{Slices: 40, Rows: 128, Cols: 128, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := holder.API.Grant(ctx, api.GrantRequest{To: grantee.ID.String(), StudyUID: study}); err != nil {
		t.Fatal(err)
	}
	if _, err := waitShared(ctx, grantee, holder.ID, study, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return sim, holder, grantee, study
}

// The holder goes down mid-fetch and comes back: the fetch waits, resumes
// and completes, every instance verified.
func TestNetsimRestartMidFetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sim, holder, grantee, study := pair(t, ctx)
	start := time.Now()
	job, err := grantee.API.StartFetch(ctx, api.FetchRequest{StudyUID: study})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // the study takes ~3 s on this link
	if err := sim.Stop(holder); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if j, err := grantee.API.Fetch(ctx, job.FetchID); err != nil || j.State == api.FetchDone {
		t.Fatalf("with the holder down: %+v, %v", j, err)
	}
	if err := sim.Restart(holder); err != nil {
		t.Fatal(err)
	}
	ft, err := pollFetch(ctx, grantee, job, start)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := verify(ctx, grantee, holder, study); err != nil || n != 40 {
		t.Fatalf("%d verified: %v", n, err)
	}
	if ft.job.Attempts < 2 {
		t.Errorf("the fetch completed in %d attempt(s) with its holder down for half a second", ft.job.Attempts)
	}
	t.Logf("fetch with a restart: %s, %d attempts, %d bytes resumed", ft.total.Round(time.Millisecond), ft.job.Attempts, ft.job.BytesResumed)
}

// A link cut mid-fetch and joined again: the fetch completes; a grant
// issued while the link is down reaches the partner once it is up.
func TestNetsimLinkFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sim, holder, grantee, study := pair(t, ctx)
	spec := LinkSpec{RTT: 20 * time.Millisecond, Bandwidth: 500_000}
	start := time.Now()
	job, err := grantee.API.StartFetch(ctx, api.FetchRequest{StudyUID: study})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	if err := sim.Unlink(holder, grantee); err != nil {
		t.Fatal(err)
	}
	// A second study granted across the cut link.
	study2, _, err := ImportCT(ctx, holder, synth.CTOptions{Slices: 3, Rows: 64, Cols: 64, Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := holder.API.Grant(ctx, api.GrantRequest{To: grantee.ID.String(), StudyUID: study2}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if list, err := grantee.API.Shared(ctx); err != nil || len(list) != 1 {
		t.Fatalf("across a cut link the grantee lists %d shared studies (%v), want 1", len(list), err)
	}
	if err := sim.Link(holder, grantee, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := pollFetch(ctx, grantee, job, start); err != nil {
		t.Fatal(err)
	}
	if n, err := verify(ctx, grantee, holder, study); err != nil || n != 40 {
		t.Fatalf("%d verified: %v", n, err)
	}
	if _, err := waitShared(ctx, grantee, holder.ID, study2, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
