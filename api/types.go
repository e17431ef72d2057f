package api

import (
	"encoding/json"
	"net/http"
	"time"
)

// PartnerRef names a partner facility inside another object, under a field
// named for its role there (origin, issuer, grantee, holder, peer).
type PartnerRef struct {
	PeerID string `json:"peer_id"`        // libp2p peer ID
	Name   string `json:"name,omitempty"` // the partner's name, when it is (still) a partner
}

// Partner is a partner facility: one whose invite this node admitted.
type Partner struct {
	PeerID    string    `json:"peer_id"`   // libp2p peer ID
	Name      string    `json:"name"`      // facility name from its invite
	Recipient string    `json:"recipient"` // age1pq… hybrid recipient that manifests to it are encrypted to
	Addrs     []string  `json:"addrs"`     // libp2p multiaddrs from its invite
	Added     time.Time `json:"added"`     // when it was admitted

	Online   bool      `json:"online"`             // connected now
	LastSeen time.Time `json:"last_seen,omitzero"` // when a connection to it was last open (now, when online); absent: not since this node started
}

// AddPartnerRequest admits the facility an invite describes.
type AddPartnerRequest struct {
	Invite string `json:"invite"` // pacsnet-invite-1:… as `pacsnet invite` prints it
}

// Invite is this facility's signed invite, for a partner to add.
type Invite struct {
	Invite string `json:"invite"`           // pacsnet-invite-1:…, one line
	Notice string `json:"notice,omitempty"` // what the admin should know before sending it, e.g. that it names only loopback addresses
}

// Status says what the node is and where it listens.
type Status struct {
	Name     string   `json:"name"`     // facility name
	AETitle  string   `json:"ae_title"` // DICOM AE title
	PeerID   string   `json:"peer_id"`  // libp2p peer ID
	P2P      []string `json:"p2p"`      // libp2p listen multiaddrs
	HTTP     string   `json:"http"`     // local API listen address (host:port)
	DICOM    string   `json:"dicom"`    // DICOM listen address; empty when the DICOM listener is off
	Partners int      `json:"partners"` // number of partner facilities
	Outbox   int      `json:"outbox"`   // manifests awaiting delivery
	Version  string   `json:"version"`  // the node's build (module version, or (devel))
	// DICOMAssociations is the number of DICOM associations open now.
	DICOMAssociations int `json:"dicom_associations"`

	Health         string          `json:"health"`             // Health* constants
	Problems       []string        `json:"problems,omitempty"` // why health is not ok, one sentence each
	ArchiveBytes   int64           `json:"archive_bytes"`      // bytes the encrypted archive takes on disk
	DiskFree       uint64          `json:"disk_free"`          // bytes free for the node on the archive's file system
	DiskTotal      uint64          `json:"disk_total"`         // size of that file system
	PartnersOnline int             `json:"partners_online"`    // partners connected now
	PartnerStates  []PartnerStatus `json:"partner_states"`     // each partner: reachability and manifests waiting for it, by name
	Fetches        []FetchJob      `json:"fetches"`            // fetches running or waiting for their holder

	ForwardTo        string `json:"forward_to,omitempty"`         // dicom.forward_to: the AE fetched studies are sent to; empty: off
	ForwardsPending  int    `json:"forwards_pending"`             // fetched studies waiting to be sent to it
	ForwardLastError string `json:"forward_last_error,omitempty"` // why the last attempt failed, while items wait

	AuditShipping *AuditShipping `json:"audit_shipping,omitempty"` // the audit stream to a syslog collector (config audit.syslog); absent when off

	RequestsPending   int `json:"requests_pending"`    // partners' access requests waiting for an admin's decision
	EmergencyToReview int `json:"emergency_to_review"` // break-glass accesses granted and not yet reviewed
}

// Node health: the values of Status.Health.
const (
	HealthOK       = "ok"
	HealthDegraded = "degraded" // serving, but Status.Problems needs an admin's attention
)

// PartnerStatus is one partner as `pacsnet status` shows it.
type PartnerStatus struct {
	PartnerRef
	Online    bool      `json:"online"`               // connected now
	LastSeen  time.Time `json:"last_seen,omitzero"`   // as Partner.LastSeen
	Outbox    int       `json:"outbox"`               // manifests waiting for delivery to it
	LastError string    `json:"last_error,omitempty"` // why the last delivery to it failed, while items wait
}

// StudyAttributes are the patient and study attributes of a study, as its
// instances carry them. Study and SharedStudy embed them, so they appear
// flattened in their JSON.
type StudyAttributes struct {
	StudyUID          string   `json:"study_uid"`                      // Study Instance UID (0020,000D)
	PatientID         string   `json:"patient_id"`                     // (0010,0020)
	IssuerOfPatientID string   `json:"issuer_of_patient_id,omitempty"` // (0010,0021)
	PatientName       string   `json:"patient_name"`                   // (0010,0010), DICOM PN form
	PatientBirthDate  string   `json:"patient_birth_date,omitempty"`   // (0010,0030), YYYYMMDD
	PatientSex        string   `json:"patient_sex,omitempty"`          // (0010,0040)
	StudyDate         string   `json:"study_date,omitempty"`           // (0008,0020), YYYYMMDD
	StudyTime         string   `json:"study_time,omitempty"`           // (0008,0030), HHMMSS.FFFFFF
	Description       string   `json:"description,omitempty"`          // Study Description (0008,1030)
	AccessionNumber   string   `json:"accession_number,omitempty"`     // (0008,0050)
	StudyID           string   `json:"study_id,omitempty"`             // (0020,0010)
	Modalities        []string `json:"modalities"`                     // modalities of the study's series
}

// Study is a study held in the local archive, imported here or fetched
// from a partner.
type Study struct {
	StudyAttributes
	Origin    *PartnerRef `json:"origin,omitempty"`   // the partner it was fetched from; absent: imported here
	Instances int         `json:"instances"`          // instances held
	Expected  int         `json:"expected,omitempty"` // a fetched study: instances its manifest lists
	Complete  bool        `json:"complete"`           // false while a fetched study lacks instances
	Bytes     int64       `json:"bytes"`              // plaintext bytes of the instances held
	Updated   time.Time   `json:"updated"`            // last instance added
}

