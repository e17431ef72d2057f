package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"github.com/pacsnet/pacsnet/node/internal/store"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/synth"
	"github.com/pacsnet/pacsnet/exchange"
)

// sharedPair sets up a holder with a study granted to a grantee whose
// manifest has arrived.
func sharedPair(t *testing.T, slices int, holder, grantee nodeSetup) (a, b *tnode, study string, g *consent.SignedGrant) {
	t.Helper()
	a = newNode(t, "Alpha", holder)
	b = newNode(t, "Beta", grantee)
	link(t, a, b)
	study, _ = importCT(t, a, 1, slices)
	g = grant(t, a, b, study)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	return a, b, study, g
}

// requireSameStudy checks that b holds every instance of study exactly as
// a does.
func requireSameStudy(t *testing.T, a, b *tnode, study string) {
	t.Helper()
	ia, err := a.Instances(study)
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.Instances(study)
	if err != nil {
		t.Fatal(err)
	}
	if len(ia) != len(ib) {
		t.Fatalf("%s holds %d instances, %s %d", a.name, len(ia), b.name, len(ib))
	}
	for _, in := range ia {
		want, _, err := a.InstanceData(study, in.SOPInstanceUID)
		if err != nil {
			t.Fatal(err)
		}
		requireInstance(t, b, study, in.SOPInstanceUID, want)
	}
}

func TestFetch(t *testing.T) {
	a, b, study, g := sharedPair(t, 6, nodeSetup{}, nodeSetup{})
	st := fetchWait(t, b, study, 20*time.Second)
	if st.State != FetchDone || st.Error != "" {
		t.Fatalf("fetch: %+v", st)
	}
	if st.Instances != 6 || st.InstancesDone != st.Instances || st.BytesDone != st.Bytes || st.Bytes == 0 || st.BytesResumed != 0 ||
		st.Issuer != a.ID() || st.IssuerName != "Alpha" || st.Study != study || st.Finished.IsZero() {
		t.Errorf("fetch status: %+v", st)
	}
	// The holder's part, from the engine's last progress report.
	if len(st.Sources) != 1 || st.Sources[0].Peer != a.ID() || st.Sources[0].Name != "Alpha" ||
		st.Sources[0].Bytes != st.Bytes || st.Sources[0].State != api.FetchSourceActive {
		t.Errorf("fetch sources: %+v", st.Sources)
	}
	requireSameStudy(t, a, b, study)
	studies, err := b.Studies()
	if err != nil || len(studies) != 1 {
		t.Fatalf("grantee's studies: %+v, %v", studies, err)
	}
	s := studies[0]
	as, _ := a.Studies()
	if s.UID != study || s.Origin != a.ID() || s.OriginName != "Alpha" || s.Instances != 6 || s.Bytes != as[0].Bytes ||
		s.PatientName != as[0].PatientName || !slices.Equal(s.Modalities, []string{"CT"}) {
		t.Errorf("grantee's study: %+v; holder's: %+v", s, as[0])
	}
	if sh, _ := sharedStudy(t, b, a, study); !sh.Fetched {
		t.Errorf("shared study not marked fetched: %+v", sh)
	}
	requireAudit(t, a, consent.Entry{Action: consent.ActFetchAllowed, Peer: b.ID(), Study: study, GrantID: g.Grant.ID, Decision: "allow"})
	waitAudit(t, b, consent.Entry{Action: consent.ActFetchCompleted, Peer: a.ID(), Study: study, GrantID: g.Grant.ID, Decision: "allow", Actor: "admin"})

	t.Run("again fetches nothing", func(t *testing.T) {
		st2 := fetchWait(t, b, study, 20*time.Second)
		if st2.State != FetchDone || st2.BytesResumed != st2.Bytes || st2.BytesDone != st2.Bytes || st2.InstancesDone != 6 || st2.Attempts != 0 {
			t.Errorf("second fetch: %+v", st2)
		}
		if st2.ID == st.ID {
			t.Error("second fetch has the first one's ID")
		}
		if s2, _ := b.Studies(); len(s2) != 1 || s2[0].Instances != 6 {
			t.Errorf("studies after a second fetch: %+v", s2)
		}
	})
	t.Run("unknown study", func(t *testing.T) {
		if _, err := b.StartFetch(context.Background(), FetchRequest{Study: "1.2.3.404"}); !errors.Is(err, ErrNotShared) {
			t.Errorf("fetch of a study nobody shared: %v", err)
		}
		if _, ok := b.FetchStatus("nope"); ok {
			t.Error("FetchStatus of an unknown id")
		}
	})
}

