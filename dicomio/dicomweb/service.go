package dicomweb

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/internal/uid"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Scope names what a request is about: a study, optionally one of its
// series, optionally one of that series' instances (empty strings are
// "all").
type Scope struct{ Study, Series, Instance string }

// Instance is a stored instance as the service retrieves it.
type Instance struct {
	Study, Series, SOPInstance, SOPClass, TransferSyntax string
	Size                                                 int64
}

// ErrNotFound is what a backend returns (wrapped) for a study, series or
// instance it does not hold.
var ErrNotFound = errors.New("not found")

// Searcher answers QIDO-RS searches. q.Identifier holds the matching and
// return keys (the service has added the standard's required return keys
// and the scope's UIDs); the answer is at most q.Limit data sets (0: no
// limit) after the first q.Offset matches, in an order that does not
// change between requests, with warnings for a Warning header.
type Searcher interface {
	Search(ctx context.Context, q *Query) (rows []dicomio.Dataset, warnings []string, err error)
}

// Retriever reads stored instances for WADO-RS.
type Retriever interface {
	// Instances lists the instances in scope in a stable order (by series,
	// instance number, UID); an unknown study, series or instance is
	// ErrNotFound.
	Instances(ctx context.Context, scope Scope) ([]Instance, error)
	// Read returns an instance's Part-10 bytes. The service calls Read
	// and Describe only with instances Instances returned for the same
	// request, so access checks belong in Instances.
	Read(ctx context.Context, in Instance) ([]byte, error)
	// Describe returns the instance's description (dicomio.Describe with
	// the service's BulkMin), which a backend may cache: metadata
	// requests for a whole study need no pixel data.
	Describe(ctx context.Context, in Instance) (*dicomio.Description, error)
}

// StoreResult is one STOW-RS instance's outcome.
type StoreResult struct {
	Study, SOPClass, SOPInstance string
	Stored                       bool   // committed (or already held: idempotent)
	Warning                      uint16 // a Warning Reason (0008,1196) for a stored instance, 0 for none
	Failure                      uint16 // a Failure Reason (0008,1197) when not stored
	Message                      string // why, without patient data
}

// Failure and warning reasons of STOW-RS (PS3.18 10.5.3, the C-STORE
// statuses of PS3.4 B.2.3).
const (
	FailureProcessing       uint16 = 0x0110
	FailureDuplicate        uint16 = 0x0111 // other content is held under the SOP Instance UID
	FailureSOPClass         uint16 = 0x0122
	FailureOutOfResources   uint16 = 0xA700
	FailureDataSetMismatch  uint16 = 0xA900
	FailureCannotUnderstand uint16 = 0xC000
	WarningCoercion         uint16 = 0xB000
)

// Storer stores one instance read from r through the archive's durable
// ingest; study, when not empty, is the study the request was addressed
// to, and an instance of another study must fail with
// FailureDataSetMismatch before anything is stored.
type Storer interface {
	Store(ctx context.Context, r io.Reader, study string) StoreResult
}

// Event is an access the service reports for the audit trail: one per
// study a request touched.
type Event struct {
	Action    string // "search", "retrieve", "store"
	Study     string // retrieve, store: the study; search: none
	Level     string // search: "study", "series" or "instance"
	Instances int    // instances retrieved or stored; search: matches returned
}

// Service is DICOMweb (PS3.18): QIDO-RS, WADO-RS and STOW-RS under
// Prefix. Authentication is the caller's: Handler serves whatever
// reaches it.
type Service struct {
	Prefix   string // e.g. "/dicom-web"
	Search   Searcher
	Retrieve Retriever
	Store    Storer
	// MaxPart bounds one STOW-RS part (an instance); BulkMin is the size
	// from which binary values are served by BulkDataURI.
	MaxPart int64
	BulkMin int
	// Audit is told of every search and retrieval before the answer
	// starts, and of every store (may be nil). An error refuses the
	// search or retrieval (503): nothing is disclosed that the audit
	// trail could not record.
	Audit func(r *http.Request, ev Event) error
	// Error writes an error response; nil writes text/plain.
	Error func(w http.ResponseWriter, r *http.Request, status int, msg string)
	// Extra are query parameters of this server's own that QIDO accepts
	// (handed to the Searcher in Query.Extra).
	Extra []string
}

