package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxAnswerSize bounds what the Client reads of an error answer or an
// import result; listings are read whole.
const maxAnswerSize = 1 << 20

// Client calls a node's local API. It is safe for concurrent use.
//
// Errors: an answer with a status other than 2xx is an [*Error] (with the
// code of its ErrorBody), except where a method says otherwise; a request
// that got no answer at all fails with the *url.Error of http.Client.Do;
// anything else (an answer that does not decode) is a plain error.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// NewClient returns a Client of the API at baseURL (e.g.
// "http://127.0.0.1:7480", without APIPrefix) that sends token as its
// bearer token; hc nil means http.DefaultClient.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// Status is GET /api/v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	_, err := c.call(ctx, http.MethodGet, pathStatus, nil, nil, &out)
	return out, err
}

// Invite is GET /api/v1/invite.
func (c *Client) Invite(ctx context.Context) (Invite, error) {
	var out Invite
	_, err := c.call(ctx, http.MethodGet, pathInvite, nil, nil, &out)
	return out, err
}

// Partners is GET /api/v1/peers.
func (c *Client) Partners(ctx context.Context) ([]Partner, error) {
	return list[Partner](ctx, c, pathPeers, nil)
}

// AddPartner is POST /api/v1/peers: it admits the facility invite
// describes.
func (c *Client) AddPartner(ctx context.Context, invite string) (Partner, error) {
	var out Partner
	_, err := c.call(ctx, http.MethodPost, pathPeers, nil, AddPartnerRequest{Invite: invite}, &out)
	return out, err
}

// RemovePartner is DELETE /api/v1/peers/{peer}; peer is a peer ID or a
// name.
func (c *Client) RemovePartner(ctx context.Context, peer string) (PartnerRemoved, error) {
	var out PartnerRemoved
	_, err := c.call(ctx, http.MethodDelete, pathPeer, []string{peer}, nil, &out)
	return out, err
}

// ImportFile is POST /api/v1/instances: it streams size bytes of r (a
// negative size: until EOF) to the node as one instance. Every outcome,
// also conflict, rejected and failed with their 4xx and 5xx statuses, is
// an ImportResult and a nil error; an error is a request that got no
// import result at all. ImportFile does not close r.
func (c *Client) ImportFile(ctx context.Context, r io.Reader, size int64) (ImportResult, error) {
	var body io.Reader = io.NopCloser(r)
	if size == 0 {
		body = http.NoBody
	}
	req, err := c.newRequest(ctx, http.MethodPost, pathInstances, nil, body)
	if err != nil {
		return ImportResult{}, err
	}
	if size > 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", ContentTypeDICOM)
	resp, err := c.hc.Do(req)
	if err != nil {
		return ImportResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize))
	if err != nil {
		return ImportResult{}, fmt.Errorf("read answer of POST %s: %w", pathInstances, err)
	}
	var res ImportResult
	if json.Unmarshal(b, &res) == nil && res.Outcome != "" {
		return res, nil
	}
	if resp.StatusCode/100 == 2 {
		return ImportResult{}, fmt.Errorf("answer of POST %s carries no outcome", pathInstances)
	}
	return ImportResult{}, answerError(resp.StatusCode, resp.Status, b)
}

// Studies is GET /api/v1/studies.
func (c *Client) Studies(ctx context.Context) ([]Study, error) {
	return list[Study](ctx, c, pathStudies, nil)
}

// Instances is GET /api/v1/studies/{study_uid}/instances.
func (c *Client) Instances(ctx context.Context, studyUID string) ([]Instance, error) {
	return list[Instance](ctx, c, pathStudyInsts, []string{studyUID})
}

// InstanceData is GET /api/v1/studies/{study_uid}/instances/{sop_instance_uid}:
// the instance's Part-10 bytes, which the caller must close, and their hex
// SHA-256 as the node's X-Pacsnet-Sha256 header states it.
func (c *Client) InstanceData(ctx context.Context, studyUID, sopInstanceUID string) (io.ReadCloser, string, error) {
	req, err := c.newRequest(ctx, http.MethodGet, pathInstanceData, []string{studyUID, sopInstanceUID}, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", ContentTypeDICOM)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, "", readError(resp)
	}
	return resp.Body, resp.Header.Get(HeaderSHA256), nil
}

