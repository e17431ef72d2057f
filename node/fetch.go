package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/exchange"
)

// Fetch states.
const (
	FetchRunning = "running"
	FetchWaiting = "waiting" // the holder is unreachable; retrying
	FetchDone    = "done"
	FetchFailed  = "failed"
)

// FetchStatus is the progress of one fetch, as the API reports it.
type FetchStatus struct {
	ID            string    `json:"id"`
	Study         string    `json:"study"`
	Issuer        peer.ID   `json:"issuer"`
	IssuerName    string    `json:"issuer_name"`
	State         string    `json:"state"`
	Instances     int       `json:"instances"`
	InstancesDone int       `json:"instances_done"`
	Bytes         int64     `json:"bytes"`      // ciphertext bytes of all the study's blocks
	BytesDone     int64     `json:"bytes_done"` // of which are stored here (received now or before)
	BytesResumed  int64     `json:"bytes_resumed"`
	Attempts      int       `json:"attempts"`
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished,omitzero"`
	Error         string    `json:"error,omitempty"`
}

// FetchRequest names the study to fetch and, optionally, the partner.
type FetchRequest struct {
	Study string `json:"study"`
	From  string `json:"from,omitempty"`
	Actor string `json:"-"`
}

// fetcher runs fetch jobs; it owns their goroutines.
type fetcher struct {
	mu   sync.Mutex
	jobs map[string]*fetchJob
	wg   sync.WaitGroup
}

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

// ErrNotShared is returned when no partner shared the study with us.
var ErrNotShared = errors.New("no partner facility has shared that study with this facility")

// StartFetch starts fetching a study a partner shared with us and returns
// at once; FetchStatus reports progress. Blocks already held are not
// fetched again, so a fetch that failed can simply be started again.
func (n *Node) StartFetch(ctx context.Context, req FetchRequest) (FetchStatus, error) {
	rec, err := n.sharedFor(ctx, req)
	if err != nil {
		return FetchStatus{}, err
	}
	m := rec.Manifest
	// A fetch of the same study that is still running is followed, not
	// started twice: `pacsnet fetch` after a Ctrl-C picks it up again.
	n.fetches.mu.Lock()
	for _, j := range n.fetches.jobs {
		if st := j.status(); st.Study == m.Study.UID && st.Issuer == m.Issuer && (st.State == FetchRunning || st.State == FetchWaiting) {
			n.fetches.mu.Unlock()
			return st, nil
		}
	}
	n.fetches.mu.Unlock()
	if len(rec.Key) > 0 {
		k, err := crypto.Decrypt(rec.Key, n.keys.id.Box)
		if err != nil {
			return FetchStatus{}, fmt.Errorf("unwrap study key: %w", err)
		}
		m.StudyKey = string(k)
	}
	switch {
	case rec.State == "revoked":
		return FetchStatus{}, fmt.Errorf("%w: the grant for that study was revoked by %s", exchange.ErrDenied, m.IssuerName)
	case !n.now().Before(m.Grant.Grant.Expires):
		return FetchStatus{}, fmt.Errorf("%w: the grant for that study expired at %s", exchange.ErrDenied, m.Grant.Grant.Expires.UTC().Format(time.RFC3339))
	}
	id := make([]byte, 8)
	rand.Read(id)
	j := &fetchJob{st: FetchStatus{
		ID: hex.EncodeToString(id), Study: m.Study.UID, Issuer: m.Issuer, IssuerName: m.IssuerName,
		State: FetchRunning, Instances: len(m.Instances), Started: n.now().UTC(),
	}}
	for _, in := range m.Instances {
		for _, b := range in.Blocks {
			j.st.Bytes += int64(b.Size)
		}
	}
	n.fetches.mu.Lock()
	n.fetches.jobs[j.st.ID] = j
	n.fetches.mu.Unlock()
	n.fetches.wg.Add(1)
	go func() {
		defer n.fetches.wg.Done()
		err := n.runFetch(n.ctx, j, m, req.Actor)
		j.update(func(s *FetchStatus) {
			s.Finished = n.now().UTC()
			if err != nil {
				s.State, s.Error = FetchFailed, err.Error()
			} else {
				s.State = FetchDone
			}
		})
		e := consent.Entry{Actor: req.Actor, Peer: m.Issuer, Action: consent.ActFetchCompleted, Study: m.Study.UID, GrantID: m.Grant.Grant.ID, Decision: "allow"}
		if err != nil {
			e.Action, e.Decision, e.Reason = consent.ActFetchFailed, "deny", reasonOf(err)
		}
		n.audit(e)
	}()
	return j.status(), nil
}

// FetchStatus reports a fetch job.
func (n *Node) FetchStatus(id string) (FetchStatus, bool) {
	n.fetches.mu.Lock()
	j, ok := n.fetches.jobs[id]
	n.fetches.mu.Unlock()
	if !ok {
		return FetchStatus{}, false
	}
	return j.status(), true
}

