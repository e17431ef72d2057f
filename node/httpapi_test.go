package node

import (
	"slices"
	"testing"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/internal/wire"
)

// The server serves exactly the routes of the api package: every route
// has its handler, and no handler serves a route the contract lacks.
func TestEveryAPIRouteHasOneHandler(t *testing.T) {
	hs := (&apiServer{}).routes()
	seen := map[string]bool{}
	for _, rt := range api.Routes {
		if seen[rt.Name] {
			t.Errorf("route name %s twice in api.Routes", rt.Name)
		}
		seen[rt.Name] = true
		if hs[rt.Name] == nil {
			t.Errorf("no handler for %s (%s)", rt.Name, rt.Pattern())
		}
	}
	for name := range hs {
		if !seen[name] {
			t.Errorf("handler %s serves no route of api.Routes", name)
		}
	}
}

// The api package repeats the consent ledger's audit actions, decisions
// and grant states (it imports nothing of ours); they must stay the same.
func TestAPIConstantsMatchConsent(t *testing.T) {
	for _, c := range [][2]string{
		{api.ActGrant, consent.ActGrant}, {api.ActRevoke, consent.ActRevoke},
		{api.ActManifestSent, consent.ActManifestSent}, {api.ActManifestReceived, consent.ActManifestReceived},
		{api.ActManifestRejected, consent.ActManifestRejected}, {api.ActFetchAllowed, consent.ActFetchAllowed},
		{api.ActFetchDenied, consent.ActFetchDenied}, {api.ActFetchCompleted, consent.ActFetchCompleted},
		{api.ActFetchFailed, consent.ActFetchFailed}, {api.ActImport, consent.ActImport},
		{api.ActExport, consent.ActExport}, {api.ActPeerAdded, consent.ActPeerAdded},
		{api.ActPeerRemoved, consent.ActPeerRemoved}, {api.ActAccessRequested, consent.ActAccessRequested},
		{api.ActQuery, consent.ActQuery}, {api.ActInstanceRead, consent.ActInstanceRead},
		{api.DecisionAllow, consent.DecisionAllow}, {api.DecisionDeny, consent.DecisionDeny},
		{api.ActorSystem, consent.ActorSystem}, {api.ActionFetch, consent.ActionFetch},
		{api.GrantActive, string(consent.StateActive)}, {api.GrantExpired, string(consent.StateExpired)},
		{api.GrantRevoked, string(consent.StateRevoked)}, {api.GrantPending, string(consent.StatePending)},
		{api.PurposeTreatment, string(consent.PurposeTreatment)}, {api.PurposeSecondOpinion, string(consent.PurposeSecondOpinion)},
		{api.PurposeResearch, string(consent.PurposeResearch)},
		{api.ManifestStudy, wire.KindStudy}, {api.ManifestRevocation, wire.KindRevocation},
		{api.ActAuditCheckpoint, consent.ActAuditCheckpoint}, {api.ActRequestApproved, consent.ActRequestApproved},
		{api.ActRequestDenied, consent.ActRequestDenied}, {api.ActEmergencyAccess, consent.ActEmergencyAccess},
		{api.ActEmergencyReviewed, consent.ActEmergencyReviewed},
		{api.RequestPending, string(consent.RequestPending)}, {api.RequestApproved, string(consent.RequestApproved)},
		{api.RequestDenied, string(consent.RequestDenied)},
	} {
		if c[0] != c[1] {
			t.Errorf("api has %q where consent has %q", c[0], c[1])
		}
	}
	for _, l := range [][2][]string{{api.RequestReasons, consent.RequestReasons}, {api.DenyReasons, consent.DenyReasons},
		{api.ReviewOutcomes, consent.ReviewOutcomes}} {
		if !slices.Equal(l[0], l[1]) {
			t.Errorf("api has %q where consent has %q", l[0], l[1])
		}
	}
	if !slices.Equal(api.RevokeReasons, consent.RevokeReasonCodes()) {
		t.Errorf("api.RevokeReasons %q, consent has %q", api.RevokeReasons, consent.RevokeReasonCodes())
	}
}
