package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
)

// APIPrefix is where the JSON admin API lives; docs/architecture.md lists
// its endpoints.
const APIPrefix = "/api/v1"

const maxJSONBody = 1 << 20

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
}

// Status is GET /api/v1/status.
type Status struct {
	Name     string   `json:"name"`
	AETitle  string   `json:"ae_title"`
	PeerID   string   `json:"peer_id"`
	P2P      []string `json:"p2p"`
	HTTP     string   `json:"http"`
	Partners int      `json:"partners"`
	Outbox   int      `json:"outbox"`
}

func (n *Node) apiHandler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, f func(w http.ResponseWriter, r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			v, err := f(w, r)
			if err != nil {
				writeJSON(w, httpStatus(err), apiError{Error: err.Error()})
				return
			}
			if v != nil {
				writeJSON(w, http.StatusOK, v)
			}
		})
	}
	h("GET /api/v1/status", func(w http.ResponseWriter, r *http.Request) (any, error) {
		items, err := n.outbox.pending()
		return Status{Name: n.cfg.Name, AETitle: n.cfg.AETitle, PeerID: n.host.ID().String(), P2P: n.P2PAddrs(), HTTP: n.HTTPAddr(), Partners: len(n.partners.list()), Outbox: len(items)}, err
	})
	h("GET /api/v1/invite", func(w http.ResponseWriter, r *http.Request) (any, error) {
		inv, err := n.Invite()
		return map[string]string{"invite": inv}, err
	})
	h("GET /api/v1/peers", func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nonNil(n.Peers()), nil
	})
	h("POST /api/v1/peers", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req struct {
			Invite string `json:"invite"`
		}
		if err := readJSON(w, r, &req); err != nil {
			return nil, err
		}
		return n.AddPeer(req.Invite, actor(r))
	})
	h("DELETE /api/v1/peers/{id}", func(w http.ResponseWriter, r *http.Request) (any, error) {
		return n.RemovePeer(r.PathValue("id"), actor(r))
	})
	h("POST /api/v1/instances", func(w http.ResponseWriter, r *http.Request) (any, error) {
		body := http.MaxBytesReader(w, r.Body, n.cfg.Archive.MaxInstanceSize)
		data, err := io.ReadAll(body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeJSON(w, http.StatusRequestEntityTooLarge, ImportResult{Outcome: OutcomeRejected, Code: "too-large", Error: fmt.Sprintf("instance larger than archive.max_instance_size (%d bytes)", n.cfg.Archive.MaxInstanceSize)})
				return nil, nil
			}
			return nil, badRequest("read body: %v", err)
		}
		res := n.Import(r.Context(), data)
		code := http.StatusOK
		switch res.Outcome {
		case OutcomeRejected:
			code = http.StatusUnprocessableEntity
			if res.Code == "too-large" {
				code = http.StatusRequestEntityTooLarge
			}
		case OutcomeConflict:
			code = http.StatusConflict
		case OutcomeFailed:
			code = http.StatusInternalServerError
			n.log.Error("import failed", "err", res.Error)
		}
		writeJSON(w, code, res)
		return nil, nil
	})
	h("GET /api/v1/studies", func(w http.ResponseWriter, r *http.Request) (any, error) {
		s, err := n.Studies()
		return nonNil(s), err
	})
	h("GET /api/v1/studies/{uid}/instances", func(w http.ResponseWriter, r *http.Request) (any, error) {
		return n.Instances(r.PathValue("uid"))
	})
	// Export is three steps: the list (refused for a partly fetched study
	// unless ?partial=1), the instance reads (each audited, deduplicated
	// per study and user), and the outcome the exporter reports.
	h("POST /api/v1/studies/{uid}/export", func(w http.ResponseWriter, r *http.Request) (any, error) {
		uid := r.PathValue("uid")
		sr, ok, err := n.study(uid)
		if err != nil {
			return nil, err
		}
		if !ok || sr.Instances == 0 {
			return nil, errStudyNotFound
		}
		if !sr.complete() && r.URL.Query().Get("partial") != "1" {
			return nil, &httpErr{http.StatusConflict, fmt.Sprintf("%v: %d of %d instances are held; fetch it again to complete it, or export the part with --allow-partial", errIncomplete, sr.Instances, sr.Expected)}
		}
		return n.instances(uid)
	})
	h("POST /api/v1/studies/{uid}/export/done", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req struct {
			Written int    `json:"written"`
			Failed  string `json:"failed"` // a short reason, no patient data
		}
		if err := readJSON(w, r, &req); err != nil {
			return nil, err
		}
		e := consent.Entry{Actor: actor(r), Action: consent.ActExport, Study: r.PathValue("uid"), Decision: "allow",
			Reason: strconv.Itoa(req.Written) + " instances written"}
		if req.Failed != "" {
			e.Reason += "; failed: " + req.Failed
		}
		n.audit(e)
		return map[string]bool{"ok": true}, nil
	})
	h("GET /api/v1/studies/{uid}/instances/{sop}", func(w http.ResponseWriter, r *http.Request) (any, error) {
		data, rec, err := n.InstanceData(r.PathValue("uid"), r.PathValue("sop"))
		if err != nil {
			return nil, err
		}
		n.auditOnce(consent.Entry{Actor: actor(r), Action: consent.ActInstanceRead, Study: rec.Study, Decision: "allow", Reason: "instance data read through the API"}, 10*time.Minute)
		w.Header().Set("Content-Type", "application/dicom")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("X-Pacsnet-Sha256", rec.Digest)
		w.Write(data)
		return nil, nil
	})
	h("GET /api/v1/grants", func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nonNil(n.ledger.Grants()), nil
	})
	h("POST /api/v1/grants", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req struct {
			To      string `json:"to"`
			Study   string `json:"study"`
			Expires string `json:"expires"`
			Purpose string `json:"purpose"`
			User    string `json:"user"`
		}
		if err := readJSON(w, r, &req); err != nil {
			return nil, err
		}
		gr := GrantRequest{To: req.To, Study: req.Study, Purpose: req.Purpose, User: req.User, Actor: actor(r)}
		if req.Expires != "" {
			d, err := time.ParseDuration(req.Expires)
			if err != nil || d <= 0 {
				return nil, badRequest("expires %q: want a positive duration such as 72h", req.Expires)
			}
			gr.Expires = d
		}
		others := n.LiveGrants(gr.To, gr.Study)
		g, err := n.Grant(r.Context(), gr)
		if err == nil && others > 0 {
			w.Header().Set("X-Pacsnet-Notice", fmt.Sprintf("notice: the partner already holds %d other live grant(s) for this study; revoke all of them to end its access", others))
		}
		return g, err
	})
	h("POST /api/v1/grants/{id}/revoke", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req struct {
			Reason string `json:"reason"`
		}
		if r.ContentLength != 0 {
			if err := readJSON(w, r, &req); err != nil {
				return nil, err
			}
		}
		return n.Revoke(r.PathValue("id"), req.Reason, actor(r))
	})
	h("GET /api/v1/shared", func(w http.ResponseWriter, r *http.Request) (any, error) {
		s, err := n.Shared()
		return nonNil(s), err
	})
	h("POST /api/v1/fetches", func(w http.ResponseWriter, r *http.Request) (any, error) {
		var req FetchRequest
		if err := readJSON(w, r, &req); err != nil {
			return nil, err
		}
		req.Actor = actor(r)
		return n.StartFetch(r.Context(), req)
	})
	h("GET /api/v1/fetches/{id}", func(w http.ResponseWriter, r *http.Request) (any, error) {
		st, ok := n.FetchStatus(r.PathValue("id"))
		if !ok {
			return nil, notFound("no fetch with that id")
		}
		return st, nil
	})
	h("GET /api/v1/outbox", func(w http.ResponseWriter, r *http.Request) (any, error) {
		items, err := n.outbox.pending()
		out := []OutboxItem{}
		for _, it := range items {
			out = append(out, OutboxItem{Seq: it.Seq, Peer: it.Peer, Kind: it.Kind, Study: it.Study, Attempts: it.Attempts, Next: it.Next, LastErr: it.LastErr})
		}
		return out, err
	})
	h("GET /api/v1/audit", func(w http.ResponseWriter, r *http.Request) (any, error) {
		after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit")) // the ledger caps it at consent.MaxEntriesLimit
		e, err := n.ledger.Entries(after, limit)
		return nonNil(e), err
	})
	h("GET /api/v1/audit/verify", func(w http.ResponseWriter, r *http.Request) (any, error) {
		res, err := n.ledger.Verify()
		if err != nil {
			writeJSON(w, http.StatusConflict, map[string]any{"ok": false, "error": err.Error()})
			return nil, nil
		}
		return map[string]any{"ok": true, "entries": res.Entries, "head": res.Head}, nil
	})
	return n.authenticate(mux)
}

