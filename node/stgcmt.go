package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/pacsnet/pacsnet/api"
	"net"
	"strconv"
	"time"

	"github.com/pacsnet/pacsnet/consent"
	"github.com/pacsnet/pacsnet/dicomio/dimse"
	"github.com/pacsnet/pacsnet/internal/uid"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// Storage Commitment Push Model (PS3.4 Annex J) attributes.
const (
	tagTransactionUID      = 0x00081195
	tagReferencedSOPSeq    = 0x00081199
	tagFailedSOPSeq        = 0x00081198
	tagReferencedSOPClass  = 0x00081150
	tagReferencedSOPInst   = 0x00081155
	tagFailureReason       = 0x00081197
	failureNoSuchInstance  = 0x0112
	failureClassConflict   = 0x0119
	maxCommitmentInstances = 10000
)

// committer answers storage commitment requests: an instance is
// committed when the archive holds it (every stored instance was synced
// before its C-STORE was answered), with the SOP class it was sent as.
type committer struct {
	store *store.Store
	audit *auditor
	// report opens a new association to the requestor's AE to deliver an
	// N-EVENT-REPORT that could not go on the request's own (it was
	// released first); nil: no fallback.
	report func(ctx context.Context, calling string, ts string, ev *dimse.Command, body []byte) error
}

// naction handles N-ACTION-RQ of the Storage Commitment SOP class: it
// answers the request, then reports the outcome with N-EVENT-REPORT on the
// same association and waits for the requestor's answer.
func (c *committer) naction(ctx context.Context, a *dimse.Assoc, m *dimse.Message) error {
	cmd := m.Command
	rsp := &dimse.Command{Field: dimse.NActionRSP, MessageIDBeingAnswered: cmd.MessageID,
		AffectedSOPClass: cmd.RequestedSOPClass, AffectedSOPInstance: cmd.RequestedSOPInstance}
	answer := func(status uint16, comment string) error {
		rsp.Status, rsp.ErrorComment = status, comment
		if cmd.ActionTypeID != nil {
			rsp.ActionTypeID = cmd.ActionTypeID
		}
		return a.Send(m.Context.ID, rsp, nil)
	}
	if m.Data == nil {
		return answer(dimse.StatusMistypedArgument, "N-ACTION without its data set")
	}
	raw, err := readLimited(m.Data, dimse.MaxIdentifier)
	if err != nil {
		return err
	}
	if cmd.RequestedSOPClass != dimse.StorageCommitment || cmd.RequestedSOPInstance != dimse.StorageCommitmentID {
		return answer(dimse.StatusNoSuchSOPClass, "not the Storage Commitment Push Model well-known instance")
	}
	if cmd.ActionTypeID == nil || *cmd.ActionTypeID != 1 {
		return answer(0x0123, "unknown action type") // No Such Action
	}
	ds, err := dimse.DecodeDataset(raw, m.Context.TransferSyntax)
	if err != nil {
		return answer(dimse.StatusProcessingFailure, clip("the request does not decode: "+err.Error(), 64))
	}
	txn := ds.String(tagTransactionUID)
	refs := ds.Find(tagReferencedSOPSeq)
	if !uid.Valid(txn) || refs == nil || len(refs.Items) == 0 || len(refs.Items) > maxCommitmentInstances {
		return answer(dimse.StatusInvalidArgument, "Transaction UID or Referenced SOP Sequence missing or malformed")
	}
	if err := answer(dimse.StatusSuccess, ""); err != nil {
		return err
	}

	var ok, failed []dimse.Dataset
	for _, it := range refs.Items {
		class, inst := it.String(tagReferencedSOPClass), it.String(tagReferencedSOPInst)
		var item dimse.Dataset
		item.Set(tagReferencedSOPClass, "UI", class)
		item.Set(tagReferencedSOPInst, "UI", inst)
		rec, found, err := c.store.InstanceBySOP(inst)
		switch {
		case err != nil:
			return err
		case !found:
			item.SetBytes(tagFailureReason, "US", binary.LittleEndian.AppendUint16(nil, failureNoSuchInstance))
			failed = append(failed, item)
		case rec.SOPClassUID != class:
			item.SetBytes(tagFailureReason, "US", binary.LittleEndian.AppendUint16(nil, failureClassConflict))
			failed = append(failed, item)
		default:
			ok = append(ok, item)
		}
	}
	var report dimse.Dataset
	report.Set(tagTransactionUID, "UI", txn)
	if len(ok) > 0 {
		report.SetItems(tagReferencedSOPSeq, ok)
	}
	event := uint16(1) // all committed
	if len(failed) > 0 {
		report.SetItems(tagFailedSOPSeq, failed)
		event = 2
	}
	c.audit.Once(consent.Entry{Actor: "ae:" + a.CallingAE, Action: api.ActStorageCommitment, Decision: consent.DecisionAllow,
		Reason: fmt.Sprintf("%d committed, %d failed", len(ok), len(failed))}, time.Minute)
	body, err := report.Encode(m.Context.TransferSyntax)
	if err != nil {
		return err
	}
	ev := &dimse.Command{Field: dimse.NEventReportRQ, MessageID: cmd.MessageID + 1, AffectedSOPClass: dimse.StorageCommitment,
		AffectedSOPInstance: dimse.StorageCommitmentID, EventTypeID: dimse.U16(event)}
	// On the request's association; if the requestor released it
	// already, on a new one to its AE (PS3.4 J.3.3).
	fallback := func(cause error) error {
		if c.report == nil {
			return fmt.Errorf("storage commitment report: %w", cause)
		}
		if err := c.report(ctx, a.CallingAE, m.Context.TransferSyntax, ev, body); err != nil {
			return fmt.Errorf("storage commitment report, on the request's association (%v) and on a new one: %w", cause, err)
		}
		return dimse.ErrReleased // the request's association is gone: end its loop quietly
	}
	if err := a.Send(m.Context.ID, ev, bytes.NewReader(body)); err != nil {
		return fallback(err)
	}
	// The requestor answers the report; anything else here is a protocol
	// error of its own.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := a.Recv(wctx)
	if errors.Is(err, dimse.ErrReleased) || errors.Is(err, dimse.ErrAborted) {
		return fallback(err)
	}
	if err != nil {
		return fmt.Errorf("storage commitment report: %w", err)
	}
	if r.Data != nil {
		r.Data.Discard()
	}
	if r.Command.Field != dimse.NEventReportRSP {
		return fmt.Errorf("storage commitment report answered with command 0x%04X", r.Command.Field)
	}
	return nil
}

