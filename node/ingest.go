package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/dicomio"
)

// errStudyNotFound: no study with that UID is held here.
var errStudyNotFound = errors.New("study not found")

// BlockSize is the largest block an instance's ciphertext is cut into.
const BlockSize = 1 << 20

var cidPrefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}

// StudyInfo is what the index and manifests say about a study.
type StudyInfo struct {
	UID               string   `json:"uid"`
	PatientID         string   `json:"patient_id"`
	IssuerOfPatientID string   `json:"issuer_of_patient_id,omitempty"`
	PatientName       string   `json:"patient_name"`
	PatientBirthDate  string   `json:"patient_birth_date,omitempty"`
	PatientSex        string   `json:"patient_sex,omitempty"`
	StudyDate         string   `json:"study_date,omitempty"`
	StudyTime         string   `json:"study_time,omitempty"`
	Description       string   `json:"description,omitempty"`
	AccessionNumber   string   `json:"accession_number,omitempty"`
	StudyID           string   `json:"study_id,omitempty"`
	Modalities        []string `json:"modalities"`
}

// studyRecord is the index entry of a study held in this archive, imported
// here or fetched from a partner.
type studyRecord struct {
	StudyInfo
	Origin     peer.ID   `json:"origin,omitempty"` // empty: imported at this facility
	OriginName string    `json:"origin_name,omitempty"`
	Key        []byte    `json:"key"` // the study's age identity, age-encrypted to this node
	Instances  int       `json:"instances"`
	Expected   int       `json:"expected,omitempty"` // a fetched study: instances its manifest lists
	Bytes      int64     `json:"bytes"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
}

// BlockRef names one ciphertext block of an instance.
type BlockRef struct {
	CID  string `json:"cid"`
	Size int    `json:"size"`
}

// InstanceInfo is the index entry of one instance; manifests carry the
// same record.
type InstanceInfo struct {
	Study             string     `json:"study"`
	Series            string     `json:"series"`
	SOPInstanceUID    string     `json:"sop_instance_uid"`
	SOPClassUID       string     `json:"sop_class_uid"`
	TransferSyntaxUID string     `json:"transfer_syntax_uid"`
	Modality          string     `json:"modality,omitempty"`
	SeriesNumber      int        `json:"series_number,omitempty"`
	SeriesDescription string     `json:"series_description,omitempty"`
	InstanceNumber    int        `json:"instance_number,omitempty"`
	Size              int64      `json:"size"`   // plaintext bytes
	Digest            string     `json:"sha256"` // hex SHA-256 of the plaintext Part-10 bytes
	Blocks            []BlockRef `json:"blocks"`
}

func instKey(study, sop string) string { return pfxInstance + study + "/" + sop }

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
	Outcome        string   `json:"outcome"`
	SOPInstanceUID string   `json:"sop_instance_uid,omitempty"`
	Study          string   `json:"study,omitempty"`
	Size           int64    `json:"size,omitempty"`
	Digest         string   `json:"sha256,omitempty"`
	Code           string   `json:"code,omitempty"` // dicomio error code for a rejection
	Error          string   `json:"error,omitempty"`
	Warnings       []string `json:"warnings,omitempty"`
}

// Import validates, normalizes, encrypts and stores one DICOM instance
// (a Part-10 file or a bare dataset). The result is reported only after
// the instance, its blocks and its index entries are committed in one
// synced transaction.
func (n *Node) Import(ctx context.Context, data []byte) ImportResult {
	lim := dicomio.DefaultLimits()
	lim.MaxSize = n.cfg.Archive.MaxInstanceSize
	inst, err := dicomio.Parse(data, lim)
	if err == nil {
		err = inst.Storable()
	}
	if err != nil {
		r := ImportResult{Outcome: OutcomeRejected, Error: err.Error()}
		var de *dicomio.Error
		if errors.As(err, &de) {
			r.Code = strings.ReplaceAll(de.Code.String(), " ", "-") // "missing attribute" → "missing-attribute"
		}
		return r
	}
	res := ImportResult{
		SOPInstanceUID: inst.SOPInstanceUID,
		Study:          inst.StudyInstanceUID,
		Size:           int64(len(inst.Data)),
		Digest:         hex.EncodeToString(inst.Digest[:]),
		Warnings:       inst.Warnings,
	}
	outcome, err := n.storeInstance(ctx, inst)
	res.Outcome = outcome
	var other errAlreadyOtherTS
	switch {
	case errors.As(err, &other):
		res.Warnings = append(res.Warnings, err.Error())
	case err != nil:
		res.Error = err.Error()
	}
	return res
}

func (n *Node) storeInstance(ctx context.Context, inst *dicomio.Instance) (string, error) {
	// Cheap idempotency check before the expensive encryption.
	if prev, ok, err := n.instanceBySOP(inst.SOPInstanceUID); err != nil {
		return OutcomeFailed, err
	} else if ok {
		return sameOrConflict(prev, inst.StudyInstanceUID, inst.TransferSyntaxUID, hex.EncodeToString(inst.Digest[:]))
	}
	info := StudyInfo{
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
	sk, err := n.studyKey(info, "", "", true)
	if err != nil {
		return OutcomeFailed, err
	}
	ct, err := crypto.Encrypt(inst.Data, sk.Recipient())
	if err != nil {
		return OutcomeFailed, fmt.Errorf("encrypt instance: %w", err)
	}
	rec := InstanceInfo{
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
	blocks, err := cutBlocks(ct)
	if err != nil {
		return OutcomeFailed, err
	}
	for _, b := range blocks {
		rec.Blocks = append(rec.Blocks, BlockRef{CID: b.c.String(), Size: len(b.data)})
	}
	return n.commitInstance(ctx, rec, blocks)
}

type block struct {
	c    cid.Cid
	data []byte
}

func cutBlocks(ct []byte) ([]block, error) {
	var out []block
	for off := 0; off < len(ct); off += BlockSize {
		end := min(off+BlockSize, len(ct))
		c, err := cidPrefix.Sum(ct[off:end])
		if err != nil {
			return nil, fmt.Errorf("hash block: %w", err)
		}
		out = append(out, block{c: c, data: ct[off:end]})
	}
	return out, nil
}

// sameOrConflict decides what a second instance with a stored SOP Instance
// UID is. The same bytes are a duplicate. The same UID in the same study in
// another transfer syntax is the same instance re-encoded (PS3.5 §10): also
// a duplicate, and the copy stored first is kept. Anything else would
// overwrite a different object and is refused as a conflict.
func sameOrConflict(prev InstanceInfo, study, ts, digest string) (string, error) {
	switch {
	case prev.Study != study:
		return OutcomeConflict, errors.New("conflict: this SOP Instance UID is already stored in another study")
	case prev.Digest == digest:
		return OutcomeDuplicate, nil
	case prev.TransferSyntaxUID != ts:
		return OutcomeDuplicate, errAlreadyOtherTS{prev.TransferSyntaxUID}
	}
	return OutcomeConflict, errors.New("conflict: a different instance with this SOP Instance UID is already stored")
}

// errAlreadyOtherTS reports a duplicate received in another transfer
// syntax; Import turns it into a warning.
type errAlreadyOtherTS struct{ ts string }

func (e errAlreadyOtherTS) Error() string {
	return "the same instance is already stored in transfer syntax " + e.ts + "; the stored copy is kept"
}

// commitInstance writes an instance's blocks (those given; fetched blocks
// may already be stored), block index, instance record, SOP index and the
// updated study record in one synced transaction. The caller has made sure
// the study record exists (studyKey).
func (n *Node) commitInstance(_ context.Context, rec InstanceInfo, blocks []block) (string, error) {
	var outcome string
	var conflict error
	n.commitMu.Lock()
	defer n.commitMu.Unlock()
	err := n.arch.update(func(txn *badger.Txn) error {
		var err error
		outcome, conflict, err = n.addInstanceTxn(txn, rec)
		if err != nil || outcome != OutcomeStored {
			return err // nothing of a duplicate or conflict is written
		}
		return putBlocksTxn(txn, blocks)
	})
	if err != nil {
		return OutcomeFailed, fmt.Errorf("commit instance: %w", err)
	}
	return outcome, conflict
}

func putBlocksTxn(txn *badger.Txn, blocks []block) error {
	for _, b := range blocks {
		if err := txn.Set(blockKey(b.c), b.data); err != nil {
			return err
		}
	}
	return nil
}

// addInstanceTxn indexes one instance whose blocks are written in txn or
// stored already. outcome and conflict say what sameOrConflict decided
// when the SOP Instance UID is known; err is a database failure.
func (n *Node) addInstanceTxn(txn *badger.Txn, rec InstanceInfo) (outcome string, conflict, err error) {
	var study string
	if ok, err := getString(txn, pfxSOP+rec.SOPInstanceUID, &study); err != nil {
		return "", nil, err
	} else if ok {
		var prev InstanceInfo
		if _, err := getJSON(txn, instKey(study, rec.SOPInstanceUID), &prev); err != nil {
			return "", nil, err
		}
		outcome, conflict = sameOrConflict(prev, rec.Study, rec.TransferSyntaxUID, rec.Digest)
		return outcome, conflict, nil
	}
	var sr studyRecord
	if ok, err := getJSON(txn, pfxStudy+rec.Study, &sr); err != nil {
		return "", nil, err
	} else if !ok {
		return "", nil, errors.New("study record missing")
	}
	for _, br := range rec.Blocks {
		c, err := cid.Decode(br.CID)
		if err != nil {
			return "", nil, err
		}
		if err := txn.Set(blockIdxKey(c), []byte(rec.Study)); err != nil {
			return "", nil, err
		}
	}
	if err := setJSON(txn, instKey(rec.Study, rec.SOPInstanceUID), rec); err != nil {
		return "", nil, err
	}
	if err := txn.Set([]byte(pfxSOP+rec.SOPInstanceUID), []byte(rec.Study)); err != nil {
		return "", nil, err
	}
	sr.Instances++
	sr.Bytes += rec.Size
	if rec.Modality != "" && !slices.Contains(sr.Modalities, rec.Modality) {
		sr.Modalities = append(sr.Modalities, rec.Modality)
		slices.Sort(sr.Modalities)
	}
	sr.Updated = n.now().UTC()
	return OutcomeStored, nil, setJSON(txn, pfxStudy+rec.Study, sr)
}

func getString(txn *badger.Txn, key string, s *string) (bool, error) {
	it, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, it.Value(func(b []byte) error { *s = string(b); return nil })
}

func (n *Node) instanceBySOP(sop string) (InstanceInfo, bool, error) {
	var rec InstanceInfo
	var found bool
	err := n.arch.db.View(func(txn *badger.Txn) error {
		var study string
		ok, err := getString(txn, pfxSOP+sop, &study)
		if err != nil || !ok {
			return err
		}
		found, err = getJSON(txn, instKey(study, sop), &rec)
		return err
	})
	return rec, found, err
}

// studyKey returns the study's age identity, creating the study record
// with a new key (wrapped to this node) on first use. origin is empty for
// studies imported here; for a fetched study the key comes from the
// manifest (given) and origin names the issuer.
func (n *Node) studyKey(info StudyInfo, origin peer.ID, given string, create bool) (*crypto.StudyKey, error) {
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	if k, ok := n.keyCache[info.UID]; ok {
		return k, nil
	}
	var sr studyRecord
	var found bool
	err := n.arch.db.View(func(txn *badger.Txn) error {
		var err error
		found, err = getJSON(txn, pfxStudy+info.UID, &sr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read study: %w", err)
	}
	if found {
		plain, err := crypto.Decrypt(sr.Key, n.keys.id.Box)
		if err != nil {
			return nil, fmt.Errorf("unwrap study key: %w", err)
		}
		k, err := crypto.ParseStudyKey(string(plain))
		if err != nil {
			return nil, fmt.Errorf("unwrap study key: %w", err)
		}
		n.keyCache[info.UID] = k
		return k, nil
	}
	if !create {
		return nil, errStudyNotFound
	}
	var k *crypto.StudyKey
	if given != "" {
		k, err = crypto.ParseStudyKey(given)
	} else {
		k, err = crypto.NewStudyKey()
	}
	if err != nil {
		return nil, fmt.Errorf("study key: %w", err)
	}
	wrapped, err := crypto.Encrypt([]byte(k.String()), n.keys.id.Recipient())
	if err != nil {
		return nil, fmt.Errorf("wrap study key: %w", err)
	}
	now := n.now().UTC()
	sr = studyRecord{StudyInfo: info, Origin: origin, Key: wrapped, Created: now, Updated: now}
	sr.Modalities = []string{} // filled from the instances as they are committed
	if origin != "" {
		if p, ok := n.partners.get(origin); ok {
			sr.OriginName = p.Name
		}
	}
	if err := n.arch.update(func(txn *badger.Txn) error { return setJSON(txn, pfxStudy+info.UID, sr) }); err != nil {
		return nil, fmt.Errorf("store study: %w", err)
	}
	n.keyCache[info.UID] = k
	return k, nil
}

// readInstance decrypts one stored instance and checks it against its
// digest: corrupted storage is reported, never served.
func (n *Node) readInstance(rec InstanceInfo) ([]byte, error) {
	sk, err := n.studyKey(StudyInfo{UID: rec.Study}, "", "", false)
	if err != nil {
		return nil, err
	}
	var ct []byte
	for _, br := range rec.Blocks {
		c, err := cid.Decode(br.CID)
		if err != nil {
			return nil, fmt.Errorf("read instance: %w", err)
		}
		b, err := n.arch.GetBlock(context.Background(), c)
		if err != nil {
			return nil, fmt.Errorf("read instance: %w", err)
		}
		ct = append(ct, b...)
	}
	plain, err := crypto.Decrypt(ct, sk)
	if err != nil {
		return nil, fmt.Errorf("decrypt instance: %w", err)
	}
	if sum := sha256.Sum256(plain); hex.EncodeToString(sum[:]) != rec.Digest {
		return nil, errors.New("read instance: plaintext does not match its recorded SHA-256")
	}
	return plain, nil
}
