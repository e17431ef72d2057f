package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/crypto"
	"github.com/pacsnet/pacsnet/dicomio"
	"github.com/pacsnet/pacsnet/internal/wire"
	"github.com/pacsnet/pacsnet/node/clock"
	"github.com/pacsnet/pacsnet/node/internal/store"
)

// BlockSize is the largest block an instance's ciphertext is cut into.
const BlockSize = wire.BlockSize

var cidPrefix = cid.Prefix{Version: 1, Codec: cid.Raw, MhType: multihash.SHA2_256, MhLength: -1}

// Import outcomes: the api package's.
const (
	OutcomeStored    = api.OutcomeStored
	OutcomeDuplicate = api.OutcomeDuplicate // the same instance was already stored: idempotent success
	OutcomeConflict  = api.OutcomeConflict  // a different instance with the same SOP Instance UID exists
	OutcomeRejected  = api.OutcomeRejected  // not acceptable DICOM
	OutcomeFailed    = api.OutcomeFailed    // a local failure (disk, database)
)

// ImportResult reports what Import did with one instance.
type ImportResult struct {
	Outcome        string
	SOPClassUID    string
	SOPInstanceUID string
	Study          string
	Size           int64
	Digest         string
	Code           string // dicomio error code for a rejection
	OtherSyntax    bool   // a duplicate already held in another transfer syntax (that copy is kept)
	Error          string
	Warnings       []string
}

// ingester validates, normalizes, encrypts and stores instances: the one
// entry point of every way an instance arrives (import, and later
// C-STORE and STOW-RS). An instance streams through it: memory is bounded
// by the per-instance buffer (archive.ingest_buffer), not by the
// instance's size, and at most archive.max_concurrent_ingests run at once.
type ingester struct {
	store   *store.Store
	keys    *keyring
	clock   clock.Clock
	maxSize int64
	buffer  int                // per-instance buffer: dicomio's window, and the ciphertext held before it is written
	slots   chan struct{}      // server-wide bound on concurrent ingests
	stored  func(study string) // told after an instance is committed (sharing re-issues granted studies' manifests)
	space   *space             // refuses an ingest when the disk is nearly full
}

func newIngester(s *store.Store, k *keyring, c clock.Clock, cfg ArchiveConfig) *ingester {
	return &ingester{store: s, keys: k, clock: c, maxSize: cfg.MaxInstanceSize, buffer: int(cfg.IngestBuffer),
		slots: make(chan struct{}, cfg.MaxConcurrentIngests)}
}

// Import ingests one instance held in memory (tests, small callers).
func (g *ingester) Import(ctx context.Context, data []byte) ImportResult {
	return g.Ingest(ctx, bytes.NewReader(data))
}

// Ingest validates, normalizes, encrypts and stores one DICOM instance
// read from r (a Part-10 file or a bare dataset). The result is reported
// only after the instance, its blocks and its index entries are committed
// (synced). It waits for one of the server's ingest slots first; a
// cancelled ctx gives up waiting.
func (g *ingester) Ingest(ctx context.Context, r io.Reader) ImportResult {
	return g.IngestAs(ctx, r, nil)
}

// identity is what a sender said an instance is (a C-STORE's Affected
// SOP Class and Instance UIDs; the study a STOW-RS request names). An
// empty field is not checked.
type identity struct{ SOPClass, SOPInstance, Study string }

// identityError is an instance whose data set is not what its sender said
// it is: refused before anything is written, so that it is never stored
// under the wrong identity.
type identityError struct{ msg string }

func (e *identityError) Error() string { return e.msg }

