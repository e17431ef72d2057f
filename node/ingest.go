package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"

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
	buffer  int                // per-instance buffer: dicomio's window; also how much ciphertext is staged between free-space checks
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
	seal    *sealer        // age encryption to the study key, cut into blocks and staged, on a goroutine of its own
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
	s.cut = blockCutter{store: s.g.store, space: s.g.space, checkAt: max(s.g.buffer, BlockSize), h: sha256.New()}
	enc, err := crypto.EncryptWriter(&s.cut, sk.Recipient())
	if err != nil {
		return s.fail(err)
	}
	s.seal = newSealer(enc, &s.cut)
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
	if err := s.seal.write(p); err != nil {
		return 0, s.fail(err)
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
	if err := s.seal.close(); err != nil {
		s.free()
		return OutcomeFailed, nil, err
	}
	rec := instanceOf(inst)
	rec.Size = s.size
	rec.Digest = digest
	rec.Blocks = s.cut.refs
	o, why, err := s.g.store.AddInstance(rec, s.cut.staged, s.g.clock.Now())
	if err != nil {
		// The commit may or may not have reached the disk: its blocks
		// stay where they are.
		return OutcomeFailed, nil, err
	}
	if o != store.Stored {
		// Held already (another sender was quicker): nothing references
		// what this one staged.
		s.free()
	}
	return outcomeName(o), why, nil
}

// discard stops the encryption of an instance that will not be committed
// and frees the space its staged blocks took.
func (s *ingestSink) discard() {
	if s.seal != nil {
		s.seal.abort()
		s.free()
	}
}

// free punches the blocks staged for this instance out of the blob log
// (store.Discard): an instance rejected at its last byte, or an
// association cut off mid-way, leaves no ciphertext behind. Only after
// the sealing side has ended, and only for blocks no commit references.
func (s *ingestSink) free() {
	s.g.store.Discard(s.cut.staged, s.cut.w)
	s.cut.staged = nil
}

// sealChunk is the size of the pieces the reading side hands the sealer;
// sealDepth how many may wait: a few hundred KiB an ingest at most.
const (
	sealChunk = 64 << 10
	sealDepth = 4
)

var sealChunks = sync.Pool{New: func() any { b := make([]byte, 0, sealChunk); return &b }}

// sealer encrypts an instance, cuts it into blocks and stages them on a
// goroutine of its own, so that this work overlaps with reading the next
// bytes off the network, parsing them and hashing the plaintext (the two
// halves cost about the same: ChaCha20-Poly1305, the ciphertext's
// SHA-256 and the blob-log write on this side). On one association this
// takes a third off each C-STORE on 2 cores (docs/performance.md).
type sealer struct {
	in     chan *[]byte
	done   chan struct{}
	cur    *[]byte     // filling, on the caller's side
	closed bool        // in is closed (the caller's side)
	failed atomic.Bool // err is set
	err    error       // the sealing side's; read after failed or done
}

func newSealer(enc io.WriteCloser, cut *blockCutter) *sealer {
	s := &sealer{in: make(chan *[]byte, sealDepth), done: make(chan struct{})}
	go s.run(enc, cut)
	return s
}

func (s *sealer) run(enc io.WriteCloser, cut *blockCutter) {
	defer close(s.done)
	fail := func(err error) {
		if s.err == nil {
			s.err = err
			s.failed.Store(true)
		}
	}
	for b := range s.in {
		if s.err == nil {
			if _, err := enc.Write(*b); err != nil {
				fail(fmt.Errorf("encrypt instance: %w", err))
			}
		}
		*b = (*b)[:0]
		sealChunks.Put(b)
	}
	if s.err != nil {
		return
	}
	if err := enc.Close(); err != nil {
		fail(fmt.Errorf("encrypt instance: %w", err))
	} else if err := cut.finish(); err != nil {
		fail(err)
	}
}

// write hands p over (copied); it fails once the sealing side has.
func (s *sealer) write(p []byte) error {
	for len(p) > 0 {
		if s.failed.Load() {
			return s.err
		}
		if s.cur == nil {
			s.cur = sealChunks.Get().(*[]byte)
		}
		k := min(len(p), sealChunk-len(*s.cur))
		*s.cur = append(*s.cur, p[:k]...)
		p = p[k:]
		if len(*s.cur) == sealChunk {
			s.in <- s.cur
			s.cur = nil
		}
	}
	return nil
}

// close hands over the rest and waits for the last block to be staged.
func (s *sealer) close() error {
	if s.cur != nil {
		s.in <- s.cur
		s.cur = nil
	}
	s.abort()
	return s.err
}

// abort ends the sealing side (what waits is dropped once it failed) and
// waits for it.
func (s *sealer) abort() {
	if !s.closed {
		s.closed = true
		close(s.in)
	}
	<-s.done
}

// blockCutter cuts the ciphertext into blocks of BlockSize, addressed by
// their CIDs. It holds no block in memory: each piece goes to the blob
// log as it comes (store.BlockWriter), the block's SHA-256 is computed
// over the same pieces, and the block is cut when it is full or the
// ciphertext ends. The instance's commit then only syncs and indexes.
type blockCutter struct {
	store   *store.Store
	space   *space
	checkAt int // bytes staged between free-space checks
	w       *store.BlockWriter
	n       int       // bytes in the block being written
	h       hash.Hash // of the block being written
	staged  []store.Staged
	refs    []wire.BlockRef
	bytes   int // staged since the last free-space check
	err     error
}

func (c *blockCutter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.err == nil {
		if c.n == 0 {
			if c.bytes >= c.checkAt {
				c.bytes = 0
				if err := c.space.bulk(); err != nil {
					c.err = err
					break
				}
			}
			if c.w == nil {
				c.w = c.store.BlockWriter()
			}
		}
		k := min(len(p), BlockSize-c.n)
		c.h.Write(p[:k])
		if err := c.w.Write(p[:k]); err != nil {
			c.err = fmt.Errorf("store blocks: %w", err)
			break
		}
		c.n += k
		c.bytes += k
		p = p[k:]
		if c.n == BlockSize {
			c.cutBlock()
		}
	}
	return n, c.err
}

func (c *blockCutter) cutBlock() {
	mh, err := multihash.Encode(c.h.Sum(nil), multihash.SHA2_256)
	if err != nil {
		c.err = fmt.Errorf("hash block: %w", err)
		return
	}
	id := cid.NewCidV1(cid.Raw, mh)
	c.staged = append(c.staged, c.w.Cut(id))
	c.refs = append(c.refs, wire.BlockRef{CID: id.String(), Size: c.n})
	c.h.Reset()
	c.n = 0
}

// finish cuts the last, short block.
func (c *blockCutter) finish() error {
	if c.err == nil && c.n > 0 {
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
