package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/pacsnet/pacsnet/node"
)

// client talks to the running node's local API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(home string) (*client, error) {
	ri, err := node.ReadRunInfo(home)
	if err != nil {
		return nil, err
	}
	tok, err := node.ReadAPIToken(home)
	if err != nil {
		return nil, err
	}
	return &client{base: ri.API, token: tok, http: &http.Client{Timeout: 10 * time.Minute}}, nil
}

// apiError is an error answer of the API, with its HTTP status.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return e.Msg }

// do sends a request; a JSON body is encoded from in (or sent raw when in
// is []byte), and a 2xx JSON answer is decoded into out.
func (c *client) do(method, path string, in, out any) error {
	_, err := c.doHeader(method, path, in, out)
	return err
}

// doHeader is do that also returns the answer's header.
func (c *client) doHeader(method, path string, in, out any) (http.Header, error) {
	var body io.Reader
	ctype := "application/json"
	switch v := in.(type) {
	case nil:
	case []byte:
		body, ctype = bytes.NewReader(v), "application/dicom"
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node API unreachable (is `pacsnet serve` running?): %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, &apiError{resp.StatusCode, e.Error}
		}
		return nil, &apiError{resp.StatusCode, fmt.Sprintf("node API: %s", resp.Status)}
	}
	if out == nil {
		return resp.Header, nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return resp.Header, nil
	}
	return resp.Header, json.Unmarshal(b, out)
}

// postFile streams a file to the API and decodes the JSON answer whatever
// the status (import reports per-file outcomes with 4xx statuses). The
// file is never held whole in the CLI's memory.
func (c *client) postFile(path, file string, out any) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, c.base+path, f)
	if err != nil {
		return 0, err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/dicom")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("node API unreachable (is `pacsnet serve` running?): %w", err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
