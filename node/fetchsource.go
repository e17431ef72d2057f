package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
	"github.com/pacsnet/pacsnet/transfer"
)

// holderSource is one holder of a study as the transfer engine sees it:
// each request of the engine is one exchange.FetchBlocks stream to the
// peer, citing the grant. A secondary holder (one that fetched the study
// from its original holder) gets the original holder's signed grant
// presented first on each stream (exchange.FetchBlocksPresenting).
type holderSource struct {
	ex     blockFetcher
	peer   peer.ID
	name   string // the partner's name: the source's ID in progress and errors
	grant  string
	sec    presentingFetcher // a secondary holder: how to reach it
	signed []byte            // a secondary holder: the signed grant (JSON) presented to it
}

// presentingFetcher is what fetching from a secondary holder needs of the
// exchange service.
type presentingFetcher interface {
	FetchBlocksPresenting(ctx context.Context, p peer.ID, signed []byte, grant string, cids []cid.Cid, got func(cid.Cid, []byte) error) error
}

func (h holderSource) ID() string { return h.name }

// Fetch fetches the blocks over one stream. exchange hands them over in
// the order asked, each checked against its CID; bytes that do not match
// (exchange.ErrBadBlock) make the error a transfer.ErrCorrupt, so that
// the engine drops the holder as corrupt rather than as merely failed.
func (h holderSource) Fetch(ctx context.Context, blocks []transfer.Block, got func(transfer.Block, []byte) error) error {
	cids := make([]cid.Cid, len(blocks))
	for i, b := range blocks {
		cids[i] = b.CID
	}
	next := 0
	each := func(c cid.Cid, data []byte) error {
		b := transfer.Block{CID: c}
		if next < len(blocks) && blocks[next].CID.Equals(c) {
			b = blocks[next]
		}
		next++
		return got(b, data)
	}
	var err error
	if h.signed != nil {
		err = h.sec.FetchBlocksPresenting(ctx, h.peer, h.signed, h.grant, cids, each)
	} else {
		err = h.ex.FetchBlocks(ctx, h.peer, h.grant, cids, each)
	}
	if errors.Is(err, exchange.ErrBadBlock) {
		return fmt.Errorf("%w: %w", transfer.ErrCorrupt, err)
	}
	return err
}

// verifyFetched is the plan's Verify. The CID check is not repeated here:
// exchange.FetchBlocks recomputes every block's multihash as it reads it
// off the stream (on the stream's own goroutine, so the engine's several
// streams hash in parallel) and hands over nothing that does not match,
// and the engine compares each block's length with the manifest's size
// before it calls Verify. A second SHA-256 of every byte would cost some
// 10% of a fetch for nothing. The check stays in exchange because that
// is the layer that reads untrusted bytes, for every caller.
func verifyFetched(transfer.Block, []byte) error { return nil }

// engineClock is the node's clock as the transfer engine's: the two
// interfaces have the same methods, but NewTimer's result types differ.
type engineClock struct{ clock.Clock }

func (c engineClock) NewTimer(d time.Duration) transfer.Timer { return c.Clock.NewTimer(d) }

// unwrapHolder gives the holder's own error when every source failed and
// there was one: the engine's *transfer.SourcesError around it adds
// nothing a single-holder fetch's sentence, log or audit needs.
func unwrapHolder(err error) error {
	var se *transfer.SourcesError
	if errors.As(err, &se) && len(se.Sources) == 1 && se.Sources[0].Err != nil {
		return se.Sources[0].Err
	}
	return err
}

// auditCorrupt records the holders the engine dropped for sending wrong
// bytes, as fetch-failed entries with reason corrupt-block: once a
// fetch has several holders, the fetch goes on without such a one, and
// the drop would otherwise leave no trace. When the transfer failed as a
// whole with a single holder, the job's own fetch-failed entry carries
// the same reason, so it is not written twice.
func (f *fetcher) auditCorrupt(res transfer.Result, err error, holders []holderSource, actor string, m Manifest) {
	if err != nil && len(holders) == 1 {
		return
	}
	for i, s := range res.Sources {
		if s.State != transfer.StateCorrupt || i >= len(holders) {
			continue
		}
		f.log.Warn("fetch dropped a holder that sent a corrupt block", "peer", holders[i].peer, "err", s.Err)
		f.audit.Record(consent.Entry{Actor: actor, Peer: holders[i].peer, Action: consent.ActFetchFailed, Study: m.Study.UID,
			GrantID: m.Grant.Grant.ID, Decision: consent.DecisionDeny, Reason: fetchFailCorrupt})
	}
}

