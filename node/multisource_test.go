package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// trio is issue 9's multi-source setting: a holder H grants one study to
// G and to R, three facilities that are each other's partners.
type trio struct {
	h, g, r *tnode
	study   string
	gg, rg  *consent.SignedGrant
}

// secondaryOn turns exchange.serve_as_secondary on.
func secondaryOn(c *Config) { c.Exchange.ServeAsSecondary = true }

func newTrio(t *testing.T, slices int, h, g, r nodeSetup) *trio {
	t.Helper()
	tr := &trio{h: newNode(t, "Holder", h), g: newNode(t, "Second", g), r: newNode(t, "Requester", r)}
	link(t, tr.h, tr.g)
	link(t, tr.h, tr.r)
	link(t, tr.g, tr.r)
	study, files := ctStudyOf(t, synth.CTOptions{Slices: slices, Seed: 91, Rows: 128, Cols: 128})
	importFiles(t, tr.h, files)
	tr.study = study
	tr.gg = grant(t, tr.h, tr.g, study)
	tr.rg = grant(t, tr.h, tr.r, study)
	waitShared(t, tr.g, tr.h, study, "available", 1, deliverTimeout)
	waitShared(t, tr.r, tr.h, study, "available", 1, deliverTimeout)
	return tr
}

// secondaryFetches has G fetch the study and, when G serves as a
// secondary, waits until H lists it as a holder.
func (tr *trio) secondaryFetches(t *testing.T) {
	t.Helper()
	if st := fetchWait(t, tr.g, tr.study, 30*time.Second); st.State != FetchDone {
		t.Fatalf("G's fetch: %+v", st)
	}
	if tr.g.cfg.Exchange.ServeAsSecondary {
		waitFor(t, deliverTimeout, "H to list G as a holder", func() bool {
			hs := tr.h.sharing.liveHolders(tr.study, tr.r.ID())
			return len(hs) == 1 && hs[0] == tr.g.ID()
		})
	}
}

// presentToG asks G for blocks directly, presenting a grant as R.
func (tr *trio) presentToG(t *testing.T, g *consent.SignedGrant, cids []cid.Cid) (int, error) {
	t.Helper()
	signed, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	err = tr.r.ex.FetchBlocksPresenting(ctx, tr.g.ID(), signed, g.Grant.ID, cids, func(cid.Cid, []byte) error { n++; return nil })
	return n, err
}

func sourceOf(st FetchStatus, p peer.ID) (FetchSource, bool) {
	for _, s := range st.Sources {
		if s.Peer == p {
			return s, true
		}
	}
	return FetchSource{}, false
}

// (a) R fetches from H and from G, which fetched the study before; both
// deliver, and G audits what it served as H's secondary.
func TestMultiSourceFetch(t *testing.T) {
	slow := nodeSetup{cfg: func(c *Config) { c.Exchange.UploadRate = 256 << 10; secondaryOn(c) }}
	tr := newTrio(t, 24, slow, slow, nodeSetup{})
	tr.secondaryFetches(t)
	waitAudit(t, tr.h, consent.Entry{Action: consent.ActManifestReceived, Peer: tr.g.ID(), Study: tr.study, Reason: "holder"})

	st := fetchWait(t, tr.r, tr.study, 30*time.Second)
	if st.State != FetchDone || st.InstancesDone != st.Instances || st.BytesDone != st.Bytes {
		t.Fatalf("R's fetch: %+v", st)
	}
	hs, okH := sourceOf(st, tr.h.ID())
	gs, okG := sourceOf(st, tr.g.ID())
	if len(st.Sources) != 2 || !okH || !okG || hs.Bytes == 0 || gs.Bytes == 0 || hs.Bytes+gs.Bytes < st.Bytes {
		t.Fatalf("both holders should deliver: %+v", st.Sources)
	}
	t.Logf("H delivered %d bytes, G %d of %d", hs.Bytes, gs.Bytes, st.Bytes)
	requireSameStudy(t, tr.h, tr.r, tr.study)
	requireAudit(t, tr.g, consent.Entry{Action: consent.ActFetchServedSecondary, Peer: tr.r.ID(), Study: tr.study,
		GrantID: tr.rg.Grant.ID, Decision: "allow", Reason: "for=" + tr.h.ID().String()})
	waitAudit(t, tr.r, consent.Entry{Action: consent.ActFetchCompleted, Peer: tr.h.ID(), Study: tr.study, Reason: "secondaries=" + tr.g.ID().String()})
	requireAudit(t, tr.h, consent.Entry{Action: api.ActHoldersListed, Peer: tr.r.ID(), Study: tr.study, Reason: "holders=" + tr.g.ID().String()})
	// R kept the list, for a fetch while H is unreachable.
	if l, ok, err := tr.r.store.HolderList(tr.h.ID(), tr.study); err != nil || !ok || len(l.Holders) != 1 || l.Holders[0] != tr.g.ID() {
		t.Errorf("R's list of holders: %+v %v %v", l, ok, err)
	}
}