// Media types.
const (
	TypeDICOM     = "application/dicom"
	TypeDICOMJSON = "application/dicom+json"
	TypeOctet     = "application/octet-stream"
	typeMultipart = "multipart/related"
)

// Handler routes DICOMweb requests.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	p := s.Prefix
	get := func(path string, h http.HandlerFunc) { mux.HandleFunc("GET "+p+path, h) }
	// QIDO-RS
	get("/studies", s.search(LevelStudy))
	get("/series", s.search(LevelSeries))
	get("/instances", s.search(LevelInstance))
	get("/studies/{study}/series", s.search(LevelSeries))
	get("/studies/{study}/instances", s.search(LevelInstance))
	get("/studies/{study}/series/{series}/instances", s.search(LevelInstance))
	// WADO-RS
	get("/studies/{study}", s.retrieve)
	get("/studies/{study}/series/{series}", s.retrieve)
	get("/studies/{study}/series/{series}/instances/{instance}", s.retrieve)
	get("/studies/{study}/metadata", s.metadata)
	get("/studies/{study}/series/{series}/metadata", s.metadata)
	get("/studies/{study}/series/{series}/instances/{instance}/metadata", s.metadata)
	get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", s.frames)
	get("/studies/{study}/series/{series}/instances/{instance}/rendered", s.rendered)
	get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered", s.rendered)
	get("/studies/{study}/series/{series}/instances/{instance}/bulk/{tag}", s.bulk)
	// STOW-RS
	mux.HandleFunc("POST "+p+"/studies", s.store)
	mux.HandleFunc("POST "+p+"/studies/{study}", s.store)
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, http.StatusNotFound, "no such DICOMweb resource (see docs/conformance.md)")
	})
	return mux
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if s.Error != nil {
		s.Error(w, r, status, msg)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n")
}

// audit reports an access; false means it could not be recorded and the
// request was answered 503 (nothing written yet).
func (s *Service) audit(w http.ResponseWriter, r *http.Request, ev Event) bool {
	if s.Audit != nil && (ev.Study != "" || ev.Action == "search") {
		if err := s.Audit(r, ev); err != nil {
			s.fail(w, r, http.StatusServiceUnavailable, "the access cannot be recorded in the audit trail, so it is refused")
			return false
		}
	}
	return true
}

// scopeOf reads and checks the path's UIDs.
func scopeOf(r *http.Request) (Scope, error) {
	sc := Scope{Study: r.PathValue("study"), Series: r.PathValue("series"), Instance: r.PathValue("instance")}
	for _, p := range []struct{ name, v string }{{"study", sc.Study}, {"series", sc.Series}, {"instance", sc.Instance}} {
		if p.v == "" {
			continue
		}
		if _, err := uid.Check(p.v); err != nil {
			return sc, fmt.Errorf("the %s UID in the path is not a valid UID: %v", p.name, err)
		}
	}
	return sc, nil
}

// base is the absolute URL of the service's root, for Retrieve URLs and
// BulkDataURIs.
func (s *Service) base(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + s.Prefix
}

func (s *Service) url(r *http.Request, sc Scope) string {
	u := s.base(r) + "/studies/" + sc.Study
	if sc.Series != "" {
		u += "/series/" + sc.Series
		if sc.Instance != "" {
			u += "/instances/" + sc.Instance
		}
	}
	return u
}

func warn(w http.ResponseWriter, msg string) {
	w.Header().Add("Warning", `299 pacsnet "`+strings.ReplaceAll(msg, `"`, `'`)+`"`)
}

// gzipped wraps w in gzip when the client accepts it. Only DICOM JSON
// (searches, metadata) is compressed: it shrinks tenfold, while pixel
// data costs far more time to deflate than it saves on a hospital
// network (a 263 MB CT: 56 MB/s gzipped against 550 MB/s plain, one
// core each side); identity is always acceptable (RFC 9110 12.5.3).
func gzipped(w http.ResponseWriter, r *http.Request) (io.Writer, func()) {
	w.Header().Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		return w, func() {}
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	return zw, func() { zw.Close() }
}

func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			if q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q="); ok {
				if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

// abort ends a response whose status line has gone out: the client sees
// a broken transfer, never a short answer that looks whole.
func abort() { panic(http.ErrAbortHandler) }

