package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Audit actions of access requests, at the holder.
const (
	ActRequestApproved   = "request-approved"   // an admin approved a request (the grant entry follows)
	ActRequestDenied     = "request-denied"     // an admin denied a request; reason the code
	ActEmergencyAccess   = "emergency-access"   // an emergency request granted at once (break-glass)
	ActEmergencyReviewed = "emergency-reviewed" // an admin reviewed an emergency access; reason the outcome
)

// RequestReasons are the codes a requester gives for asking (why the
// clinician needs the images); free text goes in the note.
var RequestReasons = []string{"continuity-of-care", "referral", "second-opinion", "follow-up", "transfer", "emergency-care"}

// DenyReasons are the codes a holder gives for a denial.
var DenyReasons = []string{"no-consent", "not-our-patient", "insufficient-reason", "policy", "duplicate", "other"}

// ReviewOutcomes are the outcomes of an emergency access's review.
var ReviewOutcomes = []string{"justified", "not-justified"}

// Limits of a request's fields.
const (
	maxNoteLen      = 1024
	maxAccessionLen = 64
)

// AccessRequest is what a clinician at a partner asks for: a patient's
// studies, why, and who asks. It travels signed (internal/wire, kind
// access-request); the holder keeps it with its signature as received.
type AccessRequest struct {
	ID        string  `json:"id"`   // 32 lower-case hex digits, the requester's choice
	User      string  `json:"user"` // the requesting user's unique ID at the requester
	PatientID string  `json:"patient_id"`
	Issuer    string  `json:"issuer,omitempty"`     // Issuer of Patient ID
	BirthDate string  `json:"birth_date,omitempty"` // YYYYMMDD, to help the holder match the patient
	Accession string  `json:"accession,omitempty"`  // an accession number the requester knows
	Purpose   Purpose `json:"purpose"`
	Reason    string  `json:"reason"`         // one of RequestReasons
	Note      string  `json:"note,omitempty"` // free text: kept beside the chain, erasable, never in it
	Emergency bool    `json:"emergency,omitempty"`
}

// Validate checks the request's fields; errors say which and why, and
// wrap [ErrInvalidRequest].
func (r *AccessRequest) Validate() error {
	err := func() error {
		if !validID(r.ID) {
			return errors.New("id is not 32 lower-case hex digits")
		}
		if strings.TrimSpace(r.User) == "" {
			return errors.New("user is empty")
		}
		if err := checkText(r.User, maxUserLen); err != nil {
			return fmt.Errorf("user: %w", err)
		}
		if err := (&Patient{ID: r.PatientID, Issuer: r.Issuer}).validate(); err != nil {
			return err
		}
		if r.BirthDate != "" {
			if _, err := time.Parse("20060102", r.BirthDate); err != nil || len(r.BirthDate) != 8 {
				return errors.New("birth date is not YYYYMMDD")
			}
		}
		if err := checkText(r.Accession, maxAccessionLen); err != nil {
			return fmt.Errorf("accession: %w", err)
		}
		if !r.Purpose.valid() {
			return errors.New("unknown purpose")
		}
		if r.Purpose == PurposeResearch {
			return errors.New("purpose research-deidentified is refused until de-identification exists")
		}
		if !slices.Contains(RequestReasons, r.Reason) {
			return fmt.Errorf("reason must be one of %s", strings.Join(RequestReasons, ", "))
		}
		if err := checkText(r.Note, maxNoteLen); err != nil {
			return fmt.Errorf("note: %w", err)
		}
		return nil
	}()
	if err != nil {
		return fmt.Errorf("access request: %w: %w", err, ErrInvalidRequest)
	}
	return nil
}

// RequestState is where a request stands.
type RequestState string

// Request states.
const (
	RequestPending  RequestState = "pending"
	RequestApproved RequestState = "approved"
	RequestDenied   RequestState = "denied"
)