// The grantee's archive holds the fetched instances as age ciphertext
// too, and no study key in the clear.
func TestGranteeArchiveHoldsNoPlaintext(t *testing.T) {
	const patient = "QUUXLEY^ZEBEDIAH^PLAINTEXTCANARY"
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	study, files := ctStudy(t, 11, 3, patient)
	importFiles(t, a, files)
	grant(t, a, b, study)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	if st := fetchWait(t, b, study, 20*time.Second); st.State != FetchDone {
		t.Fatalf("fetch: %+v", st)
	}
	var blocks int
	scanArchive(t, b, func(k, v []byte) {
		if bytes.HasPrefix(k, []byte(pfxBlock)) {
			blocks++
		}
		for i, f := range files {
			d := f.Data
			if bytes.Contains(v, d[len(d)-4096:len(d)-4096+48]) {
				t.Errorf("pixel data of slice %d in plaintext under %s", i, printableKey(k))
			}
		}
		// The index (study/) and the shared-study list (shared/) carry the
		// study's attributes by design.
		if bytes.Contains(v, []byte(patient)) && !bytes.HasPrefix(k, []byte(pfxStudy)) && !bytes.HasPrefix(k, []byte(pfxShared)) {
			t.Errorf("patient name in plaintext under %s", printableKey(k))
		}
		// Whoever reads the archive with the study key in it reads the
		// study: the key must be kept wrapped, as the holder keeps it.
		if bytes.Contains(v, []byte("AGE-SECRET-KEY")) || bytes.Contains(v, []byte("PACSNET-STUDY-KEY")) {
			t.Errorf("an unwrapped secret key (the study key) under %s", printableKey(k))
		}
	})
	if blocks < len(files) {
		t.Fatalf("scan saw %d blocks", blocks)
	}
}

// A fetch that loses its holder fails after fetch_retry_for; once the
// holder is back a new fetch fetches only what is missing.
func TestFetchResumesAfterHolderOutage(t *testing.T) {
	// 12 slices are about 130 KB of ciphertext; at 16 KiB/s after a 32 KiB
	// burst the transfer takes seconds, so the holder can be stopped in
	// the middle of it.
	a, b, study, g := sharedPair(t, 12,
		nodeSetup{cfg: func(c *Config) { c.Exchange.UploadRate = 16 << 10 }},
		nodeSetup{cfg: func(c *Config) { c.Exchange.FetchRetryFor = Duration{500 * time.Millisecond} }})
	aAddrs := a.listenAddrs()
	want := map[string][]byte{}
	for _, sop := range a.mustSOPs(t, study) {
		d, _, err := a.InstanceData(study, sop)
		if err != nil {
			t.Fatal(err)
		}
		want[sop] = d
	}

	st, err := b.StartFetch(context.Background(), FetchRequest{Study: study, Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first blocks", func() bool {
		s, _ := b.FetchStatus(st.ID)
		return s.BytesDone > 0
	})
	a.stop()
	// While the holder is away the fetch waits and retries.
	waitFor(t, 5*time.Second, "the fetch to wait for the holder", func() bool {
		s, _ := b.FetchStatus(st.ID)
		return s.State == FetchWaiting || s.State == FetchFailed
	})
	if s, _ := b.FetchStatus(st.ID); s.State == FetchWaiting && s.Error == "" {
		t.Errorf("a waiting fetch does not say why: %+v", s)
	}
	first := waitFetch(t, b, st.ID, 20*time.Second)
	if first.State != FetchFailed || !strings.Contains(first.Error, "could not be reached") || first.BytesDone == 0 || first.BytesDone >= first.Bytes {
		t.Fatalf("fetch with the holder gone: %+v", first)
	}
	t.Logf("first fetch: %d of %d bytes, %d of %d instances, %d attempts, %v of %v waiting", first.BytesDone, first.Bytes, first.InstancesDone, first.Instances, first.Attempts, first.Waited, first.Finished.Sub(first.Started))
	// The time spent waiting for the holder is told apart from the
	// transfer's, so that a rate is not computed over an outage.
	if first.Waited <= 0 || first.Waited >= first.Finished.Sub(first.Started) {
		t.Errorf("the fetch waited %v for the holder, of %v in all", first.Waited, first.Finished.Sub(first.Started))
	}
	waitAudit(t, b, consent.Entry{Action: consent.ActFetchFailed, Peer: a.ID(), Study: study, GrantID: g.Grant.ID, Decision: "deny"})
	// What arrived is kept and what is indexed is whole.
	if insts, err := b.Instances(study); err == nil {
		if len(insts) != first.InstancesDone {
			t.Errorf("grantee indexed %d instances, the fetch reported %d", len(insts), first.InstancesDone)
		}
		for _, in := range insts {
			requireInstance(t, b, study, in.SOPInstanceUID, want[in.SOPInstanceUID])
		}
	}

	a = a.reopen(aAddrs, func(c *Config) { c.Exchange.UploadRate = 0 })
	second := fetchWait(t, b, study, 20*time.Second)
	if second.State != FetchDone || second.BytesDone != second.Bytes || second.InstancesDone != second.Instances {
		t.Fatalf("fetch after the holder is back: %+v", second)
	}
	if second.Waited >= second.Finished.Sub(second.Started) {
		t.Errorf("a fetch that moved every missing block waited %v of %v", second.Waited, second.Finished.Sub(second.Started))
	}
	if second.BytesResumed != first.BytesDone {
		t.Errorf("second fetch resumed %d bytes; the first had stored %d", second.BytesResumed, first.BytesDone)
	}
	requireSameStudy(t, a, b, study)
	waitAudit(t, b, consent.Entry{Action: consent.ActFetchCompleted, Peer: a.ID(), Study: study})
}

