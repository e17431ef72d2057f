package node

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/web"

	"github.com/pacsnet/pacsnet/internal/uid"
)

const maxJSONBody = 1 << 20

// apiServer serves the local HTTP API (api.Routes): one handler per
// route, each turning a request into a call on one of the node's rooms and
// its answer into the api package's shapes.
type apiServer struct {
	n *Node
}

func (n *Node) apiServer() *apiServer { return &apiServer{n: n} }

// handlerFunc serves one route. It writes its own answer and returns nil,
// or returns an error that errorAnswer turns into an api.ErrorBody.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// routes maps every api.Routes name to its handler; a test checks that
// both lists are the same.
func (s *apiServer) routes() map[string]handlerFunc {
	return map[string]handlerFunc{
		"Status":             s.status,
		"Invite":             s.invite,
		"Partners":           s.partnersList,
		"AddPartner":         s.addPartner,
		"RemovePartner":      s.removePartner,
		"ImportFile":         s.importFile,
		"Studies":            s.studies,
		"Instances":          s.instances,
		"InstanceData":       s.instanceData,
		"Export":             s.export,
		"Grants":             s.grants,
		"Grant":              s.grant,
		"Revoke":             s.revoke,
		"Shared":             s.shared,
		"StartFetch":         s.startFetch,
		"Fetch":              s.fetch,
		"Outbox":             s.outboxList,
		"Audit":              auditAPI{s.n}.auditList,
		"AuditVerify":        auditAPI{s.n}.auditVerify,
		"AuditExport":        auditAPI{s.n}.auditExport,
		"AuditVerifyAgainst": auditAPI{s.n}.auditVerifyAgainst,
		"AuditCheckpoint":    auditAPI{s.n}.auditCheckpoint,
		"AEs":                dicomAPI{s.n}.aesList,
		"AddAE":              dicomAPI{s.n}.addAE,
		"RemoveAE":           dicomAPI{s.n}.removeAE,
		"EchoAE":             dicomAPI{s.n}.echoAE,
		"StartSend":          dicomAPI{s.n}.startSend,
		"Send":               dicomAPI{s.n}.send,
		"Users":              usersAPI{s.n}.list,
		"AddUser":            usersAPI{s.n}.add,
		"DisableUser":        usersAPI{s.n}.disable,
		"SetPassword":        usersAPI{s.n}.setPassword,
		"SetRole":            usersAPI{s.n}.setRole,
		"Tokens":             usersAPI{s.n}.tokens,
		"AddToken":           usersAPI{s.n}.addToken,
		"RevokeToken":        usersAPI{s.n}.revokeToken,
		"Login":              usersAPI{s.n}.login,
		"Logout":             usersAPI{s.n}.logout,
		"SendRequest":        requestsAPI{s.n}.send,
		"Search":             requestsAPI{s.n}.search,
		"Requests":           requestsAPI{s.n}.outgoing,
		"IncomingRequests":   requestsAPI{s.n}.incoming,
		"ApproveRequest":     requestsAPI{s.n}.approve,
		"DenyRequest":        requestsAPI{s.n}.deny,
		"ReviewRequest":      requestsAPI{s.n}.review,
		"EraseRequestNote":   requestsAPI{s.n}.eraseNote,
		"Me":                 webAPI{s.n}.me,
		"Worklist":           webAPI{s.n}.worklist,
		"FetchEvents":        webAPI{s.n}.fetchEvents,
		"Download":           webAPI{s.n}.download,
		"Fetches":            webAPI{s.n}.fetchesList,
		"Sends":              webAPI{s.n}.sendsList,
	}
}

