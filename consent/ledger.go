package consent

import (
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/crypto"
)

// Store key layout (see the package documentation).
const (
	grantPrefix      = "consent/grant/"
	revocationPrefix = "consent/revocation/"
	headKey          = "consent/audit-head"
	auditPrefix      = "audit/"
)

func grantKey(id string) []byte      { return []byte(grantPrefix + id) }
func revocationKey(id string) []byte { return []byte(revocationPrefix + id) }
func auditKey(seq uint64) []byte     { return fmt.Appendf(nil, "%s%020d", auditPrefix, seq) }

// GrantRequest asks the ledger to issue a grant.
type GrantRequest struct {
	Grantee     peer.ID
	GranteeUser string // optional: the named user at the grantee facility
	Studies     []string
	Patient     *Patient // instead of Studies: every study of the patient held here, now and later
	Purpose     Purpose
	NotBefore   time.Time // zero → now
	Expires     time.Time // required, after now and after NotBefore
	Actor       string    // local user who asked; "" → "system"
	Emergency   bool      // break-glass: granted at once on an emergency request, to be reviewed
}

// State is a grant's state at the ledger's current time.
type State string

// States.
const (
	StateActive  State = "active"
	StateExpired State = "expired"
	StateRevoked State = "revoked"
	StatePending State = "pending" // not yet valid
)

// GrantStatus is a grant with its state and, if revoked, the revocation.
// It is a copy: changing it does not change the ledger.
type GrantStatus struct {
	SignedGrant
	State      State             `json:"state"`
	Revocation *SignedRevocation `json:"revocation,omitempty"`
}

type grantRec struct {
	sg      SignedGrant
	studies map[string]struct{}
	actions map[string]struct{}
	rev     *SignedRevocation
}

func newGrantRec(sg SignedGrant) *grantRec {
	r := &grantRec{sg: sg, studies: make(map[string]struct{}, len(sg.Grant.Studies)), actions: make(map[string]struct{}, len(sg.Grant.Actions))}
	for _, s := range sg.Grant.Studies {
		r.studies[s] = struct{}{}
	}
	for _, a := range sg.Grant.Actions {
		r.actions[a] = struct{}{}
	}
	return r
}

func (r *grantRec) state(now time.Time) State {
	switch {
	case r.rev != nil:
		return StateRevoked
	case now.Before(r.sg.Grant.NotBefore):
		return StatePending
	case !now.Before(r.sg.Grant.Expires):
		return StateExpired
	}
	return StateActive
}

func (r *grantRec) status(now time.Time) GrantStatus {
	st := GrantStatus{SignedGrant: *r.sg.clone(), State: r.state(now)}
	if r.rev != nil {
		st.Revocation = r.rev.clone()
	}
	return st
}

// ledgerState is everything loaded from the store. Writers build a new
// one (or change the current one under mu) only after a successful
// Commit.
type ledgerState struct {
	grants    map[string]*grantRec
	byGrantee map[peer.ID][]*grantRec
	head      headRecord
}

type headRecord struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Ledger holds grants, revocations and the audit log. It is safe for
// concurrent use: Check, Get, Grants and GrantsFor take a read lock on
// in-memory state; Grant, Revoke and Record are serialised by a separate
// write lock held across their Commit, so the audit chain stays linear
// while readers are blocked only for the map update after a commit.
type Ledger struct {
	store  Store
	signer lcrypto.PrivKey
	self   peer.ID
	now    func() time.Time
	rand   io.Reader // grant IDs; tests substitute a seeded reader

	wmu     sync.Mutex           // serialises writers; held across Commit
	dirty   bool                 // a Commit failed: reload from the store before the next write (under wmu)
	peerStr map[peer.ID]string   // validated peer IDs and their string form (under wmu)
	namer   func(peer.ID) string // a peer's current name, for Entry.PeerName (under wmu)

	facility string // Entry.Facility of new entries (under wmu)

	lastCkpt   *SignedCheckpoint // newest stored checkpoint (under wmu; see lastCheckpointLocked)
	ckptLoaded bool              // lastCkpt was loaded (under wmu)
	ckptEntry  uint64            // Seq of lastCkpt's own audit entry, when known (under wmu)

	mu        sync.RWMutex // guards st and patientOf; st written only with wmu held
	st        ledgerState
	patientOf StudyPatient // whose a study is, for patient grants (nil: they cover nothing)
}

// SetPeerNamer sets how an entry about a peer gets its PeerName when the
// writer gave none: the partner's name at the time of writing, so that
// the log still names it after the partnership ends. f must not write to
// the ledger.
func (l *Ledger) SetPeerNamer(f func(peer.ID) string) {
	l.wmu.Lock()
	l.namer = f
	l.wmu.Unlock()
}