// reportOnNewAssociation delivers a storage commitment N-EVENT-REPORT to
// the requestor's known AE over a new association, proposing Storage
// Commitment with this node in the SCP role (role selection).
func (d *dicomEdge) reportOnNewAssociation(ctx context.Context, calling, ts string, ev *dimse.Command, body []byte) error {
	ae, ok := d.aes.Get(calling)
	if !ok {
		return fmt.Errorf("%q is not a known AE", calling)
	}
	dial, err := d.dialer(ae)
	if err != nil {
		return err
	}
	r := &dimse.Requestor{CallingAE: d.aet, CalledAE: ae.Title, Limits: dimse.Limits{MaxPDU: d.cfg.MaxPDU}, Dialer: dial,
		Contexts: []dimse.ContextRQ{{AbstractSyntax: dimse.StorageCommitment, TransferSyntaxes: []string{ts}}},
		Roles:    []dimse.RoleSelection{{SOPClass: dimse.StorageCommitment, SCU: false, SCP: true}}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := r.Dial(ctx, net.JoinHostPort(ae.Host, strconv.Itoa(ae.Port)))
	if err != nil {
		return err
	}
	pc := a.ContextFor(dimse.StorageCommitment, "")
	if pc == nil {
		a.Abort()
		return errors.New("the AE did not accept Storage Commitment")
	}
	if err := a.Send(pc.ID, ev, bytes.NewReader(body)); err != nil {
		return err
	}
	rsp, err := a.Recv(ctx)
	if err != nil {
		return err
	}
	if rsp.Data != nil {
		rsp.Data.Discard()
	}
	if rsp.Command.Field != dimse.NEventReportRSP {
		a.Abort()
		return fmt.Errorf("answered with command 0x%04X", rsp.Command.Field)
	}
	return a.Release()
}