// FetchSource is one holder's part in a fetch.
type FetchSource struct {
	Peer  peer.ID
	Name  string
	Bytes int64  // verified bytes it delivered in this fetch
	State string // api.FetchSource* constants
}

// sourceState names a transfer.State for the API.
func sourceState(s transfer.State) string {
	switch s {
	case transfer.StateActive:
		return api.FetchSourceActive
	case transfer.StateStalled:
		return api.FetchSourceStalled
	case transfer.StateCorrupt:
		return api.FetchSourceCorrupt
	}
	return api.FetchSourceFailed
}

// holdersAskTimeout bounds the question to the original holder at the
// start of a fetch: when it does not answer in time, the list it gave
// last is used.
const holdersAskTimeout = 3 * time.Second

// secondarySources returns the study's secondary holders as sources: the
// facilities the original holder lists (asked at the start of every
// fetch; its last answer, kept here, when it cannot be asked) that are
// partners of ours, presented with our grant.
func (f *fetcher) secondarySources(ctx context.Context, m Manifest) []holderSource {
	sec, ok := f.ex.(presentingFetcher)
	if !ok || f.asks == nil {
		return nil
	}
	var ans wire.HoldersAnswer
	actx, cancel := context.WithTimeout(ctx, holdersAskTimeout)
	_, err := f.asks.ask(actx, m.Issuer, wire.KindHolders, wire.HoldersQuery{Study: m.Study.UID}, &ans)
	cancel()
	if err == nil {
		err = ans.Validate()
	}
	if err == nil {
		if err := f.store.PutHolderList(m.Issuer, m.Study.UID, store.HolderList{Holders: ans.Holders, Received: f.clock.Now().UTC()}); err != nil {
			f.log.Warn("keep a study's holders", "err", err)
		}
	} else {
		f.log.Info("the holder did not list the study's other holders; using its last list", "peer", m.Issuer, "err", err)
		l, _, lerr := f.store.HolderList(m.Issuer, m.Study.UID)
		if lerr != nil {
			f.log.Warn("read a study's holders", "err", lerr)
		}
		ans.Holders = l.Holders
	}
	if len(ans.Holders) == 0 {
		return nil
	}
	signed, err := json.Marshal(m.Grant)
	if err != nil || len(signed) > exchange.MaxPresentedGrantSize {
		return nil
	}
	var out []holderSource
	for _, p := range ans.Holders {
		pr, ok := f.partners.Get(p)
		if !ok || p == m.Issuer || p == f.id.PeerID() {
			continue // a secondary must be our partner too: the gaters admit only partners
		}
		name := pr.Name
		if name == "" {
			name = p.String()
		}
		out = append(out, holderSource{peer: p, name: name, grant: m.Grant.Grant.ID, sec: sec, signed: signed})
	}
	return out
}

// holdersOf gives the holder behind each of a transfer's sources, in the
// order of res.Sources (the holders that joined late included).
func holdersOf(res transfer.Result) []holderSource {
	out := make([]holderSource, len(res.Sources))
	for i, s := range res.Sources {
		out[i], _ = s.Source.(holderSource)
	}
	return out
}

// originError picks, when every holder failed, the original holder's
// error: it decides whether retrying can help (a secondary's refusal or
// missing block says nothing about the grant).
func originError(err error, res transfer.Result, holders []holderSource) error {
	if len(holders) < 2 {
		return err
	}
	for i, h := range holders {
		if h.signed == nil && i < len(res.Sources) && res.Sources[i].Err != nil {
			return res.Sources[i].Err
		}
	}
	return err
}

// facilityGrant returns the live, unrevoked grant naming no user that
// lasts longest, or nil: what a secondary holder announces itself under.
func facilityGrant(gs []store.SharedGrant, now time.Time) *consent.SignedGrant {
	var facility []store.SharedGrant
	for _, g := range gs {
		if g.Grant.Grant.GranteeUser == "" {
			facility = append(facility, g)
		}
	}
	if g, live := bestGrant(facility, now); live {
		return g
	}
	return nil
}

// secondariesReason names, for the audit entry of a fetch, the secondary
// holders that delivered bytes ("secondaries=<peer IDs>"), or is empty:
// the archive's provenance, since their bytes are stored here too.
func secondariesReason(ss []FetchSource, origin peer.ID) string {
	r := ""
	for _, s := range ss {
		if s.Peer != origin && s.Bytes > 0 {
			if r == "" {
				r = "secondaries="
			} else {
				r += ","
			}
			r += s.Peer.String()
		}
	}
	return r
}
