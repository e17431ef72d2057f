package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/auditlog"
	"github.com/pacsnet/pacsnet/consent"
)

// auditAPI serves the local API's audit routes: filtered pages of the log
// and its verification.
type auditAPI struct{ n *Node }

func (h auditAPI) names() namer { return namesOf(h.n) }

func (h auditAPI) auditList(w http.ResponseWriter, r *http.Request) error {
	q, err := h.auditQuery(r)
	if err != nil {
		return err
	}
	match := h.auditFilter(q)
	// It examines at most api.MaxAuditScan entries and says where to go on.
	pos, err := h.startAfter(q)
	if err != nil {
		return err
	}
	head := h.n.ledger.Head()
	out := []api.AuditEntry{}
	names := h.names()
	for examined := 0; len(out) < q.Limit && pos < head && examined < api.MaxAuditScan; {
		es, err := h.n.ledger.Entries(pos, min(consent.MaxEntriesLimit, api.MaxAuditScan-examined))
		if err != nil {
			return auditReadError(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			pos = e.Seq
			examined++
			if match(e) {
				out = append(out, names.audit(e))
				if len(out) == q.Limit {
					break
				}
			}
		}
	}
	if pos < head {
		w.Header().Set(api.HeaderAuditNext, strconv.FormatUint(pos, 10))
	}
	return ok(w, out)
}

// startAfter is the Seq reading starts after: q.After, or the entry before
// the first written since q.Since if that is later (a binary search).
func (h auditAPI) startAfter(q api.AuditQuery) (uint64, error) {
	pos := q.After
	if !q.Since.IsZero() {
		first, err := h.n.ledger.FirstAt(q.Since)
		if err != nil {
			return 0, auditReadError(err)
		}
		pos = max(pos, first-1)
	}
	return pos, nil
}

// auditQuery reads GET /api/v1/audit's query parameters.
func (h auditAPI) auditQuery(r *http.Request) (api.AuditQuery, error) {
	v := r.URL.Query()
	q := api.AuditQuery{Limit: api.MaxAuditLimit, Partner: v.Get("partner"), Study: v.Get("study_uid"), Action: v.Get("action"), Actor: v.Get("actor")}
	var err error
	if x := v.Get("after"); x != "" {
		if q.After, err = strconv.ParseUint(x, 10, 64); err != nil {
			return q, badRequest("after %q: want a sequence number", x)
		}
	}
	if x := v.Get("limit"); x != "" {
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 {
			return q, badRequest("limit %q: want a count", x)
		}
		if n > 0 && n < api.MaxAuditLimit {
			q.Limit = n
		}
	}
	if x := v.Get("since"); x != "" {
		if q.Since, err = time.Parse(time.RFC3339Nano, x); err != nil {
			return q, badRequest("since %q: want a time like 2026-12-01T08:00:00Z", x)
		}
	}
	if x := v.Get("until"); x != "" {
		if q.Until, err = time.Parse(time.RFC3339Nano, x); err != nil {
			return q, badRequest("until %q: want a time like 2026-12-01T18:00:00Z", x)
		}
	}
	if q.Study != "" {
		if err := checkUID("study_uid", q.Study); err != nil {
			return q, err
		}
	}
	if q.Action != "" && !slices.Contains(api.AuditActions, q.Action) {
		return q, badRequest("action %q: want one of %s", q.Action, strings.Join(api.AuditActions, ", "))
	}
	return q, nil
}

// auditFilter matches the entries q selects. A partner is named by peer ID
// or by name: a current partner's, or the name an entry recorded when it
// was written (so a former partner can still be found).
func (h auditAPI) auditFilter(q api.AuditQuery) func(consent.Entry) bool {
	var id peer.ID
	if q.Partner != "" {
		if p, err := h.n.partners.Resolve(q.Partner); err == nil {
			id = p.ID
		} else if pid, err := peer.Decode(q.Partner); err == nil {
			id = pid
		}
	}
	actor := q.Actor
	if actor != "" && h.n.users != nil {
		if u, ok := h.n.users.Get(actor); ok {
			actor = u.ID // a name; IDs are matched as given
		}
	}
	return func(e consent.Entry) bool {
		switch {
		case !q.Since.IsZero() && e.Time.Before(q.Since):
			return false
		case !q.Until.IsZero() && !e.Time.Before(q.Until):
			return false
		case actor != "" && e.Actor != actor:
			return false
		case q.Study != "" && e.Study != q.Study:
			return false
		case q.Action != "" && e.Action != q.Action:
			return false
		case q.Partner != "" && (e.Peer == "" || (e.Peer != id && !strings.EqualFold(e.PeerName, q.Partner))):
			return false
		}
		return true
	}
}

func (h auditAPI) auditVerify(w http.ResponseWriter, r *http.Request) error {
	h.used(r, "verify")
	res, err := verifyAnswer(h.n.ledger.Verify())
	return writeVerify(w, res, err)
}

// used records that the audit log is being verified (PS3.15's Audit Log
// Used), before the verification, which then covers the entry too. It is
// best effort: an auditor must be able to verify a node whose audit
// trail cannot be written.
func (h auditAPI) used(r *http.Request, how string) {
	_ = h.n.audit.Record(consent.Entry{Actor: actor(r), Action: api.ActAuditVerified, Decision: consent.DecisionAllow, Reason: how})
}

func (h auditAPI) auditVerifyAgainst(w http.ResponseWriter, r *http.Request) error {
	var req api.AuditVerifyRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	cps, err := parseCheckpoints(req.Checkpoints)
	if err != nil {
		return err
	}
	h.used(r, fmt.Sprintf("verify against %d checkpoints", len(cps)))
	res, err := verifyAnswer(h.n.ledger.Verify(cps...))
	return writeVerify(w, res, err)
}

func (h auditAPI) auditCheckpoint(w http.ResponseWriter, r *http.Request) error {
	sc, err := h.n.audit.Checkpoint(actor(r))
	if err != nil {
		return err
	}
	return ok(w, apiSignedCheckpoint(sc))
}

func writeVerify(w http.ResponseWriter, res api.AuditVerify, err error) error {
	if err != nil {
		return err
	}
	if !res.OK {
		writeJSON(w, api.CodeConflict.HTTPStatus(), res)
		return nil
	}
	return ok(w, res)
}

// verifyAnswer turns a verification into the API's answer: a corrupt log
// is an answer (OK false), anything else that stopped it an error.
func verifyAnswer(res consent.VerifyResult, err error) (api.AuditVerify, error) {
	switch {
	case errors.Is(err, consent.ErrAuditCorrupt):
		return api.AuditVerify{OK: false, Error: err.Error()}, nil
	case err != nil:
		return api.AuditVerify{}, err
	}
	out := api.AuditVerify{OK: true, Entries: res.Entries, Head: res.Head, Checkpoints: res.Checkpoints}
	if res.Checkpoint != nil {
		c := apiCheckpoint(*res.Checkpoint)
		out.Checkpoint = &c
	}
	return out, nil
}

// parseCheckpoints checks checkpoints a caller brought, as a peer's
// message would be checked: each is re-encoded and parsed strictly.
func parseCheckpoints(in []api.SignedAuditCheckpoint) ([]*consent.SignedCheckpoint, error) {
	if len(in) == 0 || len(in) > api.MaxVerifyCheckpoints {
		return nil, badRequest("checkpoints: want 1 to %d", api.MaxVerifyCheckpoints)
	}
	out := make([]*consent.SignedCheckpoint, 0, len(in))
	for i, c := range in {
		b, err := json.Marshal(c)
		if err != nil {
			return nil, badRequest("checkpoints[%d]: %v", i, err)
		}
		sc, err := consent.ParseCheckpoint(b)
		if err != nil {
			return nil, badRequest("checkpoints[%d]: %v", i, err)
		}
		out = append(out, sc)
	}
	return out, nil
}

func apiCheckpoint(c consent.Checkpoint) api.AuditCheckpoint {
	return api.AuditCheckpoint{Node: c.Node.String(), Facility: c.Facility, Index: c.Index, Seq: c.Seq, Head: c.Head, Time: c.Time}
}

func apiSignedCheckpoint(sc *consent.SignedCheckpoint) api.SignedAuditCheckpoint {
	return api.SignedAuditCheckpoint{Checkpoint: apiCheckpoint(sc.Checkpoint), Sig: sc.Sig}
}

func auditReadError(err error) error {
	if errors.Is(err, consent.ErrAuditCorrupt) {
		return &apiError{api.CodeConflict, err.Error()}
	}
	return err
}

// auditExport streams the entries GET /api/v1/audit would select (all of
// them, not a page) in the format asked for, one per line, and audits the
// export.
func (h auditAPI) auditExport(w http.ResponseWriter, r *http.Request) error {
	q, err := h.auditQuery(r)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = api.AuditFormatJSON
	}
	if !slices.Contains(api.AuditFormats, format) {
		return badRequest("format %q: want one of %s", format, strings.Join(api.AuditFormats, ", "))
	}
	src := auditlog.Source{Facility: h.n.cfg.Name, NodeID: h.n.keys.id.PeerID().String(), AppName: "pacsnet"}
	src.Host, _ = os.Hostname()
	line := func(e consent.Entry) ([]byte, error) {
		switch format {
		case api.AuditFormatDICOM:
			b, err := auditlog.DICOMXML(e, src)
			// One document per line: without its XML declaration.
			if _, rest, ok := bytes.Cut(b, []byte("?>")); ok {
				b = bytes.TrimLeft(rest, "\r\n")
			}
			return b, err
		case api.AuditFormatSyslog:
			return auditlog.Syslog(e, src, auditlog.FormatJSON)
		case api.AuditFormatSyslogDICOM:
			return auditlog.Syslog(e, src, auditlog.FormatDICOM)
		}
		return json.Marshal(e)
	}
	match := h.auditFilter(q)
	pos, err := h.startAfter(q)
	if err != nil {
		return err
	}
	head := h.n.ledger.Head()
	// The export is recorded first: if it cannot be, nothing is exported.
	if err := h.n.audit.Record(consent.Entry{Actor: actor(r), Action: api.ActAuditExported, Decision: consent.DecisionAllow,
		Reason: "format=" + format}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	bw := bufio.NewWriterSize(w, 64<<10)
	defer bw.Flush()
	for pos < head {
		es, err := h.n.ledger.Entries(pos, consent.MaxEntriesLimit)
		if err != nil {
			fmt.Fprintf(bw, "# export stopped at entry %d: %s\n", pos+1, strings.ReplaceAll(err.Error(), "\n", " "))
			return nil
		}
		if len(es) == 0 || es[0].Seq > head {
			break
		}
		for _, e := range es {
			if e.Seq > head {
				break // written after the export began (its own entry first)
			}
			pos = e.Seq
			if !match(e) {
				continue
			}
			b, err := line(e)
			if err != nil {
				fmt.Fprintf(bw, "# entry %d: cannot encode: %s\n", e.Seq, err)
				continue
			}
			bw.Write(b)
			bw.WriteByte('\n')
		}
		if r.Context().Err() != nil {
			return nil
		}
	}
	return nil
}
