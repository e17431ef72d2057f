package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
	"github.com/pacsnet/pacsnet/transfer"
)

// Fetch states: the api package's.
const (
	FetchRunning = api.FetchRunning
	FetchWaiting = api.FetchWaiting // the holder is unreachable; retrying
	FetchDone    = api.FetchDone
	FetchFailed  = api.FetchFailed
)

// FetchStatus is the progress of one fetch.
type FetchStatus struct {
	ID            string
	Study         string
	Issuer        peer.ID
	IssuerName    string
	State         string
	Instances     int
	InstancesDone int
	Bytes         int64 // ciphertext bytes of all the study's blocks
	BytesDone     int64 // of which are stored here (received now or before)
	BytesResumed  int64
	Rate          float64       // bytes/s received, smoothed, while running
	ETA           time.Duration // time left at that rate while running; 0 when unknown
	Sources       []FetchSource // each holder's part, as of the last progress report
	Attempts      int
	NextAttempt   time.Time     // while waiting for an unreachable holder: the next try
	GiveUpAt      time.Time     // while waiting: when the fetch fails unless the holder answers
	Waited        time.Duration // time spent on attempts that got no block and in the pauses between them
	Started       time.Time
	Finished      time.Time
	Error         string
}

// FetchRequest names the study to fetch and, optionally, the partner.
type FetchRequest struct {
	Study     string
	From      string
	Actor     string // the user's ID (the audit's actor), or "admin", or "ae:" and a calling AE
	ActorName string // the user's name, when a user asks
}

// blockFetcher is what the fetcher needs of the exchange service.
type blockFetcher interface {
	FetchBlocks(ctx context.Context, p peer.ID, grant string, cids []cid.Cid, got func(cid.Cid, []byte) error) error
	PullManifest(ctx context.Context, p peer.ID, study string) ([]byte, error)
}

// fetcher runs fetch jobs: it owns their goroutines, which stop when the
// context given to newFetcher ends; wait waits for them.
type fetcher struct {
	store    *store.Store
	keys     *keyring
	ex       blockFetcher
	inbox    *inbox
	partners *partners
	audit    *auditor
	clock    clock.Clock
	id       *crypto.Identity
	retryFor time.Duration
	redial   func(peer.ID)
	ctx      context.Context
	space    *space // refuses a fetch, and stops one, when the disk is nearly full
	log      *slog.Logger
	fetched  func(study string)                       // a fetch completed: every instance stored, its blocks checked against the signed manifest (forwarding)
	asks     *asks                                    // asks the original holder for the study's other holders; nil: the original holder only
	announce func(m Manifest, g *consent.SignedGrant) // a fetch completed under g (nil: none naming no user is live): tell the holder (secondary room)

	mu   sync.Mutex
	jobs map[string]*fetchJob
	wg   sync.WaitGroup
}

// maxFinishedJobs bounds the finished jobs kept for status queries; the
// oldest finished ones are forgotten first. Running jobs are never
// dropped.
const maxFinishedJobs = 256

type fetchJob struct {
	mu sync.Mutex
	st FetchStatus
}

func (j *fetchJob) status() FetchStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.st
}