// sharedFor finds the manifest for the requested study. When no partner
// shared it yet and one is named, we ask that partner for it (pull): the
// partner answers only if it granted us access, and audits the request.
func (n *Node) sharedFor(ctx context.Context, req FetchRequest) (sharedRecord, error) {
	var from peer.ID
	if req.From != "" {
		p, err := n.resolvePeer(req.From)
		if err != nil {
			return sharedRecord{}, badRequest("%v", err)
		}
		from = p.ID
	}
	var found []sharedRecord
	err := scanJSON(n.arch, pfxShared, func(_ []byte, r *sharedRecord) error {
		if r.Manifest.Study.UID == req.Study && (from == "" || r.Manifest.Issuer == from) {
			found = append(found, *r)
		}
		return nil
	})
	if err != nil {
		return sharedRecord{}, err
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return sharedRecord{}, badRequest("several partners shared that study: name one with --from")
	case from == "":
		return sharedRecord{}, ErrNotShared
	}
	// Pull: ask the named partner for the manifest.
	sealed, err := n.ex.PullManifest(ctx, from, req.Study)
	if err != nil {
		return sharedRecord{}, fmt.Errorf("ask %s for the study: %w", req.From, err)
	}
	if err := n.receiveManifest(from, sealed); err != nil {
		return sharedRecord{}, fmt.Errorf("manifest from %s: %w", req.From, err)
	}
	var r sharedRecord
	if ok, err := n.sharedRecord(from, req.Study, &r); err != nil || !ok {
		return sharedRecord{}, fmt.Errorf("manifest from %s: not stored: %v", req.From, err)
	}
	return r, nil
}

func (n *Node) sharedRecord(issuer peer.ID, study string, r *sharedRecord) (bool, error) {
	var ok bool
	err := n.arch.db.View(func(txn *badger.Txn) error {
		var err error
		ok, err = getJSON(txn, sharedKey(issuer, study), r)
		return err
	})
	return ok, err
}

// permanent reports errors a retry cannot fix.
func permanent(err error) bool {
	return errors.Is(err, exchange.ErrDenied) || errors.Is(err, exchange.ErrNotFound) ||
		errors.Is(err, exchange.ErrBadBlock) || errors.Is(err, exchange.ErrBadRequest) ||
		errors.Is(err, errIntegrity)
}

var errIntegrity = errors.New("integrity")

func (n *Node) runFetch(ctx context.Context, j *fetchJob, m Manifest, actor string) error {
	sk, err := n.studyKey(m.Study, m.Issuer, m.StudyKey, true)
	if err != nil {
		return err
	}
	if sk.String() != m.StudyKey {
		return fmt.Errorf("%w: a different key is already held for that study", errIntegrity)
	}
	// Until every instance is here, the study is listed as partial and
	// export refuses it unless asked for a partial export.
	n.commitMu.Lock()
	err = n.arch.update(func(txn *badger.Txn) error {
		var sr studyRecord
		if _, err := getJSON(txn, pfxStudy+m.Study.UID, &sr); err != nil {
			return err
		}
		if sr.Expected == len(m.Instances) {
			return nil
		}
		sr.Expected = len(m.Instances)
		return setJSON(txn, pfxStudy+m.Study.UID, sr)
	})
	n.commitMu.Unlock()
	if err != nil {
		return fmt.Errorf("record expected instances: %w", err)
	}
	// Which instances are still missing, and which of their blocks.
	type pending struct {
		info    InstanceInfo
		missing int
	}
	byCID := map[cid.Cid][]*pending{}
	var want []cid.Cid
	var todo []*pending
	for _, in := range m.Instances {
		if prev, ok, err := n.instanceBySOP(in.SOPInstanceUID); err != nil {
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
			has, err := n.arch.hasBlock(c)
			if err != nil {
				return err
			}
			if has {
				j.update(func(s *FetchStatus) { s.BytesDone += int64(b.Size); s.BytesResumed += int64(b.Size) })
				continue
			}
			p.missing++
			if len(byCID[c]) == 0 {
				want = append(want, c)
			}
			byCID[c] = append(byCID[c], p)
		}
	}
	// Received blocks and verified instances are committed in batches: one
	// synced transaction per fetchBatchBytes (group commit) instead of one
	// per block. Nothing is reported done before its batch is committed.
	bt := &fetchBatch{n: n, j: j, pending: map[cid.Cid][]byte{}, since: time.Now()}
	for _, p := range todo {
		if p.missing == 0 {
			if err := bt.finished(ctx, p.info); err != nil {
				return err
			}
		}
	}
	retryFor := n.cfg.Exchange.FetchRetryFor.Duration
	lastProgress := n.now()
	backoff := 250 * time.Millisecond
	for len(want) > 0 {
		j.update(func(s *FetchStatus) { s.Attempts++; s.State = FetchRunning })
		done := 0
		err := n.ex.FetchBlocks(ctx, m.Issuer, m.Grant.Grant.ID, want, func(c cid.Cid, data []byte) error {
			bt.add(c, data)
			done++
			lastProgress = n.now()
			j.update(func(s *FetchStatus) { s.BytesDone += int64(len(data)) })
			for _, p := range byCID[c] {
				if p.missing--; p.missing == 0 {
					if err := bt.finished(ctx, p.info); err != nil {
						return err
					}
				}
			}
			if bt.bytes >= fetchBatchBytes || time.Since(bt.since) >= fetchBatchInterval {
				return bt.flush()
			}
			return nil
		})
		// Keep what arrived, also when the stream broke: a retry or a new
		// fetch resumes from it.
		if ferr := bt.flush(); ferr != nil {
			return ferr
		}
		want = want[done:]
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent(err) {
			return err
		}
		if done > 0 {
			backoff = 250 * time.Millisecond
		}
		if n.now().Sub(lastProgress) > retryFor {
			return fmt.Errorf("holder unreachable for %s (%d blocks still missing; start the fetch again to resume): %w", retryFor, len(want), err)
		}
		j.update(func(s *FetchStatus) { s.State = FetchWaiting; s.Error = err.Error() })
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		// Forget libp2p's dial backoff: we are the ones pacing retries.
		if sw, ok := n.host.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(m.Issuer)
		}
	}
	if err := bt.flush(); err != nil {
		return err
	}
	if st := j.status(); st.InstancesDone != st.Instances {
		return fmt.Errorf("%w: %d of %d instances verified", errIntegrity, st.InstancesDone, st.Instances)
	}
	j.update(func(s *FetchStatus) { s.Error = "" })
	return nil
}