func (s *apiServer) handler() http.Handler {
	mux := http.NewServeMux()
	paths := http.NewServeMux() // the routes' paths without their methods: 404 or 405
	seen := map[string]bool{}
	hs := s.routes()
	for _, rt := range api.Routes {
		if !seen[rt.Path] {
			seen[rt.Path] = true
			paths.HandleFunc(rt.Path, func(http.ResponseWriter, *http.Request) {})
		}
		h, ok := hs[rt.Name]
		if !ok {
			panic("node: no handler for API route " + rt.Name)
		}
		mux.HandleFunc(rt.Pattern(), func(w http.ResponseWriter, r *http.Request) {
			if err := authorizeRole(rt, principalOf(r)); err != nil {
				s.errorAnswer(w, err)
				return
			}
			if err := checkUIDParams(r); err != nil {
				s.errorAnswer(w, err)
				return
			}
			if err := h(w, r); err != nil {
				s.errorAnswer(w, err)
			}
		})
	}
	// Anything else gets the API's error shape, not the mux's plain text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); pattern != "" {
			var allow []string
			for _, rt := range api.Routes {
				if rt.Path == pattern {
					allow = append(allow, rt.Method)
				}
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, api.ErrorBody{Error: r.Method + " is not allowed here: use " + strings.Join(allow, " or "), Code: api.CodeMethod})
			return
		}
		writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: "no such API route (see docs/api.md)", Code: api.CodeNotFound})
	})
	root := http.NewServeMux()
	if s.n != nil && s.n.dicomweb != nil {
		root.Handle(api.DICOMwebRoot+"/", s.n.dicomweb.handler(s.authenticate))
	}
	if s.n != nil && s.n.web != nil {
		s.n.web.Register(root)
	}
	root.Handle("/", s.authenticate(mux))
	return root
}

// authenticate requires a bearer credential on every request but the
// public ones (login): the node's admin token (the admin role, for the
// CLI on the node's machine), a user's API token or a session token
// (users.go). The request carries the principal on to the handlers.
func (s *apiServer) authenticate(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.n.keys.apiToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if publicRoute(r) {
			next.ServeHTTP(w, r)
			return
		}
		got := r.Header.Get("Authorization")
		var p principal
		ok := subtle.ConstantTimeCompare([]byte(got), want) == 1
		if ok {
			p = principal{User: api.ActorAdmin, Name: api.ActorAdmin, Role: roleAdmin}
		} else if secret, found := strings.CutPrefix(got, "Bearer "); found && secret != "" && s.n.users != nil {
			p, ok = s.n.users.Authenticate(secret)
		} else if secret, found := sessionCookie(r); found && s.n.users != nil {
			// The web app's session cookie (httpweb.go): a change must
			// also carry the session's CSRF value, which a page of
			// another origin cannot know.
			if p, ok = s.n.users.Authenticate(secret); ok && !safeMethod(r.Method) && !web.CSRFValid(secret, r.Header.Get(api.HeaderCSRF)) {
				writeJSON(w, http.StatusForbidden, api.ErrorBody{Error: "missing or wrong " + api.HeaderCSRF + " header (reload the page)", Code: api.CodeForbidden})
				return
			}
		}
		if !ok {
			writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "missing or wrong API token (or it expired, was revoked, or its user is disabled)", Code: api.CodeUnauthorized})
			return
		}
		markAuthenticated(r) // its connection leaves the pool that floods are held to
		next.ServeHTTP(w, withPrincipal(r, p))
	})
}

// Roles a local user can have (issue 8): admin manages partners, grants,
// users and the audit; clinician searches, fetches, views and sends;
// auditor reads and verifies the audit trail only.
const (
	roleAdmin     = "admin"
	roleClinician = "clinician"
	roleAuditor   = "auditor"
)

// principal is who is behind an authenticated request: a unique user ID
// and the role it acts in.
// principal is who an authenticated request acts for: the user's unique
// ID (the audit's actor), name and role. A grant may name a user at this
// facility by either (the holder's admin knows names; access requests
// carry IDs).
type principal struct{ User, Name, Role string }

