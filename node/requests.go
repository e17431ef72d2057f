package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// RequestsConfig sets the holder's policy for partners' access requests.
type RequestsConfig struct {
	// EmergencyPartners lists the partners (names or peer IDs) whose
	// emergency requests are granted at once (break-glass). Empty by
	// default: every request waits for an admin.
	EmergencyPartners []string `toml:"emergency_partners"`

	// EmergencyTTL is how long a break-glass grant lasts; it is not
	// extendable. Default 4h; at most 24h.
	EmergencyTTL Duration `toml:"emergency_ttl"`

	// QueryPartners lists the partners (names or peer IDs) that may search
	// this facility for a patient's studies (federated patient search).
	// Empty by default: every partner gets the answer a patient we do not
	// hold gets.
	QueryPartners []string `toml:"query_partners"`
}

func defaultRequestsConfig() RequestsConfig {
	return RequestsConfig{EmergencyTTL: Duration{4 * time.Hour}}
}

func (c RequestsConfig) validate() error {
	if c.EmergencyTTL.Duration < time.Minute || c.EmergencyTTL.Duration > 24*time.Hour {
		return errors.New("config: requests.emergency_ttl must be 1m to 24h")
	}
	return nil
}

// Bounds of the requests room.
const (
	refreshTimeout  = 5 * time.Second // asking about pending requests while a user waits
	requestsRefresh = time.Minute     // asking about pending requests in the background
)

// requests is the access-request room: partners' signed requests to us
// (through the asks desk; recorded by the consent ledger, approved into
// grants whose manifests flow as usual), and our users' requests to
// partners (kept in the store with the holder's signed answers, asked
// about until decided).
type requests struct {
	store    *store.Store
	book     consent.RequestBook
	partners *partners
	sharing  *sharing
	asks     *asks
	audit    *auditor
	clock    clock.Clock
	cfg      RequestsConfig
	ttl      ExchangeConfig
}

// answerRequest answers a partner's access request (wire.KindAccessRequest).
func (rq *requests) answerRequest(_ context.Context, from peer.ID, e *wire.Envelope) (any, string, error) {
	var r consent.AccessRequest
	if err := e.DecodeBody(&r); err != nil {
		return nil, "malformed", fmt.Errorf("%w: %w", err, exchange.ErrBadRequest)
	}
	if err := r.Validate(); err != nil {
		return nil, "invalid-request", fmt.Errorf("%w: %w", err, exchange.ErrBadRequest)
	}
	var bg consent.BreakGlass
	if r.Emergency && rq.breakGlassFor(from) {
		bg.TTL = rq.cfg.EmergencyTTL.Duration
	}
	in, g, err := rq.book.ReceiveRequest(from, r, e.Signed(), bg)
	switch {
	case errors.Is(err, consent.ErrRequestExists), errors.Is(err, consent.ErrInvalidRequest):
		return nil, "invalid-request", fmt.Errorf("%w: %w", err, exchange.ErrBadRequest)
	case err != nil:
		return nil, "", err
	}
	if g != nil {
		rq.sharing.granted(g)
	}
	return in.Status, "", nil
}

// answerStatus answers a partner's question about its request
// (wire.KindRequestStatus).
func (rq *requests) answerStatus(_ context.Context, from peer.ID, e *wire.Envelope) (any, string, error) {
	var ref wire.RequestRef
	if err := e.DecodeBody(&ref); err != nil {
		return nil, "malformed", fmt.Errorf("%w: %w", err, exchange.ErrBadRequest)
	}
	in, err := rq.book.Request(ref.ID)
	if err != nil {
		return nil, "", err
	}
	// Another partner's request, or none: the same answer.
	if in == nil || in.From != from {
		return nil, "unknown-request", fmt.Errorf("no such request from this partner: %w", exchange.ErrNotFound)
	}
	return in.Status, "", nil
}

func (rq *requests) breakGlassFor(p peer.ID) bool {
	for _, s := range rq.cfg.EmergencyPartners {
		if pp, err := rq.partners.Resolve(s); err == nil && pp.ID == p {
			return true
		}
	}
	return false
}

