package node

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
)

// The worklist (GET /api/v1/worklist) is the web app's study list: the
// local archive and what partners shared with us, in one list, filtered
// and paged on the server so that the first page of a 10,000-study
// archive is quick.

const (
	worklistDefaultLimit = 50
	worklistMaxLimit     = 500
)

// worklistFilter is a parsed api.WorklistQuery.
type worklistFilter struct {
	nameWords []string
	q         api.WorklistQuery
}

func parseWorklistQuery(r *http.Request) (worklistFilter, error) {
	var f worklistFilter
	q := &f.q
	vals := r.URL.Query()
	for k, v := range vals {
		if len(v) != 1 {
			return f, badRequest("query parameter %s given %d times", k, len(v))
		}
		s := strings.TrimSpace(v[0])
		switch k {
		case "patient_name":
			q.PatientName = s
		case "patient_id":
			q.PatientID = s
		case "accession":
			q.Accession = s
		case "modality":
			q.Modality = strings.ToUpper(s)
		case "from", "to":
			if s != "" && !isDICOMDate(s) {
				return f, badRequest("%s must be a date YYYYMMDD", k)
			}
			if k == "from" {
				q.From = s
			} else {
				q.To = s
			}
		case "source":
			q.Source = s
		case "location":
			if s != "" && s != api.LocationHere && s != api.LocationPartner {
				return f, badRequest("location must be %s or %s", api.LocationHere, api.LocationPartner)
			}
			q.Location = s
		case "offset", "limit":
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return f, badRequest("%s must be a whole number", k)
			}
			if k == "offset" {
				q.Offset = n
			} else {
				q.Limit = n
			}
		default:
			return f, badRequest("unknown query parameter %s (see docs/api.md, WorklistQuery)", k)
		}
	}
	if _, ok := vals["limit"]; !ok {
		q.Limit = worklistDefaultLimit
	}
	if q.Limit < 1 || q.Limit > worklistMaxLimit {
		return f, badRequest("limit must be 1 to %d", worklistMaxLimit)
	}
	f.nameWords = strings.Fields(strings.ToLower(q.PatientName))
	return f, nil
}

func isDICOMDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// matches says whether a study's attributes pass the filter's text and
// date keys.
func (f worklistFilter) matches(st StudyInfo) bool {
	q := f.q
	if len(f.nameWords) > 0 {
		name := strings.ToLower(strings.NewReplacer("^", " ", "=", " ").Replace(st.PatientName))
		for _, w := range f.nameWords {
			if !strings.Contains(name, w) {
				return false
			}
		}
	}
	switch {
	case q.PatientID != "" && !strings.EqualFold(q.PatientID, st.PatientID),
		q.Accession != "" && !strings.EqualFold(q.Accession, st.AccessionNumber),
		q.Modality != "" && !slices.ContainsFunc(st.Modalities, func(m string) bool { return strings.EqualFold(m, q.Modality) }),
		q.From != "" && (st.StudyDate == "" || st.StudyDate < q.From),
		q.To != "" && (st.StudyDate == "" || st.StudyDate > q.To):
		return false
	}
	return true
}

// fromSource says whether a row's partner (empty: imported here) is the
// filter's source.
func (f worklistFilter) fromSource(id peer.ID, name string) bool {
	switch s := f.q.Source; {
	case s == "":
		return true
	case strings.EqualFold(s, "local"):
		return id == ""
	default:
		return id != "" && (s == id.String() || strings.EqualFold(s, name))
	}
}

// worklist answers GET /api/v1/worklist.
func (a webAPI) worklist(w http.ResponseWriter, r *http.Request) error {
	f, err := parseWorklistQuery(r)
	if err != nil {
		return err
	}
	rd := readerOf(principalOf(r))
	nm := namesOf(a.n)
	local, err := a.n.archive.Studies()
	if err != nil {
		return err
	}
	// The shares this reader may see: a grant to another user here is
	// not listed to them.
	shared, err := a.n.inbox.SharedFor(rd.mayList)
	if err != nil {
		return err
	}
	// One share per study: the first available one, else the first.
	share := map[string]*SharedStudy{}
	for i := range shared {
		sh := &shared[i]
		if prev, ok := share[sh.Study.UID]; !ok || prev.State != SharedAvailable && sh.State == SharedAvailable {
			share[sh.Study.UID] = sh
		}
	}
	grantOf := func(sh *SharedStudy) *api.WorklistGrant {
		return &api.WorklistGrant{State: sh.State, GrantID: sh.GrantID, Expires: sh.Expires, Scope: sh.Scope, User: sh.User, Fetched: sh.Fetched}
	}
	var rows []api.WorklistStudy
	held := map[string]bool{}
	for _, st := range local {
		held[st.UID] = true
		if !rd.mayRead(st.Readers) || f.q.Location == api.LocationPartner || !f.fromSource(st.Origin, st.OriginName) || !f.matches(st.StudyInfo) {
			continue
		}
		row := api.WorklistStudy{StudyAttributes: apiStudyAttributes(st.StudyInfo), Location: api.LocationHere,
			Instances: st.Instances, Expected: st.Expected, Complete: st.Complete}
		if st.Origin != "" {
			ref := nm.ref(st.Origin, st.OriginName)
			row.Origin = &ref
		}
		if sh := share[st.UID]; sh != nil {
			row.Shared = grantOf(sh)
		}
		rows = append(rows, row)
	}
	if f.q.Location != api.LocationHere {
		for uid, sh := range share {
			if held[uid] || !f.fromSource(sh.Issuer, sh.IssuerName) || !f.matches(sh.Study) {
				continue
			}
			ref := nm.ref(sh.Issuer, sh.IssuerName)
			rows = append(rows, api.WorklistStudy{StudyAttributes: apiStudyAttributes(sh.Study), Location: api.LocationPartner,
				Origin: &ref, Instances: sh.Instances, Shared: grantOf(sh)})
		}
	}
	slices.SortFunc(rows, func(a, b api.WorklistStudy) int {
		if c := strings.Compare(b.StudyDate+b.StudyTime, a.StudyDate+a.StudyTime); c != 0 {
			return c
		}
		return strings.Compare(a.StudyUID, b.StudyUID)
	})
	// Listing patients' studies is a disclosure: audited (once a minute
	// per user) before the answer, refused when the audit cannot be
	// written.
	if err := a.n.audit.Once(consent.Entry{Actor: actor(r), Action: consent.ActQuery, Decision: consent.DecisionAllow,
		Reason: "web app worklist"}, time.Minute); err != nil {
		return &unavailableError{err: fmt.Errorf("worklist refused: the audit trail cannot be written: %w", err)}
	}
	page := api.WorklistPage{Total: len(rows), Offset: f.q.Offset, Limit: f.q.Limit, Rows: []api.WorklistStudy{}}
	if f.q.Offset < len(rows) {
		page.Rows = rows[f.q.Offset:min(len(rows), f.q.Offset+f.q.Limit)]
	}
	return ok(w, page)
}
