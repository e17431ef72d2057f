package consent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/pacsnet/pacsnet/crypto"
)

// ActAuditCheckpoint is the audit entry written right after each signed
// checkpoint: it puts the checkpoint (index, seq, head) into the chain, so
// that a copy of the log kept elsewhere (a syslog collector) witnesses it.
const ActAuditCheckpoint = "audit-checkpoint"

// checkpointPrefix keys the signed checkpoints by index.
const checkpointPrefix = "consent/audit-checkpoint/"

func checkpointKey(index uint64) []byte {
	return fmt.Appendf(nil, "%s%020d", checkpointPrefix, index)
}

// MaxCheckpointSize bounds an encoded [SignedCheckpoint]; ParseCheckpoint
// refuses anything longer before decoding it.
const MaxCheckpointSize = 2048

// Checkpoint is a node's statement that its audit log held Seq entries,
// the last of them with hash Head, at Time. Signed with the node key, it
// lets anyone holding it detect that the log was later truncated or
// rewritten: a log that is shorter than Seq, or whose entry Seq has
// another hash, is not the log the node signed for.
type Checkpoint struct {
	Node     peer.ID   `json:"node"`               // the node that signed (its ledger's Self)
	Facility string    `json:"facility,omitempty"` // its facility name when signed
	Index    uint64    `json:"index"`              // 1, 2, … in the order the node signed them
	Seq      uint64    `json:"seq"`                // entries in the log (the last Seq); 0 for an empty log
	Head     string    `json:"head"`               // Hash of entry Seq; 64 zeros for an empty log
	Time     time.Time `json:"time"`               // when it was signed (UTC)
}

// SignedCheckpoint is a Checkpoint with the node's signature ([crypto.Sign],
// domain [crypto.DomainAuditCheckpoint]) over the JSON encoding of
// Checkpoint.
type SignedCheckpoint struct {
	Checkpoint Checkpoint `json:"checkpoint"`
	Sig        []byte     `json:"sig"`
}

func (c *Checkpoint) validate() error {
	if err := validPeer(c.Node); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if err := checkText(c.Facility, maxPeerNameLen); err != nil {
		return fmt.Errorf("facility: %w", err)
	}
	if c.Index == 0 {
		return errors.New("index must be 1 or more")
	}
	if !validHash(c.Head) {
		return errors.New("head is not 64 lower-case hex digits")
	}
	if c.Seq == 0 && c.Head != zeroHash {
		return errors.New("an empty log's head must be 64 zeros")
	}
	if c.Time.IsZero() {
		return errors.New("time missing")
	}
	return nil
}

// Verify checks the checkpoint's fields and its signature by Node.
func (s *SignedCheckpoint) Verify() error {
	if err := s.Checkpoint.validate(); err != nil {
		return fmt.Errorf("checkpoint: %w: %w", err, ErrInvalidRequest)
	}
	msg, err := json.Marshal(&s.Checkpoint)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := crypto.VerifyPeer(s.Checkpoint.Node, crypto.DomainAuditCheckpoint, msg, s.Sig); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// ParseCheckpoint decodes and verifies a SignedCheckpoint as written by
// [Ledger.Checkpoint] (one JSON object; surrounding white space allowed).
// It refuses more than [MaxCheckpointSize] bytes, unknown fields, trailing
// data, bad fields and a bad signature, each with its own message.
func ParseCheckpoint(b []byte) (*SignedCheckpoint, error) {
	if len(b) > MaxCheckpointSize {
		return nil, fmt.Errorf("checkpoint: %d bytes, more than %d: %w", len(b), MaxCheckpointSize, ErrInvalidRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	// The wire form holds the node as a string, so that a bad peer ID gets
	// its own message rather than a decoding error.
	var w struct {
		Checkpoint struct {
			Node     string    `json:"node"`
			Facility string    `json:"facility"`
			Index    uint64    `json:"index"`
			Seq      uint64    `json:"seq"`
			Head     string    `json:"head"`
			Time     time.Time `json:"time"`
		} `json:"checkpoint"`
		Sig []byte `json:"sig"`
	}
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("checkpoint: not a signed checkpoint: %v: %w", cleanJSONError(err), ErrInvalidRequest)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("checkpoint: trailing data after the object: %w", ErrInvalidRequest)
	}
	wc := w.Checkpoint
	node, err := peer.Decode(wc.Node)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: node is not a peer ID: %w", ErrInvalidRequest)
	}
	s := SignedCheckpoint{Checkpoint: Checkpoint{Node: node, Facility: wc.Facility, Index: wc.Index, Seq: wc.Seq,
		Head: wc.Head, Time: wc.Time}, Sig: w.Sig}
	if err := s.Verify(); err != nil {
		return nil, err
	}
	return &s, nil
}

// cleanJSONError keeps a decoding error's message free of the input it
// quotes (a checkpoint file could hold anything).
func cleanJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "malformed JSON at byte " + strconv.FormatInt(se.Offset, 10)
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "incomplete JSON"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "undecodable"
}