func (j *fetchJob) update(f func(*FetchStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	f(&j.st)
}

func (j *fetchJob) active() bool {
	st := j.status()
	return st.State == FetchRunning || st.State == FetchWaiting
}

// Start starts fetching a study a partner shared with us and returns at
// once; Status reports progress. Blocks already held are not fetched
// again, so a fetch that failed can simply be started again.
func (f *fetcher) Start(ctx context.Context, req FetchRequest) (FetchStatus, error) {
	rec, err := f.sharedFor(ctx, req)
	if err != nil {
		return FetchStatus{}, err
	}
	m := rec.Manifest
	// A fetch of the same study that is still running is followed, not
	// started twice: `pacsnet fetch` after a Ctrl-C picks it up again.
	f.mu.Lock()
	for _, j := range f.jobs {
		if st := j.status(); st.Study == m.Study.UID && st.Issuer == m.Issuer && j.active() {
			f.mu.Unlock()
			return st, nil
		}
	}
	f.mu.Unlock()
	if len(rec.Key) > 0 {
		k, err := crypto.Decrypt(rec.Key, f.id.Box)
		if err != nil {
			return FetchStatus{}, fmt.Errorf("unwrap study key: %w", err)
		}
		m.StudyKey = string(k)
	}
	// A study held here under the same UID, as this facility's own or as
	// another partner's copy, is not mixed with this one.
	if sr, ok, err := f.store.Study(m.Study.UID); err != nil {
		return FetchStatus{}, err
	} else if ok && sr.Origin != m.Issuer {
		return FetchStatus{}, &otherOriginError{partner: sr.OriginName}
	}
	// Any live grant of the partner's for the study will do: the one that
	// lasts longest is cited in every block request.
	// A grant that names a user at this facility is that user's alone.
	grants := rec.AllGrants()
	mine := grantsForUser(grants, req.Actor, req.ActorName)
	if len(grants) > 0 && len(mine) == 0 {
		return FetchStatus{}, fmt.Errorf("%w: %s granted that study to another user here", exchange.ErrDenied, m.IssuerName)
	}
	g, live := bestGrant(mine, f.clock.Now())
	switch {
	case rec.State == SharedRevoked || g == nil:
		return FetchStatus{}, fmt.Errorf("%w: %s revoked every grant it gave for that study", exchange.ErrDenied, m.IssuerName)
	case !live && f.clock.Now().Before(g.Grant.NotBefore):
		return FetchStatus{}, fmt.Errorf("%w: the grant for that study is valid from %s", exchange.ErrDenied, g.Grant.NotBefore.UTC().Format(time.RFC3339))
	case !live:
		return FetchStatus{}, fmt.Errorf("%w: the grant for that study expired at %s", exchange.ErrDenied, g.Grant.Expires.UTC().Format(time.RFC3339))
	}
	m.Grant = g
	if err := f.space.bulk(); err != nil {
		return FetchStatus{}, err
	}
	id := make([]byte, 8)
	rand.Read(id)
	j := &fetchJob{st: FetchStatus{
		ID: hex.EncodeToString(id), Study: m.Study.UID, Issuer: m.Issuer, IssuerName: m.IssuerName,
		State: FetchRunning, Instances: len(m.Instances), Started: f.clock.Now().UTC(),
	}}
	for _, in := range m.Instances {
		for _, b := range in.Blocks {
			j.st.Bytes += int64(b.Size)
		}
	}
	f.mu.Lock()
	f.pruneLocked()
	f.jobs[j.st.ID] = j
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		err := f.run(f.ctx, j, m, req.Actor)
		if err == nil && f.fetched != nil {
			f.fetched(m.Study.UID) // before the job reads done: queued by then
		}
		if err == nil && f.announce != nil {
			f.announce(m, facilityGrant(rec.AllGrants(), f.clock.Now()))
		}
		j.update(func(s *FetchStatus) {
			s.Finished = f.clock.Now().UTC()
			s.NextAttempt, s.GiveUpAt = time.Time{}, time.Time{}
			if err != nil {
				f.log.Warn("fetch failed", "peer", m.Issuer, "reason", fetchFailReason(err), "err", err)
				s.State, s.Error = FetchFailed, fetchSentence(err, m.IssuerName)
			} else {
				s.State = FetchDone
			}
		})
		e := consent.Entry{Actor: req.Actor, Peer: m.Issuer, Action: consent.ActFetchCompleted, Study: m.Study.UID, GrantID: m.Grant.Grant.ID, Decision: consent.DecisionAllow,
			Reason: secondariesReason(j.status().Sources, m.Issuer)}
		if err != nil {
			e.Action, e.Decision, e.Reason = consent.ActFetchFailed, consent.DecisionDeny, fetchFailReason(err)
		}
		f.audit.Record(e)
	}()
	return j.status(), nil
}

// pruneLocked forgets the oldest finished jobs beyond maxFinishedJobs.
func (f *fetcher) pruneLocked() {
	var done []*fetchJob
	for _, j := range f.jobs {
		if !j.active() {
			done = append(done, j)
		}
	}
	if len(done) < maxFinishedJobs {
		return
	}
	slices.SortFunc(done, func(a, b *fetchJob) int { return a.status().Finished.Compare(b.status().Finished) })
	for _, j := range done[:len(done)-maxFinishedJobs+1] {
		delete(f.jobs, j.status().ID)
	}
}

