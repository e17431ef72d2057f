package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// blockAuthorizer implements exchange.Authorizer. It runs for every block
// a partner asks for: the block must belong to a study that a live grant,
// issued by us to that very peer and cited by the request, covers.
type blockAuthorizer struct {
	store  *store.Store
	ledger *consent.Ledger
	audit  *auditor
}

func (a *blockAuthorizer) AuthorizeBlock(_ context.Context, p peer.ID, grantID string, c cid.Cid) error {
	study, err := a.store.BlockStudy(c)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// Only a peer holding a grant of ours learns that a block is
			// absent; others are simply refused.
			if st, ok := a.ledger.Get(grantID); ok && st.Grant.Grantee == p {
				return exchange.ErrBlockNotFound
			}
			a.audit.Deny(consent.Entry{Peer: p, Action: consent.ActFetchDenied, Reason: string(consent.ReasonNoGrant)})
			return fmt.Errorf("%w: no grant", exchange.ErrDenied)
		}
		return err
	}
	if err := a.ledger.Check(p, grantID, study, consent.ActionFetch); err != nil {
		reason := string(consent.ReasonOf(err))
		a.audit.Deny(consent.Entry{Peer: p, Action: consent.ActFetchDenied, Study: study, GrantID: grantID, Reason: reason})
		return fmt.Errorf("%w: %s", exchange.ErrDenied, reason)
	}
	// Fail closed: a block whose disclosure cannot be recorded is not
	// sent; the grantee is told to retry later.
	if err := a.audit.Once(consent.Entry{Peer: p, Action: consent.ActFetchAllowed, Study: study, GrantID: grantID, Decision: consent.DecisionAllow}, 10*time.Minute); err != nil {
		return fmt.Errorf("%w: %w", exchange.ErrUnavailable, err)
	}
	return nil
}

// blockSource implements exchange.BlockStore over the archive.
type blockSource struct{ store *store.Store }

func (b blockSource) GetBlock(ctx context.Context, c cid.Cid) ([]byte, error) {
	data, err := b.store.GetBlock(ctx, c)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get block %s: %w", c, exchange.ErrBlockNotFound)
	}
	return data, err
}

// AppendBlock implements exchange.BlockAppender: the server reads blocks
// into buffers it reuses.
func (b blockSource) AppendBlock(ctx context.Context, dst []byte, c cid.Cid) ([]byte, error) {
	data, err := b.store.AppendBlocks(dst, []cid.Cid{c})
	if errors.Is(err, store.ErrNotFound) {
		return dst, fmt.Errorf("get block %s: %w", c, exchange.ErrBlockNotFound)
	}
	return data, err
}

var (
	_ exchange.Authorizer      = (*blockAuthorizer)(nil)
	_ exchange.BlockStore      = blockSource{}
	_ exchange.BlockAppender   = blockSource{}
	_ exchange.ManifestHandler = (*inbox)(nil)
	_ exchange.ManifestSource  = (*sharing)(nil)
	_ exchange.Partners        = (*partners)(nil)
)