// Send signs and sends one of our users' requests, and keeps it with the
// holder's answer.
func (rq *requests) Send(ctx context.Context, req api.AccessRequestCreate, actor string) (api.AccessRequest, error) {
	p, err := rq.partners.Resolve(req.To)
	if err != nil {
		return api.AccessRequest{}, badRequest("%v", err)
	}
	id, err := newRequestID()
	if err != nil {
		return api.AccessRequest{}, err
	}
	r := consent.AccessRequest{ID: id, User: actor, PatientID: req.PatientID, Issuer: req.Issuer, BirthDate: req.BirthDate,
		Accession: req.Accession, Purpose: consent.Purpose(req.Purpose), Reason: req.Reason, Note: req.Note, Emergency: req.Emergency}
	if r.Purpose == "" {
		r.Purpose = consent.PurposeTreatment
	}
	if err := r.Validate(); err != nil {
		return api.AccessRequest{}, badRequest("%v", strings.TrimSuffix(err.Error(), ": "+consent.ErrInvalidRequest.Error()))
	}
	now := rq.clock.Now()
	out := store.OutgoingRequest{ID: id, To: p.ID, ToName: p.Name, User: actor, PatientID: r.PatientID, Issuer: r.Issuer,
		BirthDate: r.BirthDate, Accession: r.Accession, Purpose: string(r.Purpose), Reason: r.Reason, Note: r.Note,
		Emergency: r.Emergency, Created: now}
	err = rq.deliver(ctx, &out, p.Name)
	if out.State == api.RequestFailed {
		// The holder refused it outright: nothing is kept, the user is told.
		return api.AccessRequest{}, &unavailableError{errors.New("the request was not taken: " + out.LastError)}
	}
	if err := rq.store.PutOutgoingRequest(out); err != nil {
		return api.AccessRequest{}, err
	}
	reason := "request=" + id + " purpose=" + string(r.Purpose) + " reason=" + r.Reason
	if r.Emergency {
		reason += " emergency"
	}
	if out.State == api.RequestUnsent {
		reason += " queued"
	}
	rq.audit.Record(consent.Entry{Actor: actor, Peer: p.ID, Action: api.ActRequestSent, Reason: reason})
	return apiOutgoing(out), nil
}

// deliver sends one of our requests to its holder and records the answer
// in out: its state, or unsent (the holder cannot be reached or is busy:
// it goes again later) or failed (the holder refused it), with why.
func (rq *requests) deliver(ctx context.Context, out *store.OutgoingRequest, holder string) error {
	r := consent.AccessRequest{ID: out.ID, User: out.User, PatientID: out.PatientID, Issuer: out.Issuer, BirthDate: out.BirthDate,
		Accession: out.Accession, Purpose: consent.Purpose(out.Purpose), Reason: out.Reason, Note: out.Note, Emergency: out.Emergency}
	var st consent.RequestStatus
	ans, err := rq.asks.ask(ctx, out.To, wire.KindAccessRequest, r, &st)
	if err == nil && st.ID != out.ID {
		err = fmt.Errorf("%s answered about another request", holder)
	}
	if err != nil {
		out.State, out.LastError = api.RequestUnsent, askSentence(err, holder)
		var re *exchange.RemoteError
		if errors.As(err, &re) && re.Code != exchange.CodeUnavailable && re.Code != exchange.CodeInternal {
			out.State = api.RequestFailed
		}
		return err
	}
	out.LastError = ""
	setAnswer(out, st, ans, rq.clock.Now())
	return nil
}

func setAnswer(out *store.OutgoingRequest, st consent.RequestStatus, ans []byte, now time.Time) {
	out.State, out.GrantID, out.Expires, out.DenyReason, out.Decided = string(st.State), st.GrantID, st.Expires, st.Reason, st.Decided
	out.Answer, out.Checked = ans, now
}

// Outgoing lists our requests, newest first, after asking the holders of
// pending ones for news (bounded by refreshTimeout).
func (rq *requests) Outgoing(ctx context.Context) ([]api.AccessRequest, error) {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	rq.refresh(ctx)
	list, err := rq.store.OutgoingRequests()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b store.OutgoingRequest) int { return b.Created.Compare(a.Created) })
	out := make([]api.AccessRequest, 0, len(list))
	for _, r := range list {
		out = append(out, apiOutgoing(r))
	}
	return out, nil
}

