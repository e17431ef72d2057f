package consent

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/crypto"

	"github.com/pacsnet/pacsnet/internal/uid"
)

// Purpose is why access was granted. It travels in the signed grant so the
// grantee's node can enforce it too (e.g. de-identify for research).
type Purpose string

// Purposes.
const (
	PurposeTreatment     Purpose = "treatment"
	PurposeSecondOpinion Purpose = "second-opinion"
	PurposeResearch      Purpose = "research-deidentified"
)

func (p Purpose) valid() bool {
	switch p {
	case PurposeTreatment, PurposeSecondOpinion, PurposeResearch:
		return true
	}
	return false
}

// ActionFetch is the only action grants carry today: fetch the study's
// blocks.
const ActionFetch = "fetch"

// Limits on grant contents. They bound what a hostile signed grant can
// make a verifier hold, and keep grants small enough to travel in
// manifests.
const (
	MaxStudiesPerGrant = 1000
	maxUserLen         = 256
	maxReasonLen       = 1024
	maxActions         = 8
	maxActionLen       = 32
)

// Grant lets one facility (Grantee) perform Actions on Studies held by
// another (Issuer) for a Purpose, within [NotBefore, Expires).
type Grant struct {
	ID          string   `json:"id"`     // 128 random bits, 32 lowercase hex digits
	Issuer      peer.ID  `json:"issuer"` // the data-holding facility (the signer)
	Grantee     peer.ID  `json:"grantee"`
	GranteeUser string   `json:"grantee_user,omitempty"`
	Studies     []string `json:"studies"` // Study Instance UIDs; empty (null) in a patient grant
	// Patient, when set, makes the grant cover every study the issuer
	// holds of that patient, including studies that arrive after the
	// grant was signed. A grant names studies or a patient, never both.
	Patient   *Patient  `json:"patient,omitempty"`
	Actions   []string  `json:"actions"` // ["fetch"]
	Purpose   Purpose   `json:"purpose"`
	NotBefore time.Time `json:"not_before"`
	Expires   time.Time `json:"expires"` // > NotBefore
	Created   time.Time `json:"created"`
	// Emergency marks a break-glass grant: issued at once on a partner's
	// emergency request, short, not extendable, and reviewed afterwards.
	Emergency bool `json:"emergency,omitempty"`
}

// Patient names a patient the way a grant scopes to one: Patient ID
// (0010,0020) and Issuer of Patient ID (0010,0021), compared exactly. An
// empty Issuer matches only studies without one: a Patient ID alone is
// unique only within the issuer that assigned it, and a grant must never
// reach another patient who shares the number.
type Patient struct {
	ID     string `json:"id"`
	Issuer string `json:"issuer,omitempty"`
}

// Limits of a patient scope: the VR LO of both attributes (64 characters)
// with room for multi-byte character sets.
const maxPatientField = 256

func (p *Patient) validate() error {
	if strings.TrimSpace(p.ID) == "" {
		return errors.New("patient ID is empty")
	}
	if err := checkText(p.ID, maxPatientField); err != nil {
		return fmt.Errorf("patient ID: %w", err)
	}
	if err := checkText(p.Issuer, maxPatientField); err != nil {
		return fmt.Errorf("issuer of patient ID: %w", err)
	}
	return nil
}

// Covers says whether the grant's scope includes a study: one of its
// studies, or, for a patient grant, a study of that patient (patientID
// and issuer are the study's own Patient ID and Issuer of Patient ID).
// It looks at scope only, not at time, revocation or grantee.
func (g *Grant) Covers(study, patientID, issuer string) bool {
	if g.Patient != nil {
		return patientID != "" && g.Patient.ID == patientID && g.Patient.Issuer == issuer
	}
	return slices.Contains(g.Studies, study)
}

// Scope describes the grant's scope without naming a patient or a study,
// for audit entries and logs: "scope=patient" or "studies=N".
func (g *Grant) Scope() string {
	if g.Patient != nil {
		return "scope=patient"
	}
	return "studies=" + strconv.Itoa(len(g.Studies))
}