// SharedStudy is a study a partner shared with this facility: what its
// latest manifest says.
type SharedStudy struct {
	StudyAttributes
	Issuer    PartnerRef `json:"issuer"`                 // the partner that holds the study and granted access
	State     string     `json:"state"`                  // Shared* constants: available, revoked or expired
	GrantID   string     `json:"grant_id"`               // the grant the manifest carries
	Expires   time.Time  `json:"expires"`                // when that grant expires
	User      string     `json:"grantee_user,omitempty"` // the grant names this user here: only they may fetch
	Scope     string     `json:"scope"`                  // Scope* constants: the grant names the study, or the patient
	Version   uint64     `json:"version"`                // the issuer's manifest version for the study
	Instances int        `json:"instances"`              // instances the manifest lists
	Bytes     int64      `json:"bytes"`                  // their plaintext bytes
	Received  time.Time  `json:"received"`               // when the manifest arrived
	Fetched   bool       `json:"fetched"`                // every instance is in the local archive
}

// Grant scopes: the values of SharedStudy.Scope.
const (
	ScopeStudy   = "study"   // the grant names studies
	ScopePatient = "patient" // the grant names the patient: later studies of the patient come too
)

// Series is one series of a study.
type Series struct {
	SeriesUID   string `json:"series_uid"`            // Series Instance UID (0020,000E)
	StudyUID    string `json:"study_uid"`             // Study Instance UID
	Modality    string `json:"modality,omitempty"`    // (0008,0060)
	Description string `json:"description,omitempty"` // Series Description (0008,103E)
	Number      int    `json:"number,omitempty"`      // Series Number (0020,0011)
	Instances   int    `json:"instances"`             // instances held
}

// Instance is one instance held in the local archive.
type Instance struct {
	StudyUID          string  `json:"study_uid"`                    // Study Instance UID
	SeriesUID         string  `json:"series_uid"`                   // Series Instance UID
	SOPInstanceUID    string  `json:"sop_instance_uid"`             // SOP Instance UID (0008,0018)
	SOPClassUID       string  `json:"sop_class_uid"`                // SOP Class UID (0008,0016)
	TransferSyntaxUID string  `json:"transfer_syntax_uid"`          // as stored
	Modality          string  `json:"modality,omitempty"`           // (0008,0060)
	SeriesNumber      int     `json:"series_number,omitempty"`      // (0020,0011)
	SeriesDescription string  `json:"series_description,omitempty"` // (0008,103E)
	InstanceNumber    int     `json:"instance_number,omitempty"`    // (0020,0013)
	Size              int64   `json:"size"`                         // plaintext bytes of the Part-10 file
	SHA256            string  `json:"sha256"`                       // hex SHA-256 of the plaintext Part-10 bytes (preamble zeroed)
	Blocks            []Block `json:"blocks"`                       // the encrypted blocks it is stored in, in order
}

// Block is one ciphertext block of an instance.
type Block struct {
	CID  string `json:"cid"`  // content identifier (CIDv1, raw, SHA2-256)
	Size int    `json:"size"` // ciphertext bytes
}

// Import outcomes: the values of ImportResult.Outcome.
const (
	OutcomeStored    = "stored"    // stored now
	OutcomeDuplicate = "duplicate" // the same instance was already stored: idempotent success
	OutcomeConflict  = "conflict"  // a different instance with the same SOP Instance UID is stored; nothing was overwritten
	OutcomeRejected  = "rejected"  // not acceptable DICOM (or too large)
	OutcomeFailed    = "failed"    // a local failure (disk, database), or the file could not be read or sent
)

// ImportResult is what the node did with one imported instance. POST
// /api/v1/instances answers with it whatever the outcome, with the HTTP
// status [ImportResult.HTTPStatus] gives.
type ImportResult struct {
	Outcome        string   `json:"outcome"`                    // Outcome* constants
	SOPInstanceUID string   `json:"sop_instance_uid,omitempty"` // when the file got that far
	StudyUID       string   `json:"study_uid,omitempty"`        // when the file got that far
	Size           int64    `json:"size,omitempty"`             // bytes stored (stored, duplicate)
	SHA256         string   `json:"sha256,omitempty"`           // hex SHA-256 of the instance as stored
	Code           string   `json:"code,omitempty"`             // a rejection's reason code, e.g. missing-attribute, too-large or partner-copy; insufficient-storage for a failure for lack of disk space
	Error          string   `json:"error,omitempty"`            // why it was not stored, for people
	Warnings       []string `json:"warnings,omitempty"`         // what was accepted but is worth knowing
}

// Grant purposes: the values of Grant.Purpose and GrantRequest.Purpose.
const (
	PurposeTreatment     = "treatment"
	PurposeSecondOpinion = "second-opinion"
	PurposeResearch      = "research-deidentified" // needs de-identification, which this build does not do: refused
)

// Grant states: the values of Grant.State.
const (
	GrantActive  = "active"
	GrantExpired = "expired"
	GrantRevoked = "revoked"
	GrantPending = "pending" // not yet valid
)

// ActionFetch is the action grants carry today: fetch the study's blocks.
const ActionFetch = "fetch"

// Grant is a grant this facility issued: a partner (the grantee) may fetch
// studies held here, for a purpose, until it expires or is revoked.
type Grant struct {
	GrantID     string          `json:"grant_id"`               // 32 lowercase hex digits
	Issuer      PartnerRef      `json:"issuer"`                 // the facility holding the studies (this one)
	Grantee     PartnerRef      `json:"grantee"`                // the partner granted access
	GranteeUser string          `json:"grantee_user,omitempty"` // a named user at the grantee
	StudyUIDs   []string        `json:"study_uids"`             // the studies granted; empty for a patient grant
	Patient     *GrantPatient   `json:"patient,omitempty"`      // a patient grant: every study of this patient held here, including later ones
	Actions     []string        `json:"actions"`                // what the grantee may do: fetch
	Purpose     string          `json:"purpose"`                // Purpose* constants
	NotBefore   time.Time       `json:"not_before"`             // valid from
	Expires     time.Time       `json:"expires"`                // valid until (exclusive)
	Created     time.Time       `json:"created"`                // issued
	State       string          `json:"state"`                  // Grant* state constants, at the time of the answer
	Revocation  *Revocation     `json:"revocation,omitempty"`   // present once revoked
	Signed      json.RawMessage `json:"signed"`                 // the signed grant exactly as issued, for offline verification (see docs/protocol.md)
}