// The standard's required return attributes (PS3.18 table 10.6.3-3 and
// the attributes viewers list), added to every search at their level.
var requiredKeys = map[Level][]uint32{
	LevelStudy: {0x00080005, 0x00080020, 0x00080030, 0x00080050, 0x00080056, 0x00080061, 0x00080090, 0x00081030,
		0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x0020000D, 0x00200010, 0x00201206, 0x00201208},
	LevelSeries: {0x00080005, 0x00080056, 0x00080060, 0x0008103E, 0x0020000D, 0x0020000E, 0x00200011, 0x00201209},
	LevelInstance: {0x00080005, 0x00080016, 0x00080018, 0x00080056, 0x0020000D, 0x0020000E, 0x00200013,
		0x00280008, 0x00280010, 0x00280011, 0x00280100},
}

// search answers QIDO-RS at one level.
func (s *Service) search(level Level) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sc, err := scopeOf(r)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, err.Error())
			return
		}
		if err := acceptJSON(r.Header.Get("Accept")); err != nil {
			s.fail(w, r, http.StatusNotAcceptable, err.Error())
			return
		}
		q, err := ParseQuery(level, r.URL.RawQuery, s.Extra...)
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, err.Error())
			return
		}
		for _, t := range requiredKeys[level] {
			if !q.Identifier.Has(t) {
				addKey(&q.Identifier, t)
			}
		}
		for _, k := range []struct {
			tag uint32
			v   string
		}{{0x0020000D, sc.Study}, {0x0020000E, sc.Series}} {
			if k.v == "" {
				continue
			}
			if v := q.Identifier.String(k.tag); v != "" && v != k.v {
				s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("the query's (%04X,%04X) differs from the UID in the path", k.tag>>16, k.tag&0xFFFF))
				return
			}
			q.Identifier.Set(k.tag, "UI", k.v)
		}
		rows, warnings, err := s.Search.Search(r.Context(), q)
		if err != nil {
			s.backendError(w, r, err)
			return
		}
		for _, u := range q.Unsupported {
			warnings = append(warnings, "the "+u+" parameter is not supported and was ignored")
		}
		if !s.audit(w, r, Event{Action: "search", Level: level.String(), Instances: len(rows)}) {
			return
		}
		for _, m := range warnings {
			warn(w, m)
		}
		w.Header().Set("Content-Type", TypeDICOMJSON)
		out, done := gzipped(w, r)
		defer done()
		io.WriteString(out, "[")
		for i, row := range rows {
			rs := Scope{Study: row.String(0x0020000D)}
			if level >= LevelSeries {
				rs.Series = row.String(0x0020000E)
			}
			if level == LevelInstance {
				rs.Instance = row.String(0x00080018)
			}
			if rs.Study != "" && (level == LevelStudy || rs.Series != "") && (level != LevelInstance || rs.Instance != "") {
				row.Set(0x00081190, "UR", s.url(r, rs))
			}
			b, err := JSON(row, nil)
			if err != nil {
				abort()
			}
			if i > 0 {
				io.WriteString(out, ",")
			}
			out.Write(b)
		}
		io.WriteString(out, "]")
	}
}

// vrOf is a tag's VR in the standard's dictionary.
func vrOf(t uint32) (string, bool) {
	info, err := tag.Find(tag.Tag{Group: uint16(t >> 16), Element: uint16(t)})
	if err != nil || info.VRs == nil || len(info.VRs) == 0 {
		return "", false
	}
	return info.VRs[0], true
}

// addKey adds an empty return key with its dictionary VR.
func addKey(ds *dicomio.Dataset, t uint32) {
	vr := "UN"
	if v, ok := vrOf(t); ok {
		vr = v
	}
	*ds = append(*ds, dicomio.Element{Tag: t, VR: vr})
	sortDataset(*ds)
}

func sortDataset(ds dicomio.Dataset) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j].Tag < ds[j-1].Tag; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

func (s *Service) backendError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	var qe *QueryError
	if errors.As(err, &qe) {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	s.fail(w, r, http.StatusInternalServerError, "the archive could not answer: "+err.Error())
}

// acceptJSON checks that an Accept header allows the DICOM JSON model.
func acceptJSON(h string) error {
	if strings.TrimSpace(h) == "" {
		return nil
	}
	ranges, err := ParseAccept(h)
	if err != nil {
		return err
	}
	for _, m := range ranges {
		if m.Q == 0 {
			continue
		}
		switch m.Type {
		case TypeDICOMJSON, "application/json", "application/*", "*/*":
			return nil
		}
	}
	return fmt.Errorf("this resource is served as %s only", TypeDICOMJSON)
}

