package netsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/dicomio/synth"
)

// Partition cuts every link between nodes of different groups (a node in
// no group keeps all its links), as a network partition does, and
// returns the cut; Heal joins them again with the specs they had.
func (s *Sim) Partition(groups ...[]*Node) (*Cut, error) {
	group := map[*Node]int{}
	for i, g := range groups {
		for _, nd := range g {
			group[nd] = i + 1
		}
	}
	s.mu.Lock()
	nodes := slices.Clone(s.nodes)
	s.mu.Unlock()
	cut := &Cut{sim: s}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			ga, gb := group[a], group[b]
			if ga == 0 || gb == 0 || ga == gb {
				continue
			}
			s.mu.Lock()
			spec, ok := s.links[pairOf(a, b)]
			s.mu.Unlock()
			if !ok {
				continue
			}
			if err := s.Unlink(a, b); err != nil {
				return cut, err
			}
			cut.links = append(cut.links, cutLink{a, b, spec})
		}
	}
	return cut, nil
}

// Cut is the links a Partition cut.
type Cut struct {
	sim   *Sim
	links []cutLink
}

type cutLink struct {
	a, b *Node
	spec LinkSpec
}

// Links is how many links the partition cut.
func (c *Cut) Links() int { return len(c.links) }

// Heal joins every cut link again (Sim.Link) with the spec it had.
func (c *Cut) Heal() error {
	for _, l := range c.links {
		if err := c.sim.Link(l.a, l.b, l.spec); err != nil {
			return err
		}
	}
	c.links = nil
	return nil
}

// Targets of the partition scenario's grants: pool studies by number,
// or the patient (every study of patientID, including one imported
// during the partition).
const (
	patientTarget = "patient"
	patientID     = "NETSIM-PARTITION"
)

// PartitionOp is one thing the origin does while the partition lasts.
type PartitionOp struct {
	Kind    string `json:"kind"`              // "grant", "revoke", or "import" (a new study of the patient)
	Partner int    `json:"partner,omitempty"` // node index of the grantee (grant, revoke)
	Target  string `json:"target,omitempty"`  // "study N" or "patient" (grant, revoke)
	Of      int    `json:"of,omitempty"`      // revoke: the index in Ops of the grant it revokes
}

// Expected is what a partner should hold of one study at the end: its
// state (api.Shared*; "" for never shared), and for an available study
// the op that issued the grant its manifest carries.
type Expected struct {
	State string `json:"state"`
	Grant int    `json:"grant_op,omitempty"`
}

// PartitionPlan is what the seed decides for the partition scenario:
// the partners and their links, the ones cut off, the origin's ops in
// the order it issues them, and each partner's final state, computed
// from the ops alone (the origin's intent).
type PartitionPlan struct {
	Nodes   int        `json:"nodes"`
	Links   []LinkSpec `json:"links"`   // the origin's link to node i+1
	Cut     []int      `json:"cut"`     // node indexes cut off from the origin
	Studies int        `json:"studies"` // the pool of studies granted one by one ("study 0", …)
	// PatientStudies is how many studies of the patient the origin holds
	// before the partition ("patient 0", …); the import op adds one more.
	PatientStudies int                         `json:"patient_studies"`
	StudySeeds     []int64                     `json:"study_seeds"` // pool, then the patient's, then the imported one
	Ops            []PartitionOp               `json:"ops"`
	Expect         map[int]map[string]Expected `json:"expect"`  // by node index, by study label
	Hold           time.Duration               `json:"hold_ns"` // how long the partition lasts from the first op
}

