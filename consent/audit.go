package consent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Audit actions. Record accepts any short [a-z0-9._-] code, so the node
// can add its own; these are the ones the project shares.
const (
	ActGrant            = "grant"
	ActRevoke           = "revoke"
	ActManifestSent     = "manifest-sent"
	ActManifestReceived = "manifest-received"
	ActManifestRejected = "manifest-rejected"
	ActFetchAllowed     = "fetch-allowed"
	ActFetchDenied      = "fetch-denied"
	ActFetchCompleted   = "fetch-completed"
	ActFetchFailed      = "fetch-failed"
	ActImport           = "import"
	ActExport           = "export"
	ActPeerAdded        = "peer-added"
	ActPeerRemoved      = "peer-removed"
	ActAccessRequested  = "access-requested"
	ActQuery            = "query"
	ActInstanceRead     = "instance-read"

	// A secondary holder (a facility that fetched a study from its
	// original holder) served blocks of it to a requester presenting the
	// original holder's signed grant, or refused to. Peer is the
	// requester, GrantID the presented grant, Reason "for=" and the
	// original holder's peer ID (and the deny reason when refused).
	ActFetchServedSecondary = "fetch-served-secondary"
	ActFetchDeniedSecondary = "fetch-denied-secondary"
)

// Decisions, and the actor recorded when no local user is involved.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	ActorSystem   = "system"
)

// Field limits. Record cuts longer values (at a rune boundary) rather than
// refuse them: losing an audit entry is worse than truncating a field.
const (
	maxActorLen      = 256
	maxStudyFieldLen = 128
	maxGrantFieldLen = 64
	maxEntryAction   = 64
	maxPeerNameLen   = 128
)

// zeroHash is the Prev of entry 1.
var zeroHash = strings.Repeat("0", 64)

// hashPrefix domain-separates audit hashes from any other SHA-256 use.
const hashPrefix = "pacsnet-audit-v1\x00"

// Entry is one audit record.
type Entry struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`          // local user, or "system"
	Peer     peer.ID   `json:"peer,omitempty"` // the remote facility concerned
	Action   string    `json:"action"`         // Act* constants
	Study    string    `json:"study,omitempty"`
	GrantID  string    `json:"grant,omitempty"`
	Decision string    `json:"decision,omitempty"` // "allow", "deny" or empty
	Reason   string    `json:"reason,omitempty"`   // a code; never patient data
	// PeerName is the partner's name when the entry was written, so that
	// the log still names a facility after it stopped being a partner.
	PeerName string `json:"peer_name,omitempty"`
	// Count, when above 1, says the entry stands for that many events of
	// the same kind (repeated denials aggregated; see the node's auditor).
	Count uint64 `json:"count,omitempty"`
	// Expires is a grant entry's expiry.
	Expires time.Time `json:"expires,omitzero"`
	// Facility is the name of the facility whose node wrote the entry
	// (see Ledger.SetFacility); absent in entries written before it.
	Facility string `json:"facility,omitempty"`
	Prev     string `json:"prev"` // Hash of entry Seq-1; 64 zeros for entry 1
	Hash     string `json:"hash"` // see the package documentation
}

// entryBody is Entry without Hash: the canonical encoding that is hashed.
// Its fields and tags must match Entry's, in the same order. Peer is the
// peer ID's string form, which is exactly what peer.ID's MarshalJSON
// writes; holding it as a string lets the ledger encode it once per entry
// (base58 is the most expensive step of an append) and lets Verify skip
// decoding it.
type entryBody struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`
	Peer     string    `json:"peer,omitempty"`
	Action   string    `json:"action"`
	Study    string    `json:"study,omitempty"`
	GrantID  string    `json:"grant,omitempty"`
	Decision string    `json:"decision,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	PeerName string    `json:"peer_name,omitempty"`
	Count    uint64    `json:"count,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	Facility string    `json:"facility,omitempty"`
	Prev     string    `json:"prev"`
}

// entryStored is the stored form: the same bytes json.Marshal(Entry)
// produces (embedded fields come first, then Hash).
type entryStored struct {
	entryBody
	Hash string `json:"hash"`
}

func (e *Entry) body(peerStr string) entryBody {
	return entryBody{e.Seq, e.Time, e.Actor, peerStr, e.Action, e.Study, e.GrantID, e.Decision, e.Reason,
		e.PeerName, e.Count, e.Expires, e.Facility, e.Prev}
}