// instances resolves a retrieval's scope.
func (s *Service) instances(w http.ResponseWriter, r *http.Request) (Scope, []Instance, bool) {
	sc, err := scopeOf(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return sc, nil, false
	}
	list, err := s.Retrieve.Instances(r.Context(), sc)
	if err == nil && len(list) == 0 {
		err = fmt.Errorf("retrieve: %w: no such instances here", ErrNotFound)
	}
	if err != nil {
		s.backendError(w, r, err)
		return sc, nil, false
	}
	return sc, list, true
}

// syntaxChoice is the transfer syntax a retrieval may use: "" (any
// stored one) or one UID.
func retrieveSyntax(h string, want string) (ts string, err error) {
	if strings.TrimSpace(h) == "" {
		return "", nil
	}
	ranges, err := ParseAccept(h)
	if err != nil {
		return "", err
	}
	for _, m := range ranges {
		if m.Q == 0 {
			continue
		}
		switch m.Type {
		case "*/*", typeMultipart + "/*":
			return "", nil
		case typeMultipart:
			t := m.Params["type"]
			if t == "" || t == want || t == "*/*" || (want == TypeDICOM && t == "application/*") {
				return normSyntax(m.Params["transfer-syntax"]), nil
			}
		case want:
			if want == TypeDICOM { // a single part only fits one instance; handled by the caller
				return normSyntax(m.Params["transfer-syntax"]), nil
			}
		}
	}
	return "", fmt.Errorf("the Accept header allows no media type this resource is served in (%s; type=%q)", typeMultipart, want)
}

func normSyntax(ts string) string {
	if ts == "*" {
		return ""
	}
	return ts
}

// retrieve serves instances as multipart/related application/dicom in
// their stored transfer syntax.
func (s *Service) retrieve(w http.ResponseWriter, r *http.Request) {
	ts, err := retrieveSyntax(r.Header.Get("Accept"), TypeDICOM)
	if err != nil {
		s.fail(w, r, http.StatusNotAcceptable, err.Error())
		return
	}
	sc, list, ok := s.instances(w, r)
	if !ok {
		return
	}
	if ts != "" {
		var have []string
		for _, in := range list {
			if in.TransferSyntax != ts && !contains(have, in.TransferSyntax) {
				have = append(have, in.TransferSyntax)
			}
		}
		if len(have) > 0 {
			s.fail(w, r, http.StatusNotAcceptable, "transcoding is not supported; the instances are stored in "+strings.Join(have, ", ")+" (ask for transfer-syntax=* or one of these)")
			return
		}
	}
	if !s.audit(w, r, Event{Action: "retrieve", Study: sc.Study, Instances: len(list)}) {
		return
	}
	pw := NewPartWriter(w, TypeDICOM)
	w.Header().Set("Content-Type", pw.ContentType())
	reads := s.readAhead(r.Context(), list)
	for _, in := range list {
		rd, ok := <-reads
		if !ok || rd.err != nil {
			abort()
		}
		b := rd.b
		part, err := pw.Part(TypeDICOM+"; transfer-syntax="+in.TransferSyntax,
			map[string]string{"Content-Location": s.url(r, Scope{in.Study, in.Series, in.SOPInstance})})
		if err != nil {
			abort()
		}
		if _, err := part.Write(b); err != nil {
			abort()
		}
	}
	if err := pw.Close(); err != nil {
		abort()
	}
}

type readResult struct {
	b   []byte
	err error
}

// readAhead reads the instances on two goroutines, up to three ahead of
// the writer, handing them over in order: decrypting and verifying the
// next ones overlaps sending this one, and memory stays bounded by a few
// instances. It stops when ctx ends (the handler returned or the client
// went away).
func (s *Service) readAhead(ctx context.Context, list []Instance) <-chan readResult {
	return ahead(ctx, list, 2, 3, func(in Instance) readResult {
		b, err := s.Retrieve.Read(ctx, in)
		return readResult{b, err}
	})
}

