// Package api is the contract of a pacsnet node's local HTTP API: the
// routes ([Routes]), the JSON documents they take and answer, the error
// codes with their HTTP statuses ([Code]), and a typed [Client]. The node
// serves these routes; the pacsnet CLI, the demo, the end-to-end tests and
// the web app call them through [Client]. docs/api.md is generated from
// this package (go generate ./api) and a test fails when it drifts.
//
// # One shape per concept
//
// Each concept has one type and the same JSON names wherever it appears,
// in answers and in every `pacsnet … --json`: a partner is peer_id (with
// a [PartnerRef] under a field named for its role: origin, issuer,
// grantee, holder, peer), a study study_uid, a series series_uid, an
// instance sop_instance_uid, a grant grant_id, a fetch fetch_id. Times
// are RFC 3339, sizes are bytes, names are snake_case.
//
// # Requests and answers
//
// Every request carries "Authorization: Bearer <token>" (the token is
// HOME/keys/api.token). JSON bodies are [ContentTypeJSON]; instances
// travel as [ContentTypeDICOM] (a [DICOMBody] in the table). An error
// answer has the status of its [Code] and an [ErrorBody]; [Client]
// returns it as an [*Error]. Two routes answer their own type on error:
// import answers an [ImportResult] for every outcome, and audit
// verification an [AuditVerify] when the log is corrupt.
//
// # Imports
//
// This package imports nothing but the standard library: it is the part
// of pacsnet a client links, and it must not drag the node, libp2p or
// Badger along (internal/deptest checks).
package api

//go:generate go run ./internal/gendoc -src . -o ../docs/api.md