// PlanPartition draws the partition plan: cfg.Nodes nodes (default 8:
// the origin and 7 partners), half of the partners (at least one) cut
// off, a pool of 4 studies and 2 of one patient, and for every partner a
// script of cfg.Fetches ops (default 8; at least 5) that starts with a
// grant, its revocation and the grant again of one study and includes a
// patient grant; the scripts are interleaved at random, and the import
// of a new study of the patient falls in the middle. Hold is
// cfg.Downtime (default 3 s).
func PlanPartition(cfg Config) PartitionPlan {
	n := max(3, orDefault(cfg.Nodes, 8))
	steps := max(5, orDefault(cfg.Fetches, 8))
	r := rng(cfg.Seed, "partition")
	p := PartitionPlan{Nodes: n, Studies: 4, PatientStudies: 2, Hold: 3 * time.Second, Expect: map[int]map[string]Expected{}}
	if cfg.Downtime > 0 {
		p.Hold = cfg.Downtime
	}
	for range n - 1 {
		p.Links = append(p.Links, wanLink(r))
	}
	for range p.Studies + p.PatientStudies + 1 {
		p.StudySeeds = append(p.StudySeeds, r.Int64N(1<<40))
	}
	perm := r.Perm(n - 1)
	for _, i := range perm[:max(1, (n-1)/2)] {
		p.Cut = append(p.Cut, i+1)
	}
	sort.Ints(p.Cut)

	// Each partner's script: kinds and targets; grant ops are numbered
	// once merged.
	type step struct {
		kind, target string
	}
	scripts := make([][]step, n)
	for i := 1; i < n; i++ {
		live := map[string]bool{}
		first := fmt.Sprintf("study %d", r.IntN(p.Studies))
		s := []step{{"grant", first}, {"revoke", first}, {"grant", first}}
		live[first] = true
		patientAt := 3 + r.IntN(steps-3) // the step that grants the patient, if no random one did before
		for len(s) < steps {
			switch {
			case len(s) == patientAt && !live[patientTarget]:
				s = append(s, step{"grant", patientTarget})
				live[patientTarget] = true
			case r.IntN(3) == 0 && len(live) > 0:
				var ls []string
				for t := range live {
					ls = append(ls, t)
				}
				sort.Strings(ls)
				t := ls[r.IntN(len(ls))]
				s = append(s, step{"revoke", t})
				delete(live, t)
			default:
				var free []string
				for k := range p.Studies {
					if t := fmt.Sprintf("study %d", k); !live[t] {
						free = append(free, t)
					}
				}
				if !live[patientTarget] {
					free = append(free, patientTarget)
				}
				if len(free) == 0 {
					continue
				}
				t := free[r.IntN(len(free))]
				s = append(s, step{"grant", t})
				live[t] = true
			}
		}
		scripts[i] = s
	}
	// Interleave at random, each script in its order.
	total := (n - 1) * steps
	next := make([]int, n)
	importAt := total / 2
	lastGrant := map[[2]any]int{} // (partner, target) → op index of its latest grant
	for len(p.Ops) < total+1 {
		if len(p.Ops) == importAt {
			p.Ops = append(p.Ops, PartitionOp{Kind: "import"})
			importAt = -1
			continue
		}
		var ready []int
		for i := 1; i < n; i++ {
			if next[i] < len(scripts[i]) {
				ready = append(ready, i)
			}
		}
		i := ready[r.IntN(len(ready))]
		st := scripts[i][next[i]]
		next[i]++
		op := PartitionOp{Kind: st.kind, Partner: i, Target: st.target}
		key := [2]any{i, st.target}
		if st.kind == "revoke" {
			op.Of = lastGrant[key]
		} else {
			lastGrant[key] = len(p.Ops)
		}
		p.Ops = append(p.Ops, op)
	}
	p.Expect = expectPartition(p)
	return p
}

// studyLabels are the labels of the plan's studies: the pool, the
// patient's and the one imported during the partition.
func (p PartitionPlan) studyLabels() []string {
	var ls []string
	for k := range p.Studies {
		ls = append(ls, fmt.Sprintf("study %d", k))
	}
	for k := range p.PatientStudies + 1 {
		ls = append(ls, fmt.Sprintf("patient %d", k))
	}
	return ls
}

