package transfer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// maxCopies is how many sources may be asked for one block at once: the
// endgame asks up to two more for a block still outstanding.
const maxCopies = 3

// Fetch fetches the plan's blocks from the sources, all at once, and
// hands each to the plan's sink once it verified. It returns when the sink
// took every block, when the sink fails, when ctx is done, or when every
// source was dropped (the error is then a [*SourcesError] matching
// [ErrAllFailed]). In every case the Result says what was delivered and
// what is missing; blocks the sink took stay taken, so calling Fetch again
// with Result.Missing resumes. Every goroutine Fetch starts has ended when
// it returns.
func Fetch(ctx context.Context, plan Plan, sources []Source, opts Options) (Result, error) {
	if err := checkPlan(plan, sources, opts); err != nil {
		return Result{}, fmt.Errorf("fetch blocks: %w", err)
	}
	e := newEngine(plan, sources, opts.withDefaults())
	return e.run(ctx)
}

func checkPlan(plan Plan, sources []Source, opts Options) error {
	switch {
	case plan.Verify == nil:
		return errors.New("plan has no Verify")
	case plan.Sink == nil:
		return errors.New("plan has no Sink")
	case len(sources) == 0 && len(plan.Blocks) > 0 && opts.Later == nil:
		return errors.New("no sources")
	}
	seen := make(map[cid.Cid]struct{}, len(plan.Blocks))
	for _, b := range plan.Blocks {
		if !b.CID.Defined() || b.Size <= 0 {
			return fmt.Errorf("plan lists a block without key or size (%s, %d bytes)", b.CID, b.Size)
		}
		if _, dup := seen[b.CID]; dup {
			return fmt.Errorf("plan lists block %s twice", b.CID)
		}
		seen[b.CID] = struct{}{}
	}
	return nil
}

// engine is one transfer. Everything below mu is its state; the goroutine
// that called Fetch runs the scheduler (run), one goroutine per request
// calls its source, and one goroutine feeds the sink.
type engine struct {
	plan  Plan
	opts  Options
	clk   Clock
	total int64 // the plan's bytes
	start time.Time

	notify   chan struct{} // the scheduler has something to look at
	sinkWake chan struct{}
	reqs     sync.WaitGroup
	sinkDone chan struct{}

	mu          sync.Mutex
	blocks      []blockState
	queue       []int // blocks no request holds, to hand out first
	queuedBytes int64
	sources     []*source
	later       <-chan []Source // sources still to come (Options.Later); nil once they came
	live        map[*request]struct{}
	inflight    int64 // requested, not received
	buffered    int64 // received and verified, not yet taken by the sink
	peak        int64
	accepted    int   // blocks verified (first copies)
	acceptedB   int64 // their bytes
	sunk        int   // blocks the sink took
	sunkBytes   int64 // their bytes
	dups        int64 // bytes that arrived second
	sinkQ       []sinkItem
	sinkClosing bool // no more blocks will come: the sink goroutine ends when sinkQ is empty
	sinkErr     error

	// progress, on the scheduler's goroutine only
	lastProgress time.Time
	lastBytes    int64
	rate         float64
}

type blockState struct {
	done    bool       // a verified copy arrived
	sunk    bool       // the sink took it
	holders []*request // live requests that may still deliver it
}

type sinkItem struct {
	i    int
	data []byte
}

// source is one source's state in the transfer.
type source struct {
	src        Source
	id         string
	state      State
	err        error
	est        estimator
	inflight   int64
	requests   int   // live requests
	delivered  int64 // every byte received, duplicates included: the rate's clock
	bytes      int64 // first copies
	blocks     int
	dups       int64
	lastActive time.Time // the last block received, or when it last became busy
}

// request is one call of a source's Fetch.
type request struct {
	src         *source
	blocks      []int // in plan.Blocks
	pos         map[cid.Cid]int
	received    []bool
	open        int // blocks neither received here nor done through another request
	sentAt      time.Time
	deliveredAt int64 // src.delivered when sent
	first       bool  // a block of it arrived
	retired     bool  // cancelled because every block it holds is done
	ended       bool
	cancel      context.CancelFunc
}

