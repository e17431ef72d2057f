package node

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/exchange"
	"github.com/pacsnet/pacsnet/internal/wire"
)

// Partners' patient queries are limited beyond the ask rate: a query walks
// the studies, and a partner fishing for patients is slowed down.
const (
	queryRate  = 1.0 // per second, per partner
	queryBurst = 10
)

// search is the federated patient search room: it answers partners'
// signed patient queries (for those requests.query_partners names; others
// get the same empty answer as a patient we do not hold), and asks
// partners on behalf of our users.
type search struct {
	asks     *asks
	partners *partners
	sharing  *sharing
	inbox    *inbox
	audit    *auditor
	cfg      RequestsConfig
	lim      *peerLimiter
}

func (s *search) allowed(p peer.ID) bool {
	for _, n := range s.cfg.QueryPartners {
		if pp, err := s.partners.Resolve(n); err == nil && pp.ID == p {
			return true
		}
	}
	return false
}

// answerQuery answers a partner's patient query (wire.KindPatientQuery).
func (s *search) answerQuery(_ context.Context, from peer.ID, e *wire.Envelope) (any, string, error) {
	if !s.lim.allow(from) {
		return nil, reasonRateLimited, fmt.Errorf("patient queries: %w", errRateLimited)
	}
	var q wire.PatientQuery
	if err := e.DecodeBody(&q); err != nil {
		return nil, "malformed", fmt.Errorf("%w: %w", err, exchange.ErrBadRequest)
	}
	if err := q.Validate(); err != nil {
		return nil, "malformed", fmt.Errorf("%w: %w", err, exchange.ErrBadRequest)
	}
	ans := wire.QueryAnswer{Studies: []wire.FoundStudy{}}
	ok := s.allowed(from)
	if ok {
		studies, err := s.sharing.patientStudies(consent.Patient{ID: q.PatientID, Issuer: q.Issuer})
		if err != nil {
			return nil, "", err
		}
		for _, st := range studies {
			if q.BirthDate != "" && st.PatientBirthDate != q.BirthDate {
				continue
			}
			if len(ans.Studies) == wire.MaxQueryStudies {
				break
			}
			ans.Studies = append(ans.Studies, wire.FoundStudy{StudyUID: st.UID, StudyDate: st.StudyDate,
				Modalities: st.Modalities, Description: st.Description, Instances: st.Instances})
		}
	}
	allowed := "no"
	if ok {
		allowed = "yes"
	}
	s.audit.Record(consent.Entry{Peer: from, Action: api.ActPatientQuery,
		Reason: fmt.Sprintf("user=%s allowed=%s results=%d", q.User, allowed, len(ans.Studies))})
	return ans, "", nil
}

// Search asks the named partners (all when none are named) at once.
func (s *search) Search(ctx context.Context, req api.PatientSearch, actor string) ([]api.PatientSearchResult, error) {
	q := wire.PatientQuery{PatientID: req.PatientID, Issuer: req.Issuer, BirthDate: req.BirthDate, User: actor}
	if err := q.Validate(); err != nil {
		return nil, badRequest("%s", strings.TrimSuffix(strings.TrimPrefix(err.Error(), "patient query: "), ": "+wire.ErrBadAsk.Error()))
	}
	var targets []Peer
	if len(req.Partners) == 0 {
		targets = s.partners.List()
	}
	for _, n := range req.Partners {
		p, err := s.partners.Resolve(n)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		targets = append(targets, p)
	}
	shared := map[string]string{}
	if list, err := s.inbox.Shared(); err == nil {
		for _, sh := range list {
			state := sh.State
			if sh.Fetched {
				state = "fetched"
			}
			shared[sh.Issuer.String()+"/"+sh.Study.UID] = state
		}
	}
	out := make([]api.PatientSearchResult, len(targets))
	var wg sync.WaitGroup
	for i, p := range targets {
		wg.Go(func() {
			res := api.PatientSearchResult{Holder: api.PartnerRef{PeerID: p.ID.String(), Name: p.Name}, Studies: []api.FoundStudy{}}
			var ans wire.QueryAnswer
			_, err := s.asks.ask(ctx, p.ID, wire.KindPatientQuery, q, &ans)
			if err == nil {
				err = ans.Validate()
			}
			reason := ""
			if err != nil {
				res.Error = askSentence(err, p.Name)
				reason = "failed"
			} else {
				for _, f := range ans.Studies {
					res.Studies = append(res.Studies, api.FoundStudy{StudyUID: f.StudyUID, StudyDate: f.StudyDate,
						Modalities: f.Modalities, Description: f.Description, Instances: f.Instances,
						Shared: shared[p.ID.String()+"/"+f.StudyUID]})
				}
				reason = fmt.Sprintf("results=%d", len(res.Studies))
			}
			s.audit.Record(consent.Entry{Actor: actor, Peer: p.ID, Action: api.ActPatientSearch, Reason: reason})
			out[i] = res
		})
	}
	wg.Wait()
	return out, nil
}