// expectPartition is the origin's intent, from its ops alone: a study is
// available at a partner while a grant covering it is live (a study
// grant naming it, or a patient grant, which covers the patient's
// studies held when it is issued and those imported while it is live);
// revoked once every grant that covered it is revoked; absent if none
// ever did.
func expectPartition(p PartitionPlan) map[int]map[string]Expected {
	out := map[int]map[string]Expected{}
	for i := 1; i < p.Nodes; i++ {
		covered := map[string]bool{} // ever covered
		liveBy := map[string]int{}   // label → op index of the live grant covering it
		held := p.PatientStudies     // the patient's studies at the origin so far
		patientGrant := -1
		for j, op := range p.Ops {
			switch {
			case op.Kind == "import":
				held++
				if patientGrant >= 0 {
					l := fmt.Sprintf("patient %d", held-1)
					liveBy[l], covered[l] = patientGrant, true
				}
			case op.Partner != i:
			case op.Target == patientTarget && op.Kind == "grant":
				patientGrant = j
				for k := range held {
					l := fmt.Sprintf("patient %d", k)
					liveBy[l], covered[l] = j, true
				}
			case op.Target == patientTarget:
				patientGrant = -1
				for k := range held {
					delete(liveBy, fmt.Sprintf("patient %d", k))
				}
			case op.Kind == "grant":
				liveBy[op.Target], covered[op.Target] = j, true
			default:
				delete(liveBy, op.Target)
			}
		}
		m := map[string]Expected{}
		for _, l := range p.studyLabels() {
			switch g, live := liveBy[l]; {
			case live:
				m[l] = Expected{State: api.SharedAvailable, Grant: g}
			case covered[l]:
				m[l] = Expected{State: api.SharedRevoked}
			default:
				m[l] = Expected{}
			}
		}
		out[i] = m
	}
	return out
}

// PartitionReport is the partition scenario's outcome.
type PartitionReport struct {
	Scenario string             `json:"scenario"`
	Seed     uint64             `json:"seed"`
	Nodes    int                `json:"nodes"`
	Ops      int                `json:"ops"`
	Hold     time.Duration      `json:"hold_ns"` // from the first op to the heal
	Partners []PartitionPartner `json:"partners"`
	// AfterHeal is every manifest a cut-off partner received, from the
	// heal to the time it says it arrived; Control is every manifest a
	// connected partner received, from the op that caused it (re-issues
	// left out).
	AfterHeal []time.Duration `json:"after_heal_ns"`
	Control   []time.Duration `json:"control_ns"`
	Converged time.Duration   `json:"converged_ns"` // from the heal until every cut-off partner held the intended state
	Elapsed   time.Duration   `json:"elapsed_ns"`
}

// PartitionPartner is one partner's outcome. Sent and Received are the
// manifests in the origin's and the partner's audit logs (manifest-sent,
// written once the partner acknowledged one; manifest-received, written
// when one is applied, not for a retry of one applied already), which
// must be the same sequence: Lost counts those sent and never applied,
// Duplicates those applied more often than sent. (The origin sends a
// study's manifest again, as a new version, when the study gained
// instances shortly before: that is not a duplicate.)
type PartitionPartner struct {
	Name       string        `json:"name"`
	Cut        bool          `json:"cut"`
	Link       LinkSpec      `json:"link"`
	Ops        int           `json:"ops"`
	Sent       int           `json:"sent"`
	Received   int           `json:"received"`
	Lost       int           `json:"lost"`
	Duplicates int           `json:"duplicates"`
	Reissued   int           `json:"reissued"` // new versions of a manifest received before (the study grew)
	InOrder    bool          `json:"in_order"`
	StateOK    bool          `json:"state_ok"` // the final state is the origin's intent
	Available  int           `json:"available"`
	Revoked    int           `json:"revoked"`
	First      time.Duration `json:"first_ns"` // cut: from the heal to its first manifest; connected: the first latency
	Last       time.Duration `json:"last_ns"`  // likewise, to its last
}

