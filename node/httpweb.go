package node

import (
	"archive/zip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/web"
)

// The routes the web app needs beyond the CLI's (issue 11): who am I,
// the worklist (worklist.go), a fetch's progress as server-sent events,
// the jobs lists, and a study as a ZIP with a DICOMDIR. The app itself
// (login form, cookie, assets) is package web.

// webAPI serves those routes, apart from apiServer like the other groups.
type webAPI struct{ n *Node }

// webSessions is the users room as the web app's login form sees it.
type webSessions struct{ u *users }

func (s webSessions) Login(name, password, addr string) (string, error) {
	secret, _, err := s.u.Login(name, password, addr)
	var le *lockedError
	switch {
	case errors.As(err, &le):
		return "", &web.WaitError{Wait: le.wait}
	case errors.Is(err, errLoginFailed):
		return "", web.ErrBadLogin
	}
	return secret, err
}

func (s webSessions) Logout(secret string) error { return s.u.Logout(secret) }

// sessionCookie is the web session secret a request carries in its
// cookie, when it carries no Authorization header.
func sessionCookie(r *http.Request) (string, bool) {
	if r.Header.Get("Authorization") != "" {
		return "", false
	}
	c, err := r.Cookie(api.CookieSession)
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// safeMethod: a request that changes nothing, which a session cookie
// alone may authenticate.
func safeMethod(m string) bool { return m == http.MethodGet || m == http.MethodHead }

func (a webAPI) me(w http.ResponseWriter, r *http.Request) error {
	p := principalOf(r)
	out := api.Me{User: p.User, Name: p.Name, Role: p.Role, Facility: a.n.cfg.Name}
	if a.n.users != nil {
		out.SessionIdleSeconds = int(a.n.users.cfg.SessionIdle.Duration / time.Second)
	}
	if secret, ok := sessionCookie(r); ok {
		out.CSRF = web.CSRFToken(secret)
	}
	return ok(w, out)
}

// fetchEventsEvery is how often a fetch's event stream looks for
// progress.
const fetchEventsEvery = 250 * time.Millisecond

func (a webAPI) fetchEvents(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue(api.ParamFetchID)
	st, found := a.n.fetcher.Status(id)
	if !found {
		return &apiError{api.CodeNotFound, "no fetch with that id"}
	}
	h := w.Header()
	h.Set("Content-Type", api.ContentTypeEventStream)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	var last []byte
	send := func(event string, job api.FetchJob) bool {
		b, _ := json.Marshal(job)
		if event == "progress" && string(b) == string(last) {
			return true
		}
		last = b
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	t := time.NewTicker(fetchEventsEvery)
	defer t.Stop()
	for {
		job := namesOf(a.n).fetch(st)
		if st.State == api.FetchDone || st.State == api.FetchFailed {
			send("end", job)
			return nil
		}
		if !send("progress", job) {
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-t.C:
		}
		if st, found = a.n.fetcher.Status(id); !found {
			return nil
		}
	}
}

// download answers GET /api/v1/studies/{study_uid}/download: the study as
// a ZIP of its files under DICOM/ and a DICOMDIR, streamed one instance
// at a time (each read is verified against its digest).
func (a webAPI) download(w http.ResponseWriter, r *http.Request) error {
	study := r.PathValue(api.ParamStudyUID)
	if err := a.n.archive.gate(study, readerOf(principalOf(r))); err != nil {
		return err
	}
	sr, found, err := a.n.store.Study(study)
	if err != nil {
		return err
	}
	if !found {
		return errStudyNotFound
	}
	if sr.Origin != "" && sr.Expected > sr.Instances {
		return &apiError{api.CodeConflict, fmt.Sprintf("the study is incomplete here (%d of %d instances): fetch it first", sr.Instances, sr.Expected)}
	}
	insts, err := a.n.archive.Instances(study)
	if err != nil {
		return err
	}
	sortInstances(insts)
	var entries []dicomio.DirEntry
	seriesNo := map[string]int{}
	imageNo := map[string]int{}
	info := sr.Study
	for _, in := range insts {
		if _, ok := seriesNo[in.Series]; !ok {
			seriesNo[in.Series] = len(seriesNo) + 1
		}
		imageNo[in.Series]++
		entries = append(entries, dicomio.DirEntry{
			FileID:    []string{"DICOM", fmt.Sprintf("S%07d", seriesNo[in.Series]), fmt.Sprintf("I%07d", imageNo[in.Series])},
			PatientID: info.PatientID, PatientName: info.PatientName,
			StudyUID: study, StudyDate: info.StudyDate, StudyTime: info.StudyTime, StudyDescription: info.Description,
			StudyID: info.StudyID, AccessionNumber: info.AccessionNumber,
			SeriesUID: in.Series, Modality: in.Modality, SeriesNumber: in.SeriesNumber,
			SOPClassUID: in.SOPClassUID, SOPInstanceUID: in.SOPInstanceUID, TransferSyntaxUID: in.TransferSyntaxUID,
			InstanceNumber: in.InstanceNumber,
		})
	}
	// The disclosure is audited before the first byte (fail closed).
	if err := a.n.audit.Record(consent.Entry{Actor: actor(r), Action: consent.ActExport, Study: study, Decision: consent.DecisionAllow,
		Reason: fmt.Sprintf("download zip, %d instances", len(insts))}); err != nil {
		return &unavailableError{err: fmt.Errorf("download refused: the audit trail cannot be written: %w", err)}
	}
	sum := sha256.Sum256([]byte(study))
	h := w.Header()
	h.Set("Content-Type", api.ContentTypeZip)
	h.Set("Content-Disposition", `attachment; filename="study-`+hex.EncodeToString(sum[:6])+`.zip"`)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	zw := zip.NewWriter(w)
	now := a.n.clock.Now()
	create := func(name string) (interface{ Write([]byte) (int, error) }, error) {
		return zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: now})
	}
	f, err := create("DICOMDIR")
	if err == nil {
		err = dicomio.WriteDICOMDIR(f, "PACSNET", newUID(), entries)
	}
	for i, in := range insts {
		if err != nil {
			break
		}
		var b []byte
		if b, _, err = a.n.archive.InstanceData(study, in.SOPInstanceUID); err != nil {
			break
		}
		if f, err = create(strings.Join(entries[i].FileID, "/")); err == nil {
			_, err = f.Write(b)
		}
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil && r.Context().Err() == nil {
		a.n.log.Warn("download ended early", "err", err)
	}
	return nil
}

// newUID is a fresh UID under 2.25 (a UUID as a decimal number, PS3.5
// B.2).
func newUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}

// fetchesList answers GET /api/v1/fetches: every job the fetcher keeps,
// newest first.
func (a webAPI) fetchesList(w http.ResponseWriter, r *http.Request) error {
	nm := namesOf(a.n)
	out := []api.FetchJob{}
	for _, st := range a.n.fetcher.List() {
		out = append(out, nm.fetch(st))
	}
	return ok(w, out)
}

// sendsList answers GET /api/v1/sends: every job kept, newest first.
func (a webAPI) sendsList(w http.ResponseWriter, r *http.Request) error {
	out := []api.SendJob{}
	for _, st := range a.n.sends.List() {
		out = append(out, sendJob(st))
	}
	return ok(w, out)
}