// SetFacility names the facility whose node keeps this ledger: every
// entry written from now on carries it (Entry.Facility), so that an audit
// trail read elsewhere still says whose it is.
func (l *Ledger) SetFacility(name string) {
	l.wmu.Lock()
	l.facility = sanitize(name, maxPeerNameLen)
	l.wmu.Unlock()
}

// Open loads the grants, revocations and audit head from store. signer
// is the facility's Ed25519 key (crypto.Identity.Sign); now is the clock
// (nil means time.Now). Open verifies every stored grant and revocation
// signature and that the audit head matches the last entry; it does not
// walk the whole audit log ([Ledger.Verify] does).
func Open(store Store, signer lcrypto.PrivKey, now func() time.Time) (*Ledger, error) {
	if store == nil {
		return nil, errors.New("open ledger: nil store")
	}
	if _, ok := signer.(*lcrypto.Ed25519PrivateKey); !ok {
		return nil, errors.New("open ledger: signer is not an Ed25519 key")
	}
	self, err := peer.IDFromPrivateKey(signer)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	l := &Ledger{store: store, signer: signer, self: self, now: now, rand: crand.Reader}
	st, err := l.load()
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	l.st = st
	return l, nil
}

// errStop ends a Scan early.
var errStop = errors.New("stop")