// ComputeHash returns the hash e should carry, computed from every field
// but Hash. Exported so auditors and exports can check entries one by one.
func (e *Entry) ComputeHash() (string, error) {
	b := e.body(peerString(e.Peer))
	return b.hash()
}

func peerString(p peer.ID) string {
	if p == "" {
		return ""
	}
	return p.String()
}

func (b *entryBody) hash() (string, error) {
	js, err := json.Marshal(b)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(hashPrefix))
	h.Write(js)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func validHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Record appends an audit entry. It fills Seq, Time (now(), UTC), Prev and
// Hash, ignoring whatever the caller put there, commits the entry and the
// new head in one Commit, and returns the stored entry.
//
// Action must be a short [a-z0-9._-] code and Decision "", "allow" or
// "deny" ([ErrInvalidRequest] otherwise); Peer must be empty or a valid
// libp2p peer ID of any key type. Free-text fields are made valid UTF-8
// without control characters and cut to their limits (Actor 256 bytes,
// Study 128, GrantID 64, Reason 1 KiB) instead of failing, since the node
// calls Record from network handlers with values a peer chose. An empty
// Actor becomes "system".
//
// Concurrent calls are serialised and each costs one synced Commit, so
// record per fetch or per request, not per block.
func (l *Ledger) Record(e Entry) (Entry, error) {
	if !validCode(e.Action, maxEntryAction) {
		return Entry{}, fmt.Errorf("record audit entry: malformed action: %w", ErrInvalidRequest)
	}
	if e.Decision != "" && e.Decision != DecisionAllow && e.Decision != DecisionDeny {
		return Entry{}, fmt.Errorf("record audit entry: unknown decision: %w", ErrInvalidRequest)
	}
	e.Actor = sanitize(actorOr(e.Actor), maxActorLen)
	e.Study = sanitize(e.Study, maxStudyFieldLen)
	e.GrantID = sanitize(e.GrantID, maxGrantFieldLen)
	e.Reason = sanitize(e.Reason, maxReasonLen)
	e.PeerName = sanitize(e.PeerName, maxPeerNameLen)
	e.Facility = sanitize(e.Facility, maxPeerNameLen)

	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.resyncLocked(); err != nil {
		return Entry{}, fmt.Errorf("record audit entry: %w", err)
	}
	if _, err := l.peerStringLocked(e.Peer); err != nil {
		return Entry{}, fmt.Errorf("record audit entry: peer: %w: %w", err, ErrInvalidRequest)
	}
	e, kvs, err := l.chainLocked(e, l.now().UTC())
	if err != nil {
		return Entry{}, fmt.Errorf("record audit entry: %w", err)
	}
	if err := l.store.Commit(kvs); err != nil {
		l.dirty = true
		return Entry{}, fmt.Errorf("record audit entry: commit: %w", err)
	}
	l.mu.Lock()
	l.st.head = headRecord{Seq: e.Seq, Hash: e.Hash}
	l.mu.Unlock()
	return e, nil
}

// chainLocked links e after the current head and returns it with the KVs
// that append it (the entry and the new head record). Called with wmu
// held; the caller commits and then advances l.st.head.
func (l *Ledger) chainLocked(e Entry, now time.Time) (Entry, []KV, error) {
	return l.chainAfterLocked(e, now, l.st.head)
}

// chainManyLocked links entries one after the other after the current
// head and returns them with the KVs that append them all (one head
// record). Called with wmu held; the caller commits and then advances
// l.st.head to the last.
func (l *Ledger) chainManyLocked(now time.Time, es ...Entry) ([]Entry, []KV, error) {
	head := l.st.head
	out := make([]Entry, 0, len(es))
	var kvs []KV
	for _, e := range es {
		e, ekvs, err := l.chainAfterLocked(e, now, head)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, e)
		kvs = append(kvs, ekvs[0]) // the entry; the head record once, below
		head = headRecord{Seq: e.Seq, Hash: e.Hash}
	}
	hv, err := json.Marshal(head)
	if err != nil {
		return nil, nil, err
	}
	return out, append(kvs, KV{Key: []byte(headKey), Value: hv}), nil
}

