package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/dicomio/dicomweb"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
)

// dicomwebBulkMin is the size from which a binary value is left out of
// WADO-RS metadata and served by its BulkDataURI.
const dicomwebBulkMin = 1024

// dicomwebRoom is the node's side of DICOMweb (dicomio/dicomweb): QIDO-RS
// over the query room, WADO-RS over the archive, STOW-RS through the
// ingester, with descriptions of instances kept for metadata requests.
type dicomwebRoom struct {
	query   *queryRoom
	archive *archive
	inbox   *inbox
	ingest  *ingester
	audit   *auditor
	maxPart int64
	cors    []string

	mu    sync.Mutex
	descs map[string]*dicomio.Description // by SOP Instance UID and size
	order []string
}

// maxDescriptions bounds the cache of instance descriptions (a few KiB
// each): enough for the studies a handful of viewers have open.
const maxDescriptions = 20000

func (d *dicomwebRoom) service() *dicomweb.Service {
	return &dicomweb.Service{
		Prefix: api.DICOMwebRoot, Search: d, Retrieve: d, Store: d,
		MaxPart: d.maxPart, BulkMin: dicomwebBulkMin, Extra: []string{"shared"},
		Audit: d.record,
		Error: func(w http.ResponseWriter, r *http.Request, status int, msg string) {
			writeJSON(w, status, api.ErrorBody{Error: msg, Code: dicomwebCode(status)})
		},
	}
}

func dicomwebCode(status int) api.Code {
	switch status {
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusBadRequest:
		return api.CodeBadRequest
	case http.StatusRequestEntityTooLarge:
		return api.CodeTooLarge
	case http.StatusNotAcceptable:
		return api.CodeNotAcceptable
	case http.StatusUnsupportedMediaType:
		return api.CodeUnsupportedMedia
	case http.StatusForbidden:
		return api.CodeForbidden
	case http.StatusConflict:
		return api.CodeConflict
	}
	return api.CodeInternal
}

// handler is DICOMweb behind CORS (answered before authentication, as
// browsers send preflights without credentials), authentication and the
// roles allowed: clinicians and admins; auditors are refused.
func (d *dicomwebRoom) handler(authenticate func(http.Handler) http.Handler) http.Handler {
	svc := d.service().Handler()
	inner := authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := principalOf(r); p.Role != roleAdmin && p.Role != roleClinician {
			writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: "DICOMweb needs the clinician or admin role", Code: api.CodeForbidden})
			return
		}
		svc.ServeHTTP(w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && slices.Contains(d.cors, origin) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "Warning, Content-Location, Content-Type")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Accept, Content-Type, Accept-Encoding")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		inner.ServeHTTP(w, r)
	})
}

// record audits a DICOMweb access: a retrieval or store once per user,
// study and kind within ten minutes (a viewer asks for hundreds of
// frames); searches, like C-FIND, once a minute per user and level,
// naming neither the query's values nor the studies it matched.
//
// An error (the entry could not be written) refuses a search or retrieval.
func (d *dicomwebRoom) record(r *http.Request, ev dicomweb.Event) error {
	e := consent.Entry{Actor: actor(r), Study: ev.Study, Decision: consent.DecisionAllow}
	switch ev.Action {
	case "search":
		e.Action, e.Reason = consent.ActQuery, "dicomweb search, "+ev.Level+" level"
		return d.audit.Once(e, time.Minute)
	case "store":
		e.Action, e.Reason = consent.ActImport, "stow-rs"
	default:
		e.Action, e.Reason = consent.ActInstanceRead, "dicomweb retrieve"
	}
	return d.audit.Once(e, 10*time.Minute)
}

var qidoLevels = map[dicomweb.Level]int{dicomweb.LevelStudy: levelStudy, dicomweb.LevelSeries: levelSeries, dicomweb.LevelInstance: levelImage}
var qidoLevelNames = map[int]string{levelStudy: "STUDY", levelSeries: "SERIES", levelImage: "IMAGE"}

// Search implements dicomweb.Searcher over the query room. Studies
// partners shared and we have not fetched are listed only with
// shared=true (their Instance Availability is NEARLINE).
func (d *dicomwebRoom) Search(ctx context.Context, q *dicomweb.Query) ([]dicomio.Dataset, []string, error) {
	shared := false
	switch v := q.Extra.Get("shared"); v {
	case "", "false":
	case "true":
		shared = true
	default:
		return nil, nil, &dicomweb.QueryError{Param: "shared", Msg: "shared is true or false"}
	}
	lv := qidoLevels[q.Level]
	ident := slices.Clone(q.Identifier)
	if q.IncludeAll {
		for _, k := range queryKeys {
			if k.level <= lv && k.level >= levelPatient && !ident.Has(k.tag) {
				ident = append(ident, dimse.Element{Tag: k.tag, VR: k.vr})
			}
		}
	}
	ident.Set(tagQRLevel, "CS", qidoLevelNames[lv])
	if !shared {
		ident.Set(tagAvailability, "CS", availabilityOnline)
	}
	slices.SortFunc(ident, func(a, b dimse.Element) int { return int(int64(a.Tag) - int64(b.Tag)) })
	pq, err := parseQuery(ident, false)
	if err != nil {
		return nil, nil, &dicomweb.QueryError{Param: "query", Msg: err.Error()}
	}
	pq.reader = readerFrom(ctx)
	rows, err := d.query.Find(pq)
	if err != nil {
		var eq *errQuery
		if errors.As(err, &eq) {
			return nil, nil, &dicomweb.QueryError{Param: "query", Msg: eq.comment}
		}
		return nil, nil, err
	}
	var warnings []string
	if q.Offset > 0 {
		rows = rows[min(q.Offset, len(rows)):]
	}
	if q.Limit > 0 && len(rows) > q.Limit {
		rows = rows[:q.Limit]
	}
	out := make([]dicomio.Dataset, 0, len(rows))
	for _, r := range rows {
		a := pq.answer(r, d.query.aet)
		a = slices.DeleteFunc(a, func(e dimse.Element) bool { return e.Tag == tagQRLevel })
		out = append(out, a)
	}
	if pq.unsupported {
		warnings = append(warnings, "some requested attributes are not held in the index and are returned empty")
	}
	return out, warnings, ctx.Err()
}

