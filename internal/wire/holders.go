package wire

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/internal/uid"
)

// HoldersQuery asks a study's original holder which other facilities hold
// the study and serve it as secondary holders (KindHolders). The holder
// answers only a partner that holds a live grant for the study.
type HoldersQuery struct {
	Study string `json:"study"`
}

// HoldersAnswer lists the secondary holders of a study: facilities that
// fetched it under a live grant of the original holder's (naming no user)
// and announced that they serve it. The asker may fetch blocks from them
// by presenting its own grant.
type HoldersAnswer struct {
	Holders []peer.ID `json:"holders"`
}

// MaxHolders bounds a HoldersAnswer: more sources than this add nothing
// to a transfer.
const MaxHolders = 32

// Validate checks a query; errors wrap ErrBadAsk.
func (q *HoldersQuery) Validate() error {
	if !uid.Valid(q.Study) {
		return badAsk("holders query: study UID malformed")
	}
	return nil
}

// Validate checks an answer: at most MaxHolders distinct, valid peer IDs;
// errors wrap ErrBadAsk.
func (a *HoldersAnswer) Validate() error {
	if len(a.Holders) > MaxHolders {
		return badAsk("holders answer: %d holders, at most %d", len(a.Holders), MaxHolders)
	}
	for i, p := range a.Holders {
		if _, err := peer.IDFromBytes([]byte(p)); err != nil || slices.Contains(a.Holders[:i], p) {
			return badAsk("holders answer: holder %d malformed or repeated", i)
		}
	}
	return nil
}