// RequestStatus is what the requester learns of its request: the answer
// to a status query, signed by the holder (internal/wire, kind answer).
type RequestStatus struct {
	ID        string       `json:"id"`
	State     RequestState `json:"state"`
	Emergency bool         `json:"emergency,omitempty"` // granted at once by break-glass
	GrantID   string       `json:"grant_id,omitempty"`  // approved: the grant (its manifests follow)
	Expires   time.Time    `json:"expires,omitzero"`    // approved: the grant's expiry
	Reason    string       `json:"reason,omitempty"`    // denied: one of DenyReasons
	Decided   time.Time    `json:"decided,omitzero"`
}

// IncomingRequest is a partner's request as the holder keeps it.
type IncomingRequest struct {
	Request AccessRequest `json:"request"` // Note always empty here: see RequestNote
	From    peer.ID       `json:"from"`
	Signed  []byte        `json:"signed,omitempty"` // the signed message as received (proof of who asked what); dropped when the note is erased
	// SignedSHA256 is the SHA-256 (hex) of Signed, kept when Signed is
	// dropped with the note it holds.
	SignedSHA256 string        `json:"signed_sha256"`
	Received     time.Time     `json:"received"`
	Status       RequestStatus `json:"status"`
	// Decided by (an admin, or "system" for break-glass).
	DecidedBy string `json:"decided_by,omitempty"`
	// Review of an emergency access: the outcome, by whom, when.
	Review     string    `json:"review,omitempty"`
	ReviewedBy string    `json:"reviewed_by,omitempty"`
	Reviewed   time.Time `json:"reviewed,omitzero"`
}

// RequestBook is the ledger's partners' access requests: received, decided
// (into grants the ledger signs, in the same commit as their audit
// entries), reviewed. It is a view of the Ledger, kept apart so that the
// ledger's own type stays about grants and the audit log.
type RequestBook struct{ l *Ledger }

// NewRequestBook returns the access requests kept by l.
func NewRequestBook(l *Ledger) RequestBook { return RequestBook{l: l} }

// Store keys of requests and their notes.
const (
	requestPrefix     = "consent/request/"
	requestNotePrefix = "consent/request-note/"
)

func requestKey(id string) []byte     { return []byte(requestPrefix + id) }
func requestNoteKey(id string) []byte { return []byte(requestNotePrefix + id) }

// ErrRequestExists is returned by ReceiveRequest for a request ID another
// partner already used.
var ErrRequestExists = errors.New("request ID in use")

// ErrNoRequest is returned for an unknown request ID.
var ErrNoRequest = errors.New("no such request")

// ErrRequestDecided is returned when deciding a request that is decided.
var ErrRequestDecided = errors.New("request already decided")

// BreakGlass is the holder's policy for an emergency request from one
// partner: TTL 0 means break-glass is off for it (the default), and the
// request waits for an admin like any other.
type BreakGlass struct {
	TTL time.Duration
}

func (b RequestBook) readRequestLocked(id string) (*IncomingRequest, error) {
	l := b.l
	var out *IncomingRequest
	key := requestKey(id)
	err := l.store.Scan(key, func(k, v []byte) error {
		if string(k) != string(key) {
			return nil
		}
		var r IncomingRequest
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("request %s: undecodable: %w", id, err)
		}
		out = &r
		return nil
	})
	return out, err
}