// SignedGrant is a Grant with the issuer's signature ([crypto.Sign], domain
// [crypto.DomainGrant]) over its canonical encoding: encoding/json of the
// Grant struct (fixed field order; the issuer writes times in UTC, RFC 3339
// with nanoseconds). A verifier re-encodes the decoded Grant, so a grant with
// fields this version does not know fails verification rather than being
// half-understood.
type SignedGrant struct {
	Grant Grant  `json:"grant"`
	Sig   []byte `json:"sig"`
}

// Verify checks that the grant is well formed and signed by its Issuer
// (whose Ed25519 key is inlined in the peer ID). It does not check time
// or revocation: that is [Ledger.Check]'s job on the issuer's side.
func (g *SignedGrant) Verify() error {
	if err := g.Grant.validate(); err != nil {
		return fmt.Errorf("verify grant: %w", err)
	}
	msg, err := json.Marshal(&g.Grant)
	if err != nil {
		return fmt.Errorf("verify grant: %w", err)
	}
	if err := crypto.VerifyPeer(g.Grant.Issuer, crypto.DomainGrant, msg, g.Sig); err != nil {
		return fmt.Errorf("verify grant %s: %w", g.Grant.ID, err)
	}
	return nil
}

func (g *SignedGrant) clone() *SignedGrant {
	c := *g
	c.Grant.Studies = slices.Clone(g.Grant.Studies)
	if g.Grant.Patient != nil {
		p := *g.Grant.Patient
		c.Grant.Patient = &p
	}
	c.Grant.Actions = append([]string(nil), g.Grant.Actions...)
	c.Sig = append([]byte(nil), g.Sig...)
	return &c
}

// validate checks structure only; messages never quote study UIDs.
func (g *Grant) validate() error {
	if !validID(g.ID) {
		return fmt.Errorf("malformed grant ID")
	}
	if err := validPeer(g.Issuer); err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	if err := validPeer(g.Grantee); err != nil {
		return fmt.Errorf("grantee: %w", err)
	}
	if g.Issuer == g.Grantee {
		return fmt.Errorf("grantee is the issuer")
	}
	if err := checkText(g.GranteeUser, maxUserLen); err != nil {
		return fmt.Errorf("grantee user: %w", err)
	}
	if g.Patient != nil {
		if len(g.Studies) != 0 {
			return fmt.Errorf("a patient grant also lists studies")
		}
		if err := g.Patient.validate(); err != nil {
			return err
		}
	} else if len(g.Studies) == 0 || len(g.Studies) > MaxStudiesPerGrant {
		return fmt.Errorf("%d studies, want 1..%d", len(g.Studies), MaxStudiesPerGrant)
	}
	for i, s := range g.Studies {
		if !validUID(s) {
			return fmt.Errorf("study %d is not a valid UID", i)
		}
	}
	if len(g.Actions) == 0 || len(g.Actions) > maxActions {
		return fmt.Errorf("%d actions, want 1..%d", len(g.Actions), maxActions)
	}
	for i, a := range g.Actions {
		if !validCode(a, maxActionLen) {
			return fmt.Errorf("action %d is malformed", i)
		}
	}
	if !g.Purpose.valid() {
		return fmt.Errorf("unknown purpose")
	}
	if g.NotBefore.IsZero() || g.Expires.IsZero() || g.Created.IsZero() {
		return fmt.Errorf("missing time")
	}
	if !g.Expires.After(g.NotBefore) {
		return fmt.Errorf("expires before it starts")
	}
	return nil
}

// Revocation withdraws a grant. It is signed by the grant's issuer.
type Revocation struct {
	GrantID string    `json:"grant_id"`
	Issuer  peer.ID   `json:"issuer"`
	Revoked time.Time `json:"revoked"`
	Reason  string    `json:"reason,omitempty"` // a RevokeReason code (older revocations: free text)
}

// RevokeReason says why a grant was revoked. It is a code, never free
// text: it is signed, sent to the grantee and kept in the hash-chained
// audit log for good, where a sentence ("patient withdrew consent, MRN
// 12345") could name a patient and could never be erased.
type RevokeReason string