// (b) H stops in the middle of R's fetch: R completes from G.
func TestMultiSourceHolderStops(t *testing.T) {
	slow := nodeSetup{cfg: func(c *Config) { c.Exchange.UploadRate = 256 << 10; secondaryOn(c) }}
	tr := newTrio(t, 24, slow, slow, nodeSetup{cfg: func(c *Config) { c.Exchange.FetchRetryFor = Duration{10 * time.Second} }})
	tr.secondaryFetches(t)

	st, err := tr.r.StartFetch(context.Background(), FetchRequest{Study: tr.study, Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "blocks from both holders", func() bool {
		s, _ := tr.r.FetchStatus(st.ID)
		hs, _ := sourceOf(s, tr.h.ID())
		gs, _ := sourceOf(s, tr.g.ID())
		return hs.Bytes > 0 && gs.Bytes > 0 && s.BytesDone < s.Bytes
	})
	tr.h.stop()
	end := waitFetch(t, tr.r, st.ID, 30*time.Second)
	if end.State != FetchDone || end.InstancesDone != end.Instances {
		t.Fatalf("fetch with H gone: %+v", end)
	}
	if gs, ok := sourceOf(end, tr.g.ID()); !ok || gs.Bytes == 0 {
		t.Errorf("G did not deliver: %+v", end.Sources)
	}
	t.Logf("sources at the end: %+v", end.Sources)
	requireSameStudy(t, tr.g, tr.r, tr.study)
}

// (c) G refuses a requester that does not present a grant H signed for
// the study, and audits each refusal.
func TestSecondaryRefusesWithoutHoldersGrant(t *testing.T) {
	tr := newTrio(t, 3, nodeSetup{}, nodeSetup{cfg: secondaryOn}, nodeSetup{})
	tr.secondaryFetches(t)
	cids := studyCIDs(t, tr.g, tr.study)

	if n, err := tr.presentToG(t, tr.rg, cids); err != nil || n != len(cids) {
		t.Fatalf("H's grant to R: %d of %d blocks, %v", n, len(cids), err)
	}
	// A grant H signed for another study.
	other, files := ctStudyOf(t, synth.CTOptions{Slices: 1, Seed: 92})
	importFiles(t, tr.h, files)
	og := grant(t, tr.h, tr.r, other)
	// H's grant to R with its expiry moved: the signature breaks.
	forged := *tr.rg
	forged.Grant.Expires = forged.Grant.Expires.Add(24 * time.Hour)
	// A grant for the study signed by a facility G does not know.
	key, _, err := lcrypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := consent.Open(consent.NewMemStore(), key, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := stranger.Grant(consent.GrantRequest{Grantee: tr.r.ID(), Studies: []string{tr.study}, Purpose: consent.PurposeTreatment, Expires: time.Now().Add(time.Hour), Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	// And H's grant to G, presented by R.
	for _, tc := range []struct {
		name   string
		g      *consent.SignedGrant
		reason string
	}{
		{"another study", og, "for=" + tr.h.ID().String() + " out-of-scope"},
		{"forged signature", &forged, secondaryBadGrant},
		{"signed by a stranger", sg, secondaryNotPartner},
		{"granted to another", tr.gg, "for=" + tr.h.ID().String() + " wrong-grantee"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tr.presentToG(t, tc.g, cids)
			var re *exchange.RemoteError
			if !errors.As(err, &re) || !errors.Is(err, exchange.ErrDenied) || n != 0 {
				t.Fatalf("got %d blocks, %v; want denied", n, err)
			}
			waitAudit(t, tr.g, consent.Entry{Action: consent.ActFetchDeniedSecondary, Peer: tr.r.ID(), Decision: "deny", Reason: tc.reason})
		})
	}
	// Bytes that are not exactly one signed grant are a bad request.
	good, _ := json.Marshal(tr.rg)
	for name, signed := range map[string][]byte{
		"trailing data": append(append([]byte(nil), good...), []byte(" {}")...),
		"unknown field": append([]byte(`{"x":1,`), good[1:]...),
		"not JSON":      []byte("grant"),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := tr.r.ex.FetchBlocksPresenting(ctx, tr.g.ID(), signed, tr.rg.Grant.ID, cids, func(cid.Cid, []byte) error { return nil })
			if !errors.Is(err, exchange.ErrBadRequest) {
				t.Fatalf("got %v, want a bad request", err)
			}
		})
	}
	waitAudit(t, tr.g, consent.Entry{Action: consent.ActFetchDeniedSecondary, Peer: tr.r.ID(), Reason: secondaryBadGrant})
}

// (d) Once H's revocation of R's grant reaches G, G refuses it.
func TestSecondaryRefusesRevokedGrant(t *testing.T) {
	tr := newTrio(t, 3, nodeSetup{}, nodeSetup{cfg: secondaryOn}, nodeSetup{})
	tr.secondaryFetches(t)
	cids := studyCIDs(t, tr.g, tr.study)
	if n, err := tr.presentToG(t, tr.rg, cids); err != nil || n != len(cids) {
		t.Fatalf("before the revocation: %d of %d blocks, %v", n, len(cids), err)
	}
	if _, err := tr.h.Revoke(tr.rg.Grant.ID, "treatment-ended", "admin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deliverTimeout, "the revocation to reach G", func() bool {
		ok, err := tr.g.store.ForeignRevoked(tr.h.ID(), tr.rg.Grant.ID)
		return err == nil && ok
	})
	waitAudit(t, tr.g, consent.Entry{Action: consent.ActManifestReceived, Peer: tr.h.ID(), GrantID: tr.rg.Grant.ID, Reason: "holder-revocation"})
	if n, err := tr.presentToG(t, tr.rg, cids); !errors.Is(err, exchange.ErrDenied) || n != 0 {
		t.Fatalf("after the revocation: %d blocks, %v", n, err)
	}
	waitAudit(t, tr.g, consent.Entry{Action: consent.ActFetchDeniedSecondary, Peer: tr.r.ID(), GrantID: tr.rg.Grant.ID,
		Reason: "for=" + tr.h.ID().String() + " revoked"})
	// G's own grant is untouched: G still holds and serves the study.
	if hc, err := tr.g.secondary.heldFrom(tr.h.ID(), tr.study); err != nil || !hc.ok {
		t.Errorf("G's copy: %+v, %v", hc, err)
	}
}