func (l *Ledger) chainAfterLocked(e Entry, now time.Time, head headRecord) (Entry, []KV, error) {
	ps, err := l.peerStringLocked(e.Peer)
	if err != nil {
		return Entry{}, nil, err
	}
	if e.Peer != "" && e.PeerName == "" && l.namer != nil {
		e.PeerName = sanitize(l.namer(e.Peer), maxPeerNameLen)
	}
	if e.Facility == "" {
		e.Facility = l.facility
	}
	e.Seq = head.Seq + 1
	e.Time = now
	e.Prev = head.Hash
	st := entryStored{entryBody: e.body(ps)}
	if st.Hash, err = st.entryBody.hash(); err != nil {
		return Entry{}, nil, err
	}
	e.Hash = st.Hash
	val, err := json.Marshal(&st)
	if err != nil {
		return Entry{}, nil, err
	}
	hv, err := json.Marshal(headRecord{Seq: e.Seq, Hash: e.Hash})
	if err != nil {
		return Entry{}, nil, err
	}
	return e, []KV{{Key: auditKey(e.Seq), Value: val}, {Key: []byte(headKey), Value: hv}}, nil
}

// maxPeerCache bounds the validated-peer cache; a node has far fewer
// partners, so the cache only resets if something feeds it junk.
const maxPeerCache = 4096

// peerStringLocked validates p (empty is fine) and returns its string
// form, caching both: Record runs on every fetch and base58 is costly.
// Called with wmu held.
func (l *Ledger) peerStringLocked(p peer.ID) (string, error) {
	if p == "" {
		return "", nil
	}
	if s, ok := l.peerStr[p]; ok {
		return s, nil
	}
	if err := roundTrips(p); err != nil {
		return "", err
	}
	if l.peerStr == nil || len(l.peerStr) >= maxPeerCache {
		l.peerStr = make(map[peer.ID]string)
	}
	s := p.String()
	l.peerStr[p] = s
	return s, nil
}

// readEntry reads one entry by sequence number.
func (l *Ledger) readEntry(seq uint64) (e Entry, found bool, err error) {
	key := auditKey(seq)
	err = l.store.Scan(key, func(k, v []byte) error {
		if !bytes.Equal(k, key) {
			return nil
		}
		found = true
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("entry %d: undecodable: %w", seq, ErrAuditCorrupt)
		}
		return nil
	})
	return e, found, err
}

// Entry paging limits.
const (
	DefaultEntriesLimit = 100
	MaxEntriesLimit     = 1000
)

// Entries returns up to limit entries with Seq > after, in order. limit
// <= 0 means [DefaultEntriesLimit]; it is capped at [MaxEntriesLimit]. It
// reads entries one by one by key, so paging deep into a long log costs
// only the page.
func (l *Ledger) Entries(after uint64, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = DefaultEntriesLimit
	}
	limit = min(limit, MaxEntriesLimit)
	l.mu.RLock()
	head := l.st.head.Seq
	l.mu.RUnlock()
	var out []Entry
	for seq := after + 1; seq <= head && seq > after && len(out) < limit; seq++ {
		e, ok, err := l.readEntry(seq)
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("read audit log: entry %d missing: %w", seq, ErrAuditCorrupt)
		}
		if e.Seq != seq {
			return nil, fmt.Errorf("read audit log: entry %d stored under %d: %w", e.Seq, seq, ErrAuditCorrupt)
		}
		out = append(out, e)
	}
	return out, nil
}

// FirstAt returns the Seq of the first entry written at or after t, or
// Head+1 if there is none. Entries are written in time order on one
// clock, so it binary-searches (O(log n) reads); should the clock have
// stepped back, an entry near t may be missed, so callers that need
// exactness also compare each entry's Time.
func (l *Ledger) FirstAt(t time.Time) (uint64, error) {
	l.mu.RLock()
	head := l.st.head.Seq
	l.mu.RUnlock()
	lo, hi := uint64(1), head+1 // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, ok, err := l.readEntry(mid)
		if err != nil {
			return 0, fmt.Errorf("search audit log: %w", err)
		}
		if !ok {
			return 0, fmt.Errorf("search audit log: entry %d missing: %w", mid, ErrAuditCorrupt)
		}
		if e.Time.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// Head returns the Seq of the last entry (0 for an empty log).
func (l *Ledger) Head() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.st.head.Seq
}

// VerifyResult summarises a verified audit log.
type VerifyResult struct {
	Entries     uint64      // number of entries (= the last Seq)
	Head        string      // Hash of the last entry; 64 zeros for an empty log
	Checkpoints uint64      // signed checkpoints stored (each verified)
	Checkpoint  *Checkpoint // the stored or given checkpoint with the highest Seq, if any
}