// Revocation reasons.
const (
	RevokeConsentWithdrawn RevokeReason = "consent-withdrawn" // the patient withdrew consent
	RevokeTreatmentEnded   RevokeReason = "treatment-ended"   // the purpose is fulfilled
	RevokeSentInError      RevokeReason = "sent-in-error"     // wrong patient, study or partner
	RevokeSecurity         RevokeReason = "security"          // a suspected compromise at the partner
	RevokePolicy           RevokeReason = "policy"            // an institutional or legal decision
	RevokePartnerRemoved   RevokeReason = "partner-removed"   // the partnership ended (peer remove)
	RevokeUnspecified      RevokeReason = "unspecified"       // none given
)

var revokeReasons = []RevokeReason{RevokeConsentWithdrawn, RevokeTreatmentEnded, RevokeSentInError,
	RevokeSecurity, RevokePolicy, RevokePartnerRemoved, RevokeUnspecified}

// RevokeReasonCodes lists the revocation reason codes.
func RevokeReasonCodes() []string {
	out := make([]string, len(revokeReasons))
	for i, r := range revokeReasons {
		out[i] = string(r)
	}
	return out
}

func validRevokeReason(s string) bool {
	for _, r := range revokeReasons {
		if string(r) == s {
			return true
		}
	}
	return false
}

// SignedRevocation is a Revocation with the issuer's signature
// ([crypto.Sign], domain [crypto.DomainRevocation]) over the JSON encoding
// of Revocation.
type SignedRevocation struct {
	Revocation Revocation `json:"revocation"`
	Sig        []byte     `json:"sig"`
}

// Verify checks that the revocation is well formed and signed by its
// Issuer.
func (r *SignedRevocation) Verify() error {
	rv := &r.Revocation
	if !validID(rv.GrantID) {
		return fmt.Errorf("verify revocation: malformed grant ID")
	}
	if err := validPeer(rv.Issuer); err != nil {
		return fmt.Errorf("verify revocation: issuer: %w", err)
	}
	if rv.Revoked.IsZero() {
		return fmt.Errorf("verify revocation: missing time")
	}
	if err := checkText(rv.Reason, maxReasonLen); err != nil {
		return fmt.Errorf("verify revocation: reason: %w", err)
	}
	msg, err := json.Marshal(rv)
	if err != nil {
		return fmt.Errorf("verify revocation: %w", err)
	}
	if err := crypto.VerifyPeer(rv.Issuer, crypto.DomainRevocation, msg, r.Sig); err != nil {
		return fmt.Errorf("verify revocation of %s: %w", rv.GrantID, err)
	}
	return nil
}

func (r *SignedRevocation) clone() *SignedRevocation {
	c := *r
	c.Sig = append([]byte(nil), r.Sig...)
	return &c
}

// validID accepts exactly what newID produces: 32 lowercase hex digits.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func newID(rand interface{ Read([]byte) (int, error) }) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate grant ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// validPeer requires an Ed25519 peer ID (every pacsnet node has one) that
// survives a JSON round trip.
func validPeer(p peer.ID) error {
	if _, err := crypto.PublicKey(p); err != nil {
		return err
	}
	return roundTrips(p)
}

// roundTrips checks that p is some libp2p peer ID that JSON can carry:
// its string form decodes back to it. The audit log accepts any such ID,
// so a connection from an unexpected kind of peer is still recorded.
func roundTrips(p peer.ID) error {
	if len(p) == 0 || len(p) > 128 {
		return fmt.Errorf("peer ID of %d bytes", len(p))
	}
	if q, err := peer.Decode(p.String()); err != nil || q != p {
		return fmt.Errorf("peer ID does not round-trip")
	}
	return nil
}

// validUID is pacsnet's one UID rule (internal/uid): any study the
// archive stores can be granted, and a grant names nothing else.
func validUID(s string) bool { return uid.Valid(s) }

// validCode accepts short identifiers such as actions: [a-z0-9._-].
func validCode(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkText accepts valid UTF-8 without control characters, up to max
// bytes.
func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("longer than %d bytes", max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("contains control characters")
	}
	return nil
}

// sanitize makes s acceptable to checkText without failing: the audit log
// would rather keep a mangled field than lose the entry. Control
// characters become U+FFFD and the result is cut at a rune boundary.
func sanitize(s string, max int) string {
	if checkText(s, max) == nil {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
