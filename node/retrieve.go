package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
)

// Audit actions of query/retrieve: the api package's.
const (
	actDICOMMove = api.ActDICOMMove
	actDICOMGet  = api.ActDICOMGet
	actDICOMSend = api.ActDICOMSend
)

// studyFetcher is what C-MOVE and C-GET need of the fetcher: a partner's
// shared study is fetched over the exchange before it is delivered.
type studyFetcher interface {
	Start(ctx context.Context, req FetchRequest) (FetchStatus, error)
	Status(id string) (FetchStatus, bool)
}

// fetchPoll is how often a retrieve waiting for a fetch reports pending.
var fetchPoll = 500 * time.Millisecond

// readIdentifier reads a request's identifier (bounded).
func readIdentifier(m *dimse.Message) (dimse.Dataset, error) {
	if m.Data == nil {
		return nil, &errQuery{dimse.StatusCannotUnderstand, "the request has no identifier"}
	}
	b, err := io.ReadAll(io.LimitReader(m.Data, dimse.MaxIdentifier+1))
	if err != nil {
		return nil, &assocError{err}
	}
	if len(b) > dimse.MaxIdentifier {
		m.Data.Discard()
		return nil, &errQuery{dimse.StatusCannotUnderstand, "the identifier is too large"}
	}
	ds, err := dimse.DecodeDataset(b, m.Context.TransferSyntax)
	if err != nil {
		return nil, &errQuery{dimse.StatusCannotUnderstand, "the identifier cannot be parsed"}
	}
	return ds, nil
}

// assocError is the association failing while a request is read.
type assocError struct{ err error }

func (e *assocError) Error() string { return e.err.Error() }
func (e *assocError) Unwrap() error { return e.err }

// queryError turns an error into a failure status and comment; a nil
// status return means the association failed.
func queryError(err error) (uint16, string, bool) {
	var qe *errQuery
	if errors.As(err, &qe) {
		return qe.status, qe.comment, true
	}
	var ae *assocError
	if errors.As(err, &ae) {
		return 0, "", false
	}
	return dimse.StatusOutOfResources, "the archive could not be read", true
}

// cfind answers C-FIND (Patient Root and Study Root): one pending
// response per match (0xFF01 when the identifier asks for keys that are
// not supported: they come back empty), then success; a C-CANCEL ends it
// with 0xFE00.
func (d *dicomEdge) cfind(ctx context.Context, a *dimse.Assoc, m *dimse.Message) error {
	cmd := m.Command
	reply := func(status uint16, comment string, ident dimse.Dataset) error {
		rsp := &dimse.Command{Field: dimse.CFindRSP, MessageIDBeingAnswered: cmd.MessageID, AffectedSOPClass: cmd.AffectedSOPClass,
			Status: status, ErrorComment: comment}
		if ident == nil {
			return a.Send(m.Context.ID, rsp, nil)
		}
		b, err := ident.Encode(m.Context.TransferSyntax)
		if err != nil {
			return fmt.Errorf("encode C-FIND answer: %w", err)
		}
		return a.Send(m.Context.ID, rsp, bytes.NewReader(b))
	}
	ident, err := readIdentifier(m)
	var q *query
	if err == nil {
		q, err = parseQuery(ident, m.Context.AbstractSyntax == dimse.PatientRootFind)
	}
	var rows []*qrow
	if err == nil {
		d.audit.Once(consent.Entry{Actor: "ae:" + a.CallingAE, Action: consent.ActQuery, Decision: consent.DecisionAllow,
			Reason: "c-find:" + strings.ToLower(ident.String(tagQRLevel))}, time.Minute)
		rows, err = d.query.Find(q)
	}
	if err != nil {
		status, comment, ok := queryError(err)
		if !ok {
			return err
		}
		return reply(status, comment, nil)
	}
	pending := dimse.StatusPending
	if q.unsupported {
		pending = dimse.StatusPendingWarning
	}
	for _, r := range rows {
		if a.Canceled(cmd.MessageID) {
			return reply(dimse.StatusCancel, "", nil)
		}
		if err := reply(pending, "", q.answer(r, d.aet)); err != nil {
			return err
		}
	}
	if a.Canceled(cmd.MessageID) {
		return reply(dimse.StatusCancel, "", nil)
	}
	return reply(dimse.StatusSuccess, "", nil)
}