// refresh asks the holders of our pending requests where they stand, one
// partner after the other until ctx ends.
func (rq *requests) refresh(ctx context.Context) {
	list, err := rq.store.OutgoingRequests()
	if err != nil {
		return
	}
	for _, r := range list {
		if ctx.Err() != nil || !rq.partners.IsPartner(r.To) {
			continue
		}
		if r.State == api.RequestUnsent {
			// Queued while the holder could not be reached: send it now.
			rq.deliver(ctx, &r, r.ToName)
			if err := rq.store.PutOutgoingRequest(r); err != nil {
				return
			}
			continue
		}
		if r.State != string(consent.RequestPending) {
			continue
		}
		var st consent.RequestStatus
		ans, err := rq.asks.ask(ctx, r.To, wire.KindRequestStatus, wire.RequestRef{ID: r.ID}, &st)
		if err != nil || st.ID != r.ID {
			continue
		}
		setAnswer(&r, st, ans, rq.clock.Now())
		if err := rq.store.PutOutgoingRequest(r); err != nil {
			return
		}
	}
}

// Run asks about pending requests every requestsRefresh until ctx ends.
func (rq *requests) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.After(rq.clock, requestsRefresh):
		}
		c, cancel := context.WithTimeout(ctx, requestsRefresh/2)
		rq.refresh(c)
		cancel()
	}
}

// Incoming lists partners' requests to us, newest first.
func (rq *requests) Incoming() ([]api.AccessRequest, error) {
	list, err := rq.book.Requests()
	if err != nil {
		return nil, err
	}
	out := make([]api.AccessRequest, 0, len(list))
	for _, in := range list {
		out = append(out, rq.apiIncoming(in))
	}
	return out, nil
}