func newEngine(plan Plan, srcs []Source, opts Options) *engine {
	e := &engine{
		plan:     plan,
		opts:     opts,
		clk:      opts.Clock,
		notify:   make(chan struct{}, 1),
		sinkWake: make(chan struct{}, 1),
		sinkDone: make(chan struct{}),
		blocks:   make([]blockState, len(plan.Blocks)),
		queue:    make([]int, len(plan.Blocks)),
		live:     map[*request]struct{}{},
		later:    opts.Later,
	}
	for i, b := range plan.Blocks {
		e.queue[i] = i
		e.queuedBytes += int64(b.Size)
		e.total += int64(b.Size)
	}
	e.add(srcs)
	return e
}

// rebalance makes room for sources that joined late: each source that
// was there before keeps its requests, oldest first, up to a fair share
// of what is left (the queue and what every source still owes, over the
// active sources), and the rest are cancelled, their blocks queued again
// to be shared among all (a cancelled request keeps what it delivered).
// Without it a first source keeps all it asked for before the others
// were known (up to MaxWindow: 16 MiB at 140 Mbit/s is a second) while
// the others idle.
func (e *engine) rebalance() {
	bySource := map[*source][]*request{}
	left := e.queuedBytes
	for r := range e.live {
		if !r.retired {
			bySource[r.src] = append(bySource[r.src], r)
			left += e.owes(r)
		}
	}
	active := e.activeSources()
	if active == 0 {
		return
	}
	share := left / int64(active)
	for _, reqs := range bySource {
		slices.SortFunc(reqs, func(a, b *request) int { return a.sentAt.Compare(b.sentAt) })
		var kept int64
		for _, r := range reqs {
			if kept += e.owes(r); kept > share {
				r.cancel()
			}
		}
	}
}

// owes is the bytes request r was asked for and has not delivered, of
// blocks not done through another request either.
func (e *engine) owes(r *request) int64 {
	var n int64
	for k, i := range r.blocks {
		if !r.received[k] && !e.blocks[i].done {
			n += int64(e.plan.Blocks[i].Size)
		}
	}
	return n
}