// Revocation withdraws a grant.
type Revocation struct {
	GrantID string          `json:"grant_id"`         // the grant revoked
	Revoked time.Time       `json:"revoked"`          // when
	Reason  string          `json:"reason,omitempty"` // free text from the admin; never patient data
	Signed  json.RawMessage `json:"signed"`           // the signed revocation exactly as issued, for offline verification
}

// GrantPatient is the patient a patient grant covers: Patient ID and
// Issuer of Patient ID, matched exactly (an empty issuer matches only
// studies without one).
type GrantPatient struct {
	PatientID         string `json:"patient_id"`
	IssuerOfPatientID string `json:"issuer_of_patient_id,omitempty"`
}

// GrantRequest asks the node to grant a partner access to studies held
// here (StudyUID and StudyUIDs), or to a patient's studies (Patient),
// which include the patient's studies that arrive later.
type GrantRequest struct {
	To          string        `json:"to"`                     // the partner: peer ID or name
	StudyUID    string        `json:"study_uid,omitempty"`    // a study
	StudyUIDs   []string      `json:"study_uids,omitempty"`   // more studies
	Patient     *GrantPatient `json:"patient,omitempty"`      // instead of studies: a patient
	NotBefore   string        `json:"not_before,omitempty"`   // when the grant starts: a duration from now (12h) or an RFC 3339 time; default now
	Expires     string        `json:"expires,omitempty"`      // how long it lasts from its start: a duration such as 72h, 90m or 3d (ParseDuration); default: config exchange.default_grant_ttl
	Purpose     string        `json:"purpose,omitempty"`      // Purpose* constants; default treatment
	GranteeUser string        `json:"grantee_user,omitempty"` // a named user at the grantee
}

// AccessRequestCreate asks a partner for a patient's studies on behalf of
// the calling user (POST /api/v1/requests).
type AccessRequestCreate struct {
	To        string `json:"to"`                   // the partner that holds the studies: peer ID or name
	PatientID string `json:"patient_id"`           // the patient's ID at the partner
	Issuer    string `json:"issuer,omitempty"`     // Issuer of Patient ID
	BirthDate string `json:"birth_date,omitempty"` // YYYYMMDD, helps the holder match the patient
	Accession string `json:"accession,omitempty"`  // an accession number we know
	Purpose   string `json:"purpose"`              // PurposeTreatment or PurposeSecondOpinion
	Reason    string `json:"reason"`               // one of RequestReasons
	Note      string `json:"note,omitempty"`       // free text for the holder's admin (kept out of both audit chains; erasable there); at most 1024 bytes
	Emergency bool   `json:"emergency,omitempty"`  // break-glass: granted at once where the holder allows it for us, short, and reviewed
}

// RequestReasons are the codes an access request's reason may be.
var RequestReasons = []string{"continuity-of-care", "referral", "second-opinion", "follow-up", "transfer", "emergency-care"}

// DenyReasons are the codes a denial's reason may be.
var DenyReasons = []string{"no-consent", "not-our-patient", "insufficient-reason", "policy", "duplicate", "other"}

// ReviewOutcomes are the outcomes of an emergency access's review.
var ReviewOutcomes = []string{"justified", "not-justified"}

// Request states. Unsent and failed are ours only: unsent waits for the
// holder to be reachable (it is sent as soon as it is), failed was refused
// by the holder before it was recorded there (LastError says why).
const (
	RequestPending  = "pending"
	RequestApproved = "approved"
	RequestDenied   = "denied"
	RequestUnsent   = "unsent"
	RequestFailed   = "failed"
)

// AccessRequest is an access request as its requester or its holder
// sees it. State is RequestPending, RequestApproved or RequestDenied;
// an approved one names the grant (its manifests follow as usual).
type AccessRequest struct {
	RequestID  string      `json:"request_id"`           // 32 hex digits; commands accept a unique prefix of 8 or more
	Holder     *PartnerRef `json:"holder,omitempty"`     // ours: the partner asked
	Requester  *PartnerRef `json:"requester,omitempty"`  // theirs: the partner asking
	User       string      `json:"requesting_user"`      // the requesting user: ours by ID, or the partner's user ID
	PatientID  string      `json:"patient_id"`           // the patient asked for
	Issuer     string      `json:"issuer,omitempty"`     // Issuer of Patient ID
	BirthDate  string      `json:"birth_date,omitempty"` // as the requester gave it
	Accession  string      `json:"accession,omitempty"`  // as the requester gave it
	Purpose    string      `json:"purpose"`
	Reason     string      `json:"reason"`
	Note       string      `json:"note,omitempty"` // the requester's free text (empty once erased)
	Emergency  bool        `json:"emergency,omitempty"`
	Created    time.Time   `json:"created"` // sent (ours) or received (theirs)
	State      string      `json:"state"`
	GrantID    string      `json:"grant_id,omitempty"`    // approved: the grant
	Expires    *time.Time  `json:"expires,omitempty"`     // approved: the grant's expiry
	DenyReason string      `json:"deny_reason,omitempty"` // denied: one of DenyReasons
	Decided    *time.Time  `json:"decided,omitempty"`
	DecidedBy  string      `json:"decided_by,omitempty"` // theirs: the admin, or system for break-glass
	Review     string      `json:"review,omitempty"`     // theirs, emergency: the review outcome
	ReviewedBy string      `json:"reviewed_by,omitempty"`
	Checked    *time.Time  `json:"checked,omitempty"`      // ours: when the holder last answered about it
	LastError  string      `json:"last_error,omitempty"`   // ours, unsent or failed: why it has not reached the holder
	Studies    int         `json:"studies_here,omitempty"` // theirs: how many of our own studies the patient has here
}