// A revocation stops a running transfer at the next block.
func TestRevocationStopsRunningFetch(t *testing.T) {
	a, b, study, g := sharedPair(t, 12, nodeSetup{cfg: func(c *Config) { c.Exchange.UploadRate = 16 << 10 }}, nodeSetup{})
	st, err := b.StartFetch(context.Background(), FetchRequest{Study: study})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the first blocks", func() bool {
		s, _ := b.FetchStatus(st.ID)
		return s.BytesDone > 0
	})
	// While it runs, the fetch reports its rate and the time left.
	waitFor(t, 10*time.Second, "a rate and an ETA", func() bool {
		s, _ := b.FetchStatus(st.ID)
		return s.State == FetchRunning && s.Rate > 0 && s.ETA > 0 && len(s.Sources) == 1
	})
	if _, err := a.Revoke(g.Grant.ID, "", "admin"); err != nil {
		t.Fatal(err)
	}
	end := waitFetch(t, b, st.ID, 10*time.Second)
	if end.State != FetchFailed || !strings.Contains(end.Error, "refused the transfer") || end.BytesDone >= end.Bytes {
		t.Fatalf("fetch across a revocation: %+v", end)
	}
	waitAudit(t, a, consent.Entry{Action: consent.ActFetchDenied, Peer: b.ID(), GrantID: g.Grant.ID, Reason: "revoked"})
	waitAudit(t, b, consent.Entry{Action: consent.ActFetchFailed, Peer: a.ID(), GrantID: g.Grant.ID})
}

