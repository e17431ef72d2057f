package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// BlockSize is the largest block an instance's ciphertext is cut into.
const BlockSize = wire.BlockSize

var cidPrefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}

// Import outcomes.
const (
	OutcomeStored    = "stored"
	OutcomeDuplicate = "duplicate" // the same instance was already stored: idempotent success
	OutcomeConflict  = "conflict"  // a different instance with the same SOP Instance UID exists
	OutcomeRejected  = "rejected"  // not acceptable DICOM
	OutcomeFailed    = "failed"    // a local failure (disk, database)
)

// ImportResult reports what Import did with one instance.
type ImportResult struct {
	Outcome        string
	SOPInstanceUID string
	Study          string
	Size           int64
	Digest         string
	Code           string // dicomio error code for a rejection
	Error          string
	Warnings       []string
}

// ingester validates, normalizes, encrypts and stores instances: the one
// entry point of every way an instance arrives (import, and later
// C-STORE and STOW-RS).
type ingester struct {
	store   *store.Store
	keys    *keyring
	clock   clock.Clock
	maxSize int64
}

// Import validates, normalizes, encrypts and stores one DICOM instance
// (a Part-10 file or a bare dataset). The result is reported only after
// the instance, its blocks and its index entries are committed in one
// synced transaction.
func (g *ingester) Import(ctx context.Context, data []byte) ImportResult {
	lim := dicomio.DefaultLimits()
	lim.MaxSize = g.maxSize
	inst, err := dicomio.Parse(data, lim)
	if err == nil {
		err = inst.Storable()
	}
	if err != nil {
		return rejected(err)
	}
	res := ImportResult{
		SOPInstanceUID: inst.SOPInstanceUID,
		Study:          inst.StudyInstanceUID,
		Size:           int64(len(inst.Data)),
		Digest:         hex.EncodeToString(inst.Digest[:]),
		Warnings:       inst.Warnings,
	}
	outcome, why, err := g.store1(ctx, inst)
	res.Outcome = outcome
	var other *store.OtherSyntaxError
	switch {
	case err != nil:
		res.Error = err.Error()
	case errors.As(why, &other):
		res.Warnings = append(res.Warnings, why.Error())
	case why != nil:
		res.Error = why.Error()
	}
	return res
}

func rejected(err error) ImportResult {
	r := ImportResult{Outcome: OutcomeRejected, Error: err.Error()}
	var de *dicomio.Error
	if errors.As(err, &de) {
		r.Code = strings.ReplaceAll(de.Code.String(), " ", "-") // "missing attribute" → "missing-attribute"
		if de.Code == dicomio.ErrCodeTooLarge {
			r.Code = "too-large"
		}
	}
	return r
}

func outcomeName(o store.Outcome) string {
	switch o {
	case store.Stored:
		return OutcomeStored
	case store.Duplicate:
		return OutcomeDuplicate
	case store.Conflict:
		return OutcomeConflict
	}
	return OutcomeFailed
}

// studyOf is what the index and manifests say about an instance's study.
func studyOf(inst *dicomio.Instance) wire.Study {
	return wire.Study{
		UID:               inst.StudyInstanceUID,
		PatientID:         inst.PatientID,
		IssuerOfPatientID: inst.IssuerOfPatientID,
		PatientName:       inst.PatientName,
		PatientBirthDate:  inst.PatientBirthDate,
		PatientSex:        inst.PatientSex,
		StudyDate:         inst.StudyDate,
		StudyTime:         inst.StudyTime,
		Description:       inst.StudyDescription,
		AccessionNumber:   inst.AccessionNumber,
		StudyID:           inst.StudyID,
	}
}

func instanceOf(inst *dicomio.Instance) wire.Instance {
	return wire.Instance{
		Study:             inst.StudyInstanceUID,
		Series:            inst.SeriesInstanceUID,
		SOPInstanceUID:    inst.SOPInstanceUID,
		SOPClassUID:       inst.SOPClassUID,
		TransferSyntaxUID: inst.TransferSyntaxUID,
		Modality:          inst.Modality,
		SeriesNumber:      inst.SeriesNumber,
		SeriesDescription: inst.SeriesDescription,
		InstanceNumber:    inst.InstanceNumber,
		Size:              int64(len(inst.Data)),
		Digest:            hex.EncodeToString(inst.Digest[:]),
	}
}

// store1 encrypts and commits one parsed instance. why explains a
// duplicate or conflict; err is a local failure.
func (g *ingester) store1(_ context.Context, inst *dicomio.Instance) (outcome string, why, err error) {
	// Cheap idempotency check before the expensive encryption.
	if prev, ok, err := g.store.InstanceBySOP(inst.SOPInstanceUID); err != nil {
		return OutcomeFailed, nil, err
	} else if ok {
		o, why := store.SameOrConflict(prev, inst.StudyInstanceUID, inst.TransferSyntaxUID, hex.EncodeToString(inst.Digest[:]))
		return outcomeName(o), why, nil
	}
	sk, err := g.keys.Ensure(studyOf(inst), "", "", "")
	if err != nil {
		return OutcomeFailed, nil, err
	}
	ct, err := crypto.Encrypt(inst.Data, sk.Recipient())
	if err != nil {
		return OutcomeFailed, nil, fmt.Errorf("encrypt instance: %w", err)
	}
	rec := instanceOf(inst)
	blocks, err := cutBlocks(ct)
	if err != nil {
		return OutcomeFailed, nil, err
	}
	for _, b := range blocks {
		rec.Blocks = append(rec.Blocks, wire.BlockRef{CID: b.CID.String(), Size: len(b.Data)})
	}
	o, why, err := g.store.AddInstance(rec, blocks, g.clock.Now())
	if err != nil {
		return OutcomeFailed, nil, err
	}
	return outcomeName(o), why, nil
}

func cutBlocks(ct []byte) ([]store.Block, error) {
	var out []store.Block
	for off := 0; off < len(ct); off += BlockSize {
		end := min(off+BlockSize, len(ct))
		c, err := cidPrefix.Sum(ct[off:end])
		if err != nil {
			return nil, fmt.Errorf("hash block: %w", err)
		}
		out = append(out, store.Block{CID: c, Data: ct[off:end]})
	}
	return out, nil
}