// Status reports a fetch job.
func (f *fetcher) Status(id string) (FetchStatus, bool) {
	f.mu.Lock()
	j, ok := f.jobs[id]
	f.mu.Unlock()
	if !ok {
		return FetchStatus{}, false
	}
	return j.status(), true
}

// Active reports the fetches running or waiting for their holder, oldest
// first.
func (f *fetcher) Active() []FetchStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FetchStatus
	for _, j := range f.jobs {
		if j.active() {
			out = append(out, j.status())
		}
	}
	slices.SortFunc(out, func(a, b FetchStatus) int { return a.Started.Compare(b.Started) })
	return out
}

// List reports every job kept (running, waiting and the most recent
// finished ones), newest first.
func (f *fetcher) List() []FetchStatus {
	f.mu.Lock()
	out := make([]FetchStatus, 0, len(f.jobs))
	for _, j := range f.jobs {
		out = append(out, j.status())
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b FetchStatus) int { return b.Started.Compare(a.Started) })
	return out
}

// wait waits for the jobs' goroutines (after their context ended).
func (f *fetcher) wait() { f.wg.Wait() }

// unavailableError marks a holder that cannot be reached now: try again
// later.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// badRequestError marks a fetch request the caller must change.
type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

// sharedFor finds the manifest for the requested study. When no partner
// shared it yet and one is named, we ask that partner for it (pull): the
// partner answers only if it granted us access, and audits the request.
func (f *fetcher) sharedFor(ctx context.Context, req FetchRequest) (store.Shared, error) {
	var from peer.ID
	if req.From != "" {
		p, err := f.partners.Resolve(req.From)
		if err != nil {
			return store.Shared{}, &badRequestError{err.Error()}
		}
		from = p.ID
	}
	all, err := f.store.SharedAll()
	if err != nil {
		return store.Shared{}, err
	}
	var found []store.Shared
	for _, r := range all {
		if r.Manifest.Study.UID == req.Study && (from == "" || r.Manifest.Issuer == from) {
			found = append(found, r)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return store.Shared{}, &badRequestError{"several partners shared that study: name one with --from"}
	case from == "":
		return store.Shared{}, ErrNotShared
	}
	// Pull: ask the named partner for the manifest.
	sealed, err := f.ex.PullManifest(ctx, from, req.Study)
	if err != nil {
		msg := fetchSentence(err, req.From)
		if errors.As(err, new(*exchange.RemoteError)) && errors.Is(err, exchange.ErrDenied) {
			msg = req.From + " has not shared that study with this facility (it holds no live grant for it)"
		}
		err = &sentenceError{msg: "ask " + req.From + " for the study: " + msg, err: err}
		var re *exchange.RemoteError
		if !errors.As(err, &re) && !permanent(err) {
			return store.Shared{}, &unavailableError{err}
		}
		return store.Shared{}, err
	}
	if err := f.inbox.receive(from, sealed); err != nil {
		return store.Shared{}, fmt.Errorf("manifest from %s: %w", req.From, err)
	}
	r, ok, err := f.store.SharedFor(from, req.Study)
	if err != nil || !ok {
		return store.Shared{}, fmt.Errorf("manifest from %s: not stored: %v", req.From, err)
	}
	return r, nil
}

// errIntegrity marks what a partner sent that does not verify: no retry
// can fix it.
var errIntegrity = store.ErrIntegrity

// permanent reports errors a retry cannot fix.
func permanent(err error) bool {
	return errors.Is(err, exchange.ErrDenied) || errors.Is(err, exchange.ErrNotFound) ||
		errors.Is(err, exchange.ErrBadBlock) || errors.Is(err, exchange.ErrBadRequest) ||
		errors.Is(err, transfer.ErrCorrupt) || errors.Is(err, errIntegrity)
}

// Audit reasons of a failed fetch: codes, never the error's text.
const (
	fetchFailIntegrity   = "integrity"
	fetchFailUnreachable = "holder-unreachable"
	fetchFailRefused     = "holder-refused" // followed by the holder's wire code
	fetchFailStopped     = "stopped"
	fetchFailLocal       = "local-error"
	fetchFailDiskFull    = "disk-full"
	fetchFailCorrupt     = "corrupt-block" // the holder sent bytes that are not the block asked for
)

// fetchFailReason is the audit reason of a failed fetch.
func fetchFailReason(err error) string {
	var re *exchange.RemoteError
	switch {
	case errors.Is(err, errIntegrity):
		return fetchFailIntegrity
	case errors.Is(err, transfer.ErrCorrupt), errors.Is(err, exchange.ErrBadBlock):
		return fetchFailCorrupt
	case errors.Is(err, errHolderUnreachable):
		return fetchFailUnreachable
	case errors.As(err, &re):
		return fetchFailRefused + ": " + re.Code.String()
	case errors.Is(err, context.Canceled):
		return fetchFailStopped
	case errors.As(err, new(*diskFullError)):
		return fetchFailDiskFull
	}
	return fetchFailLocal
}

// errHolderUnreachable: the holder could not be reached for
// exchange.fetch_retry_for.
var errHolderUnreachable = errors.New("holder unreachable")

func (f *fetcher) run(ctx context.Context, j *fetchJob, m Manifest, actor string) error {
	sk, err := f.keys.Ensure(m.Study, m.Issuer, m.IssuerName, m.StudyKey)
	if err != nil {
		return err
	}
	if sk.String() != m.StudyKey {
		return fmt.Errorf("%w: a different key is already held for that study", errIntegrity)
	}
	// A copy fetched under a grant naming a user is that user's to read.
	user := ""
	if m.Grant != nil {
		user = m.Grant.Grant.GranteeUser
	}
	if err := f.store.SetReaders(m.Study.UID, func(sr store.Study) []string { return readersAfterFetch(sr, user) }); err != nil {
		return fmt.Errorf("record the study's readers: %w", err)
	}
	// Until every instance is here, the study is listed as partial and
	// export refuses it unless asked for a partial export.
	if err := f.store.SetExpected(m.Study.UID, len(m.Instances)); err != nil {
		return fmt.Errorf("record expected instances: %w", err)
	}
	// Which instances are still missing, and which of their blocks: the
	// plan lists each missing block once, with its size from the manifest.
	type pending struct {
		info    InstanceInfo
		missing int
	}
	byCID := map[cid.Cid][]*pending{}
	sizes := map[cid.Cid]int{}
	var plan transfer.Plan
	var todo []*pending
	for _, in := range m.Instances {
		if prev, ok, err := f.store.InstanceBySOP(in.SOPInstanceUID); err != nil {
			return err
		} else if ok {
			if prev.Digest != in.Digest {
				return fmt.Errorf("%w: a different instance with the same SOP Instance UID is already held", errIntegrity)
			}
			j.update(func(s *FetchStatus) {
				s.InstancesDone++
				for _, b := range in.Blocks {
					s.BytesDone += int64(b.Size)
					s.BytesResumed += int64(b.Size)
				}
			})
			continue
		}
		p := &pending{info: in}
		todo = append(todo, p)
		for _, b := range in.Blocks {
			c, err := cid.Decode(b.CID)
			if pf := c.Prefix(); err != nil || pf.Version != 1 || pf.Codec != cid.Raw || pf.MhType != cidPrefix.MhType || pf.MhLength != 32 || b.Size <= 0 || b.Size > BlockSize {
				return fmt.Errorf("%w: manifest names a malformed block", errIntegrity)
			}
			if sz, ok := sizes[c]; ok && sz != b.Size {
				return fmt.Errorf("%w: manifest names one block with two sizes", errIntegrity)
			}
			sizes[c] = b.Size
			has, err := f.store.HasBlock(c)
			if err != nil {
				return err
			}
			if has {
				j.update(func(s *FetchStatus) { s.BytesDone += int64(b.Size); s.BytesResumed += int64(b.Size) })
				continue
			}
			p.missing++
			if len(byCID[c]) == 0 {
				plan.Blocks = append(plan.Blocks, transfer.Block{CID: c, Size: b.Size})
			}
			byCID[c] = append(byCID[c], p)
		}
	}
	// Received blocks and complete instances are committed in batches: one
	// synced transaction per fetchBatchBytes (group commit) instead of one
	// per block. Nothing is reported done before its batch is committed.
	bt := newFetchBatch(f, j)
	defer bt.wait() // on a failure: no commit outlives the fetch
	for _, p := range todo {
		if p.missing == 0 {
			bt.finished(p.info)
		}
	}
	// The transfer engine fetches the plan over several streams at once
	// and hands the blocks, in arrival order and one at a time, to the
	// sink: the batch above. The engine's goroutines have ended when
	// transfer.Fetch returns, so what the sink writes (lastProgress, the
	// batch) is read safely after it.
	lastProgress := f.clock.Now()
	var firstBlock time.Time // of the current attempt
	plan.Verify = verifyFetched
	plan.Sink = transfer.SinkFunc(func(ctx context.Context, b transfer.Block, data []byte) error {
		if err := bt.add(b.CID, data); err != nil {
			return err
		}
		lastProgress = f.clock.Now()
		if firstBlock.IsZero() {
			firstBlock = lastProgress
		}
		j.update(func(s *FetchStatus) { s.BytesDone += int64(len(data)) })
		for _, p := range byCID[b.CID] {
			if p.missing--; p.missing == 0 {
				bt.finished(p.info)
			}
		}
		// The first complete instance is committed at once, so that a
		// viewer can show the first image without waiting for a whole
		// batch; after it, group commits.
		// Between the two, a batch of fetchBatchMinBytes and
		// fetchBatchMinInterval is committed as soon as the commit
		// before it is done: the fsyncs keep up with the link, and the
		// last one, which the fetch waits for, is short; on a fast
		// link (loopback) commits stay large, and cheap.
		since := f.clock.Now().Sub(bt.since)
		if bt.bytes >= fetchBatchBytes || since >= fetchBatchInterval || !bt.shown && len(bt.insts) > 0 ||
			bt.bytes >= fetchBatchMinBytes && since >= fetchBatchMinInterval && bt.idle() {
			return bt.flush()
		}
		return nil
	})
	name := m.IssuerName
	if name == "" {
		name = m.Issuer.String()
	}
	// The original holder at once; the secondary holders it lists join
	// when its answer comes (transfer.Options.Later): the first blocks
	// need not wait a round trip for it. The engine spreads the blocks
	// over all of them.
	holders := []holderSource{{ex: f.ex, peer: m.Issuer, name: name, grant: m.Grant.Grant.ID}}
	later := make(chan []transfer.Source, 1)
	askDone := make(chan struct{})
	var secondaries []holderSource // written before askDone closes
	askCtx, stopAsk := context.WithCancel(ctx)
	if len(plan.Blocks) > 0 {
		go func() {
			defer close(askDone)
			secondaries = f.secondarySources(askCtx, m)
			srcs := make([]transfer.Source, len(secondaries))
			for i, h := range secondaries {
				srcs[i] = h
			}
			later <- srcs
		}()
	} else {
		close(askDone) // nothing to fetch, nobody to ask
	}
	defer func() { stopAsk(); <-askDone }()
	// Bytes each holder delivered in earlier attempts of this fetch, and
	// the holders dropped for sending corrupt bytes: not asked again.
	delivered := map[peer.ID]int64{}
	corrupt := map[peer.ID]bool{}
	opts := transfer.Options{
		Clock:            engineClock{f.clock},
		MaxRequestBlocks: exchange.MaxBlocksPerRequest,
		InitialWindow:    4 << 20, // a 50 ms round trip at 1 Gbit/s is 6 MB: two doublings, not six
		StallTimeout:     fetchStallTimeout,
		Later:            later, // the first attempt only: a retry starts with every holder
		Progress: func(p transfer.Progress) {
			j.update(func(s *FetchStatus) {
				s.Rate, s.ETA = p.Rate, p.ETA
				// A new slice each time: status() hands out copies of
				// the struct, which share it.
				s.Sources = make([]FetchSource, 0, len(p.Sources))
				for _, sp := range p.Sources {
					if h, ok := sp.Source.(holderSource); ok {
						s.Sources = append(s.Sources, FetchSource{Peer: h.peer, Name: h.name,
							Bytes: delivered[h.peer] + sp.Bytes, State: sourceState(sp.State)})
					}
				}
			})
		},
	}
	backoff := 250 * time.Millisecond
	for len(plan.Blocks) > 0 {
		j.update(func(s *FetchStatus) { s.Attempts++; s.State = FetchRunning })
		var sources []transfer.Source
		for _, h := range holders {
			if !corrupt[h.peer] {
				sources = append(sources, h)
			}
		}
		attemptStart, retry := f.clock.Now(), j.status().Attempts > 1
		firstBlock = time.Time{}
		res, err := transfer.Fetch(ctx, plan, sources, opts)
		switch {
		case err != nil && res.Blocks == 0:
			// No block came of it: waiting for the holders, not transferring.
			j.update(func(s *FetchStatus) { s.Waited += f.clock.Now().Sub(attemptStart) })
		case retry && !firstBlock.IsZero():
			// A retry's dial may go on until the holder is back.
			j.update(func(s *FetchStatus) { s.Waited += firstBlock.Sub(attemptStart) })
		}
		// Keep what arrived, also when the transfer failed: a retry or a
		// new fetch resumes from it.
		if ferr := bt.commit(); ferr != nil {
			return ferr
		}
		current := holdersOf(res)
		f.auditCorrupt(res, err, current, actor, m)
		for i, s := range res.Sources {
			delivered[current[i].peer] += s.Bytes
			corrupt[current[i].peer] = corrupt[current[i].peer] || s.State == transfer.StateCorrupt
		}
		plan.Blocks = res.Missing
		j.update(func(s *FetchStatus) { s.Rate, s.ETA = 0, 0 })
		if err == nil {
			break
		}
		if opts.Later != nil {
			<-askDone // bounded by holdersAskTimeout
			opts.Later = nil
			holders = append(holders, secondaries...)
		}
		err = unwrapHolder(originError(err, res, current))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent(err) {
			return err
		}
		if res.Blocks > 0 {
			backoff = 250 * time.Millisecond
		}
		if f.clock.Now().Sub(lastProgress) > f.retryFor {
			return fmt.Errorf("%w for %s (%d blocks still missing; start the fetch again to resume): %w", errHolderUnreachable, f.retryFor, len(plan.Blocks), err)
		}
		f.log.Info("fetch waiting for the holder", "peer", m.Issuer, "attempt", j.status().Attempts, "err", err)
		j.update(func(s *FetchStatus) {
			s.State, s.Error = FetchWaiting, fetchSentence(err, m.IssuerName)
			s.NextAttempt, s.GiveUpAt = f.clock.Now().Add(backoff).UTC(), lastProgress.Add(f.retryFor).UTC()
		})
		pause := f.clock.Now()
		t := f.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
		j.update(func(s *FetchStatus) { s.Waited += f.clock.Now().Sub(pause) })
		backoff = min(backoff*2, 5*time.Second)
		// Forget libp2p's dial backoff: we are the ones pacing retries.
		if f.redial != nil {
			for _, h := range holders {
				f.redial(h.peer)
			}
		}
	}
	if err := bt.commit(); err != nil {
		return err
	}
	if st := j.status(); st.InstancesDone != st.Instances {
		return fmt.Errorf("%w: %d of %d instances complete", errIntegrity, st.InstancesDone, st.Instances)
	}
	j.update(func(s *FetchStatus) { s.Error = "" })
	return nil
}

// fetchStallTimeout is how long a holder may owe blocks and deliver none
// before the engine drops it (and the fetch retries it with backoff). A
// holder that sends nothing at all fails sooner, on exchange's 30 s idle
// timeout of a stream; the engine's default (20 s for a whole block)
// would drop a holder that is merely slow: one whose exchange.upload_rate
// is shared by several streams and fetches takes that long for a 1 MiB
// block below some 50 KB/s. Two minutes is a whole block below 9 KB/s.
const fetchStallTimeout = 2 * time.Minute

// A fetch commits what it received once fetchBatchBytes arrived or
// fetchBatchInterval passed, whichever comes first: few fsyncs on a fast
// link, steady progress (and little to refetch after a crash) on a slow one.
const (
	fetchBatchBytes    = 32 << 20
	fetchBatchInterval = time.Second
	// committed early when no commit is running
	fetchBatchMinBytes    = 4 << 20
	fetchBatchMinInterval = 25 * time.Millisecond
)

// fetchBatch stages received blocks in the blob log as they arrive and
// commits them, with the instances whose blocks are all in, together.
//
// Every block it is given was checked against its CID (plan.Verify),
// which the origin's signed manifest lists: the bytes are exactly the
// ciphertext the origin sealed, so an instance whose blocks are all in is
// indexed without decrypting it. Its plaintext is checked against the
// manifest's SHA-256 on every read (archive.read), which refuses, never
// serves, an instance that does not match. Decrypting each instance at
// fetch time as well was a third of a fetch's CPU and found nothing the
// first read does not (docs/threat-model.md).
//
// A commit (an fsync of up to fetchBatchBytes and a synced transaction:
// a third of a fetch's time when the sink waited for it) runs on a
// goroutine of its own while the next batch is staged; commits are one at
// a time and in order, and an instance counts as done only once its
// commit returned.
type fetchBatch struct {
	f        *fetcher
	j        *fetchJob
	staged   []store.Staged // received and written, to commit
	inBatch  map[cid.Cid]bool
	insts    []InstanceInfo // complete, to index in the next commit
	bytes    int
	since    time.Time // the last commit
	shown    bool      // an instance was committed: the first image is visible
	inflight bool      // a commit is running; its result comes on done
	done     chan error
	err      error // of a commit that ended, collected by idle: the next wait returns it
}

func newFetchBatch(f *fetcher, j *fetchJob) *fetchBatch {
	return &fetchBatch{f: f, j: j, inBatch: map[cid.Cid]bool{}, since: f.clock.Now(), done: make(chan error, 1)}
}

// add writes a received block to the blob log (unsynced: the batch's
// commit syncs it).
func (b *fetchBatch) add(c cid.Cid, data []byte) error {
	if b.inBatch[c] {
		return nil
	}
	if b.bytes == 0 {
		if err := b.f.space.bulk(); err != nil {
			return err // what arrived is dropped; a fetch started again once space is freed resumes from the last commit
		}
	}
	staged, err := b.f.store.Stage([]store.Block{{CID: c, Data: data}})
	if err != nil {
		return fmt.Errorf("store blocks: %w", err)
	}
	b.staged = append(b.staged, staged...)
	b.inBatch[c] = true
	b.bytes += len(data)
	return nil
}

// finished queues an instance whose blocks have all arrived (in this
// batch or stored earlier) for the next commit.
func (b *fetchBatch) finished(in InstanceInfo) {
	b.insts = append(b.insts, in)
}

// flush waits for the commit before it, then starts committing the staged
// blocks and the complete instances (an fsync of the blocks, then their
// places and the instances in one synced transaction) and returns: that
// commit's error comes from the next flush or wait.
func (b *fetchBatch) flush() error {
	if err := b.wait(); err != nil {
		return err
	}
	b.since = b.f.clock.Now()
	if len(b.staged) == 0 && len(b.insts) == 0 {
		return nil
	}
	staged, insts, now := b.staged, b.insts, b.f.clock.Now()
	if len(insts) > 0 {
		b.shown = true
	}
	clear(b.inBatch)
	b.staged, b.bytes, b.insts = nil, 0, nil
	b.inflight = true
	go func() {
		err := b.f.store.CommitFetched(staged, insts, now)
		if err == nil {
			b.j.update(func(s *FetchStatus) { s.InstancesDone += len(insts) })
		}
		if errors.Is(err, store.ErrIntegrity) {
			// Refused whole, nothing written: no record will ever
			// reference these blocks.
			b.f.store.Discard(staged, nil)
		}
		b.done <- err
	}()
	return nil
}

// wait waits for the commit under way, if any, and returns its error.
func (b *fetchBatch) wait() error {
	if !b.inflight {
		err := b.err
		b.err = nil
		return err
	}
	b.inflight = false
	return <-b.done
}

// idle reports whether no commit is running, collecting the result of one
// that ended (for the next wait).
func (b *fetchBatch) idle() bool {
	if !b.inflight {
		return true
	}
	select {
	case b.err = <-b.done:
		b.inflight = false
		return true
	default:
		return false
	}
}

// commit commits everything staged and waits for it.
func (b *fetchBatch) commit() error {
	if err := b.flush(); err != nil {
		return err
	}
	return b.wait()
}

// grantsForUser returns the grants a user (by ID, and name if known) may
// use: those naming no user, and those naming that user by ID or name.
func grantsForUser(gs []store.SharedGrant, id, name string) []store.SharedGrant {
	var out []store.SharedGrant
	for _, g := range gs {
		if u := g.Grant.Grant.GranteeUser; u == "" || u == id || (name != "" && u == name) {
			out = append(out, g)
		}
	}
	return out
}
