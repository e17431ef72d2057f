package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/consent"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/internal/wire"
)

// Study is the index entry of a study held in this archive, imported here
// or fetched from a partner.
type Study struct {
	wire.Study
	Origin     peer.ID   `json:"origin,omitempty"` // empty: imported at this facility
	OriginName string    `json:"origin_name,omitempty"`
	Key        []byte    `json:"key"` // the study's key, age-encrypted to this node
	Instances  int       `json:"instances"`
	Expected   int       `json:"expected,omitempty"` // a fetched study: instances its manifest lists
	Bytes      int64     `json:"bytes"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	// Readers, on a partner's study fetched here, are the only users who
	// may read it: the users the grants it was fetched under named (by
	// name or ID). Empty: anyone whose role allows reading.
	Readers []string `json:"readers,omitempty"`
}

// Complete is false while a fetched study lacks instances its manifest lists.
func (r *Study) Complete() bool { return r.Expected == 0 || r.Instances >= r.Expected }

// Block is one ciphertext block and its content address.
type Block struct {
	CID  cid.Cid
	Data []byte
}

// Peer is a partner facility this node admits.
type Peer struct {
	ID        peer.ID   `json:"id"`
	Name      string    `json:"name"`
	Recipient string    `json:"recipient"` // age1pq… hybrid recipient manifests are encrypted to
	Addrs     []string  `json:"addrs"`
	Added     time.Time `json:"added"`
}

// Shared is what a grantee keeps of the latest manifest a partner sent it
// for a study, and of every grant the partner gave it for the study.
type Shared struct {
	Manifest wire.Manifest `json:"manifest"`
	Key      []byte        `json:"key,omitempty"` // the manifest's study key, age-encrypted to this node
	State    string        `json:"state"`         // wire.SharedAvailable or SharedRevoked (every grant revoked)
	Received time.Time     `json:"received"`
	// Grants are the grants the partner gave us for the study, as its
	// manifests carried them, with their revocations: access lasts while
	// any of them is live (a shorter second grant does not end a longer
	// first one). Records written before the field existed hold only
	// Manifest.Grant (see AllGrants).
	Grants []SharedGrant `json:"grants,omitempty"`
}

// SharedGrant is one grant a partner gave us for a study.
type SharedGrant struct {
	Grant   consent.SignedGrant `json:"grant"`
	Revoked bool                `json:"revoked,omitempty"`
}

// AllGrants returns the record's grants, also for a record written before
// Grants existed.
func (r *Shared) AllGrants() []SharedGrant {
	if len(r.Grants) == 0 && r.Manifest.Grant != nil {
		return []SharedGrant{{Grant: *r.Manifest.Grant, Revoked: r.State == api.SharedRevoked}}
	}
	return r.Grants
}

func blockKey(c cid.Cid) []byte                 { return append([]byte(pfxBlock), c.Bytes()...) }
func blockRefKey(c cid.Cid) []byte              { return append([]byte(pfxBlockRef), c.Bytes()...) }
func blockIdxKey(c cid.Cid) []byte              { return append([]byte(pfxBlockIdx), c.Bytes()...) }
func instKey(study, sop string) string          { return pfxInstance + study + "/" + sop }
func sharedKey(issuer peer.ID, s string) string { return pfxShared + issuer.String() + "/" + s }

// ---- blocks

// GetBlock returns a stored block; ErrNotFound when absent.
func (s *Store) GetBlock(_ context.Context, c cid.Cid) ([]byte, error) {
	return s.AppendBlocks(nil, []cid.Cid{c})
}

// AppendBlocks appends the blocks' bytes to dst in order, in one read
// transaction (an instance's ciphertext read for serving): from the blob
// log, or from Badger for blocks written before it.
func (s *Store) AppendBlocks(dst []byte, cids []cid.Cid) ([]byte, error) {
	err := s.db.View(func(txn *badger.Txn) error {
		for _, c := range cids {
			if s.blobs != nil {
				it, err := txn.Get(blockRefKey(c))
				if err == nil {
					var ref []extent
					if err := it.Value(func(v []byte) (err error) { ref, err = decodeRef(v); return err }); err != nil {
						return fmt.Errorf("block %s: %w", c, err)
					}
					if dst, err = s.blobs.read(ref, dst); err != nil {
						return fmt.Errorf("block %s: %w", c, err)
					}
					continue
				}
				if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
			}
			it, err := txn.Get(blockKey(c))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return fmt.Errorf("get block %s: %w", c, ErrNotFound)
			}
			if err != nil {
				return err
			}
			if err := it.Value(func(v []byte) error { dst = append(dst, v...); return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	return dst, err
}

// HasBlock reports whether the block is stored.
func (s *Store) HasBlock(c cid.Cid) (bool, error) {
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		for _, k := range [][]byte{blockRefKey(c), blockKey(c)} {
			_, err := txn.Get(k)
			if err == nil {
				found = true
				return nil
			}
			if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	return found, err
}

// BlockStudy returns the study an indexed block belongs to; ErrNotFound
// for a block that is absent or not yet indexed (a fetched block whose
// instance is not verified yet).
func (s *Store) BlockStudy(c cid.Cid) (string, error) {
	var study string
	var ok bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		study, ok, err = getString(txn, string(blockIdxKey(c)))
		return err
	})
	if err == nil && !ok {
		return "", ErrNotFound
	}
	return study, err
}

// Staged is a block written ahead of the commit that indexes it: in the
// blob log, not yet synced (the commit syncs it); in an in-memory
// archive, a copy of its bytes, written by the commit.
type Staged struct {
	CID  cid.Cid
	ext  []extent
	data []byte
}

// Stage writes whole blocks ahead of their commit (AddInstance,
// CommitFetched). Nothing refers to a staged block until its commit: one
// that never comes leaves bytes in the blob log that no reference
// reaches, which Discard frees. The caller may reuse the blocks' buffers.
func (s *Store) Stage(blocks []Block) ([]Staged, error) {
	out := make([]Staged, 0, len(blocks))
	for _, b := range blocks {
		w := s.BlockWriter()
		if err := w.Write(b.Data); err != nil {
			return nil, err
		}
		out = append(out, w.Cut(b.CID))
	}
	return out, nil
}

// BlockWriter stages blocks one at a time as their bytes come: each Write
// goes to the blob log at once, unsynced, so that no block is held in
// memory and an instance's commit has only to sync and index.
type BlockWriter struct {
	s    *Store
	ext  []extent
	data []byte // in memory
	n    int
}

// BlockWriter starts staging a block.
func (s *Store) BlockWriter() *BlockWriter { return &BlockWriter{s: s} }

// Write appends p to the block being staged (p may be reused after).
func (w *BlockWriter) Write(p []byte) error {
	s := w.s
	if w.n == 0 {
		if s.readOnly {
			return ErrReadOnly
		}
		if s.guard != nil {
			if err := s.guard(); err != nil {
				return err
			}
		}
	}
	if w.n += len(p); w.n > wire.BlockSize {
		return fmt.Errorf("stage block: more than %d bytes", wire.BlockSize)
	}
	if s.blobs == nil {
		w.data = append(w.data, p...)
		return nil
	}
	if len(p) == 0 {
		return nil
	}
	if len(w.ext) == maxExtents {
		return fmt.Errorf("stage block: written in more than %d pieces", maxExtents)
	}
	e, err := s.blobs.write(p)
	if err != nil {
		return err
	}
	w.ext = addExtent(w.ext, e)
	return nil
}

// Cut ends the block, whose CID the caller computed over what it wrote,
// and starts the next.
func (w *BlockWriter) Cut(c cid.Cid) Staged {
	if w.s.blobs != nil && len(w.ext) == 0 {
		w.ext = []extent{{}} // an empty block: no bytes anywhere
	}
	st := Staged{CID: c, ext: w.ext, data: w.data}
	w.ext, w.data, w.n = nil, nil, 0
	return st
}

// Discard frees the disk space of blocks staged for an instance that will
// not be committed (rejected, cut off mid-way, or found held already),
// and of the block w was writing (nil: none): their bytes in the blob log
// are punched out. Call it only when no commit referenced them: after
// a commit that failed in an unknown state, leave them. It returns the
// bytes freed.
func (s *Store) Discard(staged []Staged, w *BlockWriter) int64 {
	if s.blobs == nil {
		return 0
	}
	var ext []extent
	for _, b := range staged {
		ext = append(ext, b.ext...)
	}
	if w != nil {
		ext = append(ext, w.ext...)
		w.ext, w.n = nil, 0
	}
	return s.blobs.punch(ext)
}

// syncStaged makes staged blocks durable; it runs before a commit takes
// commitMu, so that the fsyncs of concurrent commits are shared.
func (s *Store) syncStaged(staged []Staged) error {
	if s.blobs == nil || len(staged) == 0 {
		return nil
	}
	var ext []extent
	for _, b := range staged {
		ext = append(ext, b.ext...)
	}
	return s.blobs.sync(ext)
}

// setStaged writes the staged blocks' places into txn (in memory, the
// blocks themselves).
func (s *Store) setStaged(txn *badger.Txn, staged []Staged) error {
	for _, b := range staged {
		var err error
		if s.blobs == nil {
			err = txn.Set(blockKey(b.CID), b.data)
		} else {
			err = txn.Set(blockRefKey(b.CID), encodeRef(b.ext))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- studies

// Study reads a study record.
func (s *Store) Study(uid string) (Study, bool, error) { return view[Study](s, pfxStudy+uid) }

// Studies lists every study record, in UID order. The listing is kept
// until a commit may have changed a study record; callers get their own
// slice (the records' own slices are shared: do not modify them).
func (s *Store) Studies() ([]Study, error) {
	gen := s.studyGen.Load()
	s.studiesMu.Lock()
	if s.studiesRead && s.studiesGen == gen {
		out := slices.Clone(s.studies)
		s.studiesMu.Unlock()
		return out, nil
	}
	s.studiesMu.Unlock()
	out, err := list[Study](s, pfxStudy)
	if err != nil {
		return out, err
	}
	s.studiesMu.Lock()
	s.studies, s.studiesGen, s.studiesRead = out, gen, true
	s.studiesMu.Unlock()
	return slices.Clone(out), nil
}

// EnsureStudy stores rec unless a record for its UID exists, and returns
// the record that is stored (rec, or the one found) and whether it was
// found.
func (s *Store) EnsureStudy(rec Study) (Study, bool, error) {
	var found bool
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	defer s.studyGen.Add(1) // after the commit, before the lock is released
	err := s.update(func(txn *badger.Txn) error {
		var prev Study
		ok, err := getJSON(txn, pfxStudy+rec.UID, &prev)
		if err != nil || ok {
			found, rec = ok, prev
			return err
		}
		found = false
		return setJSON(txn, pfxStudy+rec.UID, rec)
	})
	return rec, found, err
}

// SetReaders replaces a study's Readers with what fn returns for the
// stored record.
func (s *Store) SetReaders(uid string, fn func(sr Study) []string) error {
	return s.updateStudy(uid, func(sr *Study) bool {
		next := fn(*sr)
		if slices.Equal(next, sr.Readers) {
			return false
		}
		sr.Readers = next
		return true
	})
}

// SetExpected records how many instances a fetched study's manifest lists.
func (s *Store) SetExpected(uid string, n int) error {
	return s.updateStudy(uid, func(sr *Study) bool {
		if sr.Expected == n {
			return false
		}
		sr.Expected = n
		return true
	})
}

// updateStudy changes a study record in one transaction: fn edits it and
// says whether to write it.
func (s *Store) updateStudy(uid string, fn func(sr *Study) bool) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	defer s.studyGen.Add(1) // after the commit, before the lock is released
	return s.update(func(txn *badger.Txn) error {
		var sr Study
		if ok, err := getJSON(txn, pfxStudy+uid, &sr); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("study record: %w", ErrNotFound)
		}
		if !fn(&sr) {
			return nil
		}
		return setJSON(txn, pfxStudy+uid, sr)
	})
}

// ---- instances

// Outcome says what the index did with an instance.
type Outcome int

const (
	Stored    Outcome = iota + 1 // new: indexed
	Duplicate                    // the same instance is already held: nothing written
	Conflict                     // another instance holds the SOP Instance UID: nothing written
)

// OtherSyntaxError reports a duplicate received in another transfer
// syntax: the copy stored first is kept.
type OtherSyntaxError struct{ TransferSyntaxUID string }

func (e *OtherSyntaxError) Error() string {
	return "the same instance is already stored in transfer syntax " + e.TransferSyntaxUID + "; the stored copy is kept"
}

// Why a second instance with a stored SOP Instance UID is a conflict.
var (
	ErrConflictOtherStudy = errors.New("conflict: this SOP Instance UID is already stored in another study")
	ErrConflictDifferent  = errors.New("conflict: a different instance with this SOP Instance UID is already stored")
)

// SameOrConflict decides what a second instance with a stored SOP
// Instance UID is. The same bytes are a duplicate. The same UID in the
// same study in another transfer syntax is the same instance re-encoded
// (PS3.5 §10): also a duplicate (with an *OtherSyntaxError), and the copy
// stored first is kept. Anything else would overwrite a different object
// and is refused as a conflict.
func SameOrConflict(prev wire.Instance, study, ts, digest string) (Outcome, error) {
	switch {
	case prev.Study != study:
		return Conflict, ErrConflictOtherStudy
	case prev.Digest == digest:
		return Duplicate, nil
	case prev.TransferSyntaxUID != ts:
		return Duplicate, &OtherSyntaxError{prev.TransferSyntaxUID}
	}
	return Conflict, ErrConflictDifferent
}

// InstanceBySOP finds an instance by its SOP Instance UID in any study.
func (s *Store) InstanceBySOP(sop string) (wire.Instance, bool, error) {
	var rec wire.Instance
	var found bool
	err := s.db.View(func(txn *badger.Txn) error {
		study, ok, err := getString(txn, pfxSOP+sop)
		if err != nil || !ok {
			return err
		}
		found, err = getJSON(txn, instKey(study, sop), &rec)
		return err
	})
	return rec, found, err
}

// Instance reads one instance record.
func (s *Store) Instance(study, sop string) (wire.Instance, bool, error) {
	return view[wire.Instance](s, instKey(study, sop))
}

// Instances lists a study's instances in series and instance order.
func (s *Store) Instances(study string) ([]wire.Instance, error) {
	out, err := list[wire.Instance](s, pfxInstance+study+"/")
	slices.SortStableFunc(out, func(a, b wire.Instance) int {
		if a.SeriesNumber != b.SeriesNumber {
			return a.SeriesNumber - b.SeriesNumber
		}
		if a.Series != b.Series {
			return strings.Compare(a.Series, b.Series)
		}
		return a.InstanceNumber - b.InstanceNumber
	})
	return out, err
}

// AddInstance indexes one imported instance: it syncs its staged blocks,
// then writes their places, the block index, the SOP index and the
// updated study record in one synced transaction. Of a duplicate or conflict nothing is written; the error
// beside such an outcome says why (nil, *OtherSyntaxError or a conflict
// error); err is a database failure. The study record must exist.
func (s *Store) AddInstance(rec wire.Instance, staged []Staged, now time.Time) (outcome Outcome, why error, err error) {
	if err := s.syncStaged(staged); err != nil {
		return 0, nil, fmt.Errorf("commit instance: %w", err)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	defer s.studyGen.Add(1) // after the commit, before the lock is released
	err = s.update(func(txn *badger.Txn) error {
		var err error
		outcome, why, err = addInstance(txn, rec, now)
		if err != nil || outcome != Stored {
			return err
		}
		return s.setStaged(txn, staged)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("commit instance: %w", err)
	}
	return outcome, why, nil
}

// ErrIntegrity is returned by CommitFetched when a verified instance from a
// partner collides with a different one held here.
var ErrIntegrity = errors.New("integrity")

// CommitFetched syncs staged fetched blocks, then writes their places and
// indexes the fetched instances that are verified, in one synced
// transaction. An instance that is not
// new or an exact duplicate fails the whole commit with ErrIntegrity.
func (s *Store) CommitFetched(staged []Staged, insts []wire.Instance, now time.Time) error {
	if err := s.syncStaged(staged); err != nil {
		return fmt.Errorf("commit fetched blocks: %w", err)
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	defer s.studyGen.Add(1) // after the commit, before the lock is released
	err := s.update(func(txn *badger.Txn) error {
		if err := s.setStaged(txn, staged); err != nil {
			return err
		}
		for _, in := range insts {
			outcome, why, err := addInstance(txn, in, now)
			if err != nil {
				return err
			}
			if outcome != Stored && (outcome != Duplicate || why != nil) {
				return fmt.Errorf("%w: %v", ErrIntegrity, why)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrIntegrity) {
		return fmt.Errorf("commit fetched blocks: %w", err)
	}
	return err
}

func addInstance(txn *badger.Txn, rec wire.Instance, now time.Time) (Outcome, error, error) {
	if study, ok, err := getString(txn, pfxSOP+rec.SOPInstanceUID); err != nil {
		return 0, nil, err
	} else if ok {
		var prev wire.Instance
		if _, err := getJSON(txn, instKey(study, rec.SOPInstanceUID), &prev); err != nil {
			return 0, nil, err
		}
		outcome, why := SameOrConflict(prev, rec.Study, rec.TransferSyntaxUID, rec.Digest)
		return outcome, why, nil
	}
	var sr Study
	if ok, err := getJSON(txn, pfxStudy+rec.Study, &sr); err != nil {
		return 0, nil, err
	} else if !ok {
		return 0, nil, errors.New("study record missing")
	}
	for _, br := range rec.Blocks {
		c, err := cid.Decode(br.CID)
		if err != nil {
			return 0, nil, err
		}
		if err := txn.Set(blockIdxKey(c), []byte(rec.Study)); err != nil {
			return 0, nil, err
		}
	}
	if err := setJSON(txn, instKey(rec.Study, rec.SOPInstanceUID), rec); err != nil {
		return 0, nil, err
	}
	if err := txn.Set([]byte(pfxSOP+rec.SOPInstanceUID), []byte(rec.Study)); err != nil {
		return 0, nil, err
	}
	sr.Instances++
	sr.Bytes += rec.Size
	if rec.Modality != "" && !slices.Contains(sr.Modalities, rec.Modality) {
		sr.Modalities = append(sr.Modalities, rec.Modality)
		slices.Sort(sr.Modalities)
	}
	sr.Updated = now.UTC()
	return Stored, nil, setJSON(txn, pfxStudy+rec.Study, sr)
}

// ---- partners

// Peers lists the stored partners.
func (s *Store) Peers() ([]Peer, error) { return list[Peer](s, pfxPeer) }

// PutPeer stores (or updates) a partner.
func (s *Store) PutPeer(p Peer) error {
	return s.update(func(txn *badger.Txn) error { return setJSON(txn, pfxPeer+p.ID.String(), p) })
}

// RemovePeer deletes a partner, the manifests still queued for it and
// those it shared with us, in one transaction.
func (s *Store) RemovePeer(id peer.ID) error {
	items, err := s.Outbox()
	if err != nil {
		return err
	}
	var shared [][]byte
	prefix := []byte(pfxShared + id.String() + "/")
	if err := s.Scan(prefix, func(k, _ []byte) error {
		shared = append(shared, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return err
	}
	err = s.update(func(txn *badger.Txn) error {
		for _, it := range items {
			if it.Peer == id {
				if err := txn.Delete([]byte(outboxKey(it.Seq))); err != nil {
					return err
				}
			}
		}
		for _, k := range shared {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return txn.Delete([]byte(pfxPeer + id.String()))
	})
	if err == nil {
		for _, it := range items {
			if it.Peer == id && it.File != "" {
				s.sealed.remove(it.File)
			}
		}
	}
	return err
}

// ---- manifests partners sent us

// SharedFor reads what issuer shared with us of study.
func (s *Store) SharedFor(issuer peer.ID, study string) (Shared, bool, error) {
	return view[Shared](s, sharedKey(issuer, study))
}

// SharedAll lists every study partners shared with us.
func (s *Store) SharedAll() ([]Shared, error) { return list[Shared](s, pfxShared) }

// UpdateShared replaces issuer's record for study with what fn returns,
// in one transaction; fn sees the current record (found false when there
// is none) and returns write false to leave it.
func (s *Store) UpdateShared(issuer peer.ID, study string, fn func(prev Shared, found bool) (next Shared, write bool, err error)) (bool, error) {
	var wrote bool
	err := s.update(func(txn *badger.Txn) error {
		key := sharedKey(issuer, study)
		var prev Shared
		ok, err := getJSON(txn, key, &prev)
		if err != nil {
			return err
		}
		next, write, err := fn(prev, ok)
		if err != nil || !write {
			wrote = false
			return err
		}
		wrote = true
		return setJSON(txn, key, next)
	})
	return wrote, err
}

// ---- raw access, for tests and diagnostics

// Keys of records, for tests that corrupt or remove them on purpose.
func BlockKey(c cid.Cid) []byte                     { return blockKey(c) }
func BlockRefKey(c cid.Cid) []byte                  { return blockRefKey(c) }
func InstanceKey(study, sop string) []byte          { return []byte(instKey(study, sop)) }
func SharedKey(issuer peer.ID, study string) []byte { return []byte(sharedKey(issuer, study)) }

// SetRaw writes a raw value (tests: corrupt a record).
func (s *Store) SetRaw(key, value []byte) error {
	return s.update(func(txn *badger.Txn) error { return txn.Set(key, value) })
}

// DeleteRaw deletes a key (tests).
func (s *Store) DeleteRaw(key []byte) error {
	return s.update(func(txn *badger.Txn) error { return txn.Delete(key) })
}

// ScanRaw calls fn for every live key and value version in the archive
// (tests: no plaintext anywhere). A block in the blob log is shown as a
// blk/ key with the block's bytes, as if Badger held it.
func (s *Store) ScanRaw(fn func(key, value []byte)) error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, PrefetchValues: false})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.IsDeletedOrExpired() {
				continue
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			k := item.KeyCopy(nil)
			if rest, ok := bytes.CutPrefix(k, []byte(pfxBlockRef)); ok && s.blobs != nil {
				ref, err := decodeRef(v)
				if err != nil {
					return err
				}
				if v, err = s.blobs.read(ref, nil); err != nil {
					return err
				}
				k = append([]byte(pfxBlock), rest...)
			}
			fn(k, v)
		}
		return nil
	})
}

// PrintableKey shows a key's prefix readably (CID bytes are binary).
func PrintableKey(k []byte) string {
	for _, p := range []string{pfxBlock, pfxBlockIdx} {
		if bytes.HasPrefix(k, []byte(p)) {
			if c, err := cid.Cast(k[len(p):]); err == nil {
				return p + c.String()
			}
		}
	}
	return string(k)
}