// authenticate requires the admin API token on every request.
func (n *Node) authenticate(next http.Handler) http.Handler {
	want := []byte("Bearer " + n.keys.apiToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeJSON(w, http.StatusUnauthorized, apiError{Error: "missing or wrong API token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// actor names the local user behind a request. The single admin token is
// the only user until users and roles exist.
func actor(*http.Request) string { return "admin" }

type httpErr struct {
	code int
	msg  string
}

func (e *httpErr) Error() string { return e.msg }

func badRequest(f string, a ...any) error {
	return &httpErr{http.StatusBadRequest, fmt.Sprintf(f, a...)}
}
func notFound(f string, a ...any) error { return &httpErr{http.StatusNotFound, fmt.Sprintf(f, a...)} }

func httpStatus(err error) int {
	var he *httpErr
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.Is(err, errStudyNotFound), errors.Is(err, ErrNotShared):
		return http.StatusNotFound
	case errors.Is(err, ErrBadInvite), errors.Is(err, consent.ErrInvalidRequest):
		return http.StatusBadRequest
	case errors.Is(err, exchange.ErrDenied):
		return http.StatusForbidden
	case errors.Is(err, exchange.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Run serves until ctx is done: it starts the API and the outbox, writes
// HOME/run/api.json for the CLI, logs one line with its addresses, and on
// cancellation stops everything and removes the run file.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Start(); err != nil {
		return err
	}
	if err := n.writeRunInfo(); err != nil {
		return fmt.Errorf("write run info: %w", err)
	}
	n.log.Info("serving", "name", n.cfg.Name, "peer", n.host.ID().String(), "http", "http://"+n.HTTPAddr(),
		"p2p", strings.Join(n.P2PAddrs(), ","), "dicom", n.cfg.DICOMAddr+" (not enabled in this build)")
	<-ctx.Done()
	os.Remove(filepath.Join(n.home, runDir, apiInfoFile))
	return nil
}
