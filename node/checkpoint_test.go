package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// openStopped opens a stopped node's archive as someone with the disk and
// the archive key (not the node's signing key in hand) would, to tamper.
func openStopped(t *testing.T, home string) *store.Store {
	t.Helper()
	keys, err := loadKeys(home)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(home, archiveDir), Key: keys.archiveKey,
		ValueLogFileSize: valueLogFileSize, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The audit trail's signed checkpoints (issue 8): the node signs one on
// request, on a timer and when it stops; verification checks them all, and
// a checkpoint kept off the node catches a truncation even when the
// stored ones were deleted with it.
func TestAuditCheckpoints(t *testing.T) {
	a := newNode(t, "Alpha")
	// Entries, as the node writes them for what it does.
	record := func(n int) {
		for range n {
			a.audit.Record(consent.Entry{Actor: "admin", Action: consent.ActExport, Study: "1.2.3"})
		}
	}
	record(5)

	// On request, as an auditor would: the answer names the head, the log
	// gains an entry naming the caller, and asking again while nothing
	// happened signs nothing new.
	var kept api.SignedAuditCheckpoint
	if code := apiCall(t, a, "POST", "/api/v1/audit/checkpoint", nil, &kept); code != http.StatusOK {
		t.Fatalf("checkpoint: %d", code)
	}
	if kept.Checkpoint.Index != 1 || kept.Checkpoint.Node != a.host.ID().String() || kept.Checkpoint.Facility != "Alpha" {
		t.Fatalf("checkpoint: %+v", kept.Checkpoint)
	}
	var again api.SignedAuditCheckpoint
	apiCall(t, a, "POST", "/api/v1/audit/checkpoint", nil, &again)
	if again.Checkpoint != kept.Checkpoint {
		t.Errorf("idle checkpoint signed anew: %+v", again.Checkpoint)
	}
	log := auditLog(t, a)
	last := log[len(log)-1]
	if last.Action != consent.ActAuditCheckpoint || last.Actor != "admin" ||
		last.Reason != fmt.Sprintf("index=1 seq=%d head=%s", kept.Checkpoint.Seq, kept.Checkpoint.Head) {
		t.Errorf("checkpoint entry: %+v", last)
	}

	record(3)
	var v api.AuditVerify
	req, _ := json.Marshal(api.AuditVerifyRequest{Checkpoints: []api.SignedAuditCheckpoint{kept}})
	if code := apiCall(t, a, "POST", "/api/v1/audit/verify", req, &v); code != http.StatusOK ||
		!v.OK || v.Checkpoints != 1 || v.Checkpoint == nil || v.Checkpoint.Index != 1 {
		t.Fatalf("verify against the kept checkpoint: %d %+v", code, v)
	}
	// A forged or foreign checkpoint is the caller's mistake, not the log's.
	forged := kept
	forged.Checkpoint.Seq++
	other := newNode(t, "Other")
	var foreign api.SignedAuditCheckpoint
	apiCall(t, other, "POST", "/api/v1/audit/checkpoint", nil, &foreign)
	for name, tc := range map[string]struct {
		body any
		code int
		want string
	}{
		"forged":  {api.AuditVerifyRequest{Checkpoints: []api.SignedAuditCheckpoint{forged}}, 400, "bad signature"},
		"none":    {api.AuditVerifyRequest{}, 400, "want 1 to 64"},
		"foreign": {api.AuditVerifyRequest{Checkpoints: []api.SignedAuditCheckpoint{foreign}}, 409, "signed by another node"},
	} {
		b, _ := json.Marshal(tc.body)
		code, body := apiRaw(t, a, "POST", "/api/v1/audit/verify", "Bearer "+a.keys.apiToken, b)
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}

	// Stopping signs the last checkpoint: the log is sealed as left.
	record(3)
	head := a.ledger.Head()
	a.stop()
	res, err := VerifyAudit(a.home)
	if err != nil || !res.OK || res.Checkpoints != 2 || res.Checkpoint.Seq != head || res.Entries != head+1 {
		t.Fatalf("verify the stopped node: %+v, %v (head was %d)", res, err, head)
	}

	// Someone with the disk cuts the log back to before the kept
	// checkpoint and rewrites the head record to match.
	st := openStopped(t, a.home)
	keep := kept.Checkpoint.Seq - 1
	var kvs []consent.KV
	var keepHash string
	st.Scan([]byte("audit/"), func(k, v []byte) error {
		var e consent.Entry
		json.Unmarshal(v, &e)
		if e.Seq == keep {
			keepHash = e.Hash
		}
		return nil
	})
	for seq := keep + 1; seq <= head+1; seq++ {
		kvs = append(kvs, consent.KV{Key: fmt.Appendf(nil, "audit/%020d", seq)})
	}
	hv, _ := json.Marshal(map[string]any{"seq": keep, "hash": keepHash})
	for _, kv := range kvs {
		if err := st.DeleteRaw(kv.Key); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Commit([]consent.KV{{Key: []byte("consent/audit-head"), Value: hv}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	res, err = VerifyAudit(a.home)
	if err != nil || res.OK || !strings.Contains(res.Error, fmt.Sprintf("truncated: the log ends at entry %d", keep)) {
		t.Fatalf("verify the truncated log: %+v, %v", res, err)
	}

	// … and deletes the stored checkpoints too: only the kept one tells.
	st = openStopped(t, a.home)
	var ck []consent.KV
	for i := 1; i <= 2; i++ {
		ck = append(ck, consent.KV{Key: fmt.Appendf(nil, "consent/audit-checkpoint/%020d", i)})
	}
	for _, kv := range ck {
		if err := st.DeleteRaw(kv.Key); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if res, err = VerifyAudit(a.home); err != nil || !res.OK {
		t.Fatalf("verify without checkpoints: %+v, %v (undetectable without one kept elsewhere)", res, err)
	}
	res, err = VerifyAudit(a.home, kept)
	if err != nil || res.OK || !strings.Contains(res.Error, "truncated") {
		t.Fatalf("verify against the kept checkpoint: %+v, %v", res, err)
	}
}

// The auditor signs a checkpoint every audit.checkpoint_interval when
// something was written, and nothing on an idle node.
func TestAuditorCheckpointTimer(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	keys, err := crypto.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	l, err := consent.Open(consent.NewMemStore(), keys.Sign, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuditor(l, slog.New(slog.DiscardHandler), clk, 5*time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	index := func() uint64 {
		c, _ := l.LastCheckpoint()
		if c == nil {
			return 0
		}
		return c.Checkpoint.Index
	}
	step := func(d time.Duration) {
		waitFor(t, 5*time.Second, "the auditor's timer", func() bool { return clk.Timers() > 0 })
		clk.Advance(d)
	}
	a.Record(consent.Entry{Action: consent.ActImport})
	for range 4 { // 4 × 15 s: not yet 5 minutes
		step(denyWindow / 4)
	}
	if index() != 0 {
		t.Fatalf("checkpoint before the interval: %d", index())
	}
	for range 17 {
		step(denyWindow / 4)
	}
	waitFor(t, 5*time.Second, "the first checkpoint", func() bool { return index() == 1 })
	for range 25 { // idle: nothing new
		step(denyWindow / 4)
	}
	if index() != 1 {
		t.Fatalf("checkpoint of an idle log: %d", index())
	}
	a.Record(consent.Entry{Action: consent.ActExport})
	for range 25 {
		step(denyWindow / 4)
	}
	waitFor(t, 5*time.Second, "the second checkpoint", func() bool { return index() == 2 })
}

// Fail closed (issue 8): when the audit trail cannot be written (here: a
// disk below the floor every write needs, and no spool), nothing is
// disclosed that it would have recorded: a partner's blocks, an instance
// read through the API, a DICOMweb retrieval. Listing goes on; with the
// spool, reads go on and their entries join the chain later.
func TestAuditFailClosed(t *testing.T) {
	disk := &fakeDisk{}
	disk.free.Store(50 << 30)
	a := newNodeOnDisk(t, "Alpha", disk)
	b := newNode(t, "Bravo")
	link(t, a, b)
	study, _ := importCT(t, a, 81, 1)
	g := grant(t, a, b, study)
	insts, err := a.Instances(study)
	if err != nil || len(insts) == 0 {
		t.Fatal(insts, err)
	}
	sop := insts[0].SOPInstanceUID
	c := studyCIDs(t, a, study)[0]
	auth := "Bearer " + a.keys.apiToken
	read := "/api/v1/studies/" + study + "/instances/" + sop
	wado := "/dicom-web/studies/" + study + "/metadata"

	disk.free.Store(100 << 20) // every write refused, the audit's too
	// … and the spool cannot be written either (its folder is gone).
	spool := a.audit.spool.Load()
	a.audit.spool.Store(&auditSpool{path: filepath.Join(t.TempDir(), "gone", "spool")})
	if _, err := fetchBlock(t, b, a, g.Grant.ID, c); !errors.Is(err, exchange.ErrUnavailable) {
		t.Errorf("a block whose disclosure cannot be audited: %v, want unavailable", err)
	}
	if code, body := apiRaw(t, a, http.MethodGet, read, auth, nil); code != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), "audit trail cannot be written") {
		t.Errorf("an instance read that cannot be audited: %d %.200s", code, body)
	}
	if code, body := apiRaw(t, a, http.MethodGet, wado, auth, nil); code != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), "cannot be recorded in the audit trail") {
		t.Errorf("a DICOMweb retrieval that cannot be audited: %d %.200s", code, body)
	}
	if code, _ := apiRaw(t, a, http.MethodGet, "/api/v1/studies", auth, nil); code != http.StatusOK {
		t.Errorf("listing on a full disk: %d", code)
	}

	// With the spool, the same reads go on while the disk is full, and
	// their entries join the chain once it takes writes again.
	a.audit.spool.Store(spool)
	if code, _ := apiRaw(t, a, http.MethodGet, wado, auth, nil); code != http.StatusOK {
		t.Errorf("a DICOMweb retrieval audited through the spool: %d", code)
	}
	disk.free.Store(50 << 30)
	a.audit.drainSpool()
	if es := findAudit(t, a, consent.Entry{Action: consent.ActInstanceRead, Study: study}); len(es) == 0 ||
		!strings.Contains(es[len(es)-1].Reason, "while the archive took no writes") {
		t.Errorf("the spooled entry is not in the chain: %+v", es)
	}
	if _, err := fetchBlock(t, b, a, g.Grant.ID, c); err != nil {
		t.Errorf("a block once the audit can be written: %v", err)
	}
	if code, _ := apiRaw(t, a, http.MethodGet, read, auth, nil); code != http.StatusOK {
		t.Errorf("an instance read once the audit can be written: %d", code)
	}
	if code, _ := apiRaw(t, a, http.MethodGet, wado, auth, nil); code != http.StatusOK {
		t.Errorf("a DICOMweb retrieval once the audit can be written: %d", code)
	}
	requireAudit(t, a, consent.Entry{Action: consent.ActFetchAllowed, Study: study, GrantID: g.Grant.ID})
}