// PatientSearch asks partners which of a patient's studies they hold
// (POST /api/v1/search).
type PatientSearch struct {
	PatientID string   `json:"patient_id"`
	Issuer    string   `json:"issuer,omitempty"`     // Issuer of Patient ID
	BirthDate string   `json:"birth_date,omitempty"` // YYYYMMDD: then only a partner's studies with this birth date match (not those without one)
	Partners  []string `json:"partners,omitempty"`   // names or peer IDs; empty: every partner
}

// PatientSearchResult is one partner's answer to a PatientSearch.
type PatientSearchResult struct {
	Holder  PartnerRef   `json:"holder"`
	Studies []FoundStudy `json:"found"`           // empty also when the partner does not let us search it
	Error   string       `json:"error,omitempty"` // the partner could not be asked (unreachable, refused, rate-limited)
}

// FoundStudy is a study a partner holds of the patient: nothing else of
// it, and no pixel data.
type FoundStudy struct {
	StudyUID    string   `json:"study_uid"`
	StudyDate   string   `json:"study_date,omitempty"` // YYYYMMDD
	Modalities  []string `json:"modalities,omitempty"`
	Description string   `json:"description,omitempty"`
	Instances   int      `json:"instances"`
	Shared      string   `json:"shared,omitempty"` // the study's state in our shared list (available, fetched, expired …), if the partner shared it with us
}

// RequestLists is what pacsnet requests --json prints: partners'
// requests to us (empty for a clinician) and ours to partners.
type RequestLists struct {
	Incoming []AccessRequest `json:"incoming"`
	Outgoing []AccessRequest `json:"outgoing"`
}

// ApproveRequest approves a partner's pending request: a grant to the
// requesting user of the patient's studies here, or of the listed ones.
type ApproveRequest struct {
	Expires   string   `json:"expires,omitempty"`    // how long the grant lasts (72h, 3d); default exchange.default_grant_ttl
	StudyUIDs []string `json:"study_uids,omitempty"` // narrow the grant to these studies of the patient
}

// DenyRequest denies a partner's pending request.
type DenyRequest struct {
	Reason string `json:"reason"` // one of DenyReasons
}

// ReviewRequest records the review of an emergency access.
type ReviewRequest struct {
	Outcome string `json:"outcome"` // one of ReviewOutcomes
}

// PartnerRemoved answers the removal of a partner: before it was cut off,
// the revocations of its live grants were sent to it, with a bounded wait
// (exchange.farewell_timeout).
type PartnerRemoved struct {
	Partner
	RevokedGrants int `json:"revoked_grants"` // live grants revoked
	Delivered     int `json:"delivered"`      // manifests (the revocations, and any still queued) it received before the cut
	Undelivered   int `json:"undelivered"`    // manifests it did not receive in time: it learns of those revocations at its next request, which is refused
}

// RevokeRequest says why a grant is revoked. The body is optional.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"` // one of RevokeReasons; empty: unspecified
}

// RevokeReasons are the codes a revocation's reason may be. A reason is a
// code, never free text: it is signed, sent to the partner and kept in
// the hash-chained audit log for good, where a sentence could name a
// patient and could never be erased.
var RevokeReasons = []string{"consent-withdrawn", "treatment-ended", "sent-in-error", "security", "policy",
	"partner-removed", "unspecified"}

// Shared-study states: the values of SharedStudy.State.
const (
	SharedAvailable = "available"
	SharedRevoked   = "revoked"
	SharedExpired   = "expired"
	SharedPending   = "pending" // the grant starts later (not before)
)

// FetchRequest starts fetching a study a partner shared.
type FetchRequest struct {
	StudyUID string `json:"study_uid"`      // the study
	From     string `json:"from,omitempty"` // the partner to fetch from (peer ID or name); needed when no manifest for the study is held
}

// Fetch states: the values of FetchJob.State.
const (
	FetchRunning = "running"
	FetchWaiting = "waiting" // the holder is unreachable; retrying
	FetchDone    = "done"
	FetchFailed  = "failed"
)

// FetchJob is one fetch and its progress.
type FetchJob struct {
	FetchID       string        `json:"fetch_id"`                 // to ask for its progress
	StudyUID      string        `json:"study_uid"`                // the study fetched
	Holder        PartnerRef    `json:"holder"`                   // the partner fetched from
	State         string        `json:"state"`                    // Fetch* constants
	Instances     int           `json:"instances"`                // instances the manifest lists
	InstancesDone int           `json:"instances_done"`           // of which are verified and stored here
	Bytes         int64         `json:"bytes"`                    // ciphertext bytes of all the study's blocks
	BytesDone     int64         `json:"bytes_done"`               // of which are stored here (received now or before)
	BytesResumed  int64         `json:"bytes_resumed"`            // of which were already held when the fetch started
	Rate          float64       `json:"rate,omitempty"`           // running: bytes per second received, smoothed over the last seconds
	ETASeconds    float64       `json:"eta_seconds,omitempty"`    // running: seconds left at that rate; absent when not known yet
	Sources       []FetchSource `json:"sources,omitempty"`        // each holder fetched from and its part, as of the last progress report
	Attempts      int           `json:"attempts"`                 // connection attempts to the holder
	NextAttempt   time.Time     `json:"next_attempt,omitzero"`    // waiting: when the holder is tried next
	GiveUpAt      time.Time     `json:"give_up_at,omitzero"`      // waiting: when the fetch fails unless the holder answers (exchange.fetch_retry_for)
	Started       time.Time     `json:"started"`                  // when the fetch started
	Finished      time.Time     `json:"finished,omitzero"`        // when it ended (done or failed)
	WaitedSeconds float64       `json:"waited_seconds,omitempty"` // of the time since Started, how long it waited for unreachable holders (attempts that got no block, and the pauses between them)
	Error         string        `json:"error,omitempty"`          // why it failed, or (waiting) why the holder is being retried: a sentence
}