// Verify re-reads the whole audit log from the store and checks that
// sequence numbers run from 1 without gaps and match their keys, that
// every entry's Hash is right and its Prev is the previous Hash, and that
// the head record and this process's own view of the head both point at
// an entry that is present and matches. The error names the first bad
// entry and what is wrong, and wraps [ErrAuditCorrupt].
//
// Every stored signed checkpoint must verify, their indexes must run 1, 2,
// … without gaps, and the log must hold each one's entry with the hash it
// signed: an edited, reordered or deleted entry, and a log truncated
// behind a rewritten head record, fail. Checkpoints kept elsewhere can be
// given too (see [Ledger.Checkpoint]); they are checked the same way, which
// also catches a truncation whose stored checkpoints were deleted with it.
//
// Verify streams the log and does not block writers: entries appended
// while it runs are verified too if the scan sees them.
func (l *Ledger) Verify(given ...*SignedCheckpoint) (VerifyResult, error) {
	cc, err := l.checkpointCheck(given)
	if err != nil {
		return VerifyResult{}, err
	}
	// Everything up to the in-memory head, and then up to the stored head,
	// was committed before we start scanning, so the scan must see it.
	l.mu.RLock()
	mem := l.st.head
	l.mu.RUnlock()
	stored, haveHead, err := l.readHead()
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify audit log: %w", err)
	}

	var (
		prevSeq  uint64
		prevHash = zeroHash
		fail     = func(seq uint64, format string, a ...any) error {
			return fmt.Errorf("verify audit log: entry %d: %s: %w", seq, fmt.Sprintf(format, a...), ErrAuditCorrupt)
		}
		matched = func(want headRecord, e *entryStored) bool { return e.Seq != want.Seq || e.Hash == want.Hash }
	)
	err = l.store.Scan([]byte(auditPrefix), func(k, v []byte) error {
		expect := prevSeq + 1
		ks := strings.TrimPrefix(string(k), auditPrefix)
		seq, perr := strconv.ParseUint(ks, 10, 64)
		if perr != nil || len(ks) != 20 {
			return fail(expect, "malformed key %q", k)
		}
		if seq != expect {
			if seq > expect {
				return fail(expect, "missing (next stored entry is %d)", seq)
			}
			return fail(seq, "out of order")
		}
		// Decoding into the stored form keeps the peer ID as the string
		// that was hashed: no base58 round trip per entry.
		var e entryStored
		if err := json.Unmarshal(v, &e); err != nil {
			return fail(seq, "undecodable")
		}
		if e.Seq != seq {
			return fail(seq, "stored under key %d but says seq %d", seq, e.Seq)
		}
		if e.Prev != prevHash {
			return fail(seq, "prev does not match the hash of entry %d", prevSeq)
		}
		h, err := e.entryBody.hash()
		if err != nil {
			return fail(seq, "cannot encode")
		}
		if h != e.Hash {
			return fail(seq, "hash does not match its contents")
		}
		if !matched(mem, &e) {
			return fail(seq, "differs from the entry this ledger wrote")
		}
		if haveHead && !matched(stored, &e) {
			return fail(seq, "does not match the head record")
		}
		if err := cc.entry(seq, e.Hash); err != nil {
			return err
		}
		prevSeq, prevHash = seq, e.Hash
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrAuditCorrupt) {
			return VerifyResult{}, err
		}
		return VerifyResult{}, fmt.Errorf("verify audit log: %w", err)
	}
	if !haveHead && prevSeq > 0 {
		// The entries may have been appended after we looked for the head;
		// if so, the head exists now (they are committed together).
		if _, found, err := l.readHead(); err != nil || !found {
			return VerifyResult{}, fmt.Errorf("verify audit log: %d entries but no head record: %w", prevSeq, ErrAuditCorrupt)
		}
	}
	for _, want := range []uint64{mem.Seq, stored.Seq} {
		if want > prevSeq {
			return VerifyResult{}, fmt.Errorf("verify audit log: entry %d: missing (log ends at %d): %w", prevSeq+1, prevSeq, ErrAuditCorrupt)
		}
	}
	if err := cc.end(prevSeq); err != nil {
		return VerifyResult{}, err
	}
	return VerifyResult{Entries: prevSeq, Head: prevHash, Checkpoints: cc.stored, Checkpoint: cc.last}, nil
}