// principalOf names the local user behind an authenticated request (set
// by authenticate; the zero principal, which no route admits, otherwise).
func principalOf(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// actor names the local user behind a request, for the audit trail.
func actor(r *http.Request) string { return principalOf(r).User }

// apiError is an error that says its own api.Code.
type apiError struct {
	code api.Code
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(f string, a ...any) error {
	return &apiError{api.CodeBadRequest, fmt.Sprintf(f, a...)}
}

// errorCode is the one table from the rooms' errors to API error codes.
func errorCode(err error) api.Code {
	var ae *apiError
	var bre *badRequestError
	var ee *exportError
	switch {
	case errors.As(err, &ae):
		return ae.code
	case errors.Is(err, errStudyNotFound), errors.Is(err, ErrNotShared), errors.Is(err, consent.ErrNoGrant):
		return api.CodeNotFound
	case errors.As(err, &ee) && ee.conflict:
		return api.CodeConflict
	case errors.Is(err, wire.ErrBadInvite), errors.Is(err, consent.ErrInvalidRequest), errors.As(err, &bre), errors.As(err, &ee):
		return api.CodeBadRequest
	case errors.Is(err, errIncomplete), errors.As(err, new(*otherOriginError)):
		return api.CodeConflict
	case errors.As(err, new(*unavailableError)):
		return api.CodeUnavailable
	case errors.Is(err, exchange.ErrDenied):
		return api.CodeForbidden
	case errors.Is(err, exchange.ErrNotFound):
		return api.CodeNotFound
	case errors.As(err, new(*diskFullError)):
		return api.CodeInsufficientStorage
	case errors.Is(err, errUserExists):
		return api.CodeConflict
	case errors.Is(err, errNoUser), errors.Is(err, errNoToken):
		return api.CodeNotFound
	case errors.Is(err, errLoginFailed):
		return api.CodeUnauthorized
	case errors.As(err, new(*lockedError)):
		return api.CodeTooManyRequests
	}
	return api.CodeInternal
}

func (s *apiServer) errorAnswer(w http.ResponseWriter, err error) {
	code := errorCode(err)
	if le := (*lockedError)(nil); errors.As(err, &le) {
		w.Header().Set("Retry-After", strconv.Itoa(int(le.wait.Seconds()+0.999)))
	}
	if code == api.CodeInternal {
		s.n.log.Error("api", "err", err)
	}
	writeJSON(w, code.HTTPStatus(), api.ErrorBody{Error: err.Error(), Code: code})
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
	w.Header().Set("Content-Type", api.ContentTypeJSON)
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func ok(w http.ResponseWriter, v any) error {
	writeJSON(w, http.StatusOK, v)
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ---- handlers, in the order of api.Routes

func (s *apiServer) status(w http.ResponseWriter, r *http.Request) error {
	st, err := s.statusReport() // status.go
	if err != nil {
		return err
	}
	return ok(w, st)
}

func (s *apiServer) invite(w http.ResponseWriter, r *http.Request) error {
	inv, err := s.n.partners.Invite()
	if err != nil {
		return err
	}
	out := api.Invite{Invite: inv}
	if s.n.onlyLoopbackP2P() {
		out.Notice = "notice: this invite names only loopback addresses: a partner on another machine cannot reach this node; set p2p_addrs (or serve --p2p) to a routable address first"
	}
	return ok(w, out)
}

func (s *apiServer) partnersList(w http.ResponseWriter, r *http.Request) error {
	out := []api.Partner{}
	for _, p := range s.n.partners.List() {
		ap := apiPartner(p)
		ap.Online, ap.LastSeen = s.n.partners.Seen(p.ID)
		out = append(out, ap)
	}
	return ok(w, out)
}

func (s *apiServer) addPartner(w http.ResponseWriter, r *http.Request) error {
	var req api.AddPartnerRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	p, err := s.n.partners.Add(req.Invite, actor(r))
	if err != nil {
		return err
	}
	return ok(w, apiPartner(p))
}

func (s *apiServer) removePartner(w http.ResponseWriter, r *http.Request) error {
	res, err := s.n.sharing.RemovePartner(r.Context(), r.PathValue(api.ParamPeer), actor(r))
	if err != nil {
		return err
	}
	return ok(w, api.PartnerRemoved{Partner: apiPartner(res.Peer), RevokedGrants: res.RevokedGrants,
		Delivered: res.Delivered, Undelivered: res.Undelivered})
}

func (s *apiServer) importFile(w http.ResponseWriter, r *http.Request) error {
	// The body streams into the ingester; the ingester stops reading one
	// byte past archive.max_instance_size (413 too-large).
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, s.n.cfg.Archive.MaxInstanceSize+1)}
	res := apiImport(s.n.ingest.Ingest(r.Context(), body))
	if body.err != nil {
		// The upload broke: the client did not send an instance.
		return badRequest("read body: %v", body.err)
	}
	if res.Outcome == api.OutcomeFailed && res.Code != string(api.CodeInsufficientStorage) {
		s.n.log.Error("import failed", "err", res.Error)
	}
	if res.Outcome == api.OutcomeStored {
		// Who stored into which study: once per study and user in 10
		// minutes (a CT is hundreds of instances; each entry is a commit).
		s.n.audit.Once(consent.Entry{Actor: actor(r), Action: consent.ActImport, Study: res.StudyUID,
			Decision: consent.DecisionAllow}, 10*time.Minute)
	}
	writeJSON(w, res.HTTPStatus(), res)
	return nil
}

// bodyReader remembers why a request body failed, other than ending.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (s *apiServer) studies(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.n.archive.Studies()
	if err != nil {
		return err
	}
	out := []api.Study{}
	rd := readerOf(principalOf(r))
	for _, st := range ss {
		if rd.mayRead(st.Readers) {
			out = append(out, apiStudy(st))
		}
	}
	return ok(w, out)
}

func (s *apiServer) instances(w http.ResponseWriter, r *http.Request) error {
	if err := s.n.archive.gate(r.PathValue(api.ParamStudyUID), readerOf(principalOf(r))); err != nil {
		return err
	}
	insts, err := s.n.archive.Instances(r.PathValue(api.ParamStudyUID))
	if err != nil {
		return err
	}
	out := []api.Instance{}
	for _, in := range insts {
		out = append(out, apiInstance(in))
	}
	return ok(w, out)
}

func (s *apiServer) instanceData(w http.ResponseWriter, r *http.Request) error {
	if err := s.n.archive.gate(r.PathValue(api.ParamStudyUID), readerOf(principalOf(r))); err != nil {
		return err
	}
	data, rec, err := s.n.archive.InstanceData(r.PathValue(api.ParamStudyUID), r.PathValue(api.ParamSOPInstanceUID))
	if err != nil {
		return err
	}
	if err := s.n.audit.Once(consent.Entry{Actor: actor(r), Action: consent.ActInstanceRead, Study: rec.Study, Decision: consent.DecisionAllow, Reason: "instance data read through the API"}, 10*time.Minute); err != nil {
		return err // fail closed: nothing is read that the audit trail could not record
	}
	w.Header().Set("Content-Type", api.ContentTypeDICOM)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set(api.HeaderSHA256, rec.Digest)
	w.Write(data)
	return nil
}

func (s *apiServer) export(w http.ResponseWriter, r *http.Request) error {
	var req api.ExportRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	study := r.PathValue(api.ParamStudyUID)
	if err := s.n.archive.gate(study, readerOf(principalOf(r))); err != nil {
		return err
	}
	ex, err := s.n.archive.Export(r.Context(), ExportRequest{Study: study, Out: req.Out, AllowPartial: req.AllowPartial, Merge: req.Merge, Actor: actor(r)})
	if err != nil {
		return err
	}
	res := api.ExportResult{StudyUID: study, Out: req.Out, Files: []api.ExportedFile{}, Incomplete: ex.Marker}
	for _, f := range ex.Files {
		res.Files = append(res.Files, api.ExportedFile{Path: f.Path, SOPInstanceUID: f.SOPInstanceUID, SHA256: f.SHA256, Size: f.Size, Skipped: f.Skipped})
		res.Verified++
		if f.Skipped {
			res.Skipped++
		} else {
			res.Bytes += f.Size
		}
	}
	return ok(w, res)
}

func (s *apiServer) grants(w http.ResponseWriter, r *http.Request) error {
	out := []api.Grant{}
	for _, st := range s.n.ledger.Grants() {
		g, err := s.names().grant(st)
		if err != nil {
			return err
		}
		out = append(out, g)
	}
	return ok(w, out)
}

func (s *apiServer) grant(w http.ResponseWriter, r *http.Request) error {
	var req api.GrantRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	gr := GrantRequest{To: req.To, Study: req.StudyUID, Studies: req.StudyUIDs, Purpose: req.Purpose, User: req.GranteeUser, Actor: actor(r)}
	if req.Expires != "" {
		d, err := api.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return badRequest("expires %q: want a positive duration such as 72h or 3d", req.Expires)
		}
		gr.Expires = d
	}
	if req.NotBefore != "" {
		if d, err := api.ParseDuration(req.NotBefore); err == nil && d >= 0 {
			gr.NotBefore = s.n.clock.Now().Add(d)
		} else if t, err := time.Parse(time.RFC3339, req.NotBefore); err == nil {
			gr.NotBefore = t
		} else {
			return badRequest("not_before %q: want a duration from now such as 12h, or an RFC 3339 time", req.NotBefore)
		}
	}
	for i, u := range gr.studies() {
		if !uid.Valid(u) {
			return badRequest("study %d of the request is not a valid UID", i+1)
		}
	}
	if req.Patient != nil {
		gr.Patient = &consent.Patient{ID: req.Patient.PatientID, Issuer: req.Patient.IssuerOfPatientID}
	}
	others := 0
	if us := gr.studies(); gr.Patient == nil && len(us) == 1 {
		others = s.n.sharing.LiveGrants(gr.To, us[0])
	}
	sg, err := s.n.sharing.Grant(r.Context(), gr)
	if err != nil {
		return err
	}
	st, found := s.n.ledger.Get(sg.Grant.ID)
	if !found {
		st = consent.GrantStatus{SignedGrant: *sg, State: consent.StateActive}
	}
	g, err := s.names().grant(st)
	if err != nil {
		return err
	}
	if others > 0 {
		w.Header().Set(api.HeaderNotice, fmt.Sprintf("notice: the partner already holds %d other live grant(s) for this study; revoke all of them to end its access", others))
	}
	return ok(w, g)
}