// IngestAs is Ingest for an instance announced as want (nil: no
// announcement): a data set whose SOP Class or SOP Instance UID differs
// is rejected with code identity-mismatch before anything is stored.
func (g *ingester) IngestAs(ctx context.Context, r io.Reader, want *identity) ImportResult {
	select {
	case g.slots <- struct{}{}:
		defer func() { <-g.slots }()
	case <-ctx.Done():
		return ImportResult{Outcome: OutcomeFailed, Code: "busy", Error: "import: no ingest slot free: " + ctx.Err().Error()}
	}
	if err := g.space.bulk(); err != nil {
		return failed(err)
	}
	lim := dicomio.DefaultLimits()
	lim.MaxSize = g.maxSize
	lim.MaxInflated = g.maxSize // a deflated dataset may not inflate beyond what the archive would take plain
	lim.Buffer = g.buffer
	sink := &ingestSink{g: g, want: want}
	inst, err := dicomio.ParseStream(r, sink, lim)
	if err == nil {
		err = inst.Storable()
	}
	if err != nil {
		sink.discard()
		if sink.failure != nil { // our side failed (disk, database), not the input
			return failed(sink.failure)
		}
		if ie := (*identityError)(nil); errors.As(err, &ie) {
			return ImportResult{Outcome: OutcomeRejected, Code: "identity-mismatch", Error: ie.msg}
		}
		return rejected(err)
	}
	if !sink.known {
		// Only a dataset out of tag order (index attributes after its bulk
		// data) gets here: dicomio accepts it, but it could not be streamed.
		return ImportResult{Outcome: OutcomeRejected, Code: "malformed", SOPInstanceUID: inst.SOPInstanceUID, Study: inst.StudyInstanceUID,
			Error: "the instance's elements are out of tag order (index attributes after its bulk data); it cannot be stored"}
	}
	res := ImportResult{
		SOPClassUID:    inst.SOPClassUID,
		SOPInstanceUID: inst.SOPInstanceUID,
		Study:          inst.StudyInstanceUID,
		Size:           sink.size,
		Digest:         hex.EncodeToString(inst.Digest[:]),
		Warnings:       inst.Warnings,
	}
	outcome, why, err := sink.commit(inst, res.Digest)
	res.Outcome = outcome
	var other *store.OtherSyntaxError
	switch {
	case err != nil:
		res.Error, res.Code = err.Error(), failed(err).Code
	case errors.As(why, &other):
		res.OtherSyntax = true
		res.Warnings = append(res.Warnings, why.Error())
	case why != nil:
		res.Error = why.Error()
	}
	if res.Outcome == OutcomeStored && g.stored != nil {
		g.stored(res.Study)
	}
	return res
}

// ingestSink receives the normalized instance from dicomio.ParseStream.
// Once the instance's identifying attributes are known (Attributes), it
// either encrypts what follows to the study's key and cuts it into
// blocks, or, for an instance whose SOP Instance UID is already held,
// only counts it (ParseStream computes the digest that decides between
// duplicate and conflict).
type ingestSink struct {
	g       *ingester
	want    *identity      // what the sender announced, checked before anything is written
	known   bool           // Attributes was called
	prev    *wire.Instance // held already under the SOP Instance UID
	enc     io.WriteCloser // age encryption to the study key, into cut
	cut     blockCutter
	size    int64 // normalized bytes
	failure error // a local failure (not the input's fault)
}

// Attributes implements dicomio.AttributeSink.
func (s *ingestSink) Attributes(inst *dicomio.Instance) error {
	s.known = true
	if err := inst.Storable(); err != nil {
		return err
	}
	if w := s.want; w != nil {
		// The messages name the attributes, never their values.
		switch {
		case w.SOPClass != "" && inst.SOPClassUID != w.SOPClass:
			return &identityError{"SOP Class UID (0008,0016) differs from Affected SOP Class UID"}
		case w.SOPInstance != "" && inst.SOPInstanceUID != w.SOPInstance:
			return &identityError{"SOP Instance UID (0008,0018) differs from Affected SOP Instance"}
		case w.Study != "" && inst.StudyInstanceUID != w.Study:
			return &identityError{"Study Instance UID (0020,000D) differs from the study the request names"}
		}
	}
	// Cheap idempotency check before the expensive encryption.
	if prev, ok, err := s.g.store.InstanceBySOP(inst.SOPInstanceUID); err != nil {
		return s.fail(err)
	} else if ok {
		s.prev = &prev
		return nil
	}
	sk, err := s.g.keys.Ensure(studyOf(inst), "", "", "")
	var other *otherOriginError
	if errors.As(err, &other) {
		return err // the input's problem here, not ours: a rejection
	}
	if err != nil {
		return s.fail(err)
	}
	s.cut = blockCutter{store: s.g.store, space: s.g.space, flushAt: max(s.g.buffer, BlockSize)}
	if s.enc, err = crypto.EncryptWriter(&s.cut, sk.Recipient()); err != nil {
		return s.fail(err)
	}
	return nil
}

func (s *ingestSink) fail(err error) error {
	if s.failure == nil {
		s.failure = err
	}
	return err
}

func (s *ingestSink) Write(p []byte) (int, error) {
	if !s.known {
		return 0, s.fail(errors.New("ingest: instance bytes before its attributes"))
	}
	s.size += int64(len(p))
	if s.prev != nil {
		return len(p), nil
	}
	if _, err := s.enc.Write(p); err != nil {
		return 0, s.fail(err)
	}
	if s.cut.err != nil {
		return 0, s.fail(s.cut.err)
	}
	return len(p), nil
}