// A fetch commits what it received once fetchBatchBytes arrived or
// fetchBatchInterval passed, whichever comes first: few fsyncs on a fast
// link, steady progress (and little to refetch after a crash) on a slow one.
const (
	fetchBatchBytes    = 32 << 20
	fetchBatchInterval = time.Second
)

// fetchBatch collects received blocks and verified instances until they
// are committed together.
type fetchBatch struct {
	n       *Node
	j       *fetchJob
	pending map[cid.Cid][]byte // received, not yet committed
	order   []cid.Cid
	bytes   int
	insts   []InstanceInfo // verified, to index in the next commit
	since   time.Time      // the last commit
}

func (b *fetchBatch) add(c cid.Cid, data []byte) {
	if _, dup := b.pending[c]; !dup {
		b.pending[c] = data
		b.order = append(b.order, c)
		b.bytes += len(data)
	}
}

// finished decrypts an instance whose blocks have all arrived (in this
// batch or stored earlier), verifies it against the manifest's SHA-256 and
// size, and queues it for indexing.
func (b *fetchBatch) finished(ctx context.Context, in InstanceInfo) error {
	sk, err := b.n.studyKey(StudyInfo{UID: in.Study}, "", "", false)
	if err != nil {
		return err
	}
	var ct []byte
	for _, br := range in.Blocks {
		c, _ := cid.Decode(br.CID)
		data, ok := b.pending[c]
		if !ok {
			if data, err = b.n.arch.GetBlock(ctx, c); err != nil {
				return err
			}
		}
		ct = append(ct, data...)
	}
	plain, err := crypto.Decrypt(ct, sk)
	if err != nil {
		return fmt.Errorf("%w: an instance does not decrypt with the study key", errIntegrity)
	}
	if sum := sha256.Sum256(plain); hex.EncodeToString(sum[:]) != in.Digest || int64(len(plain)) != in.Size {
		return fmt.Errorf("%w: an instance does not match its SHA-256 in the manifest", errIntegrity)
	}
	b.insts = append(b.insts, in)
	return nil
}

// flush commits the batch in one synced transaction.
func (b *fetchBatch) flush() error {
	b.since = time.Now()
	if len(b.order) == 0 && len(b.insts) == 0 {
		return nil
	}
	blocks := make([]block, 0, len(b.order))
	for _, c := range b.order {
		blocks = append(blocks, block{c: c, data: b.pending[c]})
	}
	b.n.commitMu.Lock()
	defer b.n.commitMu.Unlock()
	err := b.n.arch.update(func(txn *badger.Txn) error {
		if err := putBlocksTxn(txn, blocks); err != nil {
			return err
		}
		for _, in := range b.insts {
			outcome, conflict, err := b.n.addInstanceTxn(txn, in)
			if err != nil {
				return err
			}
			if outcome != OutcomeStored && (outcome != OutcomeDuplicate || conflict != nil) {
				return fmt.Errorf("%w: %v", errIntegrity, conflict)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit fetched blocks: %w", err)
	}
	n := len(b.insts)
	b.j.update(func(s *FetchStatus) { s.InstancesDone += n })
	clear(b.pending)
	b.order, b.bytes, b.insts = b.order[:0], 0, b.insts[:0]
	return nil
}