// FetchSource is one holder's part in a fetch.
type FetchSource struct {
	Holder PartnerRef `json:"holder"` // the partner the blocks come from
	Bytes  int64      `json:"bytes"`  // verified bytes it delivered in this fetch
	State  string     `json:"state"`  // FetchSource* constants
}

// Holder states in a fetch: the values of FetchSource.State. A holder
// that is not active gets no more requests until the fetch's next
// attempt.
const (
	FetchSourceActive  = "active"
	FetchSourceFailed  = "failed"  // its transfer failed (refused, unreachable, the stream broke)
	FetchSourceStalled = "stalled" // it delivered no block for 2 minutes while it owed some
	FetchSourceCorrupt = "corrupt" // it sent bytes that are not the block asked for; audited
)

// SendRequest starts sending a study held here to a known application
// entity with C-STORE (pacsnet send).
type SendRequest struct {
	StudyUID string `json:"study_uid"` // the study
	To       string `json:"to"`        // the AE title, as pacsnet ae list shows it
}

// Send states: the values of SendJob.State.
const (
	SendRunning = "running"
	SendDone    = "done"   // every instance was offered; Failed says how many the AE refused
	SendFailed  = "failed" // the association failed, or the AE accepted none of the syntaxes held (Error)
)

// SendJob is one send and its progress.
type SendJob struct {
	SendID    string    `json:"send_id"`           // to ask for its progress
	StudyUID  string    `json:"study_uid"`         // the study sent
	To        string    `json:"to"`                // the AE title
	State     string    `json:"state"`             // Send* constants
	Instances int       `json:"instances"`         // instances to send
	Completed int       `json:"completed"`         // stored by the AE
	Warning   int       `json:"warning"`           // stored with a warning status
	Failed    int       `json:"failed"`            // refused, or not sendable (no presentation context)
	Started   time.Time `json:"started"`           // when the send started
	Finished  time.Time `json:"finished,omitzero"` // when it ended
	Error     string    `json:"error,omitempty"`   // why it failed
}

// Manifest kinds: the values of OutboxItem.Kind.
const (
	ManifestStudy      = "study"      // a granted study: metadata, blocks and the study key
	ManifestRevocation = "revocation" // the grant named is revoked
)

// OutboxItem is a manifest awaiting delivery to a partner.
type OutboxItem struct {
	Seq       uint64     `json:"seq"`                  // queue order
	Peer      PartnerRef `json:"peer"`                 // the partner it is for
	Kind      string     `json:"kind"`                 // Manifest* constants
	StudyUID  string     `json:"study_uid"`            // the study it concerns
	Attempts  int        `json:"attempts"`             // delivery attempts so far
	Next      time.Time  `json:"next"`                 // next attempt not before
	LastError string     `json:"last_error,omitempty"` // why the last attempt failed
}

// Audit decisions: the values of AuditEntry.Decision (or empty).
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// ActorSystem is AuditEntry.Actor when no local user is involved.
const ActorSystem = "system"

// Audit actions: the values of AuditEntry.Action this version writes.
const (
	ActGrant            = "grant"
	ActRevoke           = "revoke"
	ActManifestSent     = "manifest-sent"
	ActManifestReceived = "manifest-received"
	ActManifestRejected = "manifest-rejected"
	ActFetchAllowed     = "fetch-allowed"
	ActFetchDenied      = "fetch-denied"
	ActFetchCompleted   = "fetch-completed"
	ActFetchFailed      = "fetch-failed"
	ActImport           = "import"
	ActExport           = "export"
	ActPeerAdded        = "peer-added"
	ActPeerRemoved      = "peer-removed"
	ActAccessRequested  = "access-requested"
	ActQuery            = "query"
	ActInstanceRead     = "instance-read"

	ActFetchServedSecondary = "fetch-served-secondary" // blocks served as a secondary holder to a partner presenting the original holder's grant; reason for=<holder peer ID>
	ActFetchDeniedSecondary = "fetch-denied-secondary" // such a request refused (aggregated); reason for=<holder> and the deny reason
	ActHoldersListed        = "holders-listed"         // a grantee was told which facilities hold one of our studies (once per grantee and study in 10 minutes); reason holders=<peer IDs>

	ActAEAdded             = "ae-added"             // an application entity was added
	ActAERemoved           = "ae-removed"           // an application entity was removed
	ActAssociationAccepted = "association-accepted" // a DICOM association (once per calling AE in 10 minutes)
	ActAssociationRejected = "association-rejected" // a DICOM association from an unknown calling AE (aggregated)
	ActStorageCommitment   = "storage-commitment"   // a storage commitment request answered (once per calling AE a minute)
	ActDICOMMove           = "dicom-move"           // a study sent by C-MOVE (per study; reason "to:" and the destination AE)
	ActDICOMGet            = "dicom-get"            // a study sent by C-GET (per study)
	ActDICOMSend           = "dicom-send"           // a study sent with pacsnet send (reason "to:" and the AE)
	ActDICOMForward        = "dicom-forward"        // a fetched study forwarded to dicom.forward_to (reason "to:" and the AE)
)

// AuditEntry is one record of the hash-chained audit log. Prev and Hash
// chain the entries in the form the consent ledger stores them (its
// package documentation says how), which names fields differently: they
// cannot be recomputed from this view. GET /api/v1/audit/verify checks
// them.
type AuditEntry struct {
	Seq      uint64      `json:"seq"`                 // 1, 2, … without gaps
	Time     time.Time   `json:"time"`                // when
	Actor    string      `json:"actor"`               // local user, or system
	Peer     *PartnerRef `json:"peer,omitempty"`      // the remote facility concerned
	Action   string      `json:"action"`              // Act* constants
	StudyUID string      `json:"study_uid,omitempty"` // the study concerned
	GrantID  string      `json:"grant_id,omitempty"`  // the grant concerned
	Decision string      `json:"decision,omitempty"`  // Decision* constants, or empty
	Reason   string      `json:"reason,omitempty"`    // a short code; never patient data
	Count    uint64      `json:"count,omitempty"`     // above 1: the entry stands for this many events of its kind (repeated denials, aggregated)
	Expires  *time.Time  `json:"expires,omitempty"`   // a grant entry: the grant's expiry
	Facility string      `json:"facility,omitempty"`  // the facility whose node wrote the entry (absent in entries written before this field)
	Prev     string      `json:"prev"`                // hash of entry Seq-1; 64 zeros for entry 1
	Hash     string      `json:"hash"`                // this entry's hash
}