// loadCheckpoints scans the stored checkpoints in index order.
func (l *Ledger) loadCheckpoints(fn func(*SignedCheckpoint) error) error {
	return l.store.Scan([]byte(checkpointPrefix), func(k, v []byte) error {
		ks := strings.TrimPrefix(string(k), checkpointPrefix)
		idx, err := strconv.ParseUint(ks, 10, 64)
		if err != nil || len(ks) != 20 {
			return fmt.Errorf("checkpoint key %q malformed: %w", k, ErrAuditCorrupt)
		}
		s, err := ParseCheckpoint(v)
		if err != nil {
			return fmt.Errorf("checkpoint %d: %w: %w", idx, err, ErrAuditCorrupt)
		}
		if s.Checkpoint.Index != idx {
			return fmt.Errorf("checkpoint %d stored under index %d: %w", s.Checkpoint.Index, idx, ErrAuditCorrupt)
		}
		return fn(s)
	})
}

// lastCheckpointLocked returns the newest stored checkpoint (nil if none),
// loading it on first use. Called with wmu held.
func (l *Ledger) lastCheckpointLocked() (*SignedCheckpoint, error) {
	if l.ckptLoaded {
		return l.lastCkpt, nil
	}
	var last *SignedCheckpoint
	if err := l.loadCheckpoints(func(s *SignedCheckpoint) error { last = s; return nil }); err != nil {
		return nil, err
	}
	l.lastCkpt, l.ckptLoaded = last, true
	return last, nil
}

// Checkpoint signs the current head of the audit log with the node key
// and stores the signed checkpoint, together with an audit entry
// ([ActAuditCheckpoint], actor actor or "system") that records it, in one
// commit. If nothing was written since the last checkpoint (its own entry
// aside) it writes nothing and returns that checkpoint, so calling it on a
// timer and at shutdown costs nothing on an idle node.
//
// Keep the returned checkpoint somewhere the node cannot rewrite (another
// machine, the syslog collector, a printout): Verify with it detects a
// truncated log even if the stored checkpoints were deleted too.
func (l *Ledger) Checkpoint(actor string) (*SignedCheckpoint, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.resyncLocked(); err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	last, err := l.lastCheckpointLocked()
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	l.mu.RLock()
	head := l.st.head
	l.mu.RUnlock()
	if last != nil && (head.Seq == last.Checkpoint.Seq || head.Seq == last.Checkpoint.Seq+1 && l.ckptEntry == head.Seq) {
		return last, nil
	}
	if last != nil && head.Seq == last.Checkpoint.Seq+1 && l.ckptEntry == 0 {
		// After a restart: is the one entry since the checkpoint its own?
		if e, ok, err := l.readEntry(head.Seq); err == nil && ok && e.Action == ActAuditCheckpoint {
			l.ckptEntry = head.Seq
			return last, nil
		}
	}
	now := l.now().UTC()
	c := Checkpoint{Node: l.self, Facility: l.facility, Index: 1, Seq: head.Seq, Head: head.Hash, Time: now}
	if c.Seq == 0 {
		c.Head = zeroHash
	}
	if last != nil {
		c.Index = last.Checkpoint.Index + 1
	}
	msg, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	sig, err := crypto.Sign(l.signer, crypto.DomainAuditCheckpoint, msg)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	sc := &SignedCheckpoint{Checkpoint: c, Sig: sig}
	val, err := json.Marshal(sc)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	e, kvs, err := l.chainLocked(Entry{Actor: sanitize(actorOr(actor), maxActorLen), Action: ActAuditCheckpoint,
		Reason: fmt.Sprintf("index=%d seq=%d head=%s", c.Index, c.Seq, c.Head)}, now)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	kvs = append(kvs, KV{Key: checkpointKey(c.Index), Value: val})
	if err := l.store.Commit(kvs); err != nil {
		l.dirty = true
		return nil, fmt.Errorf("audit checkpoint: commit: %w", err)
	}
	l.mu.Lock()
	l.st.head = headRecord{Seq: e.Seq, Hash: e.Hash}
	l.mu.Unlock()
	l.lastCkpt, l.ckptEntry = sc, e.Seq
	return sc, nil
}