// A block that no longer matches its CID in the holder's archive makes
// the fetch fail; nothing of its instance is stored at the grantee.
func TestFetchRejectsTamperedBlock(t *testing.T) {
	a, b, study, g := sharedPair(t, 3, nodeSetup{}, nodeSetup{})
	insts, err := a.Instances(study)
	if err != nil {
		t.Fatal(err)
	}
	victim := insts[1]
	bad := cid.MustParse(victim.Blocks[0].CID)
	junk := make([]byte, victim.Blocks[0].Size)
	rand.Read(junk)
	a.store.DeleteRaw(store.BlockRefKey(bad)) // the block in the blob log: the junk takes its place
	if err := a.store.SetRaw(store.BlockKey(bad), junk); err != nil {
		t.Fatal(err)
	}

	st := fetchWait(t, b, study, 20*time.Second)
	if st.State != FetchFailed || !strings.Contains(st.Error, exchange.ErrBadBlock.Error()) || st.Attempts != 1 {
		t.Fatalf("fetch of a tampered block: %+v", st)
	}
	got, err := b.Instances(study)
	if err != nil && !errors.Is(err, errStudyNotFound) {
		t.Fatal(err)
	}
	for _, in := range got {
		if in.SOPInstanceUID == victim.SOPInstanceUID {
			t.Errorf("the instance with the tampered block is indexed")
		}
		want, _, _ := a.InstanceData(study, in.SOPInstanceUID)
		requireInstance(t, b, study, in.SOPInstanceUID, want)
	}
	if has, err := b.store.HasBlock(bad); err != nil || has {
		t.Errorf("grantee stored the tampered block: %v, %v", has, err)
	}
	if _, _, err := b.InstanceData(study, victim.SOPInstanceUID); err == nil {
		t.Error("grantee serves the instance with the tampered block")
	}
	waitAudit(t, b, consent.Entry{Action: consent.ActFetchFailed, Peer: a.ID(), Study: study, GrantID: g.Grant.ID, Reason: fetchFailCorrupt})
	if len(st.Sources) != 1 || st.Sources[0].State != api.FetchSourceCorrupt {
		t.Errorf("the holder that sent a tampered block is not marked corrupt: %+v", st.Sources)
	}
}

// An instance whose blocks arrive intact (they are the ciphertext the
// holder sealed) but whose plaintext does not match the manifest's
// SHA-256 is fetched as it is, and refused by every read: never served.
func TestFetchedInstanceNotMatchingManifestIsNeverServed(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	study, _ := importCT(t, a, 1, 2)
	insts, err := a.Instances(study)
	if err != nil {
		t.Fatal(err)
	}
	// The holder's index claims another digest for the second instance;
	// the manifest carries it.
	victim := insts[1]
	victim.Digest = strings.Repeat("ab", 32)
	if err := setRecord(a, store.InstanceKey(study, victim.SOPInstanceUID), victim); err != nil {
		t.Fatal(err)
	}
	grant(t, a, b, study)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	if st := fetchWait(t, b, study, 20*time.Second); st.State != FetchDone {
		t.Fatalf("fetch: %+v", st)
	}
	if _, _, err := b.archive.InstanceData(study, insts[0].SOPInstanceUID); err != nil {
		t.Fatalf("read the intact instance: %v", err)
	}
	if data, _, err := b.archive.InstanceData(study, victim.SOPInstanceUID); err == nil || !strings.Contains(err.Error(), "does not match its recorded SHA-256") {
		t.Fatalf("read the instance that does not match its manifest digest: %d bytes, %v", len(data), err)
	}
}