// MaxAuditLimit is the most entries GET /api/v1/audit answers at once.
const MaxAuditLimit = 1000

// AuditQuery selects a page of the audit log. Its fields are URL query
// parameters, not a JSON body.
type AuditQuery struct {
	After   uint64    `query:"after"`     // entries with Seq greater than this; 0: from the first
	Limit   int       `query:"limit"`     // at most this many; 0 or more than MaxAuditLimit: MaxAuditLimit
	Since   time.Time `query:"since"`     // entries written at or after this time (RFC 3339)
	Partner string    `query:"partner"`   // entries about this partner: peer ID, or name (also a former partner's, as recorded)
	Study   string    `query:"study_uid"` // entries about this Study Instance UID
	Action  string    `query:"action"`    // entries of this action (Act* constants)
	Actor   string    `query:"actor"`     // entries of this local user: user ID, or name
	Until   time.Time `query:"until"`     // entries written before this time (RFC 3339)
}

// HeaderAuditNext, on an answer of GET /api/v1/audit, is the Seq to pass
// as after for the next page; it is absent when the answer reaches the end
// of the log. With filters, a page may hold fewer entries than asked (the
// node examines at most MaxAuditScan entries per request), even none, and
// still have a next page.
const HeaderAuditNext = "X-Pacsnet-Audit-Next"

// MaxAuditScan is the most entries one GET /api/v1/audit examines.
const MaxAuditScan = 100000

// AuditActions lists the Act* constants: the values AuditQuery.Action
// accepts.
var AuditActions = []string{ActGrant, ActRevoke, ActManifestSent, ActManifestReceived, ActManifestRejected,
	ActFetchAllowed, ActFetchDenied, ActFetchCompleted, ActFetchFailed, ActImport, ActExport, ActPeerAdded,
	ActPeerRemoved, ActAccessRequested, ActQuery, ActInstanceRead, ActAEAdded, ActAERemoved, ActAssociationAccepted,
	ActAssociationRejected, ActStorageCommitment, ActDICOMMove, ActDICOMGet, ActDICOMSend, ActDICOMForward,
	ActUserAdded, ActUserDisabled, ActUserRoleChanged, ActUserPasswordChanged, ActTokenIssued, ActTokenRevoked,
	ActLogin, ActLoginFailed, ActLoginLocked, ActLogout, ActAuditCheckpoint, ActRequestSent, ActRequestApproved,
	ActRequestDenied, ActEmergencyAccess, ActEmergencyReviewed, ActAskRefused, ActPatientSearch, ActPatientQuery,
	ActAuditExported, ActAuditVerified, ActRequestNoteErased, ActFetchServedSecondary, ActFetchDeniedSecondary, ActHoldersListed}

// Audit export formats (GET /api/v1/audit/export, pacsnet audit --export).
const (
	AuditFormatJSON        = "json"         // one entry per line, as the ledger stores it (prev and hash verifiable)
	AuditFormatDICOM       = "dicom"        // one DICOM audit message (PS3.15 A.5 XML) per line
	AuditFormatSyslog      = "syslog"       // one RFC 5424 line per entry, the entry as JSON in MSG
	AuditFormatSyslogDICOM = "syslog-dicom" // one RFC 5424 line per entry, the DICOM audit message in MSG (IHE ATNA)
)

// AuditFormats lists the export formats.
var AuditFormats = []string{AuditFormatJSON, AuditFormatDICOM, AuditFormatSyslog, AuditFormatSyslogDICOM}

// AuditExportQuery selects the entries to export and the format; the
// filters are AuditQuery's (limit aside: every matching entry is written).
type AuditExportQuery struct {
	After   uint64    `query:"after"`     // entries with Seq greater than this
	Since   time.Time `query:"since"`     // entries written at or after this time (RFC 3339)
	Partner string    `query:"partner"`   // entries about this partner: peer ID, or name
	Study   string    `query:"study_uid"` // entries about this Study Instance UID
	Action  string    `query:"action"`    // entries of this action (Act* constants)
	Actor   string    `query:"actor"`     // entries of this local user: user ID, or name
	Until   time.Time `query:"until"`     // entries written before this time (RFC 3339)
	Format  string    `query:"format"`    // AuditFormat* constants; default json
}

// AuditExportBody is the text GET /api/v1/audit/export answers: one entry
// per line in the format asked for.
type AuditExportBody []byte

// AuditShipping is the state of the node's audit stream to a syslog
// collector (config audit.syslog), in GET /api/v1/status.
type AuditShipping struct {
	Addr      string     `json:"addr"`                 // the collector
	Format    string     `json:"format"`               // syslog or syslog-dicom
	TLS       bool       `json:"tls"`                  // RFC 5425
	Connected bool       `json:"connected"`            // a connection is open
	Shipped   uint64     `json:"shipped"`              // the last entry written to the collector (the durable cursor)
	Backlog   uint64     `json:"backlog"`              // entries written since, still to send
	LastError string     `json:"last_error,omitempty"` // why the last attempt failed
	LastSent  *time.Time `json:"last_sent,omitempty"`
}

// AuditVerify is the outcome of checking every hash and link of the audit
// log.
type AuditVerify struct {
	OK          bool             `json:"ok"`                   // the chain is intact and agrees with every checkpoint
	Entries     uint64           `json:"entries"`              // entries checked
	Head        string           `json:"head"`                 // hash of the last entry
	Checkpoints uint64           `json:"checkpoints"`          // signed checkpoints the node stores (each verified)
	Checkpoint  *AuditCheckpoint `json:"checkpoint,omitempty"` // the stored or given checkpoint with the highest seq
	Error       string           `json:"error,omitempty"`      // what is wrong, naming the first bad entry or checkpoint
}