// resolve finds a partner's request by ID or a unique prefix of 8 or more
// hex digits.
func (rq *requests) resolve(ref string) (string, error) {
	if len(ref) < 8 {
		return "", &apiError{api.CodeNotFound, "no request with that ID (give 8 or more of its digits)"}
	}
	list, err := rq.book.Requests()
	if err != nil {
		return "", err
	}
	var found []string
	for _, in := range list {
		if strings.HasPrefix(in.Request.ID, ref) {
			found = append(found, in.Request.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", &apiError{api.CodeNotFound, "no request with that ID"}
	case 1:
		return found[0], nil
	}
	return "", &apiError{api.CodeNotFound, fmt.Sprintf("%d requests start with that; give more digits", len(found))}
}

func decideError(err error) error {
	switch {
	case errors.Is(err, consent.ErrRequestDecided):
		return &apiError{api.CodeConflict, strings.TrimPrefix(err.Error(), "decide request: ")}
	case errors.Is(err, consent.ErrNoRequest):
		return &apiError{api.CodeNotFound, "no request with that ID"}
	}
	return err
}

// Approve grants a pending request: the patient's studies, or the listed
// ones (which must be the patient's own studies here).
func (rq *requests) Approve(ref string, req api.ApproveRequest, actor string) (api.AccessRequest, error) {
	id, err := rq.resolve(ref)
	if err != nil {
		return api.AccessRequest{}, err
	}
	in, err := rq.book.Request(id)
	if err != nil || in == nil {
		return api.AccessRequest{}, decideError(errors.Join(err, consent.ErrNoRequest))
	}
	ttl := rq.ttl.DefaultGrantTTL.Duration
	if req.Expires != "" {
		if ttl, err = api.ParseDuration(req.Expires); err != nil || ttl <= 0 {
			return api.AccessRequest{}, badRequest("expires %q: want a duration such as 72h or 3d", req.Expires)
		}
	}
	if ttl > rq.ttl.MaxGrantTTL.Duration {
		return api.AccessRequest{}, badRequest("a grant may last at most %s (config exchange.max_grant_ttl)", api.FormatDuration(rq.ttl.MaxGrantTTL.Duration))
	}
	pt := consent.Patient{ID: in.Request.PatientID, Issuer: in.Request.Issuer}
	for _, u := range req.StudyUIDs {
		if got, ok := rq.sharing.studyPatient(u); !ok || got != pt {
			return api.AccessRequest{}, badRequest("study %s is not one of the patient's studies held here", u)
		}
	}
	out, g, err := rq.book.DecideRequest(id, consent.Decision{Approve: true, Expires: rq.clock.Now().Add(ttl),
		Studies: req.StudyUIDs, Actor: actor})
	if err != nil {
		return api.AccessRequest{}, decideError(err)
	}
	rq.sharing.granted(g)
	return rq.apiIncoming(out), nil
}

// Deny denies a pending request with a code.
func (rq *requests) Deny(ref, reason, actor string) (api.AccessRequest, error) {
	id, err := rq.resolve(ref)
	if err != nil {
		return api.AccessRequest{}, err
	}
	if !slices.Contains(api.DenyReasons, reason) {
		return api.AccessRequest{}, badRequest("reason must be one of %s", strings.Join(api.DenyReasons, ", "))
	}
	out, _, err := rq.book.DecideRequest(id, consent.Decision{Reason: reason, Actor: actor})
	if err != nil {
		return api.AccessRequest{}, decideError(err)
	}
	return rq.apiIncoming(out), nil
}

// EraseNote erases a request's free-text note (and the signed copy that
// holds it), audited.
func (rq *requests) EraseNote(ref, actor string) (api.AccessRequest, error) {
	id, err := rq.resolve(ref)
	if err != nil {
		return api.AccessRequest{}, err
	}
	if err := rq.audit.Record(consent.Entry{Actor: actor, Action: api.ActRequestNoteErased, Reason: "request=" + id}); err != nil {
		return api.AccessRequest{}, err
	}
	if err := rq.book.EraseRequestNote(id); err != nil {
		return api.AccessRequest{}, decideError(err)
	}
	in, err := rq.book.Request(id)
	if err != nil || in == nil {
		return api.AccessRequest{}, decideError(errors.Join(err, consent.ErrNoRequest))
	}
	return rq.apiIncoming(*in), nil
}

// Review records the review of a break-glass access.
func (rq *requests) Review(ref, outcome, actor string) (api.AccessRequest, error) {
	id, err := rq.resolve(ref)
	if err != nil {
		return api.AccessRequest{}, err
	}
	out, err := rq.book.ReviewRequest(id, outcome, actor)
	if err != nil {
		return api.AccessRequest{}, decideError(err)
	}
	return rq.apiIncoming(out), nil
}

func newRequestID() (string, error) { return wire.NewNonce() }

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func apiOutgoing(r store.OutgoingRequest) api.AccessRequest {
	return api.AccessRequest{RequestID: r.ID, Holder: &api.PartnerRef{PeerID: r.To.String(), Name: r.ToName}, User: r.User,
		PatientID: r.PatientID, Issuer: r.Issuer, BirthDate: r.BirthDate, Accession: r.Accession, Purpose: r.Purpose,
		Reason: r.Reason, Note: r.Note, Emergency: r.Emergency, Created: r.Created, State: r.State, GrantID: r.GrantID,
		Expires: optTime(r.Expires), DenyReason: r.DenyReason, Decided: optTime(r.Decided), Checked: optTime(r.Checked),
		LastError: r.LastError}
}

func (rq *requests) apiIncoming(in consent.IncomingRequest) api.AccessRequest {
	name := ""
	if p, ok := rq.partners.Get(in.From); ok {
		name = p.Name
	}
	note, _ := rq.book.RequestNote(in.Request.ID)
	r := in.Request
	studies, _ := rq.sharing.patientStudies(consent.Patient{ID: r.PatientID, Issuer: r.Issuer})
	return api.AccessRequest{RequestID: r.ID, Requester: &api.PartnerRef{PeerID: in.From.String(), Name: name}, User: r.User,
		PatientID: r.PatientID, Issuer: r.Issuer, BirthDate: r.BirthDate, Accession: r.Accession, Purpose: string(r.Purpose),
		Reason: r.Reason, Note: note, Emergency: r.Emergency, Created: in.Received, State: string(in.Status.State),
		GrantID: in.Status.GrantID, Expires: optTime(in.Status.Expires), DenyReason: in.Status.Reason,
		Decided: optTime(in.Status.Decided), DecidedBy: in.DecidedBy, Review: in.Review, ReviewedBy: in.ReviewedBy,
		Studies: len(studies)}
}