func (d *dicomEdge) cmove(ctx context.Context, a *dimse.Assoc, m *dimse.Message) error {
	return d.retrieve(ctx, a, m, false)
}

func (d *dicomEdge) cget(ctx context.Context, a *dimse.Assoc, m *dimse.Message) error {
	return d.retrieve(ctx, a, m, true)
}

// retrieve answers C-MOVE (get false: to a known destination AE over a
// new association) and C-GET (on this association): it selects the
// instances the identifier names, fetches partners' shared studies not
// yet held over the exchange first (pending responses meanwhile), then
// sends each instance, with a pending response after each sub-operation
// and a final status naming the failed instances.
func (d *dicomEdge) retrieve(ctx context.Context, a *dimse.Assoc, m *dimse.Message, get bool) error {
	cmd := m.Command
	field := dimse.CMoveRSP
	if get {
		field = dimse.CGetRSP
	}
	reply := func(status uint16, comment string, t *sendTally, final bool) error {
		rsp := &dimse.Command{Field: field, MessageIDBeingAnswered: cmd.MessageID, AffectedSOPClass: cmd.AffectedSOPClass,
			Status: status, ErrorComment: comment}
		if t != nil {
			if !final {
				rsp.Remaining = dimse.U16(uint16(min(t.Remaining, 0xFFFF)))
			}
			rsp.Completed = dimse.U16(uint16(min(t.Completed, 0xFFFF)))
			rsp.Failed = dimse.U16(uint16(min(t.Failed, 0xFFFF)))
			rsp.Warning = dimse.U16(uint16(min(t.Warning, 0xFFFF)))
		}
		if final && t != nil && len(t.FailedUIDs) > 0 {
			var ds dimse.Dataset
			ds.Set(tagFailedSOPList, "UI", strings.Join(t.FailedUIDs, `\`))
			b, err := ds.Encode(m.Context.TransferSyntax)
			if err != nil {
				return fmt.Errorf("encode failed SOP instance list: %w", err)
			}
			return a.Send(m.Context.ID, rsp, bytes.NewReader(b))
		}
		return a.Send(m.Context.ID, rsp, nil)
	}
	ident, err := readIdentifier(m)
	var q *query
	if err == nil {
		patientRoot := m.Context.AbstractSyntax == dimse.PatientRootMove || m.Context.AbstractSyntax == dimse.PatientRootGet
		q, err = parseQuery(ident, patientRoot)
	}
	var dest AE
	if err == nil && !get {
		var ok bool
		if dest, ok = d.aes.Get(strings.TrimSpace(cmd.MoveDestination)); !ok {
			d.log.Warn("C-MOVE refused: unknown destination AE", "calling_ae", a.CallingAE, "destination", printableAE(cmd.MoveDestination))
			return reply(dimse.StatusMoveUnknownDest, "move destination unknown; add it with pacsnet ae add", nil, true)
		}
	}
	var rows []*qrow
	if err == nil {
		rows, err = d.query.Select(q)
	}
	if err == nil {
		// Partners' studies not yet held are fetched first.
		var nearline []string
		seen := map[string]bool{}
		for _, r := range rows {
			if r.avail == availabilityNearLn && !seen[r.study.UID] {
				seen[r.study.UID] = true
				nearline = append(nearline, r.study.UID)
			}
		}
		for _, uid := range nearline {
			if canceled := d.fetchFirst(ctx, a, cmd.MessageID, uid, func(st FetchStatus) error {
				return reply(dimse.StatusPending, "", &sendTally{Remaining: st.Instances}, false)
			}); canceled {
				return reply(dimse.StatusCancel, "", &sendTally{}, true)
			}
		}
		if len(nearline) > 0 {
			rows, err = d.query.Select(q)
		}
	}
	if err != nil {
		status, comment, ok := queryError(err)
		if !ok {
			return err
		}
		return reply(status, comment, nil, true)
	}
	insts, unavailable := expandRows(rows)
	// Per study, who retrieved it and where to (no patient data).
	studies := map[string]bool{}
	for _, in := range insts {
		if !studies[in.Study] {
			studies[in.Study] = true
			e := consent.Entry{Actor: "ae:" + a.CallingAE, Action: actDICOMMove, Study: in.Study, Decision: consent.DecisionAllow, Reason: "to:" + dest.Title}
			if get {
				e.Action, e.Reason = actDICOMGet, "c-get"
			}
			if err := d.audit.Record(e); err != nil {
				// Fail closed: nothing is sent that the audit trail could
				// not record (0xA702: unable to perform sub-operations).
				return reply(dimse.StatusMoveOutOfResourcesSO, "the retrieval cannot be recorded in the audit trail", nil, true)
			}
		}
	}
	canceled := false
	progress := func(t sendTally) bool {
		if a.Canceled(cmd.MessageID) {
			canceled = true
			return false
		}
		if t.Remaining > 0 {
			if err := reply(dimse.StatusPending, "", &t, false); err != nil {
				return false
			}
		}
		return true
	}
	var t sendTally
	if len(insts) > 0 {
		if get {
			t, err = d.sender.Deliver(ctx, a, true, insts, "", 0, progress)
			if err != nil {
				return err // the association itself failed
			}
		} else {
			t, err = d.sender.SendTo(ctx, dest, insts, a.CallingAE, cmd.MessageID, progress)
			if err != nil {
				d.log.Warn("C-MOVE sub-operations failed", "destination", dest.Title, "err", err)
			}
		}
	}
	for _, uid := range unavailable {
		t.Failed++
		t.FailedUIDs = append(t.FailedUIDs, uid)
	}
	if canceled {
		// The instances not attempted are neither failed nor completed.
		return reply(dimse.StatusCancel, "", &t, true)
	}
	t.Remaining = 0
	switch {
	case t.Failed == 0 && t.Warning == 0:
		return reply(dimse.StatusSuccess, "", &t, true)
	case t.Completed+t.Warning == 0:
		comment := "no instance could be sent"
		if t.NoContext > 0 {
			comment = "the peer accepts no stored transfer syntax"
		}
		return reply(dimse.StatusMoveOutOfResourcesSO, comment, &t, true)
	}
	return reply(dimse.StatusWarningSubOps, "", &t, true)
}

// fetchFirst fetches a partner's shared study over the exchange and waits
// for it, calling pending at each poll; it reports whether the requestor
// canceled. A fetch that fails (revoked, expired, holder gone) is logged:
// its instances then count as failed sub-operations.
func (d *dicomEdge) fetchFirst(ctx context.Context, a *dimse.Assoc, msgID uint16, study string, pending func(FetchStatus) error) bool {
	st, err := d.fetch.Start(ctx, FetchRequest{Study: study, Actor: "ae:" + a.CallingAE})
	if err != nil {
		d.log.Warn("DICOM retrieve: fetching a partner's study failed", "study", study, "err", err)
		return false
	}
	for st.State == FetchRunning || st.State == FetchWaiting {
		if a.Canceled(msgID) {
			return true
		}
		if pending(st) != nil {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(fetchPoll):
		}
		var ok bool
		if st, ok = d.fetch.Status(st.ID); !ok {
			return false
		}
	}
	if st.State == FetchFailed {
		d.log.Warn("DICOM retrieve: fetching a partner's study failed", "study", study, "err", st.Error)
	}
	return false
}

// expandRows lists the instances held here that rows name (once each),
// and the SOP instance UIDs of those that are not (a partner's study
// whose fetch failed).
func expandRows(rows []*qrow) (insts []InstanceInfo, unavailable []string) {
	seen := map[string]bool{}
	add := func(r *qrow, in InstanceInfo) {
		if seen[in.SOPInstanceUID] {
			return
		}
		seen[in.SOPInstanceUID] = true
		if r.avail == availabilityNearLn {
			unavailable = append(unavailable, in.SOPInstanceUID)
			return
		}
		insts = append(insts, in)
	}
	for _, r := range rows {
		switch {
		case r.patients != nil:
			for _, s := range r.patients.rows {
				for _, in := range s.insts() {
					add(s, in)
				}
			}
		case r.inst != nil:
			add(r, *r.inst)
		case r.series != nil:
			for _, in := range r.insts() {
				if in.Series == r.series.Series {
					add(r, in)
				}
			}
		default:
			for _, in := range r.insts() {
				add(r, in)
			}
		}
	}
	return insts, unavailable
}
