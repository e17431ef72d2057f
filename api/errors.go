package api

import "net/http"

// Code names the kind of an error answer. Every error answer of the API
// carries one in [ErrorBody], with the HTTP status the code table gives.
type Code string

// Error codes. [AllCodes] lists them; docs/api.md has the table.
const (
	CodeBadRequest   Code = "bad-request"        // the request is malformed or names something invalid
	CodeUnauthorized Code = "unauthorized"       // missing or wrong API token
	CodeForbidden    Code = "forbidden"          // refused by a partner, or by consent (no live grant), or the user's role may not call the route
	CodeNotFound     Code = "not-found"          // no such partner, study, instance, grant or fetch; no such route
	CodeMethod       Code = "method-not-allowed" // the route exists, for other methods (the Allow header lists them)
	CodeConflict     Code = "conflict"           // the request contradicts what is held (an existing instance, an incomplete study, a corrupt audit log)
	CodeTooLarge     Code = "too-large"          // the body exceeds the node's limit
	CodeRejected     Code = "rejected"           // unprocessable DICOM
	CodeInternal     Code = "internal"           // a failure of the node (disk, database, a bug)
	CodeUnavailable  Code = "unavailable"        // the node or the partner it needs cannot serve now; try again later

	CodeNotAcceptable       Code = "not-acceptable"         // DICOMweb: no media type or transfer syntax the Accept header allows can be served (the message says which can)
	CodeUnsupportedMedia    Code = "unsupported-media-type" // DICOMweb: STOW-RS body is not multipart/related; type="application/dicom"
	CodeTooManyRequests     Code = "too-many-requests"      // too many failed logins for that user or from that address: wait (Retry-After) and try again
	CodeInsufficientStorage Code = "insufficient-storage"   // the archive's disk is below its free-space margin (archive.min_free): imports and fetches are refused; free space
)

// codeTable is the one table of error codes and their HTTP statuses.
var codeTable = []struct {
	code   Code
	status int
}{
	{CodeBadRequest, http.StatusBadRequest},
	{CodeUnauthorized, http.StatusUnauthorized},
	{CodeForbidden, http.StatusForbidden},
	{CodeNotFound, http.StatusNotFound},
	{CodeMethod, http.StatusMethodNotAllowed},
	{CodeNotAcceptable, http.StatusNotAcceptable},
	{CodeConflict, http.StatusConflict},
	{CodeTooLarge, http.StatusRequestEntityTooLarge},
	{CodeUnsupportedMedia, http.StatusUnsupportedMediaType},
	{CodeRejected, http.StatusUnprocessableEntity},
	{CodeTooManyRequests, http.StatusTooManyRequests},
	{CodeInternal, http.StatusInternalServerError},
	{CodeUnavailable, http.StatusServiceUnavailable},
	{CodeInsufficientStorage, http.StatusInsufficientStorage},
}

// AllCodes lists the error codes in the order of their HTTP statuses.
func AllCodes() []Code {
	out := make([]Code, len(codeTable))
	for i, e := range codeTable {
		out[i] = e.code
	}
	return out
}

// HTTPStatus is the status an error answer with code c carries; 500 for a
// code this version does not know.
func (c Code) HTTPStatus() int {
	for _, e := range codeTable {
		if e.code == c {
			return e.status
		}
	}
	return http.StatusInternalServerError
}

// codeForStatus is the code of an error answer that carries none (from a
// proxy, or an older node): the table read backwards, internal for a
// status the table lacks.
func codeForStatus(status int) Code {
	for _, e := range codeTable {
		if e.status == status {
			return e.code
		}
	}
	if status >= 400 && status < 500 {
		return CodeBadRequest
	}
	return CodeInternal
}

// ErrorBody is the JSON body of every error answer (but see the import
// and audit-verify routes, which answer their own types).
type ErrorBody struct {
	Error string `json:"error"` // what went wrong, for people; never patient data
	Code  Code   `json:"code"`  // Code* constants
}

// Error is an error answer of the API, as [Client] returns it.
type Error struct {
	Status  int    // HTTP status
	Code    Code   // from the body, or derived from Status when the body has none
	Message string // the body's error text
}

func (e *Error) Error() string { return e.Message }
