package node

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pacsnet/pacsnet/api"
)

// dicomAPI serves the local API's routes of the DICOM edge: the known
// application entities and sends.
type dicomAPI struct{ n *Node }

func (h dicomAPI) aesList(w http.ResponseWriter, r *http.Request) error {
	out := []api.AE{}
	for _, ae := range h.n.aes.List() {
		out = append(out, h.apiAE(ae))
	}
	return ok(w, out)
}

func (h dicomAPI) addAE(w http.ResponseWriter, r *http.Request) error {
	var req api.AddAERequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	ae, err := h.n.aes.Add(AE{Title: req.Title, Host: req.Host, Port: req.Port, RestrictAddress: req.RestrictAddress, TLS: req.TLS}, actor(r))
	if err != nil {
		return aeAPIError(err)
	}
	return ok(w, h.apiAE(ae))
}

func (h dicomAPI) removeAE(w http.ResponseWriter, r *http.Request) error {
	ae, err := h.n.aes.Remove(r.PathValue(api.ParamAE), actor(r))
	if err != nil {
		return aeAPIError(err)
	}
	return ok(w, h.apiAE(ae))
}

func (h dicomAPI) apiAE(ae AE) api.AE {
	out := api.AE{Title: ae.Title, Host: ae.Host, Port: ae.Port, RestrictAddress: ae.RestrictAddress, TLS: ae.TLS,
		Source: api.AESourceAPI, Added: ae.Added}
	if h.n.aes.inConfig(ae.Title) {
		out.Source = api.AESourceConfig
	}
	return out
}

func (h dicomAPI) startSend(w http.ResponseWriter, r *http.Request) error {
	var req api.SendRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	if err := checkUID("study UID", req.StudyUID); err != nil {
		return err
	}
	st, err := h.n.sends.Start(req.StudyUID, req.To, readerOf(principalOf(r)))
	if errors.Is(err, errAENotFound) {
		return &apiError{api.CodeNotFound, err.Error()}
	}
	if err != nil {
		return err
	}
	return ok(w, sendJob(st))
}

func (h dicomAPI) send(w http.ResponseWriter, r *http.Request) error {
	st, found := h.n.sends.Status(r.PathValue(api.ParamSendID))
	if !found {
		return &apiError{api.CodeNotFound, "no send with that id"}
	}
	return ok(w, sendJob(st))
}

func (h dicomAPI) echoAE(w http.ResponseWriter, r *http.Request) error {
	title := r.PathValue(api.ParamAE)
	ae, found := h.n.aes.Get(title)
	if !found {
		return &apiError{api.CodeNotFound, fmt.Sprintf("no AE is called %q; add it with pacsnet ae add", title)}
	}
	d, err := h.n.dicom.echo(r.Context(), ae)
	if err != nil {
		return &apiError{api.CodeUnavailable, err.Error()}
	}
	return ok(w, api.AEEcho{Title: ae.Title, Milliseconds: float64(d.Microseconds()) / 1000})
}

// aeAPIError gives the AE registry's refusals their API codes.
func aeAPIError(err error) error {
	var bad *errAE
	switch {
	case errors.As(err, &bad):
		return badRequest("%s", bad.msg)
	case errors.Is(err, errAENotFound):
		return &apiError{api.CodeNotFound, err.Error()}
	}
	return err
}

func sendJob(st SendStatus) api.SendJob {
	return api.SendJob{SendID: st.ID, StudyUID: st.Study, To: st.To, State: st.State, Instances: st.Instances,
		Completed: st.Completed, Warning: st.Warning, Failed: st.Failed, Started: st.Started, Finished: st.Finished, Error: st.Error}
}