// ahead maps f over list on workers goroutines, at most depth results
// ahead of the consumer, delivering the results in list's order; the
// channel closes after the last one, after the first whose error is set,
// or when ctx ends.
func ahead[T any](ctx context.Context, list []Instance, workers, depth int, f func(Instance) T) <-chan T {
	out := make(chan T)
	slots := make([]chan T, len(list))
	for i := range slots {
		slots[i] = make(chan T, 1)
	}
	next := make(chan int)
	go func() { // hands out indexes, at most depth beyond the one delivered
		defer close(next)
		for i := range list {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	window := make(chan struct{}, depth)
	for range workers {
		go func() {
			for {
				select {
				case window <- struct{}{}:
				case <-ctx.Done():
					return
				}
				i, ok := <-next
				if !ok {
					<-window
					return
				}
				slots[i] <- f(list[i])
			}
		}()
	}
	go func() {
		defer close(out)
		for i := range list {
			var v T
			select {
			case v = <-slots[i]:
			case <-ctx.Done():
				return
			}
			<-window
			select {
			case out <- v:
			case <-ctx.Done():
				return
			}
			if e, ok := any(v).(interface{ failed() bool }); ok && e.failed() {
				return
			}
		}
	}()
	return out
}

func (r readResult) failed() bool { return r.err != nil }
func (r descResult) failed() bool { return r.err != nil }

type descResult struct {
	d   *dicomio.Description
	err error
}

// describeAhead is readAhead for descriptions.
func (s *Service) describeAhead(ctx context.Context, list []Instance) <-chan descResult {
	return ahead(ctx, list, 2, 8, func(in Instance) descResult {
		d, err := s.Retrieve.Describe(ctx, in)
		return descResult{d, err}
	})
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// metadata serves the instances' DICOM JSON without their bulk data.
func (s *Service) metadata(w http.ResponseWriter, r *http.Request) {
	if err := acceptJSON(r.Header.Get("Accept")); err != nil {
		s.fail(w, r, http.StatusNotAcceptable, err.Error())
		return
	}
	sc, list, ok := s.instances(w, r)
	if !ok {
		return
	}
	if !s.audit(w, r, Event{Action: "retrieve", Study: sc.Study, Instances: len(list)}) {
		return
	}
	w.Header().Set("Content-Type", TypeDICOMJSON)
	out, done := gzipped(w, r)
	io.WriteString(out, "[")
	descs := s.describeAhead(r.Context(), list)
	for i, in := range list {
		dr, ok := <-descs
		if !ok || dr.err != nil {
			abort()
		}
		d := dr.d
		iu := s.url(r, Scope{in.Study, in.Series, in.SOPInstance})
		b, err := JSON(d.Dataset, func(tag uint32, size int) string {
			if _, ok := d.Bulk[tag]; ok {
				return fmt.Sprintf("%s/bulk/%08X", iu, tag)
			}
			return ""
		})
		if err != nil {
			abort()
		}
		if i > 0 {
			io.WriteString(out, ",")
		}
		out.Write(b)
	}
	io.WriteString(out, "]")
	done()
}

// one resolves a single instance and its bytes and description.
func (s *Service) one(w http.ResponseWriter, r *http.Request) (Instance, []byte, *dicomio.Description, bool) {
	_, list, ok := s.instances(w, r)
	if !ok {
		return Instance{}, nil, nil, false
	}
	in := list[0]
	b, err := s.Retrieve.Read(r.Context(), in)
	if err != nil {
		s.backendError(w, r, err)
		return in, nil, nil, false
	}
	d, err := dicomio.Describe(b, s.BulkMin)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "read instance: "+err.Error())
		return in, nil, nil, false
	}
	return in, b, d, true
}

// frameList parses "1,3,5" against a frame count.
func frameList(v string, n int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(v, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || i < 1 {
			return nil, fmt.Errorf("frame list %q: frames are numbers from 1", clipText(v, 40))
		}
		if i > n {
			return nil, fmt.Errorf("frame %d: the instance has %d frame(s)", i, n)
		}
		if len(out) >= 4096 {
			return nil, errors.New("frame list: at most 4096 frames per request")
		}
		out = append(out, i)
	}
	return out, nil
}

func clipText(s string, n int) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7E {
			b[i] = '?'
		}
	}
	if len(b) > n {
		b = append(b[:n], "..."...)
	}
	return string(b)
}