func (s *apiServer) revoke(w http.ResponseWriter, r *http.Request) error {
	var req api.RevokeRequest
	if r.ContentLength != 0 {
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
	}
	rv, err := s.n.sharing.Revoke(r.PathValue(api.ParamGrantID), req.Reason, actor(r))
	if err != nil {
		return err
	}
	out, err := apiRevocation(rv)
	if err != nil {
		return err
	}
	return ok(w, out)
}

func (s *apiServer) shared(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.n.inbox.Shared()
	if err != nil {
		return err
	}
	out := []api.SharedStudy{}
	for _, st := range ss {
		out = append(out, api.SharedStudy{
			StudyAttributes: apiStudyAttributes(st.Study), Issuer: s.names().ref(st.Issuer, st.IssuerName),
			State: st.State, GrantID: st.GrantID, Expires: st.Expires, User: st.User, Scope: st.Scope, Version: st.Version,
			Instances: st.Instances, Bytes: st.Bytes, Received: st.Received, Fetched: st.Fetched,
		})
	}
	return ok(w, out)
}

func (s *apiServer) startFetch(w http.ResponseWriter, r *http.Request) error {
	var req api.FetchRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkUID("study UID", req.StudyUID); err != nil {
		return err
	}
	st, err := s.n.fetcher.Start(r.Context(), FetchRequest{Study: req.StudyUID, From: req.From, Actor: actor(r), ActorName: principalOf(r).Name})
	if err != nil {
		return err
	}
	return ok(w, s.names().fetch(st))
}