// ReceiveRequest records a partner's access request (r, as signed in
// signed) with an access-requested audit entry, in one commit, and keeps
// its note beside the chain. With bg.TTL > 0 an emergency request is
// granted at once, in the same commit: a grant of the patient's studies to
// the requesting user only, for bg.TTL, marked emergency, audited
// emergency-access, and listed for review.
//
// The same request (ID and partner) received again answers its status
// and changes nothing: the requester may retry. An ID another partner
// used is [ErrRequestExists].
func (b RequestBook) ReceiveRequest(from peer.ID, r AccessRequest, signed []byte, bg BreakGlass) (IncomingRequest, *SignedGrant, error) {
	l := b.l
	if err := r.Validate(); err != nil {
		return IncomingRequest{}, nil, err
	}
	if err := validPeer(from); err != nil {
		return IncomingRequest{}, nil, fmt.Errorf("access request: from: %w: %w", err, ErrInvalidRequest)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.resyncLocked(); err != nil {
		return IncomingRequest{}, nil, fmt.Errorf("access request: %w", err)
	}
	old, err := b.readRequestLocked(r.ID)
	if err != nil {
		return IncomingRequest{}, nil, fmt.Errorf("access request: %w", err)
	}
	if old != nil {
		if old.From != from {
			return IncomingRequest{}, nil, fmt.Errorf("access request: %w", ErrRequestExists)
		}
		return *old, nil, nil
	}
	now := l.now().UTC()
	note := r.Note
	r.Note = ""
	sum := sha256.Sum256(signed)
	in := IncomingRequest{Request: r, From: from, Signed: signed, SignedSHA256: hex.EncodeToString(sum[:]), Received: now,
		Status: RequestStatus{ID: r.ID, State: RequestPending, Emergency: r.Emergency}}
	// The entry names the requesting user (another facility's ID, no
	// patient data), the purpose and the reason code; never the patient.
	reason := "request=" + r.ID + " user=" + sanitize(r.User, maxUserLen) + " purpose=" + string(r.Purpose) + " reason=" + r.Reason
	if r.Emergency {
		reason += " emergency"
	}
	entries := []Entry{{Actor: ActorSystem, Peer: from, Action: ActAccessRequested, Reason: reason}}
	var sg *SignedGrant
	var extra []KV
	if r.Emergency && bg.TTL > 0 {
		g, ge, kv, err := l.signGrantLocked(GrantRequest{Grantee: from, GranteeUser: r.User,
			Patient: &Patient{ID: r.PatientID, Issuer: r.Issuer}, Purpose: r.Purpose, Expires: now.Add(bg.TTL),
			Actor: ActorSystem, Emergency: true}, now)
		if err != nil {
			return IncomingRequest{}, nil, fmt.Errorf("access request: break-glass grant: %w", err)
		}
		sg = &g
		extra = append(extra, kv)
		in.Status = RequestStatus{ID: r.ID, State: RequestApproved, Emergency: true, GrantID: g.Grant.ID,
			Expires: g.Grant.Expires, Decided: now}
		in.DecidedBy = ActorSystem
		entries = append(entries, Entry{Actor: ActorSystem, Peer: from, Action: ActEmergencyAccess, GrantID: g.Grant.ID,
			Decision: DecisionAllow, Reason: "request=" + r.ID}, ge)
	}
	val, err := json.Marshal(&in)
	if err != nil {
		return IncomingRequest{}, nil, fmt.Errorf("access request: %w", err)
	}
	extra = append(extra, KV{Key: requestKey(r.ID), Value: val})
	if note != "" {
		extra = append(extra, KV{Key: requestNoteKey(r.ID), Value: []byte(note)})
	}
	if err := b.commitRequestLocked(now, entries, extra, sg); err != nil {
		return IncomingRequest{}, nil, fmt.Errorf("access request: %w", err)
	}
	if sg != nil {
		sg = sg.clone()
	}
	return in, sg, nil
}

// commitRequestLocked chains entries, commits them with extra in one
// commit, and records the new head and the grant sg signed with them (if
// any). Called with wmu held.
func (b RequestBook) commitRequestLocked(now time.Time, entries []Entry, extra []KV, sg *SignedGrant) error {
	l := b.l
	es, kvs, err := l.chainManyLocked(now, entries...)
	if err != nil {
		return err
	}
	if err := l.store.Commit(append(kvs, extra...)); err != nil {
		l.dirty = true
		return fmt.Errorf("commit: %w", err)
	}
	last := es[len(es)-1]
	if sg != nil {
		l.addGrantLocked(*sg, last)
		return nil
	}
	l.mu.Lock()
	l.st.head = headRecord{Seq: last.Seq, Hash: last.Hash}
	l.mu.Unlock()
	return nil
}

// Decision is an admin's answer to a pending request.
type Decision struct {
	Approve bool
	// Approve: the grant's expiry (required) and, to narrow it, the
	// studies it names instead of the patient.
	Expires time.Time
	Studies []string
	// Deny: one of DenyReasons.
	Reason string
	Actor  string
}

// DecideRequest approves or denies a pending request. Approving signs a
// grant to the requesting user at the partner (the patient's studies, or
// the listed ones) and commits it with request-approved and grant entries;
// denying commits request-denied. A decided request is
// [ErrRequestDecided]; an unknown one [ErrNoRequest].
func (b RequestBook) DecideRequest(id string, d Decision) (IncomingRequest, *SignedGrant, error) {
	l := b.l
	if d.Approve == (d.Reason != "") {
		return IncomingRequest{}, nil, fmt.Errorf("decide request: approve without a reason, or deny with one: %w", ErrInvalidRequest)
	}
	if !d.Approve && !slices.Contains(DenyReasons, d.Reason) {
		return IncomingRequest{}, nil, fmt.Errorf("decide request: reason must be one of %s: %w", strings.Join(DenyReasons, ", "), ErrInvalidRequest)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.resyncLocked(); err != nil {
		return IncomingRequest{}, nil, fmt.Errorf("decide request: %w", err)
	}
	in, err := b.readRequestLocked(id)
	switch {
	case err != nil:
		return IncomingRequest{}, nil, fmt.Errorf("decide request: %w", err)
	case in == nil:
		return IncomingRequest{}, nil, fmt.Errorf("decide request: %w", ErrNoRequest)
	case in.Status.State != RequestPending:
		return IncomingRequest{}, nil, fmt.Errorf("decide request: %s: %w", in.Status.State, ErrRequestDecided)
	}
	now := l.now().UTC()
	actor := actorOr(d.Actor)
	var sg *SignedGrant
	var extra []KV
	var entries []Entry
	if d.Approve {
		req := GrantRequest{Grantee: in.From, GranteeUser: in.Request.User, Purpose: in.Request.Purpose,
			Expires: d.Expires, Actor: actor}
		if len(d.Studies) > 0 {
			req.Studies = d.Studies
		} else {
			req.Patient = &Patient{ID: in.Request.PatientID, Issuer: in.Request.Issuer}
		}
		g, ge, kv, err := l.signGrantLocked(req, now)
		if err != nil {
			return IncomingRequest{}, nil, fmt.Errorf("decide request: %w", err)
		}
		sg = &g
		extra = append(extra, kv)
		in.Status = RequestStatus{ID: id, State: RequestApproved, Emergency: in.Request.Emergency, GrantID: g.Grant.ID,
			Expires: g.Grant.Expires, Decided: now}
		entries = append(entries, Entry{Actor: actor, Peer: in.From, Action: ActRequestApproved, GrantID: g.Grant.ID,
			Decision: DecisionAllow, Reason: "request=" + id}, ge)
	} else {
		in.Status = RequestStatus{ID: id, State: RequestDenied, Emergency: in.Request.Emergency, Reason: d.Reason, Decided: now}
		entries = append(entries, Entry{Actor: actor, Peer: in.From, Action: ActRequestDenied, Decision: DecisionDeny,
			Reason: "request=" + id + " reason=" + d.Reason})
	}
	in.DecidedBy = actor
	val, err := json.Marshal(in)
	if err != nil {
		return IncomingRequest{}, nil, fmt.Errorf("decide request: %w", err)
	}
	extra = append(extra, KV{Key: requestKey(id), Value: val})
	if err := b.commitRequestLocked(now, entries, extra, sg); err != nil {
		return IncomingRequest{}, nil, fmt.Errorf("decide request: %w", err)
	}
	if sg != nil {
		sg = sg.clone()
	}
	return *in, sg, nil
}

// ReviewRequest records the review of an emergency access (one of
// ReviewOutcomes) with an emergency-reviewed entry. Only a request granted
// by break-glass is reviewed, once.
func (b RequestBook) ReviewRequest(id, outcome, actor string) (IncomingRequest, error) {
	l := b.l
	if !slices.Contains(ReviewOutcomes, outcome) {
		return IncomingRequest{}, fmt.Errorf("review: outcome must be one of %s: %w", strings.Join(ReviewOutcomes, ", "), ErrInvalidRequest)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.resyncLocked(); err != nil {
		return IncomingRequest{}, fmt.Errorf("review: %w", err)
	}
	in, err := b.readRequestLocked(id)
	switch {
	case err != nil:
		return IncomingRequest{}, fmt.Errorf("review: %w", err)
	case in == nil:
		return IncomingRequest{}, fmt.Errorf("review: %w", ErrNoRequest)
	case !in.Status.Emergency || in.DecidedBy != ActorSystem:
		return IncomingRequest{}, fmt.Errorf("review: not an emergency access granted by break-glass: %w", ErrInvalidRequest)
	case in.Review != "":
		return IncomingRequest{}, fmt.Errorf("review: reviewed already (%s): %w", in.Review, ErrRequestDecided)
	}
	now := l.now().UTC()
	actor = actorOr(actor)
	in.Review, in.ReviewedBy, in.Reviewed = outcome, actor, now
	val, err := json.Marshal(in)
	if err != nil {
		return IncomingRequest{}, fmt.Errorf("review: %w", err)
	}
	e := Entry{Actor: actor, Peer: in.From, Action: ActEmergencyReviewed, GrantID: in.Status.GrantID,
		Reason: "request=" + id + " outcome=" + outcome}
	if err := b.commitRequestLocked(now, []Entry{e}, []KV{{Key: requestKey(id), Value: val}}, nil); err != nil {
		return IncomingRequest{}, fmt.Errorf("review: %w", err)
	}
	return *in, nil
}

// Requests lists the partners' requests, newest first.
func (b RequestBook) Requests() ([]IncomingRequest, error) {
	l := b.l
	var out []IncomingRequest
	err := l.store.Scan([]byte(requestPrefix), func(k, v []byte) error {
		var r IncomingRequest
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("request %s: undecodable: %w", strings.TrimPrefix(string(k), requestPrefix), err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	slices.SortFunc(out, func(a, b IncomingRequest) int { return b.Received.Compare(a.Received) })
	return out, nil
}

// Request returns one request (nil if unknown).
func (b RequestBook) Request(id string) (*IncomingRequest, error) {
	l := b.l
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return b.readRequestLocked(id)
}

// RequestNote returns a request's free-text note ("" if none or erased).
func (b RequestBook) RequestNote(id string) (string, error) {
	l := b.l
	var note string
	key := requestNoteKey(id)
	err := l.store.Scan(key, func(k, v []byte) error {
		if string(k) == string(key) {
			note = string(v)
		}
		return nil
	})
	return note, err
}

// EraseRequestNote erases a request's note (it may name the patient), and
// the signed message as received, which holds it too (its SHA-256 stays);
// the request and the chain stay as they are.
func (b RequestBook) EraseRequestNote(id string) error {
	l := b.l
	l.wmu.Lock()
	defer l.wmu.Unlock()
	in, err := b.readRequestLocked(id)
	if err != nil {
		return err
	}
	if in == nil {
		return ErrNoRequest
	}
	in.Signed = nil
	val, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return l.store.Commit([]KV{{Key: requestNoteKey(id), Value: []byte{}}, {Key: requestKey(id), Value: val}})
}
