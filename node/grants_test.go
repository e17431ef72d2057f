package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
)

// A shorter second grant does not lock the grantee out while a longer one
// is live (issue 6, item 1): the grantee keeps every grant it was given
// for a study, uses any live one, and `shared` shows the state from all of
// them; revoking one grant leaves the others' access.
func TestEveryLiveGrantCounts(t *testing.T) {
	clk := &testClock{}
	a := newNode(t, "Alpha", nodeSetup{clock: clk})
	b := newNode(t, "Bravo", nodeSetup{clock: clk})
	link(t, a, b)
	study, _ := importCT(t, a, 41, 3)
	ctx := context.Background()

	long, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: study, Expires: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, SharedAvailable, 1, 20*time.Second)
	if _, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: study, Expires: 15 * time.Second}); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, SharedAvailable, 2, 20*time.Second)
	clk.Advance(20 * time.Second)

	s, _ := sharedStudy(t, b, a, study)
	if s.State != SharedAvailable || s.GrantID != long.Grant.ID || !s.Expires.Equal(long.Grant.Expires) {
		t.Fatalf("after the short grant expired: %s, grant %s until %s; want available under the 24h grant", s.State, s.GrantID, s.Expires)
	}
	if st := fetchWait(t, b, study, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch under the long grant: %+v", st)
	}

	// A third grant, then the first is revoked: the third keeps the access.
	third, err := a.Grant(ctx, GrantRequest{To: "Bravo", Study: study, Expires: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, SharedAvailable, 3, 20*time.Second)
	if _, err := a.Revoke(long.Grant.ID, "", "admin"); err != nil {
		t.Fatal(err)
	}
	s = waitShared(t, b, a, study, SharedAvailable, 4, 20*time.Second)
	if s.GrantID != third.Grant.ID {
		t.Fatalf("after revoking the first grant: grant %s, want the third", s.GrantID)
	}
	if _, err := b.StartFetch(ctx, FetchRequest{Study: study, Actor: "admin"}); err != nil {
		t.Fatalf("fetch after one of two live grants was revoked: %v", err)
	}
	// The last live one revoked: only the expired one is left, and the
	// study shows revoked (the holder ended the access).
	if _, err := a.Revoke(third.Grant.ID, "", "admin"); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, SharedRevoked, 5, 20*time.Second)
	if _, err := b.StartFetch(ctx, FetchRequest{Study: study, Actor: "admin"}); err == nil {
		t.Fatal("fetch allowed with no live grant left")
	}
}

// Images added to a granted study reach the partner (issue 6, item 2): a
// new manifest version lists them, the partner's `shared` shows the new
// count and not fetched, and a fetch gets the rest.
func TestGrantedStudyGrows(t *testing.T) {
	a, b := newNode(t, "Alpha"), newNode(t, "Bravo")
	link(t, a, b)
	study, files := ctStudy(t, 42, 8, "")
	importFiles(t, a, files[:3])
	grant(t, a, b, study)
	waitShared(t, b, a, study, SharedAvailable, 1, 20*time.Second)
	if st := fetchWait(t, b, study, 30*time.Second); st.State != FetchDone {
		t.Fatalf("first fetch: %+v", st)
	}
	importFiles(t, a, files[3:])
	s := waitShared(t, b, a, study, SharedAvailable, 2, 20*time.Second)
	if s.Instances != 8 || s.Fetched {
		t.Fatalf("after 5 more instances: %d instances, fetched %v; want 8, not fetched", s.Instances, s.Fetched)
	}
	if st := fetchWait(t, b, study, 30*time.Second); st.State != FetchDone || st.Instances != 8 {
		t.Fatalf("second fetch: %+v", st)
	}
	insts, _ := b.Instances(study)
	if len(insts) != 8 {
		t.Fatalf("Bravo holds %d instances, want 8", len(insts))
	}
	if s, _ := sharedStudy(t, b, a, study); !s.Fetched {
		t.Fatal("not listed as fetched after the second fetch")
	}
}