// LastCheckpoint returns the newest stored checkpoint, or nil if the node
// never signed one.
func (l *Ledger) LastCheckpoint() (*SignedCheckpoint, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.lastCheckpointLocked()
}

// checkpointCheck collects, before Verify's scan of the entries, every
// checkpoint the log must agree with: the stored ones (whose indexes must
// run 1, 2, … without gaps) and those the caller brought.
type checkpointCheck struct {
	self   peer.ID
	bySeq  map[uint64][]*SignedCheckpoint
	stored uint64
	last   *Checkpoint // the stored or given checkpoint with the highest Seq
}

func (l *Ledger) checkpointCheck(given []*SignedCheckpoint) (*checkpointCheck, error) {
	cc := &checkpointCheck{self: l.self, bySeq: map[uint64][]*SignedCheckpoint{}}
	add := func(s *SignedCheckpoint, what string) error {
		if s.Checkpoint.Node != l.self {
			return fmt.Errorf("verify audit log: %s was signed by another node (%s): %w", what, s.Checkpoint.Node, ErrAuditCorrupt)
		}
		cc.bySeq[s.Checkpoint.Seq] = append(cc.bySeq[s.Checkpoint.Seq], s)
		if cc.last == nil || s.Checkpoint.Seq > cc.last.Seq {
			c := s.Checkpoint
			cc.last = &c
		}
		return nil
	}
	err := l.loadCheckpoints(func(s *SignedCheckpoint) error {
		if s.Checkpoint.Index != cc.stored+1 {
			return fmt.Errorf("verify audit log: checkpoint %d missing (next stored is %d): %w", cc.stored+1, s.Checkpoint.Index, ErrAuditCorrupt)
		}
		cc.stored++
		return add(s, fmt.Sprintf("checkpoint %d", s.Checkpoint.Index))
	})
	if err != nil {
		if !errors.Is(err, ErrAuditCorrupt) {
			err = fmt.Errorf("verify audit log: %w", err)
		} else if !strings.HasPrefix(err.Error(), "verify audit log") {
			err = fmt.Errorf("verify audit log: %w", err)
		}
		return nil, err
	}
	for _, s := range given {
		if err := s.Verify(); err != nil {
			return nil, fmt.Errorf("verify audit log: the given checkpoint: %w", err)
		}
		if err := add(s, "the given checkpoint"); err != nil {
			return nil, err
		}
	}
	return cc, nil
}

// entry checks entry seq, with hash, against the checkpoints at seq.
func (cc *checkpointCheck) entry(seq uint64, hash string) error {
	for _, s := range cc.bySeq[seq] {
		if s.Checkpoint.Head != hash {
			return fmt.Errorf("verify audit log: entry %d: differs from what checkpoint %d signed at %s (rewritten): %w",
				seq, s.Checkpoint.Index, s.Checkpoint.Time.Format(time.RFC3339), ErrAuditCorrupt)
		}
	}
	delete(cc.bySeq, seq)
	return nil
}

// end checks that no checkpoint names an entry beyond the log's end.
func (cc *checkpointCheck) end(last uint64) error {
	var worst *SignedCheckpoint
	for seq, list := range cc.bySeq {
		if seq > last && (worst == nil || seq > worst.Checkpoint.Seq) {
			worst = list[0]
		}
	}
	if worst != nil {
		c := worst.Checkpoint
		return fmt.Errorf("verify audit log: truncated: the log ends at entry %d but checkpoint %d signed at %s says it held %d: %w",
			last, c.Index, c.Time.Format(time.RFC3339), c.Seq, ErrAuditCorrupt)
	}
	return nil
}