// AuditCheckpoint is a node's signed statement that its audit log held
// Seq entries, the last with hash Head, at Time. The node signs one every
// audit.checkpoint_interval when anything was written, when it stops, and
// on POST /api/v1/audit/checkpoint; each is followed in the log by an
// audit-checkpoint entry. Kept off the node, one proves later that the log
// was not truncated or rewritten behind it (POST /api/v1/audit/verify, or
// pacsnet audit --verify --against FILE on a stopped node).
type AuditCheckpoint struct {
	Node     string    `json:"node"`               // peer ID of the node that signed
	Facility string    `json:"facility,omitempty"` // its facility name
	Index    uint64    `json:"index"`              // 1, 2, … in signing order
	Seq      uint64    `json:"seq"`                // entries in the log when signed
	Head     string    `json:"head"`               // hash of entry Seq (64 zeros for an empty log)
	Time     time.Time `json:"time"`               // when signed
}

// SignedAuditCheckpoint is an AuditCheckpoint with the node's Ed25519
// signature (domain "audit-checkpoint", docs/protocol.md) over the JSON
// encoding of checkpoint. Its JSON is the checkpoint file format.
type SignedAuditCheckpoint struct {
	Checkpoint AuditCheckpoint `json:"checkpoint"`
	Sig        []byte          `json:"sig"` // base64
}

// MaxVerifyCheckpoints is the most checkpoints one AuditVerifyRequest may
// bring.
const MaxVerifyCheckpoints = 64

// AuditVerifyRequest asks for the audit log to be verified against
// checkpoints kept elsewhere, as well as the ones the node stores.
type AuditVerifyRequest struct {
	Checkpoints []SignedAuditCheckpoint `json:"checkpoints"` // 1 to MaxVerifyCheckpoints, each signed by this node
}

// ExportRequest asks the node to write a study's instances as DICOM
// Part-10 files into a folder on the node's machine.
type ExportRequest struct {
	Out          string `json:"out"`           // absolute path of the folder on the node's machine; created if missing
	AllowPartial bool   `json:"allow_partial"` // export a partly fetched study as far as it is held
	Merge        bool   `json:"merge"`         // add to a folder that is not empty: files already there must be identical (kept), any other is refused
}

// ExportResult is what an export wrote.
type ExportResult struct {
	StudyUID string         `json:"study_uid"` // the study exported
	Out      string         `json:"out"`       // the folder written
	Files    []ExportedFile `json:"files"`     // one per instance, in series and instance order
	Bytes    int64          `json:"bytes"`     // bytes written
	Verified int            `json:"verified"`  // files whose SHA-256, read back after sync, matched the archive's record

	Skipped    int    `json:"skipped,omitempty"`    // merging: files that were there already, identical, and were kept
	Incomplete string `json:"incomplete,omitempty"` // the INCOMPLETE file left in Out: the study is held here only in part
}

// ExportedFile is one file an export wrote.
type ExportedFile struct {
	Path           string `json:"path"`              // out/<series>/<SOP Instance UID>.dcm, see [ExportPath]
	SOPInstanceUID string `json:"sop_instance_uid"`  // the instance
	SHA256         string `json:"sha256"`            // hex SHA-256 of the file as written
	Size           int64  `json:"size"`              // bytes
	Skipped        bool   `json:"skipped,omitempty"` // merging: the file was there already, identical
}

// DICOMBody stands in a [Route]'s Request or Response for a body that is
// not JSON but the bytes of one DICOM instance (Content-Type
// application/dicom): a Part-10 file, or a bare dataset on import.
type DICOMBody []byte

// HTTPStatus is the status POST /api/v1/instances answers r with: 200 for
// stored and duplicate, 409 for a conflict, 413 for an instance rejected
// as too large (Code too-large), 422 for any other rejection, 507 for a
// failure for lack of disk space (Code insufficient-storage), 500 for any
// other local failure.
func (r ImportResult) HTTPStatus() int {
	switch r.Outcome {
	case OutcomeStored, OutcomeDuplicate:
		return http.StatusOK
	case OutcomeConflict:
		return CodeConflict.HTTPStatus()
	case OutcomeRejected:
		if r.Code == string(CodeTooLarge) {
			return CodeTooLarge.HTTPStatus()
		}
		return CodeRejected.HTTPStatus()
	case OutcomeFailed:
		if r.Code == string(CodeInsufficientStorage) {
			return CodeInsufficientStorage.HTTPStatus()
		}
	}
	return CodeInternal.HTTPStatus()
}

// AE is a known DICOM application entity: a modality, workstation or
// PACS that may associate with the node (the calling-AE allowlist), and
// where C-MOVE and sending reach it.
type AE struct {
	Title           string    `json:"title"`                      // AE title, 1-16 characters, without padding spaces
	Host            string    `json:"host"`                       // host name or IP address
	Port            int       `json:"port"`                       // its DICOM port
	RestrictAddress bool      `json:"restrict_address,omitempty"` // associations only from Host's addresses
	TLS             bool      `json:"tls,omitempty"`              // connections to it use DICOM TLS (PS3.15 B.12)
	Source          string    `json:"source"`                     // AESource* constants: where it is defined
	Added           time.Time `json:"added,omitzero"`             // when it was added (API-defined AEs)
}

// Where an AE is defined: the values of AE.Source. Config-defined AEs are
// changed in config.toml, not through the API.
const (
	AESourceAPI    = "api"
	AESourceConfig = "config"
)

// AddAERequest adds (or updates) a known application entity.
type AddAERequest struct {
	Title           string `json:"title"`                      // AE title, 1-16 characters of the default repertoire, no backslash
	Host            string `json:"host"`                       // host name or IP address
	Port            int    `json:"port"`                       // 1-65535
	RestrictAddress bool   `json:"restrict_address,omitempty"` // accept its associations only from Host's addresses
	TLS             bool   `json:"tls,omitempty"`              // reach it with DICOM TLS
}

// AEEcho is the outcome of a C-ECHO the node sent to a known AE.
type AEEcho struct {
	Title        string  `json:"title"`        // the AE
	Milliseconds float64 `json:"milliseconds"` // association, C-ECHO and release
}