// A local import never merges into a study fetched from a partner, nor a
// fetch into a study of this facility's own (issue 6, item 4): each is
// refused with a message saying why, and nothing already held changes.
func TestOwnAndPartnersStudiesStayApart(t *testing.T) {
	a, b := newNode(t, "Alpha"), newNode(t, "Bravo")
	link(t, a, b)
	study, files := ctStudy(t, 43, 4, "")
	importFiles(t, a, files[:3])
	grant(t, a, b, study)
	waitShared(t, b, a, study, SharedAvailable, 1, 20*time.Second)
	if st := fetchWait(t, b, study, 30*time.Second); st.State != FetchDone {
		t.Fatalf("fetch: %+v", st)
	}
	r := b.Import(context.Background(), files[3].Data)
	if r.Outcome != OutcomeRejected || r.Code != "partner-copy" || !strings.Contains(r.Error, "copy fetched from Alpha") {
		t.Fatalf("import into a partner's copy: %+v", r)
	}
	if insts, _ := b.Instances(study); len(insts) != 3 {
		t.Fatalf("the partner's copy has %d instances, want its 3", len(insts))
	}

	// The other way: Bravo holds a study of its own, which Alpha (holding
	// the same UID) then shares.
	own, ownFiles := ctStudy(t, 44, 2, "")
	importFiles(t, b, ownFiles)
	importFiles(t, a, ownFiles)
	grant(t, a, b, own)
	waitShared(t, b, a, own, SharedAvailable, 1, 20*time.Second)
	_, err := b.StartFetch(context.Background(), FetchRequest{Study: own, Actor: "admin"})
	if err == nil || !strings.Contains(err.Error(), "this facility's own") || errorCode(err) != api.CodeConflict {
		t.Fatalf("fetch into a study of our own: %v", err)
	}
	st, _, _ := b.store.Study(own)
	if st.Origin != "" {
		t.Fatalf("our own study now says it came from %s", st.OriginName)
	}
}

// A fetch from a holder that is down says what it is doing (issue 6, item
// 3): waiting, the attempt, the next try and when it gives up, in a
// sentence; then it fails after exchange.fetch_retry_for, saying so.
func TestFetchFromADownHolderSaysWhatItDoes(t *testing.T) {
	a, b := newNode(t, "Alpha"), newNode(t, "Bravo")
	link(t, a, b)
	study, _ := importCT(t, a, 45, 2)
	grant(t, a, b, study)
	waitShared(t, b, a, study, SharedAvailable, 1, 20*time.Second)
	a.stop()
	st, err := b.StartFetch(context.Background(), FetchRequest{Study: study, Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	var waiting FetchStatus
	waitFor(t, 10*time.Second, "the fetch to wait for the holder", func() bool {
		waiting, _ = b.FetchStatus(st.ID)
		return waiting.State == FetchWaiting || waiting.State == FetchFailed
	})
	if waiting.State != FetchWaiting || waiting.Attempts < 1 || waiting.NextAttempt.IsZero() || waiting.GiveUpAt.IsZero() ||
		!strings.Contains(waiting.Error, "Alpha") || strings.Contains(waiting.Error, "peer refused") {
		t.Fatalf("while waiting: %+v", waiting)
	}
	done := waitFetch(t, b, st.ID, 30*time.Second)
	if done.State != FetchFailed || !strings.Contains(done.Error, "Alpha could not be reached for 2s") {
		t.Fatalf("after fetch_retry_for: %q", done.Error)
	}
}

// Removing a partner tells it first (issue 6, item 3): its live grants are
// revoked and the revocations delivered before it is cut off, so its
// `shared` says revoked; a partner that is down is waited for at most
// exchange.farewell_timeout. The remover forgets what the removed partner
// shared with it.
func TestRemovePartnerTellsItFirst(t *testing.T) {
	a := newNode(t, "Alpha", nodeSetup{cfg: func(c *Config) { c.Exchange.FarewellTimeout = Duration{time.Second} }})
	b, c := newNode(t, "Bravo"), newNode(t, "Charlie")
	link(t, a, b)
	link(t, a, c)
	study, _ := importCT(t, a, 46, 2)
	grant(t, a, b, study)
	grant(t, a, c, study)
	waitShared(t, b, a, study, SharedAvailable, 1, 20*time.Second)
	waitShared(t, c, a, study, SharedAvailable, 1, 20*time.Second)

	res, err := a.sharing.RemovePartner(context.Background(), "Bravo", "admin")
	if err != nil || res.RevokedGrants != 1 || res.Delivered < 1 || res.Undelivered != 0 {
		t.Fatalf("remove Bravo: %+v, %v", res, err)
	}
	if s, _ := sharedStudy(t, b, a, study); s.State != SharedRevoked {
		t.Fatalf("Bravo's shared says %s right after the removal, want revoked", s.State)
	}

	// Charlie is down: the removal waits at most the farewell timeout.
	c.stop()
	start := time.Now()
	res, err = a.sharing.RemovePartner(context.Background(), "Charlie", "admin")
	if err != nil || res.RevokedGrants != 1 || res.Undelivered < 1 {
		t.Fatalf("remove Charlie (down): %+v, %v", res, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("removing a partner that is down took %s", d)
	}
	e := requireAudit(t, a, consent.Entry{Action: consent.ActPeerRemoved, PeerName: "Charlie"})
	if !strings.Contains(e.Reason, "undelivered=1") {
		t.Errorf("removal audit reason %q", e.Reason)
	}

	// Bravo removes Alpha in turn: what Alpha shared is forgotten.
	if _, err := b.RemovePeer("Alpha", "admin"); err != nil {
		t.Fatal(err)
	}
	if ss, _ := b.Shared(); len(ss) != 0 {
		t.Fatalf("Bravo still lists %d studies of the partner it removed", len(ss))
	}
}