func (s *apiServer) fetch(w http.ResponseWriter, r *http.Request) error {
	st, found := s.n.fetcher.Status(r.PathValue(api.ParamFetchID))
	if !found {
		return &apiError{api.CodeNotFound, "no fetch with that id"}
	}
	return ok(w, s.names().fetch(st))
}

func (s *apiServer) outboxList(w http.ResponseWriter, r *http.Request) error {
	items, err := s.n.outbox.Pending()
	if err != nil {
		return err
	}
	out := []api.OutboxItem{}
	for _, it := range items {
		out = append(out, api.OutboxItem{Seq: it.Seq, Peer: s.names().ref(it.Peer, ""), Kind: it.Kind, StudyUID: it.Study,
			Attempts: it.Attempts, Next: it.Next, LastError: it.LastErr})
	}
	return ok(w, out)
}

// ---- the rooms' values in the api package's shapes

// audit shapes an audit entry; a partner is named as it is called now, or
// as it was called when the entry was written.
func (nm namer) audit(e consent.Entry) api.AuditEntry {
	ae := api.AuditEntry{Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, StudyUID: e.Study,
		GrantID: e.GrantID, Decision: e.Decision, Reason: e.Reason, Count: e.Count, Prev: e.Prev, Hash: e.Hash}
	ae.Facility = e.Facility
	if e.Peer != "" {
		ref := nm.ref(e.Peer, e.PeerName)
		ae.Peer = &ref
	}
	if !e.Expires.IsZero() {
		exp := e.Expires
		ae.Expires = &exp
	}
	return ae
}