// frames serves pixel data frames: native ones as octet streams, encapsulated
// ones as stored (PS3.18 8.7.3.3.2).
func (s *Service) frames(w http.ResponseWriter, r *http.Request) {
	in, b, d, ok := s.one(w, r)
	if !ok {
		return
	}
	if d.Pixel == nil {
		s.fail(w, r, http.StatusNotFound, "the instance has no pixel data")
		return
	}
	if len(d.Pixel.Frames) == 0 {
		s.fail(w, r, http.StatusNotFound, "the instance's pixel data cannot be cut into its frames")
		return
	}
	list, err := frameList(r.PathValue("frames"), len(d.Pixel.Frames))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	media, _ := FrameMediaType(d.TransferSyntax)
	partType, err := frameType(r.Header.Get("Accept"), media, d.TransferSyntax)
	if err != nil {
		s.fail(w, r, http.StatusNotAcceptable, err.Error())
		return
	}
	if !s.audit(w, r, Event{Action: "retrieve", Study: in.Study, Instances: 1}) {
		return
	}
	pw := NewPartWriter(w, partType)
	w.Header().Set("Content-Type", pw.ContentType())
	for _, f := range list {
		part, err := pw.Part(partType+"; transfer-syntax="+d.TransferSyntax, map[string]string{
			"Content-Location": s.url(r, Scope{in.Study, in.Series, in.SOPInstance}) + "/frames/" + strconv.Itoa(f)})
		if err != nil {
			abort()
		}
		if err := writeFrame(part, b, d, f); err != nil {
			abort()
		}
	}
	if err := pw.Close(); err != nil {
		abort()
	}
}

// frameType is the part media type for frames stored as media: the
// stored type itself, or application/octet-stream, as Accept allows.
func frameType(h, media, ts string) (string, error) {
	if strings.TrimSpace(h) == "" {
		return media, nil
	}
	ranges, err := ParseAccept(h)
	if err != nil {
		return "", err
	}
	for _, m := range ranges {
		if m.Q == 0 {
			continue
		}
		if t := m.Params["transfer-syntax"]; t != "" && t != "*" && t != ts {
			continue
		}
		t := m.Type
		if t == typeMultipart {
			t = m.Params["type"]
		}
		switch {
		case t == "" || t == "*/*" || t == media:
			return media, nil
		case t == TypeOctet:
			return TypeOctet, nil
		case strings.HasSuffix(t, "/*") && strings.HasPrefix(media, strings.TrimSuffix(t, "*")):
			return media, nil
		}
	}
	return "", fmt.Errorf("the frames are stored as %s in transfer syntax %s and transcoding is not supported: ask for %s; type=%q (or application/octet-stream) with transfer-syntax=*", media, ts, typeMultipart, media)
}

// writeFrame writes frame f (1-based) as WADO-RS serves it.
func writeFrame(w io.Writer, b []byte, d *dicomio.Description, f int) error {
	v, err := d.FrameData(b, f)
	if err != nil {
		return err
	}
	_, err = w.Write(v)
	return err
}

// rendered serves a frame as image/jpeg or image/png.
func (s *Service) rendered(w http.ResponseWriter, r *http.Request) {
	media, err := renderType(r.Header.Get("Accept"))
	if err != nil {
		s.fail(w, r, http.StatusNotAcceptable, err.Error())
		return
	}
	p, err := renderParams(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	in, b, d, ok := s.one(w, r)
	if !ok {
		return
	}
	if d.Pixel == nil || len(d.Pixel.Frames) == 0 {
		s.fail(w, r, http.StatusNotAcceptable, "the instance has no pixel data to render")
		return
	}
	frame := 1
	if v := r.PathValue("frames"); v != "" {
		list, err := frameList(v, len(d.Pixel.Frames))
		if err != nil {
			s.fail(w, r, http.StatusBadRequest, err.Error())
			return
		}
		if len(list) != 1 {
			s.fail(w, r, http.StatusBadRequest, "rendered frames: name one frame")
			return
		}
		frame = list[0]
	}
	img, err := Render(d, b, frame, media, p)
	if errors.Is(err, ErrCannotRender) {
		s.fail(w, r, http.StatusNotAcceptable, err.Error())
		return
	}
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "render: "+err.Error())
		return
	}
	if !s.audit(w, r, Event{Action: "retrieve", Study: in.Study, Instances: 1}) {
		return
	}
	w.Header().Set("Content-Type", media)
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	w.Write(img)
}

