package consent

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// CheckPresented is a secondary holder's offline check of a grant that a
// requester presents: a grant another facility (the study's original
// holder, g.Grant.Issuer) signed, which this node did not issue and so
// cannot look up in its own ledger. The caller has verified the signature
// ([SignedGrant.Verify]) and knows the study's patient from its own copy;
// revoked says whether it holds the issuer's signed revocation of the
// grant. The checks and their order are [Ledger.Check]'s, so a requester
// learns the same reason from a secondary as from the original holder.
// Errors wrap the same sentinels (use [ReasonOf]).
func CheckPresented(g *SignedGrant, requester peer.ID, study, patientID, patientIssuer, action string, now time.Time, revoked bool) error {
	gr := &g.Grant
	var err error
	switch {
	case gr.Grantee != requester:
		err = ErrWrongGrantee
	case revoked:
		err = ErrRevoked
	case now.Before(gr.NotBefore):
		err = ErrNotYetValid
	case !now.Before(gr.Expires):
		err = ErrExpired
	case !gr.Covers(study, patientID, patientIssuer):
		err = ErrOutOfScope
	case !slices.Contains(gr.Actions, action):
		err = ErrActionNotGranted
	}
	if err != nil {
		return fmt.Errorf("check presented grant %s: %w", safeID(gr.ID), err)
	}
	return nil
}