// Export is POST /api/v1/studies/{study_uid}/export: the node writes the
// study's files into req.Out on its own machine.
func (c *Client) Export(ctx context.Context, studyUID string, req ExportRequest) (ExportResult, error) {
	var out ExportResult
	_, err := c.call(ctx, http.MethodPost, pathExport, []string{studyUID}, req, &out)
	return out, err
}

// Grants is GET /api/v1/grants.
func (c *Client) Grants(ctx context.Context) ([]Grant, error) {
	return list[Grant](ctx, c, pathGrants, nil)
}

// Grant is POST /api/v1/grants. notice is the node's X-Pacsnet-Notice
// (empty when it has none): something the user should be told, such as
// other live grants for the same partner and study.
func (c *Client) Grant(ctx context.Context, req GrantRequest) (g Grant, notice string, err error) {
	h, err := c.call(ctx, http.MethodPost, pathGrants, nil, req, &g)
	if err != nil {
		return Grant{}, "", err
	}
	return g, h.Get(HeaderNotice), nil
}

// Revoke is POST /api/v1/grants/{grant_id}/revoke.
func (c *Client) Revoke(ctx context.Context, grantID, reason string) (Revocation, error) {
	var out Revocation
	_, err := c.call(ctx, http.MethodPost, pathRevoke, []string{grantID}, RevokeRequest{Reason: reason}, &out)
	return out, err
}

// Shared is GET /api/v1/shared.
func (c *Client) Shared(ctx context.Context) ([]SharedStudy, error) {
	return list[SharedStudy](ctx, c, pathShared, nil)
}

// StartFetch is POST /api/v1/fetches.
func (c *Client) StartFetch(ctx context.Context, req FetchRequest) (FetchJob, error) {
	var out FetchJob
	_, err := c.call(ctx, http.MethodPost, pathFetches, nil, req, &out)
	return out, err
}

// Fetch is GET /api/v1/fetches/{fetch_id}.
func (c *Client) Fetch(ctx context.Context, fetchID string) (FetchJob, error) {
	var out FetchJob
	_, err := c.call(ctx, http.MethodGet, pathFetch, []string{fetchID}, nil, &out)
	return out, err
}

// Outbox is GET /api/v1/outbox.
func (c *Client) Outbox(ctx context.Context) ([]OutboxItem, error) {
	return list[OutboxItem](ctx, c, pathOutbox, nil)
}

// Audit is GET /api/v1/audit: a page of the entries q selects, oldest
// first, and the after of the next page (0 at the end of the log). Page
// through the log by passing next as q.After until it is 0: with filters a
// page may be short, even empty, before the end.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (entries []AuditEntry, next uint64, err error) {
	v := url.Values{"after": {strconv.FormatUint(q.After, 10)}}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	for k, s := range map[string]string{"partner": q.Partner, "study_uid": q.Study, "action": q.Action, "actor": q.Actor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	h, err := c.call(ctx, http.MethodGet, pathAudit+"?"+v.Encode(), nil, nil, &entries)
	if err != nil {
		return nil, 0, err
	}
	if entries == nil {
		entries = []AuditEntry{}
	}
	if s := h.Get(HeaderAuditNext); s != "" {
		if next, err = strconv.ParseUint(s, 10, 64); err != nil || next <= q.After {
			return nil, 0, fmt.Errorf("GET %s: malformed %s header", pathAudit, HeaderAuditNext)
		}
	}
	return entries, next, nil
}

// AuditVerify is GET /api/v1/audit/verify. A corrupt log (409) is not an
// error here: it is an AuditVerify with OK false and Error saying what is
// wrong, and a nil error. The error is for a check that did not happen.
func (c *Client) AuditVerify(ctx context.Context) (AuditVerify, error) {
	req, err := c.newRequest(ctx, http.MethodGet, pathAuditVerify, nil, nil)
	if err != nil {
		return AuditVerify{}, err
	}
	return c.auditVerify(req)
}

// AuditVerifyAgainst is POST /api/v1/audit/verify: the log is verified as
// AuditVerify does and against the given checkpoints, kept off the node.
// A log that fails is answered as AuditVerify answers it.
func (c *Client) AuditVerifyAgainst(ctx context.Context, cps []SignedAuditCheckpoint) (AuditVerify, error) {
	b, err := json.Marshal(AuditVerifyRequest{Checkpoints: cps})
	if err != nil {
		return AuditVerify{}, fmt.Errorf("encode request of POST %s: %w", pathAuditVerify, err)
	}
	req, err := c.newRequest(ctx, http.MethodPost, pathAuditVerify, nil, bytes.NewReader(b))
	if err != nil {
		return AuditVerify{}, err
	}
	req.Header.Set("Content-Type", ContentTypeJSON)
	return c.auditVerify(req)
}