func (l *Ledger) load() (ledgerState, error) {
	st := ledgerState{grants: make(map[string]*grantRec), byGrantee: make(map[peer.ID][]*grantRec)}
	err := l.store.Scan([]byte(grantPrefix), func(k, v []byte) error {
		id := strings.TrimPrefix(string(k), grantPrefix)
		var sg SignedGrant
		if err := json.Unmarshal(v, &sg); err != nil {
			return fmt.Errorf("grant %q: %w", id, err)
		}
		if sg.Grant.ID != id {
			return fmt.Errorf("grant %q stored under the wrong key", id)
		}
		if sg.Grant.Issuer != l.self {
			return fmt.Errorf("grant %s was not issued by this node", id)
		}
		if err := sg.Verify(); err != nil {
			return err
		}
		r := newGrantRec(sg)
		st.grants[id] = r
		st.byGrantee[sg.Grant.Grantee] = append(st.byGrantee[sg.Grant.Grantee], r)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("load grants: %w", err)
	}
	err = l.store.Scan([]byte(revocationPrefix), func(k, v []byte) error {
		id := strings.TrimPrefix(string(k), revocationPrefix)
		var sr SignedRevocation
		if err := json.Unmarshal(v, &sr); err != nil {
			return fmt.Errorf("revocation %q: %w", id, err)
		}
		if sr.Revocation.GrantID != id || sr.Revocation.Issuer != l.self {
			return fmt.Errorf("revocation %q does not match its key or issuer", id)
		}
		if err := sr.Verify(); err != nil {
			return err
		}
		r := st.grants[id]
		if r == nil {
			return fmt.Errorf("revocation %s of an unknown grant", id)
		}
		r.rev = &sr
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("load revocations: %w", err)
	}
	head, found, err := l.readHead()
	if err != nil {
		return st, err
	}
	if !found {
		err := l.store.Scan([]byte(auditPrefix), func(k, v []byte) error { return errStop })
		if errors.Is(err, errStop) {
			return st, fmt.Errorf("load audit head: entries exist but no head record: %w", ErrAuditCorrupt)
		}
		if err != nil {
			return st, fmt.Errorf("load audit head: %w", err)
		}
		st.head = headRecord{Seq: 0, Hash: zeroHash}
		return st, nil
	}
	last, ok, err := l.readEntry(head.Seq)
	if err != nil {
		return st, fmt.Errorf("load audit head: %w", err)
	}
	if !ok || last.Hash != head.Hash {
		return st, fmt.Errorf("load audit head: entry %d missing or does not match the head record: %w", head.Seq, ErrAuditCorrupt)
	}
	if _, ok, err := l.readEntry(head.Seq + 1); err != nil || ok {
		return st, fmt.Errorf("load audit head: entry %d exists beyond the head record: %w", head.Seq+1, ErrAuditCorrupt)
	}
	st.head = head
	return st, nil
}

func (l *Ledger) readHead() (h headRecord, found bool, err error) {
	err = l.store.Scan([]byte(headKey), func(k, v []byte) error {
		if string(k) != headKey {
			return nil
		}
		found = true
		if err := json.Unmarshal(v, &h); err != nil || !validHash(h.Hash) || h.Seq == 0 {
			return fmt.Errorf("read audit head: malformed head record: %w", ErrAuditCorrupt)
		}
		return nil
	})
	return h, found, err
}

// resyncLocked reloads everything from the store after a failed Commit,
// whose outcome is unknown. Called with wmu held.
func (l *Ledger) resyncLocked() error {
	if !l.dirty {
		return nil
	}
	st, err := l.load()
	if err != nil {
		return fmt.Errorf("reload after failed commit: %w", err)
	}
	l.mu.Lock()
	l.st = st
	l.mu.Unlock()
	l.dirty = false
	l.lastCkpt, l.ckptLoaded, l.ckptEntry = nil, false, 0
	return nil
}

// Self is the peer ID of the ledger's signing key: the issuer of its
// grants.
func (l *Ledger) Self() peer.ID { return l.self }

// Grant validates req, signs the grant and commits it together with its
// audit entry in one Commit. Validation failures wrap [ErrInvalidRequest].
func (l *Ledger) Grant(req GrantRequest) (*SignedGrant, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.resyncLocked(); err != nil {
		return nil, fmt.Errorf("grant: %w", err)
	}
	now := l.now().UTC()
	sg, e, kv, err := l.signGrantLocked(req, now)
	if err != nil {
		return nil, fmt.Errorf("grant: %w", err)
	}
	es, kvs, err := l.chainManyLocked(now, e)
	if err != nil {
		return nil, fmt.Errorf("grant: %w", err)
	}
	if err := l.store.Commit(append(kvs, kv)); err != nil {
		l.dirty = true
		return nil, fmt.Errorf("grant: commit: %w", err)
	}
	l.addGrantLocked(sg, es[len(es)-1])
	return sg.clone(), nil
}

// signGrantLocked validates req and signs the grant; it returns the grant
// with its audit entry (not yet chained) and the KV that stores it.
// Validation failures wrap [ErrInvalidRequest]. Called with wmu held.
func (l *Ledger) signGrantLocked(req GrantRequest, now time.Time) (SignedGrant, Entry, KV, error) {
	g, err := l.buildGrant(req, now)
	if err != nil {
		return SignedGrant{}, Entry{}, KV{}, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	for {
		if g.ID, err = newID(l.rand); err != nil {
			return SignedGrant{}, Entry{}, KV{}, err
		}
		if _, dup := l.st.grants[g.ID]; !dup { // 2^-128, but a broken rand source should not overwrite a grant
			break
		}
	}
	msg, err := json.Marshal(&g)
	if err != nil {
		return SignedGrant{}, Entry{}, KV{}, err
	}
	sig, err := crypto.Sign(l.signer, crypto.DomainGrant, msg)
	if err != nil {
		return SignedGrant{}, Entry{}, KV{}, err
	}
	sg := SignedGrant{Grant: g, Sig: sig}
	val, err := json.Marshal(&sg)
	if err != nil {
		return SignedGrant{}, Entry{}, KV{}, err
	}
	// The entry says what was granted: the study (or how many), the
	// purpose and until when.
	e := Entry{Actor: actorOr(req.Actor), Peer: g.Grantee, Action: ActGrant, GrantID: g.ID, Expires: g.Expires,
		Reason: "purpose=" + string(g.Purpose)}
	// A patient grant's entry names neither the patient nor a study: the
	// chain is kept for good and must hold no patient data.
	if len(g.Studies) == 1 {
		e.Study = g.Studies[0]
	} else {
		e.Reason += " " + g.Scope()
	}
	if g.Emergency {
		e.Reason += " emergency"
	}
	return sg, e, KV{Key: grantKey(g.ID), Value: val}, nil
}

// addGrantLocked records a committed grant and the new head (the last
// entry committed with it). Called with wmu held.
func (l *Ledger) addGrantLocked(sg SignedGrant, last Entry) {
	r := newGrantRec(sg)
	l.mu.Lock()
	l.st.grants[sg.Grant.ID] = r
	l.st.byGrantee[sg.Grant.Grantee] = append(l.st.byGrantee[sg.Grant.Grantee], r)
	l.st.head = headRecord{Seq: last.Seq, Hash: last.Hash}
	l.mu.Unlock()
}

func actorOr(actor string) string {
	if actor == "" {
		return ActorSystem
	}
	return actor
}

func (l *Ledger) buildGrant(req GrantRequest, now time.Time) (Grant, error) {
	if err := validPeer(req.Grantee); err != nil {
		return Grant{}, fmt.Errorf("grantee: %w", err)
	}
	if req.Grantee == l.self {
		return Grant{}, errors.New("grantee is this node")
	}
	if err := checkText(req.GranteeUser, maxUserLen); err != nil {
		return Grant{}, fmt.Errorf("grantee user: %w", err)
	}
	if err := checkText(req.Actor, maxActorLen); err != nil {
		return Grant{}, fmt.Errorf("actor: %w", err)
	}
	var patient *Patient
	if req.Patient != nil {
		if len(req.Studies) != 0 {
			return Grant{}, errors.New("a grant names studies or a patient, not both")
		}
		p := *req.Patient
		if err := p.validate(); err != nil {
			return Grant{}, err
		}
		patient = &p
	} else if len(req.Studies) == 0 {
		return Grant{}, errors.New("no studies")
	}
	// Duplicates are dropped (first occurrence kept) rather than refused: a
	// UI that lists a study twice means it once.
	studies := make([]string, 0, len(req.Studies))
	seen := make(map[string]struct{}, len(req.Studies))
	for i, s := range req.Studies {
		if !validUID(s) {
			return Grant{}, fmt.Errorf("study %d is not a valid UID", i)
		}
		if _, dup := seen[s]; !dup {
			seen[s] = struct{}{}
			studies = append(studies, s)
		}
	}
	if len(studies) > MaxStudiesPerGrant {
		return Grant{}, fmt.Errorf("%d studies, at most %d", len(studies), MaxStudiesPerGrant)
	}
	if !req.Purpose.valid() {
		return Grant{}, errors.New("unknown purpose")
	}
	nb := req.NotBefore.UTC()
	if req.NotBefore.IsZero() {
		nb = now
	}
	exp := req.Expires.UTC()
	switch {
	case req.Expires.IsZero():
		return Grant{}, errors.New("no expiry")
	case !exp.After(now):
		return Grant{}, errors.New("expiry is not in the future")
	case !exp.After(nb):
		return Grant{}, errors.New("expiry is not after not-before")
	case exp.Year() > 9999 || nb.Year() < 1:
		return Grant{}, errors.New("time out of range")
	}
	return Grant{
		Issuer:      l.self,
		Grantee:     req.Grantee,
		GranteeUser: req.GranteeUser,
		Studies:     studies,
		Patient:     patient,
		Actions:     []string{ActionFetch},
		Purpose:     req.Purpose,
		NotBefore:   nb,
		Expires:     exp,
		Created:     now,
		Emergency:   req.Emergency,
	}, nil
}

// Revoke signs a revocation of grantID and commits it with its audit
// entry in one Commit. An unknown grant wraps [ErrInvalidRequest] and
// [ErrNoGrant]; revoking twice, or a reason that is too long (> 1 KiB) or
// has control characters, wraps [ErrInvalidRequest]. The reason travels
// to the grantee: never put patient data in it.
func (l *Ledger) Revoke(grantID, reason, actor string) (*SignedRevocation, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.resyncLocked(); err != nil {
		return nil, fmt.Errorf("revoke: %w", err)
	}
	r := l.st.grants[grantID]
	if r == nil {
		return nil, fmt.Errorf("revoke grant %s: %w: %w", safeID(grantID), ErrInvalidRequest, ErrNoGrant)
	}
	if r.rev != nil {
		return nil, fmt.Errorf("revoke grant %s: already revoked: %w", grantID, ErrInvalidRequest)
	}
	if reason == "" {
		reason = string(RevokeUnspecified)
	}
	if !validRevokeReason(reason) {
		return nil, fmt.Errorf("revoke grant %s: reason: not one of the codes %s: %w", grantID, strings.Join(RevokeReasonCodes(), ", "), ErrInvalidRequest)
	}
	if err := checkText(actor, maxActorLen); err != nil {
		return nil, fmt.Errorf("revoke grant %s: actor: %w: %w", grantID, err, ErrInvalidRequest)
	}
	now := l.now().UTC()
	rv := Revocation{GrantID: grantID, Issuer: l.self, Revoked: now, Reason: reason}
	msg, err := json.Marshal(&rv)
	if err != nil {
		return nil, fmt.Errorf("revoke grant %s: %w", grantID, err)
	}
	sig, err := crypto.Sign(l.signer, crypto.DomainRevocation, msg)
	if err != nil {
		return nil, fmt.Errorf("revoke grant %s: %w", grantID, err)
	}
	sr := &SignedRevocation{Revocation: rv, Sig: sig}
	val, err := json.Marshal(sr)
	if err != nil {
		return nil, fmt.Errorf("revoke grant %s: %w", grantID, err)
	}
	e := Entry{Actor: actorOr(actor), Peer: r.sg.Grant.Grantee, Action: ActRevoke, GrantID: grantID, Reason: reason}
	e, kvs, err := l.chainLocked(e, now)
	if err != nil {
		return nil, fmt.Errorf("revoke grant %s: %w", grantID, err)
	}
	kvs = append(kvs, KV{Key: revocationKey(grantID), Value: val})
	if err := l.store.Commit(kvs); err != nil {
		l.dirty = true
		return nil, fmt.Errorf("revoke grant %s: commit: %w", grantID, err)
	}
	l.mu.Lock()
	r.rev = sr
	l.st.head = headRecord{Seq: e.Seq, Hash: e.Hash}
	l.mu.Unlock()
	return sr.clone(), nil
}

// safeID returns id if it looks like one of ours; otherwise a placeholder,
// so hostile input never reaches an error message or a log.
func safeID(id string) string {
	if validID(id) {
		return id
	}
	return "(malformed id)"
}

// Grants returns every grant with its state at now(), sorted by Created
// (then ID).
func (l *Ledger) Grants() []GrantStatus {
	now := l.now()
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]GrantStatus, 0, len(l.st.grants))
	for _, r := range l.st.grants {
		out = append(out, r.status(now))
	}
	sortStatuses(out)
	return out
}

func sortStatuses(s []GrantStatus) {
	slices.SortFunc(s, func(a, b GrantStatus) int {
		if c := a.Grant.Created.Compare(b.Grant.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Grant.ID, b.Grant.ID)
	})
}

// Get returns one grant with its state at now().
func (l *Ledger) Get(id string) (GrantStatus, bool) {
	now := l.now()
	l.mu.RLock()
	defer l.mu.RUnlock()
	r := l.st.grants[id]
	if r == nil {
		return GrantStatus{}, false
	}
	return r.status(now), true
}

// GrantsFor returns the grants to grantee that are active at now(),
// sorted by Created.
func (l *Ledger) GrantsFor(grantee peer.ID) []GrantStatus {
	now := l.now()
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []GrantStatus
	for _, r := range l.st.byGrantee[grantee] {
		if r.state(now) == StateActive {
			out = append(out, r.status(now))
		}
	}
	sortStatuses(out)
	return out
}

// StudyPatient tells the ledger whose a study is, for patient grants: the
// study's Patient ID and Issuer of Patient ID, and ok only for a study
// this facility holds as its own (a copy fetched from a partner is never
// covered by our patient grants).
type StudyPatient func(study string) (p Patient, ok bool)

// SetStudyPatient sets how Check learns a study's patient. Without it,
// patient grants cover nothing.
func (l *Ledger) SetStudyPatient(f StudyPatient) {
	l.mu.Lock()
	l.patientOf = f
	l.mu.Unlock()
}

// coversLocked says whether r's scope includes study. Called with mu held
// (read or write).
func (l *Ledger) coversLocked(r *grantRec, study string) bool {
	g := &r.sg.Grant
	if g.Patient == nil {
		_, ok := r.studies[study]
		return ok
	}
	if l.patientOf == nil {
		return false
	}
	p, ok := l.patientOf(study)
	return ok && g.Covers(study, p.ID, p.Issuer)
}

// Check decides whether grantee may perform action on study under grant
// grantID, at now(). It returns nil only when the grant exists, was issued
// by this node, is for grantee, is not revoked, now is within [NotBefore,
// Expires), and the grant covers the study and includes the action.
// Otherwise it returns the first failing condition in that order, as one
// of the decision sentinels (see errors.go) wrapped with the grant ID.
// A patient grant covers the study when the ledger's StudyPatient says
// it is ours and of that patient. For study grants Check reads only
// memory and does not allocate when it allows.
func (l *Ledger) Check(grantee peer.ID, grantID, study, action string) error {
	now := l.now()
	l.mu.RLock()
	defer l.mu.RUnlock()
	r := l.st.grants[grantID]
	var err error
	switch {
	case r == nil || r.sg.Grant.Issuer != l.self:
		err = ErrNoGrant
	case r.sg.Grant.Grantee != grantee:
		err = ErrWrongGrantee
	case r.rev != nil:
		err = ErrRevoked
	case now.Before(r.sg.Grant.NotBefore):
		err = ErrNotYetValid
	case !now.Before(r.sg.Grant.Expires):
		err = ErrExpired
	default:
		if !l.coversLocked(r, study) {
			err = ErrOutOfScope
		} else if _, ok := r.actions[action]; !ok {
			err = ErrActionNotGranted
		}
	}
	if err != nil {
		return fmt.Errorf("check grant %s: %w", safeID(grantID), err)
	}
	return nil
}
