package dimse

import (
	"context"
	"fmt"
	"io"
)

// StoreResult is a C-STORE-RSP's status and comment.
type StoreResult struct {
	Status  uint16
	Comment string
}

// OK reports a success or warning status (PS3.4 B.2.3: 0000, 0001, Bxxx,
// 0107, 0116 are warnings; the instance was stored).
func (r StoreResult) OK() bool {
	s := r.Status
	return s == StatusSuccess || s == 0x0001 || s&0xF000 == 0xB000 || s == 0x0107 || s == 0x0116 || s == StatusWarningDuplicate
}

// Store sends one instance's data set (in the context's transfer syntax,
// without preamble or file meta) with C-STORE as SCU and waits for the
// answer. moveOriginator, when not empty, names the C-MOVE this store
// serves (AE and message ID). The caller picks a context whose transfer
// syntax is the data set's: there is no transcoding.
func Store(ctx context.Context, a *Assoc, pc *Context, msgID uint16, sopClass, sopInstance string, data io.Reader,
	moveOriginatorAE string, moveOriginatorID uint16) (StoreResult, error) {
	cmd := &Command{Field: CStoreRQ, MessageID: msgID, AffectedSOPClass: sopClass, AffectedSOPInstance: sopInstance,
		Priority: PriorityMedium}
	if moveOriginatorAE != "" {
		cmd.MoveOriginatorAE, cmd.MoveOriginatorID = moveOriginatorAE, U16(moveOriginatorID)
	}
	if err := a.Send(pc.ID, cmd, data); err != nil {
		return StoreResult{}, err
	}
	for {
		m, err := a.Recv(ctx)
		if err != nil {
			return StoreResult{}, fmt.Errorf("C-STORE answer: %w", err)
		}
		if m.Data != nil {
			m.Data.Discard()
		}
		if m.Command.Field != CStoreRSP || m.Command.MessageIDBeingAnswered != msgID {
			return StoreResult{}, fmt.Errorf("C-STORE answer: unexpected %s for message %d", fieldName(m.Command.Field), m.Command.MessageIDBeingAnswered)
		}
		return StoreResult{Status: m.Command.Status, Comment: m.Command.ErrorComment}, nil
	}
}