// Partition partners an origin with every other node, cuts half of them
// off (Sim.Partition), has the origin issue the plan's grants,
// revocations and an import that its patient grants cover, one after
// the other through its API, holds the partition, heals it and waits
// until every partner holds what the origin intended. It fails unless
// every partner's received manifests are the origin's sent ones, in
// order, none lost or duplicated, and its final state is the plan's.
// Archives are in memory: nothing is fetched.
func Partition(ctx context.Context, cfg Config) (*PartitionReport, error) {
	start := time.Now()
	plan := PlanPartition(cfg)
	sim, done, err := openSim(cfg, "partition", false)
	if err != nil {
		return nil, err
	}
	defer done()
	sim.Seed = cfg.Seed
	nodes, err := sim.AddNodes("Facility", plan.Nodes)
	if err != nil {
		return nil, err
	}
	origin := nodes[0]
	for i, nd := range nodes[1:] {
		if err := sim.Link(origin, nd, plan.Links[i]); err != nil {
			return nil, err
		}
		if err := sim.Partner(ctx, origin, nd); err != nil {
			return nil, err
		}
	}
	uids := map[string]string{} // label → study UID
	labels := plan.studyLabels()
	for k, l := range labels[:len(labels)-1] {
		o := synth.CTOptions{Slices: 2, Rows: 32, Cols: 32, Seed: plan.StudySeeds[k], PatientID: fmt.Sprintf("NETSIM-POOL-%d", k)}
		if strings.HasPrefix(l, "patient") {
			o.PatientID = patientID
		}
		if uids[l], _, err = ImportCT(ctx, origin, o); err != nil {
			return nil, err
		}
	}
	// The origin re-issues a study's manifests once it has been quiet
	// for 2 s after gaining instances: let the pool's imports settle, so
	// that the only re-issue is that of the study imported during the
	// partition.
	time.Sleep(settle)
	isCut := map[int]bool{}
	var cutNodes []*Node
	for _, i := range plan.Cut {
		isCut[i] = true
		cutNodes = append(cutNodes, nodes[i])
	}
	cut, err := sim.Partition([]*Node{origin}, cutNodes)
	if err != nil {
		return nil, err
	}

	t0 := time.Now()
	grantIDs := map[int]string{} // op index → grant ID
	issued := make([]time.Time, len(plan.Ops))
	opOf := map[string]int{} // grant ID → op index of its grant
	revokeOf := map[string]int{}
	importOp, importDone := -1, time.Now()
	for j, op := range plan.Ops {
		issued[j] = time.Now()
		switch op.Kind {
		case "import":
			l := labels[len(labels)-1]
			if uids[l], _, err = ImportCT(ctx, origin, synth.CTOptions{Slices: 2, Rows: 32, Cols: 32, Seed: plan.StudySeeds[len(labels)-1], PatientID: patientID}); err != nil {
				return nil, err
			}
			importOp, importDone = j, time.Now()
		case "grant":
			req := api.GrantRequest{To: nodes[op.Partner].ID.String()}
			if op.Target == patientTarget {
				req.Patient = &api.GrantPatient{PatientID: patientID}
			} else {
				req.StudyUID = uids[op.Target]
			}
			g, _, err := origin.API.Grant(ctx, req)
			if err != nil {
				return nil, fmt.Errorf("op %d: %s grants %s to %s: %w", j, origin.Name, op.Target, nodes[op.Partner].Name, err)
			}
			grantIDs[j], opOf[g.GrantID] = g.GrantID, j
		case "revoke":
			id := grantIDs[op.Of]
			if _, err := origin.API.Revoke(ctx, id, "unspecified"); err != nil {
				return nil, fmt.Errorf("op %d: %s revokes grant %s: %w", j, origin.Name, id, err)
			}
			revokeOf[id] = j
		}
	}
	rep := &PartitionReport{Scenario: "partition", Seed: cfg.Seed, Nodes: plan.Nodes, Ops: len(plan.Ops)}

	// While cut off, a partner must hold nothing: the origin's outbox
	// keeps its manifests.
	for _, nd := range cutNodes {
		if list, err := nd.API.Shared(ctx); err != nil || len(list) != 0 {
			return nil, fmt.Errorf("%s, cut off, lists %d shared studies (%v), want none", nd.Name, len(list), err)
		}
	}
	want := func(i int) map[string]Expected { return plan.Expect[i] }
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for i := 1; i < plan.Nodes; i++ {
		if !isCut[i] {
			if err := waitState(wctx, nodes[i], origin, want(i), uids, grantIDs); err != nil {
				return nil, err
			}
		}
	}
	time.Sleep(time.Until(t0.Add(plan.Hold)))
	rep.Hold = time.Since(t0)
	tHeal := time.Now()
	if err := cut.Heal(); err != nil {
		return nil, err
	}
	for _, nd := range cutNodes {
		if err := waitState(wctx, nd, origin, want(slices.Index(nodes, nd)), uids, grantIDs); err != nil {
			return nil, fmt.Errorf("after healing: %w", err)
		}
	}
	rep.Converged = time.Since(tHeal)
	// The origin re-issues the manifests of a study that gained
	// instances once it is quiet (2 s): the import op's study goes out
	// again. Compare the logs once that has happened and the origin's
	// outbox is empty.
	time.Sleep(time.Until(importDone.Add(settle)))
	if err := waitOutbox(wctx, origin); err != nil {
		return nil, err
	}

	newStudy := uids[labels[len(labels)-1]]
	var problems []string
	for i := 1; i < plan.Nodes; i++ {
		nd := nodes[i]
		pp := PartitionPartner{Name: nd.Name, Cut: isCut[i], Link: plan.Links[i-1], InOrder: true, StateOK: true}
		for _, op := range plan.Ops {
			if op.Partner == i {
				pp.Ops++
			}
		}
		sent, got, err := manifestLogs(wctx, origin, nd)
		if err != nil {
			return nil, err
		}
		pp.Sent, pp.Received = len(sent), len(got)
		pp.Lost, pp.Duplicates = max(0, len(sent)-len(got)), max(0, len(got)-len(sent))
		seen := map[string]bool{}
		for k, e := range got {
			key := e.StudyUID + " " + e.GrantID + " " + e.Reason
			reissue := seen[key]
			seen[key] = true
			if reissue {
				pp.Reissued++
			}
			if k >= len(sent) || sent[k].StudyUID != e.StudyUID || sent[k].GrantID != e.GrantID || sent[k].Reason != e.Reason {
				pp.InOrder = false
			}
			var d time.Duration
			if isCut[i] {
				d = e.Time.Sub(tHeal)
				rep.AfterHeal = append(rep.AfterHeal, d)
			} else if !reissue {
				j := opOf[e.GrantID]
				switch {
				case e.Reason == api.ManifestRevocation:
					j = revokeOf[e.GrantID]
				case e.StudyUID == newStudy && importOp >= 0 && opOf[e.GrantID] < importOp:
					j = importOp
				}
				d = e.Time.Sub(issued[j])
				rep.Control = append(rep.Control, d)
			}
			if k == 0 {
				pp.First = d
			}
			pp.Last = max(pp.Last, d)
		}
		if err := checkState(ctx, nd, origin, want(i), uids, grantIDs); err != nil {
			pp.StateOK = false
			problems = append(problems, err.Error())
		}
		for _, e := range want(i) {
			switch e.State {
			case api.SharedAvailable:
				pp.Available++
			case api.SharedRevoked:
				pp.Revoked++
			}
		}
		if !pp.InOrder || pp.Lost > 0 || pp.Duplicates > 0 || pp.Received == 0 {
			problems = append(problems, fmt.Sprintf("%s: %d manifests sent, %d received, in order: %v", nd.Name, pp.Sent, pp.Received, pp.InOrder))
		}
		rep.Partners = append(rep.Partners, pp)
	}
	if out, err := origin.API.Outbox(ctx); err != nil || len(out) != 0 {
		problems = append(problems, fmt.Sprintf("the origin's outbox holds %d manifests after healing (%v)", len(out), err))
	}
	rep.Elapsed = time.Since(start)
	if len(problems) > 0 {
		return rep, fmt.Errorf("partition: %s", strings.Join(problems, "; "))
	}
	return rep, sim.Close()
}