// (e) G with serve_as_secondary off neither announces itself nor serves.
func TestSecondaryOptOut(t *testing.T) {
	tr := newTrio(t, 3, nodeSetup{}, nodeSetup{}, nodeSetup{})
	tr.secondaryFetches(t)
	if items, err := tr.g.outbox.Pending(); err != nil || len(items) != 0 {
		t.Errorf("G queued %d items (%v); an opted-out facility announces nothing", len(items), err)
	}
	if hs, err := tr.h.store.Holders(tr.study); err != nil || len(hs) != 0 {
		t.Errorf("H lists holders %+v (%v)", hs, err)
	}
	st := fetchWait(t, tr.r, tr.study, 30*time.Second)
	if st.State != FetchDone || len(st.Sources) != 1 || st.Sources[0].Peer != tr.h.ID() {
		t.Fatalf("R's fetch: %+v", st)
	}
	if n, err := tr.presentToG(t, tr.rg, studyCIDs(t, tr.g, tr.study)); !errors.Is(err, exchange.ErrDenied) || n != 0 {
		t.Fatalf("G served %d blocks with serving off: %v", n, err)
	}
	waitAudit(t, tr.g, consent.Entry{Action: consent.ActFetchDeniedSecondary, Peer: tr.r.ID(), Reason: secondaryOff})
}

// (f) A secondary that sends corrupt bytes is dropped and audited; the
// fetch completes, verified, from H.
func TestMultiSourceCorruptSecondary(t *testing.T) {
	// H is slowed so that the engine hands G blocks too.
	tr := newTrio(t, 24, nodeSetup{cfg: func(c *Config) { c.Exchange.UploadRate = 1 << 20 }}, nodeSetup{cfg: secondaryOn}, nodeSetup{})
	tr.secondaryFetches(t)
	for _, c := range studyCIDs(t, tr.g, tr.study) {
		junk := make([]byte, 64)
		rand.Read(junk)
		tr.g.store.DeleteRaw(store.BlockRefKey(c))
		if err := tr.g.store.SetRaw(store.BlockKey(c), junk); err != nil {
			t.Fatal(err)
		}
	}
	st := fetchWait(t, tr.r, tr.study, 30*time.Second)
	if st.State != FetchDone || st.InstancesDone != st.Instances {
		t.Fatalf("R's fetch: %+v", st)
	}
	if gs, ok := sourceOf(st, tr.g.ID()); !ok || gs.State != api.FetchSourceCorrupt || gs.Bytes != 0 {
		t.Errorf("G is not marked corrupt: %+v", st.Sources)
	}
	requireSameStudy(t, tr.h, tr.r, tr.study)
	waitAudit(t, tr.r, consent.Entry{Action: consent.ActFetchFailed, Peer: tr.g.ID(), Study: tr.study, Reason: fetchFailCorrupt})
	if bad := findAudit(t, tr.r, consent.Entry{Action: consent.ActFetchFailed, Peer: tr.h.ID()}); len(bad) != 0 {
		t.Errorf("H audited as failed: %+v", bad)
	}
}