func apiPartner(p Peer) api.Partner {
	return api.Partner{PeerID: p.ID.String(), Name: p.Name, Recipient: p.Recipient, Addrs: nonNil(p.Addrs), Added: p.Added}
}

// namer names facilities in the API's answers: this node, a partner by
// its current name, or a former partner by the name given, if any.
type namer struct {
	self     peer.ID
	name     string
	partners *partners
}

func (s *apiServer) names() namer { return namesOf(s.n) }

func namesOf(n *Node) namer {
	return namer{self: n.host.ID(), name: n.cfg.Name, partners: n.partners}
}

func (nm namer) ref(id peer.ID, name string) api.PartnerRef {
	switch {
	case id == nm.self:
		name = nm.name
	default:
		if p, ok := nm.partners.Get(id); ok {
			name = p.Name
		}
	}
	return api.PartnerRef{PeerID: id.String(), Name: name}
}

func (nm namer) all() map[peer.ID]string {
	names := map[peer.ID]string{}
	for _, p := range nm.partners.List() {
		names[p.ID] = p.Name
	}
	return names
}

func apiStudyAttributes(st StudyInfo) api.StudyAttributes {
	return api.StudyAttributes{
		StudyUID: st.UID, PatientID: st.PatientID, IssuerOfPatientID: st.IssuerOfPatientID, PatientName: st.PatientName,
		PatientBirthDate: st.PatientBirthDate, PatientSex: st.PatientSex, StudyDate: st.StudyDate, StudyTime: st.StudyTime,
		Description: st.Description, AccessionNumber: st.AccessionNumber, StudyID: st.StudyID, Modalities: nonNil(st.Modalities),
	}
}

func apiStudy(st Study) api.Study {
	out := api.Study{StudyAttributes: apiStudyAttributes(st.StudyInfo), Instances: st.Instances, Expected: st.Expected,
		Complete: st.Complete, Bytes: st.Bytes, Updated: st.Updated}
	if st.Origin != "" {
		out.Origin = &api.PartnerRef{PeerID: st.Origin.String(), Name: st.OriginName}
	}
	return out
}

