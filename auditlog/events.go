package auditlog

import (
	"github.com/pacsnet/pacsnet/consent"
)

// code is a DICOM coded value (PS3.15 A.5.1 CodedValueType).
type code struct {
	Code, System, Text string
}

// Event IDs of PS3.15 Table A.5.3-1 (codes of PS3.16 CID 400).
var (
	evApplicationActivity = code{"110100", "DCM", "Application Activity"}
	evAuditLogUsed        = code{"110101", "DCM", "Audit Log Used"}
	evBeginTransferring   = code{"110102", "DCM", "Begin Transferring DICOM Instances"}
	evInstancesAccessed   = code{"110103", "DCM", "DICOM Instances Accessed"}
	evInstancesTransfer   = code{"110104", "DCM", "DICOM Instances Transferred"}
	evExport              = code{"110106", "DCM", "Export"}
	evQuery               = code{"110112", "DCM", "Query"}
	evSecurityAlert       = code{"110113", "DCM", "Security Alert"}
	evUserAuthentication  = code{"110114", "DCM", "User Authentication"}
)

// Event type codes (PS3.16 CID 401 and 402 for Security Alert and User
// Authentication).
var (
	etLogin                  = code{"110122", "DCM", "Login"}
	etLogout                 = code{"110123", "DCM", "Logout"}
	etNodeAuthentication     = code{"110126", "DCM", "Node Authentication"}
	etNetworkConfiguration   = code{"110128", "DCM", "Network Configuration"}
	etSecurityConfiguration  = code{"110129", "DCM", "Security Configuration"}
	etUseOfRestrictedFunc    = code{"110132", "DCM", "Use of Restricted Function"}
	etObjectSecurityChanged  = code{"110135", "DCM", "Object Security Attributes Changed"}
	etSecurityRolesChanged   = code{"110136", "DCM", "Security Roles Changed"}
	etUserSecurityAttributes = code{"110137", "DCM", "User security Attributes Changed"}
	etEmergencyOverride      = code{"110127", "DCM", "Emergency Override Started"}
)

// Active participant role IDs (PS3.16 CID 402).
var (
	roleApplication = code{"110150", "DCM", "Application"}
	roleDestination = code{"110152", "DCM", "Destination Role ID"}
	roleSource      = code{"110153", "DCM", "Source Role ID"}
)

// Participant object ID types. The grant has no standard code, so it
// carries a local one (the HL7 "99" prefix marks a local code system).
var (
	idStudyInstanceUID = code{"110180", "DCM", "Study Instance UID"}
	idGrant            = code{"grant", "99PACSNET", "pacsnet consent grant ID"}
)

// direction says which way data moved, relative to the node writing the
// entry; it picks the remote facility's role (source or destination).
type direction uint8

const (
	dirNone direction = iota
	dirIn             // the remote facility sent to us: it is the source
	dirOut            // we sent to the remote facility: it is the destination
)

// event is how one pacsnet action is reported as a DICOM audit message.
type event struct {
	ID     code
	Type   *code  // EventTypeCode, where the event has one
	Action string // EventActionCode: C, R, U, D or E
	Dir    direction
	// Failed marks actions that report a failure whatever the decision
	// (EventOutcomeIndicator 8, serious failure).
	Failed bool
	// Denied marks actions that are a refusal whatever the decision
	// (EventOutcomeIndicator 4, minor failure, as a deny decision is).
	Denied bool
	// PeerRequests marks actions a remote facility started: when no local
	// user is involved, the remote facility is the requestor.
	PeerRequests bool
}

func ref(c code) *code { return &c }

// Actions of reads of the audit log itself (verify and export through the
// node's API), reported as Audit Log Used.
const (
	actAuditVerified = "audit-verified"
	actAuditExported = "audit-exported"
)