func renderType(h string) (string, error) {
	if strings.TrimSpace(h) == "" {
		return "image/jpeg", nil
	}
	ranges, err := ParseAccept(h)
	if err != nil {
		return "", err
	}
	for _, m := range ranges {
		if m.Q == 0 {
			continue
		}
		switch m.Type {
		case "image/jpeg", "image/png":
			return m.Type, nil
		case "image/*", "*/*":
			return "image/jpeg", nil
		}
	}
	return "", errors.New("rendered images are served as image/jpeg or image/png")
}

// renderParams reads window=center,width[,function], viewport=vw,vh and
// quality (PS3.18 8.3.5.1).
func renderParams(r *http.Request) (RenderParams, error) {
	var p RenderParams
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "window", "viewport", "quality", "annotation", "charset":
		default:
			return p, fmt.Errorf("rendered: unknown parameter %q", clipText(k, 40))
		}
	}
	if v := q.Get("window"); v != "" {
		parts := strings.Split(v, ",")
		if len(parts) < 2 || len(parts) > 3 {
			return p, errors.New("window: give center,width[,function]")
		}
		c, err1 := strconv.ParseFloat(parts[0], 64)
		wd, err2 := strconv.ParseFloat(parts[1], 64)
		if err1 != nil || err2 != nil || wd < 1 {
			return p, errors.New("window: center and width must be numbers, width at least 1")
		}
		fn := "LINEAR"
		if len(parts) == 3 {
			fn = strings.ToUpper(parts[2])
			if fn != "LINEAR" && fn != "LINEAR_EXACT" && fn != "SIGMOID" {
				return p, errors.New("window: the function is linear, linear_exact or sigmoid")
			}
		}
		p.Window = &Window{Center: c, Width: wd, Function: fn}
	}
	if v := q.Get("viewport"); v != "" {
		parts := strings.Split(v, ",")
		if len(parts) != 2 && len(parts) != 6 {
			return p, errors.New("viewport: give vw,vh")
		}
		vw, err1 := strconv.Atoi(parts[0])
		vh, err2 := strconv.Atoi(parts[1])
		if err1 != nil || err2 != nil || vw < 1 || vh < 1 || vw > 8192 || vh > 8192 {
			return p, errors.New("viewport: vw and vh are whole numbers from 1 to 8192")
		}
		p.ViewportW, p.ViewportH = vw, vh
	}
	if v := q.Get("quality"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, errors.New("quality: a whole number from 1 to 100")
		}
		p.Quality = n
	}
	return p, nil
}

// bulk serves one bulk data value.
func (s *Service) bulk(w http.ResponseWriter, r *http.Request) {
	t, err := strconv.ParseUint(r.PathValue("tag"), 16, 32)
	if err != nil || len(r.PathValue("tag")) != 8 {
		s.fail(w, r, http.StatusBadRequest, "bulk data: the tag is eight hex digits")
		return
	}
	in, b, d, ok := s.one(w, r)
	if !ok {
		return
	}
	if _, ok := d.Bulk[uint32(t)]; !ok {
		s.fail(w, r, http.StatusNotFound, "bulk data: the instance has no bulk value with this tag")
		return
	}
	v, err := d.BulkValue(b, uint32(t))
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "bulk data: "+err.Error())
		return
	}
	single := false
	if h := r.Header.Get("Accept"); strings.TrimSpace(h) != "" {
		ranges, err := ParseAccept(h)
		if err != nil {
			s.fail(w, r, http.StatusNotAcceptable, err.Error())
			return
		}
		found := false
		for _, m := range ranges {
			if m.Q == 0 {
				continue
			}
			if m.Type == TypeOctet {
				single, found = true, true
				break
			}
			if m.Type == "*/*" || (m.Type == typeMultipart && (m.Params["type"] == "" || m.Params["type"] == TypeOctet)) {
				found = true
				break
			}
		}
		if !found {
			s.fail(w, r, http.StatusNotAcceptable, "bulk data is served as application/octet-stream, alone or in multipart/related")
			return
		}
	}
	if !s.audit(w, r, Event{Action: "retrieve", Study: in.Study, Instances: 1}) {
		return
	}
	if single {
		w.Header().Set("Content-Type", TypeOctet)
		w.Write(v)
	} else {
		pw := NewPartWriter(w, TypeOctet)
		w.Header().Set("Content-Type", pw.ContentType())
		part, err := pw.Part(TypeOctet, nil)
		if err == nil {
			_, err = part.Write(v)
		}
		if err == nil {
			err = pw.Close()
		}
		if err != nil {
			abort()
		}
	}
}