// settle is how long after its last import the origin has re-issued the
// manifests of the studies that grew (node's studyGrownQuiet, 2 s, and
// the half of it its loop waits).
const settle = 3500 * time.Millisecond

// waitOutbox polls nd's outbox until it is empty.
func waitOutbox(ctx context.Context, nd *Node) error {
	for {
		out, err := nd.API.Outbox(ctx)
		if err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s's outbox still holds %d manifests: %w", nd.Name, len(out), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// manifestLogs reads the manifests origin's audit log says it sent to nd
// and those nd's says it received from origin. The origin writes its
// entry just after the manifest leaves its outbox: the two are read
// again for up to a second until they are as long as each other.
func manifestLogs(ctx context.Context, origin, nd *Node) (sent, got []api.AuditEntry, err error) {
	deadline := time.Now().Add(time.Second)
	for {
		if sent, err = auditAll(ctx, origin, api.AuditQuery{Action: api.ActManifestSent, Partner: nd.ID.String()}); err != nil {
			return nil, nil, err
		}
		if got, err = auditAll(ctx, nd, api.AuditQuery{Action: api.ActManifestReceived, Partner: origin.ID.String()}); err != nil {
			return nil, nil, err
		}
		if len(sent) == len(got) || time.Now().After(deadline) {
			return sent, got, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditAll pages through nd's audit log with q's filters.
func auditAll(ctx context.Context, nd *Node, q api.AuditQuery) ([]api.AuditEntry, error) {
	var all []api.AuditEntry
	for {
		es, next, err := nd.API.Audit(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("audit of %s: %w", nd.Name, err)
		}
		all = append(all, es...)
		if next == 0 {
			return all, nil
		}
		q.After = next
	}
}

// checkState compares what nd lists as shared by origin with want.
func checkState(ctx context.Context, nd, origin *Node, want map[string]Expected, uids map[string]string, grantIDs map[int]string) error {
	list, err := nd.API.Shared(ctx)
	if err != nil {
		return err
	}
	got := map[string]api.SharedStudy{}
	for _, s := range list {
		if s.Issuer.PeerID != origin.ID.String() {
			continue
		}
		if _, dup := got[s.StudyUID]; dup {
			return fmt.Errorf("%s lists study %s twice", nd.Name, s.StudyUID)
		}
		got[s.StudyUID] = s
	}
	var errs []error
	for l, e := range want {
		s, ok := got[uids[l]]
		delete(got, uids[l])
		switch {
		case e.State == "" && ok:
			errs = append(errs, fmt.Errorf("%s: %s is %s, never granted", nd.Name, l, s.State))
		case e.State == "":
		case !ok:
			errs = append(errs, fmt.Errorf("%s: %s missing, want %s", nd.Name, l, e.State))
		case s.State != e.State:
			errs = append(errs, fmt.Errorf("%s: %s is %s, want %s", nd.Name, l, s.State, e.State))
		case e.State == api.SharedAvailable && s.GrantID != grantIDs[e.Grant]:
			errs = append(errs, fmt.Errorf("%s: %s carries grant %s, want %s (op %d)", nd.Name, l, s.GrantID, grantIDs[e.Grant], e.Grant))
		}
	}
	for uid := range got {
		errs = append(errs, fmt.Errorf("%s lists study %s, not planned", nd.Name, uid))
	}
	return errors.Join(errs...)
}

// waitState polls nd until it holds want, or ctx ends (the last
// difference is the error).
func waitState(ctx context.Context, nd, origin *Node, want map[string]Expected, uids map[string]string, grantIDs map[int]string) error {
	for {
		err := checkState(ctx, nd, origin, want, uids, grantIDs)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never held the intended state: %w", nd.Name, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WriteTable prints one line per partner and the latencies.
func (r *PartitionReport) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "partition: %d nodes, seed %d, %d ops issued by the origin with %d partners cut off for %s (%s in all)\n",
		r.Nodes, r.Seed, r.Ops, r.cut(), r.Hold.Round(time.Millisecond), r.Elapsed.Round(time.Millisecond))
	tw := newTable(w, "partner", "cut off", "RTT", "ops", "sent", "received", "lost", "duplicates", "re-issued", "in order", "final state", "available", "revoked", "first", "last")
	for _, p := range r.Partners {
		state := "as intended"
		if !p.StateOK {
			state = "WRONG"
		}
		row(tw, p.Name, yesNo(p.Cut), ms(p.Link.RTT), p.Ops, p.Sent, p.Received, p.Lost, p.Duplicates, p.Reissued, yesNo(p.InOrder), state, p.Available, p.Revoked, ms(p.First), ms(p.Last))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "after healing: %d manifests delivered, p50 %s, p99 %s, max %s; every cut-off partner as intended %s after the heal\nconnected partners (from each op): p50 %s, p99 %s\n",
		len(r.AfterHeal), ms(percentile(r.AfterHeal, 50)), ms(percentile(r.AfterHeal, 99)), ms(percentile(r.AfterHeal, 100)), ms(r.Converged),
		ms(percentile(r.Control, 50)), ms(percentile(r.Control, 99)))
	return err
}

func (r *PartitionReport) cut() int {
	n := 0
	for _, p := range r.Partners {
		if p.Cut {
			n++
		}
	}
	return n
}
