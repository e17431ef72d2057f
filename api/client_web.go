package api

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// Me is GET /api/v1/me.
func (c *Client) Me(ctx context.Context) (Me, error) {
	var out Me
	_, err := c.call(ctx, http.MethodGet, pathMe, nil, nil, &out)
	return out, err
}

// Worklist is GET /api/v1/worklist.
func (c *Client) Worklist(ctx context.Context, q WorklistQuery) (WorklistPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"patient_name": q.PatientName, "patient_id": q.PatientID, "accession": q.Accession,
		"modality": q.Modality, "from": q.From, "to": q.To, "source": q.Source, "location": q.Location} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	p := pathWorklist
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	var out WorklistPage
	_, err := c.call(ctx, http.MethodGet, p, nil, nil, &out)
	return out, err
}

// FetchEvents is GET /api/v1/fetches/{fetch_id}/events: the caller reads
// the event stream and closes it.
func (c *Client) FetchEvents(ctx context.Context, fetchID string) (io.ReadCloser, error) {
	return c.stream(ctx, pathFetchEvents, []string{fetchID}, ContentTypeEventStream)
}

// Download is GET /api/v1/studies/{study_uid}/download: the caller reads
// the ZIP archive and closes it.
func (c *Client) Download(ctx context.Context, studyUID string) (io.ReadCloser, error) {
	return c.stream(ctx, pathDownload, []string{studyUID}, ContentTypeZip)
}

// stream GETs a route whose answer is not JSON (or is read as a stream)
// and hands over its body; accept, when given, replaces the JSON Accept.
func (c *Client) stream(ctx context.Context, pattern string, params []string, accept string) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, pattern, params, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp.Body, nil
}

// Fetches is GET /api/v1/fetches.
func (c *Client) Fetches(ctx context.Context) ([]FetchJob, error) {
	var out []FetchJob
	_, err := c.call(ctx, http.MethodGet, pathFetches, nil, nil, &out)
	return out, err
}

// Sends is GET /api/v1/sends.
func (c *Client) Sends(ctx context.Context) ([]SendJob, error) {
	var out []SendJob
	_, err := c.call(ctx, http.MethodGet, pathSends, nil, nil, &out)
	return out, err
}