// Roles of local users. An [Route] lists those that may call it.
const (
	RoleAdmin     = "admin"     // partners, grants, users, DICOM AEs and the audit
	RoleClinician = "clinician" // studies: import, view, export, fetch and send
	RoleAuditor   = "auditor"   // reads and verifies the audit trail, nothing else
)

// Role sets of the route table.
var (
	RolesAll      = []string{RoleAdmin, RoleClinician, RoleAuditor}
	RolesAdmin    = []string{RoleAdmin}
	RolesClinical = []string{RoleAdmin, RoleClinician}
	RolesAudit    = []string{RoleAdmin, RoleAuditor}
)

// Audit actions of local users and their credentials. Their reason names
// the user by user_id, a token or session by its ID, and a login's source
// address; never a password or a token.
const (
	ActUserAdded           = "user-added"            // reason user=<id> role=<role>
	ActUserDisabled        = "user-disabled"         // reason user=<id>
	ActUserRoleChanged     = "user-role-changed"     // reason user=<id> role=<new> was=<old>
	ActUserPasswordChanged = "user-password-changed" // reason user=<id>
	ActTokenIssued         = "token-issued"          // reason user=<id> token=<token_id>; expires
	ActTokenRevoked        = "token-revoked"         // reason user=<id> token=<token_id>
	ActLogin               = "login"                 // actor the user; reason session=<id> from=<address>
	ActLoginFailed         = "login-failed"          // deny; reason unknown-user, bad-password or user-disabled, user=<id or unknown>, from=<address> (aggregated)
	ActLoginLocked         = "login-locked"          // deny: a login during its back-off (aggregated)
	ActLogout              = "logout"                // actor the user; reason session=<id>
	ActAuditCheckpoint     = "audit-checkpoint"      // a signed checkpoint of the log; reason index=<n> seq=<entries> head=<hash>
	ActRequestSent         = "request-sent"          // requester: one of our users asked a partner for a patient's studies; reason request=<id> purpose= reason=
	ActRequestApproved     = "request-approved"      // holder: an admin approved a request (the grant entry follows)
	ActRequestDenied       = "request-denied"        // holder: an admin denied a request; reason request=<id> reason=<code>
	ActEmergencyAccess     = "emergency-access"      // holder: an emergency request granted at once (break-glass)
	ActEmergencyReviewed   = "emergency-reviewed"    // holder: an emergency access reviewed; reason request=<id> outcome=<outcome>
	ActAskRefused          = "ask-refused"           // holder: a partner's signed message refused (malformed, replayed, expired; aggregated)
	ActPatientSearch       = "patient-search"        // asker: one of our users searched a partner for a patient's studies; reason results=<n> or the failure
	ActPatientQuery        = "patient-query"         // holder: a partner searched us; reason user=<their user> allowed=<yes|no> results=<n>
	ActAuditExported       = "audit-exported"        // the audit log was exported (reason format=<format>)
	ActAuditVerified       = "audit-verified"        // the audit log was verified through the API (reason verify, or verify against <n> checkpoints)
	ActRequestNoteErased   = "request-note-erased"   // holder: a request's free-text note erased; reason request=<id>
)

// ActorAdmin is the actor of the node's own admin token (HOME/keys/api.token).
const ActorAdmin = "admin"

// User is a local user. Users are never deleted, so user_id stays unique
// in the audit trail, whose entries name users by it.
type User struct {
	UserID      string    `json:"user_id"`      // unique, never reused; the audit trail's actor
	Name        string    `json:"name"`         // 1-64 of a-z 0-9 . _ -
	Role        string    `json:"role"`         // Role* constants
	Disabled    bool      `json:"disabled"`     // its tokens and sessions do not work
	Created     time.Time `json:"created"`      // when it was added
	PasswordSet time.Time `json:"password_set"` // when its password was last set
}

// AddUserRequest is the body of POST /api/v1/users.
type AddUserRequest struct {
	Name     string `json:"name"`               // 1-64 of a-z 0-9 . _ -
	Role     string `json:"role"`               // Role* constants
	Password string `json:"password,omitempty"` // 8-1024 bytes; empty: the node generates one
}

// UserPassword answers adding a user or setting a password.
type UserPassword struct {
	Account  User   `json:"account"`
	Password string `json:"password,omitempty"` // the generated one-time password, shown only in this answer
}

// PasswordRequest is the body of POST /api/v1/users/{user}/password.
type PasswordRequest struct {
	Password string `json:"password,omitempty"` // 8-1024 bytes; empty: the node generates one
}

// RoleRequest is the body of POST /api/v1/users/{user}/role.
type RoleRequest struct {
	Role string `json:"role"` // Role* constants
}

// Token is a user's API token, without its secret.
type Token struct {
	TokenID string    `json:"token_id"`  // what revoke names
	UserID  string    `json:"user_id"`   // the user it acts as
	User    string    `json:"user_name"` // that user's name
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Expired bool      `json:"expired"` // past its expiry (it no longer works)
}

// AddTokenRequest is the body of POST /api/v1/tokens.
type AddTokenRequest struct {
	User    string `json:"user_name"`         // the user's name
	Expires string `json:"expires,omitempty"` // lifetime, e.g. 30d or 12h; default users.token_ttl
}

// TokenIssued answers AddToken: the only time the token is shown.
type TokenIssued struct {
	Token  Token  `json:"token"`
	Secret string `json:"secret"` // the bearer token (Authorization: Bearer …); the node keeps only its SHA-256
}

// LoginRequest is the body of POST /api/v1/login.
type LoginRequest struct {
	User     string `json:"user_name"`
	Password string `json:"password"`
}

// Session answers a login.
type Session struct {
	Secret  string    `json:"secret"`  // the session's bearer token
	Account User      `json:"account"` // who logged in
	Expires time.Time `json:"expires"` // when it ends unless used again (each request moves it, up to the session maximum)
}

// LoggedOut answers a logout.
type LoggedOut struct {
	Ended bool `json:"ended"` // a session ended (false for an API token or the admin token)
}
