package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"path"
)

// APIPrefix is where the local API lives; every route's path starts with
// it. A later, incompatible version of the API gets a new prefix.
const APIPrefix = "/api/v1"

// DICOMwebRoot is where the node serves DICOMweb (PS3.18: QIDO-RS,
// WADO-RS, STOW-RS) on the API's port, with the same bearer tokens; its
// resources are the standard's, listed in docs/conformance.md, not
// routes of this API.
const DICOMwebRoot = "/dicom-web"

// Path parameters: the wildcard names in [Route] paths, for
// http.Request.PathValue.
const (
	ParamPeer           = "peer"             // a partner: peer ID or name
	ParamStudyUID       = "study_uid"        // Study Instance UID
	ParamSOPInstanceUID = "sop_instance_uid" // SOP Instance UID
	ParamGrantID        = "grant_id"         // grant ID
	ParamFetchID        = "fetch_id"         // fetch ID
	ParamAE             = "ae"               // a known application entity's AE title
	ParamSendID         = "send_id"          // send ID
	ParamUser           = "user"             // a local user's name
	ParamTokenID        = "token_id"         // an API token's ID
	ParamRequestID      = "request_id"       // an access request's ID, or a unique prefix of 8 or more hex digits
)

// Headers and content types of the API besides JSON.
const (
	// HeaderSHA256 carries the hex SHA-256 of the instance bytes of
	// GET /api/v1/studies/{study_uid}/instances/{sop_instance_uid}.
	HeaderSHA256 = "X-Pacsnet-Sha256"
	// HeaderNotice carries a notice for the user on a successful answer,
	// e.g. a new grant that overlaps live ones.
	HeaderNotice = "X-Pacsnet-Notice"
	// ContentTypeJSON is the type of every JSON body, request or answer.
	ContentTypeJSON = "application/json"
	// ContentTypeDICOM is the type of a [DICOMBody].
	ContentTypeDICOM = "application/dicom"
)

// Route is one endpoint of the local API: the contract the node serves
// and [Client] calls.
type Route struct {
	// Name is the [Client] method that calls the route; unique, and the
	// key the server may register its handler under.
	Name string
	// Method and Path are the Go 1.22 http.ServeMux pattern; Path's
	// wildcards are the Param* constants.
	Method, Path string
	// Request is the zero value of the request's type, nil when it takes
	// none: a JSON body, or for GET the URL query parameters (fields
	// tagged `query`), or a DICOMBody.
	Request any
	// Response is the zero value of a successful answer's type (status
	// 200): a JSON body, or a DICOMBody.
	Response any
	// Errors are the codes the route may answer besides success, in
	// status order; the body is an ErrorBody unless Doc says otherwise.
	Errors []Code
	// Summary says what the route does, in one line.
	Summary string
	// Doc says more where the summary is not enough (Markdown).
	Doc string
	// Roles are the roles whose users may call the route (Role*
	// constants); the node answers anyone else forbidden (403). Every
	// route names at least one, unless it is Public.
	Roles []string
	// Public routes need no credential at all (login).
	Public bool
}