// store is STOW-RS: each application/dicom part goes through the
// archive's durable ingest; the answer lists what was stored and what
// failed (PS3.18 10.5).
func (s *Service) store(w http.ResponseWriter, r *http.Request) {
	sc, err := scopeOf(r)
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if err := acceptJSON(r.Header.Get("Accept")); err != nil {
		s.fail(w, r, http.StatusNotAcceptable, err.Error())
		return
	}
	pr, err := NewPartReader(r.Header.Get("Content-Type"), r.Body, TypeDICOM, s.MaxPart)
	if err != nil {
		s.fail(w, r, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	var stored, failed []dicomio.Dataset
	studies := map[string]int{}
	for n := 0; ; n++ {
		ctype, part, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if n == 0 && len(stored) == 0 && len(failed) == 0 {
				status := http.StatusBadRequest
				if errors.Is(err, ErrPartTooLarge) {
					status = http.StatusRequestEntityTooLarge
				}
				s.fail(w, r, status, "store: "+err.Error())
				return
			}
			failed = append(failed, failItem("", "", FailureCannotUnderstand))
			warn(w, "store: the request body ended badly after "+strconv.Itoa(n)+" part(s): "+err.Error())
			break
		}
		if mt, _, _ := strings.Cut(ctype, ";"); strings.TrimSpace(strings.ToLower(mt)) != TypeDICOM {
			io.Copy(io.Discard, part)
			failed = append(failed, failItem("", "", FailureSOPClass))
			warn(w, "store: part "+strconv.Itoa(n+1)+" is not application/dicom and was not stored")
			continue
		}
		res := s.Store.Store(r.Context(), part, sc.Study)
		if _, err := io.Copy(io.Discard, part); err != nil && errors.Is(err, ErrPartTooLarge) && res.Stored {
			res = StoreResult{SOPClass: res.SOPClass, SOPInstance: res.SOPInstance, Failure: FailureOutOfResources}
		}
		if !res.Stored {
			failed = append(failed, failItem(res.SOPClass, res.SOPInstance, res.Failure))
			if res.Message != "" {
				warn(w, "store: part "+strconv.Itoa(n+1)+": "+clipText(res.Message, 200))
			}
			continue
		}
		studies[res.Study]++
		var it dicomio.Dataset
		it.Set(0x00081150, "UI", res.SOPClass)
		it.Set(0x00081155, "UI", res.SOPInstance)
		if res.Warning != 0 {
			it.SetBytes(0x00081196, "US", []byte{byte(res.Warning), byte(res.Warning >> 8)})
		}
		stored = append(stored, it)
	}
	var resp dicomio.Dataset
	if sc.Study != "" {
		resp.Set(0x00081190, "UR", s.base(r)+"/studies/"+sc.Study)
	}
	if len(failed) > 0 {
		resp.SetItems(0x00081198, failed)
	}
	if len(stored) > 0 {
		resp.SetItems(0x00081199, stored)
	}
	status := http.StatusOK
	switch {
	case len(stored) == 0:
		status = http.StatusConflict
	case len(failed) > 0:
		status = http.StatusAccepted
	}
	b, err := JSON(resp, nil)
	if err != nil {
		s.fail(w, r, http.StatusInternalServerError, "store: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", TypeDICOMJSON)
	w.WriteHeader(status)
	w.Write(b)
	// The instances are stored: a store is recorded after the fact, and
	// an audit failure does not undo it.
	if s.Audit != nil {
		for st, n := range studies {
			_ = s.Audit(r, Event{Action: "store", Study: st, Instances: n})
		}
	}
}

func failItem(class, inst string, reason uint16) dicomio.Dataset {
	var it dicomio.Dataset
	if class != "" {
		it.Set(0x00081150, "UI", class)
	}
	if inst != "" {
		it.Set(0x00081155, "UI", inst)
	}
	if reason == 0 {
		reason = FailureProcessing
	}
	it.SetBytes(0x00081197, "US", []byte{byte(reason), byte(reason >> 8)})
	return it
}
