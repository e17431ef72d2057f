package api

import "time"

// Me is who the caller of GET /api/v1/me is: what the web app shows in
// its header and which of its pages it offers (the node still checks
// every route's roles).
type Me struct {
	User     string `json:"user_id"`  // the user's ID (the audit's actor), or admin for the node's admin token
	Name     string `json:"name"`     // the user's name
	Role     string `json:"role"`     // Role* constants
	Facility string `json:"facility"` // this node's facility name
	// CSRF is, for a caller signed in with the web app's session cookie,
	// the value its state-changing requests must carry in the
	// X-Pacsnet-CSRF header ([HeaderCSRF]); empty for bearer tokens.
	CSRF string `json:"csrf,omitempty"`
	// SessionIdleSeconds is how long a web session lasts without a
	// request (users.session_idle).
	SessionIdleSeconds int `json:"session_idle_seconds"`
}

// Web app session: the cookie POST /login sets and the header its
// state-changing API requests carry.
const (
	// CookieSession is the name of the HttpOnly, SameSite=Strict cookie
	// holding a web session's secret.
	CookieSession = "pacsnet_session"
	// HeaderCSRF must carry [Me.CSRF] on every request authenticated by
	// the session cookie whose method is not GET or HEAD.
	HeaderCSRF = "X-Pacsnet-CSRF"
)

// WorklistQuery filters and pages GET /api/v1/worklist. Every filter is
// optional; text matches ignore case.
type WorklistQuery struct {
	PatientName string `query:"patient_name"` // words each found in the name (family, given, ...), e.g. "smith jo"
	PatientID   string `query:"patient_id"`   // the Patient ID, exactly
	Accession   string `query:"accession"`    // the Accession Number, exactly
	Modality    string `query:"modality"`     // a modality of the study, e.g. CT
	From        string `query:"from"`         // studies on or after this date, YYYYMMDD
	To          string `query:"to"`           // studies on or before this date, YYYYMMDD
	Source      string `query:"source"`       // "local" (imported here), or a partner (peer ID or name) the study came from or is shared by
	Location    string `query:"location"`     // Location* constants; empty: both
	Offset      int    `query:"offset"`       // rows to skip
	Limit       int    `query:"limit"`        // rows to answer: 1 to 500, default 50
}

// Where a worklist study is: the values of WorklistStudy.Location and
// WorklistQuery.Location.
const (
	LocationHere    = "here"    // in the local archive: imported here, or fetched (maybe partly)
	LocationPartner = "partner" // shared with us by a partner and not (fully) fetched
)

// WorklistPage is one page of the worklist: the local studies and those
// partners shared with this facility in one list, newest study first.
type WorklistPage struct {
	Total  int             `json:"total"`  // rows matching the filters
	Offset int             `json:"offset"` // of the first row answered
	Limit  int             `json:"limit"`  // page size used
	Rows   []WorklistStudy `json:"rows"`   // the page
}

// WorklistStudy is one row of the worklist.
type WorklistStudy struct {
	StudyAttributes
	Location  string         `json:"location"`         // Location* constants
	Origin    *PartnerRef    `json:"origin,omitempty"` // the partner it was fetched from or that shares it; absent: imported here
	Instances int            `json:"instances"`        // here: instances held; partner: instances the manifest lists
	Expected  int            `json:"expected,omitempty"`
	Complete  bool           `json:"complete"`         // here: every instance is held
	Shared    *WorklistGrant `json:"shared,omitempty"` // a partner's study: our access to it
}

// WorklistGrant is this facility's access to a partner's study, from its
// latest manifest (see [SharedStudy]).
type WorklistGrant struct {
	State   string    `json:"state"`                  // Shared* constants: available, revoked, expired, pending
	GrantID string    `json:"grant_id"`               // the grant
	Expires time.Time `json:"expires"`                // when it expires
	Scope   string    `json:"scope"`                  // Scope* constants
	User    string    `json:"grantee_user,omitempty"` // the grant names this user here
	Fetched bool      `json:"fetched"`                // every instance is here
}

// EventStreamBody stands in a [Route]'s Response for a body of
// server-sent events (text/event-stream, the HTML standard's
// EventSource): see the route's Doc for its events.
type EventStreamBody []byte

// ZipBody stands in a [Route]'s Response for a ZIP archive
// (application/zip), streamed.
type ZipBody []byte

// Content types besides JSON and DICOM.
const (
	ContentTypeEventStream = "text/event-stream"
	ContentTypeZip         = "application/zip"
)