// A patient grant of H's covers H's study at G too (G checks the copy's
// Patient ID and issuer), and its revocation reaches G like any other.
func TestSecondaryPatientGrant(t *testing.T) {
	tr := newTrio(t, 2, nodeSetup{}, nodeSetup{cfg: secondaryOn}, nodeSetup{})
	tr.secondaryFetches(t)
	sr, ok, err := tr.h.store.Study(tr.study)
	if err != nil || !ok || sr.PatientID == "" {
		t.Fatalf("H's study: %+v %v %v", sr, ok, err)
	}
	pg, err := tr.h.Grant(context.Background(), GrantRequest{To: tr.r.ID().String(), Patient: &consent.Patient{ID: sr.PatientID, Issuer: sr.IssuerOfPatientID}, Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	cids := studyCIDs(t, tr.g, tr.study)
	if n, err := tr.presentToG(t, pg, cids); err != nil || n != len(cids) {
		t.Fatalf("patient grant: %d of %d blocks, %v", n, len(cids), err)
	}
	if _, err := tr.h.Revoke(pg.Grant.ID, "consent-withdrawn", "admin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, deliverTimeout, "the revocation to reach G", func() bool {
		ok, err := tr.g.store.ForeignRevoked(tr.h.ID(), pg.Grant.ID)
		return err == nil && ok
	})
	if n, err := tr.presentToG(t, pg, cids); !errors.Is(err, exchange.ErrDenied) || n != 0 {
		t.Fatalf("revoked patient grant: %d blocks, %v", n, err)
	}
	// R's study grant is untouched.
	if n, err := tr.presentToG(t, tr.rg, cids); err != nil || n != len(cids) {
		t.Fatalf("R's study grant after the patient grant's revocation: %d of %d blocks, %v", n, len(cids), err)
	}
}

// With H unreachable when the fetch starts, R uses the holders H listed
// last time and fetches the study from G.
func TestMultiSourceHolderDownAtStart(t *testing.T) {
	tr := newTrio(t, 4, nodeSetup{}, nodeSetup{cfg: secondaryOn}, nodeSetup{})
	tr.secondaryFetches(t)
	rec, ok, err := tr.r.store.SharedFor(tr.h.ID(), tr.study)
	if err != nil || !ok {
		t.Fatalf("R's manifest: %v %v", ok, err)
	}
	// What R learns at the start of any fetch; kept for later.
	if srcs := tr.r.fetcher.secondarySources(context.Background(), rec.Manifest); len(srcs) != 1 || srcs[0].peer != tr.g.ID() {
		t.Fatalf("R's secondary sources: %+v", srcs)
	}
	tr.h.stop()
	st := fetchWait(t, tr.r, tr.study, 30*time.Second)
	if st.State != FetchDone || st.InstancesDone != st.Instances {
		t.Fatalf("fetch with H down: %+v", st)
	}
	if gs, ok := sourceOf(st, tr.g.ID()); !ok || gs.Bytes != st.Bytes {
		t.Errorf("G should have delivered everything: %+v", st.Sources)
	}
	requireSameStudy(t, tr.g, tr.r, tr.study)
}

// A facility that turns serving off withdraws what it announced: the
// holder stops listing it.
func TestSecondaryWithdrawsWhenTurnedOff(t *testing.T) {
	tr := newTrio(t, 2, nodeSetup{}, nodeSetup{cfg: secondaryOn}, nodeSetup{})
	tr.secondaryFetches(t)
	tr.g = tr.g.restart(func(c *Config) { c.Exchange.ServeAsSecondary = false })
	waitFor(t, deliverTimeout, "H to stop listing G", func() bool {
		return len(tr.h.sharing.liveHolders(tr.study, tr.r.ID())) == 0
	})
	waitAudit(t, tr.h, consent.Entry{Action: consent.ActManifestReceived, Peer: tr.g.ID(), Study: tr.study, Reason: "holder-withdrawn"})
	if a, err := tr.g.store.AnnouncedAll(); err != nil || len(a) != 0 {
		t.Errorf("G still records announcements: %+v %v", a, err)
	}
	st := fetchWait(t, tr.r, tr.study, 30*time.Second)
	if st.State != FetchDone || len(st.Sources) != 1 || st.Sources[0].Peer != tr.h.ID() {
		t.Fatalf("R's fetch: %+v", st)
	}
}