// events maps every pacsnet audit action to the DICOM event it is reported
// as. It is the one place to change when an action is added; the test
// TestEveryActionMapped fails until it is. Actions not listed are
// reported as Application Activity (see eventFor).
var events = map[string]event{
	// Consent: a grant changes who may fetch a study, a security
	// attribute of that object.
	consent.ActGrant:  {ID: evSecurityAlert, Type: ref(etObjectSecurityChanged), Action: "E"},
	consent.ActRevoke: {ID: evSecurityAlert, Type: ref(etObjectSecurityChanged), Action: "E"},

	// Exchange between facilities. A manifest announces a study that the
	// receiver may then fetch: the beginning of a transfer.
	consent.ActManifestSent:     {ID: evBeginTransferring, Action: "E", Dir: dirOut},
	consent.ActManifestReceived: {ID: evBeginTransferring, Action: "E", Dir: dirIn, PeerRequests: true},
	consent.ActManifestRejected: {ID: evSecurityAlert, Type: ref(etNodeAuthentication), Action: "E", Dir: dirIn, PeerRequests: true, Denied: true},
	consent.ActFetchAllowed:     {ID: evBeginTransferring, Action: "E", Dir: dirOut, PeerRequests: true},
	consent.ActFetchDenied:      {ID: evSecurityAlert, Type: ref(etUseOfRestrictedFunc), Action: "E", Dir: dirOut, PeerRequests: true, Denied: true},
	consent.ActFetchCompleted:   {ID: evInstancesTransfer, Action: "C", Dir: dirIn},
	consent.ActFetchFailed:      {ID: evInstancesTransfer, Action: "C", Dir: dirIn, Failed: true},
	consent.ActAccessRequested:  {ID: evSecurityAlert, Type: ref(etUseOfRestrictedFunc), Action: "E", Dir: dirOut, PeerRequests: true},
	// Multi-source (issue 9): a secondary holder serves, or refuses, a
	// copy it holds as the original holder's grant allows; the original
	// holder tells a grantee which facilities hold a study.
	consent.ActFetchServedSecondary: {ID: evBeginTransferring, Action: "E", Dir: dirOut, PeerRequests: true},
	consent.ActFetchDeniedSecondary: {ID: evSecurityAlert, Type: ref(etUseOfRestrictedFunc), Action: "E", Dir: dirOut, PeerRequests: true, Denied: true},
	"holders-listed":                {ID: evQuery, Action: "E", Dir: dirOut, PeerRequests: true},

	// Local DICOM traffic. Import is STOW-RS, C-STORE or an upload: new
	// instances created here. Export writes a study out to an archive file.
	consent.ActImport:       {ID: evInstancesTransfer, Action: "C", Dir: dirIn},
	consent.ActExport:       {ID: evExport, Action: "R", Dir: dirOut},
	consent.ActQuery:        {ID: evQuery, Action: "E"},
	consent.ActInstanceRead: {ID: evInstancesAccessed, Action: "R"},
	"dicom-move":            {ID: evInstancesTransfer, Action: "R", Dir: dirOut},
	"dicom-get":             {ID: evInstancesTransfer, Action: "R", Dir: dirOut},
	"dicom-send":            {ID: evInstancesTransfer, Action: "R", Dir: dirOut},
	"dicom-forward":         {ID: evInstancesTransfer, Action: "R", Dir: dirOut},
	"storage-commitment":    {ID: evInstancesAccessed, Action: "R"},
	"association-accepted":  {ID: evSecurityAlert, Type: ref(etNodeAuthentication), Action: "E"},
	"association-rejected":  {ID: evSecurityAlert, Type: ref(etNodeAuthentication), Action: "E", Denied: true},

	// Configuration of whom the node trusts.
	consent.ActPeerAdded:   {ID: evSecurityAlert, Type: ref(etSecurityConfiguration), Action: "E"},
	consent.ActPeerRemoved: {ID: evSecurityAlert, Type: ref(etSecurityConfiguration), Action: "E"},
	"ae-added":             {ID: evSecurityAlert, Type: ref(etNetworkConfiguration), Action: "E"},
	"ae-removed":           {ID: evSecurityAlert, Type: ref(etNetworkConfiguration), Action: "E"},

	// Users and sessions.
	"user-added":            {ID: evSecurityAlert, Type: ref(etUserSecurityAttributes), Action: "E"},
	"user-disabled":         {ID: evSecurityAlert, Type: ref(etUserSecurityAttributes), Action: "E"},
	"user-role-changed":     {ID: evSecurityAlert, Type: ref(etSecurityRolesChanged), Action: "E"},
	"user-password-changed": {ID: evSecurityAlert, Type: ref(etUserSecurityAttributes), Action: "E"},
	"token-issued":          {ID: evSecurityAlert, Type: ref(etUserSecurityAttributes), Action: "E"},
	"token-revoked":         {ID: evSecurityAlert, Type: ref(etUserSecurityAttributes), Action: "E"},
	"login":                 {ID: evUserAuthentication, Type: ref(etLogin), Action: "E"},
	"login-failed":          {ID: evUserAuthentication, Type: ref(etLogin), Action: "E", Denied: true},
	"login-locked":          {ID: evUserAuthentication, Type: ref(etLogin), Action: "E", Denied: true},
	"logout":                {ID: evUserAuthentication, Type: ref(etLogout), Action: "E"},

	// Access requests between facilities (issue 8): asking, deciding,
	// break-glass and its review; patient searches are queries.
	"request-sent":        {ID: evSecurityAlert, Type: ref(etUseOfRestrictedFunc), Action: "E", Dir: dirOut},
	"request-approved":    {ID: evSecurityAlert, Type: ref(etObjectSecurityChanged), Action: "E", Dir: dirOut},
	"request-denied":      {ID: evSecurityAlert, Type: ref(etObjectSecurityChanged), Action: "E", Dir: dirOut, Denied: true},
	"emergency-access":    {ID: evSecurityAlert, Type: ref(etEmergencyOverride), Action: "E", Dir: dirOut, PeerRequests: true},
	"emergency-reviewed":  {ID: evSecurityAlert, Type: ref(etSecurityConfiguration), Action: "E"},
	"ask-refused":         {ID: evSecurityAlert, Type: ref(etNodeAuthentication), Action: "E", Dir: dirIn, PeerRequests: true, Denied: true},
	"patient-search":      {ID: evQuery, Action: "E", Dir: dirOut},
	"request-note-erased": {ID: evSecurityAlert, Type: ref(etObjectSecurityChanged), Action: "D"},
	"patient-query":       {ID: evQuery, Action: "E", Dir: dirIn, PeerRequests: true},

	// The audit log itself: a signed checkpoint reads its head.
	consent.ActAuditCheckpoint: {ID: evAuditLogUsed, Action: "R"},
	actAuditVerified:           {ID: evAuditLogUsed, Action: "R"},
	actAuditExported:           {ID: evAuditLogUsed, Action: "R"},
}

// eventFor returns the event an action is reported as; unknown actions
// (the node may record its own) are Application Activity.
func eventFor(action string) event {
	if ev, ok := events[action]; ok {
		return ev
	}
	return event{ID: evApplicationActivity, Action: "E"}
}

// Outcome indicators (PS3.15 A.5.1 EventOutcomeIndicator).
const (
	outcomeSuccess       = "0"
	outcomeMinorFailure  = "4"
	outcomeSeriousFailed = "8"
)

func outcome(e consent.Entry, ev event) string {
	switch {
	case ev.Failed:
		return outcomeSeriousFailed
	case ev.Denied || e.Decision == consent.DecisionDeny:
		return outcomeMinorFailure
	}
	return outcomeSuccess
}
