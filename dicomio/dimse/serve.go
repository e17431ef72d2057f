package dimse

import (
	"context"
	"errors"
	"fmt"
)

// Verification is the Verification SOP Class (C-ECHO).
const Verification = "1.2.840.10008.1.1"

// HandlerFunc answers one request message on an association. It must read
// m.Data to its end (or Discard it), and send the response(s) itself. An
// error aborts the association.
type HandlerFunc func(ctx context.Context, a *Assoc, m *Message) error

// Serve receives request messages and hands each to the handler for its
// command field, one at a time (the asynchronous operations window is
// 1/1). C-ECHO is answered here unless handlers has its own. A request
// without a handler is answered "unrecognized operation" (0x0211). Serve
// returns nil when the peer releases the association, the reason
// otherwise; it closes the association either way.
func Serve(ctx context.Context, a *Assoc, handlers map[uint16]HandlerFunc) error {
	defer a.Close()
	for {
		m, err := a.Recv(ctx)
		if err != nil {
			if errors.Is(err, ErrReleased) {
				return nil
			}
			if ctx.Err() != nil {
				a.Abort()
			}
			return err
		}
		if m.Command.IsResponse() {
			// A response to nothing we asked: not ours to answer.
			if m.Data != nil {
				m.Data.Discard()
			}
			continue
		}
		h := handlers[m.Command.Field]
		if h == nil && m.Command.Field == CEchoRQ {
			h = echo
		}
		if h == nil {
			if m.Data != nil {
				m.Data.Discard()
			}
			rsp := &Command{Field: m.Command.Field | 0x8000, MessageIDBeingAnswered: m.Command.MessageID,
				AffectedSOPClass: m.Command.AffectedSOPClass, Status: StatusUnrecognizedOp,
				ErrorComment: "operation not supported"}
			if err := a.Send(m.Context.ID, rsp, nil); err != nil {
				return err
			}
			continue
		}
		a.Begin()
		err = h(ctx, a, m)
		a.End()
		if errors.Is(err, ErrReleased) {
			return nil // the handler saw the peer release the association
		}
		if err != nil {
			a.Abort()
			return fmt.Errorf("%s request: %w", fieldName(m.Command.Field), err)
		}
	}
}

func echo(_ context.Context, a *Assoc, m *Message) error {
	if m.Data != nil {
		m.Data.Discard()
	}
	return a.Send(m.Context.ID, &Command{Field: CEchoRSP, MessageIDBeingAnswered: m.Command.MessageID,
		AffectedSOPClass: Verification, Status: StatusSuccess}, nil)
}

func fieldName(f uint16) string {
	switch f &^ 0x8000 {
	case CStoreRQ:
		return "C-STORE"
	case CGetRQ:
		return "C-GET"
	case CFindRQ:
		return "C-FIND"
	case CMoveRQ:
		return "C-MOVE"
	case CEchoRQ:
		return "C-ECHO"
	case NEventReportRQ:
		return "N-EVENT-REPORT"
	case NActionRQ:
		return "N-ACTION"
	case CCancelRQ:
		return "C-CANCEL"
	}
	return fmt.Sprintf("command 0x%04X", f)
}

// Echo sends a C-ECHO on an association (as SCU) and waits for its
// answer.
func Echo(ctx context.Context, a *Assoc, msgID uint16) error {
	pc := a.ContextFor(Verification, "")
	if pc == nil {
		return errors.New("echo: the peer did not accept the Verification SOP class")
	}
	if err := a.Send(pc.ID, &Command{Field: CEchoRQ, MessageID: msgID, AffectedSOPClass: Verification}, nil); err != nil {
		return err
	}
	rsp, err := a.Recv(ctx)
	if err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if rsp.Data != nil {
		rsp.Data.Discard()
	}
	if rsp.Command.Field != CEchoRSP || rsp.Command.MessageIDBeingAnswered != msgID {
		return fmt.Errorf("echo: unexpected answer %s", fieldName(rsp.Command.Field))
	}
	if rsp.Command.Status != StatusSuccess {
		return fmt.Errorf("echo: status 0x%04X", rsp.Command.Status)
	}
	return nil
}