func apiInstance(in InstanceInfo) api.Instance {
	out := api.Instance{StudyUID: in.Study, SeriesUID: in.Series, SOPInstanceUID: in.SOPInstanceUID, SOPClassUID: in.SOPClassUID,
		TransferSyntaxUID: in.TransferSyntaxUID, Modality: in.Modality, SeriesNumber: in.SeriesNumber,
		SeriesDescription: in.SeriesDescription, InstanceNumber: in.InstanceNumber, Size: in.Size, SHA256: in.Digest,
		Blocks: []api.Block{}}
	for _, b := range in.Blocks {
		out.Blocks = append(out.Blocks, api.Block{CID: b.CID, Size: b.Size})
	}
	return out
}

func apiImport(r ImportResult) api.ImportResult {
	return api.ImportResult{Outcome: r.Outcome, SOPInstanceUID: r.SOPInstanceUID, StudyUID: r.Study, Size: r.Size,
		SHA256: r.Digest, Code: r.Code, Error: r.Error, Warnings: r.Warnings}
}

func (nm namer) grant(st consent.GrantStatus) (api.Grant, error) {
	signed, err := json.Marshal(st.SignedGrant)
	if err != nil {
		return api.Grant{}, err
	}
	g := st.Grant
	out := api.Grant{GrantID: g.ID, Issuer: nm.ref(g.Issuer, ""), Grantee: nm.ref(g.Grantee, ""), GranteeUser: g.GranteeUser,
		StudyUIDs: nonNil(g.Studies), Actions: nonNil(g.Actions), Purpose: string(g.Purpose), NotBefore: g.NotBefore,
		Expires: g.Expires, Created: g.Created, State: string(st.State), Signed: signed}
	if g.Patient != nil {
		out.Patient = &api.GrantPatient{PatientID: g.Patient.ID, IssuerOfPatientID: g.Patient.Issuer}
	}
	if st.Revocation != nil {
		rv, err := apiRevocation(st.Revocation)
		if err != nil {
			return api.Grant{}, err
		}
		out.Revocation = &rv
	}
	return out, nil
}

func apiRevocation(rv *consent.SignedRevocation) (api.Revocation, error) {
	signed, err := json.Marshal(rv)
	if err != nil {
		return api.Revocation{}, err
	}
	return api.Revocation{GrantID: rv.Revocation.GrantID, Revoked: rv.Revocation.Revoked, Reason: rv.Revocation.Reason, Signed: signed}, nil
}

func (nm namer) fetch(st FetchStatus) api.FetchJob {
	return api.FetchJob{FetchID: st.ID, StudyUID: st.Study, Holder: nm.ref(st.Issuer, st.IssuerName), State: st.State,
		Instances: st.Instances, InstancesDone: st.InstancesDone, Bytes: st.Bytes, BytesDone: st.BytesDone,
		BytesResumed: st.BytesResumed, Attempts: st.Attempts, NextAttempt: st.NextAttempt, GiveUpAt: st.GiveUpAt,
		Started: st.Started, Finished: st.Finished, Error: st.Error, WaitedSeconds: st.Waited.Seconds(),
		Rate: st.Rate, ETASeconds: st.ETA.Round(time.Second).Seconds(), Sources: nm.fetchSources(st.Sources)}
}

func (nm namer) fetchSources(ss []FetchSource) []api.FetchSource {
	var out []api.FetchSource
	for _, s := range ss {
		out = append(out, api.FetchSource{Holder: nm.ref(s.Peer, s.Name), Bytes: s.Bytes, State: s.State})
	}
	return out
}

// checkUIDParams applies the one UID rule (internal/uid) to a request's
// UID path values: what the archive stores, it can name, and anything
// else is a bad request rather than a lookup.
func checkUIDParams(r *http.Request) error {
	for _, p := range [...]struct{ name, what string }{{api.ParamStudyUID, "study UID"}, {api.ParamSOPInstanceUID, "SOP instance UID"}} {
		if v := r.PathValue(p.name); v != "" {
			if err := checkUID(p.what, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkUID(what, v string) error {
	if _, err := uid.Check(v); err != nil {
		return badRequest("%s: %v", what, err) // the message never quotes the value
	}
	return nil
}

// ---- known application entities (the DICOM edge's allowlist)