// Without a pushed manifest, fetch --from asks the holder for one; it is
// answered under a live grant.
func TestFetchPullsManifest(t *testing.T) {
	a, b, study, g := sharedPair(t, 2, nodeSetup{}, nodeSetup{})
	// Forget the pushed manifest.
	if err := b.store.DeleteRaw(store.SharedKey(a.ID(), study)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StartFetch(context.Background(), FetchRequest{Study: study}); !errors.Is(err, ErrNotShared) {
		t.Fatalf("fetch without a manifest and without --from: %v", err)
	}
	st, err := b.StartFetch(context.Background(), FetchRequest{Study: study, From: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	if end := waitFetch(t, b, st.ID, 20*time.Second); end.State != FetchDone {
		t.Fatalf("fetch after a pull: %+v", end)
	}
	requireSameStudy(t, a, b, study)
	requireAudit(t, a, consent.Entry{Action: consent.ActManifestSent, Peer: b.ID(), Study: study, GrantID: g.Grant.ID, Reason: "pull"})
	if _, err := b.StartFetch(context.Background(), FetchRequest{Study: study, From: "Nobody"}); err == nil {
		t.Error("fetch from an unknown partner succeeded")
	}
}

// An expired grant is refused at the grantee before any request is sent.
func TestFetchExpiredGrantRefusedLocally(t *testing.T) {
	clock := &testClock{}
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta", nodeSetup{clock: clock})
	link(t, a, b)
	study, _ := importCT(t, a, 1, 1)
	if _, err := a.Grant(context.Background(), GrantRequest{To: "Beta", Study: study, Expires: time.Hour}); err != nil {
		t.Fatal(err)
	}
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	clock.Advance(2 * time.Hour)
	if s, _ := sharedStudy(t, b, a, study); s.State != "expired" {
		t.Errorf("shared study after expiry: %+v", s)
	}
	if _, err := b.StartFetch(context.Background(), FetchRequest{Study: study}); !errors.Is(err, exchange.ErrDenied) {
		t.Errorf("fetch under an expired grant: %v", err)
	}
}

// Two fetches of one study at once both finish and the study is indexed
// once.
func TestConcurrentFetchesOfOneStudy(t *testing.T) {
	a, b, study, _ := sharedPair(t, 6, nodeSetup{}, nodeSetup{})
	ctx := context.Background()
	var ids []string
	for range 3 {
		st, err := b.StartFetch(ctx, FetchRequest{Study: study})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, st.ID)
	}
	for _, id := range ids {
		if st := waitFetch(t, b, id, 20*time.Second); st.State != FetchDone || st.InstancesDone != 6 {
			t.Errorf("concurrent fetch: %+v", st)
		}
	}
	studies, err := b.Studies()
	if err != nil || len(studies) != 1 || studies[0].Instances != 6 {
		t.Fatalf("studies after concurrent fetches: %+v, %v", studies, err)
	}
	requireSameStudy(t, a, b, study)
}

// "done" must mean every instance of the manifest is verified and
// indexed. A manifest that lists one block under two instances (a faulty
// or hostile holder) must not end in a "done" fetch that silently lacks
// an instance.
func TestFetchNeverReportsDoneForIncompleteStudy(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	study, _ := importCT(t, a, 1, 2)
	insts, err := a.Instances(study)
	if err != nil {
		t.Fatal(err)
	}
	// The holder's record of the second instance names the first one's
	// block, size and digest.
	x, y := insts[0], insts[1]
	y.Blocks, y.Size, y.Digest = x.Blocks, x.Size, x.Digest
	if err := setRecord(a, store.InstanceKey(study, y.SOPInstanceUID), y); err != nil {
		t.Fatal(err)
	}
	grant(t, a, b, study)
	waitShared(t, b, a, study, "available", 1, deliverTimeout)
	st := fetchWait(t, b, study, 20*time.Second)
	got, _ := b.Instances(study)
	if st.State == FetchDone && (st.InstancesDone != st.Instances || len(got) != st.Instances) {
		t.Errorf("fetch reported done with %d of %d instances done and %d indexed", st.InstancesDone, st.Instances, len(got))
	}
}

// A partner's instance whose SOP Instance UID this archive holds in
// another study is refused before any of its blocks is asked for: the
// fetch fails with an integrity error, stores nothing, and leaves no
// bytes in the blob log. (Should a local import of that UID win the race
// during the fetch, the commit is refused whole and its staged blocks are
// punched out: fetchBatch.flush.)
func TestFetchRefusesCollidingInstance(t *testing.T) {
	a := newNode(t, "Alpha")
	b := newNode(t, "Beta")
	link(t, a, b)
	mine, files := ctStudyOf(t, synth.CTOptions{Slices: 1, Seed: 5, Rows: 512, Cols: 512})
	// The same instance under another Study Instance UID (same length).
	theirs := []byte(mine)
	theirs[len(theirs)-1] = '0' + ('7'-theirs[len(theirs)-1]+10)%10
	i := bytes.Index(files[0].Data, []byte(mine))
	if i < 0 || string(theirs) == mine {
		t.Fatal("study UID not found in the file")
	}
	other := slices.Clone(files[0].Data)
	copy(other[i:], theirs)
	ctx := context.Background()
	if r := b.Import(ctx, files[0].Data); r.Outcome != OutcomeStored {
		t.Fatalf("Beta's own import: %+v", r)
	}
	if r := a.Import(ctx, other); r.Outcome != OutcomeStored || r.Study != string(theirs) {
		t.Fatalf("Alpha's import: %+v", r)
	}
	grant(t, a, b, string(theirs))
	waitShared(t, b, a, string(theirs), "available", 1, deliverTimeout)
	base := blobAllocated(t, b)
	st := fetchWait(t, b, string(theirs), 30*time.Second)
	if st.State != FetchFailed || st.InstancesDone != 0 {
		t.Fatalf("fetch of a colliding instance: %+v", st)
	}
	if grew := blobAllocated(t, b) - base; grew > 16<<10 {
		t.Errorf("a refused %d-byte fetch left %d bytes in the blob log", len(other), grew)
	}
}