// Instances implements dicomweb.Retriever: the instances held here,
// ordered by series number, series, instance number and UID.
func (d *dicomwebRoom) Instances(ctx context.Context, sc dicomweb.Scope) ([]dicomweb.Instance, error) {
	err := d.archive.gate(sc.Study, readerFrom(ctx))
	var list []InstanceInfo
	if err == nil {
		list, err = d.archive.Instances(sc.Study)
	}
	if errors.Is(err, errStudyNotFound) {
		if d.sharedNotFetched(sc.Study) {
			return nil, fmt.Errorf("retrieve: %w: the study is shared by a partner and not fetched here yet (fetch it first)", dicomweb.ErrNotFound)
		}
		return nil, fmt.Errorf("retrieve: %w: no such study here", dicomweb.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var out []InstanceInfo
	for _, in := range list {
		if (sc.Series == "" || in.Series == sc.Series) && (sc.Instance == "" || in.SOPInstanceUID == sc.Instance) {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		what := "series"
		if sc.Instance != "" {
			what = "instance"
		}
		return nil, fmt.Errorf("retrieve: %w: no such %s in the study", dicomweb.ErrNotFound, what)
	}
	sortInstances(out)
	res := make([]dicomweb.Instance, len(out))
	for i, in := range out {
		res[i] = dicomweb.Instance{Study: in.Study, Series: in.Series, SOPInstance: in.SOPInstanceUID,
			SOPClass: in.SOPClassUID, TransferSyntax: in.TransferSyntaxUID, Size: in.Size}
	}
	return res, ctx.Err()
}

func (d *dicomwebRoom) sharedNotFetched(study string) bool {
	list, err := d.inbox.Shared()
	if err != nil {
		return false
	}
	for _, s := range list {
		if s.Study.UID == study && s.State == SharedAvailable {
			return true
		}
	}
	return false
}

// Read implements dicomweb.Retriever: the verified, decrypted bytes.
func (d *dicomwebRoom) Read(ctx context.Context, in dicomweb.Instance) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The service reads only instances Instances listed for this request,
	// which checked the reader (archive.gate) once for the study.
	b, _, err := d.archive.InstanceData(in.Study, in.SOPInstance)
	if errors.Is(err, errStudyNotFound) {
		return nil, fmt.Errorf("retrieve: %w: no such instance here", dicomweb.ErrNotFound)
	}
	return b, err
}

// Describe implements dicomweb.Retriever, keeping descriptions (a stored
// instance never changes under its SOP Instance UID).
func (d *dicomwebRoom) Describe(ctx context.Context, in dicomweb.Instance) (*dicomio.Description, error) {
	key := fmt.Sprintf("%s|%s|%d", in.Study, in.SOPInstance, in.Size)
	d.mu.Lock()
	desc := d.descs[key]
	d.mu.Unlock()
	if desc != nil {
		return desc, nil
	}
	b, err := d.Read(ctx, in)
	if err != nil {
		return nil, err
	}
	if desc, err = dicomio.Describe(b, dicomwebBulkMin); err != nil {
		return nil, fmt.Errorf("describe instance: %w", err)
	}
	d.mu.Lock()
	if d.descs == nil {
		d.descs = map[string]*dicomio.Description{}
	}
	if _, ok := d.descs[key]; !ok {
		d.descs[key] = desc
		d.order = append(d.order, key)
		for len(d.order) > maxDescriptions {
			delete(d.descs, d.order[0])
			d.order = d.order[1:]
		}
	}
	d.mu.Unlock()
	return desc, nil
}

// Store implements dicomweb.Storer through the ingester: success only
// after the synced commit.
func (d *dicomwebRoom) Store(ctx context.Context, r io.Reader, study string) dicomweb.StoreResult {
	var want *identity
	if study != "" {
		want = &identity{Study: study}
	}
	res := d.ingest.IngestAs(ctx, r, want)
	out := dicomweb.StoreResult{Study: res.Study, SOPClass: res.SOPClassUID, SOPInstance: res.SOPInstanceUID, Message: res.Error}
	switch res.Outcome {
	case OutcomeStored:
		out.Stored = true
	case OutcomeDuplicate:
		out.Stored = true
		if res.OtherSyntax {
			out.Warning = dicomweb.WarningCoercion
			out.Message = "already stored in another transfer syntax; that copy is kept"
		}
	case OutcomeConflict:
		out.Failure = dicomweb.FailureDuplicate
		out.Message = "other content is stored under this SOP Instance UID; it is kept and this instance was not stored"
	case OutcomeRejected:
		switch res.Code {
		case "too-large":
			out.Failure = dicomweb.FailureOutOfResources
		case "missing-attribute", "identity-mismatch", "partner-copy":
			out.Failure = dicomweb.FailureDataSetMismatch
		default:
			out.Failure = dicomweb.FailureCannotUnderstand
		}
	default:
		out.Failure = dicomweb.FailureOutOfResources
		if res.Code != "busy" && res.Code != "insufficient-storage" {
			out.Failure = dicomweb.FailureProcessing
		}
	}
	return out
}