func (c *Client) auditVerify(req *http.Request) (AuditVerify, error) {
	what := req.Method + " " + pathAuditVerify
	resp, err := c.hc.Do(req)
	if err != nil {
		return AuditVerify{}, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var out AuditVerify
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return AuditVerify{}, fmt.Errorf("decode answer of %s: %w", what, err)
		}
		return out, nil
	case http.StatusConflict:
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize))
		if err != nil {
			return AuditVerify{}, fmt.Errorf("read answer of %s: %w", what, err)
		}
		var out AuditVerify
		if json.Unmarshal(b, &out) == nil && out.Error != "" {
			out.OK = false
			return out, nil
		}
		return AuditVerify{}, answerError(resp.StatusCode, resp.Status, b)
	}
	return AuditVerify{}, readError(resp)
}

// AuditCheckpoint is POST /api/v1/audit/checkpoint.
func (c *Client) AuditCheckpoint(ctx context.Context) (SignedAuditCheckpoint, error) {
	var out SignedAuditCheckpoint
	_, err := c.call(ctx, http.MethodPost, pathAuditCkpt, nil, nil, &out)
	return out, err
}

// list GETs a JSON array; an answer of null is an empty list, so that
// callers print [] for nothing.
func list[T any](ctx context.Context, c *Client, path string, params []string) ([]T, error) {
	var out []T
	if _, err := c.call(ctx, http.MethodGet, path, params, nil, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// call sends a request with a JSON body encoded from in (none when in is
// nil) and decodes a 2xx answer into out (unless out is nil). It returns
// the answer's header.
func (c *Client) call(ctx context.Context, method, pattern string, params []string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request of %s %s: %w", method, pattern, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, pattern, params, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", ContentTypeJSON)
	}
	resp, err := c.hc.Do(req)
	// A node under a flood of connections closes idle ones it has not read
	// a request from yet (docs/threat-model.md): a GET that met that fate
	// is sent again, a few times.
	for wait := 50 * time.Millisecond; err != nil && method == http.MethodGet && closedEarly(err) && wait < time.Second; wait *= 3 {
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		resp, err = c.hc.Do(req)
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, readError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return nil, fmt.Errorf("decode answer of %s %s: %w", method, pattern, err)
		}
	}
	return resp.Header, nil
}

// newRequest fills pattern's wildcards with params, in order, each
// escaped as one path segment.
func (c *Client) newRequest(ctx context.Context, method, pattern string, params []string, body io.Reader) (*http.Request, error) {
	p, err := expand(pattern, params)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+p, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Accept", ContentTypeJSON)
	return req, nil
}

// expand replaces the wildcards {name} of a route path with params, in
// order.
func expand(pattern string, params []string) (string, error) {
	var sb strings.Builder
	rest := pattern
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("route %s: unclosed wildcard", pattern)
		}
		if len(params) == 0 {
			return "", fmt.Errorf("route %s: missing %s", pattern, rest[i:i+j+1])
		}
		if params[0] == "" {
			return "", fmt.Errorf("route %s: empty %s", pattern, rest[i+1:i+j])
		}
		sb.WriteString(rest[:i])
		sb.WriteString(url.PathEscape(params[0]))
		params, rest = params[1:], rest[i+j+1:]
	}
	if len(params) > 0 {
		return "", fmt.Errorf("route %s: %d parameters too many", pattern, len(params))
	}
	sb.WriteString(rest)
	return sb.String(), nil
}

// readError turns a non-2xx answer into an *Error.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize))
	return answerError(resp.StatusCode, resp.Status, b)
}

func answerError(status int, statusText string, body []byte) *Error {
	var eb ErrorBody
	e := &Error{Status: status}
	if json.Unmarshal(body, &eb) == nil {
		e.Message, e.Code = eb.Error, eb.Code
	}
	if e.Message == "" {
		e.Message = "node API: " + statusText
	}
	if e.Code == "" {
		e.Code = codeForStatus(status)
	}
	return e
}

// closedEarly reports whether a request failed because the server closed
// the connection without answering.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// AEs is GET /api/v1/aes.
func (c *Client) AEs(ctx context.Context) ([]AE, error) {
	return list[AE](ctx, c, pathAEs, nil)
}