// commit finishes the encryption and indexes the instance with its last
// blocks in one synced transaction.
func (s *ingestSink) commit(inst *dicomio.Instance, digest string) (outcome string, why, err error) {
	if s.prev != nil {
		o, why := store.SameOrConflict(*s.prev, inst.StudyInstanceUID, inst.TransferSyntaxUID, digest)
		return outcomeName(o), why, nil
	}
	if err := s.enc.Close(); err != nil {
		s.discard()
		return OutcomeFailed, nil, fmt.Errorf("encrypt instance: %w", err)
	}
	if err := s.cut.finish(); err != nil {
		s.discard()
		return OutcomeFailed, nil, err
	}
	rec := instanceOf(inst)
	rec.Size = s.size
	rec.Digest = digest
	rec.Blocks = s.cut.refs
	o, why, err := s.g.store.AddInstance(rec, s.cut.pending, s.g.clock.Now())
	if err != nil || o != store.Stored {
		s.discard() // nothing of a duplicate or conflict stays
	}
	if err != nil {
		return OutcomeFailed, nil, err
	}
	return outcomeName(o), why, nil
}

// discard removes the blocks written ahead of a commit that did not
// happen.
func (s *ingestSink) discard() {
	if len(s.cut.written) > 0 {
		s.g.store.DeleteBlocks(s.cut.written) // best effort: unindexed blocks are never served
		s.cut.written = nil
	}
}

// blockCutter cuts the ciphertext into blocks of BlockSize, addressed by
// their CIDs. Blocks wait in memory until flushAt bytes are pending, then
// are written (unindexed) so that an instance of any size costs a bounded
// amount of memory; the last ones are committed with the instance.
type blockCutter struct {
	store   *store.Store
	space   *space
	flushAt int
	cur     []byte
	pending []store.Block
	bytes   int
	refs    []wire.BlockRef
	written []cid.Cid
	free    [][]byte // buffers of written blocks, reused: Badger copies what it commits
	err     error
}

func (c *blockCutter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.err == nil {
		if c.cur == nil {
			if n := len(c.free); n > 0 {
				c.cur, c.free = c.free[n-1][:0], c.free[:n-1]
			} else {
				c.cur = make([]byte, 0, BlockSize)
			}
		}
		k := min(len(p), BlockSize-len(c.cur))
		c.cur = append(c.cur, p[:k]...)
		p = p[k:]
		if len(c.cur) == BlockSize {
			c.cutBlock()
		}
	}
	return n, c.err
}

func (c *blockCutter) cutBlock() {
	id, err := cidPrefix.Sum(c.cur)
	if err != nil {
		c.err = fmt.Errorf("hash block: %w", err)
		return
	}
	c.pending = append(c.pending, store.Block{CID: id, Data: c.cur})
	c.refs = append(c.refs, wire.BlockRef{CID: id.String(), Size: len(c.cur)})
	c.bytes += len(c.cur)
	c.cur = nil
	if c.bytes >= c.flushAt {
		if err := c.space.bulk(); err != nil {
			c.err = err
			return
		}
		if err := c.store.PutBlocks(c.pending); err != nil {
			c.err = fmt.Errorf("store blocks: %w", err)
			return
		}
		for _, b := range c.pending {
			c.written = append(c.written, b.CID)
			c.free = append(c.free, b.Data)
		}
		c.pending, c.bytes = c.pending[:0], 0
	}
}

// finish cuts the last, short block.
func (c *blockCutter) finish() error {
	if c.err == nil && len(c.cur) > 0 {
		c.cutBlock()
	}
	return c.err
}

// failed is the result of an ingest our side could not complete; a full
// disk says so in its code (HTTP 507).
func failed(err error) ImportResult {
	r := ImportResult{Outcome: OutcomeFailed, Error: err.Error()}
	if errors.As(err, new(*diskFullError)) {
		r.Code = string(api.CodeInsufficientStorage)
	}
	return r
}

func rejected(err error) ImportResult {
	r := ImportResult{Outcome: OutcomeRejected, Error: err.Error()}
	var oe *otherOriginError
	if errors.As(err, &oe) {
		r.Code, r.Error = "partner-copy", oe.Error()
		return r
	}
	var de *dicomio.Error
	if errors.As(err, &de) {
		r.Code = strings.ToLower(strings.ReplaceAll(de.Code.String(), " ", "-")) // "missing attribute" → "missing-attribute"
		switch de.Code {
		case dicomio.ErrCodeTooLarge:
			r.Code = "too-large"
		case dicomio.ErrCodeNotDICOM:
			r.Error = de.Msg // "not a DICOM file: …", without the parser's prefix
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