// add makes sources part of the transfer.
func (e *engine) add(srcs []Source) {
	for _, s := range srcs {
		if s != nil {
			e.sources = append(e.sources, &source{src: s, id: s.ID(), est: newEstimator(e.opts.InitialWindow, e.opts.MaxWindow)})
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run is the scheduler: it hands out requests as windows and the budget
// allow, drops stalled sources and reports progress, until the transfer
// ends one way or another; then it stops every request and the sink and
// waits for their goroutines.
func (e *engine) run(ctx context.Context) (Result, error) {
	e.start = e.clk.Now()
	e.lastProgress = e.start
	reqCtx, stopRequests := context.WithCancel(ctx)
	defer stopRequests()
	go e.feedSink(ctx)

	timer := e.clk.NewTimer(time.Hour)
	defer timer.Stop()
	var err error
	for {
		e.mu.Lock()
		now := e.clk.Now()
		switch {
		case e.sinkErr != nil:
			err = e.sinkErr
		case e.sunk == len(e.blocks):
		default:
			e.checkStalls(now)
			e.schedule(reqCtx, now)
			if e.accepted < len(e.blocks) && len(e.live) == 0 && e.activeSources() == 0 && e.later == nil {
				err = e.allFailed()
			}
		}
		if err != nil || e.sunk == len(e.blocks) {
			e.mu.Unlock()
			break
		}
		wake := e.nextWake(now)
		var p *Progress
		if e.opts.Progress != nil && now.Sub(e.lastProgress) >= e.opts.ProgressEvery {
			p = e.progressLocked(now)
		}
		e.mu.Unlock()
		if p != nil {
			e.opts.Progress(*p)
		}
		timer.Stop()
		timer.Reset(wake.Sub(now))
		select {
		case srcs := <-e.later: // a nil channel (none to come) never fires
			e.mu.Lock()
			e.later = nil
			n := len(e.sources)
			e.add(srcs)
			if len(e.sources) > n {
				e.rebalance()
			}
			e.mu.Unlock()
		case <-e.notify:
		case <-timer.C():
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		if err != nil {
			break
		}
	}

	// Stop every request, let the sink take what verified (unless ctx is
	// done: then it stops too), and wait for them all.
	stopRequests()
	e.reqs.Wait()
	e.mu.Lock()
	e.sinkClosing = true
	e.mu.Unlock()
	signal(e.sinkWake)
	<-e.sinkDone

	e.mu.Lock()
	if err == nil && e.sinkErr != nil {
		err = e.sinkErr
	}
	now := e.clk.Now()
	res := e.resultLocked(now)
	var p *Progress
	if e.opts.Progress != nil {
		p = e.progressLocked(now)
	}
	e.mu.Unlock()
	if p != nil {
		e.opts.Progress(*p)
	}
	if err != nil {
		return res, fmt.Errorf("fetch blocks: %w", err)
	}
	return res, nil
}

func (e *engine) activeSources() int {
	n := 0
	for _, s := range e.sources {
		if s.state == StateActive {
			n++
		}
	}
	return n
}

func (e *engine) allFailed() error {
	se := &SourcesError{Missing: len(e.blocks) - e.accepted}
	for _, s := range e.sources {
		se.Sources = append(se.Sources, e.sourceResult(s))
	}
	return se
}

// checkStalls drops the sources that have requests outstanding and sent
// nothing for StallTimeout.
func (e *engine) checkStalls(now time.Time) {
	for _, s := range e.sources {
		if s.state == StateActive && s.requests > 0 && now.Sub(s.lastActive) >= e.opts.StallTimeout {
			e.drop(s, StateStalled, fmt.Errorf("%w: nothing received for %s", ErrStalled, now.Sub(s.lastActive).Round(time.Millisecond)))
		}
	}
}

// nextWake is when the scheduler must look again without being told: the
// next stall deadline or progress report.
func (e *engine) nextWake(now time.Time) time.Time {
	wake := now.Add(time.Hour)
	if e.opts.Progress != nil {
		wake = e.lastProgress.Add(e.opts.ProgressEvery)
	}
	for _, s := range e.sources {
		if s.state == StateActive && s.requests > 0 {
			if t := s.lastActive.Add(e.opts.StallTimeout); t.Before(wake) {
				wake = t
			}
		}
	}
	return wake
}

// drop takes a source out of the transfer: its requests are cancelled, and
// as each ends the blocks it held go back to the queue.
func (e *engine) drop(s *source, st State, err error) {
	if s.state != StateActive {
		return
	}
	s.state, s.err = st, err
	for r := range e.live {
		if r.src == s {
			r.cancel()
		}
	}
	signal(e.notify)
}

// schedule hands out requests: each round gives every active source, the
// fastest first, at most one request, so that the budget is shared, and
// rounds go on until nobody can take more.
func (e *engine) schedule(ctx context.Context, now time.Time) {
	active := make([]*source, 0, len(e.sources))
	for _, s := range e.sources {
		if s.state == StateActive {
			active = append(active, s)
		}
	}
	slices.SortStableFunc(active, func(a, b *source) int {
		switch {
		case a.est.rate > b.est.rate:
			return -1
		case a.est.rate < b.est.rate:
			return 1
		}
		return 0
	})
	for {
		issued := false
		for _, s := range active {
			if blocks := e.take(s, len(active)); len(blocks) > 0 {
				e.issue(ctx, s, blocks, now)
				issued = true
			}
		}
		if !issued {
			return
		}
	}
}

// take picks the blocks of s's next request: from the queue while it
// lasts, then (endgame) blocks other sources still owe. Of the queue, one
// request takes at most an equal share among the active sources: a
// study smaller than the windows is spread over every holder rather
// than handed whole to the first one asked.
func (e *engine) take(s *source, active int) []int {
	used := e.inflight + e.buffered
	room := s.est.window - s.inflight
	free := e.opts.MaxInFlight - used
	req := min(max(s.est.window/4, 1), e.opts.MaxRequestBytes)
	if len(e.queue) > 0 {
		// Until the other sources are known (Options.Later), a source
		// asks for as much as it may ever hold: a study smaller than
		// that is asked for in the first round trip, whatever the
		// window, and sources that join take their share back
		// (rebalance).
		if e.later != nil {
			w := max(s.est.window, e.opts.MaxWindow)
			room = w - s.inflight
			req = min(max(w/4, 1), e.opts.MaxRequestBytes)
		}
		req = min(req, max(e.queuedBytes/int64(active), 1))
		// A source with nothing in flight gets a block even if it is
		// larger than its window; so does the transfer as a whole.
		first := int64(e.plan.Blocks[e.queue[0]].Size)
		if s.inflight == 0 {
			room = max(room, first)
		}
		if used == 0 {
			free = max(free, first)
		}
		limit := min(room, free, max(req, first))
		// Wait for room for a worthwhile request rather than dribble
		// out one block at a time.
		if s.inflight > 0 && limit < min(req/2, e.queuedBytes) {
			return nil
		}
		var out []int
		var n int64
		for len(e.queue) > 0 && (e.opts.MaxRequestBlocks == 0 || len(out) < e.opts.MaxRequestBlocks) {
			sz := int64(e.plan.Blocks[e.queue[0]].Size)
			if n+sz > limit {
				break
			}
			out = append(out, e.queue[0])
			n += sz
			e.queuedBytes -= sz
			e.queue = e.queue[1:]
		}
		return out
	}
	return e.endgame(s, min(room, free, req))
}

// endgame picks blocks that slower sources were asked for and have not
// sent yet, for an idle source to fetch again: the first verified copy
// wins. The slowest sources' blocks come first, and in a request the last
// ones, which would arrive last.
func (e *engine) endgame(s *source, limit int64) []int {
	if limit <= 0 {
		return nil
	}
	var reqs []*request
	for r := range e.live {
		if r.src != s && !r.retired && r.src.state == StateActive {
			reqs = append(reqs, r)
		}
	}
	slices.SortFunc(reqs, func(a, b *request) int {
		if c := cmpFloat(a.src.est.rate, b.src.est.rate); c != 0 {
			return c
		}
		return a.sentAt.Compare(b.sentAt)
	})
	var out []int
	var n int64
	for _, r := range reqs {
		for k := len(r.blocks) - 1; k >= 0; k-- {
			i := r.blocks[k]
			st := &e.blocks[i]
			// (A block two other requests hold is met twice: it goes into
			// this request once.)
			sz := int64(e.plan.Blocks[i].Size)
			if r.received[k] || st.done || len(st.holders) >= maxCopies || !fasterThanHolders(s, st) || slices.Contains(out, i) {
				continue
			}
			if n+sz > limit || (e.opts.MaxRequestBlocks > 0 && len(out) >= e.opts.MaxRequestBlocks) {
				return out
			}
			out = append(out, i)
			n += sz
		}
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fasterThanHolders reports whether s measured faster than every source
// that holds the block: a copy on a slower source would only take the
// place of one on a faster source that goes idle next.
func fasterThanHolders(s *source, st *blockState) bool {
	for _, r := range st.holders {
		if r.src == s || r.src.est.rate >= s.est.rate {
			return false
		}
	}
	return true
}

// issue starts a request of s for the blocks, on its own goroutine.
func (e *engine) issue(ctx context.Context, s *source, idx []int, now time.Time) {
	rctx, cancel := context.WithCancel(ctx)
	r := &request{
		src: s, blocks: idx, pos: make(map[cid.Cid]int, len(idx)), received: make([]bool, len(idx)),
		open: len(idx), sentAt: now, deliveredAt: s.delivered, cancel: cancel,
	}
	blocks := make([]Block, len(idx))
	for k, i := range idx {
		b := e.plan.Blocks[i]
		blocks[k] = b
		r.pos[b.CID] = k
		e.blocks[i].holders = append(e.blocks[i].holders, r)
		s.inflight += int64(b.Size)
		e.inflight += int64(b.Size)
	}
	e.peak = max(e.peak, e.inflight+e.buffered)
	if s.requests == 0 {
		s.lastActive = now
	}
	s.requests++
	e.live[r] = struct{}{}
	e.reqs.Add(1)
	go func() {
		defer e.reqs.Done()
		err := s.src.Fetch(rctx, blocks, func(b Block, data []byte) error { return e.got(r, b, data) })
		cancelled := rctx.Err() != nil
		cancel()
		e.end(r, err, cancelled)
	}()
}

// errDropped is got's answer once a request ended or its source was
// dropped: the source must stop.
var errDropped = errors.New("request cancelled")

// got takes a block a source sent for request r.
func (e *engine) got(r *request, b Block, data []byte) error {
	s := r.src
	e.mu.Lock()
	if r.ended || s.state != StateActive {
		e.mu.Unlock()
		return errDropped
	}
	k, ok := r.pos[b.CID]
	if !ok || r.received[k] {
		err := fmt.Errorf("%w: %s sent block %s, which it was not asked for", ErrCorrupt, s.id, b.CID)
		e.drop(s, StateCorrupt, err)
		e.mu.Unlock()
		return err
	}
	i := r.blocks[k]
	want := e.plan.Blocks[i]
	if !e.blocks[i].done {
		e.mu.Unlock()
		// Verify outside the lock: hashing is the expensive part, and
		// several sources hash at once. A copy of a block that is done
		// already is thrown away unverified.
		var verr error
		if len(data) != want.Size {
			verr = fmt.Errorf("%d bytes, want %d", len(data), want.Size)
		} else {
			verr = e.plan.Verify(want, data)
		}
		e.mu.Lock()
		if verr != nil {
			err := fmt.Errorf("%w: %s from %s: %w", ErrCorrupt, want.CID, s.id, verr)
			e.drop(s, StateCorrupt, err)
			e.mu.Unlock()
			return err
		}
		if r.ended || s.state != StateActive || r.received[k] {
			e.mu.Unlock()
			return errDropped
		}
	}
	defer e.mu.Unlock()
	now := e.clk.Now()
	sz := int64(want.Size)
	r.received[k] = true
	s.inflight -= sz
	e.inflight -= sz
	ahead := s.delivered - r.deliveredAt
	s.delivered += sz
	s.est.sample(now, !r.first, ahead, s.delivered-r.deliveredAt, now.Sub(r.sentAt))
	r.first = true
	s.lastActive = now
	st := &e.blocks[i]
	st.holders = slices.DeleteFunc(st.holders, func(h *request) bool { return h == r })
	defer signal(e.notify)
	if st.done {
		s.dups += sz
		e.dups += sz
		return nil
	}
	st.done = true
	r.open--
	e.accepted++
	e.acceptedB += sz
	e.buffered += sz
	s.bytes += sz
	s.blocks++
	e.sinkQ = append(e.sinkQ, sinkItem{i, data})
	signal(e.sinkWake)
	// The other requests for this block need not send it: one whose
	// blocks are all done is cancelled, freeing its window.
	for _, h := range st.holders {
		if h.open--; h.open == 0 {
			h.retired = true
			h.cancel()
		}
	}
	return nil
}

// end accounts for a request whose Fetch returned: the blocks it did not
// deliver are released and, if no other request holds them, queued again.
func (e *engine) end(r *request, err error, cancelled bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer signal(e.notify)
	s := r.src
	r.ended = true
	delete(e.live, r)
	s.requests--
	var back []int
	unsent := 0
	for k, i := range r.blocks {
		if r.received[k] {
			continue
		}
		sz := int64(e.plan.Blocks[i].Size)
		s.inflight -= sz
		e.inflight -= sz
		st := &e.blocks[i]
		st.holders = slices.DeleteFunc(st.holders, func(h *request) bool { return h == r })
		if !st.done {
			unsent++
			if len(st.holders) == 0 {
				back = append(back, i)
			}
		}
	}
	if len(back) > 0 {
		for _, i := range back {
			e.queuedBytes += int64(e.plan.Blocks[i].Size)
		}
		e.queue = append(back, e.queue...)
	}
	switch {
	case s.state != StateActive, r.retired, cancelled:
		// Dropped already, or cancelled by the engine: not (again) the
		// source's fault.
	case errors.Is(err, ErrCorrupt):
		// The source checked the bytes itself and found them wrong.
		e.drop(s, StateCorrupt, err)
	case err != nil:
		e.drop(s, StateFailed, err)
	case unsent > 0:
		e.drop(s, StateFailed, fmt.Errorf("source ended a request with %d blocks unsent", unsent))
	}
}

// feedSink hands verified blocks to the sink, one at a time, until the
// transfer closes the queue and it is empty, or ctx is done, or the sink
// fails.
func (e *engine) feedSink(ctx context.Context) {
	defer close(e.sinkDone)
	for {
		e.mu.Lock()
		if len(e.sinkQ) == 0 || ctx.Err() != nil {
			closing := e.sinkClosing
			e.mu.Unlock()
			if closing || ctx.Err() != nil {
				return
			}
			select {
			case <-e.sinkWake:
			case <-ctx.Done():
			}
			continue
		}
		it := e.sinkQ[0]
		e.sinkQ[0] = sinkItem{}
		e.sinkQ = e.sinkQ[1:]
		e.mu.Unlock()
		b := e.plan.Blocks[it.i]
		err := e.plan.Sink.Put(ctx, b, it.data)
		e.mu.Lock()
		e.buffered -= int64(b.Size)
		if err != nil {
			e.sinkErr = fmt.Errorf("put block %s: %w", b.CID, err)
			e.mu.Unlock()
			signal(e.notify)
			return
		}
		e.sunk++
		e.sunkBytes += int64(b.Size)
		e.blocks[it.i].sunk = true
		e.mu.Unlock()
		signal(e.notify)
	}
}

// progressLocked reports the transfer's state and updates the smoothed
// rate.
func (e *engine) progressLocked(now time.Time) *Progress {
	if dt := now.Sub(e.lastProgress); dt > 0 {
		r := float64(e.sunkBytes-e.lastBytes) / dt.Seconds()
		if e.rate == 0 {
			e.rate = r
		} else {
			e.rate += (r - e.rate) / 3
		}
	}
	e.lastProgress, e.lastBytes = now, e.sunkBytes
	p := &Progress{
		Time: now, Elapsed: now.Sub(e.start),
		BlocksDone: e.sunk, BlocksTotal: len(e.blocks),
		BytesDone: e.sunkBytes, BytesTotal: e.total, Rate: e.rate,
	}
	if e.rate > 0 {
		p.ETA = time.Duration(float64(p.BytesTotal-p.BytesDone) / e.rate * float64(time.Second))
	}
	for _, s := range e.sources {
		p.Sources = append(p.Sources, SourceProgress{
			Source: s.src, ID: s.id, State: s.state, Err: s.err, Bytes: s.bytes,
			Rate: s.est.rate, RTT: s.est.rtt, Window: s.est.window,
		})
	}
	return p
}

func (e *engine) sourceResult(s *source) SourceResult {
	sr := SourceResult{
		Source: s.src, ID: s.id, State: s.state, Err: s.err, Blocks: s.blocks, Bytes: s.bytes,
		Duplicates: s.dups, Rate: s.est.rate, RTT: s.est.rtt,
	}
	if e.acceptedB > 0 {
		sr.Share = float64(s.bytes) / float64(e.acceptedB)
	}
	return sr
}

func (e *engine) resultLocked(now time.Time) Result {
	res := Result{
		Blocks: e.sunk, Bytes: e.sunkBytes, Duplicates: e.dups,
		Duration: now.Sub(e.start), PeakInFlight: e.peak,
	}
	for _, s := range e.sources {
		res.Sources = append(res.Sources, e.sourceResult(s))
	}
	for i, b := range e.plan.Blocks {
		if !e.blocks[i].sunk {
			res.Missing = append(res.Missing, b)
		}
	}
	return res
}