// AddAE is POST /api/v1/aes.
func (c *Client) AddAE(ctx context.Context, req AddAERequest) (AE, error) {
	var out AE
	_, err := c.call(ctx, http.MethodPost, pathAEs, nil, req, &out)
	return out, err
}

// RemoveAE is DELETE /api/v1/aes/{ae}.
func (c *Client) RemoveAE(ctx context.Context, title string) (AE, error) {
	var out AE
	_, err := c.call(ctx, http.MethodDelete, pathAE, []string{title}, nil, &out)
	return out, err
}

// StartSend is POST /api/v1/sends.
func (c *Client) StartSend(ctx context.Context, req SendRequest) (SendJob, error) {
	var out SendJob
	_, err := c.call(ctx, http.MethodPost, pathSends, nil, req, &out)
	return out, err
}

// Send is GET /api/v1/sends/{send_id}.
func (c *Client) Send(ctx context.Context, sendID string) (SendJob, error) {
	var out SendJob
	_, err := c.call(ctx, http.MethodGet, pathSend, []string{sendID}, nil, &out)
	return out, err
}

// EchoAE is POST /api/v1/aes/{ae}/echo.
func (c *Client) EchoAE(ctx context.Context, title string) (AEEcho, error) {
	var out AEEcho
	_, err := c.call(ctx, http.MethodPost, pathAEEcho, []string{title}, nil, &out)
	return out, err
}

// SendRequest is POST /api/v1/requests.
func (c *Client) SendRequest(ctx context.Context, req AccessRequestCreate) (AccessRequest, error) {
	var out AccessRequest
	_, err := c.call(ctx, http.MethodPost, pathRequests, nil, req, &out)
	return out, err
}

// Requests is GET /api/v1/requests.
func (c *Client) Requests(ctx context.Context) ([]AccessRequest, error) {
	return list[AccessRequest](ctx, c, pathRequests, nil)
}

// IncomingRequests is GET /api/v1/requests/incoming.
func (c *Client) IncomingRequests(ctx context.Context) ([]AccessRequest, error) {
	return list[AccessRequest](ctx, c, pathIncoming, nil)
}

// ApproveRequest is POST /api/v1/requests/incoming/{request_id}/approve.
func (c *Client) ApproveRequest(ctx context.Context, id string, req ApproveRequest) (AccessRequest, error) {
	var out AccessRequest
	_, err := c.call(ctx, http.MethodPost, pathApprove, []string{id}, req, &out)
	return out, err
}

// DenyRequest is POST /api/v1/requests/incoming/{request_id}/deny.
func (c *Client) DenyRequest(ctx context.Context, id, reason string) (AccessRequest, error) {
	var out AccessRequest
	_, err := c.call(ctx, http.MethodPost, pathDeny, []string{id}, DenyRequest{Reason: reason}, &out)
	return out, err
}

// ReviewRequest is POST /api/v1/requests/incoming/{request_id}/review.
func (c *Client) ReviewRequest(ctx context.Context, id, outcome string) (AccessRequest, error) {
	var out AccessRequest
	_, err := c.call(ctx, http.MethodPost, pathReview, []string{id}, ReviewRequest{Outcome: outcome}, &out)
	return out, err
}

// Search is POST /api/v1/search.
func (c *Client) Search(ctx context.Context, q PatientSearch) ([]PatientSearchResult, error) {
	var out []PatientSearchResult
	_, err := c.call(ctx, http.MethodPost, pathSearch, nil, q, &out)
	if out == nil && err == nil {
		out = []PatientSearchResult{}
	}
	return out, err
}

// AuditExport is GET /api/v1/audit/export: the caller reads and closes the
// body.
func (c *Client) AuditExport(ctx context.Context, q AuditExportQuery) (io.ReadCloser, error) {
	v := url.Values{"after": {strconv.FormatUint(q.After, 10)}}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	for k, s := range map[string]string{"partner": q.Partner, "study_uid": q.Study, "action": q.Action, "actor": q.Actor, "format": q.Format} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return c.stream(ctx, pathAuditExport+"?"+v.Encode(), nil, "")
}

// EraseRequestNote is DELETE /api/v1/requests/incoming/{request_id}/note.
func (c *Client) EraseRequestNote(ctx context.Context, id string) (AccessRequest, error) {
	var out AccessRequest
	_, err := c.call(ctx, http.MethodDelete, pathEraseNote, []string{id}, nil, &out)
	return out, err
}