// Pattern is the route's http.ServeMux pattern, "METHOD PATH".
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Route paths, shared by the table and the Client.
const (
	pathStatus       = APIPrefix + "/status"
	pathInvite       = APIPrefix + "/invite"
	pathPeers        = APIPrefix + "/peers"
	pathPeer         = APIPrefix + "/peers/{" + ParamPeer + "}"
	pathInstances    = APIPrefix + "/instances"
	pathStudies      = APIPrefix + "/studies"
	pathStudyInsts   = APIPrefix + "/studies/{" + ParamStudyUID + "}/instances"
	pathInstanceData = APIPrefix + "/studies/{" + ParamStudyUID + "}/instances/{" + ParamSOPInstanceUID + "}"
	pathExport       = APIPrefix + "/studies/{" + ParamStudyUID + "}/export"
	pathGrants       = APIPrefix + "/grants"
	pathRevoke       = APIPrefix + "/grants/{" + ParamGrantID + "}/revoke"
	pathShared       = APIPrefix + "/shared"
	pathFetches      = APIPrefix + "/fetches"
	pathFetch        = APIPrefix + "/fetches/{" + ParamFetchID + "}"
	pathOutbox       = APIPrefix + "/outbox"
	pathAudit        = APIPrefix + "/audit"
	pathAuditVerify  = APIPrefix + "/audit/verify"
	pathAuditCkpt    = APIPrefix + "/audit/checkpoint"
	pathAuditExport  = APIPrefix + "/audit/export"
	pathRequests     = APIPrefix + "/requests"
	pathSearch       = APIPrefix + "/search"
	pathIncoming     = APIPrefix + "/requests/incoming"
	pathApprove      = APIPrefix + "/requests/incoming/{" + ParamRequestID + "}/approve"
	pathDeny         = APIPrefix + "/requests/incoming/{" + ParamRequestID + "}/deny"
	pathReview       = APIPrefix + "/requests/incoming/{" + ParamRequestID + "}/review"
	pathEraseNote    = APIPrefix + "/requests/incoming/{" + ParamRequestID + "}/note"
	pathAEs          = APIPrefix + "/aes"
	pathAE           = APIPrefix + "/aes/{" + ParamAE + "}"
	pathAEEcho       = APIPrefix + "/aes/{" + ParamAE + "}/echo"
	pathSends        = APIPrefix + "/sends"
	pathSend         = APIPrefix + "/sends/{" + ParamSendID + "}"
	pathUsers        = APIPrefix + "/users"
	pathUserDisable  = APIPrefix + "/users/{" + ParamUser + "}/disable"
	pathUserPassword = APIPrefix + "/users/{" + ParamUser + "}/password"
	pathUserRole     = APIPrefix + "/users/{" + ParamUser + "}/role"
	pathTokens       = APIPrefix + "/tokens"
	pathToken        = APIPrefix + "/tokens/{" + ParamTokenID + "}"
	pathLogin        = APIPrefix + "/login"
	pathLogout       = APIPrefix + "/logout"
	pathMe           = APIPrefix + "/me"
	pathWorklist     = APIPrefix + "/worklist"
	pathFetchEvents  = APIPrefix + "/fetches/{" + ParamFetchID + "}/events"
	pathDownload     = APIPrefix + "/studies/{" + ParamStudyUID + "}/download"
)

