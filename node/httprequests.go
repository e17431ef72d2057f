package node

import (
	"net/http"

	"github.com/pacsnet/pacsnet/api"
)

// requestsAPI serves the access-request routes over the requests room.
type requestsAPI struct{ n *Node }

func (h requestsAPI) send(w http.ResponseWriter, r *http.Request) error {
	var req api.AccessRequestCreate
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	out, err := h.n.requests.Send(r.Context(), req, actor(r))
	if err != nil {
		return err
	}
	return ok(w, out)
}

func (h requestsAPI) outgoing(w http.ResponseWriter, r *http.Request) error {
	out, err := h.n.requests.Outgoing(r.Context())
	if err != nil {
		return err
	}
	return ok(w, out)
}

func (h requestsAPI) incoming(w http.ResponseWriter, r *http.Request) error {
	out, err := h.n.requests.Incoming()
	if err != nil {
		return err
	}
	return ok(w, out)
}

func (h requestsAPI) approve(w http.ResponseWriter, r *http.Request) error {
	var req api.ApproveRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	out, err := h.n.requests.Approve(r.PathValue(api.ParamRequestID), req, actor(r))
	if err != nil {
		return err
	}
	return ok(w, out)
}

func (h requestsAPI) deny(w http.ResponseWriter, r *http.Request) error {
	var req api.DenyRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	out, err := h.n.requests.Deny(r.PathValue(api.ParamRequestID), req.Reason, actor(r))
	if err != nil {
		return err
	}
	return ok(w, out)
}

func (h requestsAPI) review(w http.ResponseWriter, r *http.Request) error {
	var req api.ReviewRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	out, err := h.n.requests.Review(r.PathValue(api.ParamRequestID), req.Outcome, actor(r))
	if err != nil {
		return err
	}
	return ok(w, out)
}

func (h requestsAPI) search(w http.ResponseWriter, r *http.Request) error {
	var req api.PatientSearch
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	out, err := h.n.search.Search(r.Context(), req, actor(r))
	if err != nil {
		return err
	}
	return ok(w, out)
}

func (h requestsAPI) eraseNote(w http.ResponseWriter, r *http.Request) error {
	out, err := h.n.requests.EraseNote(r.PathValue(api.ParamRequestID), actor(r))
	if err != nil {
		return err
	}
	return ok(w, out)
}