// Routes is every route of the API. docs/api.md is generated from it.
var Routes = []Route{
	{
		Name: "Status", Method: http.MethodGet, Path: pathStatus,
		Roles:    RolesAll,
		Response: Status{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "The node's name, AE title, peer ID, addresses, health, archive size, free disk, partners' reachability, outbox and running fetches.",
		Doc: "Health is degraded, with a sentence in problems for each cause, when the archive's file system has " +
			"less than 5% or 1 GiB free, or a manifest has failed delivery three times. Online and last_seen " +
			"are kept in memory: they say what this node saw since it started (a partner it has had no reason " +
			"to connect to shows no last_seen).",
	},
	{
		Name: "Invite", Method: http.MethodGet, Path: pathInvite,
		Roles:    RolesAdmin,
		Response: Invite{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "This facility's signed invite, for a partner to add.",
	},
	{
		Name: "Partners", Method: http.MethodGet, Path: pathPeers,
		Roles:    RolesAdmin,
		Response: []Partner{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "The partner facilities, by name, with whether each is connected now and when it was last seen.",
	},
	{
		Name: "AddPartner", Method: http.MethodPost, Path: pathPeers,
		Roles:   RolesAdmin,
		Request: AddPartnerRequest{}, Response: Partner{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeInternal, CodeInsufficientStorage},
		Summary: "Admit the facility an invite describes as a partner.",
		Doc: "An invalid invite, this node's own invite, or one whose name is already a partner's under another " +
			"peer ID is bad-request. Adding a partner again updates its name and addresses.",
	},
	{
		Name: "RemovePartner", Method: http.MethodDelete, Path: pathPeer,
		Roles:    RolesAdmin,
		Response: PartnerRemoved{},
		Errors:   []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeInternal, CodeInsufficientStorage},
		Summary:  "End a partnership: its live grants are revoked and the revocations sent to it (bounded wait), then queued manifests are dropped, connections closed, and what it shared with this facility is forgotten.",
		Doc:      "Answers the partner removed with how many revocations it received in time (exchange.farewell_timeout). A name that several partners share is bad-request: name the peer ID.",
	},
	{
		Name: "ImportFile", Method: http.MethodPost, Path: pathInstances,
		Roles:   RolesClinical,
		Request: DICOMBody{}, Response: ImportResult{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeConflict, CodeTooLarge, CodeRejected, CodeInternal, CodeInsufficientStorage},
		Summary: "Import one DICOM instance (the body: a Part-10 file or a bare dataset).",
		Doc: "The body is streamed. The answer is an ImportResult for every outcome, also for conflict (409), " +
			"too-large (413), rejected (422) and failed (500): see ImportResult.HTTPStatus. Only a request the " +
			"node cannot take at all (401, a broken upload) is answered with an ErrorBody. The result is " +
			"reported only after the instance is committed.",
	},
	{
		Name: "Studies", Method: http.MethodGet, Path: pathStudies,
		Roles:    RolesClinical,
		Response: []Study{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "The studies in the local archive, imported here or fetched.",
	},
	{
		Name: "Worklist", Method: http.MethodGet, Path: pathWorklist,
		Roles:   RolesClinical,
		Request: WorklistQuery{}, Response: WorklistPage{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeInternal},
		Summary: "One page of the local studies and the studies partners shared with this facility, in one list, newest first.",
		Doc: "A partner's study is listed once: as here once fetched (or while it is being fetched), as partner until then. " +
			"A partner's copy restricted to named users, and a share granted to another user here, are listed only for " +
			"those users. Ordered by study date and time, newest first, then by Study Instance UID.",
	},
	{
		Name: "Instances", Method: http.MethodGet, Path: pathStudyInsts,
		Roles:    RolesClinical,
		Response: []Instance{},
		Errors:   []Code{CodeUnauthorized, CodeNotFound, CodeInternal},
		Summary:  "A local study's instances, in series and instance order.",
	},
	{
		Name: "InstanceData", Method: http.MethodGet, Path: pathInstanceData,
		Roles:    RolesClinical,
		Response: DICOMBody{},
		Errors:   []Code{CodeUnauthorized, CodeNotFound, CodeInternal},
		Summary:  "One instance's Part-10 bytes, verified against its SHA-256 (header X-Pacsnet-Sha256).",
		Doc:      "Audited as instance-read, once per study and user in 10 minutes.",
	},
	{
		Name: "Download", Method: http.MethodGet, Path: pathDownload,
		Roles:    RolesClinical,
		Response: ZipBody{},
		Errors:   []Code{CodeUnauthorized, CodeNotFound, CodeConflict, CodeInternal, CodeUnavailable},
		Summary:  "A study held here as a ZIP archive of DICOM files with a DICOMDIR (PS3.10 media), streamed.",
		Doc: "The archive holds DICOMDIR and DICOM/Snnnnnnn/Innnnnnn (the files as stored, each verified against its " +
			"SHA-256 as it is read); names carry no patient data. An incomplete fetched study is conflict (409). Audited " +
			"as export (reason download) before the first byte; refused with unavailable (503) when the audit cannot be " +
			"written. A failure after the answer started ends the archive early, and the client sees a truncated ZIP.",
	},
	{
		Name: "Export", Method: http.MethodPost, Path: pathExport,
		Roles:   RolesClinical,
		Request: ExportRequest{}, Response: ExportResult{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeConflict, CodeInternal},
		Summary: "Write a study's instances as Part-10 files into a folder on the node's machine, each verified by SHA-256.",
		Doc: "The node writes out/<Series Instance UID>/<SOP Instance UID>.dcm (files 0640, folders 0750: " +
			"patient data); a UID that is not digits and dots (at most 64) is named x and the first 32 hex " +
			"digits of its SHA-256 instead (api.ExportPath), so no byte of it reaches the file system. It " +
			"syncs each file, checks its SHA-256 against the archive's record, and audits what it wrote as " +
			"export, also when it failed half-way. out must be absolute (else bad-request). A partly fetched " +
			"study is conflict unless allow_partial is set. A refused export writes nothing, not even the folder.",
	},
	{
		Name: "Grants", Method: http.MethodGet, Path: pathGrants,
		Roles:    RolesAdmin,
		Response: []Grant{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "The grants this facility issued, with their current state.",
	},
	{
		Name: "Grant", Method: http.MethodPost, Path: pathGrants,
		Roles:   RolesAdmin,
		Request: GrantRequest{}, Response: Grant{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeInternal, CodeInsufficientStorage},
		Summary: "Grant a partner access to a study held here; its manifest is queued for delivery.",
		Doc: "A new grant that overlaps live grants for the same partner and study carries a notice in the " +
			"X-Pacsnet-Notice header (revoking one grant does not end the partner's access). An unknown " +
			"partner or study, a study fetched from elsewhere, a bad duration or purpose is bad-request.",
	},
	{
		Name: "Revoke", Method: http.MethodPost, Path: pathRevoke,
		Roles:   RolesAdmin,
		Request: RevokeRequest{}, Response: Revocation{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeInternal, CodeInsufficientStorage},
		Summary: "Revoke a grant: the partner's next block request is refused; a revocation manifest is queued.",
		Doc:     "The body is optional. An unknown grant is not-found; one already revoked, or a reason that is not one of RevokeReasons, is bad-request.",
	},
	{
		Name: "Search", Method: http.MethodPost, Path: pathSearch,
		Roles:   RolesClinical,
		Request: PatientSearch{}, Response: []PatientSearchResult{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeInternal},
		Summary: "Search partners for a patient's studies (federated patient search).",
		Doc: "Each partner is asked with a signed query at once (10 s at most each). A partner answers only if its " +
			"requests.query_partners names us; otherwise, and when it holds nothing of the patient, it answers the same " +
			"empty list. Answers list study date, modalities, description, image count and UID, nothing else; " +
			"studies a partner shared with us say so (shared). Audited here as patient-search per partner and at " +
			"the partner as patient-query, neither naming the patient. A partner that cannot be asked has error set.",
	},
	{
		Name: "SendRequest", Method: http.MethodPost, Path: pathRequests,
		Roles:   RolesClinical,
		Request: AccessRequestCreate{}, Response: AccessRequest{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeInternal, CodeUnavailable, CodeInsufficientStorage},
		Summary: "Ask a partner for a patient's studies, as the calling user.",
		Doc: "The request is signed by this node and sent at once; the answer is the holder's signed status " +
			"(pending, or approved at once by break-glass). Audited here as request-sent and at the holder as " +
			"access-requested, neither naming the patient. An unknown partner, a purpose of research, a reason " +
			"that is not one of RequestReasons or a malformed field is bad-request. A holder that cannot be reached " +
			"now (or is busy) leaves the request unsent: it is kept and sent as soon as the holder can be reached " +
			"(every minute, and whenever GET /api/v1/requests runs); one that refuses it is unavailable, with why, " +
			"and nothing is kept.",
	},
	{
		Name: "Requests", Method: http.MethodGet, Path: pathRequests,
		Roles:    RolesClinical,
		Response: []AccessRequest{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "Our access requests to partners, newest first, with each holder's latest answer.",
		Doc:      "Pending requests are asked about again first (a few seconds at most per partner); one whose holder is unreachable shows its last answer and when it came (checked).",
	},
	{
		Name: "IncomingRequests", Method: http.MethodGet, Path: pathIncoming,
		Roles:    RolesAdmin,
		Response: []AccessRequest{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "Partners' access requests to us, newest first, pending and decided, with the patient's study count here.",
	},
	{
		Name: "ApproveRequest", Method: http.MethodPost, Path: pathApprove,
		Roles:   RolesAdmin,
		Request: ApproveRequest{}, Response: AccessRequest{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeConflict, CodeInternal, CodeInsufficientStorage},
		Summary: "Approve a pending request: a grant to the requesting user of the patient's studies (or the listed ones).",
		Doc: "Audited as request-approved and grant. The requester learns it at its next status query. A decided " +
			"request is conflict; an unknown or ambiguous ID not-found; a study that is not the patient's bad-request.",
	},
	{
		Name: "DenyRequest", Method: http.MethodPost, Path: pathDeny,
		Roles:   RolesAdmin,
		Request: DenyRequest{}, Response: AccessRequest{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeConflict, CodeInternal, CodeInsufficientStorage},
		Summary: "Deny a pending request with a reason code (one of DenyReasons).",
		Doc:     "Audited as request-denied.",
	},
	{
		Name: "ReviewRequest", Method: http.MethodPost, Path: pathReview,
		Roles:   RolesAdmin,
		Request: ReviewRequest{}, Response: AccessRequest{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeConflict, CodeInternal, CodeInsufficientStorage},
		Summary: "Record the review of an emergency access granted by break-glass.",
		Doc:     "Audited as emergency-reviewed. Reviewing twice is conflict; a request that was not granted by break-glass is bad-request. Revoke the grant separately if the access was not justified.",
	},
	{
		Name: "EraseRequestNote", Method: http.MethodDelete, Path: pathEraseNote,
		Roles:    RolesAdmin,
		Response: AccessRequest{},
		Errors:   []Code{CodeUnauthorized, CodeNotFound, CodeInternal, CodeInsufficientStorage},
		Summary:  "Erase a partner's request's free-text note, and the signed copy of the request that holds it.",
		Doc: "The note may name the patient; it was never in the audit chain. The request, its decision and the " +
			"SHA-256 of the signed request stay. Audited as request-note-erased.",
	},
	{
		Name: "Shared", Method: http.MethodGet, Path: pathShared,
		Roles:    RolesClinical,
		Response: []SharedStudy{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "The studies partners shared with this facility.",
	},
	{
		Name: "StartFetch", Method: http.MethodPost, Path: pathFetches,
		Roles:   RolesClinical,
		Request: FetchRequest{}, Response: FetchJob{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeNotFound, CodeInternal, CodeUnavailable, CodeInsufficientStorage},
		Summary: "Start fetching a study a partner shared; blocks already held are not fetched again.",
		Doc: "Without a manifest for the study, from names the partner to ask for one. A revoked or expired grant, " +
			"or a partner's refusal, is forbidden; no manifest and no from is not-found; a holder that cannot be " +
			"reached for the manifest is unavailable. Once started, the fetch runs in the node: follow it with Fetch.",
	},
	{
		Name: "Fetches", Method: http.MethodGet, Path: pathFetches,
		Roles:    RolesClinical,
		Response: []FetchJob{},
		Errors:   []Code{CodeUnauthorized},
		Summary:  "The fetches the node knows: running, waiting and the most recent finished ones (256), newest first.",
	},
	{
		Name: "Fetch", Method: http.MethodGet, Path: pathFetch,
		Roles:    RolesClinical,
		Response: FetchJob{},
		Errors:   []Code{CodeUnauthorized, CodeNotFound},
		Summary:  "A fetch's progress.",
	},
	{
		Name: "FetchEvents", Method: http.MethodGet, Path: pathFetchEvents,
		Roles:    RolesClinical,
		Response: EventStreamBody{},
		Errors:   []Code{CodeUnauthorized, CodeNotFound},
		Summary:  "A fetch's progress as server-sent events (text/event-stream), for the web app.",
		Doc: "An event `progress` whose data is the FetchJob (JSON) when the stream opens and about every 250 ms while it " +
			"changes, then one event `end` with the final FetchJob when the fetch is done or failed, and the stream closes. " +
			"A client that reconnects gets the current state again.",
	},
	{
		Name: "Outbox", Method: http.MethodGet, Path: pathOutbox,
		Roles:    RolesAdmin,
		Response: []OutboxItem{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "The manifests awaiting delivery to partners.",
	},
	{
		Name: "Audit", Method: http.MethodGet, Path: pathAudit,
		Roles:   RolesAudit,
		Request: AuditQuery{}, Response: []AuditEntry{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeConflict, CodeInternal},
		Summary: "A page of the audit log, oldest first.",
		Doc:     "Page with after = the last Seq received until a page is empty. A missing or misplaced entry is conflict.",
	},
	{
		Name: "AuditVerify", Method: http.MethodGet, Path: pathAuditVerify,
		Roles:    RolesAudit,
		Response: AuditVerify{},
		Errors:   []Code{CodeUnauthorized, CodeConflict, CodeInternal},
		Summary:  "Check every hash and link of the audit log (audited as audit-verified first).",
		Doc: "Every stored signed checkpoint is verified too, and the log must hold each one's entry with the hash it " +
			"signed (a truncated or rewritten log fails). A corrupt log is answered 409 with an AuditVerify whose ok is " +
			"false and whose error names the first bad entry or checkpoint (not an ErrorBody); Client.AuditVerify " +
			"returns it with a nil error.",
	},
	{
		Name: "AuditExport", Method: http.MethodGet, Path: pathAuditExport,
		Roles:   RolesAudit,
		Request: AuditExportQuery{}, Response: AuditExportBody{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeConflict, CodeInternal},
		Summary: "Export the audit log's entries (filtered as GET /api/v1/audit) as text, one per line.",
		Doc: "format is json (the stored entries: prev and hash can be checked), dicom (PS3.15 A.5 audit messages, " +
			"the events of Table A.5.3-1), syslog or syslog-dicom (RFC 5424 lines with the JSON entry or the DICOM " +
			"message). Streamed (memory bounded whatever the log's size). Audited as audit-exported. A missing entry " +
			"met on the way ends the stream early with a line saying so.",
	},
	{
		Name: "AuditVerifyAgainst", Method: http.MethodPost, Path: pathAuditVerify,
		Roles:   RolesAudit,
		Request: AuditVerifyRequest{}, Response: AuditVerify{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeConflict, CodeInternal},
		Summary: "Verify the audit log as GET does, and against checkpoints kept elsewhere.",
		Doc: "A checkpoint that is malformed, not validly signed or signed by another node is bad-request. A log " +
			"that ends before a checkpoint's entry, or whose entry differs from what it signed, is answered 409 like GET: " +
			"this is how a truncation is caught even if the node's own checkpoints were deleted with it.",
	},
	{
		Name: "AuditCheckpoint", Method: http.MethodPost, Path: pathAuditCkpt,
		Roles:    RolesAudit,
		Response: SignedAuditCheckpoint{},
		Errors:   []Code{CodeUnauthorized, CodeInternal, CodeInsufficientStorage},
		Summary:  "Sign the head of the audit log now and answer the signed checkpoint.",
		Doc: "Nothing is written if nothing was since the last checkpoint (its own entry aside): the answer is then " +
			"that checkpoint. Otherwise the node stores the new one and an audit-checkpoint entry naming the caller. " +
			"Keep the answer off the node (it is the file audit --verify --against reads).",
	},
	{
		Name: "AEs", Method: http.MethodGet, Path: pathAEs,
		Roles:    RolesClinical,
		Response: []AE{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "The known DICOM application entities (config file and API), by AE title.",
	},
	{
		Name: "AddAE", Method: http.MethodPost, Path: pathAEs,
		Roles:   RolesAdmin,
		Request: AddAERequest{}, Response: AE{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeInternal},
		Summary: "Add a known DICOM application entity (calling-AE allowlist, C-MOVE and send destination), or update it.",
		Doc: "A bad AE title, host or port is bad-request; so is an AE defined in config.toml (change it there). " +
			"Audited as ae-added.",
	},
	{
		Name: "RemoveAE", Method: http.MethodDelete, Path: pathAE,
		Roles:    RolesAdmin,
		Response: AE{},
		Errors:   []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeInternal},
		Summary:  "Remove a known DICOM application entity added through the API.",
		Doc: "Answers the AE removed. An AE defined in config.toml is bad-request (remove it there); an unknown " +
			"one is not-found. Associations already open are not ended. Audited as ae-removed.",
	},
	{
		Name: "EchoAE", Method: http.MethodPost, Path: pathAEEcho,
		Roles:    RolesAdmin,
		Response: AEEcho{},
		Errors:   []Code{CodeUnauthorized, CodeNotFound, CodeUnavailable},
		Summary:  "Verify a known AE: the node associates with it (with DICOM TLS if it is marked tls) and sends C-ECHO.",
		Doc:      "An unknown AE is not-found; one that cannot be reached, rejects the association or answers no success is unavailable, with the reason.",
	},
	{
		Name: "StartSend", Method: http.MethodPost, Path: pathSends,
		Roles:   RolesClinical,
		Request: SendRequest{}, Response: SendJob{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeNotFound, CodeInternal},
		Summary: "Start sending a study held here to a known application entity with C-STORE.",
		Doc: "Each instance goes in its stored transfer syntax (no transcoding), one presentation context per SOP class " +
			"and transfer syntax. An unknown study or AE is not-found. Once started, the send runs in the node: follow " +
			"it with Send; a send whose AE accepts none of the syntaxes held ends failed with that error.",
	},
	{
		Name: "Sends", Method: http.MethodGet, Path: pathSends,
		Roles:    RolesClinical,
		Response: []SendJob{},
		Errors:   []Code{CodeUnauthorized},
		Summary:  "The sends the node knows: running and the most recent finished ones (64), newest first.",
	},
	{
		Name: "Send", Method: http.MethodGet, Path: pathSend,
		Roles:    RolesClinical,
		Response: SendJob{},
		Errors:   []Code{CodeUnauthorized, CodeNotFound},
		Summary:  "A send's progress.",
	},
	{
		Name: "Users", Method: http.MethodGet, Path: pathUsers,
		Roles:    RolesAdmin,
		Response: []User{},
		Errors:   []Code{CodeUnauthorized, CodeForbidden, CodeInternal},
		Summary:  "The local users, by name, with their roles and whether they are disabled.",
	},
	{
		Name: "AddUser", Method: http.MethodPost, Path: pathUsers,
		Roles:   RolesAdmin,
		Request: AddUserRequest{}, Response: UserPassword{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeConflict, CodeInternal},
		Summary: "Add a local user with a role; without a password the node generates a one-time one and answers it, once.",
		Doc: "A name that is not 1-64 of a-z 0-9 . _ -, an unknown role or a password outside 8-1024 bytes is " +
			"bad-request; a name in use (users are never deleted, only disabled) is conflict. Audited as user-added.",
	},
	{
		Name: "DisableUser", Method: http.MethodPost, Path: pathUserDisable,
		Roles:    RolesAdmin,
		Response: User{},
		Errors:   []Code{CodeUnauthorized, CodeForbidden, CodeNotFound, CodeInternal},
		Summary:  "Disable a user: its API tokens stop working and its sessions end at once.",
		Doc:      "Audited as user-disabled.",
	},
	{
		Name: "SetPassword", Method: http.MethodPost, Path: pathUserPassword,
		Roles:   RolesAdmin,
		Request: PasswordRequest{}, Response: UserPassword{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeNotFound, CodeInternal},
		Summary: "Set a user's password (generated and answered once when none is given); its sessions end.",
		Doc:     "Audited as user-password-changed (never the password).",
	},
	{
		Name: "SetRole", Method: http.MethodPost, Path: pathUserRole,
		Roles:   RolesAdmin,
		Request: RoleRequest{}, Response: User{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeNotFound, CodeInternal},
		Summary: "Change a user's role; its tokens and sessions act in the new role from their next request.",
		Doc:     "Audited as user-role-changed.",
	},
	{
		Name: "Tokens", Method: http.MethodGet, Path: pathTokens,
		Roles:    RolesAdmin,
		Response: []Token{},
		Errors:   []Code{CodeUnauthorized, CodeForbidden, CodeInternal},
		Summary:  "The users' API tokens (never their secrets), newest first, with their expiry.",
	},
	{
		Name: "AddToken", Method: http.MethodPost, Path: pathTokens,
		Roles:   RolesAdmin,
		Request: AddTokenRequest{}, Response: TokenIssued{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeForbidden, CodeNotFound, CodeInternal},
		Summary: "Issue an API token for a user; the answer carries the token, which the node keeps only as its SHA-256.",
		Doc: "expires defaults to users.token_ttl (30d); more than users.max_token_ttl (90d) is bad-request, and so " +
			"is a disabled user. Audited as token-issued.",
	},
	{
		Name: "RevokeToken", Method: http.MethodDelete, Path: pathToken,
		Roles:    RolesAdmin,
		Response: Token{},
		Errors:   []Code{CodeUnauthorized, CodeForbidden, CodeNotFound, CodeInternal},
		Summary:  "Revoke an API token: it stops working at once.",
		Doc:      "Answers the token revoked. Audited as token-revoked.",
	},
	{
		Name: "Login", Method: http.MethodPost, Path: pathLogin,
		Public:  true,
		Request: LoginRequest{}, Response: Session{},
		Errors:  []Code{CodeBadRequest, CodeUnauthorized, CodeTooManyRequests, CodeInternal},
		Summary: "Log a user in with name and password: the answer's session token is a bearer credential until it is idle for users.session_idle (15m) or users.session_max (12h) after login.",
		Doc: "Needs no Authorization header. A wrong name or password, or a disabled user, is unauthorized with one " +
			"message for all. After 5 failures for a user name or from an address, each further attempt waits 1s, 2s, " +
			"4s … at most 15m (too-many-requests with a Retry-After header), also with the right password. Audited " +
			"as login, login-failed or login-locked.",
	},
	{
		Name: "Me", Method: http.MethodGet, Path: pathMe,
		Roles:    RolesAll,
		Response: Me{},
		Errors:   []Code{CodeUnauthorized},
		Summary:  "Who the caller is: user, role and facility, and for a web session the CSRF value its changes must carry.",
		Doc: "The web app signs in with POST /login (a form, not this API), which sets the session cookie " +
			"(CookieSession: HttpOnly, SameSite=Strict, Secure except on plain HTTP to a non-loopback host). Every route " +
			"accepts that cookie instead of a bearer token; a request so authenticated whose method is not GET or HEAD " +
			"must carry Me.CSRF in the X-Pacsnet-CSRF header, or it is forbidden (403).",
	},
	{
		Name: "Logout", Method: http.MethodPost, Path: pathLogout,
		Roles:    RolesAll,
		Response: LoggedOut{},
		Errors:   []Code{CodeUnauthorized, CodeInternal},
		Summary:  "End the session whose token the request carries (an API token or the admin token is left alone).",
	},
}

// ExportPath is where an export writes an instance, relative to the
// export folder: <series>/<SOP Instance UID>.dcm. A valid UID (digits and
// dots, at most 64) is used as it is; anything else (real files carry hex
// "UIDs") becomes "x" and the first 32 hex digits of its SHA-256, so two
// different values never share a name and no byte of the value, which
// could carry patient data or path separators, reaches the file system.
func ExportPath(seriesUID, sopInstanceUID string) string {
	return path.Join(safeName(seriesUID), safeName(sopInstanceUID)+".dcm")
}

func safeName(s string) string {
	ok := s != "" && s != "." && s != ".." && len(s) <= 64
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c == '.') {
			ok = false
		}
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "x" + hex.EncodeToString(sum[:16])
}
